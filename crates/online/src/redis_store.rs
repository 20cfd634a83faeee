//! The Redis store: the production online store.
//!
//! One [`ConnectionManager`] multiplexes every request over one connection and reconnects
//! after a failure; a request that meets a dead server fails fast with an error naming the
//! server, and the next one reconnects. `redis://[user:password@]host:port/db` URLs carry
//! AUTH and the database number; `rediss://` is the same over TLS (rustls, the system's root
//! certificates; `rediss://…/#insecure` skips verification, for self-signed test servers).
//!
//! Writes run [`NEWER_WINS_LUA`] over chunks of keys: the compare and the set happen inside
//! Redis, atomically, so concurrent writers can never leave an older value over a newer one.
//! Chunks are sent together and pipelined on one connection. Reads are one `MGET`. Keys
//! carry the layout's per-entity hash tag, so on Redis Cluster one entity's views share a slot.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::layout::NEWER_WINS_LUA;
use crate::store::{OnlineStore, WriteSummary};
use crate::{Error, Result};

/// Keys per script call: big enough to amortize the call, small enough to keep Redis responsive.
const KEYS_PER_CALL: usize = 1024;

#[derive(Clone)]
pub struct RedisStore {
    /// The URL without its password.
    shown: String,
    connection: ConnectionManager,
    script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let shown = userinfo
                .split_once(':')
                .map_or(userinfo.to_string(), |(u, _)| format!("{u}:***"));
            format!("{}{shown}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Connects (and authenticates) now, so a wrong URL or password fails here, not later.
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let err = |e: redis::RedisError| Error::Redis {
            url: shown.clone(),
            message: e.to_string(),
        };
        if url.starts_with("rediss://") {
            // rustls needs one process-wide crypto provider; an error means one is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = Client::open(url).map_err(err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(err)?;
        let store = RedisStore {
            shown: shown.clone(),
            connection,
            script: Script::new(NEWER_WINS_LUA),
        };
        Ok(store)
    }

    fn err(&self, e: redis::RedisError) -> Error {
        Error::Redis {
            url: self.shown.clone(),
            message: e.to_string(),
        }
    }

    /// One script call over a chunk of keys; loads the script first when Redis lost it (a
    /// restart or `SCRIPT FLUSH`) and retries: the writes are idempotent.
    async fn write_chunk(&self, chunk: &[(Vec<u8>, Vec<u8>)], px: u64) -> Result<u64> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(chunk.len());
        for (key, _) in chunk {
            cmd.arg(key.as_slice());
        }
        cmd.arg(px);
        for (_, value) in chunk {
            cmd.arg(value.as_slice());
        }
        let mut connection = self.connection.clone();
        match cmd.query_async(&mut connection).await {
            Ok(written) => Ok(written),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(&mut connection).await.map_err(|e| self.err(e))?;
                cmd.query_async(&mut connection).await.map_err(|e| self.err(e))
            }
            Err(e) => Err(self.err(e)),
        }
    }
}

#[async_trait]
impl OnlineStore for RedisStore {
    fn describe(&self) -> String {
        format!("Redis at {}", self.shown)
    }

    async fn write(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, expire_after: Option<Duration>) -> Result<WriteSummary> {
        // PX 0 means no expiry to the script; a sub-millisecond expiry rounds up to 1 ms.
        let px = expire_after.map_or(0, |d| (d.as_millis() as u64).max(1));
        // All calls go out at once on the multiplexed connection, which pipelines them:
        // Redis never waits for the client between chunks.
        let calls = entries.chunks(KEYS_PER_CALL).map(|chunk| self.write_chunk(chunk, px));
        let written: u64 = futures::future::try_join_all(calls).await?.into_iter().sum();
        Ok(WriteSummary {
            written,
            skipped: entries.len() as u64 - written,
        })
    }

    async fn read(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(key.as_slice());
        }
        cmd.query_async(&mut connection).await.map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://:s3cret@host:6379/2"), "redis://:***@host:6379/2");
        assert_eq!(redact("rediss://user:s3cret@host/0"), "rediss://user:***@host/0");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://user@host"), "redis://user@host");
    }
}
