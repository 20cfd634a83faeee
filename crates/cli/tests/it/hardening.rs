//! Regression tests for the hardening issue: each probe that once gave a silent wrong
//! result, a race or a panic, run through the real binary.

use std::process::Stdio;

use crate::{Run, TempProject};

fn demo_project() -> TempProject {
    let p = TempProject::with_demo_defs();
    p.run(&["demo-data"]).ok();
    p
}

fn applied_records(p: &TempProject) -> usize {
    std::fs::read_dir(p.path().join(".skewless/registry/applied"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count()
        })
        .unwrap_or(0)
}

/// Started together, identical applies record one version, and the others say up to date
/// (or that the registry moved); never two records of the same definitions.
#[test]
fn concurrent_applies_record_once() {
    let p = demo_project();
    let children: Vec<_> = (0..6)
        .map(|_| {
            p.command(&["apply"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run(c.wait_with_output().unwrap()))
        .collect();
    for run in &runs {
        let text = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            run.code() == 0 || text.contains("moved from"),
            "an apply failed for another reason:\n{text}"
        );
    }
    assert!(runs.iter().any(|r| r.stdout().contains("Applied as version 1")));
    assert_eq!(applied_records(&p), 1);
}

/// A change planned against v1 cannot be applied once v2 landed, even with --allow-breaking.
#[test]
fn apply_expect_version_refuses_a_moved_registry() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.edit(
        "drivers.yaml",
        "      acc_rate:       { type: float32, contract: { min: 0, max: 1 } }\n",
        "",
    );
    p.run(&["apply", "--allow-breaking", "--expect-version", "1"]).ok();
    let refused = p.run(&["apply", "--allow-breaking", "--expect-version", "1"]);
    assert_eq!(refused.code(), 1);
    assert!(refused.stderr().contains("moved from v1 to v2"), "{}", refused.stderr());
}
