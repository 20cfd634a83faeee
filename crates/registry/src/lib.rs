//! `skewless-registry`: every applied version of the definitions, kept forever, and how far
//! each online store has been materialized. `apply` writes it; the server, materialization
//! and training sets read it. It depends on defs only.
//!
//! Layout under the repository directory (default `.skewless/`):
//!
//! ```text
//! registry/applied/000001.json   one AppliedRecord per `apply`, numbered from 1
//! registry/applied/000002.json   the highest number is the version in force
//! registry/materialized.json      per online store (identity + instance id) and feature view:
//!                                 version and materialization watermark
//! ```
//!
//! Records are written to a temporary file and then hard-linked to their final name, which
//! fails if the name exists: two concurrent `apply` runs can never overwrite each other,
//! and a crash never leaves a half-written record under a final name. Recording is a
//! compare-and-swap against the version the plan was made from: an apply whose plan is
//! stale (another apply landed in between) fails instead of recording changes nobody
//! reviewed, such as a breaking change the gate never saw.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skewless_defs::Definitions;
use skewless_defs::plan::Plan;
use skewless_defs::version::{Versions, versions};

/// Registry errors: the file and what went wrong, or a lost compare-and-swap.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry at {path}: {message}")]
    At { path: PathBuf, message: String },
    /// `apply` lost a race: the registry moved since its plan was made.
    #[error(
        "registry at {path} moved from {from} to {to} while this apply ran: re-run `skewless plan` and apply again"
    )]
    Moved { path: PathBuf, from: String, to: String },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The skewless that writes a record (every crate shares the workspace's version).
const VERSION: &str = env!("CARGO_PKG_VERSION");

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

/// Which online store watermarks describe: its identity (no credentials) and the instance
/// id the store itself carries ([`skewless_online::OnlineStore::instance_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRef {
    pub identity: String,
    pub instance: String,
}

const WATERMARK_FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct WatermarkFile {
    format: u32,
    /// By store identity.
    stores: BTreeMap<String, StoreWatermarks>,
}

impl Default for WatermarkFile {
    fn default() -> Self {
        WatermarkFile {
            format: WATERMARK_FORMAT,
            stores: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreWatermarks {
    instance: String,
    /// By view name.
    views: BTreeMap<String, Watermark>,
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

    /// Materialization watermarks by view name, for one online store. They apply only while
    /// the store is the same instance: a store emptied or replaced since (a new instance id)
    /// has none, so an incremental run there starts from the beginning.
    pub fn watermarks(&self, store: &StoreRef) -> Result<BTreeMap<String, Watermark>> {
        Ok(self
            .watermark_file()?
            .stores
            .remove(&store.identity)
            .filter(|s| s.instance == store.instance)
            .map(|s| s.views)
            .unwrap_or_default())
    }

    fn watermark_file(&self) -> Result<WatermarkFile> {
        let text = match std::fs::read_to_string(&self.watermarks) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WatermarkFile::default()),
            Err(e) => return Err(self.error(&self.watermarks, e)),
        };
        match serde_json::from_str::<WatermarkFile>(&text) {
            Ok(file) if file.format == WATERMARK_FORMAT => Ok(file),
            // Version 1 kept one watermark per view for whichever store was used: it cannot
            // say which store it describes, so it describes none.
            _ if serde_json::from_str::<BTreeMap<String, Watermark>>(&text).is_ok() => Ok(WatermarkFile::default()),
            Ok(file) => Err(self.error(
                &self.watermarks,
                format!("watermark format {} is not {WATERMARK_FORMAT} (written by another skewless?)", file.format),
            )),
            Err(e) => Err(self.error(
                &self.watermarks,
                format!(
                    "unreadable watermarks ({e}); a full `skewless materialize --end T` rebuilds them (it sets the damaged file aside)"
                ),
            )),
        }
    }

    /// Sets one view's watermark for one store (read, change, write a temporary file,
    /// rename). A damaged file is set aside as `materialized.json.damaged` and replaced.
    pub fn set_watermark(&self, store: &StoreRef, view: &str, watermark: Watermark) -> Result<()> {
        let mut file = match self.watermark_file() {
            Ok(file) => file,
            // Only a file that is not JSON at all is set aside; another format (a newer
            // skewless) or an I/O error stops here, so nothing is discarded by mistake.
            Err(e)
                if std::fs::read(&self.watermarks)
                    .is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_err()) =>
            {
                let aside = self.watermarks.with_extension("json.damaged");
                std::fs::rename(&self.watermarks, &aside).map_err(|_| e)?;
                WatermarkFile::default()
            }
            Err(e) => return Err(e),
        };
        let entry = file
            .stores
            .entry(store.identity.clone())
            .or_insert_with(|| StoreWatermarks {
                instance: store.instance.clone(),
                views: BTreeMap::new(),
            });
        if entry.instance != store.instance {
            // The store was emptied or replaced: what was recorded for it no longer holds.
            entry.instance = store.instance.clone();
            entry.views.clear();
        }
        entry.views.insert(view.to_string(), watermark);
        let text = serde_json::to_string_pretty(&file).map_err(|e| self.error(&self.watermarks, e))?;
        let tmp = self.watermarks.with_extension(format!("{}.tmp", std::process::id()));
        if let Some(dir) = self.watermarks.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(dir, e))?;
        }
        std::fs::write(&tmp, text).map_err(|e| self.error(&tmp, e))?;
        std::fs::rename(&tmp, &self.watermarks).map_err(|e| self.error(&self.watermarks, e))
    }

    fn error(&self, path: &Path, message: impl ToString) -> RegistryError {
        RegistryError::At {
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

    /// Appends a record for `definitions` as the version after `base` (the version the plan
    /// was made against; `None`: nothing applied). Compare-and-swap: if the registry moved
    /// since the plan, nothing is written and the error says from which version to which.
    pub fn record(&self, definitions: Definitions, changes: Plan, base: Option<u64>) -> Result<AppliedRecord> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.error(&self.dir, e))?;
        let current = self.seqs()?.last().copied();
        if current != base {
            return Err(self.moved(base, current));
        }
        let seq = base.map_or(1, |s| s + 1);
        let record = AppliedRecord {
            seq,
            applied_at: Utc::now(),
            skewless_version: VERSION.to_string(),
            text_hash: definitions.text_hash.clone(),
            versions: versions(&definitions),
            changes,
            definitions,
        };
        let text = serde_json::to_string_pretty(&record).map_err(|e| self.error(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{seq:06}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| self.error(&tmp, e))?;
        let target = self.path(seq);
        // The hard link is the swap: it fails if another apply took `seq` since the check above.
        let linked = std::fs::hard_link(&tmp, &target);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(record),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(self.moved(base, self.seqs()?.last().copied()))
            }
            Err(e) => Err(self.error(&target, e)),
        }
    }

    /// The error for a registry found at `now` where `base` was expected.
    pub fn moved(&self, base: Option<u64>, now: Option<u64>) -> RegistryError {
        let name = |s: Option<u64>| s.map_or_else(|| "nothing applied".to_string(), |s| format!("v{s}"));
        RegistryError::Moved {
            path: self.dir.clone(),
            from: name(base),
            to: name(now),
        }
    }
}
