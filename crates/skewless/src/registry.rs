//! The local registry: every applied version of the definitions, kept forever.
//!
//! Layout under the repository directory (default `.skewless/`):
//!
//! ```text
//! registry/applied/000001.json   one AppliedRecord per `apply`, numbered from 1
//! registry/applied/000002.json   the highest number is the version in force
//! registry/materialized.json      per feature view: version and materialization watermark
//! ```
//!
//! Records are written to a temporary file and then hard-linked to their final name, which
//! fails if the name exists: two concurrent `apply` runs can never overwrite each other,
//! and a crash never leaves a half-written record under a final name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skewless_defs::Definitions;
use skewless_defs::plan::Plan;
use skewless_defs::version::{Versions, versions};

use crate::{Error, Result};

/// One `apply`: what was applied, when, by which skewless, and what it changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub seq: u64,
    pub applied_at: DateTime<Utc>,
    pub skewless_version: String,
    /// SHA-256 over the definition files' paths and text.
    pub text_hash: String,
    pub versions: Versions,
    pub changes: Plan,
    pub definitions: Definitions,
}

#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    watermarks: PathBuf,
}

/// How far a view version has been materialized: every row that became a candidate at or
/// before `end` is in the online store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub version: String,
    /// µs since the epoch, UTC.
    pub end: i64,
    pub updated_at: DateTime<Utc>,
}

impl Registry {
    pub fn open(repo_dir: &Path) -> Self {
        Registry {
            dir: repo_dir.join("registry").join("applied"),
            watermarks: repo_dir.join("registry").join("materialized.json"),
        }
    }

    /// Materialization watermarks by view name.
    pub fn watermarks(&self) -> Result<BTreeMap<String, Watermark>> {
        match std::fs::read_to_string(&self.watermarks) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| self.error(&self.watermarks, format!("unreadable watermarks: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.error(&self.watermarks, e)),
        }
    }

    /// Sets one view's watermark (read, change, write to a temporary file, rename).
    pub fn set_watermark(&self, view: &str, watermark: Watermark) -> Result<()> {
        let mut all = self.watermarks()?;
        all.insert(view.to_string(), watermark);
        let text = serde_json::to_string_pretty(&all).map_err(|e| self.error(&self.watermarks, e))?;
        let tmp = self.watermarks.with_extension(format!("{}.tmp", std::process::id()));
        if let Some(dir) = self.watermarks.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(dir, e))?;
        }
        std::fs::write(&tmp, text).map_err(|e| self.error(&tmp, e))?;
        std::fs::rename(&tmp, &self.watermarks).map_err(|e| self.error(&self.watermarks, e))
    }

    fn error(&self, path: &Path, message: impl ToString) -> Error {
        Error::Registry {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// Sequence numbers of all records, ascending.
    pub fn seqs(&self) -> Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(&self.dir, e)),
        };
        let mut seqs = Vec::new();
        for entry in entries {
            let name = entry.map_err(|e| self.error(&self.dir, e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name.strip_suffix(".json").and_then(|n| n.parse::<u64>().ok()) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:06}.json"))
    }

    pub fn get(&self, seq: u64) -> Result<AppliedRecord> {
        let path = self.path(seq);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                self.error(&path, format!("no applied version {seq}"))
            } else {
                self.error(&path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| self.error(&path, format!("unreadable record: {e}")))
    }

    /// The version in force, if anything was applied.
    pub fn latest(&self) -> Result<Option<AppliedRecord>> {
        match self.seqs()?.last() {
            Some(seq) => self.get(*seq).map(Some),
            None => Ok(None),
        }
    }

    /// Every record, oldest first.
    pub fn history(&self) -> Result<Vec<AppliedRecord>> {
        self.seqs()?.into_iter().map(|s| self.get(s)).collect()
    }

    /// Appends a record for `definitions` and returns it.
    pub fn record(&self, definitions: Definitions, changes: Plan) -> Result<AppliedRecord> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.error(&self.dir, e))?;
        let seq = self.seqs()?.last().map_or(1, |s| s + 1);
        let record = AppliedRecord {
            seq,
            applied_at: Utc::now(),
            skewless_version: crate::VERSION.to_string(),
            text_hash: definitions.text_hash.clone(),
            versions: versions(&definitions),
            changes,
            definitions,
        };
        let text = serde_json::to_string_pretty(&record).map_err(|e| self.error(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{seq:06}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| self.error(&tmp, e))?;
        let target = self.path(seq);
        let linked = std::fs::hard_link(&tmp, &target);
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                self.error(&target, "another apply recorded this version first; run plan again")
            } else {
                self.error(&target, e)
            }
        })?;
        Ok(record)
    }
}
