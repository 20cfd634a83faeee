//! References: which training set a service's model learned from, and what its features
//! looked like there. `skewless monitor set-reference` writes one per service into the
//! registry directory (`references/<service>.json`); the server reads them at start and
//! measures the drift of what it serves against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Profile;

/// Where a feature's drift counts as a breach, unless a reference says otherwise.
pub const DEFAULT_PSI: f64 = 0.2;
pub const DEFAULT_NULL_RATE: f64 = 0.05;
/// Served values a window needs before its drift is judged (PSI of a handful is noise).
pub const DEFAULT_MIN_VALUES: u64 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub service: String,
    /// The training set's manifest, and its SHA-256 when it was named the reference.
    pub manifest: PathBuf,
    pub manifest_sha256: String,
    /// When it was named (RFC 3339).
    pub set_at: String,
    pub thresholds: Thresholds,
    /// The profiles of the service's features in that training set, by `view:feature`.
    pub profiles: BTreeMap<String, Profile>,
}

/// Where drift becomes a breach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A feature breaches when its PSI is above this ...
    pub psi: f64,
    /// ... or its null rate moved by more than this (a fraction).
    pub null_rate: f64,
    /// ... judged only once a window holds this many values.
    pub min_values: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            psi: DEFAULT_PSI,
            null_rate: DEFAULT_NULL_RATE,
            min_values: DEFAULT_MIN_VALUES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{path}: {message}")]
    Unreadable { path: PathBuf, message: String },
}

/// The references directory of a registry directory.
pub fn directory(repo_dir: &Path) -> PathBuf {
    repo_dir.join("references")
}

/// Every reference in `repo_dir`, by service (none when the directory does not exist).
pub fn read_all(repo_dir: &Path) -> Result<BTreeMap<String, Reference>, ReferenceError> {
    let dir = directory(repo_dir);
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| ReferenceError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(unreadable(&dir, &e)),
    };
    let mut all = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| unreadable(&dir, &e))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| unreadable(&path, &e))?;
        let reference: Reference = serde_json::from_slice(&text).map_err(|e| unreadable(&path, &e))?;
        all.insert(reference.service.clone(), reference);
    }
    Ok(all)
}

/// Writes `reference` as `references/<service>.json` (a temporary file, then a rename).
pub fn write(repo_dir: &Path, reference: &Reference) -> Result<PathBuf, ReferenceError> {
    let dir = directory(repo_dir);
    let path = dir.join(format!("{}.json", reference.service));
    let failed = |e: &dyn std::fmt::Display| ReferenceError::Unreadable {
        path: path.clone(),
        message: format!("cannot write it: {e}"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(&e))?;
    let text = serde_json::to_vec_pretty(reference).map_err(|e| failed(&e))?;
    let temporary = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            failed(&e)
        })?;
    Ok(path)
}
