//! Dependencies point down: cli → server → skewless → {offline, online} → engine → defs.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn workspace_dependencies_point_down() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = [
        ("skewless-cli", &["skewless", "skewless-server"][..]),
        ("skewless-server", &["skewless"][..]),
        (
            "skewless",
            &[
                "skewless-offline",
                "skewless-online",
                "skewless-engine",
                "skewless-defs",
            ][..],
        ),
        ("skewless-offline", &["skewless-engine", "skewless-defs"][..]),
        ("skewless-online", &["skewless-engine", "skewless-defs"][..]),
        ("skewless-engine", &["skewless-defs"][..]),
        ("skewless-defs", &[][..]),
        // Test support, a dev-dependency only.
        ("skewless-testkit", &[][..]),
        // The cross-crate suites: dev-dependencies only.
        ("skewless-tests", &[][..]),
        // The load generator of `make bench-server`: an HTTP client, no skewless crate.
        ("skewless-loadgen", &[][..]),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.iter().copied().collect()))
    .collect();
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = packages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        members,
        allowed.keys().copied().collect(),
        "every crate must have a place in the layering"
    );
    for p in packages {
        let name = p["name"].as_str().unwrap();
        for dep in p["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if members.contains(dep_name) && dep["kind"].is_null() {
                assert!(allowed[name].contains(dep_name), "{name} must not depend on {dep_name}");
            }
        }
    }
}

#[test]
fn defs_is_pure_no_datafusion_tokio_or_redis() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "skewless-defs",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        crates.contains("sqlparser"),
        "the tree must list defs' own dependencies:\n{tree}"
    );
    for name in &crates {
        for banned in ["datafusion", "tokio", "redis", "arrow"] {
            assert!(!name.starts_with(banned), "skewless-defs pulls in {name}");
        }
    }
}
