//! Parity suites: the offline path (training sets) and the online path (materialization,
//! stores, the serving core) give the same value for the same key and instant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod late;
mod online;

use std::path::{Path, PathBuf};

/// Copies the repository's demo definitions into `project_dir/feature_defs` and returns that path.
pub fn copy_demo_defs(project_dir: &Path) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../feature_defs");
    let target = project_dir.join("feature_defs");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, target.join(p.file_name().unwrap())).unwrap();
    }
    target
}
