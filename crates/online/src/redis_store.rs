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
//! Chunks are sent together and pipelined on one connection. Reads are one `MGET`.
//!
//! **New keys skip the script.** Any value is newer than none, so a key that does not exist
//! may take a plain `SET … NX` (atomic: if another writer got there first, the `SET` does
//! nothing and the key goes through the script after all). A first materialization into an
//! empty store then writes at the speed of plain pipelined `SET`s, where the script costs
//! Redis about a quarter more per key. Keys that exist would pay for both, so the store
//! keeps a moving share of the written keys that existed, and while it is over half (a
//! re-run, pushes to known entities) chunks go straight to the script.
//!
//! **Redis Cluster.** `redis+cluster://host:port[,host:port…]` connects with the cluster
//! client (any reachable node finds the rest; MOVED and ASK redirections and node failures
//! are handled by it). Keys carry the layout's per-entity hash tag, so one entity's views
//! share a slot: a lookup's `MGET` is split by the client into one `MGET` per slot, sent
//! concurrently, and a write's script calls are grouped by slot, since a script may only
//! touch keys of one slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Client, FromRedisValue, RedisResult, Script};

use crate::layout::{INSTANCE_KEY, NEWER_WINS_LUA, new_instance_id};
use crate::store::{OnlineStore, WriteSummary};
use crate::tiles::TileWrite;
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

/// One entity's tile write ([`crate::tiles::TileWrite`]), atomically: `KEYS[1]` is the
/// entity's hash; `ARGV[1]` `1` deletes it first; `ARGV[2]` is the first field to keep (empty:
/// keep all); `ARGV[3]` the absolute expiry in ms (`0`: none); then (field, record) pairs,
/// each record appended to its field's value. Fields are compared byte by byte (Lua's `<` on
/// strings follows the server's locale).
const TILES_LUA: &str = r#"
local key = KEYS[1]
if ARGV[1] == '1' then redis.call('DEL', key) end
for i = 4, #ARGV, 2 do
  local old = redis.call('HGET', key, ARGV[i])
  if old then
    redis.call('HSET', key, ARGV[i], old .. ARGV[i + 1])
  else
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
local keep = ARGV[2]
if keep ~= '' then
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local older = false
    for j = 1, 8 do
      local a, b = string.byte(f, j), string.byte(keep, j)
      if a ~= b then older = (a or -1) < b; break end
    end
    if older then redis.call('HDEL', key, f) end
  end
end
if redis.call('EXISTS', key) == 1 then
  if ARGV[3] ~= '0' then redis.call('PEXPIREAT', key, ARGV[3]) else redis.call('PERSIST', key) end
end
return 1
"#;

/// The scheme of Redis Cluster URLs: `redis+cluster://[user:password@]host:port[,host:port…]`.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A cluster URL's seed nodes as plain `redis://` URLs, each with the URL's credentials.
pub fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|host| format!("redis://{userinfo}{}", host.trim()))
        .collect();
    Some(nodes)
}

/// A Redis URL's identity: scheme, host, port and db, never credentials. A cluster's is its
/// seed nodes in order, so the same cluster named with its nodes in another order or another
/// subset is a different identity: facts kept against it (watermarks) are then recomputed,
/// which is safe.
pub fn identity(url: &str) -> String {
    if let Some(nodes) = cluster_nodes(url) {
        let mut hosts: Vec<String> = nodes
            .iter()
            .map(|node| {
                identity(node)
                    .trim_start_matches("redis://")
                    .trim_end_matches("/0")
                    .to_string()
            })
            .collect();
        hosts.sort();
        return format!("{CLUSTER_SCHEME}{}", hosts.join(","));
    }
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
    connection: Connection,
    script: Script,
    tiles_script: Script,
    /// Of the keys written lately, how many existed, in thousandths (a moving average):
    /// below [`NX_FIRST_BELOW`], chunks try `SET … NX` first.
    existed: Arc<AtomicU32>,
}

/// See [`RedisStore::existed`].
const NX_FIRST_BELOW: u32 = 500;

/// One server (reconnecting) or a cluster (routing by slot); both multiplex every request.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Whether a command failed because the connection was gone (a Redis restart): the
/// connection manager reconnects, and an idempotent command may be sent once more.
fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal()
}

impl Connection {
    /// An idempotent command (a read, `SET … NX`, the newer-wins script, a tagged tile
    /// append): sent once more when
    /// the connection was lost, so the first request after a Redis restart does not fail.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self.query_once(cmd).await {
            Err(e) if connection_lost(&e) => self.query_once(cmd).await,
            answered => answered,
        }
    }

    /// A command sent once: for those that must not run late (a materialization's tile
    /// replacement).
    async fn query_once<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Connection::Single(c) => cmd.query_async(&mut c.clone()).await,
            Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// `HGETALL` of each key, as flat field/value lists in key order. One server gets them as
    /// one pipeline: one request through the connection, not one per key (a 100-entity lookup
    /// of an aggregated view spent most of its time waking the connection's task per key).
    /// A cluster gets one command per key, routed by slot and multiplexed.
    async fn query_pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        let once = || async {
            match self {
                Connection::Single(c) => pipe.query_async(&mut c.clone()).await,
                Connection::Cluster(c) => pipe.query_async(&mut c.clone()).await,
            }
        };
        // Pipelines here are reads and `SET … NX`: idempotent.
        match once().await {
            Err(e) if connection_lost(&e) => once().await,
            answered => answered,
        }
    }

    async fn hgetall_each(&self, keys: &[Vec<u8>]) -> RedisResult<Vec<Vec<Vec<u8>>>> {
        match self {
            Connection::Single(c) => {
                let mut pipe = redis::pipe();
                for key in keys {
                    pipe.cmd("HGETALL").arg(key.as_slice());
                }
                match pipe.query_async(&mut c.clone()).await {
                    Err(e) if connection_lost(&e) => pipe.query_async(&mut c.clone()).await,
                    answered => answered,
                }
            }
            Connection::Cluster(_) => {
                let calls = keys.iter().map(|key| {
                    let mut cmd = redis::cmd("HGETALL");
                    cmd.arg(key.as_slice());
                    async move { self.query::<Vec<Vec<u8>>>(&cmd).await }
                });
                futures::future::try_join_all(calls).await
            }
        }
    }
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
        let connection = if let Some(nodes) = cluster_nodes(url) {
            let client = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(10))
                .retries(2)
                .build()
                .map_err(err)?;
            Connection::Cluster(client.get_async_connection().await.map_err(err)?)
        } else {
            let client = Client::open(url).map_err(err)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            Connection::Single(ConnectionManager::new_with_config(client, config).await.map_err(err)?)
        };
        // A PING now turns a missing or wrong password into a clear error here, not a
        // "Protocol error: unauthenticated multibulk length" on the first large write.
        connection.query::<()>(&redis::cmd("PING")).await.map_err(err)?;
        let store = RedisStore {
            shown: shown.clone(),
            identity: identity(url),
            connection,
            script: Script::new(NEWER_WINS_LUA),
            tiles_script: Script::new(TILES_LUA),
            existed: Arc::new(AtomicU32::new(0)),
        };
        Ok(store)
    }

    fn err(&self, e: redis::RedisError) -> Error {
        Error::Redis {
            url: self.shown.clone(),
            message: e.to_string(),
        }
    }

    /// One script call over a chunk of keys (of one slot, on a cluster). When the server
    /// lacks the script (a restart, `SCRIPT FLUSH`, a node that never ran it) the call is
    /// sent again as `EVAL` with the source, which also caches it there: the writes are
    /// idempotent.
    async fn write_chunk(&self, chunk: &[&(Vec<u8>, Vec<u8>)], px: u64) -> Result<u64> {
        if self.existed.load(Ordering::Relaxed) >= NX_FIRST_BELOW {
            let (written, existed) = self.newer_wins(chunk, px).await?;
            self.observe(existed, chunk.len());
            return Ok(written);
        }
        // Keys that do not exist take a plain `SET … NX`; the rest go through the script.
        let mut pipe = redis::pipe();
        for (key, value) in chunk {
            let set = pipe.cmd("SET").arg(key.as_slice()).arg(value.as_slice());
            if px > 0 {
                set.arg("PX").arg(px);
            }
            set.arg("NX");
        }
        let replies: Vec<redis::Value> = self.connection.query_pipe(&pipe).await.map_err(|e| self.err(e))?;
        if replies.len() != chunk.len() {
            return Err(self.err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline of SET … NX got a reply per command",
                format!("{} replies to {} commands", replies.len(), chunk.len()),
            ))));
        }
        let existing: Vec<&(Vec<u8>, Vec<u8>)> = chunk
            .iter()
            .zip(&replies)
            .filter(|(_, reply)| matches!(reply, redis::Value::Nil))
            .map(|(entry, _)| *entry)
            .collect();
        self.observe(existing.len(), chunk.len());
        let set = (chunk.len() - existing.len()) as u64;
        if existing.is_empty() {
            return Ok(set);
        }
        Ok(set + self.newer_wins(&existing, px).await?.0)
    }

    /// Folds a chunk's share of keys that existed into [`Self::existed`].
    fn observe(&self, existed: usize, of: usize) {
        if let Some(share) = (existed * 1000).checked_div(of) {
            let old = self.existed.load(Ordering::Relaxed);
            self.existed.store((old * 3 + share as u32) / 4, Ordering::Relaxed);
        }
    }

    /// The newer-wins script over a chunk: how many keys it wrote, and how many existed.
    async fn newer_wins(&self, chunk: &[&(Vec<u8>, Vec<u8>)], px: u64) -> Result<(u64, usize)> {
        let call = |name: &str, script: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(script).arg(chunk.len());
            for (key, _) in chunk {
                cmd.arg(key.as_slice());
            }
            cmd.arg(px);
            for (_, value) in chunk {
                cmd.arg(value.as_slice());
            }
            cmd
        };
        match self.connection.query(&call("EVALSHA", self.script.get_hash())).await {
            Ok(counts) => Ok(counts),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => self
                .connection
                .query(&call("EVAL", NEWER_WINS_LUA))
                .await
                .map_err(|e| self.err(e)),
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
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(INSTANCE_LUA).arg(1).arg(INSTANCE_KEY).arg(new_instance_id());
        self.connection.query(&cmd).await.map_err(|e| self.err(e))
    }

    async fn write(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, expire_after: Option<Duration>) -> Result<WriteSummary> {
        // PX 0 means no expiry to the script; a sub-millisecond expiry rounds up to 1 ms.
        let px = expire_after.map_or(0, |d| (d.as_millis() as u64).max(1));
        // A script may touch one slot's keys only: on a cluster, group the entries by slot.
        let groups: Vec<Vec<&(Vec<u8>, Vec<u8>)>> = match &self.connection {
            Connection::Single(_) => vec![entries.iter().collect()],
            Connection::Cluster(_) => {
                let mut by_slot: std::collections::HashMap<Slot, Vec<_>> = std::collections::HashMap::new();
                for entry in &entries {
                    by_slot.entry(Slot::for_key(&entry.0)).or_default().push(entry);
                }
                by_slot.into_values().collect()
            }
        };
        // All calls go out at once on the multiplexed connection, which pipelines them:
        // Redis never waits for the client between chunks.
        let calls = groups
            .iter()
            .flat_map(|group| group.chunks(KEYS_PER_CALL))
            .map(|chunk| self.write_chunk(chunk, px));
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
        // On a cluster, the client splits this into one MGET per slot and keeps the order.
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(key.as_slice());
        }
        self.connection.query(&cmd).await.map_err(|e| self.err(e))
    }

    async fn write_tiles(&self, writes: Vec<TileWrite>) -> Result<()> {
        // One script call per entity, all sent at once (pipelined on the connection).
        let calls = writes.iter().map(|w| async move {
            let call = |name: &str, script: &str| {
                let mut cmd = redis::cmd(name);
                cmd.arg(script).arg(1).arg(w.key.as_slice());
                cmd.arg(if w.replace { "1" } else { "0" });
                match &w.keep_from {
                    Some(f) => cmd.arg(f.as_slice()),
                    None => cmd.arg(""),
                };
                cmd.arg(w.expire_at_ms.unwrap_or(0));
                for (field, record) in &w.append {
                    cmd.arg(field.as_slice()).arg(record.as_slice());
                }
                cmd
            };
            // A push's appends are sent once more when the connection was lost: its records
            // are tagged, so one that had landed counts once. A materialization's replacement
            // is sent once: resent late, it would drop what a push appended in between.
            let send = |cmd: redis::Cmd| async move {
                if w.replace {
                    self.connection.query_once::<i64>(&cmd).await
                } else {
                    self.connection.query::<i64>(&cmd).await
                }
            };
            match send(call("EVALSHA", self.tiles_script.get_hash())).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    send(call("EVAL", TILES_LUA)).await.map(|_| ()).map_err(|e| self.err(e))
                }
                Err(e) => Err(self.err(e)),
            }
        });
        futures::future::try_join_all(calls).await?;
        Ok(())
    }

    async fn read_tiles(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let maps = self.connection.hgetall_each(keys).await.map_err(|e| self.err(e))?;
        Ok(maps
            .into_iter()
            .map(|flat| {
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut items = flat.into_iter();
                while let (Some(field), Some(value)) = (items.next(), items.next()) {
                    pairs.push((field, value));
                }
                pairs
            })
            .collect())
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
        assert_eq!(
            identity("redis+cluster://:s3cret@h2:7001,h1:7000/"),
            "redis+cluster://h1:7000,h2:7001"
        );
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
