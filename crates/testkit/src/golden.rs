//! Golden tests: each folder under a root is one case with the exact text it must produce in
//! `expected.txt`. `UPDATE_GOLDEN=1` (or `make golden`) rewrites the expectations instead;
//! review the diff.

use std::path::{Path, PathBuf};

/// Runs `actual` on every case folder under `root` (sorted), at least `min_cases` of them,
/// and fails listing every case whose text differs from its `expected.txt`.
pub fn check(root: &Path, min_cases: usize, mut actual: impl FnMut(&Path) -> String) {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("reading the golden cases under {}: {e}", root.display()))
        .map(|e| e.expect("a golden case entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= min_cases,
        "expected at least {min_cases} golden cases under {}, found {}",
        root.display(),
        cases.len()
    );
    let mut failures = Vec::new();
    for case in cases {
        let actual = actual(&case);
        let expected_path = case.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual).expect("writing expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {}\nexpected:\n{expected}actual:\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (UPDATE_GOLDEN=1 or make golden to regenerate):\n{}",
        failures.join("\n")
    );
}
