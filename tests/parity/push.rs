//! Parity for pushed rows: pushes replayed under an injected clock into a fresh store, looked
//! up after each push at that clock, equal the training set built afterwards from the offline
//! log at the same instants, bit for bit.
//!
//! The events are made to be hard: event times behind the clock (late), exact `(event, created)`
//! ties inside one push, NaN, ±0, nulls, division by zero, values on the ttl edge, pushes
//! replayed with the same id and other rows (which must count nowhere), and contract
//! violations: `last_trip` quarantines rows whose fare is below -1000 or NaN, `trip_event`
//! nulls a fare above 10000, NaN or null.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::{Map, Value, json};
use skewless::Project;
use skewless::online_store::{self, OnlineStore, Scalar, Status, StoreConfig};
use skewless::push::{PushInput, PushTo};
use skewless::training::{FeatureSelection, TrainingSetOptions, write_parquet};

use skewless_testkit::fuzz::Fuzz;

use crate::online::scalar;

pub(crate) const MINUTE: i64 = 60_000_000;
/// 2026-01-01T00:00:00Z.
pub(crate) const BASE: i64 = 1_767_225_600_000_000;
pub(crate) const DRIVERS: i64 = 8;

const DEFS: &str = r#"
project: pushy
entities:
  driver: { keys: { driver_id: int64 } }
sources:
  trips:
    path: data/trips.parquet
    timestamp: event_timestamp
    created: created
    push: true
feature_views:
  last_trip:
    entity: driver
    source: trips
    ttl: 2h
    as_of: available
    features:
      fare: { type: float64, contract: { min: -1000 } }
      fare_per_km: { type: float64, expr: "fare / distance_km" }
      rated: { type: bool, expr: "rating IS NOT NULL" }
      half: { type: float32, expr: "CAST(fare AS FLOAT) * 0.5" }
  trip_event:
    entity: driver
    source: trips
    as_of: event
    on_violation: "null"
    features:
      last_fare: { type: float64, expr: "fare", contract: { max: 10000, nullable: false } }
"#;

fn instant_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A project whose push source has a batch file with no rows: everything comes from pushes.
pub(crate) fn push_project() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("feature_defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(defs.join("defs.yaml"), DEFS).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, true),
        Field::new("event_timestamp", instant_type(), true),
        Field::new("created", instant_type(), true),
        Field::new("fare", DataType::Float64, true),
        Field::new("distance_km", DataType::Float64, true),
        Field::new("rating", DataType::Int64, true),
    ]));
    write_parquet(&RecordBatch::new_empty(schema), &dir.path().join("data/trips.parquet")).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    (dir, project)
}

fn float(rng: &mut Fuzz) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!("NaN"),
        2 => json!(-0.0),
        3 => json!(0.0),
        4 => json!("-Infinity"),
        _ => json!((rng.below(100_000) as f64) / 7.0 - 2000.0),
    }
}

/// The rows of push `k` at clock `now`: event times up to 3 h behind the clock (some exactly on
/// the 2 h ttl edge of a later query), and now and then two rows of one driver with one event time.
pub(crate) fn rows(rng: &mut Fuzz, now: i64) -> Vec<Map<String, Value>> {
    let n = 1 + rng.below(6);
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for _ in 0..n {
        let driver = 1 + rng.below(DRIVERS as usize) as i64;
        let behind = match rng.below(5) {
            0 => 0,
            1 => 120 * MINUTE - 10 * MINUTE, // on the ttl edge 10 minutes (one push) later
            _ => rng.below(180) as i64 * MINUTE + rng.below(1000) as i64,
        };
        let ts = skewless::online::format_instant(now - behind);
        let mut row = json!({
            "driver_id": driver,
            "event_timestamp": ts,
            "fare": float(rng),
            "distance_km": float(rng),
            "rating": if rng.below(3) == 0 { Value::Null } else { json!(rng.below(5) as i64 + 1) },
        });
        if rng.below(4) == 0 {
            // An exact tie: the same driver and event time again, other values.
            let mut twin = row.clone();
            twin["fare"] = float(rng);
            out.push(twin.as_object().unwrap().clone());
        }
        if rng.below(10) == 0 {
            row["created"] = json!(skewless::online::format_instant(now));
        }
        out.push(row.as_object().unwrap().clone());
    }
    out
}

/// Bit for bit: NaN equals NaN of the same bits, -0 differs from +0.
pub(crate) fn same(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Float64(x), Scalar::Float64(y)) => x.to_bits() == y.to_bits(),
        (Scalar::Float32(x), Scalar::Float32(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Every driver (and one with no data) at each of `times`.
pub(crate) fn spine(times: &[i64]) -> RecordBatch {
    let mut drivers = Vec::new();
    let mut at = Vec::new();
    for t in times {
        for d in 1..=DRIVERS + 1 {
            drivers.push(d);
            at.push(*t);
        }
    }
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, false),
            Field::new("event_timestamp", instant_type(), false),
        ])),
        vec![
            Arc::new(Int64Array::from(drivers)),
            Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        ],
    )
    .unwrap()
}

/// What every driver is served at clock `t`.
pub(crate) async fn served_at(project: &Project, store: &Arc<dyn OnlineStore>, features: &[String], t: i64) -> Served {
    let entities: Vec<Vec<(String, String)>> = (1..=DRIVERS + 1)
        .map(|d| vec![("driver_id".to_string(), d.to_string())])
        .collect();
    let found = crate::lookup(
        project,
        store,
        &FeatureSelection::Features(features.to_vec()),
        &entities,
        t,
    )
    .await
    .unwrap();
    vec![(
        t,
        found
            .rows
            .iter()
            .map(|r| r.iter().map(|v| (v.value.clone(), v.status)).collect())
            .collect(),
    )]
}

/// What was served: per query instant, per driver, per feature.
pub(crate) type Served = Vec<(i64, Vec<Vec<(Scalar, Status)>>)>;

/// Pushes `pushes` random batches 10 min apart, asking `features` after each: what was
/// served, and per view how many pushed rows broke its contracts.
async fn replay(
    project: &Project,
    store: &Arc<dyn OnlineStore>,
    seed: u64,
    pushes: usize,
    features: &[String],
) -> (Served, BTreeMap<String, usize>) {
    let mut rng = Fuzz::new(seed);
    let mut served = Vec::new();
    let mut broken: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids: Vec<(String, PushInput)> = Vec::new();
    for k in 0..pushes {
        let now = BASE + k as i64 * 10 * MINUTE;
        let mut input = PushInput::Rows(rows(&mut rng, now).into());

        // Every fifth push replays an earlier id, half the time with its rows (a retry: it
        // appends nothing, and its online write changes nothing), else with other rows (a
        // conflict: refused). Either way it must count nowhere.
        let (id, replay, conflict) = if k % 5 == 4 && !ids.is_empty() {
            let (id, first) = ids[rng.below(ids.len())].clone();
            let retry = rng.below(2) == 0;
            if retry {
                input = first;
            }
            (Some(id), true, !retry)
        } else if rng.below(2) == 0 {
            let id = format!("push-{seed}-{k}");
            ids.push((id.clone(), input.clone()));
            (Some(id), false, false)
        } else {
            (None, false, false)
        };
        let pushed = project
            .push(&**store, "trips", &input, id, PushTo::OnlineAndOffline, now)
            .await;
        if conflict {
            let err = pushed.unwrap_err();
            assert!(
                matches!(
                    err,
                    skewless::Error::Serve(skewless::serving::RequestError::PushIdConflict { .. })
                ),
                "push {k}: {err}"
            );
        } else {
            let report = pushed.unwrap();
            assert_eq!(report.appended, !replay, "push {k}: {report:?}");
            for row in &report.broke_contracts {
                *broken.entry(row.view.clone()).or_default() += 1;
            }
        }
        served.extend(served_at(project, store, features, now).await);
    }
    (served, broken)
}

/// Builds the training set for every driver at every served instant and compares.
pub(crate) async fn assert_served_equals_training_set(
    dir: &std::path::Path,
    project: &Project,
    served: &Served,
    features: &[String],
) -> usize {
    let times: Vec<i64> = served.iter().map(|(t, _)| *t).collect();
    let spine = spine(&times);
    let spine_path = dir.join("spine.parquet");
    write_parquet(&spine, &spine_path).unwrap();
    let options = TrainingSetOptions {
        spine: spine_path.into(),
        selection: FeatureSelection::Features(features.to_vec()),
        timestamp_column: "event_timestamp".into(),
        full_names: true,
    };
    let offline = project
        .training_set(&skewless::engine_session(), &options)
        .await
        .unwrap()
        .batch;
    let mut present = 0;
    let per_instant = (DRIVERS + 1) as usize;
    for (i, (t, rows)) in served.iter().enumerate() {
        for (d, row) in rows.iter().enumerate() {
            for (f, feature) in features.iter().enumerate() {
                let want = scalar(offline.column(2 + f), i * per_instant + d);
                let (got, status) = &row[f];
                assert!(
                    same(got, &want),
                    "{feature} of driver {} at {}: served {got:?} ({status:?}), training set {want:?}",
                    d + 1,
                    skewless::online::format_instant(*t)
                );
                if *status == Status::Present {
                    present += 1;
                } else {
                    assert_eq!(got, &Scalar::Null);
                }
            }
        }
    }
    present
}

async fn push_parity_on(store: Arc<dyn OnlineStore>, dir: &std::path::Path, project: &Project, seed: u64) {
    let available: Vec<String> = ["fare", "fare_per_km", "rated", "half"]
        .iter()
        .map(|f| format!("last_trip:{f}"))
        .collect();
    let (served, broken) = replay(project, &store, seed, 60, &available).await;
    let present = assert_served_equals_training_set(dir, project, &served, &available).await;
    assert!(present > 500, "only {present} values present");
    // Rows broke contracts on both paths, and each path wrote them to the quarantine: the
    // pushes (10 hours of them, over two UTC days) to one JSON-lines file per view and day,
    // a line per breaking row, not a file per push.
    for view in ["last_trip", "trip_event"] {
        let dir = skewless::offline::quarantine::quarantine_dir(&project.root, view);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with("push-"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let want = broken.get(view).copied().unwrap_or(0);
        assert!(want > 3, "{view}: only {want} pushed rows broke its contracts");
        assert!(
            (1..=2).contains(&files.len()) && files.iter().all(|f| f.ends_with(".jsonl")),
            "{view}: {files:?}"
        );
        let mut lines = 0;
        for file in &files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for line in text.lines() {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(row["view"], view, "{line}");
                assert!(row["reason"].as_str().is_some_and(|r| !r.is_empty()), "{line}");
                assert!(row["driver_id"].is_i64(), "{line}");
                lines += 1;
            }
        }
        assert_eq!(lines, want, "{view}: a quarantine line per breaking row");
    }
    // `as_of: event` agrees once every row has landed: after the last push.
    let event = vec!["trip_event:last_fare".to_string()];
    let last = served.last().unwrap().0;
    let final_served = served_at(project, &store, &event, last).await;
    let present = assert_served_equals_training_set(dir, project, &final_served, &event).await;
    assert_eq!(present, DRIVERS as usize, "every driver has an event-time value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_values_equal_the_training_set_embedded() {
    for seed in [1, 2, 3] {
        let (dir, project) = push_project();
        let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
            .await
            .unwrap();
        push_parity_on(store, dir.path(), &project, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_values_equal_the_training_set_redis() {
    let server = skewless_testkit::RedisServer::start();
    for seed in [4, 5, 6] {
        let (dir, project) = push_project();
        let store = online_store::open(&StoreConfig::Redis(format!("{}/{seed}", server.url())))
            .await
            .unwrap();
        push_parity_on(store, dir.path(), &project, seed).await;
    }
}
