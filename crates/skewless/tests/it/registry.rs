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
    let ApplyOutcome::Applied(first) = project.apply(false, None).unwrap() else {
        panic!("first apply must record")
    };
    assert_eq!(first.seq, 1);
    assert!(matches!(
        project.apply(false, None).unwrap(),
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
    let ApplyOutcome::Applied(second) = project.apply(false, None).unwrap() else {
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
    project.apply(false, None).unwrap();
    std::fs::write(
        dir.path().join("feature_defs/defs.yaml"),
        DEFS.replace(", b: int64", "").replace("ttl: 1h", "ttl: 2h"),
    )
    .unwrap();
    let Err(Error::Breaking(reasons)) = project.apply(false, None) else {
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
    let ApplyOutcome::Applied(record) = project.apply(true, None).unwrap() else {
        panic!("allowed")
    };
    assert_eq!(record.changes.breaking().count(), 1);
}

#[test]
fn invalid_definitions_are_never_applied() {
    let (_dir, project) = project(&DEFS.replace("a: float64", "a: { type: float64, expr: \"nope + 1\" }"));
    assert!(matches!(project.apply(true, None), Err(Error::Invalid(_))));
    assert!(project.registry().seqs().unwrap().is_empty());
}

/// Two applies planned against the same version: the second must not record its plan (here a
/// breaking change it never had to justify) on top of the first.
#[test]
fn apply_is_compare_and_swap_against_its_plan() {
    let (dir, project) = project(DEFS);
    project.apply(false, None).unwrap();
    // Both plan against v1: one adds `c`, the other only renames nothing (identical text).
    let grow = DEFS.replace("b: int64", "b: int64, c: float64");
    std::fs::write(
        dir.path().join("data/s.csv"),
        "driver_id,ts,a,b,c\n1,2026-01-01T00:00:00Z,0.5,3,1.0\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), &grow).unwrap();
    let first = project.plan().unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), DEFS).unwrap();
    let stale_same = project.plan().unwrap();
    std::fs::write(dir.path().join("feature_defs/defs.yaml"), &grow).unwrap();
    let second = project.plan().unwrap();
    assert_eq!((first.applied_seq, second.applied_seq), (Some(1), Some(1)));
    assert!(matches!(project.apply_plan(first, false).unwrap(), ApplyOutcome::Applied(r) if r.seq == 2));
    // Same definitions as v2, planned against v1: up to date, not a duplicate record.
    assert!(matches!(
        project.apply_plan(second, false).unwrap(),
        ApplyOutcome::UpToDate { seq: 2 }
    ));
    // v1's definitions planned against v1 (an empty plan then) would drop `c` now: refused.
    let Err(Error::Registry(skewless::registry::RegistryError::Moved { from, to, .. })) =
        project.apply_plan(stale_same, true)
    else {
        panic!("a stale plan must not be recorded")
    };
    assert_eq!((from.as_str(), to.as_str()), ("v1", "v2"));
    assert_eq!(project.registry().seqs().unwrap(), [1, 2]);
    // --expect-version pins the reviewed version.
    let Err(e @ Error::Registry(skewless::registry::RegistryError::Moved { .. })) = project.apply(false, Some(1))
    else {
        panic!("--expect-version 1 after v2 must fail")
    };
    assert!(e.to_string().contains("moved from v1 to v2"), "{e}");
}
