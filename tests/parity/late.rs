//! `Project::parity` on a hand-made project whose late rows are known: one row landed two
//! hours after its event, another was corrected later. The harness must agree on every value
//! (hindsight), count exactly the values an availability-ordered store could not yet serve as
//! `late` for the `as_of: event` view, and none for the `as_of: available` one. And it must
//! fail, with the right cause, when a fault is planted in the online path.

use skewless::Project;
use skewless::parity::{ParityOptions, PlantedFault};
use skewless::training::FeatureSelection;

const DEFS: &str = r#"
project: late
entities:
  account:
    keys: { account_id: int64 }
sources:
  balances:
    path: data/balances.csv
    timestamp: event_timestamp
    created: created
feature_views:
  by_event:
    entity: account
    source: balances
    as_of: event
    features:
      balance: float64
  by_arrival:
    entity: account
    source: balances
    as_of: available
    features:
      balance: float64
  edge:
    entity: account
    source: balances
    ttl: 2h
    features:
      balance: float64
"#;

// Account 1: a 10:00 row on time, an 11:00 row that landed at 13:00.
// Account 2: a 09:00 row on time, corrected (same event time, later created) at 12:30.
// Account 3: on time only.
const ROWS: &str = "account_id,event_timestamp,created,balance
1,2026-01-01T10:00:00Z,2026-01-01T10:00:00Z,10.0
1,2026-01-01T11:00:00Z,2026-01-01T13:00:00Z,11.0
2,2026-01-01T09:00:00Z,2026-01-01T09:00:00Z,20.0
2,2026-01-01T09:00:00Z,2026-01-01T12:30:00Z,21.0
3,2026-01-01T08:00:00Z,2026-01-01T08:00:00Z,30.0
";

const SPINE: &str = "account_id,event_timestamp
1,2026-01-01T00:00:00Z
2,2026-01-01T00:00:00Z
3,2026-01-01T00:00:00Z
4,2026-01-01T00:00:00Z
";

fn instant(text: &str) -> i64 {
    skewless::online::parse_instant(text).unwrap()
}

/// The hand-made project, applied.
fn project() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("feature_defs")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), DEFS).unwrap();
    std::fs::write(dir.path().join("data/balances.csv"), ROWS).unwrap();
    std::fs::write(dir.path().join("spine.csv"), SPINE).unwrap();
    let project = Project::new(dir.path().join("feature_defs"), dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    (dir, project)
}

fn options(dir: &tempfile::TempDir, features: &[&str], at: &[&str], planted: Option<PlantedFault>) -> ParityOptions {
    ParityOptions {
        spine: dir.path().join("spine.csv").into(),
        selection: FeatureSelection::Features(features.iter().map(|f| f.to_string()).collect()),
        timestamp_column: "event_timestamp".into(),
        at: at.iter().map(|t| instant(t)).collect(),
        sample: None,
        seed: 0,
        store: None,
        planted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_counted_exactly_and_never_called_mismatches() {
    let (dir, project) = project();
    let options = |at: &[&str]| options(&dir, &["by_event:balance", "by_arrival:balance"], at, None);
    let ctx = skewless::engine_session();

    // 12:00: account 1's 11:00 row (landed 13:00) and account 2's correction (12:30) are
    // known to the training set of `by_event`, not yet to a store fed as rows arrive.
    let report = project.parity(&ctx, &options(&["2026-01-01T12:00:00Z"])).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    let by_event = &report.views["by_event"];
    let by_arrival = &report.views["by_arrival"];
    assert_eq!(
        (by_event.values, by_event.present, by_event.late),
        (4, 3, 2),
        "{report:?}"
    );
    assert_eq!(
        (by_arrival.values, by_arrival.present, by_arrival.late),
        (4, 3, 0),
        "{report:?}"
    );

    // 14:00: everything has landed, nothing is late. 09:30: account 1 has no row yet, but
    // account 2's 09:00 event is already corrected in the training set, by a row that lands at
    // 12:30: late. So one late value over both instants, and 3 + 2 present.
    let report = project
        .parity(&ctx, &options(&["2026-01-01T14:00:00Z", "2026-01-01T09:30:00Z"]))
        .await
        .unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(report.views["by_event"].late, 1, "{report:?}");
    assert_eq!(report.views["by_event"].present, 3 + 2, "{report:?}");
    assert_eq!(report.views["by_arrival"].late, 0, "{report:?}");
    // No watermark was recorded for the harness's stores.
    assert!(!dir.path().join(".skewless/registry/materialized.json").exists());
}

/// Planted faults in the online path are reported, with their cause: a lookup clock 1 µs
/// ahead loses the row that sits exactly on the ttl bound (both paths keep it: the bound is
/// inclusive), and a store materialized at 09:00 but read at 12:00 lacks account 1's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_faults_are_caught_with_their_cause() {
    let (dir, project) = project();
    let ctx = skewless::engine_session();
    // 13:00 with a 2 h ttl: account 1's 11:00 row is exactly on the bound.
    let at = ["2026-01-01T13:00:00Z"];
    let clean = project
        .parity(&ctx, &options(&dir, &["edge:balance"], &at, None))
        .await
        .unwrap();
    assert!(clean.mismatches.is_empty(), "{:?}", clean.mismatches);
    assert_eq!(clean.views["edge"].present, 1, "{clean:?}");
    let ahead = Some(PlantedFault::OnlineClockAhead(1));
    let report = project
        .parity(&ctx, &options(&dir, &["edge:balance"], &at, ahead))
        .await
        .unwrap();
    assert_eq!(report.mismatches.len(), 1, "{:?}", report.mismatches);
    let m = &report.mismatches[0];
    assert_eq!((m.view.as_str(), m.key.as_str()), ("edge", "account_id=1"), "{m:?}");
    assert_eq!(
        (m.offline.as_str(), m.status.as_str()),
        ("Float64(11.0)", "OUTSIDE_MAX_AGE"),
        "{m:?}"
    );
    assert!(m.cause.starts_with("ttl edge"), "{m:?}");

    let stale = Some(PlantedFault::StaleStore(instant("2026-01-01T09:00:00Z")));
    let features = ["by_event:balance", "by_arrival:balance"];
    let report = project
        .parity(&ctx, &options(&dir, &features, &["2026-01-01T12:00:00Z"], stale))
        .await
        .unwrap();
    assert_eq!(report.mismatches.len(), 2, "{:?}", report.mismatches);
    for m in &report.mismatches {
        assert_eq!(
            (m.key.as_str(), m.status.as_str()),
            ("account_id=1", "NOT_FOUND"),
            "{m:?}"
        );
        assert!(m.cause.starts_with("online found no value"), "{m:?}");
    }
}
