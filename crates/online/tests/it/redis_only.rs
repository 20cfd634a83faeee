//! What only Redis has: URLs with AUTH and a database, a server that goes away and comes
//! back, and Redis Cluster hash slots.

use std::time::{Duration, Instant};

use skewless_defs::{AsOf, FeatureType, KeyType};
use skewless_online::{KeyValue, OnlineStore, RedisStore, Scalar};
use skewless_testkit::RedisServer;

use crate::conformance::view;

fn one_entry(id: i64, ts: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let l = view(
        "v",
        &[("driver_id", KeyType::Int64)],
        &[("x", FeatureType::Int64)],
        None,
        AsOf::Event,
    );
    vec![(
        l.key(&[KeyValue::Int64(id)]).unwrap(),
        l.value(ts, None, &[Scalar::Int64(ts)]).unwrap(),
    )]
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn url_with_password_and_database() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let store = RedisStore::connect(&url).await.unwrap();
    assert_eq!(store.write(one_entry(1, 1), None).await.unwrap().written, 1);
    let mut c = raw(&url).await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 1, "the key lands in database 3");
    let mut c0 = raw(&format!("redis://:s3cret@127.0.0.1:{}/0", server.port())).await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut c0).await.unwrap();
    assert_eq!(size, 0);

    let wrong = format!("redis://:wrong@127.0.0.1:{}/3", server.port());
    let err = RedisStore::connect(&wrong).await.unwrap_err().to_string();
    assert!(!err.contains("wrong@"), "the password must not be shown: {err}");
    assert!(err.contains(&format!("127.0.0.1:{}", server.port())), "{err}");
    assert!(err.contains("wrong user name or password"), "{err}");

    // No password at all: said at connect, not as a protocol error on the first big write.
    let none = format!("redis://127.0.0.1:{}/3", server.port());
    let err = RedisStore::connect(&none).await.unwrap_err().to_string();
    assert!(err.contains("the server requires a password"), "{err}");
}

#[tokio::test]
async fn a_stopped_server_is_a_clear_error_then_the_store_recovers() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(store.write(one_entry(1, 1), None).await.unwrap().written, 1);

    server.stop();
    let err = store.write(one_entry(2, 2), None).await.unwrap_err().to_string();
    assert!(err.contains(&server.url()), "the error names the server: {err}");
    let err = store
        .read(&[one_entry(1, 1)[0].0.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&server.url()), "{err}");

    server.restart();
    // The manager reconnects on the next request (the first may still see the old socket).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.write(one_entry(3, 3), None).await {
            Ok(summary) => {
                // The restarted server kept nothing, and the script is loaded again on demand.
                assert_eq!(summary.written, 1);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery after restart: {e}"),
        }
    }
    let key = one_entry(3, 3)[0].0.clone();
    assert!(store.read(&[key]).await.unwrap()[0].is_some());
}

/// On a cluster-enabled server, `CLUSTER KEYSLOT` shows that every view of one entity key
/// hashes to one slot, so a lookup of several views is a single-slot command.
#[tokio::test]
async fn views_of_one_entity_share_a_cluster_slot() {
    let server = RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
    let mut c = raw(&server.url()).await;
    let views: Vec<_> = ["driver_stats", "driver_trips", "x"]
        .iter()
        .map(|name| {
            view(
                name,
                &[("driver_id", KeyType::Int64), ("city", KeyType::String)],
                &[("x", FeatureType::Int64)],
                None,
                AsOf::Event,
            )
        })
        .collect();
    let mut slots_of_entities = std::collections::BTreeSet::new();
    for id in [0i64, 1, 1001, 0x7d7d, -5, i64::MAX] {
        for city in ["", "ams", "}{"] {
            let key = [KeyValue::Int64(id), KeyValue::String(city.into())];
            let mut slots = std::collections::BTreeSet::new();
            for v in &views {
                let slot: i64 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(v.key(&key).unwrap())
                    .query_async(&mut c)
                    .await
                    .unwrap();
                slots.insert(slot);
            }
            assert_eq!(slots.len(), 1, "entity ({id}, {city:?}) spans slots {slots:?}");
            slots_of_entities.extend(slots);
        }
    }
    // And entities spread over slots (the tag is the key, not a constant).
    assert!(slots_of_entities.len() > 10, "{slots_of_entities:?}");
}

#[tokio::test]
async fn rediss_urls_speak_tls_and_verify_certificates() {
    let server = RedisServer::start_tls();
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    let store = RedisStore::connect(&url).await.unwrap();
    assert_eq!(store.write(one_entry(1, 1), None).await.unwrap().written, 1);
    let (key, value) = one_entry(1, 1).remove(0);
    assert_eq!(store.read(&[key]).await.unwrap()[0], Some(value));

    // Without `#insecure` the self-signed certificate is refused, with a message naming the server.
    let verified = format!("rediss://127.0.0.1:{}/0", server.port());
    let err = RedisStore::connect(&verified).await.unwrap_err().to_string();
    assert!(err.contains(&verified), "{err}");
    // Plain text to a TLS-only port fails too, instead of hanging.
    let plain = format!("redis://127.0.0.1:{}", server.port());
    assert!(RedisStore::connect(&plain).await.is_err());
}

/// New keys take `SET … NX` and the rest the newer-wins script; a store that has seen mostly
/// existing keys sends chunks straight to the script. Either way, a write of new keys, newer
/// values and older values (3,000 keys: several chunks) leaves exactly the newest value of
/// each key, counts what it wrote, and gives every written key its expiry.
#[tokio::test]
async fn new_keys_skip_the_script_and_both_ways_keep_the_newest_value() {
    let server = RedisServer::start();
    let mut conn = raw(&server.url()).await;
    let entries = |ids: std::ops::Range<i64>, ts: i64| -> Vec<(Vec<u8>, Vec<u8>)> {
        ids.flat_map(|id| one_entry(id, ts)).collect()
    };
    let expiry = Some(Duration::from_secs(3600));
    for round in 0..2 {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
        // Keys 0..1000 hold ts 10 before the write under test.
        store.write(entries(0..1000, 10), expiry).await.unwrap();
        if round == 1 {
            // Rewrites of existing keys turn the store to the script for later chunks.
            for _ in 0..4 {
                let again = store.write(entries(0..1000, 10), expiry).await.unwrap();
                assert_eq!((again.written, again.skipped), (0, 1000));
            }
        }
        // Keys 0..500 get an older value (ts 5: kept out), 500..1000 a newer one (ts 20), and
        // 1000..3000 are new.
        let mut batch = entries(0..500, 5);
        batch.extend(entries(500..1000, 20));
        batch.extend(entries(1000..3000, 20));
        let summary = store.write(batch, expiry).await.unwrap();
        assert_eq!((summary.written, summary.skipped), (2500, 500), "round {round}");
        for (id, ts) in [(0, 10), (499, 10), (500, 20), (999, 20), (1000, 20), (2999, 20)] {
            let (key, value) = one_entry(id, ts).remove(0);
            let stored = store.read(std::slice::from_ref(&key)).await.unwrap();
            assert_eq!(stored, vec![Some(value)], "round {round}, key {id}");
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
            assert!(
                ttl > 3_500_000 && ttl <= 3_600_000,
                "round {round}, key {id}: PTTL {ttl}"
            );
        }
    }
}
