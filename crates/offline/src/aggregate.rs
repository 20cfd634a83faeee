//! Aggregated views offline: windowed aggregates as of each spine row, and the tiles that
//! materialization writes online.
//!
//! ```text
//! source rows ─view_select (engine-compiled inputs)─▶ events [__k.., __ts, __created?, inputs..]
//! events, grouped by key and sorted by effective time ─┐
//! spine rows, grouped by key and sorted by t ──────────┴─ sweep ─▶ per spine row, each feature
//! ```
//!
//! Per key, one forward sweep over the spine's instants: an event joins its tile (DESIGN.md
//! rule 6) once its effective time is reached (`ts`, or `max(ts, created)` with
//! `as_of: available`, a null `created` counting as `ts`, as in the as-of join); a feature at
//! `t` merges the tiles from [`first_tile`] to the tile holding `t`, and tiles that fall out
//! of every window are dropped. Lifetime features keep one running state. Nothing ever pairs
//! a spine row with each event: the work is a sort plus, per spine row, one merge per tile in
//! its windows. The merges are exact and commutative ([`skewless_engine::aggregate`]), so the
//! online store, which merges the same tiles in another order, gets the same bits.
//!
//! Events are held in memory for the sweep (keys, times and one input column per feature);
//! unlike the as-of join, this does not spill yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::row::{RowConverter, SortField};
use datafusion::prelude::SessionContext;
use skewless_defs::{AggFunction, AsOf, Definitions, Feature, FeatureView};
use skewless_engine::aggregate::{State, Value, first_tile, tile_of, to_array, value_at};

use crate::training_set::{FeatureFrame, TimeBounds, feature_frame};
use crate::{Error, Result};

/// A view's events in memory: keys as comparable rows, times, and one input per feature.
struct Events {
    /// Per event, its key's group (`None`: a null key or time, never counted).
    group: Vec<Option<u32>>,
    ts: Vec<i64>,
    created: Vec<Option<i64>>,
    /// When the event starts to count: `ts`, or `max(ts, created)` with `as_of: available`.
    effective: Vec<i64>,
    inputs: Vec<ArrayRef>,
}

/// What one aggregated feature needs during a sweep.
struct Spec {
    function: AggFunction,
    /// `None`: lifetime.
    window_micros: Option<i64>,
}

fn specs<'a>(view: &'a FeatureView, features: &BTreeSet<String>) -> Result<Vec<(&'a Feature, Spec)>> {
    view.features
        .iter()
        .filter(|f| features.contains(&f.name))
        .map(|f| {
            let agg = f
                .aggregation
                .as_ref()
                .ok_or_else(|| Error::Internal(format!("`{}.{}` is not an aggregation", view.name, f.name)))?;
            Ok((
                f,
                Spec {
                    function: agg.function,
                    window_micros: agg.window.micros(),
                },
            ))
        })
        .collect()
}

/// Reads the view's events with event times in `[min_ts, max_ts]` and groups their keys
/// with `groups` (a key → group map, extended with keys seen first here).
async fn events(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: &BTreeSet<String>,
    bounds: &TimeBounds,
    keys: &mut KeyGroups,
) -> Result<Events> {
    let batch = collect_events(ctx, defs, root, view, features, bounds).await?;
    let n_keys = defs.view_keys(view).len();
    let has_created = batch.schema().column_with_name("__created").is_some();
    let group = keys.groups(&batch.columns()[..n_keys])?;
    let times = |i: usize| batch.column(i).as_primitive::<TimestampMicrosecondType>().clone();
    let ts_array = times(n_keys);
    let created_array = has_created.then(|| times(n_keys + 1));
    let rows = batch.num_rows();
    let mut out = Events {
        group: Vec::with_capacity(rows),
        ts: Vec::with_capacity(rows),
        created: Vec::with_capacity(rows),
        effective: Vec::with_capacity(rows),
        inputs: batch.columns()[n_keys + 1 + usize::from(has_created)..].to_vec(),
    };
    for (row, group) in group.into_iter().enumerate() {
        let ts = ts_array.is_valid(row).then(|| ts_array.value(row));
        let created = created_array
            .as_ref()
            .and_then(|c| c.is_valid(row).then(|| c.value(row)));
        let ts_value = ts.unwrap_or(i64::MIN);
        out.group.push(group.filter(|_| ts.is_some()));
        out.ts.push(ts_value);
        out.created.push(created);
        out.effective.push(match view.as_of {
            AsOf::Event => ts_value,
            AsOf::Available => created.map_or(ts_value, |c| c.max(ts_value)),
        });
    }
    Ok(out)
}

/// The view's select list over its rows in `bounds`, collected into one batch:
/// `[__k.., __ts, __created?, inputs..]`.
async fn collect_events(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: &BTreeSet<String>,
    bounds: &TimeBounds,
) -> Result<RecordBatch> {
    let FeatureFrame { frame, .. } = feature_frame(ctx, defs, root, view, Some(features), bounds).await?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Entity keys as group numbers, shared by events and spine rows.
struct KeyGroups {
    converter: RowConverter,
    ids: HashMap<Box<[u8]>, u32>,
}

impl KeyGroups {
    fn new(view: &FeatureView, defs: &Definitions) -> Result<Self> {
        let fields = defs
            .view_keys(view)
            .iter()
            .map(|k| SortField::new(crate::source::key_arrow_type(k.ty)))
            .collect();
        Ok(KeyGroups {
            converter: RowConverter::new(fields)?,
            ids: HashMap::new(),
        })
    }

    /// Each row's group; `None` when a key is null.
    fn groups(&mut self, columns: &[ArrayRef]) -> Result<Vec<Option<u32>>> {
        let rows = self.converter.convert_columns(columns)?;
        let mut out = Vec::with_capacity(rows.num_rows());
        for (i, row) in rows.iter().enumerate() {
            if columns.iter().any(|c| c.is_null(i)) {
                out.push(None);
                continue;
            }
            let next = self.ids.len() as u32;
            out.push(Some(*self.ids.entry(row.as_ref().into()).or_insert(next)));
        }
        Ok(out)
    }
}

/// The aggregated features of `view` named in `features`, as of each spine row `(keys, t)`,
/// in the view's declared order and spine order; and the events read.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn join(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: &BTreeSet<String>,
    spine_keys: &[ArrayRef],
    t: &ArrayRef,
    (min_t, max_t): (Option<i64>, Option<i64>),
) -> Result<(Vec<ArrayRef>, usize)> {
    let specs = specs(view, features)?;
    let tile = view
        .tile
        .ok_or_else(|| Error::Internal(format!("view `{}` has no tile", view.name)))?
        .micros();
    // Only events inside some spine row's longest window can count.
    let longest = specs
        .iter()
        .map(|(_, s)| s.window_micros)
        .try_fold(0i64, |acc, w| w.map(|w| acc.max(w)));
    let bounds = TimeBounds {
        max_ts: max_t,
        min_ts: match (min_t, longest) {
            (Some(min), Some(w)) => Some(first_tile(min, tile, w).saturating_mul(tile)),
            _ => None,
        },
        ..TimeBounds::default()
    };
    let mut keys = KeyGroups::new(view, defs)?;
    let events = events(ctx, defs, root, view, features, &bounds, &mut keys).await?;
    let spine_groups = keys.groups(spine_keys)?;
    let t = t.as_primitive::<TimestampMicrosecondType>();

    // Events and spine rows, each sorted by (group, time).
    let mut order: Vec<u32> = (0..events.group.len() as u32)
        .filter(|&i| events.group[i as usize].is_some())
        .collect();
    order.sort_unstable_by_key(|&i| (events.group[i as usize], events.effective[i as usize]));
    let mut queries: Vec<u32> = (0..spine_groups.len() as u32)
        .filter(|&i| spine_groups[i as usize].is_some() && t.is_valid(i as usize))
        .collect();
    queries.sort_unstable_by_key(|&i| (spine_groups[i as usize], t.value(i as usize)));

    let mut results: Vec<Vec<Option<Value>>> = specs
        .iter()
        .map(|(_, s)| {
            let empty = State::empty(s.function).finish(s.function);
            vec![empty; spine_groups.len()]
        })
        .collect();
    let mut e = 0;
    let mut q = 0;
    while q < queries.len() {
        let group = spine_groups[queries[q] as usize];
        while e < order.len() && events.group[order[e] as usize] < group {
            e += 1;
        }
        let mut sweep = Sweep::new(&specs, tile);
        while q < queries.len() && spine_groups[queries[q] as usize] == group {
            let row = queries[q] as usize;
            let at = t.value(row);
            while e < order.len()
                && events.group[order[e] as usize] == group
                && events.effective[order[e] as usize] <= at
            {
                sweep.add(&events, order[e] as usize);
                e += 1;
            }
            for (j, value) in sweep.query(at).into_iter().enumerate() {
                results[j][row] = value;
            }
            q += 1;
        }
    }
    let columns = specs
        .iter()
        .zip(results)
        .map(|((f, _), values)| to_array(f.ty, &values))
        .collect();
    Ok((columns, events.group.len()))
}

/// One key's sweep: its tiles in reach of some window, and the lifetime states.
struct Sweep<'a> {
    specs: &'a [(&'a Feature, Spec)],
    tile: i64,
    tiles: BTreeMap<i64, Vec<State>>,
    lifetime: Vec<State>,
    /// Tiles below this are outside every finite window from now on.
    floor: i64,
}

impl<'a> Sweep<'a> {
    fn new(specs: &'a [(&'a Feature, Spec)], tile: i64) -> Self {
        Sweep {
            specs,
            tile,
            tiles: BTreeMap::new(),
            lifetime: specs.iter().map(|(_, s)| State::empty(s.function)).collect(),
            floor: i64::MIN,
        }
    }

    /// Folds event `i` into the lifetime states and, when some window can still reach it,
    /// into its tile.
    fn add(&mut self, events: &Events, i: usize) {
        let (ts, created) = (events.ts[i], events.created[i]);
        let specs = self.specs;
        let tile =
            (tile_of(ts, self.tile) >= self.floor && specs.iter().any(|(_, s)| s.window_micros.is_some())).then(|| {
                self.tiles
                    .entry(tile_of(ts, self.tile))
                    .or_insert_with(|| specs.iter().map(|(_, s)| State::empty(s.function)).collect())
            });
        let (lifetime, mut tile) = (&mut self.lifetime, tile);
        for (j, ((_, spec), input)) in specs.iter().zip(&events.inputs).enumerate() {
            let value = value_at(input.as_ref(), i);
            match (spec.window_micros, tile.as_deref_mut()) {
                (None, _) => lifetime[j].add(value.as_ref(), ts, created),
                (Some(_), Some(states)) => states[j].add(value.as_ref(), ts, created),
                (Some(_), None) => {}
            }
        }
    }

    fn query(&mut self, at: i64) -> Vec<Option<Value>> {
        let last = tile_of(at, self.tile);
        let mut floor = i64::MAX;
        let out = self
            .specs
            .iter()
            .enumerate()
            .map(|(j, (_, spec))| match spec.window_micros {
                None => self.lifetime[j].finish(spec.function),
                Some(w) => {
                    let first = first_tile(at, self.tile, w);
                    floor = floor.min(first);
                    let mut merged = State::empty(spec.function);
                    for states in self.tiles.range(first..=last).map(|(_, s)| s) {
                        merged.merge(&states[j]);
                    }
                    merged.finish(spec.function)
                }
            })
            .collect();
        if floor != i64::MAX && floor > self.floor {
            self.floor = floor;
            self.tiles = self.tiles.split_off(&floor);
        }
        out
    }
}

/// Materialization's offline half for an aggregated view: its events `[keys.., ts, created?,
/// inputs..]` with event times up to `end` and, when every window is finite, no older than
/// the longest window's first tile at `end` (`skewless_online::tiles::writes` folds them).
/// The push log is read with the batch files, so the tiles hold every row.
pub async fn events_until(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    end: i64,
) -> Result<RecordBatch> {
    let tile = view
        .tile
        .ok_or_else(|| Error::Internal(format!("view `{}` has no tile", view.name)))?
        .micros();
    let bounds = TimeBounds {
        max_ts: Some(end),
        min_ts: view
            .longest_window_micros()
            .map(|w| first_tile(end, tile, w).saturating_mul(tile)),
        ..TimeBounds::default()
    };
    let features: BTreeSet<String> = view.features.iter().map(|f| f.name.clone()).collect();
    collect_events(ctx, defs, root, view, &features, &bounds).await
}
