//! Every case in `tests/cases/pit/` (the repository's copy of the public cases) as its own test:
//! `case.json` is turned into definitions, the training set is built from the case's CSV files, and
//! the result is compared with `expected.csv` as the cases' README says (instants, exact numbers,
//! empty = null).

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::DataType;
use chrono::DateTime;
use serde_json::Value;
use skewless_defs::{ResolvedFeature, load_texts};
use skewless_offline::source::{csv_schema_with_types, csv_time_type};
use skewless_offline::training_set::{Spine, TrainingSetRequest, build};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/pit")
}

/// Definitions for a case: one entity per view (keys typed as the spine's columns), one
/// source per view file.
fn definitions(case: &Path, spec: &Value) -> String {
    let spine_ts = spec["spine"]["timestamp_column"].as_str().unwrap();
    let spine_schema = csv_schema_with_types(
        &case.join(spec["spine"]["file"].as_str().unwrap()),
        &[(spine_ts, csv_time_type())],
    )
    .unwrap();
    let mut yaml = String::from("entities:\n");
    for view in spec["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        yaml.push_str(&format!("  {name}_entity:\n    keys:\n"));
        for key in view["keys"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            let ty = match spine_schema.field_with_name(key).unwrap().data_type() {
                DataType::Int64 => "int64",
                _ => "string",
            };
            yaml.push_str(&format!("      {key}: {ty}\n"));
        }
    }
    yaml.push_str("sources:\n");
    for view in spec["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        yaml.push_str(&format!(
            "  {name}_source:\n    path: {}\n    format: csv\n    timestamp: {}\n",
            view["file"].as_str().unwrap(),
            view["timestamp_column"].as_str().unwrap()
        ));
        if let Some(created) = view["created_column"].as_str() {
            yaml.push_str(&format!("    created: {created}\n"));
        }
    }
    yaml.push_str("feature_views:\n");
    for view in spec["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        yaml.push_str(&format!(
            "  {name}:\n    entity: {name}_entity\n    source: {name}_source\n"
        ));
        if let Some(ttl) = view["ttl_seconds"].as_u64() {
            yaml.push_str(&format!("    ttl: {ttl}s\n"));
        }
        yaml.push_str(&format!(
            "    as_of: {}\n    features:\n",
            view["as_of"].as_str().unwrap_or("event")
        ));
        for feature in view["features"].as_array().unwrap() {
            let feature = feature.as_str().unwrap();
            yaml.push_str(&format!(
                "      {feature}: {}\n",
                view["feature_types"][feature].as_str().unwrap()
            ));
        }
    }
    yaml
}

fn micros(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_micros()
}

fn cell(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no output column {column}"));
    if array.is_null(row) {
        return None;
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        return Some(a.value(row).to_string());
    }
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return Some(format!("{:?}", a.value(row)));
    }
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return Some(a.value(row).to_string());
    }
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Some(a.value(row).to_string());
    }
    panic!("column {column} has unexpected type {}", array.data_type())
}

/// The expected cell in the same rendering as [`cell`].
fn expected_cell(text: &str, ty: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    Some(match ty {
        "timestamp" => micros(text).to_string(),
        "float64" => format!("{:?}", text.parse::<f64>().unwrap()),
        "int64" => text.parse::<i64>().unwrap().to_string(),
        _ => text.to_string(),
    })
}

async fn run_case(name: &str) {
    let case = cases_dir().join(name);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let yaml = definitions(&case, &spec);
    let defs =
        load_texts(&[(PathBuf::from(format!("{name}.yaml")), yaml.clone())]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut features = Vec::new();
    let mut types = std::collections::BTreeMap::new();
    for view in spec["views"].as_array().unwrap() {
        let v = view["name"].as_str().unwrap();
        for f in view["features"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            let view_def = &defs.feature_views[v];
            let ty = view_def.features.iter().find(|x| x.name == f).unwrap().ty;
            features.push(ResolvedFeature {
                view: v.into(),
                feature: f.into(),
                ty,
                on_demand: false,
            });
            types.insert(
                format!("{v}__{f}"),
                view["feature_types"][f].as_str().unwrap().to_string(),
            );
        }
    }
    let spine_ts = spec["spine"]["timestamp_column"].as_str().unwrap().to_string();
    types.insert(spine_ts.clone(), "timestamp".into());
    let request = TrainingSetRequest {
        spine: Spine::File(case.join(spec["spine"]["file"].as_str().unwrap())),
        timestamp_column: spine_ts,
        features,
        full_names: true,
    };
    let ctx = skewless_engine::session();
    let out = build(&ctx, &defs, &case, &request, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .batch;

    let expected = std::fs::read_to_string(case.join("expected.csv")).unwrap();
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(out.num_rows(), rows.len(), "{name}: row count");
    for (r, row) in rows.iter().enumerate() {
        for (c, column) in header.iter().enumerate() {
            let ty = types.get(*column).map_or("string", String::as_str);
            let want = expected_cell(row[c], ty);
            let got = cell(&out, column, r);
            assert_eq!(got, want, "{name}: row {r}, column {column}");
        }
    }
}

macro_rules! pit_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                run_case(stringify!($case)).await;
            }
        )*

        /// A case folder without a test here would silently not run: fail instead.
        #[test]
        fn every_shared_case_has_a_test() {
            let mut on_disk: Vec<String> = std::fs::read_dir(cases_dir())
                .unwrap_or_else(|e| panic!("cases at {}: {e}", cases_dir().display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut listed = vec![$(stringify!($case).to_string()),*];
            listed.sort();
            assert_eq!(listed, on_disk, "add new case folders to pit_cases! in {}", file!());
        }
    };
}

pit_cases!(
    available_excludes_late_rows,
    composite_key,
    created_breaks_ties,
    event_at_t_included,
    event_mode_uses_late_rows,
    latest_at_or_before,
    latest_null_is_null,
    microseconds_unsorted,
    no_ttl_no_lower_bound,
    random_small,
    spine_order_duplicates_missing,
    spine_time_zones,
    ttl_bound_inclusive,
    two_views_two_entities,
);
