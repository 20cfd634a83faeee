//! Parity: what materialization serves at `T` equals the training set at `T`, for every key
//! of every online view, on the embedded store, a real Redis server and a Redis Cluster.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use skewless::Project;
use skewless::demo_data::{CUSTOMERS, DRIVERS, START_MICROS};
use skewless::online::MaterializeOptions;
use skewless::online_store::{self, OnlineStore, Scalar, Status, StoreConfig};
use skewless::training::{FeatureSelection, TrainingSetOptions, write_parquet};

const HOUR: i64 = 3_600_000_000;

fn demo_project() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = crate::copy_demo_defs(dir.path());
    skewless::demo_data::generate(&dir.path().join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    (dir, project)
}

/// Every feature of every online feature view, and of every on-demand view.
fn online_features(project: &Project) -> Vec<String> {
    let defs = project.applied().unwrap();
    let views = defs
        .feature_views
        .values()
        .filter(|v| v.online)
        .flat_map(|v| v.features.iter().map(move |f| format!("{}:{}", v.name, f.name)));
    let on_demand = defs
        .on_demand_views
        .values()
        .flat_map(|v| v.features.iter().map(move |f| format!("{}:{}", v.name, f.name)));
    views.chain(on_demand).collect()
}

/// The request field of the demo's on-demand view, per spine row (0 makes `fare_per_km` null).
fn distance(row: usize) -> f64 {
    (row % 7) as f64 * 1.5
}

/// One row per driver (paired with a customer, cycling), all at `t`, plus ids with no data.
fn entities() -> Vec<(i64, i64)> {
    let customers: Vec<i64> = CUSTOMERS.collect();
    let mut out: Vec<(i64, i64)> = DRIVERS
        .enumerate()
        .map(|(i, d)| (d, customers[i % customers.len()]))
        .collect();
    out.extend(customers.iter().map(|&c| (999, c)));
    out.push((-1, -1));
    out
}

pub(crate) fn scalar(column: &ArrayRef, row: usize) -> Scalar {
    if column.is_null(row) {
        return Scalar::Null;
    }
    match column.data_type() {
        DataType::Boolean => Scalar::Bool(column.as_boolean().value(row)),
        DataType::Int32 => Scalar::Int32(column.as_primitive::<arrow::datatypes::Int32Type>().value(row)),
        DataType::Int64 => Scalar::Int64(column.as_primitive::<arrow::datatypes::Int64Type>().value(row)),
        DataType::Float32 => Scalar::Float32(column.as_primitive::<arrow::datatypes::Float32Type>().value(row)),
        DataType::Float64 => Scalar::Float64(column.as_primitive::<arrow::datatypes::Float64Type>().value(row)),
        DataType::Utf8 => Scalar::String(column.as_string::<i32>().value(row).to_string()),
        DataType::Timestamp(_, _) => Scalar::Timestamp(
            column
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(row),
        ),
        other => panic!("unexpected type {other}"),
    }
}

/// Builds the training set for `entities` at `t` and checks `get` at clock `t` against it:
/// a value is PRESENT with the training set's value, or absent where the training set is null.
/// Returns how many values were present.
async fn assert_parity(dir: &std::path::Path, project: &Project, store: &Arc<dyn OnlineStore>, t: i64) -> usize {
    let entities = entities();
    let spine = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, false),
            Field::new("customer_id", DataType::Int64, false),
            Field::new("event_timestamp", skewless_offline_instant(), false),
            Field::new("distance_km", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(entities.iter().map(|e| e.0))),
            Arc::new(Int64Array::from_iter_values(entities.iter().map(|e| e.1))),
            Arc::new(TimestampMicrosecondArray::from(vec![t; entities.len()]).with_timezone("UTC")),
            Arc::new(arrow::array::Float64Array::from_iter_values(
                (0..entities.len()).map(distance),
            )),
        ],
    )
    .unwrap();
    let spine_path = dir.join(format!("spine_{t}.parquet"));
    write_parquet(&spine, &spine_path).unwrap();
    let features = online_features(project);
    let options = TrainingSetOptions {
        spine: spine_path.into(),
        selection: FeatureSelection::Features(features.clone()),
        timestamp_column: "event_timestamp".into(),
        full_names: true,
    };
    let ctx = skewless::engine_session();
    let offline = project.training_set(&ctx, &options).await.unwrap().batch;

    let pairs: Vec<Vec<(String, String)>> = entities
        .iter()
        .enumerate()
        .map(|(row, (d, c))| {
            vec![
                ("driver_id".into(), d.to_string()),
                ("customer_id".into(), c.to_string()),
                ("distance_km".into(), distance(row).to_string()),
            ]
        })
        .collect();
    let online = crate::lookup(project, store, &FeatureSelection::Features(features.clone()), &pairs, t)
        .await
        .unwrap();
    assert_eq!(online.stats.other_version + online.stats.corrupt, 0);
    let mut present = 0;
    for (f, feature) in features.iter().enumerate() {
        let column = offline.column(4 + f);
        for (row, entity) in entities.iter().enumerate() {
            let want = scalar(column, row);
            let got = &online.rows[row][f];
            if got.status == Status::Present {
                present += 1;
            } else {
                assert_eq!(got.value, Scalar::Null);
            }
            assert_eq!(got.value, want, "{feature} for {entity:?} at {t}: online {got:?}");
        }
    }
    present
}

fn skewless_offline_instant() -> DataType {
    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
}

fn instants() -> [i64; 3] {
    [
        // Early: customers' 30-day ttl covers little history yet, drivers just started.
        START_MICROS + 5 * HOUR + 17,
        // Mid-run, at an exact hour.
        START_MICROS + 7 * 24 * HOUR,
        // Long after the data ends: driver views (2d, 7d ttl) are OUTSIDE_MAX_AGE.
        START_MICROS + 20 * 24 * HOUR,
    ]
}

async fn parity_on(config_for: impl Fn(&std::path::Path, usize) -> StoreConfig) {
    let (dir, project) = demo_project();
    for (i, t) in instants().into_iter().enumerate() {
        let store = online_store::open(&config_for(dir.path(), i)).await.unwrap();
        let options = MaterializeOptions {
            start: None,
            end: t,
            incremental: false,
            views: Vec::new(),
        };
        let reports = project.materialize(&*store, &options, &|_| {}).await.unwrap();
        assert_eq!(reports.len(), 4);
        let present = assert_parity(dir.path(), &project, &store, t).await;
        if i == 1 {
            assert!(present > 500, "only {present} values present mid-run");
        }
        // Re-running writes nothing: every value is already there.
        let again = project.materialize(&*store, &options, &|_| {}).await.unwrap();
        for r in again {
            if r.view == "driver_trip_stats" {
                // Tiles are rebuilt whole and replace what the store held.
                assert_eq!(r.keys_written as usize, r.keys_with_value, "{r:?}");
                continue;
            }
            assert_eq!(r.keys_written, 0, "{r:?}");
            assert_eq!(r.writes_skipped_not_newer as usize, r.keys_with_value);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_values_equal_the_training_set_embedded() {
    parity_on(|dir, i| StoreConfig::Embedded(dir.join(format!("store{i}.redb")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_values_equal_the_training_set_redis() {
    let server = skewless_testkit::RedisServer::start();
    // One database per instant, so each starts empty.
    let url = server.url();
    parity_on(|_, i| StoreConfig::Redis(format!("{url}/{i}"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_values_equal_the_training_set_redis_cluster() {
    // A cluster has one database: one cluster per instant, so each starts empty.
    let clusters: Vec<_> = instants()
        .iter()
        .map(|_| skewless_testkit::RedisCluster::start())
        .collect();
    parity_on(|_, i| StoreConfig::Redis(clusters[i].url())).await;
}

/// Incremental runs in steps end where one full run ends, and the watermark follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_steps_equal_one_full_run() {
    let (dir, project) = demo_project();
    let server = skewless_testkit::RedisServer::start();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let end = START_MICROS + 9 * 24 * HOUR + 3;
    let mut previous_end = None;
    for step in [START_MICROS + 2 * 24 * HOUR, START_MICROS + 6 * 24 * HOUR + 11, end] {
        let options = MaterializeOptions {
            start: None,
            end: step,
            incremental: true,
            views: Vec::new(),
        };
        let reports = project.materialize(&*store, &options, &|_| {}).await.unwrap();
        for r in &reports {
            assert_eq!(r.start, previous_end, "{} starts at the watermark", r.view);
        }
        previous_end = Some(step);
        let marks = project.registry().watermarks(&store_ref(&*store).await).unwrap();
        assert!(marks.values().all(|w| w.end == step));
    }
    assert_parity(dir.path(), &project, &store, end).await;
}

async fn store_ref(store: &dyn OnlineStore) -> skewless::registry::StoreRef {
    skewless::registry::StoreRef {
        identity: store.identity(),
        instance: store.instance_id().await.unwrap(),
    }
}

fn incremental(end: i64) -> MaterializeOptions {
    MaterializeOptions {
        start: None,
        end,
        incremental: true,
        views: Vec::new(),
    }
}

/// Watermarks belong to one store: an incremental run into another store, or into the same
/// Redis after it restarted empty, is a full run, and then serves what a training set gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_belong_to_one_store_instance() {
    let (dir, project) = demo_project();
    let early = START_MICROS + 2 * 24 * HOUR;
    let end = START_MICROS + 6 * 24 * HOUR;
    let embedded = online_store::open(&StoreConfig::Embedded(dir.path().join("e.redb")))
        .await
        .unwrap();
    project
        .materialize(&*embedded, &incremental(early), &|_| {})
        .await
        .unwrap();

    let mut server = skewless_testkit::RedisServer::start();
    let redis = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let reports = project.materialize(&*redis, &incremental(end), &|_| {}).await.unwrap();
    for r in &reports {
        assert_eq!(r.start, None, "{}: another store's watermark was used", r.view);
        assert!(r.note.as_deref().is_some_and(|n| n.contains("full run")), "{r:?}");
    }
    assert_parity(dir.path(), &project, &redis, end).await;
    // The embedded store's own watermark is untouched.
    let marks = project.registry().watermarks(&store_ref(&*embedded).await).unwrap();
    assert!(!marks.is_empty() && marks.values().all(|w| w.end == early), "{marks:?}");

    // Redis restarts empty (no persistence): a new instance, so a full run again.
    server.restart();
    let redis = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let later = end + HOUR;
    let reports = project
        .materialize(&*redis, &incremental(later), &|_| {})
        .await
        .unwrap();
    assert!(
        reports.iter().all(|r| r.start.is_none() && r.keys_written > 0),
        "{reports:?}"
    );
    assert_parity(dir.path(), &project, &redis, later).await;
    // And on the same instance, the next run is incremental.
    let reports = project
        .materialize(&*redis, &incremental(later + HOUR), &|_| {})
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.start == Some(later)), "{reports:?}");
}

/// A damaged watermark file stops incremental runs with a way out, and a full run repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_watermarks_are_recoverable() {
    let (dir, project) = demo_project();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("e.redb")))
        .await
        .unwrap();
    let file = dir.path().join(".skewless/registry/materialized.json");
    std::fs::write(&file, "{ not json").unwrap();
    let end = START_MICROS + 2 * 24 * HOUR;
    let e = project
        .materialize(&*store, &incremental(end), &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a full `skewless materialize --end T` rebuilds them"), "{e}");
    let full = MaterializeOptions {
        incremental: false,
        ..incremental(end)
    };
    let reports = project.materialize(&*store, &full, &|_| {}).await.unwrap();
    assert!(reports.iter().all(|r| r.error.is_none()));
    assert!(dir.path().join(".skewless/registry/materialized.json.damaged").exists());
    let reports = project
        .materialize(&*store, &incremental(end + HOUR), &|_| {})
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.start == Some(end)), "{reports:?}");
}

#[tokio::test]
async fn get_reports_statuses_and_explains_bad_requests() {
    let (dir, project) = demo_project();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    let t = START_MICROS + 3 * 24 * HOUR;
    let options = MaterializeOptions {
        start: None,
        end: t,
        incremental: false,
        views: vec!["driver_hourly_stats".into()],
    };
    project.materialize(&*store, &options, &|_| {}).await.unwrap();
    let features = FeatureSelection::Features(vec!["driver_hourly_stats:conv_rate".into()]);
    let entity = vec![vec![("driver_id".to_string(), "1001".to_string())]];
    let serving = skewless::serving::Serving::new(&project.dirs(), Arc::clone(&store)).unwrap();
    let at = |t| {
        let (serving, features, entity) = (&serving, &features, &entity);
        async move { serving.get(features, entity, t).await.unwrap().rows[0][0].clone() }
    };
    let now = at(t).await;
    assert_eq!(now.status, Status::Present);
    let event = now.event_timestamp.unwrap();
    assert_eq!(
        at(event + 2 * 24 * HOUR).await.status,
        Status::Present,
        "ttl bound is inclusive"
    );
    let stale = at(event + 2 * 24 * HOUR + 1).await;
    assert_eq!((stale.status, stale.value), (Status::OutsideMaxAge, Scalar::Null));

    let err = |features: Vec<&'static str>, pairs: Vec<(&'static str, &'static str)>| {
        let (project, store) = (&project, &store);
        let selection = FeatureSelection::Features(features.into_iter().map(String::from).collect());
        let pairs: Vec<Vec<(String, String)>> =
            vec![pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()];
        async move {
            crate::lookup(project, store, &selection, &pairs, t)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let e = err(vec!["driver_hourly_stats:conv_rate"], vec![("driver", "1001")]).await;
    assert!(e.contains("`driver`") && e.contains("driver_id"), "{e}");
    let e = err(vec!["driver_hourly_stats:conv_rate"], vec![("driver_id", "x1")]).await;
    assert!(e.contains("x1") && e.contains("int64"), "{e}");
    let e = err(vec!["driver_hourly_stats:conv_rat"], vec![("driver_id", "1")]).await;
    assert!(e.contains("conv_rat"), "{e}");
    let e = err(vec!["ride_score:score"], vec![("driver_id", "1001")]).await;
    assert!(e.contains("request field `distance_km`"), "{e}");
    let e = err(
        vec!["ride_score:score"],
        vec![("driver_id", "1001"), ("distance_km", "far")],
    )
    .await;
    assert!(e.contains("far") && e.contains("float64"), "{e}");
    let e = err(vec!["driver_hourly_stats:conv_rate"], vec![]).await;
    assert!(e.contains("driver_id"), "{e}");
    let e = project
        .materialize(
            &*store,
            &MaterializeOptions {
                views: vec!["nope".into()],
                ..options.clone()
            },
            &|_| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

/// The serving core, compiled once, answers each selection, and its errors say what is wrong:
/// the caller's mistakes by kind, a store that is down as `StoreUnavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_core_answers_with_codes() {
    use skewless::serving::RequestError;
    let (_dir, project) = demo_project();
    let mut server = skewless_testkit::RedisServer::start();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let t = START_MICROS + 3 * 24 * HOUR;
    let options = MaterializeOptions {
        start: None,
        end: t,
        incremental: false,
        views: Vec::new(),
    };
    project.materialize(&*store, &options, &|_| {}).await.unwrap();
    let serving = skewless::serving::Serving::new(&project.dirs(), Arc::clone(&store)).unwrap();
    assert_eq!(serving.applied_seq, 1);
    let service = FeatureSelection::Service("ranking_v1".into());
    let entity = |pairs: &[(&str, &str)]| vec![pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()];
    let one = entity(&[("driver_id", "1001"), ("customer_id", "5001"), ("distance_km", "3.5")]);
    let served = serving.get(&service, &one, t).await.unwrap();
    assert!(served.rows[0].iter().any(|v| v.status == Status::Present));
    // The service asks `ride_score:score` only, which reads driver_hourly_stats; its sibling
    // `fare_per_km` (reading driver_last_trip) is neither looked up nor evaluated. Asked
    // together, each value is what it is when asked alone.
    assert_eq!(
        served.stats.keys_read, 3,
        "driver_hourly_stats, customer_profile and driver_trip_stats only"
    );
    let score = FeatureSelection::Features(vec!["ride_score:score".into()]);
    let both = FeatureSelection::Features(vec!["ride_score:fare_per_km".into(), "ride_score:score".into()]);
    let fare = FeatureSelection::Features(vec!["ride_score:fare_per_km".into()]);
    let driver = entity(&[("driver_id", "1001"), ("distance_km", "3.5")]);
    let alone = serving.get(&score, &driver, t).await.unwrap();
    assert_eq!(alone.stats.keys_read, 1);
    let together = serving.get(&both, &driver, t).await.unwrap();
    assert_eq!(together.stats.keys_read, 2);
    assert_eq!(together.rows[0][1], alone.rows[0][0]);
    assert_eq!(
        together.rows[0][0],
        serving.get(&fare, &driver, t).await.unwrap().rows[0][0]
    );
    assert!(matches!(together.rows[0][0].value, Scalar::Float64(_)), "{together:?}");
    // A request field only the unasked feature reads is not required.
    let no_distance = entity(&[("driver_id", "1001")]);
    let err = serving.get(&score, &no_distance, t).await.unwrap_err();
    assert!(
        matches!(err, RequestError::MissingRequestField { .. }),
        "score reads distance_km: {err}"
    );

    let code = |r: Result<skewless::serving::GetOutput, RequestError>| {
        let e = r.unwrap_err();
        let message = e.to_string();
        (e, message)
    };
    let (e, m) = code(
        serving
            .get(
                &FeatureSelection::Features(vec!["driver_hourly_stats:conv_rat".into()]),
                &one,
                t,
            )
            .await,
    );
    assert!(
        matches!(
            e,
            RequestError::Selection(skewless::defs::SelectionError::Unresolved(_))
        ),
        "{m}"
    );
    assert!(m.contains("did you mean `driver_hourly_stats:conv_rate`"), "{m}");
    let (e, m) = code(serving.get(&service, &entity(&[("driver_id", "x1")]), t).await);
    assert!(
        matches!(
            &e,
            RequestError::BadEntity {
                entity: 1,
                problem: skewless::serving::EntityProblem::Value { field, .. }
            } if field == "driver_id"
        ),
        "{m}"
    );
    let (e, m) = code(
        serving
            .get(&service, &entity(&[("driver_id", "1"), ("customer_id", "2")]), t)
            .await,
    );
    assert!(matches!(e, RequestError::MissingRequestField { .. }), "{m}");

    // The store goes down: 503 with a code, never the caller's fault.
    server.stop();
    let (e, m) = code(serving.get(&service, &one, t).await);
    assert!(matches!(e, RequestError::StoreUnavailable { .. }), "{m}");
}

/// `skewless parity --against-store`: the harness compares with what a live store serves. A
/// store materialized at `T` agrees at `T`; a day later, without a new materialization, it is
/// stale, and the harness says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_against_a_live_store_finds_it_fresh_then_stale() {
    let server = skewless_testkit::RedisServer::start();
    let (dir, project) = demo_project();
    let store = online_store::open(&StoreConfig::Redis(server.url())).await.unwrap();
    let t = START_MICROS + 7 * 24 * HOUR;
    let options = MaterializeOptions {
        start: None,
        end: t,
        incremental: false,
        views: Vec::new(),
    };
    project.materialize(&*store, &options, &|_| {}).await.unwrap();
    let check = |at: i64| skewless::parity::ParityOptions {
        spine: dir.path().join("data/demo/ride_requests_spine.parquet").into(),
        selection: FeatureSelection::Service("ranking_v1".into()),
        timestamp_column: "event_timestamp".into(),
        at: vec![at],
        sample: Some(300),
        seed: 1,
        store: Some(Arc::clone(&store)),
        planted: None,
    };
    let ctx = skewless::engine_session();
    let fresh = project.parity(&ctx, &check(t)).await.unwrap();
    assert!(fresh.values() > 1000, "{fresh:?}");
    assert!(fresh.mismatches.is_empty(), "{:?}", fresh.mismatches.first());
    let stale = project.parity(&ctx, &check(t + 24 * HOUR)).await.unwrap();
    assert!(!stale.mismatches.is_empty(), "a store a day behind looked fresh");
}
