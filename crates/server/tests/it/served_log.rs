//! The served log and `Project::consistency`: lookups logged by the server and recomputed
//! offline agree where the store was fresh, differ with a cause where it was stale, keys are
//! sampled the same way every time, and the log keeps to its byte budget.

use super::*;
use skewless::served_log::ServedLogOptions;

fn logging(dir: &Path, sample: f64, max_bytes: u64) -> Options {
    Options {
        served_log: Some(ServedLogOptions {
            dir: dir.to_path_buf(),
            sample,
            max_bytes,
        }),
        ..Options::default()
    }
}

/// Stops the server (its served log flushes) but keeps its project directory.
async fn halt(server: &mut Server) {
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut server.task)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
}

async fn lookup_drivers(addr: std::net::SocketAddr, at: &str, drivers: std::ops::Range<i64>) {
    let entities: Vec<Value> = drivers
        .map(|d| json!({"driver_id": d, "customer_id": 5001 + (d - 1001) % 150}))
        .collect();
    let (status, body) = post(
        addr,
        "/v1/features",
        json!({
            "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:trips_per_hour", "customer_profile:tier"],
            "entities": entities,
            "at": at,
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_values_are_logged_and_recomputed_offline() {
    let ctx = skewless::engine_session();
    // The store was materialized up to AT: lookups at AT agree with the training set.
    let fresh = tempfile::tempdir().unwrap();
    let mut server = start(logging(fresh.path(), 1.0, 1 << 30)).await;
    lookup_drivers(server.addr, AT, 1001..1041).await;
    halt(&mut server).await;
    let report = server.project.consistency(&ctx, fresh.path()).await.unwrap();
    assert_eq!(report.lookups, 40);
    assert_eq!(report.features.len(), 3, "{report:?}");
    for (feature, f) in &report.features {
        assert_eq!((f.values, f.mismatches), (40, 0), "{feature}: {f:?}");
    }

    // A day later the store is stale (nothing materialized since): the training set knows
    // newer rows, and the report says why they differ. Half the keys are sampled, each every time.
    let stale = tempfile::tempdir().unwrap();
    let mut server = start(logging(stale.path(), 0.5, 1 << 30)).await;
    let later = skewless::online::format_instant(skewless::online::parse_instant(AT).unwrap() + 24 * HOUR);
    lookup_drivers(server.addr, &later, 1001..1081).await;
    lookup_drivers(server.addr, &later, 1001..1081).await;
    halt(&mut server).await;
    let report = server.project.consistency(&ctx, stale.path()).await.unwrap();
    assert!(
        report.lookups > 40 && report.lookups < 120,
        "{} of 160 lookups sampled",
        report.lookups
    );
    assert_eq!(
        report.lookups % 2,
        0,
        "a key was sampled in one request and not the other"
    );
    let conv = &report.features["driver_hourly_stats:conv_rate"];
    assert!(conv.mismatches > 0, "{conv:?}");
    assert!(
        conv.causes
            .keys()
            .all(|c| c.starts_with("values differ") || c.starts_with("online had no value")),
        "{conv:?}"
    );
    assert_eq!(conv.causes.values().sum::<usize>(), conv.mismatches);

    // A budget smaller than one file keeps nothing.
    let tiny = tempfile::tempdir().unwrap();
    let mut server = start(logging(tiny.path(), 1.0, 1)).await;
    lookup_drivers(server.addr, AT, 1001..1011).await;
    halt(&mut server).await;
    assert!(skewless::served_log::files(tiny.path()).unwrap().is_empty());
}
