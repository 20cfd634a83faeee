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

use crate::layout::{INSTANCE_KEY, NEWER_WINS_LUA, new_instance_id};
use crate::store::{OnlineStore, WriteSummary};
use crate::{Error, Result};

/// Keys per script call: big enough to amortize the call, small enough to keep Redis responsive.
const KEYS_PER_CALL: usize = 1024;

/// Reads the instance id, setting it first when the key is missing.
const INSTANCE_LUA: &str = r#"
local id = redis.call('GET', KEYS[1])
if id then return id end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"#;

/// A Redis URL's identity: scheme, host, port and db, never credentials.
pub fn identity(url: &str) -> String {
    match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(info) => {
            let scheme = url.split_once("://").map_or("redis", |(s, _)| s);
            format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db())
        }
        Err(_) => redact(url),
    }
}

#[derive(Clone)]
pub struct RedisStore {
    /// The URL without its password.
    shown: String,
    identity: String,
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

/// `url` with any password replaced by `***`: the userinfo's password, everything before the
/// `@` of a text that is not a well-formed URL (`user:secret@host`), and `pass=` query values.
pub fn redact(url: &str) -> String {
    let mut shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let hidden = userinfo
                .split_once(':')
                .map_or_else(|| userinfo.to_string(), |(user, _)| format!("{user}:***"));
            format!("{}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        // Not a well-formed URL: whatever comes before the `@` may be a password.
        (None, Some(at)) => format!("***{}", &url[at..]),
        _ => url.to_string(),
    };
    if let Some(q) = shown.find('?') {
        let (head, query) = shown.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key @ ("pass" | "password"), _)) => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        shown = format!("{head}{}", query.join("&"));
    }
    shown
}

impl RedisStore {
    /// Connects (and authenticates) now, so a wrong URL or password fails here, not later.
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let err = |e: redis::RedisError| Error::Redis {
            url: shown.clone(),
            message: auth_hint(&e).unwrap_or_else(|| e.to_string()),
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
        // A PING now turns a missing or wrong password into a clear error here, not a
        // "Protocol error: unauthenticated multibulk length" on the first large write.
        let mut ping = connection.clone();
        redis::cmd("PING").query_async::<()>(&mut ping).await.map_err(err)?;
        let store = RedisStore {
            shown: shown.clone(),
            identity: identity(url),
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

/// A plain-words reading of an authentication failure.
fn auth_hint(e: &redis::RedisError) -> Option<String> {
    let text = e.to_string();
    if text.contains("NOAUTH") || text.contains("unauthenticated") || text.contains("Authentication required") {
        Some("the server requires a password: give it in the URL, redis://[user]:PASSWORD@host:port".into())
    } else if text.contains("WRONGPASS")
        || text.contains("AuthenticationFailed")
        || text.contains("invalid password")
        || text.contains("invalid username-password")
    {
        Some("authentication failed: wrong user name or password".into())
    } else {
        None
    }
}

#[async_trait]
impl OnlineStore for RedisStore {
    fn describe(&self) -> String {
        format!("Redis at {}", self.shown)
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn instance_id(&self) -> Result<String> {
        let mut connection = self.connection.clone();
        redis::Script::new(INSTANCE_LUA)
            .key(INSTANCE_KEY)
            .arg(new_instance_id())
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.err(e))
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
    use super::{identity, redact};

    #[test]
    fn identity_has_no_credentials() {
        let a = identity("redis://user:s3cret@h:7000/3");
        assert_eq!(a, "redis://h:7000/3");
        assert_eq!(a, identity("redis://h:7000/3"));
        assert_ne!(a, identity("redis://h:7000/4"));
        assert_eq!(identity("rediss://:pw@h/0#insecure"), "rediss://h:6379/0");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://:s3cret@host:6379/2"), "redis://:***@host:6379/2");
        assert_eq!(redact("rediss://user:s3cret@host/0"), "rediss://user:***@host/0");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://user@host"), "redis://user@host");
        assert_eq!(redact("Redis://:s3cret@host"), "Redis://:***@host");
        assert_eq!(redact("redis:/:s3cret@host"), "***@host");
        assert_eq!(redact("user:s3cret@host:6379"), "***@host:6379");
        assert_eq!(redact(":s3cret@host:6379"), "***@host:6379");
        assert_eq!(
            redact("redis+unix:///tmp/r.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
    }
}
