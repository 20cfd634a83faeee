//! Contracts enforced the same way by training sets, materialization and push, in each of
//! the three `on_violation` modes, with the values the mode must give written out by hand.

use skewless::Project;
use skewless::online::MaterializeOptions;
use skewless::online_store::{self, Scalar, StoreConfig};
use skewless::push::{PushInput, PushTo};
use skewless::training::{FeatureSelection, TrainingSetOptions};

/// 2026-01-01T00:00:00Z and one hour.
const T0: i64 = 1_767_225_600_000_000;
const HOUR: i64 = 3_600_000_000;

fn project(mode: &str) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("feature_defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("defs.yaml"),
        format!(
            r#"
project: contracts
entities:
  driver: {{ keys: {{ driver_id: int64 }} }}
sources:
  stats:
    path: data/stats.csv
    timestamp: ts
    push: true
feature_views:
  stats:
    entity: driver
    source: stats
    on_violation: {mode}
    features:
      rate: {{ type: float64, contract: {{ min: 0, max: 1 }} }}
      tier: {{ type: string, contract: {{ allowed: [a, b] }} }}
"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // Driver 1: a good row, then a newer one whose rate breaks max. Driver 2: a good row, then a
    // newer one whose tier is not allowed. Driver 3: only good rows.
    std::fs::write(
        dir.path().join("data/stats.csv"),
        "driver_id,ts,rate,tier\n\
         1,2026-01-01T00:00:00Z,0.5,a\n\
         1,2026-01-01T01:00:00Z,1.5,a\n\
         2,2026-01-01T00:00:00Z,0.25,a\n\
         2,2026-01-01T01:00:00Z,0.75,z\n\
         3,2026-01-01T01:00:00Z,1.0,b\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spine.csv"),
        "driver_id,ts\n1,2026-01-01T02:00:00Z\n2,2026-01-01T02:00:00Z\n3,2026-01-01T02:00:00Z\n",
    )
    .unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    (dir, project)
}

fn options(dir: &std::path::Path) -> TrainingSetOptions {
    TrainingSetOptions {
        spine: dir.join("spine.csv").into(),
        selection: FeatureSelection::Features(vec!["stats:rate".into(), "stats:tier".into()]),
        timestamp_column: "ts".into(),
        full_names: false,
    }
}

fn f(x: f64) -> Scalar {
    Scalar::Float64(x)
}

fn s(x: &str) -> Scalar {
    Scalar::String(x.into())
}

/// Materializes every view at 02:00 into a fresh embedded store in `dir`.
async fn materialize(
    dir: &std::path::Path,
    project: &Project,
) -> (
    std::sync::Arc<dyn skewless::online_store::OnlineStore>,
    Vec<skewless::online::ViewReport>,
) {
    let store = online_store::open(&StoreConfig::Embedded(dir.join("s.redb")))
        .await
        .unwrap();
    let options = MaterializeOptions {
        start: None,
        end: T0 + 2 * HOUR,
        incremental: false,
        views: Vec::new(),
    };
    let reports = project.materialize(&*store, &options, &|_| {}).await.unwrap();
    (store, reports)
}

/// The training set's (rate, tier) per driver, and what materialization serves.
async fn both_paths(dir: &std::path::Path, project: &Project) -> (Vec<(Scalar, Scalar)>, Vec<(Scalar, Scalar)>, usize) {
    let built = project
        .training_set(&skewless::engine_session(), &options(dir))
        .await
        .unwrap();
    let offline: Vec<(Scalar, Scalar)> = (0..3)
        .map(|r| {
            let rate = built
                .batch
                .column(2)
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .unwrap();
            let tier = built
                .batch
                .column(3)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            (
                if arrow::array::Array::is_null(rate, r) {
                    Scalar::Null
                } else {
                    f(rate.value(r))
                },
                if arrow::array::Array::is_null(tier, r) {
                    Scalar::Null
                } else {
                    s(tier.value(r))
                },
            )
        })
        .collect();
    let (store, reports) = materialize(dir, project).await;
    let entities: Vec<Vec<(String, String)>> = (1..=3).map(|d| vec![("driver_id".into(), d.to_string())]).collect();
    let found = crate::lookup(
        project,
        &store,
        &FeatureSelection::Features(vec!["stats:rate".into(), "stats:tier".into()]),
        &entities,
        T0 + 2 * HOUR,
    )
    .await
    .unwrap();
    let online = found
        .rows
        .iter()
        .map(|r| (r[0].value.clone(), r[1].value.clone()))
        .collect();
    (offline, online, reports[0].rows_breaking_contracts)
}

fn quarantine_files(project: &Project) -> Vec<String> {
    let dir = skewless::offline::quarantine::quarantine_dir(&project.root, "stats");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_excludes_the_row_on_every_path() {
    let (dir, project) = project("quarantine");
    let (offline, online, broke) = both_paths(dir.path(), &project).await;
    // The breaking rows are no candidates: the older good rows win.
    let want = vec![(f(0.5), s("a")), (f(0.25), s("a")), (f(1.0), s("b"))];
    assert_eq!(offline, want);
    assert_eq!(online, want);
    assert_eq!(broke, 2);
    let files = quarantine_files(&project);
    assert!(files.iter().any(|f| f.starts_with("training-set-")), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("materialize-")), "{files:?}");
    // A push with one good and one breaking row: the good one is served, the other reported.
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_value(serde_json::json!([
        {"driver_id": 3, "ts": "2026-01-01T03:00:00Z", "rate": 0.125, "tier": "a"},
        {"driver_id": 3, "ts": "2026-01-01T04:00:00Z", "rate": "NaN", "tier": "a"},
    ]))
    .unwrap();
    let report = project
        .push(
            &*store,
            "stats",
            &PushInput::Rows(rows.into()),
            None,
            PushTo::OnlineAndOffline,
            T0 + 5 * HOUR,
        )
        .await
        .unwrap();
    assert_eq!(report.broke_contracts.len(), 1, "{report:?}");
    assert_eq!(report.broke_contracts[0].row, 1);
    assert_eq!(
        report.broke_contracts[0].reason,
        "feature `rate` = NaN is outside [0, 1]"
    );
    let entities = vec![vec![("driver_id".to_string(), "3".to_string())]];
    let found = crate::lookup(
        &project,
        &store,
        &FeatureSelection::Features(vec!["stats:rate".into()]),
        &entities,
        T0 + 5 * HOUR,
    )
    .await
    .unwrap();
    assert_eq!(found.rows[0][0].value, f(0.125));
    // The training set agrees: the NaN row is no candidate there either.
    std::fs::write(dir.path().join("spine.csv"), "driver_id,ts\n3,2026-01-01T05:00:00Z\n").unwrap();
    let built = project
        .training_set(&skewless::engine_session(), &options(dir.path()))
        .await
        .unwrap();
    let rate = built
        .batch
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    assert_eq!(rate.value(0), 0.125);
    assert!(quarantine_files(&project).iter().any(|f| f.starts_with("push-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mode_nulls_the_breaking_feature_on_every_path() {
    let (dir, project) = project("\"null\"");
    let (offline, online, broke) = both_paths(dir.path(), &project).await;
    // The newer rows still win, with the breaking feature null and the other kept.
    let want = vec![(Scalar::Null, s("a")), (f(0.75), Scalar::Null), (f(1.0), s("b"))];
    assert_eq!(offline, want);
    assert_eq!(online, want);
    assert_eq!(broke, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_stops_every_path_naming_the_row() {
    let (dir, project) = project("fail");
    let err = project
        .training_set(&skewless::engine_session(), &options(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 rows break contracts (on_violation: fail)"), "{err}");
    assert!(
        err.contains("feature `rate` = 1.5 is outside [0, 1]") || err.contains("is not one of [\"a\", \"b\"]"),
        "{err}"
    );
    let (store, reports) = materialize(dir.path(), &project).await;
    assert!(
        reports[0].error.as_deref().unwrap_or("").contains("on_violation: fail"),
        "{reports:?}"
    );
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_value(serde_json::json!([
        {"driver_id": 3, "ts": "2026-01-01T03:00:00Z", "rate": 0.5, "tier": "a"},
        {"driver_id": 3, "ts": "2026-01-01T04:00:00Z", "rate": 0.5, "tier": "c"},
    ]))
    .unwrap();
    let err = project
        .push(
            &*store,
            "stats",
            &PushInput::Rows(rows.into()),
            None,
            PushTo::OnlineAndOffline,
            T0 + 5 * HOUR,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 1: view `stats` (on_violation: fail): feature `tier` = c is not one of [\"a\", \"b\"]"),
        "{err}"
    );
    assert!(
        skewless::push_log::segments(&project.root, "stats").unwrap().is_empty(),
        "a failed push was logged"
    );
}
