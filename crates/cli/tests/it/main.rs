//! Tests that run the real `skewless` binary in a temporary project, and the check that
//! crate dependencies point the way DESIGN.md says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod architecture;
mod commands;
mod hardening;
mod push;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary project with a copy of the demo definitions.
#[derive(Debug)]
pub struct TempProject {
    pub dir: tempfile::TempDir,
}

impl TempProject {
    pub fn with_demo_defs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let defs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../feature_defs");
        std::fs::create_dir_all(dir.path().join("feature_defs")).unwrap();
        for entry in std::fs::read_dir(defs).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, dir.path().join("feature_defs").join(p.file_name().unwrap())).unwrap();
        }
        TempProject { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    /// The `skewless` command in this project, not started (for concurrent runs).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skewless"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("SKEWLESS_DEFS")
            .env_remove("SKEWLESS_REPO")
            .env_remove("SKEWLESS_ONLINE");
        command
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path().join("feature_defs").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }
}

#[derive(Debug)]
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code(), 0, "stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr());
        self
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout()))
    }
}
