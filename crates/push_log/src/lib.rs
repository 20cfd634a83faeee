//! `skewless-push-log`: the offline log of pushed rows: what serving saw, kept for the training sets that follow.
//!
//! A push is acknowledged once its rows are in the source's **journal**, an append-only file
//! under `.skewless/push/<source>/`, made durable by one `fdatasync`. Readers never read the
//! journal: they first **fold** it into a Parquet *segment* in the source's own schema, so a
//! job reads the log beside the source's batch files as if it were one more file.
//!
//! ```text
//! push ─ record appended to journal-<µs>-<nonce>.log ─ fdatasync ─ ack
//! read ─ (lock) rename the journal to folding-… ─ its records into seg-<µs>-<nonce>.parquet
//!        (temp file, fsync, rename, fsync the directory) ─ delete folding-… ─ list the segments
//! ```
//!
//! Why a journal and not a segment per push: a segment costs a file creation, two fsyncs and
//! a rename, which on this kind of disk is about 3 × the latency of appending to one file and
//! syncing its data (benches/README.md, push). The guarantees are the same:
//!
//! - **Never half there.** A record is `SKJ1 · length · CRC-32 · payload` (its id, then its
//!   rows as an Arrow IPC stream; the checksum covers the length too). A crash mid-write
//!   leaves a tail that fails its length or checksum; readers stop there, and the next
//!   appender cuts it off before it writes. An appender syncs records another process wrote
//!   before it trusts their ids (their writer may have died before its `fdatasync`), and a
//!   journal whose write or sync failed takes no more records: it is retired as a stopped fold.
//! - **Never lost.** The ack follows the `fdatasync`. A fold renames the journal before it
//!   writes segments whose footers name it (`skewless.folds`, one tag per part: a journal
//!   whose rows had two schemas folds into two segments), and deletes it only after. A fold
//!   that stopped part way leaves a `folding-…` file: the next fold writes the parts no
//!   segment names yet and deletes it, so no row is read twice or dropped.
//! - **Ids.** A push may carry an id. It is kept in the record, and after a fold in the
//!   segment's footer (`skewless.push_ids`), in the same file as its rows, so a replayed id is
//!   found exactly when its rows are there. Appends, folds and compactions hold an exclusive
//!   lock on `.lock` (across processes: the server and the CLI may both push). An appender
//!   with ids finishes any stopped fold, reads the footers of segments it has not seen and
//!   the records other processes appended since it last looked, and skips a known id.
//!
//! **Group commit.** A pushing task encodes its record and queues it to the log's writer
//! thread, then awaits its answer; no runtime worker blocks on the disk. The thread takes
//! every record queued, writes them with one write and one `fdatasync`, answers each, and
//! takes the next group, which queued meanwhile: no append waits for more than the group in
//! flight and its own. (Before, each push held a blocking-pool thread and waited on a condvar
//! for a leading push to write its group: two thread hand-offs per push, which `perf` showed
//! as futex wake-ups and scheduling.)
//!
//! A journal past [`FOLD_AT_BYTES`] is folded by the writer thread once its group is
//! answered, so the journal a reader folds stays small. Dropping the log waits for its
//! writer, so a process that exits after a push (the CLI) leaves no fold half done; a temp
//! file left by a crash is deleted by the next fold.
//!
//! **Compaction** folds the journal, then writes the rows of many segments into one
//! `compact-<µs>-<nonce>.parquet` whose footer lists the segments it replaces
//! (`skewless.replaces`) and their ids, then deletes them. Readers skip every replaced
//! segment, so the rename is the one step that switches from the old segments to the new
//! one: a crash before or after it never shows a row twice or not at all.

//!
//! Modules: `record` (framing, CRC), `ids` (ids and tags), `writer` (group commit),
//! `journal`, `fold`, `compact`. It depends on Arrow and Parquet only: training sets read its
//! segments, the push path appends to it, and neither links the other.

mod compact;
mod fold;
mod ids;
mod journal;
mod record;
mod writer;

pub use compact::Compacted;
pub use ids::{Appended, TAG_SEPARATOR};
pub use writer::PushLog;

use fold::*;
use ids::*;
use journal::*;
use record::*;
use writer::*;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SendError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use futures::channel::oneshot;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

pub(crate) const IDS_KEY: &str = "skewless.push_ids";
pub(crate) const REPLACES_KEY: &str = "skewless.replaces";
pub(crate) const FOLDS_KEY: &str = "skewless.folds";

/// A journal this long is folded into a segment by the log's writer thread, once the group that
/// reached it is answered.
pub const FOLD_AT_BYTES: u64 = 64 << 20;

/// The directory of `source`'s log under the project root.
pub fn log_dir(root: &Path, source: &str) -> PathBuf {
    root.join(".skewless").join("push").join(source)
}

/// Log errors: the segment or directory, and what went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("push log {path}: {message}")]
pub struct LogError {
    pub path: PathBuf,
    pub message: String,
}

pub(crate) fn log_error(path: &Path, e: impl std::fmt::Display) -> LogError {
    LogError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub type LogResult<T> = std::result::Result<T, LogError>;

/// The visible segments of `source`'s log, in name order (none when nothing was pushed),
/// after folding its journal: every acknowledged push is in them.
pub fn segments(root: &Path, source: &str) -> LogResult<Vec<PathBuf>> {
    let dir = log_dir(root, source);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let log = PushLog::shared(root, source);
    let _lock = log.state.lock()?;
    log.state.fold_locked(&mut lock(&log.state.seen))?;
    Ok(listing(&dir)?.visible)
}

/// When `source`'s log last took rows (µs since the epoch), or `None` when it holds none:
/// the newest modification time of its journals and segments. A fold or a compaction sets a
/// segment's time to when its rows landed ([`LogState::write_segment`]), so rewriting rows
/// is no change.
pub fn last_change(root: &Path, source: &str) -> LogResult<Option<i64>> {
    let dir = log_dir(root, source);
    let holds_rows = |name: &str| is_segment(name) || is_journal(name) || is_folding(name);
    let mut newest = None;
    for path in files(&dir, holds_rows)? {
        let micros = modified(&path)?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        newest = newest.max(Some(micros));
    }
    Ok(newest)
}

pub(crate) fn modified(path: &Path) -> LogResult<SystemTime> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| log_error(path, e))
}

/// A directory listing: every segment file, and the visible ones (not replaced by a compaction).
pub(crate) struct Listing {
    all: Vec<PathBuf>,
    visible: Vec<PathBuf>,
    /// What the visible compacted segments replace (names), transitively.
    replaced: BTreeSet<String>,
}

pub(crate) fn listing(dir: &Path) -> LogResult<Listing> {
    let all = files(dir, is_segment)?;
    let mut replaced = BTreeSet::new();
    for path in all.iter().filter(|p| file_name(p).starts_with("compact-")) {
        replaced.extend(footer_list(path, REPLACES_KEY)?);
    }
    let visible = all
        .iter()
        .filter(|p| !replaced.contains(file_name(p)))
        .cloned()
        .collect();
    Ok(Listing { all, visible, replaced })
}

/// The files of `dir` whose names `keep` takes, in name order (none when `dir` is missing).
pub(crate) fn files(dir: &Path, keep: fn(&str) -> bool) -> LogResult<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(log_error(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| log_error(dir, e))?.path();
        if keep(file_name(&path)) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn is_segment(name: &str) -> bool {
    (name.starts_with("seg-") || name.starts_with("compact-")) && name.ends_with(".parquet")
}

pub(crate) fn is_journal(name: &str) -> bool {
    name.starts_with("journal-") && name.ends_with(".log")
}

pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-")
}

pub(crate) fn is_folding(name: &str) -> bool {
    name.starts_with("folding-") && name.ends_with(".log")
}

pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// A list of strings the segment's footer keeps under `key` (empty when absent).
pub(crate) fn footer_list(path: &Path, key: &str) -> LogResult<Vec<String>> {
    let file = File::open(path).map_err(|e| log_error(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| log_error(path, e))?;
    let Some(text) = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == key))
        .and_then(|k| k.value.clone())
    else {
        return Ok(Vec::new());
    };
    serde_json::from_str(&text).map_err(|e| log_error(path, format!("footer `{key}` is damaged: {e}")))
}

/// A poisoned lock only means a panic elsewhere; the data it guards is still whole.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn sync_dir(dir: &Path) -> LogResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| log_error(dir, e))
}

pub(crate) fn micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// A name part no other process or call will choose at the same time.
pub fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((std::process::id(), count, SystemTime::now()))
}

/// The push ids in the footers of every visible segment (without their tags), by
/// segment name, after folding the journal (for tests and tools).
pub fn ids_by_segment(root: &Path, source: &str) -> LogResult<HashMap<String, Vec<String>>> {
    segments(root, source)?
        .iter()
        .map(|p| {
            let ids = footer_list(p, IDS_KEY)?;
            Ok((
                file_name(p).to_string(),
                ids.iter().map(|kept| split_id(kept).0.to_string()).collect(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
