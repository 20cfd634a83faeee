//! Loading stays near-linear in the number of declarations. Compared by ratio (10× the
//! objects may take ~10× the time; a quadratic step takes ~100×), never by wall time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `n` each of entities, sources and feature views (3 features each), and n/10 services.
fn definitions(n: usize) -> String {
    let mut text = String::from("entities:\n");
    for i in 0..n {
        text.push_str(&format!("  e{i}: {{ keys: {{ id{i}: int64 }} }}\n"));
    }
    text.push_str("sources:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}: {{ timestamp: ts, push: true }}\n"));
    }
    text.push_str("feature_views:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  v{i}:\n    entity: e{i}\n    source: s{i}\n    ttl: 2d\n    features:\n      a: float64\n      b: {{ type: float64, expr: \"a * 2 + {i}\" }}\n      c: {{ type: int64, contract: {{ min: 0 }} }}\n"
        ));
    }
    text.push_str("feature_services:\n");
    for i in (0..n).step_by(10) {
        // Features of two views, names distinct (a service's names must be unique).
        text.push_str(&format!("  svc{i}: [ \"v{i}:a\", \"v{}:b\" ]\n", i + 1));
    }
    text
}

/// The fastest of three loads.
fn load_time(text: &str) -> Duration {
    let files = vec![(PathBuf::from("big.yaml"), text.to_string())];
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let defs = skewless_defs::load_texts(&files).unwrap();
            assert!(!defs.feature_views.is_empty());
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn entities(n: usize) -> String {
    let mut text = String::from("entities:\n");
    for i in 0..n {
        text.push_str(&format!("  e{i}: {{ keys: {{ id{i}: int64 }} }}\n"));
    }
    text.push_str("sources: { s: { timestamp: ts, push: true } }\n");
    text.push_str("feature_views: { v: { entity: e0, source: s, features: { a: float64 } } }\n");
    text
}

#[track_caller]
fn assert_near_linear(what: &str, small: &str, large: &str) {
    let (small, large) = (load_time(small), load_time(large));
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
    eprintln!("{what}: 10x the objects took {ratio:.1}x the time ({small:?} -> {large:?})");
    assert!(
        ratio < 20.0,
        "{what}: 10× the declarations took {ratio:.1}× the time ({small:?} → {large:?}): something is quadratic"
    );
}

#[test]
fn loading_is_near_linear_in_declarations() {
    // 1k against 10k objects of one kind in one mapping (duplicate-key checks).
    assert_near_linear("entities", &entities(1000), &entities(10_000));
    // ~1k against ~10k of every kind (entities, sources, views, services referring to views).
    assert_near_linear("every kind", &definitions(300), &definitions(3000));
}
