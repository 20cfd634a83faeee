//! The `OnlineStore` trait: bytes in, bytes out, newer wins.
//!
//! Stores know nothing of views or types: [`crate::layout`] turns rows into keys and values,
//! and [`crate::lookup`] turns values back into features with statuses. A store only has to
//! do two things well: write a batch so that, per key, the greater value (by
//! [`crate::layout::supersedes`]) survives whatever the interleaving of writers, and read a
//! batch of keys in as few round trips as it can.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::tiles::TileWrite;

/// How a write batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Keys whose value was replaced or created.
    pub written: u64,
    /// Keys that already held an equal or newer value (or the same value: writes are idempotent).
    pub skipped: u64,
}

impl std::ops::AddAssign for WriteSummary {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.skipped += other.skipped;
    }
}

#[async_trait]
pub trait OnlineStore: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages (no password).
    fn describe(&self) -> String;

    /// Which store this is, stable across processes and without credentials:
    /// `redis://host:port/db`, or `embedded:` and the file's absolute path.
    fn identity(&self) -> String;

    /// This store instance's id: a random token the store keeps under
    /// [`crate::layout::INSTANCE_KEY`], created on first use. A store that was emptied (a
    /// Redis restarted without persistence, a deleted file) gets a new one, so facts recorded
    /// against the old one, such as materialization watermarks, are seen not to hold.
    async fn instance_id(&self) -> Result<String>;

    /// Writes each `(key, value)` unless the stored value supersedes it, atomically per key.
    /// Written keys expire `expire_after` after the write (`None`: never).
    async fn write(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, expire_after: Option<Duration>) -> Result<WriteSummary>;

    /// The values of `keys`, in order; `None` for a missing or expired key.
    async fn read(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Aggregated views: applies each entity's [`TileWrite`] atomically (replace, append,
    /// drop old tiles, set the expiry), so concurrent pushes never lose a record.
    async fn write_tiles(&self, writes: Vec<TileWrite>) -> Result<()>;

    /// Aggregated views: each key's tiles as `(field, value)`, in key order; empty when the
    /// key is missing or expired.
    async fn read_tiles(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<(Vec<u8>, Vec<u8>)>>>;

    /// Frees the space of expired keys; returns how many were removed. Redis expires keys
    /// itself (0 here); the embedded store deletes them in one transaction.
    async fn purge_expired(&self) -> Result<u64> {
        Ok(0)
    }
}
