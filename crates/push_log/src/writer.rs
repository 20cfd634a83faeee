//! The group-commit writer: a thread per log writes every queued append with one write and
//! one `fdatasync`, and answers each.

use super::*;

/// One source's log in this process. Appends are queued to its writer thread, which writes
/// them in groups (see "Group commit" above); reads and compactions take the log's lock
/// themselves.
#[derive(Debug)]
pub struct PushLog {
    pub(crate) state: Arc<LogState>,
    /// The writer thread and its queue: started by the first append (a log only read never
    /// starts one), started again if it ever stopped.
    pub(crate) writer: Mutex<Option<Writer>>,
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) queue: Sender<Pending>,
    pub(crate) thread: std::thread::JoinHandle<()>,
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
pub(crate) fn remember(seen: &mut Seen, kept: &str) {
    let (id, digest) = split_id(kept);
    seen.ids.insert(id.to_string(), digest.map(str::to_string));
}

/// What the writer thread and the readers share: the ids seen so far, and the journal.
#[derive(Debug)]
pub(crate) struct LogState {
    pub(crate) dir: PathBuf,
    pub(crate) seen: Mutex<Seen>,
    pub(crate) fold_at: u64,
}

#[derive(Debug)]
pub(crate) struct Pending {
    /// The encoded record (encoded by the pushing task, before it queues).
    pub(crate) record: Vec<u8>,
    pub(crate) id: Option<String>,
    pub(crate) done: oneshot::Sender<LogResult<Appended>>,
}

/// The writer thread: takes every append queued, writes them as one group (one write, one
/// `fdatasync`), answers each, and folds the journal once it is full. Appends that arrive
/// meanwhile queue for the next group, so none waits for more than the group in flight and
/// its own. Ends when the log (the queue's sender) is dropped.
pub(crate) fn write_groups(state: Arc<LogState>, queue: Receiver<Pending>) {
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
pub(crate) struct Seen {
    /// Segment names whose footers were read.
    pub(crate) files: HashSet<String>,
    /// Push ids seen, each with its tag when it was kept one.
    pub(crate) ids: HashMap<String, Option<String>>,
    /// The journal this log appends to, read up to `end`.
    pub(crate) journal: Option<Journal>,
}

impl PushLog {
    pub fn open(root: &Path, source: &str) -> Self {
        Self::open_folding_at(root, source, FOLD_AT_BYTES)
    }

    pub(crate) fn open_folding_at(root: &Path, source: &str, fold_at: u64) -> Self {
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
    pub(crate) fn queue(
        &self,
        batch: &RecordBatch,
        id: Option<&str>,
    ) -> LogResult<oneshot::Receiver<LogResult<Appended>>> {
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
    pub(crate) fn commit(&self, group: &[Pending]) -> (Vec<LogResult<Appended>>, bool) {
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

    /// Reads the ids of segments not seen yet (written by another process, or compacted).
    pub(crate) fn refresh(&self, seen: &mut Seen) -> LogResult<()> {
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
    pub(crate) fn lock(&self) -> LogResult<File> {
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
}
