//! Source fingerprints, remembered between runs.
//!
//! Every manifest records the SHA-256 of each source file a training set reads. Sources are
//! large and rarely change, and hashing them was the slowest part of capturing a run's inputs
//! (SHA-256 in software runs at a few hundred MB/s). `<repo>/fingerprints.json` remembers each
//! file's digest beside its size, modification time and inode; a run hashes again only the
//! files where one of these differs, as git's index does. As in git, a digest taken within
//! [`RACY`] of the file's modification is not trusted (a write in the same clock tick would
//! leave the time unchanged): such a file is hashed again until it has been still for longer.
//! The file is a cache: unreadable or damaged, it is ignored and rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::manifest::{Fingerprint, ManifestProblem, fingerprint};
use crate::{Error, Result};

/// How long a file must have been unmodified when it was hashed for its digest to be reused.
pub const RACY: Duration = Duration::from_secs(2);

/// The remembered digests of one project (its registry directory's `fingerprints.json`).
#[derive(Debug)]
pub(crate) struct Remembered {
    file: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    bytes: u64,
    modified_ns: i128,
    inode: u64,
    sha256: String,
    hashed_at_ns: i128,
}

/// What identifies a file's content without reading it.
struct Stat {
    bytes: u64,
    modified_ns: i128,
    inode: u64,
    modified: Option<chrono::DateTime<chrono::Utc>>,
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn stat(path: &Path) -> Result<Stat> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        problem: ManifestProblem::Fingerprint(e.to_string()),
    })?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    let modified = meta.modified().ok();
    Ok(Stat {
        bytes: meta.len(),
        modified_ns: modified.map_or(i128::MIN, nanos),
        inode,
        modified: modified.map(chrono::DateTime::<chrono::Utc>::from),
    })
}

impl Remembered {
    /// The digests remembered in `repo_dir` (none when there is no readable file).
    pub(crate) fn open(repo_dir: &Path) -> Remembered {
        let file = repo_dir.join("fingerprints.json");
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Remembered {
            file,
            entries,
            changed: false,
        }
    }

    /// `path`'s fingerprint: the remembered digest when the file is unchanged and was still
    /// when hashed, else a fresh one (and remembered).
    pub(crate) fn fingerprint(&mut self, path: &Path) -> Result<Fingerprint> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let before = stat(path)?;
        if let Some(e) = self.entries.get(&key)
            && e.bytes == before.bytes
            && e.modified_ns == before.modified_ns
            && e.inode == before.inode
            && e.modified_ns.saturating_add(RACY.as_nanos() as i128) < e.hashed_at_ns
        {
            return Ok(Fingerprint {
                path: key,
                bytes: before.bytes,
                modified: before.modified,
                sha256: e.sha256.clone(),
            });
        }
        let hashed_at_ns = nanos(SystemTime::now());
        let fresh = fingerprint(path)?;
        // Remembered only when the file did not change while it was read.
        let after = stat(path)?;
        if (after.bytes, after.modified_ns, after.inode) == (before.bytes, before.modified_ns, before.inode) {
            self.entries.insert(
                key,
                Entry {
                    bytes: before.bytes,
                    modified_ns: before.modified_ns,
                    inode: before.inode,
                    sha256: fresh.sha256.clone(),
                    hashed_at_ns,
                },
            );
            self.changed = true;
        }
        Ok(fresh)
    }

    /// Writes the digests back (temporary file, then rename), forgetting files that are
    /// gone. Best effort: a registry directory that does not exist or cannot be written
    /// costs the next run its hashing, nothing else.
    pub(crate) fn save(mut self) {
        if !self.changed || !self.file.parent().is_some_and(Path::is_dir) {
            return;
        }
        self.entries.retain(|path, _| path.exists());
        let Ok(bytes) = serde_json::to_vec(&self.entries) else {
            return;
        };
        let temporary = self.file.with_extension(format!("json.{}.tmp", std::process::id()));
        let written = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, &self.file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            tracing::warn!("could not remember source fingerprints in {}: {e}", self.file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str, age: Duration) {
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn real(path: &Path) -> String {
        fingerprint(path).unwrap().sha256
    }

    #[test]
    fn a_still_file_is_hashed_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.parquet");
        write(&source, "first", Duration::from_secs(3600));
        let mut remembered = Remembered::open(dir.path());
        assert_eq!(remembered.fingerprint(&source).unwrap().sha256, real(&source));
        remembered.save();

        // The digest now comes from the file of remembered digests: planted there, it is used.
        let cache = dir.path().join("fingerprints.json");
        let planted = std::fs::read_to_string(&cache)
            .unwrap()
            .replace(&real(&source), "planted");
        std::fs::write(&cache, planted).unwrap();
        let print = Remembered::open(dir.path()).fingerprint(&source).unwrap();
        assert_eq!(print.sha256, "planted");
        assert_eq!(print.bytes, 5);

        // Same size, other content, another time: hashed again.
        write(&source, "other", Duration::from_secs(1800));
        assert_eq!(
            Remembered::open(dir.path()).fingerprint(&source).unwrap().sha256,
            real(&source)
        );
    }

    #[test]
    fn a_file_hashed_right_after_a_write_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("fresh.csv");
        write(&source, "a,b\n1,2\n", Duration::ZERO);
        let mut remembered = Remembered::open(dir.path());
        remembered.fingerprint(&source).unwrap();
        for entry in remembered.entries.values_mut() {
            entry.sha256 = "planted".into();
        }
        // Within RACY of its modification: not trusted.
        assert_eq!(remembered.fingerprint(&source).unwrap().sha256, real(&source));
    }

    #[test]
    fn a_damaged_file_of_digests_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("s.parquet");
        write(&source, "x", Duration::from_secs(3600));
        std::fs::write(dir.path().join("fingerprints.json"), "{ not json").unwrap();
        let mut remembered = Remembered::open(dir.path());
        assert_eq!(remembered.fingerprint(&source).unwrap().sha256, real(&source));
        remembered.save();
        assert_eq!(Remembered::open(dir.path()).entries.len(), 1);
        // A file that is gone is an error naming it, as before.
        let gone = Remembered::open(dir.path()).fingerprint(&dir.path().join("gone.parquet"));
        assert!(gone.unwrap_err().to_string().contains("gone.parquet"));
    }
}
