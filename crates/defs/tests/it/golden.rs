//! Golden error tests: each folder under `tests/golden/` holds broken definitions and the
//! exact messages `validate` must print (`expected.txt`). Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p skewless-defs golden` (or `make golden`), then review the diff.

use std::path::{Path, PathBuf};

fn read_case(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (PathBuf::from(p.file_name().unwrap()), text)
        })
        .collect()
}

#[test]
fn golden_error_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    skewless_testkit::golden::check(&root, 8, |case| match skewless_defs::load_texts(&read_case(case)) {
        Ok(_) => "ok\n".to_string(),
        Err(skewless_defs::Error::Invalid(d)) => format!("{d}\n"),
        Err(other) => format!("{other}\n"),
    });
}
