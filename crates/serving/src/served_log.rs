//! The served log: feature vectors the server answered, sampled by key, kept as Parquet so
//! `skewless consistency` can recompute them offline and explain any difference.
//!
//! Sampling is by a hash of the entity's fields, not by request, so a sampled key is logged
//! every time it is served (the same keys across time, as Chronon's consistency jobs sample).
//! Lookups hand records to a bounded queue and never wait: when the writer falls behind, the
//! records are dropped and counted. A writer thread flushes every 1000 records or every
//! second into `served-<µs>-<nonce>.parquet` (written aside, then renamed), and after each flush
//! deletes the oldest files while the directory holds more than its byte budget.
//!
//! Rows are long: one per served value, `(request, at, entity, feature, value, status,
//! event_timestamp, versions)`, with values and entities as skewless's JSON text, so every
//! feature type fits one schema and a value compares by its text (floats print in their
//! shortest round-trip form, so equal text is equal bits).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;

use crate::core::GetOutput;
use crate::json::ScalarJson;

/// Records per file, at most.
const FLUSH_RECORDS: usize = 1000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const QUEUE: usize = 10_000;

/// The schema of the served log's files.
pub fn schema() -> SchemaRef {
    let instant = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("request", DataType::UInt64, false),
        Field::new("at", instant.clone(), false),
        Field::new("entity", DataType::Utf8, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("event_timestamp", instant, true),
        Field::new("versions", DataType::Utf8, false),
    ]))
}

/// How the server logs what it serves.
#[derive(Debug, Clone)]
pub struct ServedLogOptions {
    pub dir: PathBuf,
    /// The share of keys logged, in [0, 1].
    pub sample: f64,
    /// The directory's budget: the oldest files go beyond it.
    pub max_bytes: u64,
}

/// One served entity: its rows in the log.
#[derive(Debug)]
struct Record {
    request: u64,
    at: i64,
    entity: String,
    /// `(view:feature, value JSON, status, event time)`.
    values: Vec<(String, String, &'static str, Option<i64>)>,
    versions: String,
}

/// The writer's handle: lookups log through it.
#[derive(Debug)]
pub struct ServedLog {
    sender: Option<SyncSender<Record>>,
    writer: Option<std::thread::JoinHandle<()>>,
    threshold: u64,
    next_request: AtomicU64,
    /// Records dropped because the writer fell behind.
    pub dropped: Arc<AtomicU64>,
    /// Files written and write failures, for the metrics.
    pub files: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
}

impl ServedLog {
    /// Starts the writer thread for `options.dir` (created if missing).
    pub fn start(options: ServedLogOptions) -> std::io::Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let files = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let writer = {
            let (files, failures) = (Arc::clone(&files), Arc::clone(&failures));
            std::thread::Builder::new()
                .name("served-log".into())
                .spawn(move || write_loop(&options.dir, options.max_bytes, &receiver, &files, &failures))?
        };
        Ok(ServedLog {
            sender: Some(sender),
            writer: Some(writer),
            threshold: (options.sample.clamp(0.0, 1.0) * u32::MAX as f64) as u64,
            next_request: AtomicU64::new(1),
            dropped: Arc::new(AtomicU64::new(0)),
            files,
            failures,
        })
    }

    /// Logs the sampled entities of one answer; never waits. An entity that is not sampled
    /// costs its JSON text written into one reused buffer and a hash, nothing more.
    pub fn record(&self, found: &GetOutput) {
        let Some(sender) = self.sender.as_ref().filter(|_| self.threshold > 0) else {
            return;
        };
        let mut text = Vec::with_capacity(64);
        let mut shared: Option<(u64, String)> = None;
        for (entity, row) in found.entities.iter().zip(&found.rows) {
            text.clear();
            if serde_json::to_writer(&mut text, &EntityJson(entity)).is_err()
                || fnv1a(&text) & u64::from(u32::MAX) > self.threshold
            {
                continue;
            }
            let (request, versions) = shared.get_or_insert_with(|| {
                (
                    self.next_request.fetch_add(1, Ordering::Relaxed),
                    serde_json::to_string(&*found.served).unwrap_or_default(),
                )
            });
            let values = found
                .features
                .iter()
                .zip(row)
                .map(|(f, v)| {
                    (
                        format!("{}:{}", f.view, f.feature),
                        serde_json::to_string(&ScalarJson(&v.value)).unwrap_or_default(),
                        v.status.name(),
                        v.event_timestamp,
                    )
                })
                .collect();
            let record = Record {
                request: *request,
                at: found.at,
                entity: String::from_utf8_lossy(&text).into_owned(),
                values,
                versions: versions.clone(),
            };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sender.try_send(record) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// An entity's fields as a JSON object, values as skewless writes them.
struct EntityJson<'a>(&'a [(String, skewless_online::Scalar)]);

impl serde::Serialize for EntityJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &ScalarJson(value))?;
        }
        map.end()
    }
}

impl Drop for ServedLog {
    /// Flushes what is queued, so a graceful shutdown loses nothing.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// FNV-1a, 64 bits: a stable hash, the same in every process and version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn write_loop(dir: &Path, max_bytes: u64, receiver: &Receiver<Record>, files: &AtomicU64, failures: &AtomicU64) {
    let mut pending: Vec<Record> = Vec::new();
    // A log that cannot be written says so on stderr once, and once more when it recovers:
    // not silently, and not once per file.
    let mut failing = false;
    loop {
        let closed = match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(record) => {
                pending.push(record);
                if pending.len() < FLUSH_RECORDS {
                    continue;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if !pending.is_empty() {
            match write_file(dir, &pending) {
                Ok(()) => {
                    files.fetch_add(1, Ordering::Relaxed);
                    if std::mem::take(&mut failing) {
                        eprintln!("skewless: the served-values log in {} is written again", dir.display());
                    }
                }
                Err(e) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut failing, true) {
                        eprintln!(
                            "skewless: the served-values log cannot be written in {}: {e} (its records are dropped; \
                             counted in skewless_served_log_failures_total; said again only once it recovers)",
                            dir.display()
                        );
                    }
                }
            }
            pending.clear();
            let _ = enforce_budget(dir, max_bytes);
        }
        if closed {
            return;
        }
    }
}

fn write_file(dir: &Path, records: &[Record]) -> Result<(), String> {
    let rows: usize = records.iter().map(|r| r.values.len()).sum();
    let mut request = Vec::with_capacity(rows);
    let mut at = Vec::with_capacity(rows);
    let mut entity = Vec::with_capacity(rows);
    let mut feature = Vec::with_capacity(rows);
    let mut value = Vec::with_capacity(rows);
    let mut status = Vec::with_capacity(rows);
    let mut event = Vec::with_capacity(rows);
    let mut versions = Vec::with_capacity(rows);
    for r in records {
        for (f, v, s, e) in &r.values {
            request.push(r.request);
            at.push(r.at);
            entity.push(r.entity.as_str());
            feature.push(f.as_str());
            value.push(v.as_str());
            status.push(*s);
            event.push(*e);
            versions.push(r.versions.as_str());
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(request)),
        Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        Arc::new(StringArray::from(entity)),
        Arc::new(StringArray::from(feature)),
        Arc::new(StringArray::from(value)),
        Arc::new(StringArray::from(status)),
        Arc::new(TimestampMicrosecondArray::from(event).with_timezone("UTC")),
        Arc::new(StringArray::from(versions)),
    ];
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())?;
    let micros = crate::json::parse_instant("now").unwrap_or(0);
    let nonce = fnv1a(format!("{micros}{:?}{}", std::thread::current().id(), records.len()).as_bytes());
    let tmp = dir.join(format!(".tmp-{nonce:016x}"));
    let done = dir.join(format!("served-{micros:016}-{nonce:016x}.parquet"));
    let written = (|| -> Result<(), Box<dyn std::error::Error>> {
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&tmp)?, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        std::fs::rename(&tmp, &done)?;
        Ok(())
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", done.display())
    })
}

/// The log's files, oldest first.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("served-") && n.ends_with(".parquet"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Deletes the oldest files while the log is over `max_bytes`.
fn enforce_budget(dir: &Path, max_bytes: u64) -> std::io::Result<()> {
    let files = files(dir)?;
    let sizes: Vec<u64> = files.iter().map(|f| f.metadata().map_or(0, |m| m.len())).collect();
    let mut total: u64 = sizes.iter().sum();
    for (file, size) in files.iter().zip(sizes) {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_file(file)?;
        total -= size;
    }
    Ok(())
}
