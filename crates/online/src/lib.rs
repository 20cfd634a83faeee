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
pub mod input;
pub mod layout;
pub mod lookup;
pub mod redis_store;
pub mod served;
pub mod store;
pub mod tiles;
pub mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use embedded::EmbeddedStore;
pub use input::{Given, GivenKind};
pub use layout::{Decoded, KeyValue, Scalar, ViewLayout};
pub use lookup::{Entity, EntityKeys, FeatureValue, Lookup, LookupStats, Selection, Status, lookup};
pub use redis_store::RedisStore;
pub use served::ServedStore;
pub use store::{OnlineStore, WriteSummary};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("online store {url}: {message}")]
    Redis { url: String, message: String },
    #[error("embedded online store {}: {message}", path.display())]
    Embedded { path: PathBuf, message: String },
    /// Another process holds the file, and it is not a server that hands the store over.
    #[error(
        "embedded online store {}: already open in another process; the embedded store is opened by one \
process at a time (a running `skewless serve` lends it to other commands; use Redis to share it otherwise)",
        .0.display()
    )]
    EmbeddedBusy(PathBuf),
    /// A store location that is not one of the accepted forms (never shows a password).
    #[error("online store `{location}`: {why}; accepted: {ACCEPTED_STORES}")]
    Config { location: String, why: String },
    /// An entity lacks a join key of a view it reads (entities count from 1).
    #[error("entity {entity}: no value for `{key}`, a join key of view `{view}`")]
    MissingKey { entity: usize, key: String, view: String },
    /// An entity's join key is of another type than the view's.
    #[error("entity {entity}: `{key}` = {value} is {found}, but view `{view}` needs {expected}")]
    KeyType {
        entity: usize,
        key: String,
        value: String,
        found: skewless_defs::KeyType,
        view: String,
        expected: skewless_defs::KeyType,
    },
    /// Keys, values or a batch that do not fit a view's layout in number or type: a caller's
    /// bug, never a request's (requests are typed by the definitions first).
    #[error("view `{view}`: {what}")]
    Shape { view: String, what: String },
    /// A view version that is not 16 hex digits.
    #[error("view `{view}`: version `{version}` is not 16 hex digits")]
    BadVersion { view: String, version: String },
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the online store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `redis://`, `rediss://`, `redis+unix://` or `redis+cluster://` URL, checked by
    /// [`StoreConfig::parse`].
    Redis(String),
    /// A redb file.
    Embedded(PathBuf),
}

/// The forms `--online` accepts, for messages.
pub const ACCEPTED_STORES: &str = "redis://[user:password@]host[:port][/db], rediss://… (TLS), \
redis+unix:///path/to/redis.sock, redis+cluster://host:port[,host:port…] (Redis Cluster), embedded:PATH, \
or a path ending in .redb";

impl StoreConfig {
    /// Parses a store location strictly. A mistyped URL (`http://…`, `Redis://…`, `redis:/…`,
    /// `host:port`) is an error listing the accepted forms, never a file path: the embedded
    /// store is chosen only by `embedded:PATH`, a path ending in `.redb`, or the default.
    /// Messages never show a password.
    pub fn parse(text: &str) -> Result<Self> {
        let refuse = |why: String| Error::Config {
            location: redis_store::redact(text),
            why,
        };
        let text = text.trim();
        if let Some(path) = text.strip_prefix("embedded:") {
            if path.is_empty() {
                return Err(refuse("`embedded:` needs a path".into()));
            }
            return Ok(StoreConfig::Embedded(PathBuf::from(path)));
        }
        let scheme = text
            .split_once(':')
            .map(|(s, _)| s)
            .filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
        let Some(scheme) = scheme else {
            if text.ends_with(".redb") {
                return Ok(StoreConfig::Embedded(PathBuf::from(text)));
            }
            return Err(refuse(if text.is_empty() {
                "empty".into()
            } else {
                "not a URL, and a path to an embedded store must end in .redb (or be written embedded:PATH)".into()
            }));
        };
        match scheme {
            "redis" | "rediss" | "redis+unix" | "redis+cluster" => {}
            _ if text[scheme.len() + 1..].chars().all(|c| c.is_ascii_digit()) => {
                return Err(refuse(format!(
                    "a bare host:port is ambiguous (did you mean `redis://{}`?)",
                    redis_store::redact(text)
                )));
            }
            other if other.eq_ignore_ascii_case("redis") || other.eq_ignore_ascii_case("rediss") => {
                return Err(refuse(format!(
                    "URL schemes are lower case (did you mean `{}`?)",
                    other.to_ascii_lowercase()
                )));
            }
            other => return Err(refuse(format!("unsupported scheme `{other}:`"))),
        }
        if !text[scheme.len() + 1..].starts_with("//") {
            return Err(refuse(format!("`{scheme}:` must be followed by `//`")));
        }
        let nodes = redis_store::cluster_nodes(text).unwrap_or_else(|| vec![text.to_string()]);
        for node in &nodes {
            let info =
                redis::IntoConnectionInfo::into_connection_info(node.as_str()).map_err(|e| refuse(e.to_string()))?;
            if let redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } = info.addr()
                && host.is_empty()
            {
                return Err(refuse("no host".into()));
            }
            if text.starts_with(redis_store::CLUSTER_SCHEME) && info.redis_settings().db() != 0 {
                return Err(refuse("a cluster has only database 0".into()));
            }
        }
        Ok(StoreConfig::Redis(text.to_string()))
    }

    /// The default: the embedded store under the repository directory.
    pub fn default_for(repo_dir: &Path) -> Self {
        StoreConfig::Embedded(repo_dir.join("online").join("store.redb"))
    }
}

/// Opens (and for Redis, connects to) the configured store. An embedded store held by a
/// running server is reached through that server ([`served`]).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn OnlineStore>> {
    Ok(match config {
        StoreConfig::Redis(url) => Arc::new(RedisStore::connect(url).await?),
        StoreConfig::Embedded(path) => match EmbeddedStore::open(path) {
            Ok(store) => Arc::new(store),
            Err(Error::EmbeddedBusy(path)) => match ServedStore::find(&path).await? {
                Some(served) => Arc::new(served),
                None => return Err(Error::EmbeddedBusy(path)),
            },
            Err(e) => return Err(e),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_parsed_strictly() {
        for ok in [
            "redis://localhost:6379",
            "redis://:pw@h:1/2",
            "rediss://h/0#insecure",
            "redis+unix:///tmp/r.sock",
            "redis+cluster://127.0.0.1:7000",
            "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
        ] {
            assert!(matches!(StoreConfig::parse(ok), Ok(StoreConfig::Redis(_))), "{ok}");
        }
        assert_eq!(
            StoreConfig::parse("embedded:some/dir/store").ok(),
            Some(StoreConfig::Embedded("some/dir/store".into()))
        );
        assert_eq!(
            StoreConfig::parse("./online.redb").ok(),
            Some(StoreConfig::Embedded("./online.redb".into()))
        );
        // The family of typos that once became a directory named after them.
        for bad in [
            "http://localhost:6379",
            "Redis://localhost:6379",
            "REDIS://h",
            "redis:/localhost:6379",
            "redis:localhost",
            "localhost:6379",
            "127.0.0.1:6379",
            "redis//localhost:6379",
            "Redis://:s3cret@host",
            "user:s3cret@host:6379",
            ":s3cret@host:6379",
            "redis:/:s3cret@host",
            "redis://",
            "redis://h:notaport",
            "redis://h/notadb",
            "embedded:",
            "redis+cluster://",
            "redis+cluster://h1:7000,,h3:7000",
            "redis+cluster://h1:7000,h2:x",
            "redis+cluster://:s3cret@h1:7000/2",
            "",
            "some/dir",
        ] {
            let e = StoreConfig::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("accepted: redis://"), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
        let hint = StoreConfig::parse("localhost:6379").unwrap_err().to_string();
        assert!(hint.contains("did you mean `redis://localhost:6379`"), "{hint}");
    }
}
