//! Feast's "write to the online store" for one feature view, made a push.
//!
//! Feast's SDK writes a view's rows straight into its online store (`write_to_online_store`,
//! and `push` through a remote online store, which sends one such write per view). Written
//! only online, a value would be served while no training set can see it: skew by design.
//! skewless takes the write as a push to the view's `push: true` source instead, so the rows
//! are logged first, checked against the contracts, and written online newer-wins, and a
//! later training set holds them.
//!
//! The write carries the view's columns as Feast names them: its join keys, its features,
//! `event_timestamp` and `created` (the availability time, or null). They become the
//! source's columns: a feature is the source column it reads (`expr` absent or a bare
//! column), `event_timestamp` the source's timestamp column and `created` its availability
//! column (dropped when the source has none; a null one is the ingestion instant). A write
//! that cannot be a push of whole source rows is refused, naming why
//! ([`WriteRefusal`]): its view reads a source that takes no pushes, is aggregated, or has a
//! computed feature; or its source feeds another view that reads columns the write does not
//! carry (those would be pushed as nulls).
//!
//! Each write's push id is its content ([`push_id`]): Feast sends a push source's rows once
//! per view reading it, and retries a write that got a 5xx; the same rows are logged once.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use skewless_defs::{Definitions, FeatureView};

use crate::core::RequestError;

/// Why a write to a feature view cannot be taken as a push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefusal {
    #[error(
        "it reads source `{source_name}`, which takes no pushes: a value written only online would be served while no \
         training set sees it; declare `push: true` on `{source_name}` and apply, and writes to this view are logged like pushes"
    )]
    NotPushSource { source_name: String },
    #[error(
        "it is aggregated: its values are computed from events; push the events to source `{source_name}` instead \
         (POST /push)"
    )]
    Aggregated { source_name: String },
    #[error(
        "its feature `{feature}` is computed (`{expr}`), so a value for it cannot be written; push the source's \
         columns to `{source_name}` instead (POST /push)"
    )]
    Computed {
        feature: String,
        expr: String,
        source_name: String,
    },
    #[error(
        "its source `{source_name}` also feeds feature view `{other}`, which reads {} that this write does not carry: \
         they would be pushed as nulls; push whole rows to `{source_name}` instead (POST /push)",
        if columns.is_empty() { "computed columns".to_string() } else { format!("column(s) `{}`", columns.join("`, `")) }
    )]
    SharedSource {
        source_name: String,
        other: String,
        columns: Vec<String>,
    },
    #[error("two of its columns are the source's column `{column}` (a feature reading it, and the column itself)")]
    Twice { column: String },
}

/// Feast's column names of a write: the event time and the availability time.
const FEAST_EVENT_TIMESTAMP: &str = "event_timestamp";
const FEAST_CREATED: &str = "created";

/// The source column a feature reads as written, when it reads one plainly (no expression,
/// or an expression that is one column name).
fn plain_column(feature: &skewless_defs::Feature) -> Option<&str> {
    let expr = feature.expr_or_column().trim();
    let unquoted = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(expr);
    skewless_defs::is_name(unquoted).then_some(unquoted)
}

/// The push source and its columns for a write of `df` to feature view `view`: Feast's
/// names mapped to the source's ([`crate::view_write`]), or why it cannot be a push.
pub fn as_push(
    defs: &Definitions,
    view: &str,
    df: Map<String, Value>,
) -> Result<(String, Map<String, Value>), RequestError> {
    let fv = defs
        .feature_views
        .get(view)
        .ok_or_else(|| RequestError::UnknownView { name: view.to_string() })?;
    let refuse = |reason: WriteRefusal| RequestError::ViewNotWritable {
        view: view.to_string(),
        reason,
    };
    let source = defs.sources.get(&fv.source).ok_or_else(|| {
        RequestError::Internal(format!(
            "feature view `{view}` reads source `{}`, which is not defined",
            fv.source
        ))
    })?;
    if !source.push {
        return Err(refuse(WriteRefusal::NotPushSource {
            source_name: source.name.clone(),
        }));
    }
    if fv.tile.is_some() {
        return Err(refuse(WriteRefusal::Aggregated {
            source_name: source.name.clone(),
        }));
    }
    let mut columns = Map::new();
    for (name, values) in df {
        let column = if name == FEAST_EVENT_TIMESTAMP {
            source.timestamp.clone()
        } else if name == FEAST_CREATED {
            match &source.created {
                Some(created) => created.clone(),
                None => continue,
            }
        } else if let Some(feature) = fv.features.iter().find(|f| f.name == name) {
            match plain_column(feature) {
                Some(column) => column.to_string(),
                None => {
                    return Err(refuse(WriteRefusal::Computed {
                        feature: name,
                        expr: feature.expr_or_column().to_string(),
                        source_name: source.name.clone(),
                    }));
                }
            }
        } else {
            // A join key, or a column the source will name as unknown.
            name
        };
        if columns.insert(column.clone(), values).is_some() {
            return Err(refuse(WriteRefusal::Twice { column }));
        }
    }
    // Every other view of the source reads only columns this write carries (or a null push
    // would overwrite its values).
    for other in defs
        .feature_views
        .values()
        .filter(|o| o.source == source.name && o.name != fv.name)
    {
        if let Some(missing) = missing_columns(other, &columns) {
            return Err(refuse(WriteRefusal::SharedSource {
                source_name: source.name.clone(),
                other: other.name.clone(),
                columns: missing,
            }));
        }
    }
    Ok((source.name.clone(), columns))
}

/// The push id of a write: `feast-write:` and the SHA-256 of the source and its columns in
/// name order. Equal rows give one id, so a repeat is a replay that appends nothing.
pub fn push_id(source: &str, columns: &Map<String, Value>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(source.as_bytes());
    let mut names: Vec<&String> = columns.keys().collect();
    names.sort();
    for name in names {
        hash.update([0]);
        hash.update(name.as_bytes());
        hash.update([0]);
        // The column's JSON goes into the hash as it is written (writing a value to a hash cannot fail).
        let _ = serde_json::to_writer(&mut hash, &columns[name]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("feast-write:{hex}")
}

/// The columns `view` reads that `columns` lacks: `None` when it lacks none; an empty list
/// when `view` computes a feature (its columns are not known by name here) or aggregates.
fn missing_columns(view: &FeatureView, columns: &Map<String, Value>) -> Option<Vec<String>> {
    if view.tile.is_some() {
        return Some(Vec::new());
    }
    let mut missing = BTreeSet::new();
    for feature in &view.features {
        match plain_column(feature) {
            Some(column) if columns.contains_key(column) => {}
            Some(column) => {
                missing.insert(column.to_string());
            }
            None => return Some(Vec::new()),
        }
    }
    (!missing.is_empty()).then(|| missing.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(extra_view: &str, push: bool) -> Definitions {
        let yaml = format!(
            "entities:\n  driver:\n    keys: {{ driver_id: int64 }}\nsources:\n  trips:\n    path: trips.csv\n    timestamp: ts\n    created: landed\n    push: {push}\nfeature_views:\n  last_fare:\n    entity: driver\n    source: trips\n    features:\n      fare: {{ type: float64 }}\n      km: {{ type: float64, expr: distance }}\n{extra_view}"
        );
        skewless_defs::load_texts(&[("defs.yaml".into(), yaml)]).unwrap()
    }

    fn reason_of(result: Result<(String, Map<String, Value>), RequestError>) -> WriteRefusal {
        match result {
            Err(RequestError::ViewNotWritable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    fn df(json: Value) -> Map<String, Value> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn feast_columns_become_the_source_columns() {
        let defs = defs("", true);
        let (source, columns) = as_push(
            &defs,
            "last_fare",
            df(serde_json::json!({
                "driver_id": [1], "fare": [2.5], "km": [3.0],
                "event_timestamp": ["2025-01-01T00:00:00"], "created": [null]
            })),
        )
        .unwrap();
        assert_eq!(source, "trips");
        assert_eq!(
            columns.keys().collect::<Vec<_>>(),
            ["distance", "driver_id", "fare", "landed", "ts"]
        );
        assert_eq!(columns["distance"], serde_json::json!([3.0]));
    }

    #[test]
    fn a_writes_id_is_its_content() {
        let a = df(serde_json::json!({"driver_id": [1], "fare": [2.5]}));
        let b = df(serde_json::json!({"fare": [2.5], "driver_id": [1]}));
        let c = df(serde_json::json!({"driver_id": [1], "fare": [2.25]}));
        assert_eq!(push_id("trips", &a), push_id("trips", &b));
        assert_ne!(push_id("trips", &a), push_id("trips", &c));
        assert_ne!(push_id("trips", &a), push_id("rides", &a));
        assert!(push_id("trips", &a).len() <= crate::push::MAX_PUSH_ID_BYTES);
    }

    #[test]
    fn writes_that_cannot_be_pushes_are_refused_naming_why() {
        let write = serde_json::json!({"driver_id": [1], "fare": [2.5], "km": [3.0], "event_timestamp": [0]});
        let reason = |defs: &Definitions, view: &str| reason_of(as_push(defs, view, df(write.clone())));
        assert_eq!(
            reason(&defs("", false), "last_fare"),
            WriteRefusal::NotPushSource {
                source_name: "trips".into()
            }
        );
        let computed = defs(
            "  rated:\n    entity: driver\n    source: trips\n    features:\n      rated: { type: bool, expr: \"rating IS NOT NULL\" }\n",
            true,
        );
        let rated = as_push(
            &computed,
            "rated",
            df(serde_json::json!({"driver_id": [1], "rated": [true], "event_timestamp": [0]})),
        );
        assert!(
            matches!(
                rated,
                Err(RequestError::ViewNotWritable { reason: WriteRefusal::Computed { ref feature, .. }, .. })
                    if feature == "rated"
            ),
            "{rated:?}"
        );
        // `last_fare` shares its source with `rated`, whose columns are computed.
        let shared = reason(&computed, "last_fare");
        assert!(
            matches!(shared, WriteRefusal::SharedSource { ref other, .. } if other == "rated"),
            "{shared:?}"
        );
        let tips = defs(
            "  tips:\n    entity: driver\n    source: trips\n    features:\n      tip: { type: float64 }\n",
            true,
        );
        assert_eq!(
            reason(&tips, "last_fare").to_string(),
            "its source `trips` also feeds feature view `tips`, which reads column(s) `tip` that this write does not \
             carry: they would be pushed as nulls; push whole rows to `trips` instead (POST /push)"
        );
        assert!(matches!(
            as_push(&tips, "nope", df(write.clone())),
            Err(RequestError::UnknownView { .. })
        ));
        // `km` reads `distance`: a write giving both says one column twice.
        let twice = serde_json::json!({"driver_id": [1], "km": [3.0], "distance": [4.0], "fare": [1.0], "event_timestamp": [0]});
        assert_eq!(
            reason_of(as_push(&defs("", true), "last_fare", df(twice))),
            WriteRefusal::Twice {
                column: "distance".into()
            }
        );
    }
}
