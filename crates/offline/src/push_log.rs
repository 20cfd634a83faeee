//! The offline log of pushed rows: what serving saw, kept for the training sets that follow.
//!
//! Each acknowledged push is one Parquet *segment* under `.skewless/push/<source>/`, in the
//! source's own schema, so a job reads the log beside the source's batch files as if it were
//! one more file. A segment becomes visible in one step:
//!
//! ```text
//! write .tmp-<nonce> ─ fsync ─ rename to seg-<µs>-<nonce>.parquet ─ fsync the directory ─ ack
//! ```
//!
//! so a crash leaves either nothing or a whole segment; hidden temp files are never read.
//!
//! **Group commit.** Appends that arrive while a segment is being written wait, and the next
//! segment takes them all: one file and one pair of fsyncs for many pushes, each acknowledged
//! only once that segment is durable.
//!
//! **Ids.** A push may carry an id; the segment keeps its ids in its footer
//! (`skewless.push_ids`, a JSON list), in the same file as its rows, so a replayed id is found
//! exactly when its rows are there. Appends hold an exclusive lock on `.lock` (across
//! processes: the server and the CLI may both push), re-read the footers of segments they
//! have not seen, and skip a known id.
//!
//! **Compaction** writes the rows of many segments into one `compact-<µs>-<nonce>.parquet`
//! whose footer lists the segments it replaces (`skewless.replaces`) and their ids, then
//! deletes them. Readers skip every replaced segment, so the rename is the one step that
//! switches from the old segments to the new one: a crash before or after it never shows a
//! row twice or not at all.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

const IDS_KEY: &str = "skewless.push_ids";
const REPLACES_KEY: &str = "skewless.replaces";

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

/// The visible segments of `source`'s log, in name order (none when nothing was pushed).
pub fn segments(root: &Path, source: &str) -> LogResult<Vec<PathBuf>> {
    let dir = log_dir(root, source);
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
    let mut all = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Listing {
                all,
                visible: Vec::new(),
                replaced: BTreeSet::new(),
            });
        }
        Err(e) => return Err(log_error(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| log_error(dir, e))?.path();
        if is_segment(&path) {
            all.push(path);
        }
    }
    all.sort();
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

fn is_segment(path: &Path) -> bool {
    let name = file_name(path);
    (name.starts_with("seg-") || name.starts_with("compact-")) && name.ends_with(".parquet")
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

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The rows are in this new segment, durably.
    Segment(PathBuf),
    /// A push with this id was appended before: nothing was written.
    Replayed,
}

/// One source's log, as an appender keeps it: the ids seen so far, by segment.
#[derive(Debug)]
pub struct PushLog {
    dir: PathBuf,
    seen: Mutex<Seen>,
    queue: Mutex<Queue>,
}

/// Group commit: appends that arrive while one is being written wait here, and the next
/// writer takes them all into one segment with one pair of fsyncs.
#[derive(Debug, Default)]
struct Queue {
    pending: Vec<Pending>,
    /// Whether a thread is writing groups now (it takes what arrives until none is left).
    writing: bool,
}

#[derive(Debug)]
struct Pending {
    batch: RecordBatch,
    id: Option<String>,
    done: Arc<Slot>,
}

/// Where a waiting append finds its result.
#[derive(Debug, Default)]
struct Slot {
    result: Mutex<Option<LogResult<Appended>>>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Seen {
    /// Segment names whose footers were read.
    files: HashSet<String>,
    ids: HashSet<String>,
}

impl PushLog {
    pub fn open(root: &Path, source: &str) -> Self {
        PushLog {
            dir: log_dir(root, source),
            seen: Mutex::new(Seen::default()),
            queue: Mutex::new(Queue::default()),
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
        &self.dir
    }

    /// Appends `batch` durably, unless `id` was appended before. Blocking: call it off the
    /// async runtime's workers. Appends that meet are written together (group commit): one
    /// segment holds their rows and ids, so one pair of fsyncs serves them all.
    pub fn append(&self, batch: &RecordBatch, id: Option<&str>) -> LogResult<Appended> {
        let slot = Arc::new(Slot::default());
        {
            let mut queue = lock(&self.queue);
            queue.pending.push(Pending {
                batch: batch.clone(),
                id: id.map(str::to_string),
                done: Arc::clone(&slot),
            });
            if queue.writing {
                drop(queue);
                let mut result = lock(&slot.result);
                loop {
                    if let Some(result) = result.take() {
                        return result;
                    }
                    result = slot.ready.wait(result).unwrap_or_else(PoisonError::into_inner);
                }
            }
            queue.writing = true;
        }
        // This thread writes groups until no append is waiting; its own is in the first.
        loop {
            let group = {
                let mut queue = lock(&self.queue);
                if queue.pending.is_empty() {
                    queue.writing = false;
                    break;
                }
                std::mem::take(&mut queue.pending)
            };
            let results = self.commit(&group);
            for (pending, result) in group.iter().zip(results) {
                *lock(&pending.done.result) = Some(result);
                pending.done.ready.notify_one();
            }
        }
        lock(&slot.result)
            .take()
            .unwrap_or_else(|| Err(log_error(&self.dir, "the append was lost by its group (a bug)")))
    }

    /// Writes one group: a replayed id (seen in the log, or earlier in the group) appends
    /// nothing; the rest go into one segment per schema.
    fn commit(&self, group: &[Pending]) -> Vec<LogResult<Appended>> {
        let failed = |e: LogError| group.iter().map(|_| Err(e.clone())).collect();
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return failed(log_error(&self.dir, e));
        }
        let _lock = match self.lock() {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let mut seen = lock(&self.seen);
        if group.iter().any(|p| p.id.is_some())
            && let Err(e) = self.refresh(&mut seen)
        {
            return failed(e);
        }
        let mut results: Vec<Option<LogResult<Appended>>> = vec![None; group.len()];
        let mut ids_in_group: HashSet<&str> = HashSet::new();
        let mut taken: Vec<usize> = Vec::new();
        for (i, pending) in group.iter().enumerate() {
            match pending.id.as_deref() {
                Some(id) if seen.ids.contains(id) || !ids_in_group.insert(id) => {
                    results[i] = Some(Ok(Appended::Replayed));
                }
                _ => taken.push(i),
            }
        }
        // One segment per distinct schema (a reload may change a source's schema mid-group).
        while !taken.is_empty() {
            let schema = group[taken[0]].batch.schema();
            let (same, rest): (Vec<usize>, Vec<usize>) =
                taken.iter().partition(|&&i| group[i].batch.schema() == schema);
            taken = rest;
            let batches: Vec<RecordBatch> = same.iter().map(|&i| group[i].batch.clone()).collect();
            let ids: Vec<String> = same.iter().filter_map(|&i| group[i].id.clone()).collect();
            let written = self.write_segment("seg", &batches, &schema, &ids, &[]);
            if let Ok(path) = &written {
                seen.files.insert(file_name(path).to_string());
                seen.ids.extend(ids);
            }
            for &i in &same {
                results[i] = Some(written.clone().map(Appended::Segment));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(log_error(&self.dir, "an append got no result (a bug)"))))
            .collect()
    }

    /// Reads the ids of segments not seen yet (written by another process, or compacted).
    fn refresh(&self, seen: &mut Seen) -> LogResult<()> {
        for path in listing(&self.dir)?.all {
            let name = file_name(&path).to_string();
            if !seen.files.contains(&name) {
                seen.ids.extend(footer_list(&path, IDS_KEY)?);
                seen.files.insert(name);
            }
        }
        Ok(())
    }

    fn lock(&self) -> LogResult<File> {
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| log_error(&path, e))?;
        file.lock().map_err(|e| log_error(&path, e))?;
        Ok(file)
    }

    /// Writes `batches` to a hidden temp file, syncs it, renames it to `<prefix>-<µs>-<nonce>.parquet`
    /// and syncs the directory: the segment is whole and durable when this returns.
    fn write_segment(
        &self,
        prefix: &str,
        batches: &[RecordBatch],
        schema: &SchemaRef,
        ids: &[String],
        replaces: &[String],
    ) -> LogResult<PathBuf> {
        let nonce = nonce();
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let tmp = self.dir.join(format!(".tmp-{nonce:016x}"));
        let done = self.dir.join(format!("{prefix}-{micros:016}-{nonce:016x}.parquet"));
        let mut footer = Vec::new();
        for (key, list) in [(IDS_KEY, ids), (REPLACES_KEY, replaces)] {
            if !list.is_empty() {
                let text = serde_json::to_string(list).map_err(|e| log_error(&tmp, e))?;
                footer.push(KeyValue::new(key.to_string(), text));
            }
        }
        let props = WriterProperties::builder()
            .set_key_value_metadata((!footer.is_empty()).then_some(footer))
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

    /// Merges every visible segment into one (when there are at least two), atomically; see
    /// the module docs. Returns how many segments were merged and the rows they hold.
    pub fn compact(&self) -> LogResult<Compacted> {
        std::fs::create_dir_all(&self.dir).map_err(|e| log_error(&self.dir, e))?;
        let _lock = self.lock()?;
        let listed = listing(&self.dir)?;
        let mut removed = 0;
        // Leftovers of a compaction that stopped after its rename.
        for path in listed.all.iter().filter(|p| listed.replaced.contains(file_name(p))) {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
            removed += 1;
        }
        let visible = listed.visible;
        if visible.len() < 2 {
            return Ok(Compacted {
                segments: 0,
                rows: 0,
                leftovers_removed: removed,
            });
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
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let replaces: Vec<String> = replaces.into_iter().collect();
        self.write_segment("compact", &batches, &schema, &ids, &replaces)?;
        for path in &visible {
            std::fs::remove_file(path).map_err(|e| log_error(path, e))?;
        }
        sync_dir(&self.dir)?;
        Ok(Compacted {
            segments: visible.len(),
            rows,
            leftovers_removed: removed,
        })
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
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

/// A name part no other process or call will choose at the same time.
pub(crate) fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one((std::process::id(), count, SystemTime::now()))
}

/// Footer ids of every visible segment, by segment name (for tests and tools).
pub fn ids_by_segment(root: &Path, source: &str) -> LogResult<HashMap<String, Vec<String>>> {
    segments(root, source)?
        .iter()
        .map(|p| Ok((file_name(p).to_string(), footer_list(p, IDS_KEY)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

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

    #[test]
    fn appends_are_whole_segments_and_replayed_ids_append_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        assert!(matches!(
            log.append(&batch(&[1, 2]), Some("a")).unwrap(),
            Appended::Segment(_)
        ));
        assert_eq!(log.append(&batch(&[1, 2]), Some("a")).unwrap(), Appended::Replayed);
        assert!(matches!(log.append(&batch(&[3]), None).unwrap(), Appended::Segment(_)));
        assert!(matches!(log.append(&batch(&[3]), None).unwrap(), Appended::Segment(_)));
        // Another appender (another process) finds the id in the footer.
        let other = PushLog::open(dir.path(), "s");
        assert_eq!(other.append(&batch(&[9]), Some("a")).unwrap(), Appended::Replayed);
        assert_eq!(rows(dir.path()), [1, 2, 3, 3]);
        // A temp file left by a crash is never read.
        std::fs::write(log.dir().join(".tmp-00000000deadbeef"), b"PAR1 torn").unwrap();
        assert_eq!(rows(dir.path()), [1, 2, 3, 3]);
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
                            (id.clone(), log.append(&batch(&[value]), Some(&id)).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<(String, Appended)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let mut appended: Vec<&String> = results
            .iter()
            .filter(|(_, a)| matches!(a, Appended::Segment(_)))
            .map(|(id, _)| id)
            .collect();
        appended.sort();
        let before = appended.len();
        appended.dedup();
        assert_eq!(before, appended.len(), "an id was appended twice");
        assert_eq!(appended.len(), 100, "every id once");
        let expected: Vec<i64> = (0..4).flat_map(|p| (0..25).map(move |i| p * 1000 + i)).collect();
        assert_eq!(rows(dir.path()), expected);
        assert!(segments(dir.path(), "s").unwrap().len() <= 100);
    }

    #[test]
    fn compaction_keeps_rows_and_ids_and_switches_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let log = PushLog::open(dir.path(), "s");
        for (i, values) in [[1, 2], [3, 4], [5, 6]].iter().enumerate() {
            log.append(&batch(values), Some(&format!("id{i}"))).unwrap();
        }
        let before = segments(dir.path(), "s").unwrap();
        let compacted = log.compact().unwrap();
        assert_eq!((compacted.segments, compacted.rows), (3, 6));
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6]);
        // The ids live on in the compacted segment, for this appender and a fresh one.
        assert_eq!(log.append(&batch(&[7]), Some("id1")).unwrap(), Appended::Replayed);
        assert_eq!(
            PushLog::open(dir.path(), "s")
                .append(&batch(&[7]), Some("id2"))
                .unwrap(),
            Appended::Replayed
        );
        // A compaction that stopped after its rename, before deleting what it replaced:
        // the old segments are back on disk, yet no row shows twice, and the next run deletes them.
        for (i, values) in [[1, 2], [3, 4], [5, 6]].iter().enumerate() {
            let fresh = tempfile::tempdir().unwrap();
            let seg = PushLog::open(fresh.path(), "s");
            let Appended::Segment(path) = seg.append(&batch(values), Some(&format!("id{i}"))).unwrap() else {
                panic!("appended")
            };
            std::fs::copy(&path, log.dir().join(file_name(&before[i]))).unwrap();
        }
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6]);
        assert_eq!(log.compact().unwrap().leftovers_removed, 3);
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6]);
        // Compacting again, with new segments, keeps replacing transitively.
        log.append(&batch(&[8]), None).unwrap();
        log.compact().unwrap();
        assert_eq!(rows(dir.path()), [1, 2, 3, 4, 5, 6, 8]);
        assert_eq!(segments(dir.path(), "s").unwrap().len(), 1);
    }
}
