//! The journal an appender writes to: found, read to its end, torn tails cut off.

use super::*;

#[derive(Debug)]
pub(crate) struct Journal {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Where its last whole record read so far ends: the next append goes here.
    pub(crate) end: u64,
}

impl Journal {
    pub(crate) fn open(path: PathBuf) -> LogResult<Journal> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| log_error(&path, e))?;
        Ok(Journal { path, file, end: 0 })
    }
}

impl LogState {
    /// The journal to append to, read to its end (held lock): ours, unless a fold took it;
    /// else one another process started; none when there is none. Records other processes
    /// appended since we last looked add their ids, once synced (their writer may have died
    /// before its `fdatasync`); a torn tail (a crashed append) is cut off.
    pub(crate) fn journal(&self, seen: &mut Seen) -> LogResult<Option<Journal>> {
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
    pub(crate) fn new_journal(&self) -> LogResult<Journal> {
        let (micros, nonce) = (micros(), nonce());
        let path = self.dir.join(format!("journal-{micros:016}-{nonce:016x}.log"));
        File::create_new(&path).map_err(|e| log_error(&path, e))?;
        sync_dir(&self.dir)?;
        Journal::open(path)
    }
}
