//! Parity on the user's own definitions and data: `skewless parity`.
//!
//! The one promise of skewless is that a model is served the values it was trained on. This
//! harness checks it on any project, the way the parity suites check the demo:
//!
//! ```text
//! spine rows (keys, request fields) × instants ─┬─ one training set over every (row, instant) ─▶ offline values
//!                                               └─ fresh embedded store per instant:
//!                                                  materialize --end t (batch sources), or the
//!                                                  source's rows pushed in availability order
//!                                                  through the push path (push sources), then
//!                                                  the serving core (the server's) looks each
//!                                                  key up at t ────────────────────────────────▶ online values
//! ```
//!
//! A push source's rows (its files and its log) are replayed through the online half of a
//! push ([`crate::push::PushTarget::replay_online`]): the same compiled expressions, contract
//! verdicts and newer-wins or tile writes the server runs, with nothing appended to the log.
//!
//! Values are compared bit for bit (floats by their bits, so NaN matches NaN and −0 does
//! not match +0), and a `NOT_FOUND` or `OUTSIDE_MAX_AGE` online must be a null offline. Each
//! mismatch names view, feature, key, instant, both values, and a likely cause (definition
//! version, contract, ttl edge, late row, float order, tie). Tests plant faults in the
//! online half ([`PlantedFault`]) to show each is caught with its cause. The stores
//! are temporary and record no watermarks: the user's registry and stores are not touched.
//!
//! Late rows (DESIGN rule 7). For an `as_of: event` view whose source has `created`, a second
//! store is fed as if rows had arrived in availability order up to the instant (only rows
//! with `created <= t`); it holds only such views (and the inputs of on-demand views over
//! them), since no other view can serve at `t` other than it will know later. Where the
//! training set agrees with the hindsight store but not with this one, the winning row landed
//! after `t`: serving at `t` could not have known it. Those values are counted per view as
//! `late`, not hidden and not failures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::take;
use serde::Serialize;
use skewless_online::values::scalar_at;
use skewless_online::{Scalar, Status};

use crate::online::{MaterializeOptions, RunMode, format_instant};
use crate::serving::Serving;
use crate::training::{FeatureSelection, Spine, TrainingSetOptions, resolve_selection};
use crate::{Error, Project, Result};

/// What to check.
#[derive(Debug, Clone)]
pub struct ParityOptions {
    /// Entity keys (and request fields of on-demand views) to look up: a spine file, or rows
    /// in memory.
    pub spine: Spine,
    pub selection: FeatureSelection,
    pub timestamp_column: String,
    /// The instants (µs); empty: the spine's earliest, median and latest times.
    pub at: Vec<i64>,
    /// At most this many spine rows (chosen by `seed`); `None`: all.
    pub sample: Option<usize>,
    pub seed: u64,
    /// Compare against what this store serves now, instead of fresh stores materialized at
    /// each instant: is the production store consistent with the training set? (No late-row
    /// replay then: the store holds what it holds.)
    pub store: Option<Arc<dyn skewless_online::OnlineStore>>,
    /// A fault planted in one path, for the tests that show the harness catches it. `None`
    /// in every real run.
    #[doc(hidden)]
    pub planted: Option<PlantedFault>,
}

/// Faults the tests plant to show that the harness reports them, with the right cause.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedFault {
    /// The online path looks up at `t` plus this many µs: a ttl bound off by that much.
    OnlineClockAhead(i64),
    /// The online path is served from a store materialized at this instant instead of `t`:
    /// a stale value.
    StaleStore(i64),
    /// The online path's as-of join breaks exact `(event_timestamp, created)` ties the other way.
    ReversedTieBreak,
    /// The online path ignores feature contracts.
    ContractsIgnored,
    /// The online path adds aggregated float sums naively, tile by tile.
    NaiveFloatSums,
}

impl PlantedFault {
    /// The engine fault this plants in the online half of the run, if it is one.
    fn engine_fault(self) -> Option<skewless_defs::planted::Fault> {
        use skewless_defs::planted::Fault;
        match self {
            PlantedFault::ReversedTieBreak => Some(Fault::ReversedTieBreak),
            PlantedFault::ContractsIgnored => Some(Fault::ContractsIgnored),
            PlantedFault::NaiveFloatSums => Some(Fault::NaiveFloatSums),
            PlantedFault::OnlineClockAhead(_) | PlantedFault::StaleStore(_) => None,
        }
    }
}

/// One value that differs between the paths.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub view: String,
    pub feature: String,
    /// The entity's keys and request fields, `name=value`.
    pub key: String,
    pub at: String,
    pub offline: String,
    pub online: String,
    pub status: String,
    pub cause: String,
}

/// Per view: what was compared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewParity {
    pub values: usize,
    /// Values present (non-null) on both paths and equal.
    pub present: usize,
    pub mismatches: usize,
    /// Values equal on both paths that a store fed in availability order could not yet have
    /// served at the instant: the winning row landed after it (`as_of: event` views only;
    /// DESIGN rule 7). Counted, not hidden, and not failures: `as_of: available` avoids them.
    pub late: usize,
    /// How the online side got the view's rows: `materialize`, `push` (a push source's rows
    /// replayed through the push path), `store` (`--against-store`), or `on demand`.
    pub online_path: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ParityReport {
    pub instants: Vec<String>,
    pub entities: usize,
    pub views: BTreeMap<String, ViewParity>,
    pub mismatches: Vec<Mismatch>,
}

impl ParityReport {
    pub fn values(&self) -> usize {
        self.views.values().map(|v| v.values).sum()
    }
}

impl Project {
    /// Runs the parity harness (see the module documentation).
    pub async fn parity(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        options: &ParityOptions,
    ) -> Result<ParityReport> {
        let defs = self.load()?;
        let features = resolve_selection(&defs, &options.selection)?;
        let (views, on_demand) = skewless_defs::needed_views(&defs, &features);
        // Fields an entity carries to the serving core: join keys and request fields.
        let mut fields: BTreeSet<String> = views
            .iter()
            .filter_map(|v| defs.feature_views.get(v))
            .flat_map(|v| defs.view_keys(v).into_iter().map(|k| k.name.clone()))
            .collect();
        fields.extend(
            on_demand
                .iter()
                .filter_map(|v| defs.on_demand_views.get(v))
                .flat_map(|v| v.request.iter().map(|r| r.name.clone())),
        );
        // Only an `as_of: event` view over a source with `created` can serve, at t, other than
        // what it will know later; the replay store is fed only the views behind such values.
        let late_prone: BTreeSet<&String> = views
            .iter()
            .filter(|v| {
                defs.feature_views.get(*v).is_some_and(|v| {
                    v.as_of == skewless_defs::AsOf::Event
                        && defs.sources.get(&v.source).is_some_and(|s| s.created.is_some())
                })
            })
            .collect();
        // The selected views whose values can land late (a late-prone view, or an on-demand
        // view over one), and the feature views behind them: all the replay store needs.
        let mut late_views: BTreeSet<&String> = BTreeSet::new();
        let mut replay_views: BTreeSet<String> = BTreeSet::new();
        for view in features.iter().map(|f| &f.view).collect::<BTreeSet<_>>() {
            let of_view: Vec<_> = features.iter().filter(|f| &f.view == view).cloned().collect();
            let (inputs, _) = skewless_defs::needed_views(&defs, &of_view);
            if inputs.iter().any(|v| late_prone.contains(v)) {
                late_views.insert(view);
                replay_views.extend(inputs);
            }
        }
        for view in views.iter().filter_map(|v| defs.feature_views.get(v)) {
            if !view.online {
                return Err(Error::NotOnline {
                    view: view.name.clone(),
                });
            }
        }

        // The views whose source takes pushes: the online half replays their rows as pushes.
        let pushed: BTreeSet<String> = views
            .iter()
            .filter(|v| {
                defs.feature_views
                    .get(*v)
                    .and_then(|v| defs.sources.get(&v.source))
                    .is_some_and(|s| s.push)
            })
            .cloned()
            .collect();
        let spine_path = options.spine.path();
        let spine = options.spine.read(&options.timestamp_column, &[])?;
        let spine = skewless_offline::training_set::with_instant_times(&spine, spine_path, &options.timestamp_column)?;
        let spine = sample(&spine, options.sample, options.seed)?;
        let times = spine
            .column_by_name(&options.timestamp_column)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or_else(|| Error::SpineColumn {
                path: spine_path.to_path_buf(),
                column: options.timestamp_column.clone(),
                wanted: "its timestamp column",
            })?;
        let instants = if options.at.is_empty() {
            default_instants(times)
        } else {
            options.at.clone()
        };
        let work = tempfile::tempdir().map_err(|e| Error::Write {
            path: std::env::temp_dir(),
            message: format!("cannot create a temporary directory: {e}"),
        })?;
        let mut report = ParityReport {
            instants: instants.iter().map(|&t| format_instant(t)).collect(),
            entities: spine.num_rows(),
            ..ParityReport::default()
        };
        let online_path = |view: &String| {
            if options.store.is_some() {
                "store"
            } else if pushed.contains(view) {
                "push"
            } else if views.contains(view) {
                "materialize"
            } else {
                "on demand"
            }
        };
        // The offline side: one training set over the spine's rows at every instant (row
        // i·n + r is spine row r at instant i), so its fixed cost is paid once.
        let at_each: Vec<RecordBatch> = instants
            .iter()
            .map(|&t| with_time(&spine, spine_path, &options.timestamp_column, t))
            .collect::<Result<_>>()?;
        let all =
            arrow::compute::concat_batches(&spine.schema(), &at_each).map_err(|e| Error::Internal(e.to_string()))?;
        let training = TrainingSetOptions {
            spine: Spine::Rows {
                label: spine_path.to_path_buf(),
                batch: all,
            },
            selection: options.selection.clone(),
            timestamp_column: options.timestamp_column.clone(),
            full_names: true,
        };
        let offline = self.training_set(ctx, &training).await?;
        if !offline.skew_warnings.is_empty() {
            return Err(Error::NotApplied(offline.skew_warnings));
        }
        for (i, (&t, at_t)) in instants.iter().zip(&at_each).enumerate() {
            let first_row = i * spine.num_rows();
            // The online side: what a fresh store serves at t, with hindsight (every row known
            // now, as `materialize` writes), and replayed in availability order when a view
            // could differ (rule 7: only rows landed by t).
            let entities = entity_fields(at_t, spine_path, &fields)?;
            let served = |mode: RunMode, name: String, views: BTreeSet<String>| {
                let (entities, work, pushed) = (&entities, &work, &pushed);
                async move {
                    if let Some(store) = &options.store {
                        let serving = Serving::new(&self.dirs(), Arc::clone(store))?;
                        return serving.get(&options.selection, entities, t).await.map_err(Error::Serve);
                    }
                    let store: Arc<dyn skewless_online::OnlineStore> =
                        Arc::new(skewless_online::EmbeddedStore::open(&work.path().join(name)).map_err(Error::Online)?);
                    let (materialized_at, looked_up_at) = match options.planted {
                        Some(PlantedFault::OnlineClockAhead(micros)) => (t, t + micros),
                        Some(PlantedFault::StaleStore(at)) => (at, t),
                        _ => (t, t),
                    };
                    // Only while this online half runs: the training set above ran without it.
                    let _planted = options
                        .planted
                        .and_then(PlantedFault::engine_fault)
                        .map(skewless_defs::planted::plant);
                    // Views over push sources get their rows as production does, through the
                    // push path; the others by materialization.
                    let pushing = mode == RunMode::Unrecorded;
                    let materialized: Vec<String> = views
                        .iter()
                        .filter(|v| !(pushing && pushed.contains(*v)))
                        .cloned()
                        .collect();
                    if !materialized.is_empty() {
                        let materialize = MaterializeOptions {
                            start: None,
                            end: materialized_at,
                            incremental: false,
                            views: materialized,
                        };
                        self.materialize_unrecorded(&*store, &materialize, mode).await?;
                    }
                    if pushing {
                        let pushed: BTreeSet<String> = pushed.intersection(&views).cloned().collect();
                        self.replay_pushes(ctx, &*store, &pushed, materialized_at).await?;
                    }
                    let serving = Serving::new(&self.dirs(), store)?;
                    serving
                        .get(&options.selection, entities, looked_up_at)
                        .await
                        .map_err(Error::Serve)
                }
            };
            let online = served(RunMode::Unrecorded, format!("hindsight{i}.redb"), views.clone()).await?;
            let replayed = if !replay_views.is_empty() && options.store.is_none() {
                Some(
                    served(
                        RunMode::AvailabilityReplay,
                        format!("replayed{i}.redb"),
                        replay_views.clone(),
                    )
                    .await?,
                )
            } else {
                None
            };
            let first_feature = at_t.num_columns();
            for (f, feature) in offline.features.iter().enumerate() {
                let column = offline.batch.column(first_feature + f);
                let prone_to_late = late_views.contains(&feature.view);
                let tally = report.views.entry(feature.view.clone()).or_insert_with(|| ViewParity {
                    online_path: online_path(&feature.view).into(),
                    ..ViewParity::default()
                });
                for (row, pairs) in entities.iter().enumerate() {
                    let want = scalar_at(column.as_ref(), first_row + row).map_err(Error::Online)?;
                    let got = &online.rows[row][f];
                    tally.values += 1;
                    if same(&want, &got.value) {
                        tally.present += usize::from(want != Scalar::Null);
                        let landed_late = replayed
                            .as_ref()
                            .is_some_and(|r| prone_to_late && !same(&want, &r.rows[row][f].value));
                        tally.late += usize::from(landed_late);
                        continue;
                    }
                    tally.mismatches += 1;
                    report.mismatches.push(Mismatch {
                        view: feature.view.clone(),
                        feature: feature.feature.clone(),
                        key: pairs
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        at: format_instant(t),
                        offline: format!("{want:?}"),
                        online: format!("{:?}", got.value),
                        status: got.status.name().to_string(),
                        cause: cause(
                            &want,
                            &got.value,
                            got.status,
                            online.stats.other_version > 0,
                            offline.broke_contracts.get(&feature.view).map_or(0, |q| q.rows),
                        ),
                    });
                }
            }
        }
        Ok(report)
    }
}

impl Project {
    /// Feeds `views` (over push sources) into `store` as pushes would have: each source's rows
    /// with event times up to `t`, in availability order, through the push path's online half
    /// (the same compiled expressions, contract verdicts and newer-wins or tile writes). For
    /// `as_of: available` views only rows landed by `t` are pushed; `as_of: event` views get
    /// every row (hindsight, like `materialize`; late rows are counted by the replay store).
    async fn replay_pushes(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        store: &dyn skewless_online::OnlineStore,
        views: &BTreeSet<String>,
        t: i64,
    ) -> Result<()> {
        let defs = self.applied()?;
        let sources: BTreeSet<&String> = views
            .iter()
            .filter_map(|v| defs.feature_views.get(v))
            .map(|v| &v.source)
            .collect();
        for source in sources {
            for as_of in [skewless_defs::AsOf::Available, skewless_defs::AsOf::Event] {
                let wanted = |v: &skewless_defs::FeatureView| v.as_of == as_of && views.contains(&v.name);
                if !defs.feature_views.values().any(|v| v.source == *source && wanted(v)) {
                    continue;
                }
                let target =
                    crate::push::PushTarget::compile_views(&self.root, &defs, source, &wanted).map_err(Error::Serve)?;
                let landed_by = (as_of == skewless_defs::AsOf::Available).then_some(t);
                let rows =
                    skewless_offline::training_set::source_rows(ctx, &defs, &self.root, source, t, landed_by).await?;
                for batch in &rows {
                    for offset in (0..batch.num_rows()).step_by(ROWS_PER_PUSH) {
                        let chunk = batch.slice(offset, ROWS_PER_PUSH.min(batch.num_rows() - offset));
                        target.replay_online(store, &chunk).await.map_err(Error::Serve)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Rows per replayed push.
const ROWS_PER_PUSH: usize = 1024;

/// Bit-for-bit equality: floats by their bits (NaN matches NaN, −0 does not match +0).
fn same(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Float64(x), Scalar::Float64(y)) => x.to_bits() == y.to_bits(),
        (Scalar::Float32(x), Scalar::Float32(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// The likeliest reason for a mismatch, from what each side saw and how many of the view's
/// rows the training set excluded for breaking its contracts.
fn cause(offline: &Scalar, online: &Scalar, status: Status, other_version: bool, broke_contracts: usize) -> String {
    let close = |a: f64, b: f64| a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    let last_bits = match (offline, online) {
        (Scalar::Float64(a), Scalar::Float64(b)) => close(*a, *b),
        (Scalar::Float32(a), Scalar::Float32(b)) => close(f64::from(*a), f64::from(*b)),
        _ => false,
    };
    match (offline, status) {
        _ if other_version => "definition version: the store holds values of another view version".into(),
        (_, Status::Present) if broke_contracts > 0 => format!(
            "contract: the training set excluded {broke_contracts} rows of this view that break its contracts; the online value may come from one"
        ),
        (Scalar::Null, Status::Present) => {
            "online has a value the training set does not: a late row (as_of), a ttl edge, or a contract".into()
        }
        (_, Status::OutsideMaxAge) => "ttl edge: online judged the value too old, offline kept it".into(),
        (_, Status::NotFound) => "online found no value: a late row, or a row materialization did not write".into(),
        _ if last_bits => {
            "float order: the values differ only in their last bits (an expression or a sum evaluated in another order)".into()
        }
        _ => "tie: the values differ: rows sharing (event_timestamp, created) broken differently, or an expression evaluated differently".into(),
    }
}

/// Up to `n` rows of `batch`, chosen by `seed` (all when `n` is `None` or not smaller).
fn sample(batch: &RecordBatch, n: Option<usize>, seed: u64) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let Some(n) = n.filter(|&n| n < rows) else {
        return Ok(batch.clone());
    };
    // Rank rows by a seeded hash; keep the n lowest, in spine order.
    let mut ranked: Vec<(u64, u32)> = (0..rows as u32).map(|i| (mix(seed ^ u64::from(i)), i)).collect();
    ranked.sort_unstable();
    let mut keep: Vec<u32> = ranked[..n].iter().map(|&(_, i)| i).collect();
    keep.sort_unstable();
    let indices = arrow::array::UInt32Array::from(keep);
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()
        .map_err(|e| Error::Internal(e.to_string()))?;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::Internal(e.to_string()))
}

/// SplitMix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The spine's earliest, median and latest times (distinct).
fn default_instants(times: &TimestampMicrosecondArray) -> Vec<i64> {
    let mut all: Vec<i64> = times.iter().flatten().collect();
    all.sort_unstable();
    let mut picked: Vec<i64> = [0, all.len() / 2, all.len().saturating_sub(1)]
        .into_iter()
        .filter_map(|i| all.get(i).copied())
        .collect();
    picked.dedup();
    picked
}

/// `batch` with every time in `column` set to `t` (same type and zone).
fn with_time(batch: &RecordBatch, path: &Path, column: &str, t: i64) -> Result<RecordBatch> {
    let schema = batch.schema();
    let index = schema.index_of(column).map_err(|_| Error::SpineColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        wanted: "its timestamp column",
    })?;
    let zone = match schema.field(index).data_type() {
        arrow::datatypes::DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(TimestampMicrosecondArray::from(vec![t; batch.num_rows()]).with_timezone_opt(zone));
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
}

/// Each spine row's join keys and request fields as the `name=text` pairs the serving core
/// parses. A null field is left out (the core then reports it as missing).
fn entity_fields(batch: &RecordBatch, path: &Path, fields: &BTreeSet<String>) -> Result<Vec<Vec<(String, String)>>> {
    let columns: Vec<(&String, &ArrayRef)> = fields
        .iter()
        .map(|name| {
            batch
                .column_by_name(name)
                .map(|c| (name, c))
                .ok_or_else(|| Error::SpineColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                    wanted: "a join key or request field",
                })
        })
        .collect::<Result<_>>()?;
    (0..batch.num_rows())
        .map(|row| {
            let mut pairs = Vec::with_capacity(columns.len());
            for (name, column) in &columns {
                let text = match scalar_at(column.as_ref(), row).map_err(Error::Online)? {
                    Scalar::Null => continue,
                    Scalar::String(s) => s,
                    Scalar::Int64(i) => i.to_string(),
                    Scalar::Int32(i) => i.to_string(),
                    Scalar::Bool(b) => b.to_string(),
                    // Rust's shortest round-trip form: the core parses back the same bits
                    // (the infinities by the names the input rule takes).
                    Scalar::Float64(x) if x.is_infinite() => infinity(x > 0.0),
                    Scalar::Float32(x) if x.is_infinite() => infinity(x > 0.0),
                    Scalar::Float64(x) => format!("{x:?}"),
                    Scalar::Float32(x) => format!("{x:?}"),
                    Scalar::Timestamp(t) => format_instant(t),
                };
                pairs.push(((*name).clone(), text));
            }
            Ok(pairs)
        })
        .collect()
}

fn infinity(positive: bool) -> String {
    if positive { "Infinity" } else { "-Infinity" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_compared_bit_for_bit() {
        assert!(same(&Scalar::Float64(f64::NAN), &Scalar::Float64(f64::NAN)));
        assert!(!same(&Scalar::Float64(0.0), &Scalar::Float64(-0.0)));
        assert!(!same(&Scalar::Float32(0.0), &Scalar::Float32(-0.0)));
        assert!(same(&Scalar::Float64(0.1 + 0.2), &Scalar::Float64(0.1 + 0.2)));
        assert!(!same(&Scalar::Float64(0.1 + 0.2), &Scalar::Float64(0.3)));
        assert!(!same(&Scalar::Null, &Scalar::Int64(0)));
        assert!(same(&Scalar::Null, &Scalar::Null));
        assert!(same(&Scalar::String("a".into()), &Scalar::String("a".into())));
    }

    #[test]
    fn causes_follow_what_each_side_saw() {
        let (one, two) = (Scalar::Int64(1), Scalar::Int64(2));
        assert!(cause(&one, &Scalar::Null, Status::OutsideMaxAge, false, 0).starts_with("ttl edge"));
        assert!(cause(&one, &Scalar::Null, Status::NotFound, false, 0).starts_with("online found no value"));
        assert!(cause(&Scalar::Null, &one, Status::Present, false, 0).starts_with("online has a value"));
        assert!(cause(&one, &two, Status::Present, false, 0).starts_with("tie"));
        assert!(cause(&one, &two, Status::Present, true, 0).starts_with("definition version"));
        assert!(cause(&one, &two, Status::Present, false, 3).starts_with("contract"));
        let (a, b) = (Scalar::Float64(0.1 + 0.2 + 0.3), Scalar::Float64(0.6));
        assert!(cause(&a, &b, Status::Present, false, 0).starts_with("float order"));
        let (a, b) = (Scalar::Float64(0.6), Scalar::Float64(0.7));
        assert!(cause(&a, &b, Status::Present, false, 0).starts_with("tie"));
    }

    #[test]
    fn samples_are_seeded_and_keep_spine_order() {
        let ids = arrow::array::Int64Array::from((0..100).collect::<Vec<i64>>());
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "id",
            arrow::datatypes::DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap();
        let ids = |b: &RecordBatch| -> Vec<i64> {
            let column = b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
            column.values().to_vec()
        };
        let a = ids(&sample(&batch, Some(10), 7).unwrap());
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert_eq!(a, ids(&sample(&batch, Some(10), 7).unwrap()));
        assert_ne!(a, ids(&sample(&batch, Some(10), 8).unwrap()));
        assert_eq!(sample(&batch, Some(1000), 7).unwrap().num_rows(), 100);
    }
}
