//! The online path through the facade: materialization (offline rows → online store) and
//! lookups (`get`).
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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use skewless_defs::{Definitions, KeyType, ResolvedFeature};
use skewless_offline::latest::{Window, latest};
use skewless_online::{Entity, FeatureValue, KeyValue, LookupStats, OnlineStore, Selection, ViewLayout, lookup};

use crate::registry::Watermark;
use crate::training::{FeatureSelection, resolve_selection};
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

/// What materializing one view did.
#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone)]
pub enum MaterializeProgress {
    Computing { view: String, index: usize, views: usize },
    Writing { view: String, done: usize, total: usize },
    Done(ViewReport),
}

impl Project {
    /// The definitions in force: the latest applied version.
    pub fn applied(&self) -> Result<Definitions> {
        self.registry()
            .latest()?
            .map(|r| r.definitions)
            .ok_or_else(|| Error::Request("nothing is applied yet: run `skewless apply` first".into()))
    }

    /// Writes each online view's values at `options.end` into `store`.
    pub async fn materialize(
        &self,
        store: &dyn OnlineStore,
        options: &MaterializeOptions,
        progress: &dyn Fn(MaterializeProgress),
    ) -> Result<Vec<ViewReport>> {
        let defs = self.applied()?;
        let names = online_views(&defs, &options.views)?;
        let registry = self.registry();
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
            let layout = ViewLayout::new(&defs, view).map_err(online_error)?;
            let watermark = registry
                .watermarks()?
                .remove(name)
                .filter(|w| w.version == layout.version);
            let start = if options.incremental {
                watermark.as_ref().map(|w| w.end)
            } else {
                options.start
            };
            let rows = latest(
                &ctx,
                &defs,
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
            for batch in &rows.batches {
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
            // Coverage is contiguous from the beginning only if this run started there or
            // at (or before) the old watermark.
            let contiguous = match (start, &watermark) {
                (None, _) => true,
                (Some(s), Some(w)) => s <= w.end,
                (Some(_), None) => false,
            };
            if contiguous && watermark.as_ref().is_none_or(|w| w.end < options.end) {
                registry.set_watermark(
                    name,
                    Watermark {
                        version: layout.version.clone(),
                        end: options.end,
                        updated_at: Utc::now(),
                    },
                )?;
            }
            let report = ViewReport {
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
                seconds: started.elapsed().as_secs_f64(),
            };
            progress(MaterializeProgress::Done(report.clone()));
            reports.push(report);
        }
        Ok(reports)
    }

    /// Looks features up for entity keys given as `name=value` text, as of `at` (µs).
    pub async fn get(
        &self,
        store: &dyn OnlineStore,
        selection: &FeatureSelection,
        entities: &[Vec<(String, String)>],
        at: i64,
    ) -> Result<GetOutput> {
        let defs = self.applied()?;
        let features = resolve_selection(&defs, selection)?;
        let (selections, positions) = selections(&defs, &features)?;
        let key_types = key_types(&selections);
        let entities = entities
            .iter()
            .enumerate()
            .map(|(i, pairs)| parse_entity(i, pairs, &key_types))
            .collect::<Result<Vec<_>>>()?;
        let found = lookup(store, &selections, &entities, at).await.map_err(online_error)?;
        // Back from selection order to request order.
        let rows = found
            .rows
            .into_iter()
            .map(|row| positions.iter().map(|&p| row[p].clone()).collect())
            .collect();
        let entities = entities
            .into_iter()
            .map(|e| {
                let mut pairs: Vec<(String, KeyValue)> = e.into_iter().collect();
                pairs.sort();
                pairs
            })
            .collect();
        Ok(GetOutput {
            features,
            entities,
            rows,
            stats: found.stats,
            at,
        })
    }
}

/// The answer to [`Project::get`]: per entity, one value per requested feature.
#[derive(Debug, Clone)]
pub struct GetOutput {
    pub features: Vec<ResolvedFeature>,
    pub entities: Vec<Vec<(String, KeyValue)>>,
    pub rows: Vec<Vec<FeatureValue>>,
    pub stats: LookupStats,
    pub at: i64,
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

/// One selection per view, and for each requested feature its position in selection order.
fn selections(defs: &Definitions, features: &[ResolvedFeature]) -> Result<(Vec<Selection>, Vec<usize>)> {
    let mut by_view: BTreeMap<&str, (Arc<ViewLayout>, Vec<usize>)> = BTreeMap::new();
    for f in features {
        if f.on_demand {
            return Err(Error::Request(format!(
                "`{}:{}` is an on-demand feature, computed per request from request fields; `get` serves feature views",
                f.view, f.feature
            )));
        }
        let view = defs
            .feature_views
            .get(&f.view)
            .ok_or_else(|| unknown_view(defs, &f.view))?;
        if !view.online {
            return Err(Error::Request(format!(
                "feature view `{}` is not online (`online: false`): nothing is materialized for it",
                f.view
            )));
        }
        if !by_view.contains_key(f.view.as_str()) {
            let layout = Arc::new(ViewLayout::new(defs, view).map_err(online_error)?);
            by_view.insert(&f.view, (layout, Vec::new()));
        }
        let index = view
            .features
            .iter()
            .position(|x| x.name == f.feature)
            .ok_or_else(|| Error::Internal(format!("resolved feature `{}:{}` is missing", f.view, f.feature)))?;
        if let Some((_, indices)) = by_view.get_mut(f.view.as_str()) {
            indices.push(index);
        }
    }
    let selections: Vec<Selection> = by_view
        .into_values()
        .map(|(layout, features)| Selection { layout, features })
        .collect();
    // Selection order lists each view's features together; map request order onto it.
    let mut order: Vec<(String, String)> = Vec::new();
    for s in &selections {
        for &i in &s.features {
            order.push((s.layout.view.clone(), s.layout.features[i].0.clone()));
        }
    }
    let positions = features
        .iter()
        .map(|f| {
            order
                .iter()
                .position(|(v, n)| *v == f.view && *n == f.feature)
                .ok_or_else(|| Error::Internal(format!("`{}:{}` lost in selection", f.view, f.feature)))
        })
        .collect::<Result<_>>()?;
    Ok((selections, positions))
}

fn key_types(selections: &[Selection]) -> BTreeMap<String, KeyType> {
    selections.iter().flat_map(|s| s.layout.keys.iter().cloned()).collect()
}

fn parse_entity(index: usize, pairs: &[(String, String)], key_types: &BTreeMap<String, KeyType>) -> Result<Entity> {
    let mut entity: Entity = HashMap::new();
    for (name, text) in pairs {
        let ty = key_types.get(name).ok_or_else(|| {
            Error::Request(format!(
                "entity {}: `{name}` is not a join key of the requested views (their keys: {})",
                index + 1,
                key_types.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let value =
            KeyValue::parse(text, *ty).map_err(|e| Error::Request(format!("entity {}: `{name}`: {e}", index + 1)))?;
        entity.insert(name.clone(), value);
    }
    Ok(entity)
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

/// A looked-up value as JSON: numbers as numbers, except NaN and ±inf, which JSON cannot
/// hold, as the strings `"NaN"`, `"inf"`, `"-inf"`; timestamps as RFC 3339 UTC.
pub fn scalar_to_json(value: &skewless_online::Scalar) -> serde_json::Value {
    use serde_json::Value;
    use skewless_online::Scalar;
    let float = |x: f64| {
        serde_json::Number::from_f64(x).map_or_else(
            || {
                Value::String(
                    if x.is_nan() {
                        "NaN"
                    } else if x > 0.0 {
                        "inf"
                    } else {
                        "-inf"
                    }
                    .into(),
                )
            },
            Value::Number,
        )
    };
    match value {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int32(i) => Value::from(*i),
        Scalar::Int64(i) => Value::from(*i),
        Scalar::Float32(x) => float(f64::from(*x)),
        Scalar::Float64(x) => float(*x),
        Scalar::String(s) => Value::String(s.clone()),
        Scalar::Timestamp(t) => Value::String(format_instant(*t)),
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
}
