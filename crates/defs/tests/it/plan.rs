use skewless_defs::plan::{Action, ObjectKind, plan};

use crate::{BASE, load_ok};

fn changes(old: &str, new: &str) -> Vec<(ObjectKind, String, Action, Vec<String>)> {
    let (old, new) = (load_ok(old), load_ok(new));
    plan(Some(&old), &new)
        .changes
        .into_iter()
        .map(|c| (c.kind, c.name, c.action, c.breaking))
        .collect()
}

#[test]
fn first_apply_adds_everything() {
    let p = plan(None, &load_ok(BASE));
    assert_eq!(p.changes.len(), 4);
    assert!(
        p.changes
            .iter()
            .all(|c| c.action == Action::Add && c.breaking.is_empty())
    );
}

#[test]
fn no_change_no_plan() {
    assert!(changes(BASE, BASE).is_empty());
    assert!(
        changes(BASE, &BASE.replace("ttl: 2h", "ttl: 2h\n    owner: x")).is_empty(),
        "metadata is not a change"
    );
}

#[test]
fn adding_a_feature_is_compatible() {
    let c = changes(
        BASE,
        &BASE.replace("conv_rate: float32", "conv_rate: float32\n      acc: float32"),
    );
    assert!(
        c.iter().all(|(_, _, a, b)| *a == Action::Change && b.is_empty()),
        "{c:?}"
    );
    assert!(
        c.iter()
            .any(|(k, n, _, _)| *k == ObjectKind::FeatureView && n == "driver_stats")
    );
}

#[test]
fn breaking_changes_are_named() {
    let removed = changes(BASE, &BASE.replace("      conv_rate: float32\n", ""));
    assert!(
        removed
            .iter()
            .any(|(_, n, _, b)| n == "driver_stats" && b == &["feature `conv_rate` removed"]),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|(_, n, _, b)| n == "svc" && b == &["`driver_stats:conv_rate` no longer served"]),
        "{removed:?}"
    );

    let retyped = changes(BASE, &BASE.replace("conv_rate: float32", "conv_rate: float64"));
    assert!(
        retyped
            .iter()
            .any(|(_, _, _, b)| b.contains(&"feature `conv_rate` retyped (float32 → float64)".to_string()))
    );

    let ttl = changes(BASE, &BASE.replace("ttl: 2h", "ttl: 1d"));
    assert!(
        ttl.iter()
            .any(|(_, _, _, b)| b.contains(&"ttl changed on an online view (2h → 1d)".to_string())),
        "{ttl:?}"
    );

    let offline_ttl = changes(
        &BASE.replace("ttl: 2h", "ttl: 2h\n    online: false"),
        &BASE.replace("ttl: 2h", "ttl: 1d\n    online: false"),
    );
    assert!(
        offline_ttl.iter().all(|(_, _, _, b)| b.is_empty()),
        "ttl of an offline-only view is not breaking: {offline_ttl:?}"
    );

    let key = changes(BASE, &BASE.replace("driver_id: int64", "driver_id: string"));
    assert!(key.iter().any(|(k, _, _, b)| *k == ObjectKind::Entity && b == &["keys changed (driver_id:int64 → driver_id:string)"]), "{key:?}");
    assert!(key.iter().any(|(k, _, _, b)| *k == ObjectKind::FeatureView
        && b == &["join keys changed (driver_id:int64 → driver_id:string)"]));

    let offline = changes(BASE, &BASE.replace("ttl: 2h", "ttl: 2h\n    online: false"));
    assert_eq!(
        offline,
        [(
            ObjectKind::FeatureView,
            "driver_stats".to_string(),
            Action::Change,
            vec!["no longer served online".to_string()]
        )],
        "the online flag alone is a change"
    );

    let gone = changes(
        BASE,
        &BASE.replace("feature_services:\n  svc: [ \"driver_stats:*\" ]\n", ""),
    );
    assert_eq!(
        gone,
        [(
            ObjectKind::FeatureService,
            "svc".to_string(),
            Action::Remove,
            vec!["feature service removed".to_string()]
        )]
    );
}
