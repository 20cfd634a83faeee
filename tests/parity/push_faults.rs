//! Pushes under faults: an online write that fails after the log append, racing writers, and
//! compaction. Each ends with the served values equal to the training set.

use std::sync::Arc;

use skewless::online::MaterializeOptions;
use skewless::online_store::{self, OnlineStore, StoreConfig};
use skewless::push::{PushInput, PushTo};
use skewless::serving::RequestError;
use skewless::training::{FeatureSelection, TrainingSetOptions, write_parquet};

use skewless_testkit::fuzz::Fuzz;

use crate::push::{BASE, DRIVERS, MINUTE, assert_served_equals_training_set, push_project, rows, served_at};

fn all_features() -> Vec<String> {
    [
        "last_trip:fare",
        "last_trip:fare_per_km",
        "last_trip:rated",
        "last_trip:half",
        "trip_event:last_fare",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn materialize(project: &skewless::Project, store: &dyn OnlineStore, end: i64, incremental: bool) {
    let options = MaterializeOptions {
        start: None,
        end,
        incremental,
        views: Vec::new(),
    };
    for report in project.materialize(store, &options, &|_| {}).await.unwrap() {
        assert!(report.error.is_none(), "{report:?}");
    }
}

fn redis_cli(port: u16, args: &[&str]) {
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "redis-cli {args:?}");
}

/// The late rows of [`a_failed_online_write_is_logged_and_the_next_incremental_run_repairs_it`]:
/// one per driver, 20 minutes after `BASE`.
fn late_rows(fare: f64) -> Vec<serde_json::Map<String, serde_json::Value>> {
    (1..=DRIVERS)
        .map(|d| {
            serde_json::json!({"driver_id": d, "event_timestamp": skewless::online::format_instant(BASE + 20 * MINUTE + d),
                "fare": fare + d as f64, "distance_km": 2.0, "rating": 1})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect()
}

/// An acknowledged push must be servable: when its online write failed after the append (a
/// crash there leaves the same state), retrying it with the same id and rows appends
/// nothing but writes the online store, so it serves what the training set holds without a
/// materialization. The same id with other rows is refused (409), writing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_push_whose_online_write_failed_is_served() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let mut rng = Fuzz::new(12);
    let now = BASE + 10 * MINUTE;
    project
        .push(
            &*store,
            "trips",
            &PushInput::Rows(rows(&mut rng, now).into()),
            None,
            PushTo::OnlineAndOffline,
            now,
        )
        .await
        .unwrap();
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let now = BASE + 30 * MINUTE;
    let late = PushInput::Rows(late_rows(1000.0).into());
    let push = |input: PushInput, id: &str| {
        let project = project.clone();
        let store = Arc::clone(&store);
        let id = id.to_string();
        async move {
            project
                .push(&*store, "trips", &input, Some(id), PushTo::OnlineAndOffline, now)
                .await
        }
    };
    let err = push(late.clone(), "late").await.unwrap_err();
    assert!(
        matches!(err, skewless::Error::Serve(RequestError::OnlineWriteFailed { .. })),
        "{err}"
    );
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    let features = all_features();
    let end = BASE + 40 * MINUTE;
    let fares = |served: &crate::push::Served| -> Vec<skewless::online_store::Scalar> {
        served[0]
            .1
            .iter()
            .take(DRIVERS as usize)
            .map(|row| row[4].0.clone())
            .collect()
    };
    let expected: Vec<skewless::online_store::Scalar> = (1..=DRIVERS)
        .map(|d| skewless::online_store::Scalar::Float64(1000.0 + d as f64))
        .collect();
    assert_ne!(fares(&served_at(&project, &store, &features, end).await), expected);

    // Other rows under the same id: refused, nothing written.
    let err = push(PushInput::Rows(late_rows(2000.0).into()), "late")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, skewless::Error::Serve(RequestError::PushIdConflict { .. })),
        "expected PUSH_ID_CONFLICT, got {err}"
    );
    assert!(
        err.to_string()
            .contains("push id `late` was used before for other rows"),
        "{err}"
    );

    // The retry: appended nothing, served now, equal to the training set.
    let report = push(late, "late").await.unwrap();
    assert!(!report.appended);
    assert!(report.views.values().any(|w| w.written > 0), "{report:?}");
    let served = served_at(&project, &store, &features, end).await;
    assert_eq!(fares(&served), expected);
    assert_served_equals_training_set(dir.path(), &project, &served, &features).await;
}

/// Tiles too: a retry of a push whose online write failed appends its tile records again,
/// tagged with the push, so its rows count exactly once whether or not the first write had
/// landed, and the served aggregates equal the training set (before tags, the retry left the
/// tiles without the push until a materialization), and still once after a materialization
/// rebuilt the tiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_push_counts_once_in_an_aggregated_view() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = push_project();
    let defs = dir.path().join("feature_defs/defs.yaml");
    let original = std::fs::read_to_string(&defs).unwrap();
    let aggregated = original.replace(
        "    features:\n      last_fare: { type: float64, expr: \"fare\", contract: { max: 10000, nullable: false } }",
        "    tile: 10m\n    aggregations:\n      trips: { function: count, windows: [1d] }\n      \
         fares: { function: sum, expr: fare, windows: [1d] }",
    );
    assert_ne!(aggregated, original);
    std::fs::write(&defs, aggregated).unwrap();
    project.apply(true, None).unwrap();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let mut rng = Fuzz::new(13);
    let first = BASE + 10 * MINUTE;
    let input = PushInput::Rows(rows(&mut rng, first).into());
    project
        .push(&*store, "trips", &input, None, PushTo::OnlineAndOffline, first)
        .await
        .unwrap();
    let now = BASE + 30 * MINUTE;
    let late = PushInput::Rows(late_rows(1000.0).into());
    let push = || {
        project.push(
            &*store,
            "trips",
            &late,
            Some("late".into()),
            PushTo::OnlineAndOffline,
            now,
        )
    };
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let err = push().await.unwrap_err();
    assert!(
        matches!(err, skewless::Error::Serve(RequestError::OnlineWriteFailed { .. })),
        "{err}"
    );
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    let features = vec!["trip_event:*".to_string()];
    let end = BASE + 40 * MINUTE;
    let without = served_at(&project, &store, &features, end).await;

    // The retry: nothing appended offline, the tiles written; then again, changing nothing.
    let report = push().await.unwrap();
    assert!(!report.appended);
    assert_eq!(report.views["trip_event"].written, DRIVERS as u64, "{report:?}");
    let served = served_at(&project, &store, &features, end).await;
    assert_ne!(served, without, "the retry wrote the tiles");
    assert_served_equals_training_set(dir.path(), &project, &served, &features).await;
    // The second retry appends the same records again: a tile merges one per push.
    let report = push().await.unwrap();
    assert!(!report.appended);
    assert_eq!(report.views["trip_event"].written, DRIVERS as u64, "{report:?}");
    assert_eq!(
        served_at(&project, &store, &features, end).await,
        served,
        "counted once"
    );

    // A materialization rebuilds the tiles from the log, which keeps no push's tag: a retry
    // after it writes no tile record (it would count the rows twice) and changes nothing.
    materialize(&project, &*store, end, true).await;
    assert_eq!(served_at(&project, &store, &features, end).await, served);
    let report = push().await.unwrap();
    assert!(!report.appended);
    assert!(!report.views.contains_key("trip_event"), "{report:?}");
    assert_eq!(
        served_at(&project, &store, &features, end).await,
        served,
        "counted once after a materialization"
    );
    assert_served_equals_training_set(dir.path(), &project, &served, &features).await;
}

/// Redis refuses writes (but still reads) after the append: the push fails saying the rows
/// are logged, and the next incremental run writes them, late event times included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_online_write_is_logged_and_the_next_incremental_run_repairs_it() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let mut rng = Fuzz::new(11);
    for k in 0..3 {
        let now = BASE + k * 10 * MINUTE;
        let input = PushInput::Rows(rows(&mut rng, now).into());
        project
            .push(&*store, "trips", &input, None, PushTo::OnlineAndOffline, now)
            .await
            .unwrap();
    }
    materialize(&project, &*store, BASE + 25 * MINUTE, true).await;

    // Writes now fail: NOREPLICAS. The rows' event times lie before the watermark.
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let now = BASE + 30 * MINUTE;
    let late: Vec<_> = (1..=DRIVERS)
        .map(|d| {
            serde_json::json!({"driver_id": d, "event_timestamp": skewless::online::format_instant(BASE + 20 * MINUTE + d),
                "fare": 1000.0 + d as f64, "distance_km": 2.0, "rating": 1})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect();
    let err = project
        .push(
            &*store,
            "trips",
            &PushInput::Rows(late.clone().into()),
            Some("late".into()),
            PushTo::OnlineAndOffline,
            now,
        )
        .await
        .unwrap_err();
    let skewless::Error::Serve(RequestError::OnlineWriteFailed {
        pushed: skewless::serving::Pushed::Logged { .. },
        ..
    }) = &err
    else {
        panic!("expected ONLINE_WRITE_FAILED of logged rows, got {err:?}");
    };
    let message = err.to_string();
    assert!(message.contains("are in the offline log"), "{message}");
    assert!(message.contains("materialize-incremental"), "{message}");
    let by_segment = skewless::push_log::ids_by_segment(&project.root, "trips").unwrap();
    assert!(
        by_segment.values().flatten().any(|id| id == "late"),
        "the failed push is not in the log: {by_segment:?}"
    );
    redis_cli(server.port(), &["CONFIG", "SET", "min-replicas-to-write", "0"]);

    // Before the repair the store lacks the late rows; after it, it serves them, as the
    // training set has them.
    let features = all_features();
    let end = BASE + 40 * MINUTE;
    let fares = |served: &crate::push::Served| -> Vec<skewless::online_store::Scalar> {
        served[0]
            .1
            .iter()
            .take(DRIVERS as usize)
            .map(|row| row[4].0.clone())
            .collect()
    };
    let expected: Vec<skewless::online_store::Scalar> = (1..=DRIVERS)
        .map(|d| skewless::online_store::Scalar::Float64(1000.0 + d as f64))
        .collect();
    let stale = served_at(&project, &store, &features, end).await;
    assert!(
        fares(&stale).iter().zip(&expected).all(|(a, b)| a != b),
        "{:?}",
        fares(&stale)
    );
    materialize(&project, &*store, end, true).await;
    let served = served_at(&project, &store, &features, end).await;
    assert_eq!(fares(&served), expected);
    assert_served_equals_training_set(dir.path(), &project, &served, &features).await;
    // Replaying the failed push's id appends nothing: its rows are already logged.
    let report = project
        .push(
            &*store,
            "trips",
            &PushInput::Rows(late.into()),
            Some("late".into()),
            PushTo::OnlineAndOffline,
            end,
        )
        .await
        .unwrap();
    assert!(!report.appended);
}

/// Pushers at different clocks race each other and two full materializations over the same
/// keys; newer-wins leaves the newest row per key, whatever the interleaving.
async fn racing_writers_on(store: Arc<dyn OnlineStore>, dir: &std::path::Path, project: &skewless::Project) {
    let end = BASE + 4 * 60 * MINUTE;
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let (store, project) = (Arc::clone(&store), project.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Fuzz::new(100 + writer);
            for k in 0..15 {
                let now = BASE + rng.below(4 * 60) as i64 * MINUTE;
                let input = PushInput::Rows(rows(&mut rng, now).into());
                let id = format!("w{writer}-{k}");
                project
                    .push(&*store, "trips", &input, Some(id), PushTo::OnlineAndOffline, now)
                    .await
                    .unwrap();
            }
        }));
    }
    // Materializations race the pushers from this task (their progress callback is not Send).
    tokio::join!(
        materialize(project, &*store, end, false),
        materialize(project, &*store, end, false)
    );
    for task in tasks {
        task.await.unwrap();
    }
    let features = all_features();
    let served = served_at(project, &store, &features, end).await;
    let present = assert_served_equals_training_set(dir, project, &served, &features).await;
    assert!(present >= DRIVERS as usize, "only {present} values present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_and_materializations_leave_the_newest_value_embedded() {
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    racing_writers_on(store, dir.path(), &project).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_and_materializations_leave_the_newest_value_redis() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    racing_writers_on(store, dir.path(), &project).await;
}

/// A training set built before and after compaction is the same file, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_changes_no_training_set() {
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    let mut rng = Fuzz::new(21);
    let mut pushed = Vec::new();
    for k in 0..30 {
        let now = BASE + k * 10 * MINUTE;
        let input = PushInput::Rows(rows(&mut rng, now).into());
        pushed.push(input.clone());
        project
            .push(
                &*store,
                "trips",
                &input,
                Some(format!("c{k}")),
                PushTo::OnlineAndOffline,
                now,
            )
            .await
            .unwrap();
        // A read folds the journal: a segment per push, for the compaction to merge.
        skewless::push_log::segments(&project.root, "trips").unwrap();
    }
    let features = all_features();
    let build = |name: &'static str| {
        let (project, dir, features) = (project.clone(), dir.path().to_path_buf(), features.clone());
        async move {
            let spine = crate::push::spine(&(0..30).map(|k| BASE + k * 10 * MINUTE).collect::<Vec<_>>());
            let spine_path = dir.join(format!("{name}_spine.parquet"));
            write_parquet(&spine, &spine_path).unwrap();
            let options = TrainingSetOptions {
                spine: spine_path.into(),
                selection: FeatureSelection::Features(features),
                timestamp_column: "event_timestamp".into(),
                full_names: true,
            };
            let batch = project
                .training_set(&skewless::engine_session(), &options)
                .await
                .unwrap()
                .batch;
            let out = dir.join(format!("{name}.parquet"));
            write_parquet(&batch, &out).unwrap();
            std::fs::read(out).unwrap()
        }
    };
    let before = build("before").await;
    let compacted = project.compact("trips").unwrap();
    assert_eq!(compacted.segments, 30);
    assert_eq!(skewless::push_log::segments(&project.root, "trips").unwrap().len(), 1);
    let after = build("after").await;
    assert!(before == after, "compaction changed the training set");
    // The ids and their digests survive compaction: a retry appends nothing, other rows
    // under a kept id are refused.
    let retry = |input: PushInput| {
        let (project, store) = (project.clone(), Arc::clone(&store));
        async move {
            project
                .push(
                    &*store,
                    "trips",
                    &input,
                    Some("c7".into()),
                    PushTo::OnlineAndOffline,
                    BASE + 300 * MINUTE,
                )
                .await
        }
    };
    assert!(!retry(pushed[7].clone()).await.unwrap().appended);
    let err = retry(PushInput::Rows(rows(&mut rng, BASE).into())).await.unwrap_err();
    assert!(
        err.to_string().contains("push id `c7` was used before for other rows"),
        "{err}"
    );
}

/// A view that changes kind on Redis (a row view made aggregated and back, applied with
/// `--allow-breaking`): its old keys hold another Redis type, yet materialize, pushes and
/// lookups all work at once, on every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_changes_kind_keeps_working_on_redis() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = push_project();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let defs = dir.path().join("feature_defs/defs.yaml");
    let original = std::fs::read_to_string(&defs).unwrap();
    let aggregated = original.replace(
        "    features:\n      last_fare: { type: float64, expr: \"fare\", contract: { max: 10000, nullable: false } }",
        "    tile: 10m\n    aggregations:\n      last_fare: { function: max, expr: fare, type: float64, windows: [1d] }",
    );
    assert_ne!(aggregated, original);
    let mut rng = Fuzz::new(31);
    for (round, text) in [&original, &aggregated, &original, &aggregated].into_iter().enumerate() {
        std::fs::write(&defs, text).unwrap();
        project
            .apply(true, None)
            .unwrap_or_else(|e| panic!("round {round}: apply: {e}"));
        let now = BASE + (round as i64 + 1) * 60 * MINUTE;
        project
            .push(
                &*store,
                "trips",
                &PushInput::Rows(rows(&mut rng, now).into()),
                None,
                PushTo::OnlineAndOffline,
                now,
            )
            .await
            .unwrap_or_else(|e| panic!("round {round}: push: {e}"));
        materialize(&project, &*store, now, false).await;
        let features = vec!["trip_event:*".to_string()];
        let served = served_at(&project, &store, &features, now).await;
        assert!(!served.is_empty(), "round {round}");
    }
}
