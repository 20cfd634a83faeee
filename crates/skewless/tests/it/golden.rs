//! Golden tests of the checks that need data: each folder under `tests/golden/` is a small
//! project (`feature_defs/` and `data/`) with the exact messages `validate` must print in
//! `expected.txt`. Regenerate with `make golden` and review the diff.

use std::path::{Path, PathBuf};

use skewless::{Error, Project};

#[test]
fn golden_schema_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 3);
    let mut failures = Vec::new();
    for case in cases {
        let repo = tempfile::tempdir().unwrap();
        let project = Project::new(case.join("feature_defs"), repo.path());
        let actual = match project.load() {
            Ok(_) => "ok\n".to_string(),
            Err(Error::Invalid(d)) => format!("{d}\n"),
            Err(e) => format!("{e}\n"),
        };
        // Paths print relative to the case folder, so the expectation holds on any machine.
        let actual = actual.replace(&format!("{}/", case.display()), "");
        let expected_path = case.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
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
        "golden mismatches (make golden to regenerate):\n{}",
        failures.join("\n")
    );
}
