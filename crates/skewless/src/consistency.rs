//! Consistency from production: the values the server logged (see [`crate::served_log`]),
//! recomputed by the training-set path at the instants they were served, compared, and each
//! difference given its likeliest cause. What Chronon calls online/offline consistency, but
//! explained per feature rather than only counted.
//!
//! The log's entities (join keys and request fields) at their serving instants become a spine;
//! one training set over every logged feature recomputes them; each logged value is compared
//! by its JSON text (floats print in their shortest round-trip form, so equal text is equal
//! bits), and a logged `NOT_FOUND` or `OUTSIDE_MAX_AGE` must be a null offline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;
use serde_json::{Map, Value};
use skewless_online::values::scalar_at;

use crate::online::ScalarJson;
use crate::training::{FeatureSelection, TrainingSetOptions, write_parquet};
use crate::{Error, Project, Result};

/// Per feature: what was compared and why values differ.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FeatureConsistency {
    pub values: usize,
    pub mismatches: usize,
    /// Mismatches by likeliest cause.
    pub causes: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsistencyReport {
    /// Logged entity lookups (requests × sampled entities).
    pub lookups: usize,
    pub features: BTreeMap<String, FeatureConsistency>,
    /// Logged features no longer defined (not compared).
    pub undefined: BTreeSet<String>,
}

impl ConsistencyReport {
    pub fn mismatches(&self) -> usize {
        self.features.values().map(|f| f.mismatches).sum()
    }
}

/// One logged value.
struct Logged {
    lookup: usize,
    feature: String,
    value: String,
    status: String,
    versions: String,
}

impl Project {
    /// Recomputes the served log in `dir` offline and compares (see the module docs).
    pub async fn consistency(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        dir: &Path,
    ) -> Result<ConsistencyReport> {
        let defs = self.load()?;
        let files = crate::served_log::files(dir).map_err(|e| Error::ServedLog {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        // Lookups (request, entity, at) in first-seen order, and the values logged for each.
        let mut lookups: Vec<(String, i64)> = Vec::new();
        let mut index: HashMap<(u64, String, i64), usize> = HashMap::new();
        let mut logged: Vec<Logged> = Vec::new();
        for file in &files {
            let read = || -> std::result::Result<Vec<RecordBatch>, String> {
                let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.build())
                    .map_err(|e| e.to_string())?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())
            };
            let batches = read().map_err(|detail| Error::ServedLog {
                path: file.clone(),
                detail,
            })?;
            for batch in batches {
                let text = |name: &str| batch.column_by_name(name).map(|c| c.as_string::<i32>().clone());
                let (Some(entity), Some(feature), Some(value), Some(status), Some(versions)) = (
                    text("entity"),
                    text("feature"),
                    text("value"),
                    text("status"),
                    text("versions"),
                ) else {
                    return Err(Error::ServedLog {
                        path: file.clone(),
                        detail: "not a served-log file".into(),
                    });
                };
                let request = batch.column(0).as_primitive::<arrow::datatypes::UInt64Type>();
                let at = batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                for r in 0..batch.num_rows() {
                    let key = (request.value(r), entity.value(r).to_string(), at.value(r));
                    let lookup = *index.entry(key).or_insert_with(|| {
                        lookups.push((entity.value(r).to_string(), at.value(r)));
                        lookups.len() - 1
                    });
                    logged.push(Logged {
                        lookup,
                        feature: feature.value(r).to_string(),
                        value: value.value(r).to_string(),
                        status: status.value(r).to_string(),
                        versions: versions.value(r).to_string(),
                    });
                }
            }
        }
        let mut report = ConsistencyReport {
            lookups: lookups.len(),
            ..ConsistencyReport::default()
        };
        if lookups.is_empty() {
            return Ok(report);
        }
        // Features still defined, in a fixed order.
        let mut features: Vec<String> = logged
            .iter()
            .map(|l| l.feature.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        features.retain(|f| {
            let defined =
                crate::training::resolve_selection(&defs, &FeatureSelection::Features(vec![f.clone()])).is_ok();
            if !defined {
                report.undefined.insert(f.clone());
            }
            defined
        });
        if features.is_empty() {
            return Ok(report);
        }

        let spine = spine(&defs, dir, &lookups)?;
        let work = tempfile::tempdir().map_err(|e| Error::Write {
            path: std::env::temp_dir(),
            message: format!("cannot create a temporary directory: {e}"),
        })?;
        let spine_path = work.path().join("spine.parquet");
        write_parquet(&spine, &spine_path)?;
        let options = TrainingSetOptions {
            spine: spine_path.into(),
            selection: FeatureSelection::Features(features.clone()),
            timestamp_column: "served_at".into(),
            full_names: true,
        };
        let offline = self.training_set(ctx, &options).await?;
        let first = spine.num_columns();
        let column_of: HashMap<&str, &ArrayRef> = features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_str(), offline.batch.column(first + i)))
            .collect();
        let applied = self.applied().ok().map(|d| skewless_defs::version::versions(&d));
        for l in &logged {
            let Some(column) = column_of.get(l.feature.as_str()) else {
                continue;
            };
            let want = scalar_at(column.as_ref(), l.lookup).map_err(Error::Online)?;
            let want_text = serde_json::to_string(&ScalarJson(&want)).unwrap_or_default();
            let tally = report.features.entry(l.feature.clone()).or_default();
            tally.values += 1;
            let present = l.status == "PRESENT";
            if (present && want_text == l.value) || (!present && want_text == "null") {
                continue;
            }
            tally.mismatches += 1;
            let view = l.feature.split(':').next().unwrap_or_default();
            let served_version = serde_json::from_str::<Value>(&l.versions)
                .ok()
                .and_then(|v| v["views"][view].as_str().map(str::to_string));
            let current = applied.as_ref().and_then(|a| {
                a.feature_views
                    .get(view)
                    .or_else(|| a.on_demand_views.get(view))
                    .cloned()
            });
            let cause = if served_version.is_some() && served_version != current {
                "definition version: served from another version of the view than is applied now"
            } else if !present {
                "online had no value: not yet materialized or pushed when served"
            } else if want_text == "null" {
                "the training set has no value: the row was not knowable at t offline (late, quarantined, or past the ttl)"
            } else {
                "values differ: the store held another row than the training set picks (a stale materialization, or a row that arrived late)"
            };
            *tally.causes.entry(cause.to_string()).or_default() += 1;
        }
        Ok(report)
    }
}

/// The lookups as a spine: each entity's fields, typed as the definitions type them (join
/// keys by their entities, request fields by their on-demand views), and `served_at`.
fn spine(defs: &skewless_defs::Definitions, dir: &Path, lookups: &[(String, i64)]) -> Result<RecordBatch> {
    let mut types: BTreeMap<String, DataType> = BTreeMap::new();
    for view in defs.feature_views.values() {
        for key in defs.view_keys(view) {
            types.insert(key.name.clone(), skewless_offline::source::key_arrow_type(key.ty));
        }
    }
    for view in defs.on_demand_views.values() {
        for field in &view.request {
            types.insert(field.name.clone(), skewless_engine::arrow_type(field.ty));
        }
    }
    let entities: Vec<Map<String, Value>> = lookups
        .iter()
        .map(|(e, _)| serde_json::from_str(e).unwrap_or_default())
        .collect();
    let names: BTreeSet<&String> = entities.iter().flat_map(|e| e.keys()).collect();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in names {
        let Some(ty) = types.get(name) else { continue };
        let values = entities.iter().map(|e| e.get(name).unwrap_or(&Value::Null));
        let column = crate::push_rows::json_column(name, ty, values).map_err(|e| Error::ServedLog {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        fields.push(Field::new(name, ty.clone(), true));
        columns.push(column);
    }
    fields.push(Field::new(
        "served_at",
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
        false,
    ));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(lookups.iter().map(|(_, t)| *t).collect::<Vec<_>>()).with_timezone("UTC"),
    ));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Internal(e.to_string()))
}
