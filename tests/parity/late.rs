//! `Project::parity` on a hand-made project whose late rows are known: one row landed two
//! hours after its event, another was corrected later. The harness must agree on every value
//! (hindsight), count exactly the values an availability-ordered store could not yet serve as
//! `late` for the `as_of: event` view, and none for the `as_of: available` one.

use skewless::Project;
use skewless::parity::ParityOptions;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_counted_exactly_and_never_called_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("feature_defs")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), DEFS).unwrap();
    std::fs::write(dir.path().join("data/balances.csv"), ROWS).unwrap();
    std::fs::write(dir.path().join("spine.csv"), SPINE).unwrap();
    let project = Project::new(dir.path().join("feature_defs"), dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    let options = |at: &[&str]| ParityOptions {
        spine: dir.path().join("spine.csv"),
        selection: FeatureSelection::Features(vec!["by_event:balance".into(), "by_arrival:balance".into()]),
        timestamp_column: "event_timestamp".into(),
        at: at.iter().map(|t| instant(t)).collect(),
        sample: None,
        seed: 0,
    };
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
