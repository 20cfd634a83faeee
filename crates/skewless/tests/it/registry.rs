use skewless::{ApplyOutcome, Error, Project};

const DEFS: &str = r#"
entities: { driver: { keys: { driver_id: int64 } } }
sources: { s: { path: data/s.csv, timestamp: ts } }
feature_views:
  v:
    entity: driver
    source: s
    ttl: 1h
    features: { a: float64, b: int64 }
"#;

fn project(defs: &str) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("feature_defs")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/s.csv"),
        "driver_id,ts,a,b\n1,2026-01-01T00:00:00Z,0.5,3\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), defs).unwrap();
    let project = Project::new(dir.path().join("feature_defs"), dir.path().join(".skewless"));
    (dir, project)
}

#[test]
fn apply_keeps_every_version_readable() {
    let (dir, project) = project(DEFS);
    let ApplyOutcome::Applied(first) = project.apply(false).unwrap() else {
        panic!("first apply must record")
    };
    assert_eq!(first.seq, 1);
    assert!(matches!(
        project.apply(false).unwrap(),
        ApplyOutcome::UpToDate { seq: 1 }
    ));

    std::fs::write(
        dir.path().join("feature_defs/defs.yaml"),
        DEFS.replace("b: int64", "b: int64, c: float64"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("data/s.csv"),
        "driver_id,ts,a,b,c\n1,2026-01-01T00:00:00Z,0.5,3,1.0\n",
    )
    .unwrap();
    let ApplyOutcome::Applied(second) = project.apply(false).unwrap() else {
        panic!("a compatible change applies")
    };
    assert_eq!(second.seq, 2);
    assert_ne!(second.versions.feature_views["v"], first.versions.feature_views["v"]);

    let registry = project.registry();
    assert_eq!(registry.seqs().unwrap(), [1, 2]);
    let old = registry.get(1).unwrap();
    assert_eq!(old.definitions.feature_views["v"].features.len(), 2);
    assert_eq!(old.versions, first.versions);
    assert_eq!(
        registry.latest().unwrap().unwrap().definitions.feature_views["v"]
            .features
            .len(),
        3
    );
}

#[test]
fn breaking_changes_need_permission() {
    let (dir, project) = project(DEFS);
    project.apply(false).unwrap();
    std::fs::write(
        dir.path().join("feature_defs/defs.yaml"),
        DEFS.replace(", b: int64", "").replace("ttl: 1h", "ttl: 2h"),
    )
    .unwrap();
    let Err(Error::Breaking(reasons)) = project.apply(false) else {
        panic!("must refuse")
    };
    assert_eq!(
        reasons,
        [
            "  feature view `v`: feature `b` removed",
            "  feature view `v`: ttl changed on an online view (1h → 2h)"
        ]
    );
    assert_eq!(
        project.registry().seqs().unwrap(),
        [1],
        "a refused apply records nothing"
    );
    let ApplyOutcome::Applied(record) = project.apply(true).unwrap() else {
        panic!("allowed")
    };
    assert_eq!(record.changes.breaking().count(), 1);
}

#[test]
fn invalid_definitions_are_never_applied() {
    let (_dir, project) = project(&DEFS.replace("a: float64", "a: { type: float64, expr: \"nope + 1\" }"));
    assert!(matches!(project.apply(true), Err(Error::Invalid(_))));
    assert!(project.registry().seqs().unwrap().is_empty());
}
