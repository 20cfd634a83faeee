//! The parity harness can fail: a fault planted in the online path is reported, with the
//! right cause. (The ttl bound off by 1 µs and the stale store are in `parity/late.rs`.)
//!
//! These faults are switched on process-wide (`skewless_defs::planted`), so they live in
//! their own test binary with one test: nothing else runs beside them in this process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use skewless::Project;
use skewless::parity::{ParityOptions, PlantedFault};
use skewless::training::FeatureSelection;

const DEFS: &str = r#"
project: planted
entities:
  account: { keys: { account_id: int64 } }
sources:
  tx: { path: data/tx.csv, timestamp: ts, created: created }
feature_views:
  latest:
    entity: account
    source: tx
    features:
      amount: float64
  capped:
    entity: account
    source: tx
    features:
      capped_amount: { type: float64, expr: amount, contract: { max: 100 } }
  sums:
    entity: account
    source: tx
    tile: 1h
    aggregations:
      total: { function: sum, expr: amount, windows: [1d] }
"#;

/// Account 1: two rows with the same `(ts, created)` (the greater value wins). Account 2: a
/// later row above `capped`'s max. Account 3: 0.1, 0.2 and 0.3 in three tiles, whose exact
/// sum is 0.6 and whose naive sum is 0.6000000000000001.
const TX: &str = "account_id,ts,created,amount
1,2026-01-01T09:00:00Z,2026-01-01T09:00:00Z,10
1,2026-01-01T09:00:00Z,2026-01-01T09:00:00Z,20
2,2026-01-01T09:00:00Z,2026-01-01T09:00:00Z,50
2,2026-01-01T10:00:00Z,2026-01-01T10:00:00Z,500
3,2026-01-01T09:00:00Z,2026-01-01T09:00:00Z,0.1
3,2026-01-01T10:00:00Z,2026-01-01T10:00:00Z,0.2
3,2026-01-01T11:00:00Z,2026-01-01T11:00:00Z,0.3
";

fn options(dir: &std::path::Path, feature: &str, planted: Option<PlantedFault>) -> ParityOptions {
    ParityOptions {
        spine: dir.join("spine.csv").into(),
        selection: FeatureSelection::Features(vec![feature.to_string()]),
        timestamp_column: "ts".into(),
        at: vec![skewless::online::parse_instant("2026-01-01T12:00:00Z").unwrap()],
        sample: None,
        seed: 0,
        store: None,
        planted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_ties_contracts_and_float_order_are_caught_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("feature_defs")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), DEFS).unwrap();
    std::fs::write(dir.path().join("data/tx.csv"), TX).unwrap();
    std::fs::write(
        dir.path().join("spine.csv"),
        "account_id,ts\n1,2026-01-01T12:00:00Z\n2,2026-01-01T12:00:00Z\n3,2026-01-01T12:00:00Z\n",
    )
    .unwrap();
    let project = Project::new(dir.path().join("feature_defs"), dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    let ctx = skewless::engine_session();

    // (feature, fault, the key it shows on, offline value, online value, cause)
    let cases = [
        (
            "latest:amount",
            PlantedFault::ReversedTieBreak,
            "account_id=1",
            "Float64(20.0)",
            "Float64(10.0)",
            "tie",
        ),
        (
            "capped:capped_amount",
            PlantedFault::ContractsIgnored,
            "account_id=2",
            "Float64(50.0)",
            "Float64(500.0)",
            "contract",
        ),
        (
            "sums:total_1d",
            PlantedFault::NaiveFloatSums,
            "account_id=3",
            "Float64(0.6)",
            "Float64(0.6000000000000001)",
            "float order",
        ),
    ];
    for (feature, fault, key, offline, online, cause) in cases {
        let clean = project.parity(&ctx, &options(dir.path(), feature, None)).await.unwrap();
        assert!(clean.mismatches.is_empty(), "{feature}: {:?}", clean.mismatches);
        assert_eq!(clean.values(), 3, "{feature}: {clean:?}");

        let report = project
            .parity(&ctx, &options(dir.path(), feature, Some(fault)))
            .await
            .unwrap();
        assert_eq!(report.mismatches.len(), 1, "{fault:?}: {:?}", report.mismatches);
        let m = &report.mismatches[0];
        assert_eq!(
            (m.key.as_str(), m.offline.as_str(), m.online.as_str(), m.status.as_str()),
            (key, offline, online, "PRESENT"),
            "{fault:?}: {m:?}"
        );
        assert!(m.cause.starts_with(cause), "{fault:?}: {m:?}");
    }
    // The fault is gone once a run ends.
    let after = project
        .parity(&ctx, &options(dir.path(), "latest:amount", None))
        .await
        .unwrap();
    assert!(after.mismatches.is_empty(), "{:?}", after.mismatches);
}
