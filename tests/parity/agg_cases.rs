//! Every case in `tests/cases/agg/` (the repository's copy of the public cases) as its own test:
//! `case.json` becomes an aggregated view over the case's events, and at every spine row three
//! values are compared with `expected.csv` as the cases' README says (counts, sum, min, max, first
//! and last exact; mean, var_pop and stddev_pop within a relative 1e-9):
//!
//! - the training set's;
//! - the served value at clock `t` after materializing at `t` (tiles from the batch file);
//! - the served value at clock `t` after pushing, one by one in effective-time order, every
//!   event whose effective time is at most `t` (tiles from pushes).
//!
//! The two served values must also equal the training set's bit for bit.

use std::path::{Path, PathBuf};

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch};
use serde_json::Value;
use skewless::Project;
use skewless::online::MaterializeOptions;
use skewless::online_store::{self, Scalar, StoreConfig};
use skewless::push::{PushInput, PushTo};
use skewless::training::{FeatureSelection, TrainingSetOptions};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/agg")
}

/// A project over the case's events: one aggregated view, `agg`, with one feature per
/// aggregation of `case.json`, in its order.
fn project(case: &Path, spec: &Value) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("feature_defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(case.join("events.csv"), dir.path().join("data/events.csv")).unwrap();
    let window = spec["window_s"]
        .as_u64()
        .map_or_else(|| "lifetime".to_string(), |s| format!("{s}s"));
    let tile = spec["tile_s"]
        .as_u64()
        .map_or_else(|| "exact".to_string(), |s| format!("{s}s"));
    let value = spec["value_column"].as_str().unwrap();
    let distinct = spec["distinct_column"].as_str().unwrap();
    let mut yaml = format!(
        "project: agg\n\
         entities: {{ e: {{ keys: {{ {key}: int64 }} }} }}\n\
         sources:\n  events: {{ path: data/events.csv, timestamp: event_timestamp, created: created, push: true }}\n\
         feature_views:\n  agg:\n    entity: e\n    source: events\n    as_of: {as_of}\n    tile: {tile}\n    aggregations:\n",
        key = spec["key"].as_str().unwrap(),
        as_of = spec["as_of"].as_str().unwrap(),
    );
    for function in spec["aggregations"].as_array().unwrap() {
        let function = function.as_str().unwrap();
        let (input, ty) = match function {
            "count_distinct" => (distinct, ""),
            "min" | "max" | "first" | "last" => (value, ", type: float64"),
            _ => (value, ""),
        };
        yaml.push_str(&format!(
            "      {function}: {{ function: {function}, expr: {input}, window: {window}{ty} }}\n"
        ));
    }
    std::fs::write(defs.join("defs.yaml"), &yaml).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    (dir, project)
}

/// A cell as the README compares it: integers and floats by value, empty as null.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
}

fn cell(batch: &RecordBatch, column: usize, row: usize) -> Cell {
    let array = batch.column(column);
    if array.is_null(row) {
        return Cell::Null;
    }
    if let Some(a) = array.as_any().downcast_ref::<Int64Array>() {
        return Cell::Int(a.value(row));
    }
    if let Some(a) = array.as_any().downcast_ref::<Float64Array>() {
        return Cell::Float(a.value(row));
    }
    panic!("column {column} has unexpected type {}", array.data_type())
}

fn served_cell(value: &Scalar) -> Cell {
    match value {
        Scalar::Null => Cell::Null,
        Scalar::Int64(i) => Cell::Int(*i),
        Scalar::Float64(f) => Cell::Float(*f),
        other => panic!("unexpected served value {other:?}"),
    }
}

/// Bit for bit, with null only equal to null.
fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn micros(text: &str) -> i64 {
    skewless::online::parse_instant(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The features served for `entity` at clock `at`.
async fn served(
    project: &Project,
    store: &std::sync::Arc<dyn online_store::OnlineStore>,
    features: &[String],
    entity: &str,
    at: i64,
) -> Vec<Cell> {
    let out = crate::lookup(
        project,
        store,
        &FeatureSelection::Features(features.to_vec()),
        &[vec![("entity_id".to_string(), entity.to_string())]],
        at,
    )
    .await
    .unwrap();
    out.rows[0].iter().map(|v| served_cell(&v.value)).collect()
}

fn matches(got: &Cell, want: &str, function: &str) -> bool {
    match (got, want) {
        (Cell::Null, "") => true,
        (Cell::Int(i), w) => w.parse::<i64>().is_ok_and(|w| w == *i),
        (Cell::Float(x), w) => w.parse::<f64>().is_ok_and(|w| match function {
            "mean" | "var_pop" | "stddev_pop" => (x - w).abs() <= 1e-9 * w.abs().max(1e-300),
            _ => x.to_bits() == w.to_bits() || (*x == 0.0 && w == 0.0),
        }),
        _ => false,
    }
}

async fn run_case(name: &str) {
    let case = cases_dir().join(name);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let (dir, project) = project(&case, &spec);
    std::fs::copy(case.join("spine.csv"), dir.path().join("spine.csv")).unwrap();
    let defs = project.load().unwrap();
    let features: Vec<String> = defs.feature_views["agg"]
        .features
        .iter()
        .map(|f| format!("agg:{}", f.name))
        .collect();
    let options = TrainingSetOptions {
        spine: dir.path().join("spine.csv").into(),
        selection: FeatureSelection::Features(features.clone()),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    let built = project
        .training_set(&skewless::engine_session(), &options)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let batch = &built.batch;
    let first_feature = batch.num_columns() - features.len();

    let expected = std::fs::read_to_string(case.join("expected.csv")).unwrap();
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(batch.num_rows(), rows.len(), "{name}: row count");
    let functions: Vec<&str> = spec["aggregations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let offline: Vec<Vec<Cell>> = (0..rows.len())
        .map(|r| (0..features.len()).map(|j| cell(batch, first_feature + j, r)).collect())
        .collect();
    let check = |path: &str, r: usize, values: &[Cell]| {
        for (j, function) in functions.iter().enumerate() {
            let column = header.iter().position(|h| h == function).unwrap();
            let got = &values[j];
            assert!(
                matches(got, rows[r][column], function),
                "{name}: {path}, row {r}, {function}: got {got:?}, expected {:?}",
                rows[r][column]
            );
            assert!(
                same(got, &offline[r][j]),
                "{name}: {path}, row {r}, {function}: {got:?} but the training set has {:?}",
                offline[r][j]
            );
        }
    };
    for (r, values) in offline.iter().enumerate() {
        check("training set", r, values);
    }

    // Spine rows in time order: (t, row, entity).
    let spine = std::fs::read_to_string(case.join("spine.csv")).unwrap();
    let mut queries: Vec<(i64, usize, String)> = spine
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (micros(f[2]), f[0].parse().unwrap(), f[1].to_string())
        })
        .collect();
    queries.sort();

    // Materialized at each t into a fresh store.
    for (t, r, entity) in &queries {
        let store = online_store::open(&StoreConfig::Embedded(dir.path().join(format!("m{r}.redb"))))
            .await
            .unwrap();
        let options = MaterializeOptions {
            start: None,
            end: *t,
            incremental: false,
            views: Vec::new(),
        };
        project.materialize(&*store, &options, &|_| {}).await.unwrap();
        check(
            "materialized",
            *r,
            &served(&project, &store, &features, entity, *t).await,
        );
    }

    // Pushed one event at a time, in effective-time order, into one store.
    let events = std::fs::read_to_string(case.join("events.csv")).unwrap();
    let mut lines = events.lines();
    let columns: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let available = spec["as_of"] == "available";
    let mut pending: Vec<(i64, serde_json::Map<String, Value>)> = lines
        .map(|l| {
            let mut row = serde_json::Map::new();
            for (c, v) in columns.iter().zip(l.split(',')) {
                let value = match c.as_str() {
                    _ if v.is_empty() => continue,
                    "event_id" | "entity_id" => Value::from(v.parse::<i64>().unwrap()),
                    "x" => Value::from(v.parse::<f64>().unwrap()),
                    _ => Value::String(v.to_string()),
                };
                row.insert(c.clone(), value);
            }
            let ts = micros(row["event_timestamp"].as_str().unwrap());
            let created = micros(row["created"].as_str().unwrap());
            (if available { ts.max(created) } else { ts }, row)
        })
        .collect();
    pending.sort_by_key(|(e, _)| *e);
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("pushed.redb")))
        .await
        .unwrap();
    let mut next = 0;
    for (t, r, entity) in &queries {
        while next < pending.len() && pending[next].0 <= *t {
            let input = PushInput::Rows(vec![pending[next].1.clone()].into());
            project
                .push(&*store, "events", &input, None, PushTo::OnlineAndOffline, *t)
                .await
                .unwrap_or_else(|e| panic!("{name}: push: {e}"));
            next += 1;
        }
        check("pushed", *r, &served(&project, &store, &features, entity, *t).await);
    }
}

macro_rules! agg_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                run_case(stringify!($case)).await;
            }
        )*

        /// A case folder without a test here would silently not run: fail instead.
        #[test]
        fn every_shared_agg_case_has_a_test() {
            let mut on_disk: Vec<String> = std::fs::read_dir(cases_dir())
                .unwrap_or_else(|e| panic!("cases at {}: {e}", cases_dir().display()))
                .map(|e| e.unwrap())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut listed = vec![$(stringify!($case).to_string()),*];
            listed.sort();
            assert_eq!(listed, on_disk, "add new case folders to agg_cases! in {}", file!());
        }
    };
}

agg_cases!(
    exact_10m_event,
    lifetime_available,
    tiled_1d_1h_available,
    tiled_1h_5m_event
);
