//! Dependencies point down: cli → server → serving → {online, engine, push-log, registry} → defs,
//! cli → flight → skewless → {offline, serving, profile}; the online path links no DataFusion, and the server no
//! training-set code.

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
        ("skewless-cli", &["skewless", "skewless-server", "skewless-flight"][..]),
        // Feast's remote offline store over Arrow Flight: training sets through the facade.
        ("skewless-flight", &["skewless"][..]),
        // The Python package's native core: the facade, nothing else.
        ("skewless-python", &["skewless"][..]),
        // The server answers through the serving core only: no facade, no training sets.
        (
            "skewless-server",
            &[
                "skewless-serving",
                "skewless-online",
                "skewless-profile",
                "skewless-defs",
            ][..],
        ),
        (
            "skewless-serving",
            &[
                "skewless-engine",
                "skewless-online",
                "skewless-push-log",
                "skewless-registry",
                "skewless-sources",
                "skewless-defs",
            ][..],
        ),
        (
            "skewless",
            &[
                "skewless-offline",
                "skewless-online",
                "skewless-push-log",
                "skewless-registry",
                "skewless-sources",
                "skewless-serving",
                "skewless-engine",
                "skewless-profile",
                "skewless-defs",
            ][..],
        ),
        (
            "skewless-offline",
            &[
                "skewless-engine",
                "skewless-aggregates",
                "skewless-push-log",
                "skewless-sources",
                "skewless-defs",
            ][..],
        ),
        ("skewless-online", &["skewless-aggregates", "skewless-defs"][..]),
        ("skewless-engine", &["skewless-sources", "skewless-defs"][..]),
        // Applied versions and watermarks.
        ("skewless-registry", &["skewless-defs"][..]),
        // Source files and quarantine files: Arrow and Parquet, no query engine.
        ("skewless-sources", &["skewless-push-log", "skewless-defs"][..]),
        ("skewless-aggregates", &["skewless-defs"][..]),
        // Pushed rows, durably: Arrow and Parquet only.
        ("skewless-push-log", &[][..]),
        // Profiles of feature values: Arrow and DataFusion's t-digest only.
        ("skewless-profile", &[][..]),
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

/// The crates `package` links in normal builds, by name.
fn normal_tree(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Fails naming the first crate of `tree` whose name starts with a banned prefix.
fn assert_none_banned(package: &str, tree: &BTreeSet<String>, own: &str, banned: &[&str]) {
    assert!(
        tree.contains(own),
        "the tree of {package} must list its own dependency {own}: {tree:?}"
    );
    for name in tree {
        for prefix in banned {
            assert!(!name.starts_with(prefix), "{package} pulls in {name}");
        }
    }
}

#[test]
fn defs_is_pure_no_datafusion_tokio_or_redis() {
    let tree = normal_tree("skewless-defs");
    assert_none_banned(
        "skewless-defs",
        &tree,
        "sqlparser",
        &["datafusion", "tokio", "redis", "arrow"],
    );
}

/// Serving answers a key from the store and tiles: the batch engine is not linked into it.
#[test]
fn the_online_path_links_no_datafusion() {
    for (package, own) in [("skewless-online", "redis"), ("skewless-aggregates", "arrow-array")] {
        let tree = normal_tree(package);
        assert_none_banned(
            package,
            &tree,
            own,
            &["datafusion", "skewless-engine", "skewless-offline"],
        );
    }
}

/// A lookup or a push does not link the code that builds training sets: `cargo tree` of the
/// server and of the serving core shows neither the offline crate nor the facade.
#[test]
fn the_server_links_no_training_set_code() {
    for (package, own) in [
        ("skewless-server", "skewless-serving"),
        ("skewless-serving", "skewless-online"),
    ] {
        let tree = normal_tree(package);
        assert_none_banned(package, &tree, own, &["skewless-offline"]);
        assert!(!tree.contains("skewless"), "{package} links the facade");
    }
}
