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
use serde::Serialize;
use skewless_defs::Definitions;
use skewless_offline::latest::{Window, latest};
use skewless_online::{OnlineStore, ViewLayout};

use crate::registry::{StoreRef, Watermark};
use crate::{Error, Project, Result};

/// Keys live this much longer than their view's ttl, counted from the write.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);
/// Rows encoded and written per store call.
const ROWS_PER_WRITE: usize = 8192;

#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// Only rows that became candidates at or after `start` (µs); `None`: from the beginning.
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
    Writing {
        view: String,
        done: usize,
        total: usize,
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
        if let Some(start) = options.start
            && start > options.end
        {
            return Err(Error::Request(format!(
                "--start {} is after --end {}: nothing could be materialized",
                format_instant(start),
                format_instant(options.end)
            )));
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
            Err(e) => return Err(e),
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
        let rows = latest(
            ctx,
            defs,
            &self.root,
            view,
            Window {
                start,
                end: options.end,
            },
        )
        .await?;

        let expire_after = view.ttl.map(|ttl| Duration::from_secs(ttl.seconds()) + EXPIRY_MARGIN);
        let mut written = skewless_online::WriteSummary::default();
        let mut done = 0;
        let mut newest: Option<i64> = None;
        for batch in &rows.batches {
            newest = newest.max(newest_event_time(batch, layout.keys.len()));
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = ROWS_PER_WRITE.min(batch.num_rows() - offset);
                let entries = layout.encode_batch(&batch.slice(offset, len)).map_err(online_error)?;
                written += store.write(entries, expire_after).await.map_err(online_error)?;
                offset += len;
                done += len;
                progress(MaterializeProgress::Writing {
                    view: name.clone(),
                    done,
                    total: rows.winners,
                });
            }
        }
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
        if contiguous && watermark.is_none_or(|w| w.end < options.end) {
            self.registry().set_watermark(
                store_ref,
                name,
                Watermark {
                    version: layout.version.clone(),
                    end: options.end,
                    updated_at: Utc::now(),
                },
            )?;
        }
        Ok(ViewReport {
            view: name.clone(),
            version: layout.version.clone(),
            start,
            end: options.end,
            rows_read: rows.rows_read,
            rows_quarantined: rows.quarantined,
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
            Some(_) => Err(Error::Request(format!(
                "feature view `{name}` is not online (`online: false`)"
            ))),
            None => Err(unknown_view(defs, name)),
        })
        .collect()
}

fn unknown_view(defs: &Definitions, name: &str) -> Error {
    let hint = skewless_defs::did_you_mean(name, defs.feature_views.keys().map(String::as_str));
    Error::Request(format!(
        "unknown feature view `{name}`{}",
        hint.map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default()
    ))
}

fn online_error(e: skewless_online::Error) -> Error {
    Error::Online(e)
}

/// Reads an instant: `now`, RFC 3339 (`2025-01-01T12:00:00Z`, any offset), a naive
/// date-time (UTC), or a date (midnight UTC). Returns µs since the epoch.
pub fn parse_instant(text: &str) -> std::result::Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(Utc::now().timestamp_micros());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_micros());
    }
    Err(format!(
        "`{text}` is not an instant: use `now`, RFC 3339 (2025-01-01T12:00:00Z), or a date (2025-01-01)"
    ))
}

/// A value as JSON, the one convention of every JSON skewless writes: numbers as numbers,
/// except the non-finite floats JSON cannot hold, which are the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"` (as in the protobuf JSON mapping); null as null;
/// timestamps as RFC 3339 UTC strings.
pub fn scalar_to_json(value: &skewless_online::Scalar) -> serde_json::Value {
    serde_json::to_value(ScalarJson(value)).unwrap_or(serde_json::Value::Null)
}

/// A value serialized as [`scalar_to_json`] writes it, without building a JSON tree: for
/// answers written straight to bytes (the feature server).
#[derive(Debug, Clone, Copy)]
pub struct ScalarJson<'a>(pub &'a skewless_online::Scalar);

impl serde::Serialize for ScalarJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use skewless_online::Scalar;
        let float = |x: f64, serializer: S| {
            if x.is_finite() {
                serializer.serialize_f64(x)
            } else if x.is_nan() {
                serializer.serialize_str("NaN")
            } else if x > 0.0 {
                serializer.serialize_str("Infinity")
            } else {
                serializer.serialize_str("-Infinity")
            }
        };
        match self.0 {
            Scalar::Null => serializer.serialize_unit(),
            Scalar::Bool(b) => serializer.serialize_bool(*b),
            Scalar::Int32(i) => serializer.serialize_i32(*i),
            Scalar::Int64(i) => serializer.serialize_i64(*i),
            // Through its shortest decimal form, so 0.5379f32 prints as 0.5379, not 0.537899971.
            Scalar::Float32(x) => float(x.to_string().parse().unwrap_or(f64::from(*x)), serializer),
            Scalar::Float64(x) => float(*x, serializer),
            Scalar::String(s) => serializer.serialize_str(s),
            Scalar::Timestamp(t) => serializer.serialize_str(&format_instant(*t)),
        }
    }
}

/// µs since the epoch as RFC 3339 UTC, for output.
pub fn format_instant(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || format!("{micros}µs"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Ok(1_000_000));
        assert_eq!(parse_instant("1970-01-01T00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_instant("1970-01-02"), Ok(86_400_000_000));
        assert!(parse_instant("yesterday").is_err());
        assert_eq!(format_instant(1_500_000), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn json_convention_for_non_finite_floats() {
        use serde_json::json;
        use skewless_online::Scalar;
        assert_eq!(scalar_to_json(&Scalar::Float64(f64::NAN)), json!("NaN"));
        assert_eq!(scalar_to_json(&Scalar::Float32(f32::INFINITY)), json!("Infinity"));
        assert_eq!(scalar_to_json(&Scalar::Float64(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(scalar_to_json(&Scalar::Float32(0.5379)), json!(0.5379));
        assert_eq!(scalar_to_json(&Scalar::Null), json!(null));
    }
}
