//! The embedded default store: one [redb](https://docs.rs/redb) file under the repository
//! directory, so the online path runs with nothing installed.
//!
//! redb is a pure-Rust, copy-on-write B-tree with serializable write transactions: a batch
//! is written in one transaction that reads each old value and keeps the newer, so
//! concurrent writers can never leave an older value over a newer one. Each record is the
//! expiry instant (ms since the epoch, big-endian; 0 for none) followed by the layout's value.
//! Expired records read as missing and are deleted by later writes of the same key or by
//! `purge_expired`, which materialization runs after writing.
//!
//! One process at a time opens the file (redb locks it). A second gets
//! [`Error::EmbeddedBusy`], and [`crate::open`] then reaches the store through the server
//! holding it, when that is `skewless serve` ([`crate::served`]).
//!
//! A damaged file must give an error naming it, never abort the process: redb may panic on
//! bytes it cannot make sense of, so every call into it runs under [`contain`], which turns
//! a panic into this store's error with the way out (delete the file, materialize again).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::layout::{INSTANCE_KEY, new_instance_id, supersedes};
use crate::store::{OnlineStore, WriteSummary};
use crate::tiles::TileWrite;
use crate::{Error, Result};

const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("values");

#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    path: PathBuf,
    db: Arc<Database>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Splits a record into its expiry and value; `None` when expired or too short.
fn live(record: &[u8], now: u64) -> Option<&[u8]> {
    let (expiry, value) = record.split_at_checked(8)?;
    let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
    (expiry == 0 || expiry > now).then_some(value)
}

/// The identity of the store file at `path`: `embedded:` and its absolute path.
pub fn identity(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("embedded:{}", absolute.display())
}

/// What to do about a damaged store file.
const DAMAGED: &str =
    "the file is damaged; delete it and run `skewless materialize` again (it is a cache of the offline data)";

/// Runs `f`, turning a panic inside redb into an error naming `path`.
fn contain<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Embedded {
            path: path.to_path_buf(),
            message: format!("{DAMAGED} ({message})"),
        })
    })
}

impl EmbeddedStore {
    /// Opens or creates the store file (and its directory).
    pub fn open(path: &Path) -> Result<Self> {
        contain(path, || Self::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<Self> {
        let err = |message: String| Error::Embedded {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::EmbeddedBusy(path.to_path_buf()),
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => err(format!("{DAMAGED} ({what})")),
            other => err(other.to_string()),
        })?;
        // Create the table up front, so reads of a fresh store find it.
        let txn = db.begin_write().map_err(|e| err(e.to_string()))?;
        txn.open_table(VALUES).map_err(|e| err(e.to_string()))?;
        txn.commit().map_err(|e| err(e.to_string()))?;
        Ok(EmbeddedStore {
            path: path.to_path_buf(),
            db: Arc::new(db),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Embedded {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn purge_blocking(&self) -> Result<u64> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed;
        {
            let mut table = txn.open_table(VALUES).map_err(|e| self.err(e))?;
            let before = table.len().map_err(|e| self.err(e))?;
            table
                .retain(|_, record| live(record, now).is_some())
                .map_err(|e| self.err(e))?;
            removed = before - table.len().map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn write_blocking(&self, entries: &[(Vec<u8>, Vec<u8>)], expire_after: Option<Duration>) -> Result<WriteSummary> {
        let now = now_ms();
        let expiry = expire_after.map_or(0, |d| now.saturating_add(d.as_millis() as u64));
        let mut summary = WriteSummary::default();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(VALUES).map_err(|e| self.err(e))?;
            let mut record = Vec::new();
            for (key, value) in entries {
                let replace = match table.get(key.as_slice()).map_err(|e| self.err(e))? {
                    Some(old) => live(old.value(), now).is_none_or(|old| supersedes(value, old)),
                    None => true,
                };
                if replace {
                    record.clear();
                    record.extend_from_slice(&expiry.to_be_bytes());
                    record.extend_from_slice(value);
                    table
                        .insert(key.as_slice(), record.as_slice())
                        .map_err(|e| self.err(e))?;
                    summary.written += 1;
                } else {
                    summary.skipped += 1;
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(summary)
    }

    fn read_blocking(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let now = now_ms();
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(VALUES).map_err(|e| self.err(e))?;
        keys.iter()
            .map(|k| {
                let record = table.get(k.as_slice()).map_err(|e| self.err(e))?;
                Ok(record.and_then(|r| live(r.value(), now).map(<[u8]>::to_vec)))
            })
            .collect()
    }
}

#[async_trait]
impl OnlineStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store {}", self.path.display())
    }

    fn identity(&self) -> String {
        identity(&self.path)
    }

    async fn instance_id(&self) -> Result<String> {
        contain(&self.path, || self.instance_id_blocking())
    }

    async fn write(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, expire_after: Option<Duration>) -> Result<WriteSummary> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || contain(&store.path, || store.write_blocking(&entries, expire_after)))
            .await
            .map_err(|e| self.err(e))?
    }

    async fn read(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        // Point reads in a read transaction take microseconds: no thread hop.
        contain(&self.path, || self.read_blocking(keys))
    }

    async fn write_tiles(&self, writes: Vec<TileWrite>) -> Result<()> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || contain(&store.path, || store.write_tiles_blocking(&writes)))
            .await
            .map_err(|e| self.err(e))?
    }

    async fn read_tiles(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
        // An aggregated view's record is its map of tiles (`encode_map`).
        contain(&self.path, || self.read_blocking(keys))?
            .into_iter()
            .map(|record| match record {
                None => Ok(Vec::new()),
                Some(map) => decode_map(&map)
                    .map(|m| m.into_iter().map(|(f, v)| (f.to_vec(), v)).collect())
                    .ok_or_else(|| self.err(format!("tiles of a key do not parse; {DAMAGED}"))),
            })
            .collect()
    }

    async fn purge_expired(&self) -> Result<u64> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || contain(&store.path, || store.purge_blocking()))
            .await
            .map_err(|e| self.err(e))?
    }
}

/// An aggregated view's tiles in one record: (8-byte field, u32 length, value)… in field order.
fn encode_map(map: &std::collections::BTreeMap<[u8; 8], Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in map {
        out.extend_from_slice(field);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn decode_map(mut bytes: &[u8]) -> Option<std::collections::BTreeMap<[u8; 8], Vec<u8>>> {
    let mut map = std::collections::BTreeMap::new();
    while !bytes.is_empty() {
        let (field, rest) = bytes.split_at_checked(8)?;
        let (len, rest) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (value, rest) = rest.split_at_checked(len)?;
        map.insert(field.try_into().ok()?, value.to_vec());
        bytes = rest;
    }
    Some(map)
}

impl EmbeddedStore {
    /// Each write in one transaction: the map is read, changed and written back.
    fn write_tiles_blocking(&self, writes: &[TileWrite]) -> Result<()> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(VALUES).map_err(|e| self.err(e))?;
            for w in writes {
                let mut map = if w.replace {
                    Default::default()
                } else {
                    let old = table.get(w.key.as_slice()).map_err(|e| self.err(e))?;
                    match old.as_ref().and_then(|r| live(r.value(), now)) {
                        // Damaged tiles are replaced: the next materialization rebuilds them.
                        Some(bytes) => decode_map(bytes).unwrap_or_default(),
                        None => Default::default(),
                    }
                };
                for (field, record) in &w.append {
                    map.entry(*field).or_insert_with(Vec::new).extend_from_slice(record);
                }
                if let Some(keep) = w.keep_from {
                    map = map.split_off(&keep);
                }
                if map.is_empty() {
                    table.remove(w.key.as_slice()).map_err(|e| self.err(e))?;
                    continue;
                }
                let mut record = w.expire_at_ms.unwrap_or(0).to_be_bytes().to_vec();
                record.extend_from_slice(&encode_map(&map));
                table
                    .insert(w.key.as_slice(), record.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn instance_id_blocking(&self) -> Result<String> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let id = {
            let mut table = txn.open_table(VALUES).map_err(|e| self.err(e))?;
            let stored = table
                .get(INSTANCE_KEY)
                .map_err(|e| self.err(e))?
                .and_then(|r| live(r.value(), 0).map(|v| String::from_utf8_lossy(v).into_owned()));
            match stored {
                Some(id) => id,
                None => {
                    let id = new_instance_id();
                    let mut record = 0u64.to_be_bytes().to_vec();
                    record.extend_from_slice(id.as_bytes());
                    table.insert(INSTANCE_KEY, record.as_slice()).map_err(|e| self.err(e))?;
                    id
                }
            }
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }
}
