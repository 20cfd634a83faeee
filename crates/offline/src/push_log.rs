//! The offline log of pushed rows: what serving saw, kept for the training sets that follow.
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

const IDS_KEY: &str = "skewless.push_ids";
const REPLACES_KEY: &str = "skewless.replaces";
const FOLDS_KEY: &str = "skewless.folds";

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

fn log_error(path: &Path, e: impl std::fmt::Display) -> LogError {
    LogError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

type LogResult<T> = std::result::Result<T, LogError>;

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

/// A directory listing: every segment file, and the visible ones (not replaced by a compaction).
struct Listing {
    all: Vec<PathBuf>,
    visible: Vec<PathBuf>,
    /// What the visible compacted segments replace (names), transitively.
    replaced: BTreeSet<String>,
}

fn listing(dir: &Path) -> LogResult<Listing> {
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
fn files(dir: &Path, keep: fn(&str) -> bool) -> LogResult<Vec<PathBuf>> {
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

fn is_segment(name: &str) -> bool {
    (name.starts_with("seg-") || name.starts_with("compact-")) && name.ends_with(".parquet")
}

fn is_journal(name: &str) -> bool {
    name.starts_with("journal-") && name.ends_with(".log")
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-")
}

fn is_folding(name: &str) -> bool {
    name.starts_with("folding-") && name.ends_with(".log")
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// A list of strings the segment's footer keeps under `key` (empty when absent).
fn footer_list(path: &Path, key: &str) -> LogResult<Vec<String>> {
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

/// Journal records: `SKJ1`, the payload's length, the CRC-32 of that length and the payload
/// (little-endian u32s), the payload. The checksum covers the length, so a zeroed header is
/// a tear, not an empty record.
const RECORD_MAGIC: [u8; 4] = *b"SKJ1";
const RECORD_HEADER: usize = 12;
/// The id length that says "no id".
const NO_ID: u32 = u32::MAX;

/// The record of `batch` (with its `id`): the header, the id, then an Arrow IPC stream.
fn encode_record(batch: &RecordBatch, id: Option<&str>) -> Result<Vec<u8>, String> {
    // The header's length and checksum are filled in once the payload is written after it.
    let mut record = Vec::with_capacity(1024);
    record.extend_from_slice(&RECORD_MAGIC);
    record.resize(RECORD_HEADER, 0);
    match id {
        Some(id) => {
            let len = u32::try_from(id.len())
                .ok()
                .filter(|&l| l != NO_ID)
                .ok_or("the id is too long")?;
            record.extend_from_slice(&len.to_le_bytes());
            record.extend_from_slice(id.as_bytes());
        }
        None => record.extend_from_slice(&NO_ID.to_le_bytes()),
    }
    let mut writer = StreamWriter::try_new(&mut record, &batch.schema()).map_err(|e| e.to_string())?;
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    let len = u32::try_from(record.len() - RECORD_HEADER).map_err(|_| "the push is over 4 GiB")?;
    let crc = record_crc(&len.to_le_bytes(), &record[RECORD_HEADER..]);
    record[4..8].copy_from_slice(&len.to_le_bytes());
    record[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// The payloads of the whole records at the start of `bytes`, and where the last one ends: a
/// torn or damaged record (a bad magic, length or checksum, or a payload that does not split
/// into an id and a stream) ends the journal.
fn whole_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut payloads = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        if header[..4] != RECORD_MAGIC {
            break;
        }
        let start = at + RECORD_HEADER;
        let Some(payload) = bytes.get(start..start + word(4) as usize) else {
            break;
        };
        if record_crc(&header[4..8], payload) != word(8) || split_payload(payload).is_none() {
            break;
        }
        payloads.push(payload);
        at = start + payload.len();
    }
    (payloads, at)
}

/// A payload's id, and its Arrow IPC stream.
fn split_payload(payload: &[u8]) -> Option<(Option<&str>, &[u8])> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?);
    if len == NO_ID {
        return Some((None, &payload[4..]));
    }
    let id = payload.get(4..4 + len as usize)?;
    Some((Some(std::str::from_utf8(id).ok()?), &payload[4 + len as usize..]))
}

/// A record's checksum: CRC-32 of its length bytes, then its payload.
fn record_crc(len: &[u8], payload: &[u8]) -> u32 {
    !crc32_update(crc32_update(!0, len), payload)
}

/// CRC-32 (IEEE), as zlib computes it.
#[cfg(test)]
fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

/// CRC-32 lookup tables for slicing by 8: `CRC_TABLES[0]` is the classic byte table, and
/// `CRC_TABLES[k][b]` runs byte `b` through the register followed by `k` zero bytes.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
};

/// Runs the CRC-32 register over `bytes` (no pre- or post-inversion), eight bytes a step
/// (a byte a step was 3 % of a one-row push's server CPU, and 2 % more when folding).
fn crc32_update(mut c: u32, bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in words.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The rows are in the journal, durably, as the record at `offset`.
    Logged { journal: String, offset: u64 },
    /// A push with this id was appended before: nothing was written. `first` is the tag the
    /// first push was kept with, when both carry one and their digests agree (the same rows);
    /// `None` when that cannot be checked (an id logged before tags were kept).
    Replayed { first: Option<String> },
    /// A push with this id but other rows (another digest) was appended before: nothing was
    /// written.
    Conflict,
}

/// The separator in an id as the log keeps it: `<id>␟<tag>`, the tag being the digest of the
/// push's rows, then (after another separator) whatever else the pusher keeps with it. Ids
/// hold no control characters, so it cannot be part of one.
pub const TAG_SEPARATOR: char = '\u{1f}';

/// An id as the log keeps it: the push's own id and, when it has one, its tag.
fn split_id(kept: &str) -> (&str, Option<&str>) {
    match kept.split_once(TAG_SEPARATOR) {
        Some((id, tag)) => (id, Some(tag)),
        None => (kept, None),
    }
}

/// The digest of the rows a tag names.
fn digest_of(tag: &str) -> &str {
    tag.split(TAG_SEPARATOR).next().unwrap_or(tag)
}

/// What a push tagged `tag` is when its id was seen tagged `known`.
fn replay(known: Option<&str>, tag: Option<&str>) -> Appended {
    match (known, tag) {
        (Some(known), Some(tag)) if digest_of(known) != digest_of(tag) => Appended::Conflict,
        (Some(known), Some(_)) => Appended::Replayed {
            first: Some(known.to_string()),
        },
        _ => Appended::Replayed { first: None },
    }
}

/// One source's log in this process. Appends are queued to its writer thread, which writes
/// them in groups (see "Group commit" above); reads and compactions take the log's lock
/// themselves.
#[derive(Debug)]
pub struct PushLog {
    state: Arc<LogState>,
    /// The writer thread and its queue: started by the first append (a log only read never
    /// starts one), started again if it ever stopped.
    writer: Mutex<Option<Writer>>,
}

#[derive(Debug)]
struct Writer {
    queue: Sender<Pending>,
    thread: std::thread::JoinHandle<()>,
}

/// Dropping the log closes the writer's queue and waits for the thread: it writes and
/// answers what is queued, and finishes a fold it started. A process that exits right after
/// its last push (`skewless push`) then leaves no fold half done.
impl Drop for PushLog {
    fn drop(&mut self) {
        let writer = self.writer.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(Writer { queue, thread }) = writer {
            drop(queue);
            // A writer that panicked has answered its callers with an error already.
            let _ = thread.join();
        }
    }
}

/// Records a kept id (`<id>` or `<id>␟<tag>`) as seen.
fn remember(seen: &mut Seen, kept: &str) {
    let (id, digest) = split_id(kept);
    seen.ids.insert(id.to_string(), digest.map(str::to_string));
}

/// What the writer thread and the readers share: the ids seen so far, and the journal.
#[derive(Debug)]
struct LogState {
    dir: PathBuf,
    seen: Mutex<Seen>,
    fold_at: u64,
}

#[derive(Debug)]
struct Pending {
    /// The encoded record (encoded by the pushing task, before it queues).
    record: Vec<u8>,
    id: Option<String>,
    done: oneshot::Sender<LogResult<Appended>>,
}

/// The writer thread: takes every append queued, writes them as one group (one write, one
/// `fdatasync`), answers each, and folds the journal once it is full. Appends that arrive
/// meanwhile queue for the next group, so none waits for more than the group in flight and
/// its own. Ends when the log (the queue's sender) is dropped.
fn write_groups(state: Arc<LogState>, queue: Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter());
        let (results, full) = state.commit(&group);
        for (pending, result) in group.into_iter().zip(results) {
            // A pusher that is gone (its request dropped) needs no answer: its rows are logged.
            let _ = pending.done.send(result);
        }
        if full {
            // The group is acknowledged and durable; a fold that fails is retried by the next reader.
            let _ = state.fold_if_full();
        }
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// Segment names whose footers were read.
    files: HashSet<String>,
    /// Push ids seen, each with its tag when it was kept one.
    ids: HashMap<String, Option<String>>,
    /// The journal this log appends to, read up to `end`.
    journal: Option<Journal>,
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    /// Where its last whole record read so far ends: the next append goes here.
    end: u64,
}

impl Journal {
    fn open(path: PathBuf) -> LogResult<Journal> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| log_error(&path, e))?;
        Ok(Journal { path, file, end: 0 })
    }
}

/// The rows of one schema in a journal being folded: they become one segment.
struct FoldPart {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    ids: Vec<String>,
    /// How many records (pushes) they came from.
    records: usize,
}

/// Where a fold moves `journal` first: `folding-<its stem>.log`.
fn folding_path(journal: &Path) -> PathBuf {
    journal.with_file_name(file_name(journal).replacen("journal-", "folding-", 1))
}

impl PushLog {
    pub fn open(root: &Path, source: &str) -> Self {
        Self::open_folding_at(root, source, FOLD_AT_BYTES)
    }

    fn open_folding_at(root: &Path, source: &str, fold_at: u64) -> Self {
        PushLog {
            state: Arc::new(LogState {
                dir: log_dir(root, source),
                seen: Mutex::new(Seen::default()),
                fold_at,
            }),
            writer: Mutex::new(None),
        }
    }

    /// The process's one log of `source` under `root`: every push target in the process (a
    /// server's threads, the serving cores of successive applied versions) shares it, so
    /// their appends meet in one group commit instead of queueing on the file lock.
    pub fn shared(root: &Path, source: &str) -> Arc<PushLog> {
        static LOGS: OnceLock<Mutex<HashMap<PathBuf, Weak<PushLog>>>> = OnceLock::new();
        let dir = log_dir(root, source);
        let mut logs = lock(LOGS.get_or_init(Mutex::default));
        if let Some(log) = logs.get(&dir).and_then(Weak::upgrade) {
            return log;
        }
        logs.retain(|_, log| log.strong_count() > 0);
        let log = Arc::new(PushLog::open(root, source));
        logs.insert(dir, Arc::downgrade(&log));
        log
    }

    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// Appends `batch` durably, unless `id` was appended before: resolves once the group that
    /// carries it is written and synced (group commit: one write and one `fdatasync` serve
    /// every append queued meanwhile). The record is encoded and queued here, by the caller,
    /// so dropping the future does not cancel the append; the future only waits for the
    /// writer thread's answer, so it never blocks a runtime worker.
    pub fn append(
        &self,
        batch: &RecordBatch,
        id: Option<&str>,
    ) -> impl Future<Output = LogResult<Appended>> + Send + 'static {
        let queued = self.queue(batch, id);
        let state = Arc::clone(&self.state);
        async move {
            queued?.await.unwrap_or_else(|_| {
                Err(log_error(
                    &state.dir,
                    "the log's writer stopped before it answered (a bug)",
                ))
            })
        }
    }

    /// Queues `batch` for the writer thread (starting it when there is none, or when it
    /// stopped): the receiver of its answer.
    fn queue(&self, batch: &RecordBatch, id: Option<&str>) -> LogResult<oneshot::Receiver<LogResult<Appended>>> {
        let dir = &self.state.dir;
        let record = encode_record(batch, id).map_err(|e| log_error(dir, e))?;
        let (done, answer) = oneshot::channel();
        let mut pending = Pending {
            record,
            id: id.map(str::to_string),
            done,
        };
        let mut writer = lock(&self.writer);
        if let Some(running) = writer.as_ref() {
            match running.queue.send(pending) {
                Ok(()) => return Ok(answer),
                Err(SendError(back)) => pending = back,
            }
        }
        let (queue, receiver) = mpsc::channel();
        let state = Arc::clone(&self.state);
        let thread = std::thread::Builder::new()
            .name("skewless-push-log".into())
            .spawn(move || write_groups(state, receiver))
            .map_err(|e| log_error(dir, format!("cannot start the log's writer thread: {e}")))?;
        queue
            .send(pending)
            .map_err(|_| log_error(dir, "the log's writer thread stopped at once (a bug)"))?;
        *writer = Some(Writer { queue, thread });
        Ok(answer)
    }

    /// Folds the journal, then merges every visible segment into one (when there are at
    /// least two), atomically; see the module docs.
    pub fn compact(&self) -> LogResult<Compacted> {
        self.state.compact()
    }
}

impl LogState {
    /// Writes one group: a replayed id (seen in the log, or earlier in the group) appends
    /// nothing; the rest go into the journal in one write and one `fdatasync`. Also says
    /// whether the journal is now due for a fold.
    fn commit(&self, group: &[Pending]) -> (Vec<LogResult<Appended>>, bool) {
        let failed = |e: LogError| (group.iter().map(|_| Err(e.clone())).collect(), false);
        let _lock = match self.lock() {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let mut seen = lock(&self.seen);
        let known = (|| {
            if group.iter().any(|p| p.id.is_some()) {
                // A fold that stopped part way holds ids no footer has yet: finish it first.
                if !files(&self.dir, is_folding)?.is_empty() {
                    self.fold_locked(&mut seen)?;
                }
                self.refresh(&mut seen)?;
            }
            self.journal(&mut seen)
        })();
        let existing = match known {
            Ok(j) => j,
            Err(e) => return failed(e),
        };
        let mut ids_in_group: HashMap<&str, Option<&str>> = HashMap::new();
        // Per member: `None` when it is appended, else what it is (a replay, a conflict).
        let verdicts: Vec<Option<Appended>> = group
            .iter()
            .map(|pending| {
                let (id, digest) = split_id(pending.id.as_deref()?);
                if let Some(known) = seen.ids.get(id) {
                    return Some(replay(known.as_deref(), digest));
                }
                match ids_in_group.get(id) {
                    Some(known) => Some(replay(*known, digest)),
                    None => {
                        ids_in_group.insert(id, digest);
                        None
                    }
                }
            })
            .collect();
        let fresh: Vec<bool> = verdicts.iter().map(Option::is_none).collect();
        let mut journal = match existing {
            Some(j) => j,
            None if !fresh.contains(&true) => return (verdicts.into_iter().flatten().map(Ok).collect(), false),
            None => match self.new_journal() {
                Ok(j) => j,
                Err(e) => return failed(e),
            },
        };
        let name = file_name(&journal.path).to_string();
        let mut bytes = Vec::new();
        let mut results: Vec<LogResult<Appended>> = Vec::with_capacity(group.len());
        for (pending, verdict) in group.iter().zip(verdicts) {
            results.push(Ok(verdict.unwrap_or_else(|| {
                let offset = journal.end + bytes.len() as u64;
                bytes.extend_from_slice(&pending.record);
                Appended::Logged {
                    journal: name.clone(),
                    offset,
                }
            })));
        }
        if !bytes.is_empty() {
            let written = journal
                .file
                .write_all_at(&bytes, journal.end)
                .and_then(|()| journal.file.sync_data());
            if let Err(e) = written {
                // What reached the file may not reach the disk: this journal takes no more
                // records. Retired as a stopped fold, its whole records are folded by the next
                // reader (a torn end is cut there); the next append starts a new journal.
                let _ = journal.file.set_len(journal.end);
                let _ = std::fs::rename(&journal.path, folding_path(&journal.path));
                let e = log_error(&journal.path, e);
                for (result, _) in results.iter_mut().zip(&fresh).filter(|(_, fresh)| **fresh) {
                    *result = Err(e.clone());
                }
                return (results, false);
            }
            journal.end += bytes.len() as u64;
            seen.ids.extend(
                ids_in_group
                    .into_iter()
                    .map(|(id, digest)| (id.to_string(), digest.map(str::to_string))),
            );
        }
        let full = journal.end >= self.fold_at;
        seen.journal = Some(journal);
        (results, full)
    }

    /// The journal to append to, read to its end (held lock): ours, unless a fold took it;
    /// else one another process started; none when there is none. Records other processes
    /// appended since we last looked add their ids, once synced (their writer may have died
    /// before its `fdatasync`); a torn tail (a crashed append) is cut off.
    fn journal(&self, seen: &mut Seen) -> LogResult<Option<Journal>> {
        let mut journal = match seen.journal.take() {
            Some(j) if j.path.exists() => j,
            _ => match files(&self.dir, is_journal)?.into_iter().next() {
                Some(path) => Journal::open(path)?,
                None => return Ok(None),
            },
        };
        let len = journal.file.metadata().map_err(|e| log_error(&journal.path, e))?.len();
        if len < journal.end {
            return Err(log_error(&journal.path, "the journal shrank under its lock"));
        }
        if len > journal.end {
            let mut tail = vec![0; (len - journal.end) as usize];
            journal
                .file
                .read_exact_at(&mut tail, journal.end)
                .map_err(|e| log_error(&journal.path, e))?;
            let (payloads, whole) = whole_records(&tail);
            if whole > 0 {
                journal.file.sync_data().map_err(|e| log_error(&journal.path, e))?;
            }
            for payload in payloads {
                if let Some((Some(kept), _)) = split_payload(payload) {
                    remember(seen, kept);
                }
            }
            journal.end += whole as u64;
            if journal.end < len {
                journal
                    .file
                    .set_len(journal.end)
                    .and_then(|()| journal.file.sync_data())
                    .map_err(|e| log_error(&journal.path, e))?;
            }
        }
        Ok(Some(journal))
    }

    /// A new, empty journal, durably in the directory (held lock).
    fn new_journal(&self) -> LogResult<Journal> {
        let (micros, nonce) = (micros(), nonce());
        let path = self.dir.join(format!("journal-{micros:016}-{nonce:016x}.log"));
        File::create_new(&path).map_err(|e| log_error(&path, e))?;
        sync_dir(&self.dir)?;
        Journal::open(path)
    }

    /// Folds the journal if it is still past the fold size (another append may have folded it).
    fn fold_if_full(&self) -> LogResult<()> {
        let _lock = self.lock()?;
        let mut size = 0;
        for path in files(&self.dir, is_journal)? {
            size += std::fs::metadata(&path).map_err(|e| log_error(&path, e))?.len();
        }
        if size >= self.fold_at {
            self.fold_locked(&mut lock(&self.seen))?;
        }
        Ok(())
    }

    /// Folds every journal into segments (held lock; see the module docs), finishing any fold
    /// that stopped part way first. Returns how many records were folded.
    fn fold_locked(&self, seen: &mut Seen) -> LogResult<usize> {
        seen.journal = None;
        // Temp files are written only under the lock: any found now is a stopped write's.
        for tmp in files(&self.dir, is_temp)? {
            std::fs::remove_file(&tmp).map_err(|e| log_error(&tmp, e))?;
        }
        let leftovers = files(&self.dir, is_folding)?;
        // Parts of stopped folds that already have their segment.
        let mut done_parts: HashSet<String> = HashSet::new();
        if !leftovers.is_empty() {
            for path in listing(&self.dir)?.visible {
                done_parts.extend(footer_list(&path, FOLDS_KEY)?);
            }
        }
        let mut folding = leftovers;
        for journal in files(&self.dir, is_journal)? {
            let renamed = folding_path(&journal);
            std::fs::rename(&journal, &renamed).map_err(|e| log_error(&journal, e))?;
            folding.push(renamed);
        }
        let mut folded = 0;
        for path in &folding {
            let bytes = std::fs::read(path).map_err(|e| log_error(path, e))?;
            let (payloads, _) = whole_records(&bytes);
            // The parts: one per schema, in order of first appearance (the same on every retry).
            let mut parts: Vec<FoldPart> = Vec::new();
            for payload in payloads {
                let (id, stream) = split_payload(payload).ok_or_else(|| log_error(path, "a record's id is damaged"))?;
                let reader = StreamReader::try_new(Cursor::new(stream), None).map_err(|e| log_error(path, e))?;
                let schema = reader.schema();
                let at = match parts.iter().position(|p| p.schema == schema) {
                    Some(at) => at,
                    None => {
                        parts.push(FoldPart {
                            schema,
                            batches: Vec::new(),
                            ids: Vec::new(),
                            records: 0,
                        });
                        parts.len() - 1
                    }
                };
                let part = &mut parts[at];
                for batch in reader {
                    part.batches.push(batch.map_err(|e| log_error(path, e))?);
                }
                part.records += 1;
                part.ids.extend(id.map(str::to_string));
            }
            let stem = file_name(path).trim_start_matches("folding-").trim_end_matches(".log");
            for (
                k,
                FoldPart {
                    schema,
                    batches,
                    ids,
                    records,
                },
            ) in parts.into_iter().enumerate()
            {
                let tag = format!("{stem}:{k}");
                if done_parts.contains(&tag) {
                    continue;
                }
                folded += records;
                let segment = self.write_segment("seg", &batches, &schema, &[(IDS_KEY, &ids), (FOLDS_KEY, &[tag])])?;
                seen.files.insert(file_name(&segment).to_string());
                for kept in &ids {
                    remember(seen, kept);
                }
            }
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
        }
        if !folding.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(folded)
    }

    /// Reads the ids of segments not seen yet (written by another process, or compacted).
    fn refresh(&self, seen: &mut Seen) -> LogResult<()> {
        for path in listing(&self.dir)?.all {
            let name = file_name(&path).to_string();
            if !seen.files.contains(&name) {
                for kept in footer_list(&path, IDS_KEY)? {
                    remember(seen, &kept);
                }
                seen.files.insert(name);
            }
        }
        Ok(())
    }

    /// Takes the log's exclusive lock (held until the file is dropped), creating the log's
    /// directory the first time (not a `mkdir` per group).
    fn lock(&self) -> LogResult<File> {
        let path = self.dir.join(".lock");
        let open = || File::options().create(true).truncate(false).write(true).open(&path);
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(|e| log_error(&self.dir, e))?;
                open()
            }
            opened => opened,
        }
        .map_err(|e| log_error(&path, e))?;
        file.lock().map_err(|e| log_error(&path, e))?;
        Ok(file)
    }

    /// Writes `batches` to a hidden temp file with `footer`'s non-empty lists, syncs it,
    /// renames it to `<prefix>-<µs>-<nonce>.parquet` and syncs the directory: the segment is
    /// whole and durable when this returns.
    fn write_segment(
        &self,
        prefix: &str,
        batches: &[RecordBatch],
        schema: &SchemaRef,
        footer: &[(&str, &[String])],
    ) -> LogResult<PathBuf> {
        let (micros, nonce) = (micros(), nonce());
        let tmp = self.dir.join(format!(".tmp-{nonce:016x}"));
        let done = self.dir.join(format!("{prefix}-{micros:016}-{nonce:016x}.parquet"));
        let mut key_values = Vec::new();
        for &(key, list) in footer {
            if !list.is_empty() {
                let text = serde_json::to_string(list).map_err(|e| log_error(&tmp, e))?;
                key_values.push(KeyValue::new(key.to_string(), text));
            }
        }
        let props = WriterProperties::builder()
            .set_key_value_metadata((!key_values.is_empty()).then_some(key_values))
            .build();
        let result = (|| {
            let file = File::create(&tmp).map_err(|e| log_error(&tmp, e))?;
            let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| log_error(&tmp, e))?;
            for batch in batches {
                writer.write(batch).map_err(|e| log_error(&tmp, e))?;
            }
            let file = writer.into_inner().map_err(|e| log_error(&tmp, e))?;
            file.sync_all().map_err(|e| log_error(&tmp, e))?;
            std::fs::rename(&tmp, &done).map_err(|e| log_error(&done, e))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| done)
    }

    fn compact(&self) -> LogResult<Compacted> {
        let _lock = self.lock()?;
        let folded = self.fold_locked(&mut lock(&self.seen))?;
        let listed = listing(&self.dir)?;
        let mut removed = 0;
        // Leftovers of a compaction that stopped after its rename.
        for path in listed.all.iter().filter(|p| listed.replaced.contains(file_name(p))) {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
            removed += 1;
        }
        let visible = listed.visible;
        let mut done = Compacted {
            folded,
            segments: 0,
            rows: 0,
            leftovers_removed: removed,
        };
        if visible.len() < 2 {
            return Ok(done);
        }
        let mut batches = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        let mut ids = Vec::new();
        let mut replaces: BTreeSet<String> = listed.replaced;
        for path in &visible {
            let file = File::open(path).map_err(|e| log_error(path, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| log_error(path, e))?;
            let this_schema = SchemaRef::clone(builder.schema());
            let reader = builder.build().map_err(|e| log_error(path, e))?;
            match &schema {
                None => schema = Some(this_schema),
                Some(s) if s.fields() != this_schema.fields() => {
                    return Err(log_error(
                        path,
                        "its columns differ from the other segments'; compact the log before changing the source's schema",
                    ));
                }
                Some(_) => {}
            }
            for batch in reader {
                batches.push(batch.map_err(|e| log_error(path, e))?);
            }
            ids.extend(footer_list(path, IDS_KEY)?);
            replaces.insert(file_name(path).to_string());
        }
        let Some(schema) = schema else {
            return Err(log_error(&self.dir, "no segment to compact"));
        };
        let replaces: Vec<String> = replaces.into_iter().collect();
        self.write_segment(
            "compact",
            &batches,
            &schema,
            &[(IDS_KEY, &ids), (REPLACES_KEY, &replaces)],
        )?;
        for path in &visible {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
        }
        sync_dir(&self.dir)?;
        done.segments = visible.len();
        done.rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(done)
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Journal records (pushes) folded into a segment first.
    pub folded: usize,
    /// Segments merged into one (0: fewer than two were there).
    pub segments: usize,
    pub rows: usize,
    /// Segments an interrupted compaction had replaced but not yet deleted.
    pub leftovers_removed: usize,
}

/// A poisoned lock only means a panic elsewhere; the data it guards is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sync_dir(dir: &Path) -> LogResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| log_error(dir, e))
}

fn micros() -> u128 {
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
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    impl PushLog {
        /// [`PushLog::append`], waited for on this thread.
        fn append_now(&self, batch: &RecordBatch, id: Option<&str>) -> LogResult<Appended> {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(self.append(batch, id))
        }
    }

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let strings: Vec<String> = values.iter().map(|v| format!("v{v}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(StringArray::from(strings)),
            ],
        )
        .unwrap()
    }

    fn rows(root: &Path) -> Vec<i64> {
        let mut out = Vec::new();
        for path in segments(root, "s").unwrap() {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                out.extend(k.values().iter().copied());
            }
        }
        out.sort_unstable();
        out
    }

    /// One log per directory in a process, while anyone holds it; another source or root
    /// gets its own.
    #[test]
    fn a_process_shares_one_log_per_source() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = PushLog::shared(a.path(), "s");
        assert!(Arc::ptr_eq(&first, &PushLog::shared(a.path(), "s")));
        assert!(!Arc::ptr_eq(&first, &PushLog::shared(a.path(), "t")));
        assert!(!Arc::ptr_eq(&first, &PushLog::shared(b.path(), "s")));
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_none(), "the process keeps no log alive itself");
        assert_eq!(PushLog::shared(a.path(), "s").dir(), log_dir(a.path(), "s"));
    }

    /// A kept id carries a tag starting with the digest of its rows: a replay with the same
    /// digest is the same push (and learns the first one's tag), one with another digest a
    /// conflict, in the journal, after a fold, and in another process; an id kept without a
    /// tag (an older log) cannot be checked.
    #[test]
    fn tagged_ids_tell_replays_from_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        let kept = |id: &str, tag: &str| format!("{id}{TAG_SEPARATOR}{tag}");
        let first_tag = format!("d1{TAG_SEPARATOR}100");
        assert!(matches!(
            log.append_now(&batch(&[1]), Some(&kept("a", &first_tag))).unwrap(),
            Appended::Logged { .. }
        ));
        log.append_now(&batch(&[2]), Some("old")).unwrap();
        let same = Appended::Replayed {
            first: Some(first_tag.clone()),
        };
        let unchecked = Appended::Replayed { first: None };
        let retry = kept("a", &format!("d1{TAG_SEPARATOR}200"));
        for round in 0..2 {
            let other = PushLog::open(dir.path(), "s");
            for appender in [&log, &other] {
                assert_eq!(
                    appender.append_now(&batch(&[1]), Some(&retry)).unwrap(),
                    same,
                    "{round}"
                );
                assert_eq!(
                    appender.append_now(&batch(&[9]), Some(&kept("a", "d2"))).unwrap(),
                    Appended::Conflict
                );
                assert_eq!(
                    appender.append_now(&batch(&[9]), Some(&kept("old", "d3"))).unwrap(),
                    unchecked
                );
            }
            // The second round reads the ids from the segment's footer.
            assert_eq!(rows(dir.path()), [1, 2]);
        }
        assert_eq!(
            ids_by_segment(dir.path(), "s")
                .unwrap()
                .into_values()
                .flatten()
                .collect::<BTreeSet<_>>(),
            BTreeSet::from(["a".to_string(), "old".to_string()])
        );
        // Within one group or several: the first of an id is logged, another with other rows
        // conflicts, one with the same rows is a replay.
        let group = PushLog::open(dir.path(), "s");
        let pending = [
            group.queue(&batch(&[5]), Some(&kept("g", "x"))).unwrap(),
            group.queue(&batch(&[6]), Some(&kept("g", "y"))).unwrap(),
            group.queue(&batch(&[5]), Some(&kept("g", "x"))).unwrap(),
        ];
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answers: Vec<Appended> = pending
            .into_iter()
            .map(|answer| runtime.block_on(answer).unwrap().unwrap())
            .collect();
        assert!(matches!(answers[0], Appended::Logged { .. }), "{answers:?}");
        assert_eq!(
            answers[1..],
            [
                Appended::Conflict,
                Appended::Replayed {
                    first: Some("x".into())
                }
            ]
        );
    }

    #[test]
    fn appends_are_whole_records_and_replayed_ids_append_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        let first = log.append_now(&batch(&[1, 2]), Some("a")).unwrap();
        let Appended::Logged { journal, offset: 0 } = &first else {
            panic!("{first:?}")
        };
        assert_eq!(
            log.append_now(&batch(&[1, 2]), Some("a")).unwrap(),
            Appended::Replayed { first: None }
        );
        let Appended::Logged { offset, .. } = log.append_now(&batch(&[3]), None).unwrap() else {
            panic!("logged")
        };
        assert!(offset > 0);
        assert!(matches!(
            log.append_now(&batch(&[3]), None).unwrap(),
            Appended::Logged { .. }
        ));
        // Another appender (another process) finds the id in the journal's records.
        let other = PushLog::open(dir.path(), "s");
        assert_eq!(
            other.append_now(&batch(&[9]), Some("a")).unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(rows(dir.path()), [1, 2, 3, 3]);
        // The reader folded the journal: it is gone, and both appenders start a new one, which
        // the next reader folds too; the id is found in the segment's footer now.
        assert!(!log.dir().join(journal).exists());
        assert_eq!(
            other.append_now(&batch(&[9]), Some("a")).unwrap(),
            Appended::Replayed { first: None }
        );
        assert!(
            files(log.dir(), is_journal).unwrap().is_empty(),
            "a replay started a journal"
        );
        log.append_now(&batch(&[4]), None).unwrap();
        other.append_now(&batch(&[5]), Some("b")).unwrap();
        assert_eq!(
            log.append_now(&batch(&[5]), Some("b")).unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(rows(dir.path()), [1, 2, 3, 3, 4, 5]);
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 2);
        // A temp file left by a crash is never read, and the next fold deletes it.
        let tmp = log.dir().join(".tmp-00000000deadbeef");
        std::fs::write(&tmp, b"PAR1 torn").unwrap();
        assert_eq!(rows(dir.path()), [1, 2, 3, 3, 4, 5]);
        assert!(!tmp.exists());
    }

    #[test]
    fn concurrent_appends_share_segments_and_each_id_is_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(PushLog::open(dir.path(), "s"));
        // 8 threads × 25 appends; ids repeat across threads (each id is used by two threads).
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let id = format!("id{}-{i}", t / 2);
                            let value = (t / 2) * 1000 + i;
                            (id.clone(), log.append_now(&batch(&[value]), Some(&id)).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<(String, Appended)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let mut appended: Vec<&String> = results
            .iter()
            .filter(|(_, a)| matches!(a, Appended::Logged { .. }))
            .map(|(id, _)| id)
            .collect();
        appended.sort();
        let before = appended.len();
        appended.dedup();
        assert_eq!(before, appended.len(), "an id was appended twice");
        assert_eq!(appended.len(), 100, "every id once");
        let expected: Vec<i64> = (0..4).flat_map(|p| (0..25).map(move |i| p * 1000 + i)).collect();
        assert_eq!(rows(dir.path()), expected);
        // One journal, folded into one segment by the first read.
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
    }

    #[test]
    fn compaction_keeps_rows_and_ids_and_switches_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        // Three segments (each read folds the journal into one), and one push left in the journal.
        for (i, values) in [[1, 2], [3, 4], [5, 6]].iter().enumerate() {
            log.append_now(&batch(values), Some(&format!("id{i}"))).unwrap();
            segments(dir.path(), "s").unwrap();
        }
        log.append_now(&batch(&[7]), Some("id3")).unwrap();
        let compacted = log.compact().unwrap();
        assert_eq!((compacted.folded, compacted.segments, compacted.rows), (1, 4, 7));
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
        // The ids live on in the compacted segment, for this appender and a fresh one.
        assert_eq!(
            log.append_now(&batch(&[7]), Some("id1")).unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(
            PushLog::open(dir.path(), "s")
                .append_now(&batch(&[7]), Some("id2"))
                .unwrap(),
            Appended::Replayed { first: None }
        );
        // A compaction that stopped after its rename, before deleting what it replaced:
        // the old segments are back on disk, yet no row shows twice, and the next run deletes them.
        let replaced = footer_list(&segments(dir.path(), "s").unwrap()[0], REPLACES_KEY).unwrap();
        assert_eq!(replaced.len(), 4);
        for (name, values) in replaced.iter().zip([&[1, 2][..], &[3, 4], &[5, 6], &[7]]) {
            std::fs::write(log.dir().join(name), parquet_of(&batch(values))).unwrap();
        }
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(log.compact().unwrap().leftovers_removed, 4);
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7]);
        // Compacting again, with new segments, keeps replacing transitively.
        log.append_now(&batch(&[8]), None).unwrap();
        log.compact().unwrap();
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
    }

    fn parquet_of(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        out
    }

    fn journal_of(log: &PushLog) -> PathBuf {
        files(log.dir(), is_journal).unwrap().remove(0)
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Slicing by 8 against the bit-at-a-time definition, at every length and alignment
        // around the 8-byte steps, with the register carried across calls.
        let bitwise = |mut c: u32, bytes: &[u8]| {
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                }
            }
            c
        };
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let bytes: Vec<u8> = (0..300)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        for start in 0..9 {
            for len in 0..(bytes.len() - start) {
                let part = &bytes[start..start + len];
                let split = len / 3;
                let sliced = crc32_update(crc32_update(!0, &part[..split]), &part[split..]);
                assert_eq!(sliced, bitwise(!0, part), "start {start}, length {len}");
            }
        }
    }

    /// A crash mid-append leaves a torn record at the journal's end: readers stop before it,
    /// and the next appender (in another process) cuts it off and appends after the whole ones.
    #[test]
    fn a_torn_tail_is_never_read_and_the_next_append_cuts_it_off() {
        // Cut inside the header, at its end, inside the payload; a damaged payload; a header
        // whose length and checksum are zeros (an empty payload is no record).
        for cut in [1, RECORD_HEADER - 1, RECORD_HEADER, RECORD_HEADER + 5, usize::MAX, 0] {
            let dir = tempfile::tempdir().unwrap();
            let log = PushLog::open(dir.path(), "s");
            log.append_now(&batch(&[1]), Some("a")).unwrap();
            let path = journal_of(&log);
            let mut torn = encode_record(&batch(&[2]), Some("b")).unwrap();
            if cut == 0 {
                torn = b"SKJ1\0\0\0\0\0\0\0\0".to_vec();
            } else if cut == usize::MAX {
                // Whole length, damaged payload: the checksum catches it.
                let last = torn.len() - 1;
                torn[last] ^= 0xff;
            } else {
                torn.truncate(cut);
            }
            let whole = std::fs::metadata(&path).unwrap().len();
            let file = File::options().append(true).open(&path).unwrap();
            std::io::Write::write_all(&mut &file, &torn).unwrap();
            let other = PushLog::open(dir.path(), "s");
            // The torn push was never acknowledged: its id is free.
            assert!(
                matches!(other.append_now(&batch(&[3]), Some("b")).unwrap(), Appended::Logged { offset, .. } if offset == whole)
            );
            assert_eq!(
                other.append_now(&batch(&[1]), Some("a")).unwrap(),
                Appended::Replayed { first: None }
            );
            assert_eq!(rows(dir.path()), [1, 3], "cut at {cut}");
        }
        // A reader alone stops at the tear too.
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        log.append_now(&batch(&[1]), None).unwrap();
        let file = File::options().append(true).open(journal_of(&log)).unwrap();
        std::io::Write::write_all(&mut &file, b"SKJ1\xff\xff").unwrap();
        assert_eq!(rows(dir.path()), [1]);
    }

    /// A fold that stopped part way, at each step: the journal's rows (here of two schemas,
    /// so two parts) end up in segments exactly once.
    #[test]
    fn a_stopped_fold_is_finished_once() {
        let other_schema = || {
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("x", DataType::Float64, true),
            ]));
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(Int64Array::from(vec![10, 11])),
                    Arc::new(arrow::array::Float64Array::from(vec![0.5, 1.5])),
                ],
            )
            .unwrap()
        };
        // 0: renamed, no segment yet; 1: the first part's segment written; 2: both written.
        for parts_written in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let log = PushLog::open(dir.path(), "s");
            log.append_now(&batch(&[1, 2]), Some("a")).unwrap();
            log.append_now(&other_schema(), Some("b")).unwrap();
            log.append_now(&batch(&[3]), None).unwrap();
            let journal = journal_of(&log);
            let bytes = std::fs::read(&journal).unwrap();
            let folded = segments(dir.path(), "s").unwrap();
            assert_eq!(folded.len(), 2, "one segment per schema");
            assert_eq!(rows(dir.path()), [1, 2, 3, 10, 11]);
            // Put the log back as a fold that stopped after `parts_written` segments.
            let mut parts: Vec<(String, PathBuf)> = folded
                .iter()
                .map(|p| (footer_list(p, FOLDS_KEY).unwrap().remove(0), p.clone()))
                .collect();
            parts.sort();
            assert!(parts[0].0.ends_with(":0") && parts[1].0.ends_with(":1"));
            for (_, path) in &parts[parts_written..] {
                std::fs::remove_file(path).unwrap();
            }
            let leftover = folding_path(&journal);
            std::fs::write(&leftover, &bytes).unwrap();
            // A fresh appender (a restarted server) retrying an id of a part not written yet:
            // it finishes the fold first, and finds the id.
            assert_eq!(
                PushLog::open(dir.path(), "s")
                    .append_now(&batch(&[9]), Some("b"))
                    .unwrap(),
                Appended::Replayed { first: None }
            );
            assert_eq!(rows(dir.path()), [1, 2, 3, 10, 11], "{parts_written} parts written");
            assert!(!leftover.exists());
            assert_eq!(segments(dir.path(), "s").unwrap().len(), 2);
            // The ids are where the rows are.
            for id in ["a", "b"] {
                assert_eq!(
                    PushLog::open(dir.path(), "s")
                        .append_now(&batch(&[9]), Some(id))
                        .unwrap(),
                    Appended::Replayed { first: None }
                );
            }
        }
    }

    /// A journal past the fold size is folded by the writer thread once the group that filled
    /// it is answered, without a reader; dropping the log waits for that fold.
    #[test]
    fn a_full_journal_is_folded_by_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open_folding_at(dir.path(), "s", 1);
        for i in 0..3 {
            log.append_now(&batch(&[i]), Some(&format!("id{i}"))).unwrap();
            // The writer folded each earlier journal before it took the next group (and may
            // have folded this one already).
            let folded = files(log.dir(), is_segment).unwrap().len();
            assert!((i as usize..=i as usize + 1).contains(&folded), "{folded} after {i}");
        }
        // The last fold follows the last answer; dropping the log waits for it.
        let log_dir = log.dir().to_path_buf();
        drop(log);
        assert!(files(&log_dir, is_journal).unwrap().is_empty());
        assert!(files(&log_dir, is_folding).unwrap().is_empty());
        assert_eq!(files(&log_dir, is_segment).unwrap().len(), 3);
        assert_eq!(
            PushLog::open(dir.path(), "s")
                .append_now(&batch(&[0]), Some("id1"))
                .unwrap(),
            Appended::Replayed { first: None }
        );
        assert_eq!(rows(dir.path()), [0, 1, 2]);
    }
}
