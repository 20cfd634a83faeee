//! The online path through the facade: materialization (offline rows → online store).
//! Lookups go through the serving core ([`crate::serving`]).
//!
//! Both read the definitions *in force* (the latest `apply`), not the files on disk: what is
//! served is what was applied, and every value carries the applied view version, so a value
//! from another version reads as NOT_FOUND instead of being misread.
//!
//! ```text
//! materialize: applied defs ─▶ offline::latest (as-of at `end`, same engine and rules as
//!              training sets) ─▶ online::layout rows ─▶ OnlineStore::write (newer wins)
//!              ─▶ registry watermark (materialize-incremental starts there)
//! get:         entity keys ─▶ online::lookup (statuses at `now`) ─▶ values
//! ```
//!
//! Interrupting is safe: writes are newer-wins and idempotent, and a view's watermark moves
//! only after all its rows are written, so a re-run writes the same values again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use skewless_defs::Definitions;
use skewless_offline::latest::{Window, latest};
use skewless_online::{OnlineStore, ViewLayout};

use crate::{Error, Project, Result};
use skewless_registry::{StoreRef, Watermark};

pub use skewless_serving::push::EXPIRY_MARGIN;
/// Rows encoded and written per store call.
const ROWS_PER_WRITE: usize = 8192;
/// Writes of a materialization in flight at once.
const WRITES_IN_FLIGHT: usize = 4;
/// Joined batches a materialization's join may run ahead of its writer.
const JOINED_BATCHES_AHEAD: usize = 2;

#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// Only rows new since `start` (µs; event time or `created` at or after it); `None`: from the beginning.
    pub start: Option<i64>,
    /// The instant whose values are written (µs).
    pub end: i64,
    /// Start each view at its watermark (when its version matches) instead of `start`.
    pub incremental: bool,
    /// Feature views to materialize; empty: every view with `online: true`.
    pub views: Vec<String>,
}

/// One view's share of a materialization run.
struct ViewRun<'a> {
    ctx: &'a datafusion::prelude::SessionContext,
    defs: &'a Definitions,
    view: &'a skewless_defs::FeatureView,
    store: &'a dyn OnlineStore,
    store_ref: &'a StoreRef,
    /// The view's watermark in this store, if any (any version).
    watermark: Option<&'a Watermark>,
    options: &'a MaterializeOptions,
    progress: &'a dyn Fn(MaterializeProgress),
    mode: RunMode,
}

/// How a materialization run treats what it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunMode {
    /// `skewless materialize`: watermarks kept.
    Recorded,
    /// A throwaway store (the parity harness's): no watermark kept; every row known now is
    /// used (hindsight), as `materialize` does.
    Unrecorded,
    /// A throwaway store, as if rows had been ingested in availability order up to the clock
    /// `end`: only rows with `created <= end` are known, whatever the view's `as_of` (DESIGN
    /// rule 7). No watermark kept.
    AvailabilityReplay,
}

/// What materializing one view did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewReport {
    pub view: String,
    pub version: String,
    pub start: Option<i64>,
    pub end: i64,
    pub rows_read: usize,
    /// Rows that can never be served: a null join key or event time.
    pub rows_quarantined: usize,
    /// Rows that broke the view's contracts: excluded from the candidates (or, with
    /// `on_violation: null`, their breaking features nulled), each in the quarantine file.
    pub rows_breaking_contracts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_file: Option<String>,
    /// Distinct keys in the window.
    pub keys: usize,
    /// Keys with a value at `end` (within ttl; landed, for `as_of: available`).
    pub keys_with_value: usize,
    pub keys_written: u64,
    /// Writes the store refused because it already held an equal or newer value.
    pub writes_skipped_not_newer: u64,
    pub seconds: f64,
    /// Why an incremental run started where it did, when that is not its watermark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why this view failed; nothing after the failure was written for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum MaterializeProgress {
    Computing {
        view: String,
        index: usize,
        views: usize,
    },
    /// Keys written so far (the join is still finding the others).
    Writing {
        view: String,
        done: usize,
    },
    Done(ViewReport),
    /// Something the user should know that does not stop the run.
    Warning(String),
}

impl Project {
    /// The definitions in force: the latest applied version.
    pub fn applied(&self) -> Result<Definitions> {
        self.registry()
            .latest()?
            .map(|r| r.definitions)
            .ok_or(Error::Serve(crate::serving::RequestError::NothingApplied))
    }

    /// Writes each online view's values at `options.end` into `store`. A view that fails is
    /// reported with its error and the others go on: one broken expression does not stop
    /// the healthy views from being served.
    pub async fn materialize(
        &self,
        store: &dyn OnlineStore,
        options: &MaterializeOptions,
        progress: &dyn Fn(MaterializeProgress),
    ) -> Result<Vec<ViewReport>> {
        self.materialize_with(store, options, progress, RunMode::Recorded).await
    }

    /// Brings `store` up to the push logs before a server answers from it: an acknowledged
    /// push whose online write never happened (a crash between its log append and its write)
    /// is served from here on. Each online view fed by a push source whose log changed after
    /// the view's watermark in `store` (or that has none for its version) is materialized
    /// incrementally at `now`, exactly as `materialize-incremental` would; the others are left
    /// alone, so a restart with nothing new pushed costs a directory listing. The reports of
    /// the views it ran (none: nothing to recover).
    pub async fn recover_pushes(
        &self,
        store: &dyn OnlineStore,
        now: i64,
        progress: &dyn Fn(MaterializeProgress),
    ) -> Result<Vec<ViewReport>> {
        let defs = self.applied()?;
        let store_ref = StoreRef {
            identity: store.identity(),
            instance: store.instance_id().await.map_err(online_error)?,
        };
        let marks = self.registry().watermarks(&store_ref)?;
        let versions = skewless_defs::version::versions(&defs).feature_views;
        let mut behind = Vec::new();
        for view in defs.feature_views.values().filter(|v| v.online) {
            if !defs.sources.get(&view.source).is_some_and(|s| s.push) {
                continue;
            }
            let last_change = skewless_push_log::last_change(&self.root, &view.source)?;
            let Some(last_change) = last_change else {
                continue;
            };
            let covered = marks
                .get(&view.name)
                .is_some_and(|w| Some(&w.version) == versions.get(&view.name) && w.end >= last_change);
            if !covered {
                behind.push(view.name.clone());
            }
        }
        if behind.is_empty() {
            return Ok(Vec::new());
        }
        let options = MaterializeOptions {
            start: None,
            end: now,
            incremental: true,
            views: behind,
        };
        self.materialize(store, &options, progress).await
    }

    /// A materialization that records no watermark: for a throwaway store (the parity
    /// harness's), which must leave the registry as it was.
    pub(crate) async fn materialize_unrecorded(
        &self,
        store: &dyn OnlineStore,
        options: &MaterializeOptions,
        mode: RunMode,
    ) -> Result<Vec<ViewReport>> {
        let reports = self.materialize_with(store, options, &|_| {}, mode).await?;
        match reports.iter().find_map(|r| r.error.as_ref().map(|e| (&r.view, e))) {
            Some((view, e)) => Err(Error::Materialize {
                view: view.clone(),
                detail: e.to_string(),
            }),
            None => Ok(reports),
        }
    }

    async fn materialize_with(
        &self,
        store: &dyn OnlineStore,
        options: &MaterializeOptions,
        progress: &dyn Fn(MaterializeProgress),
        mode: RunMode,
    ) -> Result<Vec<ViewReport>> {
        if let Some(start) = options.start
            && start > options.end
        {
            return Err(Error::StartAfterEnd {
                start,
                end: options.end,
            });
        }
        let defs = self.applied()?;
        let names = online_views(&defs, &options.views)?;
        let registry = self.registry();
        let store_ref = StoreRef {
            identity: store.identity(),
            instance: store.instance_id().await.map_err(online_error)?,
        };
        // A damaged watermark file stops an incremental run (it cannot know where to start);
        // a full run needs none, and replaces the file.
        let marks = match registry.watermarks(&store_ref) {
            Ok(marks) => marks,
            Err(e) if !options.incremental => {
                progress(MaterializeProgress::Warning(e.to_string()));
                BTreeMap::new()
            }
            Err(e) => return Err(e.into()),
        };
        let ctx = skewless_engine::session();
        let mut reports = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let started = Instant::now();
            progress(MaterializeProgress::Computing {
                view: name.clone(),
                index,
                views: names.len(),
            });
            let view = &defs.feature_views[name];
            let run = ViewRun {
                ctx: &ctx,
                defs: &defs,
                view,
                store,
                store_ref: &store_ref,
                watermark: marks.get(name),
                options,
                progress,
                mode,
            };
            let report = match self.materialize_view(run).await {
                Ok(report) => report,
                Err(e) => {
                    let version = skewless_defs::version::versions(&defs)
                        .feature_views
                        .remove(name)
                        .unwrap_or_default();
                    // Where this run started for the view, as a successful report would say.
                    let start = if options.incremental {
                        marks.get(name).filter(|w| w.version == version).map(|w| w.end)
                    } else {
                        options.start
                    };
                    ViewReport {
                        view: name.clone(),
                        version,
                        start,
                        end: options.end,
                        error: Some(e.to_string()),
                        ..ViewReport::default()
                    }
                }
            };
            let report = ViewReport {
                seconds: started.elapsed().as_secs_f64(),
                ..report
            };
            progress(MaterializeProgress::Done(report.clone()));
            reports.push(report);
        }
        store.purge_expired().await.map_err(online_error)?;
        Ok(reports)
    }

    async fn materialize_view(&self, run: ViewRun<'_>) -> Result<ViewReport> {
        let ViewRun {
            ctx,
            defs,
            view,
            store,
            store_ref,
            watermark,
            options,
            progress,
            mode,
        } = run;
        let name = &view.name;
        let layout = ViewLayout::new(defs, view).map_err(online_error)?;
        let watermark = watermark.filter(|w| w.version == layout.version);
        let (start, note) = if options.incremental {
            match watermark {
                Some(w) => (Some(w.end), None),
                None => (
                    None,
                    Some(format!(
                        "no watermark for version {} in {}: a full run from the beginning",
                        layout.version,
                        store.describe()
                    )),
                ),
            }
        } else {
            (options.start, None)
        };
        // Replayed in availability order, an `as_of: event` view knows at `end` only the rows
        // that had landed by then: the same rows `as_of: available` admits.
        let has_created = defs.sources.get(&view.source).is_some_and(|s| s.created.is_some());
        let replayed;
        let rows_view =
            if mode == RunMode::AvailabilityReplay && has_created && view.as_of == skewless_defs::AsOf::Event {
                replayed = skewless_defs::FeatureView {
                    as_of: skewless_defs::AsOf::Available,
                    ..view.clone()
                };
                &replayed
            } else {
                view
            };
        if view.is_aggregated() {
            let report = self
                .materialize_tiles(ctx, defs, rows_view, &layout, store, options.end, start, note)
                .await?;
            // The tiles now hold every event up to `end`, whatever the run started from.
            if mode == RunMode::Recorded {
                self.record_watermark(store_ref, name, &layout, options.end)?;
            }
            return Ok(report);
        }
        let window = Window {
            start,
            end: options.end,
            record_quarantine: mode == RunMode::Recorded,
        };
        // The join sends its rows batch by batch as its partitions finish; they are written
        // while the rest is still being joined.
        let (joined, batches) = futures::channel::mpsc::channel(JOINED_BATCHES_AHEAD);
        let compute = async {
            latest(ctx, defs, &self.root, rows_view, window, joined)
                .await
                .map_err(Error::from)
        };

        let expire_after = view.ttl.map(|ttl| Duration::from_secs(ttl.seconds()) + EXPIRY_MARGIN);
        let keys = layout.keys.len();
        let layout_ref = &layout;
        let write = async move {
            let mut written = skewless_online::WriteSummary::default();
            let mut done = 0;
            let mut newest: Option<i64> = None;
            // Chunks are encoded and written with a few writes in flight, so the store is
            // never idle waiting for the next chunk (on Redis: the pipeline never drains).
            let chunks = batches.flat_map(|batch: arrow::array::RecordBatch| {
                newest = newest.max(newest_event_time(&batch, keys));
                let slices: Vec<_> = (0..batch.num_rows())
                    .step_by(ROWS_PER_WRITE)
                    .map(|offset| batch.slice(offset, ROWS_PER_WRITE.min(batch.num_rows() - offset)))
                    .collect();
                futures::stream::iter(slices)
            });
            let mut writes = chunks
                .map(|chunk| async move {
                    let entries = layout_ref.encode_batch(&chunk).map_err(online_error)?;
                    let summary = store.write(entries, expire_after).await.map_err(online_error)?;
                    Ok::<_, Error>((chunk.num_rows(), summary))
                })
                .buffered(WRITES_IN_FLIGHT);
            while let Some(result) = writes.next().await {
                let (len, summary) = result?;
                written += summary;
                done += len;
                progress(MaterializeProgress::Writing {
                    view: name.clone(),
                    done,
                });
            }
            drop(writes);
            Ok::<_, Error>((written, newest))
        };
        let (rows, (written, newest)) = futures::try_join!(compute, write)?;

        // The view's freshness record: the newest event time in the store (newer wins).
        if let Some(newest) = newest {
            let record = vec![(layout.freshness_key(), layout.freshness_value(newest))];
            store.write(record, None).await.map_err(online_error)?;
        }
        // Coverage is contiguous from the beginning only if this run started there or
        // at (or before) the old watermark.
        let contiguous = match (start, watermark) {
            (None, _) => true,
            (Some(s), Some(w)) => s <= w.end,
            (Some(_), None) => false,
        };
        if mode == RunMode::Recorded && contiguous && watermark.is_none_or(|w| w.end < options.end) {
            self.record_watermark(store_ref, name, &layout, options.end)?;
        }
        Ok(ViewReport {
            view: name.clone(),
            version: layout.version.clone(),
            start,
            end: options.end,
            rows_read: rows.rows_read,
            rows_quarantined: rows.quarantined,
            rows_breaking_contracts: rows.broke_contracts.rows,
            quarantine_file: rows.broke_contracts.file.map(|f| f.display().to_string()),
            keys: rows.keys,
            keys_with_value: rows.winners,
            keys_written: written.written,
            writes_skipped_not_newer: written.skipped,
            seconds: 0.0,
            note,
            error: None,
        })
    }
}

impl Project {
    /// Records that `view`'s values (of the layout's version) in the store cover up to `end`.
    fn record_watermark(&self, store_ref: &StoreRef, view: &str, layout: &ViewLayout, end: i64) -> Result<()> {
        self.registry().set_watermark(
            store_ref,
            view,
            Watermark {
                version: layout.version.clone(),
                end,
                updated_at: Utc::now(),
            },
        )?;
        Ok(())
    }

    /// An aggregated view: every entity's tiles at `end`, from all its events (batch files and
    /// push log), replacing what the store held ([`skewless_online::tiles`]). Each run rebuilds
    /// the tiles whole (an incremental run is a full one), so its watermark is simply `end`.
    #[allow(clippy::too_many_arguments)]
    async fn materialize_tiles(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        defs: &Definitions,
        view: &skewless_defs::FeatureView,
        layout: &ViewLayout,
        store: &dyn OnlineStore,
        end: i64,
        start: Option<i64>,
        note: Option<String>,
    ) -> Result<ViewReport> {
        let events = skewless_offline::aggregate::events_until(ctx, defs, &self.root, view, end).await?;
        let now_ms = Utc::now().timestamp_millis().max(0) as u64;
        let writes = skewless_online::tiles::writes(
            layout,
            &events,
            Some(end),
            skewless_online::tiles::Records::Replace,
            now_ms,
        )
        .map_err(online_error)?;
        let keys = writes.len() as u64;
        let newest = newest_event_time(&events, layout.keys.len()).filter(|&t| t <= end);
        let mut chunks = writes;
        while !chunks.is_empty() {
            let rest = chunks.split_off(chunks.len().min(TILE_WRITES_PER_CALL));
            store.write_tiles(chunks).await.map_err(online_error)?;
            chunks = rest;
        }
        if let Some(newest) = newest {
            let record = vec![(layout.freshness_key(), layout.freshness_value(newest))];
            store.write(record, None).await.map_err(online_error)?;
        }
        Ok(ViewReport {
            view: view.name.clone(),
            version: layout.version.clone(),
            start,
            end,
            rows_read: events.num_rows(),
            rows_quarantined: 0,
            rows_breaking_contracts: 0,
            quarantine_file: None,
            keys: keys as usize,
            keys_with_value: keys as usize,
            keys_written: keys,
            writes_skipped_not_newer: 0,
            seconds: 0.0,
            note: note.or_else(|| start.map(|_| "aggregated view: its tiles are rebuilt whole".to_string())),
            error: None,
        })
    }
}

/// Entities per `write_tiles` call when materializing an aggregated view.
const TILE_WRITES_PER_CALL: usize = 1024;

/// The newest event time of a batch whose event times are column `at` (after the keys).
fn newest_event_time(batch: &arrow::array::RecordBatch, at: usize) -> Option<i64> {
    batch
        .column(at)
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .and_then(arrow::compute::max)
}

/// The online views to materialize, checked: named ones must exist and be online.
fn online_views(defs: &Definitions, requested: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(defs
            .feature_views
            .values()
            .filter(|v| v.online)
            .map(|v| v.name.clone())
            .collect());
    }
    requested
        .iter()
        .map(|name| match defs.feature_views.get(name) {
            Some(v) if v.online => Ok(name.clone()),
            Some(_) => Err(Error::NotOnline { view: name.clone() }),
            None => Err(unknown_view(defs, name)),
        })
        .collect()
}

fn unknown_view(defs: &Definitions, name: &str) -> Error {
    let hint = skewless_defs::did_you_mean(name, defs.feature_views.keys().map(String::as_str));
    Error::Unknown {
        kind: skewless_offline::Kind::FeatureView,
        name: name.to_string(),
        near: hint,
    }
}

fn online_error(e: skewless_online::Error) -> Error {
    Error::Online(e)
}

pub use skewless_serving::json::{InstantJson, ScalarJson, format_instant, parse_instant, scalar_to_json};

/// A lookup as JSON, the document `skewless get --json` prints and Python's
/// `get_online_features` reads: per entity its fields and, per `view:feature`, the value,
/// status and event time; the instant, the versions served and the store's counts.
pub fn lookup_json(found: &skewless_serving::core::GetOutput) -> serde_json::Value {
    let results: Vec<serde_json::Value> = found
        .entities
        .iter()
        .zip(&found.rows)
        .map(|(entity, row)| {
            let features: serde_json::Map<String, serde_json::Value> = found
                .features
                .iter()
                .zip(row)
                .map(|(f, v)| {
                    (
                        format!("{}:{}", f.view, f.feature),
                        serde_json::json!({
                            "value": scalar_to_json(&v.value),
                            "status": v.status.name(),
                            "event_timestamp": v.event_timestamp.map(format_instant),
                        }),
                    )
                })
                .collect();
            serde_json::json!({
                "entity": entity.iter().map(|(k, v)| (k.clone(), scalar_to_json(v))).collect::<serde_json::Map<_, _>>(),
                "features": features,
            })
        })
        .collect();
    serde_json::json!({
        "at": format_instant(found.at),
        "results": results,
        "versions": &*found.served,
        "stats": {
            "keys_read": found.stats.keys_read,
            "other_version": found.stats.other_version,
            "corrupt": found.stats.corrupt,
        },
    })
}
