//! One suite, every store: each case is a function over `&dyn OnlineStore`, and the macro at
//! the bottom runs each against a fresh embedded store, a fresh Redis server (plain and TLS)
//! and a fresh three-master Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use skewless_defs::{AsOf, FeatureType, KeyType};
use skewless_online::{
    Entity, FeatureValue, KeyValue, OnlineStore, Scalar, Selection, Status, ViewLayout, WriteSummary, lookup,
};

pub const VERSION: &str = "00112233445566aa";
const HOUR: i64 = 3_600_000_000;

pub fn view(
    name: &str,
    keys: &[(&str, KeyType)],
    features: &[(&str, FeatureType)],
    ttl: Option<i64>,
    as_of: AsOf,
) -> ViewLayout {
    ViewLayout::from_parts(
        "test",
        name,
        VERSION,
        keys.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        features.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        ttl,
        as_of,
        true,
    )
    .unwrap()
}

fn driver_view() -> ViewLayout {
    view(
        "driver_stats",
        &[("driver_id", KeyType::Int64)],
        &[("rate", FeatureType::Float64), ("trips", FeatureType::Int64)],
        Some(2 * HOUR),
        AsOf::Event,
    )
}

fn entity(pairs: &[(&str, KeyValue)]) -> Entity {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn driver(id: i64) -> Entity {
    entity(&[("driver_id", KeyValue::Int64(id))])
}

fn all(layout: &Arc<ViewLayout>) -> Selection {
    Selection {
        layout: Arc::clone(layout),
        features: (0..layout.features.len()).collect(),
    }
}

async fn put(
    store: &dyn OnlineStore,
    l: &ViewLayout,
    id: i64,
    ts: i64,
    created: Option<i64>,
    values: &[Scalar],
) -> WriteSummary {
    let key = l.key(&[KeyValue::Int64(id)]).unwrap();
    store
        .write(vec![(key, l.value(ts, created, values).unwrap())], None)
        .await
        .unwrap()
}

async fn get_one(store: &dyn OnlineStore, l: &Arc<ViewLayout>, id: i64, now: i64) -> Vec<FeatureValue> {
    lookup(store, &[all(l)], &[driver(id)], now)
        .await
        .unwrap()
        .rows
        .remove(0)
}

fn values(row: &[FeatureValue]) -> Vec<Scalar> {
    row.iter().map(|v| v.value.clone()).collect()
}

pub async fn missing_keys_read_as_not_found(store: &dyn OnlineStore) {
    assert!(store.read(&[]).await.unwrap().is_empty());
    let l = Arc::new(driver_view());
    let row = get_one(store, &l, 1, 10 * HOUR).await;
    assert!(
        row.iter()
            .all(|v| v.status == Status::NotFound && v.value == Scalar::Null && v.event_timestamp.is_none())
    );
}

pub async fn writes_are_newer_wins_and_idempotent(store: &dyn OnlineStore) {
    let l = Arc::new(driver_view());
    let v = |x: f64| [Scalar::Float64(x), Scalar::Int64(1)];
    assert_eq!(
        put(store, &l, 1, 5 * HOUR, None, &v(0.5)).await,
        WriteSummary { written: 1, skipped: 0 }
    );
    // The same write again changes nothing.
    assert_eq!(
        put(store, &l, 1, 5 * HOUR, None, &v(0.5)).await,
        WriteSummary { written: 0, skipped: 1 }
    );
    // Older event time: skipped.
    assert_eq!(put(store, &l, 1, 4 * HOUR, Some(9 * HOUR), &v(0.1)).await.skipped, 1);
    assert_eq!(values(&get_one(store, &l, 1, 6 * HOUR).await), v(0.5));
    // Same event time, a `created` where there was none: a correction, it wins.
    assert_eq!(put(store, &l, 1, 5 * HOUR, Some(5 * HOUR), &v(0.6)).await.written, 1);
    // Same event time, later created: wins; earlier created: loses.
    assert_eq!(put(store, &l, 1, 5 * HOUR, Some(6 * HOUR), &v(0.7)).await.written, 1);
    assert_eq!(
        put(store, &l, 1, 5 * HOUR, Some(5 * HOUR + 1), &v(0.8)).await.skipped,
        1
    );
    // An exact (event, created) tie: the greater values win, as in the offline join.
    assert_eq!(put(store, &l, 1, 5 * HOUR, Some(6 * HOUR), &v(0.65)).await.skipped, 1);
    assert_eq!(put(store, &l, 1, 5 * HOUR, Some(6 * HOUR), &v(0.75)).await.written, 1);
    let row = get_one(store, &l, 1, 6 * HOUR).await;
    assert_eq!(values(&row), v(0.75));
    assert!(
        row.iter()
            .all(|f| f.status == Status::Present && f.event_timestamp == Some(5 * HOUR))
    );
    // Newer event time wins.
    assert_eq!(put(store, &l, 1, 5 * HOUR + 1, None, &v(0.9)).await.written, 1);
    assert_eq!(values(&get_one(store, &l, 1, 6 * HOUR).await), v(0.9));
}

/// A store written before event times were bounded may hold a row dated in the year 58,900
/// (a millisecond epoch read as seconds). It must not block its key: any write replaces it.
pub async fn an_impossible_stored_time_never_blocks_its_key(store: &dyn OnlineStore) {
    let l = Arc::new(driver_view());
    let v = |x: f64| [Scalar::Float64(x), Scalar::Int64(1)];
    let poisoned = 1_796_300_000_000 * 1_000_000;
    assert_eq!(put(store, &l, 1, poisoned, None, &v(9.0)).await.written, 1);
    assert_eq!(put(store, &l, 1, 5 * HOUR, None, &v(0.5)).await.written, 1);
    assert_eq!(values(&get_one(store, &l, 1, 6 * HOUR).await), v(0.5));
    // From then on, newer-wins as usual.
    assert_eq!(put(store, &l, 1, 4 * HOUR, None, &v(0.1)).await.skipped, 1);
    // The last instant that can be stored (the year 2200, less 1 µs) still holds its key.
    let latest = skewless_defs::instant::LATEST;
    assert_eq!(put(store, &l, 2, latest - 1, None, &v(1.0)).await.written, 1);
    assert_eq!(put(store, &l, 2, 5 * HOUR, None, &v(0.5)).await.skipped, 1);
    assert_eq!(put(store, &l, 3, latest, None, &v(1.0)).await.written, 1);
    assert_eq!(put(store, &l, 3, 5 * HOUR, None, &v(0.5)).await.written, 1);
}

pub async fn statuses_follow_the_injected_clock(store: &dyn OnlineStore) {
    let l = Arc::new(driver_view());
    put(
        store,
        &l,
        7,
        10 * HOUR,
        Some(10 * HOUR),
        &[Scalar::Float64(1.0), Scalar::Null],
    )
    .await;
    let status_at = |now| {
        let l = Arc::clone(&l);
        async move { get_one(store, &l, 7, now).await }
    };
    // Inclusive ttl bounds: present at event time and at event time + ttl.
    for now in [10 * HOUR, 11 * HOUR, 12 * HOUR] {
        let row = status_at(now).await;
        assert_eq!(row[0].status, Status::Present, "at {now}");
        assert_eq!(values(&row), vec![Scalar::Float64(1.0), Scalar::Null]);
    }
    let stale = status_at(12 * HOUR + 1).await;
    assert!(
        stale
            .iter()
            .all(|v| v.status == Status::OutsideMaxAge && v.value == Scalar::Null)
    );
    assert_eq!(stale[0].event_timestamp, Some(10 * HOUR));
    // Before the event: not served.
    assert_eq!(status_at(10 * HOUR - 1).await[0].status, Status::NotFound);

    // `as_of: available`: only once it landed.
    let a = Arc::new(view(
        "late",
        &[("driver_id", KeyType::Int64)],
        &[("x", FeatureType::Int64)],
        None,
        AsOf::Available,
    ));
    put(store, &a, 7, HOUR, Some(3 * HOUR), &[Scalar::Int64(3)]).await;
    assert_eq!(get_one(store, &a, 7, 3 * HOUR - 1).await[0].status, Status::NotFound);
    assert_eq!(get_one(store, &a, 7, 3 * HOUR).await[0].value, Scalar::Int64(3));
    // No ttl: never too old.
    assert_eq!(get_one(store, &a, 7, i64::MAX).await[0].status, Status::Present);
}

pub async fn another_version_reads_as_not_found_and_is_counted(store: &dyn OnlineStore) {
    let l = Arc::new(driver_view());
    put(store, &l, 3, HOUR, None, &[Scalar::Float64(1.0), Scalar::Int64(2)]).await;
    let newer = Arc::new(
        ViewLayout::from_parts(
            "test",
            "driver_stats",
            "ffeeddccbbaa9988",
            l.keys.clone(),
            vec![("rate".into(), FeatureType::String)],
            l.ttl_micros,
            l.as_of,
            true,
        )
        .unwrap(),
    );
    let found = lookup(store, &[all(&newer)], &[driver(3)], HOUR).await.unwrap();
    assert_eq!(found.rows[0][0].status, Status::NotFound);
    assert_eq!(found.stats.other_version, 1);
    // The new version's write replaces the old value even with an older event time.
    put(store, &newer, 3, 0, None, &[Scalar::String("x".into())]).await;
    assert_eq!(
        get_one(store, &newer, 3, HOUR).await[0].value,
        Scalar::String("x".into())
    );
    assert_eq!(get_one(store, &l, 3, HOUR).await[0].status, Status::NotFound);
}

pub async fn composite_keys_several_views_and_duplicates(store: &dyn OnlineStore) {
    let pair = Arc::new(view(
        "pair",
        &[("driver_id", KeyType::Int64), ("zone", KeyType::String)],
        &[("n", FeatureType::Int32)],
        None,
        AsOf::Event,
    ));
    let d = Arc::new(driver_view());
    for (id, zone, n) in [(1, "a", 10), (1, "b", 11), (2, "a", 20)] {
        let key = pair.key(&[KeyValue::Int64(id), KeyValue::String(zone.into())]).unwrap();
        let value = pair.value(HOUR, None, &[Scalar::Int32(n)]).unwrap();
        store.write(vec![(key, value)], None).await.unwrap();
    }
    put(store, &d, 1, HOUR, None, &[Scalar::Float64(0.1), Scalar::Int64(5)]).await;
    let e = |id: i64, zone: &str| {
        entity(&[
            ("driver_id", KeyValue::Int64(id)),
            ("zone", KeyValue::String(zone.into())),
        ])
    };
    let entities = [e(1, "a"), e(1, "b"), e(2, "a"), e(1, "a"), e(3, "a")];
    let selections = [
        all(&pair),
        Selection {
            layout: Arc::clone(&d),
            features: vec![1],
        },
    ];
    let found = lookup(store, &selections, &entities, HOUR).await.unwrap();
    let got: Vec<Vec<Scalar>> = found.rows.iter().map(|r| values(r)).collect();
    assert_eq!(
        got,
        vec![
            vec![Scalar::Int32(10), Scalar::Int64(5)],
            vec![Scalar::Int32(11), Scalar::Int64(5)],
            vec![Scalar::Int32(20), Scalar::Null],
            vec![Scalar::Int32(10), Scalar::Int64(5)],
            vec![Scalar::Null, Scalar::Null],
        ]
    );
    // (1,a),(1,b),(2,a),(3,a) for `pair`; 1, 2, 3 for `driver_stats`: 7 distinct keys of 10.
    assert_eq!(found.stats.keys_read, 7);
    // A missing key or a mistyped one is an error naming it.
    let err = lookup(store, &selections, &[driver(1)], HOUR)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`zone`") && err.contains("pair"), "{err}");
    let mut wrong = driver(1);
    wrong.insert("zone".into(), KeyValue::Int64(4));
    let err = lookup(store, &selections, &[wrong], HOUR)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("zone") && err.contains("string"), "{err}");
    // String keys keep leading zeros: "007" is not "7".
    let s = Arc::new(view(
        "s",
        &[("code", KeyType::String)],
        &[("x", FeatureType::Bool)],
        None,
        AsOf::Event,
    ));
    let key = s.key(&[KeyValue::String("007".into())]).unwrap();
    store
        .write(vec![(key, s.value(0, None, &[Scalar::Bool(true)]).unwrap())], None)
        .await
        .unwrap();
    let code = |c: &str| entity(&[("code", KeyValue::String(c.into()))]);
    let found = lookup(store, &[all(&s)], &[code("007"), code("7")], 0).await.unwrap();
    assert_eq!(values(&found.rows[0]), vec![Scalar::Bool(true)]);
    assert_eq!(found.rows[1][0].status, Status::NotFound);
}

pub async fn every_type_round_trips(store: &dyn OnlineStore) {
    let features: Vec<(&str, FeatureType)> = FeatureType::ALL.iter().map(|t| (t.name(), *t)).collect();
    let l = Arc::new(view(
        "types",
        &[("driver_id", KeyType::Int64)],
        &features,
        None,
        AsOf::Event,
    ));
    let rows: Vec<(i64, Vec<Scalar>)> = vec![
        (
            i64::MIN,
            vec![
                Scalar::Bool(true),
                Scalar::Int32(i32::MAX),
                Scalar::Int64(i64::MIN),
                Scalar::Float32(f32::NAN),
                Scalar::Float64(f64::INFINITY),
                Scalar::String("zero\0byte, ünïcödé, {braces}".into()),
                Scalar::Timestamp(i64::MAX),
            ],
        ),
        (
            i64::MAX,
            vec![
                Scalar::Bool(false),
                Scalar::Int32(i32::MIN),
                Scalar::Int64(i64::MAX),
                Scalar::Float32(f32::NEG_INFINITY),
                Scalar::Float64(-0.0),
                Scalar::String(String::new()),
                Scalar::Timestamp(i64::MIN),
            ],
        ),
        (0, vec![Scalar::Null; 7]),
        (
            -1,
            vec![
                Scalar::Null,
                Scalar::Int32(0),
                Scalar::Null,
                Scalar::Float32(1.5),
                Scalar::Float64(f64::NAN),
                Scalar::Null,
                Scalar::Timestamp(-1),
            ],
        ),
    ];
    for (id, (ts, values)) in rows.iter().enumerate() {
        put(store, &l, id as i64, *ts, Some(*ts), values).await;
    }
    let entities: Vec<Entity> = (0..rows.len() as i64).map(driver).collect();
    let found = lookup(store, &[all(&l)], &entities, i64::MAX).await.unwrap();
    for (row, (ts, want)) in found.rows.iter().zip(&rows) {
        assert!(
            row.iter()
                .all(|v| v.status == Status::Present && v.event_timestamp == Some(*ts))
        );
        for (got, want) in row.iter().zip(want) {
            match (&got.value, want) {
                (Scalar::Float32(a), Scalar::Float32(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                (Scalar::Float64(a), Scalar::Float64(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                (a, b) => assert_eq!(a, b),
            }
        }
    }
}

/// Writers race on the same keys, each sending every version in its own order: the store
/// must end with the greatest value per key, whatever the interleaving.
pub async fn concurrent_writers_never_leave_an_older_value(store: Arc<dyn OnlineStore>) {
    let l = Arc::new(driver_view());
    let keys = 40i64;
    let versions = 12i64;
    let mut tasks = Vec::new();
    for writer in 0..6u64 {
        let (store, l) = (Arc::clone(&store), Arc::clone(&l));
        tasks.push(tokio::spawn(async move {
            let mut order: Vec<(i64, i64)> = (0..keys).flat_map(|k| (0..versions).map(move |v| (k, v))).collect();
            // A different deterministic shuffle per writer.
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ writer;
            for i in (1..order.len()).rev() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            for batch in order.chunks(37) {
                let entries = batch
                    .iter()
                    .map(|(k, v)| {
                        let key = l.key(&[KeyValue::Int64(*k)]).unwrap();
                        // Versions 2j and 2j+1 share an event time; created breaks the tie.
                        let value = l
                            .value(
                                v / 2 * HOUR,
                                Some(v % 2),
                                &[Scalar::Float64(*v as f64), Scalar::Int64(*k)],
                            )
                            .unwrap();
                        (key, value)
                    })
                    .collect();
                store.write(entries, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let entities: Vec<Entity> = (0..keys).map(driver).collect();
    let now = (versions - 1) / 2 * HOUR;
    let found = lookup(&*store, &[all(&l)], &entities, now).await.unwrap();
    for (k, row) in found.rows.iter().enumerate() {
        assert_eq!(
            values(row),
            vec![Scalar::Float64((versions - 1) as f64), Scalar::Int64(k as i64)],
            "key {k}"
        );
    }
}

pub async fn keys_expire(store: &dyn OnlineStore) {
    let l = Arc::new(driver_view());
    let key = l.key(&[KeyValue::Int64(9)]).unwrap();
    let value = l.value(HOUR, None, &[Scalar::Null, Scalar::Null]).unwrap();
    store
        .write(vec![(key.clone(), value.clone())], Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        store.read(std::slice::from_ref(&key)).await.unwrap(),
        vec![Some(value.clone())]
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.read(std::slice::from_ref(&key)).await.unwrap(), vec![None]);
    // Nothing expired is left behind to purge (Redis already dropped it; the embedded store
    // purges it now), and purging again finds nothing.
    store.purge_expired().await.unwrap();
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    // An expired key is written again even by an older value.
    let older = l.value(0, None, &[Scalar::Null, Scalar::Null]).unwrap();
    assert_eq!(store.write(vec![(key.clone(), older)], None).await.unwrap().written, 1);
}

/// Fresh stores, each with what keeps it alive (a temporary directory or a server).
type Fresh = (Box<dyn std::any::Any>, Arc<dyn OnlineStore>);

async fn embedded() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let store = skewless_online::EmbeddedStore::open(&dir.path().join("online/store.redb")).unwrap();
    (Box::new(dir), Arc::new(store))
}

async fn redis() -> Fresh {
    let server = skewless_testkit::RedisServer::start();
    let store = skewless_online::RedisStore::connect(&server.url()).await.unwrap();
    (Box::new(server), Arc::new(store))
}

/// The same Redis store over TLS (`rediss://`).
async fn redis_tls() -> Fresh {
    let server = skewless_testkit::RedisServer::start_tls();
    let store = skewless_online::RedisStore::connect(&server.url()).await.unwrap();
    (Box::new(server), Arc::new(store))
}

/// A Redis Cluster of three masters (`redis+cluster://`).
async fn redis_cluster() -> Fresh {
    let cluster = skewless_testkit::RedisCluster::start();
    let store = skewless_online::RedisStore::connect(&cluster.url()).await.unwrap();
    (Box::new(cluster), Arc::new(store))
}

/// One test module per store: `$case`s take `&dyn OnlineStore`, `$shared` ones an `Arc`.
macro_rules! suite {
    ($store:ident; $($case:ident),*; $($shared:ident),*) => {
        mod $store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_alive, store) = super::$store().await;
                super::$case(&*store).await;
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $shared() {
                let (_alive, store) = super::$store().await;
                super::$shared(store).await;
            })*
        }
    };
}

macro_rules! conformance {
    ($($store:ident),*) => {
        $(suite!(
            $store;
            missing_keys_read_as_not_found,
            writes_are_newer_wins_and_idempotent,
            an_impossible_stored_time_never_blocks_its_key,
            statuses_follow_the_injected_clock,
            another_version_reads_as_not_found_and_is_counted,
            composite_keys_several_views_and_duplicates,
            every_type_round_trips,
            keys_expire;
            concurrent_writers_never_leave_an_older_value
        );)*
    };
}

conformance!(embedded, redis, redis_tls, redis_cluster);
#[tokio::test]
async fn the_embedded_store_purges_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = skewless_online::EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    let l = driver_view();
    let entries = |ids: std::ops::Range<i64>| {
        ids.map(|id| {
            let key = l.key(&[KeyValue::Int64(id)]).unwrap();
            (key, l.value(HOUR, None, &[Scalar::Null, Scalar::Null]).unwrap())
        })
        .collect::<Vec<_>>()
    };
    store
        .write(entries(0..5), Some(Duration::from_millis(100)))
        .await
        .unwrap();
    store.write(entries(5..8), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.purge_expired().await.unwrap(), 5);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let keys: Vec<Vec<u8>> = entries(0..8).into_iter().map(|(k, _)| k).collect();
    let live = store.read(&keys).await.unwrap();
    assert_eq!(live.iter().filter(|v| v.is_some()).count(), 3);
}
