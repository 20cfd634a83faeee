//! Golden tests of the checks that need data: each folder under `tests/golden/` is a small
//! project (`feature_defs/` and `data/`) with the exact messages `validate` must print in
//! `expected.txt`. Regenerate with `make golden` and review the diff.

use std::path::Path;

use skewless::{Error, Project};

#[test]
fn golden_schema_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    skewless_testkit::golden::check(&root, 3, |case| {
        let repo = tempfile::tempdir().unwrap();
        let project = Project::new(case.join("feature_defs"), repo.path());
        let actual = match project.load() {
            Ok(_) => "ok\n".to_string(),
            Err(Error::Invalid(d)) => format!("{d}\n"),
            Err(e) => format!("{e}\n"),
        };
        // Paths print relative to the case folder, so the expectation holds on any machine.
        actual.replace(&format!("{}/", case.display()), "")
    });
}
