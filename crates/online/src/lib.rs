//! The online path: where services look features up by entity key.
//!
//! ```text
//! rows (Arrow) ─layout::encode_batch─▶ (key, value) bytes ─OnlineStore::write (newer wins)─▶ store
//! entity keys ─layout::key─▶ keys ─OnlineStore::read─▶ values ─layout::decode + status_at(now)─▶ features
//! ```
//!
//! - [`layout`]: the one module that knows the key and value bytes (with a worked example).
//! - [`store`]: the [`OnlineStore`] trait; [`RedisStore`] (production) and
//!   [`EmbeddedStore`] (the zero-setup default) implement it and pass one conformance suite.
//! - [`lookup`]: statuses (`PRESENT`, `NOT_FOUND`, `OUTSIDE_MAX_AGE`) at an injected clock.
//! - [`values`]: scalars to and from Arrow arrays and text.
//!
//! This crate never reads sources: what to write is computed offline (the facade's
//! materialization) with the same engine expressions and as-of rules as training sets.

pub mod embedded;
pub mod layout;
pub mod lookup;
pub mod redis_store;
pub mod store;
pub mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use embedded::EmbeddedStore;
pub use layout::{Decoded, KeyValue, Scalar, ViewLayout};
pub use lookup::{Entity, FeatureValue, Lookup, LookupStats, Selection, Status, lookup};
pub use redis_store::RedisStore;
pub use store::{OnlineStore, WriteSummary};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("online store {url}: {message}")]
    Redis { url: String, message: String },
    #[error("embedded online store {}: {message}", path.display())]
    Embedded { path: PathBuf, message: String },
    #[error("{0}")]
    Layout(String),
    /// A request that does not fit the definitions (wrong key type, missing key, ...).
    #[error("{0}")]
    Request(String),
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the online store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `redis://` or `rediss://` URL.
    Redis(String),
    /// A redb file.
    Embedded(PathBuf),
}

impl StoreConfig {
    /// `redis://…` / `rediss://…` is Redis; `embedded:PATH` or a bare path is the embedded store.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("redis://") || text.starts_with("rediss://") || text.starts_with("redis+unix://") {
            StoreConfig::Redis(text.to_string())
        } else {
            StoreConfig::Embedded(PathBuf::from(text.strip_prefix("embedded:").unwrap_or(text)))
        }
    }

    /// The default: the embedded store under the repository directory.
    pub fn default_for(repo_dir: &Path) -> Self {
        StoreConfig::Embedded(repo_dir.join("online").join("store.redb"))
    }
}

/// Opens (and for Redis, connects to) the configured store.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn OnlineStore>> {
    Ok(match config {
        StoreConfig::Redis(url) => Arc::new(RedisStore::connect(url).await?),
        StoreConfig::Embedded(path) => Arc::new(EmbeddedStore::open(path)?),
    })
}
