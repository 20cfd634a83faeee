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
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 8, "expected the golden cases under {}", root.display());
    let mut failures = Vec::new();
    for case in cases {
        let actual = match skewless_defs::load_texts(&read_case(&case)) {
            Ok(_) => "ok\n".to_string(),
            Err(e) => match e {
                skewless_defs::Error::Invalid(d) => format!("{d}\n"),
                other => format!("{other}\n"),
            },
        };
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
        "golden mismatches (UPDATE_GOLDEN=1 to regenerate):\n{}",
        failures.join("\n")
    );
}
