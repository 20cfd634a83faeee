//! The embedded store while a server holds it: reached through the server.
//!
//! redb lets one process open a file, and `skewless serve` keeps the embedded store open for
//! as long as it serves. So that a user can still refresh features (`skewless materialize`,
//! `get`) without stopping the server, the server *hands the store over*: it publishes a
//! handoff file beside the store (`store.redb.server`, readable by its owner only) naming its
//! address and a random token, and answers store calls on `/internal/store/*` with that token.
//! [`crate::open`] tries the file first; when another process holds it and a handoff file
//! names a server that answers, it returns a [`ServedStore`], an [`OnlineStore`] whose calls
//! the server runs on its own handle. Newer-wins, atomicity per batch and the instance id are
//! the embedded store's own, so materializing through the server is the same as directly
//! (watermarks included: the identity is the file's).
//!
//! The wire format is binary and length-prefixed (big-endian), one request per call:
//!
//! | call | request body | answer body |
//! |---|---|---|
//! | `write` | u64 expiry in ms (`u64::MAX`: none), then (u32 length, key, u32 length, value)… | u64 written, u64 skipped |
//! | `read` | (u32 length, key)… | per key: u8 0 (missing) or 1, then u32 length and the value |
//! | `instance` | empty | the id, UTF-8 |
//! | `purge` | empty | u64 removed |
//! | `tiles_write` | per write: u8 replace, u8 0 \| 1 + 8-byte first tile kept, u64 expiry (ms since the epoch; `u64::MAX`: none), key, u32 n, n × (field, record) | empty |
//! | `tiles_read` | (u32 length, key)… | per key: u32 n, n × (field, value) |

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::{OnlineStore, WriteSummary};
use crate::tiles::TileWrite;
use crate::{Error, Result};

/// The routes' common prefix; a call's route is this and its name.
pub const ROUTE_PREFIX: &str = "/internal/store/";

/// The largest write body the client sends; bigger batches go in several calls.
pub const MAX_WRITE_BODY: usize = 8 << 20;

/// What the handoff file says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    /// `host:port` to connect to.
    pub addr: String,
    /// The bearer token of `/internal/store/*`.
    pub token: String,
    /// The server's process id, for messages.
    pub pid: u32,
}

/// Where the handoff file of the store at `store` lives.
pub fn handoff_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".server");
    PathBuf::from(name)
}

/// The published handoff file; removed when dropped (at server shutdown).
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Publishes `handoff` for the store at `store`, readable by the owner only.
pub fn publish(store: &Path, handoff: &Handoff) -> Result<Published> {
    let path = handoff_path(store);
    let err = |e: std::io::Error| Error::Embedded {
        path: path.clone(),
        message: format!("cannot write the server handoff file: {e}"),
    };
    let text = serde_json::to_vec(handoff).map_err(|e| Error::Internal(e.to_string()))?;
    let temp = path.with_extension("server.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&temp).map_err(err)?, &text).map_err(err)?;
    std::fs::rename(&temp, &path).map_err(err)?;
    Ok(Published { path })
}

// ---- the wire format ----

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Why a lent-store call's body (or its answer) is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The body ends inside the part named.
    EndsInside(&'static str),
    /// A tile field that is not 8 bytes long.
    TileField { bytes: usize },
    /// An answer with more entries than the keys asked.
    MoreThanAsked { what: &'static str, keys: usize },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::EndsInside(what) => write!(f, "the body ends inside {what}"),
            WireError::TileField { bytes } => write!(f, "a tile field of {bytes} bytes, not 8"),
            WireError::MoreThanAsked { what, keys } => write!(f, "more {what} than the {keys} keys asked"),
        }
    }
}

impl std::error::Error for WireError {}

/// A reader over a body that fails, naming what is short, instead of panicking.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(WireError::EndsInside(what))?;
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self, what: &'static str) -> Result<usize, WireError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(bytes))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, WireError> {
        let n = self.u32(what)?;
        Ok(self.take(n, what)?.to_vec())
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn encode_write(entries: &[(Vec<u8>, Vec<u8>)], expire_after: Option<Duration>) -> Vec<u8> {
    let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(8 + size);
    let expiry = expire_after.map_or(u64::MAX, |d| d.as_millis() as u64);
    out.extend_from_slice(&expiry.to_be_bytes());
    for (key, value) in entries {
        put(&mut out, key);
        put(&mut out, value);
    }
    out
}

/// A write body: the entries and their expiry. Errors say what is malformed.
pub type WriteRequest = (Vec<(Vec<u8>, Vec<u8>)>, Option<Duration>);

pub fn decode_write(body: &[u8]) -> Result<WriteRequest, WireError> {
    let mut cursor = Cursor(body);
    let expiry = cursor.u64("the expiry")?;
    let mut entries = Vec::new();
    while !cursor.done() {
        let key = cursor.bytes("a key")?;
        let value = cursor.bytes("a value")?;
        entries.push((key, value));
    }
    Ok((entries, (expiry != u64::MAX).then(|| Duration::from_millis(expiry))))
}

/// `tiles_write`: per write, u8 replace, u8 0 | 1 + 8-byte keep_from, u64 expiry in ms
/// (`u64::MAX`: none), the key, u32 count, then (field, record)… (fields and records
/// length-prefixed like keys).
pub fn encode_tile_writes(writes: &[TileWrite]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in writes {
        out.push(u8::from(w.replace));
        match &w.keep_from {
            Some(f) => {
                out.push(1);
                out.extend_from_slice(f);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&w.expire_at_ms.unwrap_or(u64::MAX).to_be_bytes());
        put(&mut out, &w.key);
        out.extend_from_slice(&(w.append.len() as u32).to_be_bytes());
        for (field, record) in &w.append {
            put(&mut out, field);
            put(&mut out, record);
        }
    }
    out
}

pub fn decode_tile_writes(body: &[u8]) -> Result<Vec<TileWrite>, WireError> {
    let mut cursor = Cursor(body);
    let mut writes = Vec::new();
    let field = |bytes: &[u8]| -> Result<[u8; 8], WireError> {
        bytes
            .try_into()
            .map_err(|_| WireError::TileField { bytes: bytes.len() })
    };
    while !cursor.done() {
        let replace = cursor.take(1, "the replace flag")? != [0];
        let keep_from = match cursor.take(1, "the keep_from tag")? {
            [0] => None,
            _ => Some(field(cursor.take(8, "keep_from")?)?),
        };
        let expiry = cursor.u64("the expiry")?;
        let key = cursor.bytes("a key")?;
        let n = cursor.u32("the record count")?;
        let mut append = Vec::new();
        for _ in 0..n {
            let f = field(&cursor.bytes("a field")?)?;
            append.push((f, cursor.bytes("a record")?));
        }
        writes.push(TileWrite {
            key,
            replace,
            append,
            keep_from,
            expire_at_ms: (expiry != u64::MAX).then_some(expiry),
        });
    }
    Ok(writes)
}

/// `tiles_read` answers: per key, u32 count, then (field, value)… length-prefixed.
pub fn encode_tile_maps(maps: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<u8> {
    let mut out = Vec::new();
    for map in maps {
        out.extend_from_slice(&(map.len() as u32).to_be_bytes());
        for (field, value) in map {
            put(&mut out, field);
            put(&mut out, value);
        }
    }
    out
}

/// Per key, its tiles `(field, value)`.
type TileMaps = Vec<Vec<(Vec<u8>, Vec<u8>)>>;

fn decode_tile_maps(body: &[u8], keys: usize) -> Result<TileMaps, WireError> {
    let mut cursor = Cursor(body);
    let mut maps = Vec::with_capacity(keys);
    for _ in 0..keys {
        let n = cursor.u32("a tile count")?;
        let mut map = Vec::new();
        for _ in 0..n {
            map.push((cursor.bytes("a field")?, cursor.bytes("a value")?));
        }
        maps.push(map);
    }
    if !cursor.done() {
        return Err(WireError::MoreThanAsked {
            what: "tile maps",
            keys,
        });
    }
    Ok(maps)
}

pub fn encode_summary(summary: WriteSummary) -> Vec<u8> {
    [summary.written.to_be_bytes(), summary.skipped.to_be_bytes()].concat()
}

fn decode_summary(body: &[u8]) -> Result<WriteSummary, WireError> {
    let mut cursor = Cursor(body);
    Ok(WriteSummary {
        written: cursor.u64("the written count")?,
        skipped: cursor.u64("the skipped count")?,
    })
}

pub fn encode_keys(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.iter().map(|k| 4 + k.len()).sum());
    for key in keys {
        put(&mut out, key);
    }
    out
}

pub fn decode_keys(body: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let mut cursor = Cursor(body);
    let mut keys = Vec::new();
    while !cursor.done() {
        keys.push(cursor.bytes("a key")?);
    }
    Ok(keys)
}

pub fn encode_values(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Some(v) => {
                out.push(1);
                put(&mut out, v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode_values(body: &[u8], n: usize) -> Result<Vec<Option<Vec<u8>>>, WireError> {
    let mut cursor = Cursor(body);
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(match cursor.take(1, "a value's tag")? {
            [0] => None,
            _ => Some(cursor.bytes("a value")?),
        });
    }
    if !cursor.done() {
        return Err(WireError::MoreThanAsked {
            what: "values",
            keys: n,
        });
    }
    Ok(values)
}

// ---- the client ----

/// The embedded store at `path`, reached through the server that holds it.
#[derive(Debug, Clone)]
pub struct ServedStore {
    path: PathBuf,
    handoff: Handoff,
}

impl ServedStore {
    /// The store at `path` through the server its handoff file names, if there is such a
    /// file and the server answers; `Ok(None)` when there is no handoff file.
    pub async fn find(path: &Path) -> Result<Option<Self>> {
        let file = handoff_path(path);
        let text = match std::fs::read(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Embedded {
                    path: file,
                    message: format!("cannot read the server handoff file: {e}"),
                });
            }
        };
        let handoff: Handoff = serde_json::from_slice(&text).map_err(|e| Error::Embedded {
            path: file.clone(),
            message: format!("the server handoff file is not valid ({e}); delete it if no server runs"),
        })?;
        let store = ServedStore {
            path: path.to_path_buf(),
            handoff,
        };
        // The server must answer now, so a stale file is an error here, not on the first write.
        store.instance_id().await?;
        Ok(Some(store))
    }

    fn err(&self, message: impl std::fmt::Display) -> Error {
        Error::Embedded {
            path: self.path.clone(),
            message: format!(
                "through the server at {} (pid {}): {message}",
                self.handoff.addr, self.handoff.pid
            ),
        }
    }

    /// One call: POST `body` to the call's route; the answer's body.
    async fn call(&self, name: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(&self.handoff.addr)
            .await
            .map_err(|e| self.err(format!("cannot connect: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| self.err(e))?;
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("{ROUTE_PREFIX}{name}"))
            .header(hyper::header::HOST, &self.handoff.addr)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.handoff.token))
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .map_err(|e| Error::Internal(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| self.err(e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.err(e))?
            .to_bytes();
        if !status.is_success() {
            return Err(self.err(format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
        Ok(body.to_vec())
    }
}

#[async_trait]
impl OnlineStore for ServedStore {
    fn describe(&self) -> String {
        format!(
            "embedded store {} (through the server at {}, which holds it)",
            self.path.display(),
            self.handoff.addr
        )
    }

    fn identity(&self) -> String {
        crate::embedded::identity(&self.path)
    }

    async fn instance_id(&self) -> Result<String> {
        let body = self.call("instance", Vec::new()).await?;
        String::from_utf8(body).map_err(|e| self.err(e))
    }

    async fn write(&self, entries: Vec<(Vec<u8>, Vec<u8>)>, expire_after: Option<Duration>) -> Result<WriteSummary> {
        let mut summary = WriteSummary::default();
        let mut start = 0;
        while start < entries.len() {
            // As many entries as fit the body limit (at least one).
            let mut end = start;
            let mut size = 8;
            while end < entries.len()
                && (end == start || size + 8 + entries[end].0.len() + entries[end].1.len() <= MAX_WRITE_BODY)
            {
                size += 8 + entries[end].0.len() + entries[end].1.len();
                end += 1;
            }
            let body = self
                .call("write", encode_write(&entries[start..end], expire_after))
                .await?;
            summary += decode_summary(&body).map_err(|e| self.err(e))?;
            start = end;
        }
        Ok(summary)
    }

    async fn read(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let body = self.call("read", encode_keys(keys)).await?;
        decode_values(&body, keys.len()).map_err(|e| self.err(e))
    }

    async fn write_tiles(&self, writes: Vec<TileWrite>) -> Result<()> {
        self.call("tiles_write", encode_tile_writes(&writes)).await.map(|_| ())
    }

    async fn read_tiles(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
        let body = self.call("tiles_read", encode_keys(keys)).await?;
        decode_tile_maps(&body, keys.len()).map_err(|e| self.err(format!("a malformed answer: {e}")))
    }

    async fn purge_expired(&self) -> Result<u64> {
        let body = self.call("purge", Vec::new()).await?;
        Cursor(&body).u64("the removed count").map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_bodies_round_trip_and_truncations_are_errors() {
        let writes = vec![
            TileWrite {
                key: b"k".to_vec(),
                replace: true,
                append: vec![([1; 8], b"r1".to_vec()), ([2; 8], Vec::new())],
                keep_from: Some([1; 8]),
                expire_at_ms: Some(42),
            },
            TileWrite {
                key: Vec::new(),
                replace: false,
                append: Vec::new(),
                keep_from: None,
                expire_at_ms: None,
            },
        ];
        let body = encode_tile_writes(&writes);
        assert_eq!(decode_tile_writes(&body), Ok(writes));
        assert!(decode_tile_writes(&body[..body.len() - 1]).is_err());
        let maps = vec![vec![(vec![1; 8], b"v".to_vec())], Vec::new()];
        let body = encode_tile_maps(&maps);
        assert_eq!(decode_tile_maps(&body, 2), Ok(maps));
        assert!(decode_tile_maps(&body, 1).is_err());
        assert!(decode_tile_maps(&body[..body.len() - 1], 2).is_err());
    }

    #[test]
    fn bodies_round_trip_and_truncations_are_errors() {
        let entries = vec![
            (b"k1".to_vec(), b"v1".to_vec()),
            (Vec::new(), Vec::new()),
            (vec![0xff; 300], b"x".to_vec()),
        ];
        for expire in [None, Some(Duration::from_millis(1500))] {
            let body = encode_write(&entries, expire);
            assert_eq!(decode_write(&body), Ok((entries.clone(), expire)));
            for cut in 0..body.len() {
                if let Ok((got, _)) = decode_write(&body[..cut]) {
                    // A cut on an entry boundary is a shorter, valid body.
                    assert!(got.len() < entries.len(), "cut at {cut}");
                }
            }
        }
        let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(decode_keys(&encode_keys(&keys)), Ok(keys));
        let values = vec![Some(b"a".to_vec()), None, Some(Vec::new())];
        let body = encode_values(&values);
        assert_eq!(decode_values(&body, 3), Ok(values));
        assert!(decode_values(&body, 2).is_err());
        assert!(decode_values(&body[..body.len() - 1], 3).is_err());
        let summary = WriteSummary { written: 7, skipped: 3 };
        assert_eq!(decode_summary(&encode_summary(summary)), Ok(summary));
        assert!(decode_summary(&[0; 9]).is_err());
    }
}
