//! `skewless serve` in process ([`skewless_server::start`]): shards on one port sharing metrics,
//! a reload reaching every shard, the embedded store lent while it serves, a port in use
//! refused, and a clean stop that withdraws the handoff.

use super::*;

use skewless::online_store::served::handoff_path;
use skewless_server::{ServeConfig, ServeError, ServeEvent};

/// The applied version an answer of `/v1/features` came from.
async fn applied_version(addr: std::net::SocketAddr) -> Option<u64> {
    let body = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": AT});
    let (status, answer) = post(addr, "/v1/features", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["applied_version"].as_u64()
}

#[test]
fn sharded_server_shares_metrics_reloads_every_shard_and_lends_its_store() {
    let client = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let path = dir.path().join("s.redb");
    let config = StoreConfig::Embedded(path.clone());
    client.block_on(async {
        let store = online_store::open(&config).await.unwrap();
        materialize(&project, &*store).await;
    });
    let (events, heard) = std::sync::mpsc::channel();
    let running = skewless_server::start(
        ServeConfig {
            project: project.dirs(),
            store: config.clone(),
            addr: "127.0.0.1:0".into(),
            threads: 2,
            options: Options::default(),
            // Only a reload moves the shards on in this test.
            registry_poll: std::time::Duration::from_secs(3600),
        },
        move |event| drop(events.send(event)),
    )
    .unwrap();
    let addr = running.local_addr();
    assert_eq!(running.applied_seq(), 1);
    assert!(handoff_path(&path).exists(), "the held store is lent while serving");

    // Twenty connections, spread over the shards by the kernel: one set of metrics.
    client.block_on(async {
        for _ in 0..20 {
            assert_eq!(applied_version(addr).await, Some(1));
        }
        let (_, metrics) = request(addr, "GET", "/metrics", b"").await;
        assert_eq!(
            metric(
                &metrics,
                r#"skewless_requests_total{route="/v1/features",status="200"}"#
            ),
            20.0
        );
    });

    // Another command reaches the held store through the server: materializing again works.
    client.block_on(async {
        let lent = online_store::open(&config).await.unwrap();
        assert!(lent.describe().contains("through the server"), "{}", lent.describe());
        materialize(&project, &*lent).await;
    });

    // A second server on the same port is refused, not given a share of it.
    let second = skewless_server::start(
        ServeConfig {
            project: project.dirs(),
            store: StoreConfig::Embedded(dir.path().join("other.redb")),
            addr: addr.to_string(),
            threads: 1,
            options: Options::default(),
            registry_poll: std::time::Duration::from_secs(3600),
        },
        |_| {},
    );
    assert!(matches!(second, Err(ServeError::Listen { .. })), "{second:?}");

    // A new apply, then a reload: every shard answers from version 2.
    std::fs::write(
        project.defs_dir.join("extra.yaml"),
        "feature_services:\n  extra:\n    features: [driver_hourly_stats:conv_rate]\n",
    )
    .unwrap();
    project.apply(false, None).unwrap();
    running.reloader().reload();
    let event = heard.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(event, ServeEvent::Reloaded { applied_seq: 2 });
    client.block_on(async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut in_a_row = 0;
        while in_a_row < 20 {
            assert!(std::time::Instant::now() < deadline, "not every shard reloaded");
            in_a_row = if applied_version(addr).await == Some(2) {
                in_a_row + 1
            } else {
                0
            };
        }
    });

    // Stop: every shard ends, the port closes and the handoff is withdrawn.
    running.wait(async {}).unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err(), "still listening");
    assert!(!handoff_path(&path).exists(), "the handoff outlived the server");
}
