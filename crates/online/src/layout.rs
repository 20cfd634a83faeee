//! The online key/value layout: the one place that knows how a feature row becomes bytes.
//!
//! # Keys
//!
//! ```text
//! sk:<project>:{<entity key>}:<view>
//! ```
//!
//! The entity key is the view's join-key values in entity order, each a type byte and a
//! payload: `i` + 8 bytes (int64, big-endian with the sign bit flipped), or `s` + the UTF-8
//! bytes with `0x00` escaped as `0x00 0xFF`, ended by `0x00 0x01`. Project and view names
//! are identifiers, so the first `{` is always the one before the entity key, and Redis
//! Cluster hashes only the bytes between it and the next `}`: every view of one entity key
//! lands in the same slot, so one lookup of several views of an entity is a single-slot MGET.
//! (A `}` inside the entity key shortens the tag, but the same way for every view.)
//!
//! # Values
//!
//! ```text
//! offset  size  field
//! 0       1     format (1)
//! 1       8     view version: the 16 hex digits of the view's version hash, as 8 bytes
//! 9       8     event_timestamp, µs since the epoch (order-preserving int64, as above)
//! 17      1     created present? 0 / 1
//! 18      8     created, µs (order-preserving; zeros when absent)
//! 26      ...   each feature in declared order: 0x00 (null) or 0x01 + payload
//! ```
//!
//! Payloads: bool 1 byte; int32 4 bytes and int64/timestamp 8 bytes, order-preserving;
//! float32/float64 in IEEE total order (negative: all bits flipped; otherwise the sign
//! bit set), so NaN and ±inf survive; strings as in keys.
//!
//! Every part from offset 9 on is *order-preserving*: comparing those bytes compares
//! `(event_timestamp, created, feature values)` exactly as the offline as-of join ranks rows
//! (a null `created` oldest, null feature values lowest, floats in total order, strings by
//! bytes). So "newer wins" is one byte comparison, the same in Rust ([`supersedes`]) and in
//! the Redis script ([`NEWER_WINS_LUA`]), and an exact `(event_timestamp, created)` tie picks
//! the row the training set would pick.
//!
//! # Worked example
//!
//! Project `demo`, view `driver_stats` (version `2299e865c2b5d81c`), driver 1001, an event at
//! 2025-01-01T00:00:00Z (1735689600000000 µs), no `created`, one float64 feature `0.5`:
//!
//! ```text
//! key   73 6b 3a 64 65 6d 6f 3a 7b                      "sk:demo:{"
//!       69 80 00 00 00 00 00 03 e9                      'i', 1001 with the sign bit flipped
//!       7d 3a 64 72 69 76 65 72 5f 73 74 61 74 73       "}:driver_stats"
//! value 01                                              format 1
//!       22 99 e8 65 c2 b5 d8 1c                         version
//!       80 06 2a 99 ba 0c 60 00                         event_timestamp
//!       00 00 00 00 00 00 00 00 00                      no created
//!       01 bf e0 00 00 00 00 00 00                      present, 0.5 with the sign bit set
//! ```

use std::fmt;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use serde::Serialize;
use skewless_aggregates::Column;
use skewless_defs::{AsOf, Definitions, FeatureType, FeatureView, KeyType, instant};

use crate::{Error, Result};

/// The key of the store's instance id ([`crate::OnlineStore::instance_id`]). Project names
/// are identifiers, so no feature key (`sk:<project>:…`) can equal it.
pub const INSTANCE_KEY: &[u8] = b"sk::instance";

/// A new random instance id: 32 hex digits.
pub fn new_instance_id() -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is seeded from the OS's randomness, per instance.
    let a = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    let b = std::collections::hash_map::RandomState::new().hash_one(a);
    format!("{a:016x}{b:016x}")
}

/// The value format this build writes and reads.
pub const FORMAT: u8 = 1;
/// Where the ordered part of a value starts: after format and version.
pub const RANK_OFFSET: usize = 9;
const FEATURES_OFFSET: usize = 26;

/// Redis: newer-wins writes of a batch, atomically per key. `KEYS[i]` gets `ARGV[i + 1]`
/// unless the stored value has the same format and version and an equal or greater rank
/// (bytes from offset 9, compared bytewise, like [`supersedes`]). `ARGV[1]` is the expiry
/// in milliseconds (`0`: none). Returns how many keys were written, and how many existed.
///
/// The common case (a new key, or a newer value) is one `SET … GET` (Redis ≥ 6.2); when the
/// stored value wins, it is put back in the same script, so no client ever sees the loser.
/// A losing write still refreshes the key's expiry, which never drops a valid value early:
/// the kept value is at least as new as the loser. Bytes are compared one by one with
/// `string.byte`: Lua's `<` on strings follows the server's collation locale.
///
/// A stored value whose event time is at or past [`instant::LATEST`] never wins (see
/// [`supersedes`]): `IMPOSSIBLE` holds that instant's 8 order-preserving bytes.
pub const NEWER_WINS_LUA: &str = r#"
local px = ARGV[1]
local expires = px ~= '0'
local written, existed = 0, 0
local IMPOSSIBLE = {128, 25, 201, 56, 96, 248, 64, 0}
local function impossible(old)
  for j = 1, 8 do
    local a, b = string.byte(old, 9 + j), IMPOSSIBLE[j]
    if a ~= b then return a > b end
  end
  return true
end
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local old
  if expires then
    old = redis.call('SET', key, new, 'PX', px, 'GET')
  else
    old = redis.call('SET', key, new, 'GET')
  end
  if old then existed = existed + 1 end
  local keep_old = false
  if old == new then
    keep_old = true
  elseif old and #old >= 17 and string.sub(old, 1, 9) == string.sub(new, 1, 9) and not impossible(old) then
    keep_old = true
    local n = math.min(#old, #new)
    local j = 10
    while j <= n do
      local a, b = string.byte(new, j), string.byte(old, j)
      if a ~= b then
        keep_old = a < b
        break
      end
      j = j + 1
    end
    if j > n then
      keep_old = #new <= #old
    end
  end
  if keep_old then
    if old ~= new then
      redis.call('SET', key, old, 'KEEPTTL')
    end
  else
    written = written + 1
  end
end
return {written, existed}
"#;

/// Whether `new` replaces `old`: `old` is from another format or view version, or `new`
/// ranks strictly higher. Equal values are not rewritten, so writes are idempotent.
///
/// A stored value dated at or past [`instant::LATEST`] (the year 2200) is superseded by any
/// value: no source or push can write one now, but a store written before event times were
/// bounded may hold one (a millisecond epoch read as seconds), and it must not block its
/// key until it expires. The next materialization or push repairs it.
pub fn supersedes(new: &[u8], old: &[u8]) -> bool {
    if old.len() < RANK_OFFSET + 8 || new.len() < RANK_OFFSET || old[..RANK_OFFSET] != new[..RANK_OFFSET] {
        return true;
    }
    if old[RANK_OFFSET..RANK_OFFSET + 8] >= impossible_rank()[..] {
        return true;
    }
    new[RANK_OFFSET..] > old[RANK_OFFSET..]
}

/// The order-preserving bytes of [`instant::LATEST`]: stored event times from here on are
/// impossible.
fn impossible_rank() -> [u8; 8] {
    ((instant::LATEST as u64) ^ (1 << 63)).to_be_bytes()
}

/// One entity-key component, typed as its entity declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum KeyValue {
    Int64(i64),
    String(String),
}

impl KeyValue {
    pub fn key_type(&self) -> KeyType {
        match self {
            KeyValue::Int64(_) => KeyType::Int64,
            KeyValue::String(_) => KeyType::String,
        }
    }
}

impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValue::Int64(v) => write!(f, "{v}"),
            KeyValue::String(s) => f.write_str(s),
        }
    }
}

/// A feature value read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    /// µs since the epoch, UTC.
    Timestamp(i64),
}

/// What the store needs to know about one feature view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewLayout {
    pub project: String,
    pub view: String,
    /// The view's version hash (16 hex digits).
    pub version: String,
    version_bytes: [u8; 8],
    pub keys: Vec<(String, KeyType)>,
    pub features: Vec<(String, FeatureType)>,
    pub ttl_micros: Option<i64>,
    pub as_of: AsOf,
    /// Whether the source has a `created` column.
    pub created: bool,
    /// Set for an aggregated view: its values are tiles ([`crate::tiles`]).
    pub tiles: Option<std::sync::Arc<crate::tiles::TileSpec>>,
}

impl ViewLayout {
    pub fn new(defs: &Definitions, view: &FeatureView) -> Result<Self> {
        let version = skewless_defs::version::view_version(defs, view);
        let keys = defs.view_keys(view).iter().map(|k| (k.name.clone(), k.ty)).collect();
        let created = defs.sources.get(&view.source).is_some_and(|s| s.created.is_some());
        let layout = Self::from_parts(
            &defs.project,
            &view.name,
            &version,
            keys,
            view.features.iter().map(|f| (f.name.clone(), f.ty)).collect(),
            view.ttl.map(|d| d.micros()),
            view.as_of,
            created,
        )?;
        Ok(ViewLayout {
            tiles: crate::tiles::TileSpec::new(view),
            ..layout
        })
    }

    /// The version as the 8 bytes values and tile records carry.
    pub fn version_bytes(&self) -> &[u8; 8] {
        &self.version_bytes
    }

    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        project: &str,
        view: &str,
        version: &str,
        keys: Vec<(String, KeyType)>,
        features: Vec<(String, FeatureType)>,
        ttl_micros: Option<i64>,
        as_of: AsOf,
        created: bool,
    ) -> Result<Self> {
        let mut version_bytes = [0u8; 8];
        hex::decode_to_slice(version, &mut version_bytes).map_err(|_| Error::BadVersion {
            view: view.to_string(),
            version: version.to_string(),
        })?;
        Ok(ViewLayout {
            project: project.to_string(),
            view: view.to_string(),
            version: version.to_string(),
            version_bytes,
            keys,
            features,
            ttl_micros,
            as_of,
            created,
            tiles: None,
        })
    }

    /// The store key of one entity key; `key` must have one value per join key, in order.
    pub fn key(&self, key: &[KeyValue]) -> Result<Vec<u8>> {
        if key.len() != self.keys.len() || key.iter().zip(&self.keys).any(|(v, (_, ty))| v.key_type() != *ty) {
            return Err(Error::Shape {
                view: self.view.clone(),
                what: format!(
                    "keyed by ({}), got ({})",
                    self.keys
                        .iter()
                        .map(|(n, t)| format!("{n}: {t}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    key.iter()
                        .map(|v| format!("{v}: {}", v.key_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut out = self.key_prefix();
        for v in key {
            match v {
                KeyValue::Int64(i) => put_key_int(&mut out, *i),
                KeyValue::String(s) => put_key_str(&mut out, s),
            }
        }
        self.key_suffix(&mut out);
        Ok(out)
    }

    /// The key of this view's freshness record, `sk:<project>:fresh:<view>`: where a feature
    /// key has `{`, this has `f`, so no feature key can equal it.
    pub fn freshness_key(&self) -> Vec<u8> {
        format!("sk:{}:fresh:{}", self.project, self.view).into_bytes()
    }

    /// A freshness record: the newest event time written for this view version. It is a
    /// value header without features, so it ranks like a value: the stores' newer-wins write
    /// keeps the newest, and a record of another version is replaced.
    pub fn freshness_value(&self, newest_event_ts: i64) -> Vec<u8> {
        self.value_header(newest_event_ts, None)
    }

    /// The newest event time of a freshness record of this view version; `None` for one of
    /// another version (this version's data not written yet) or malformed bytes.
    pub fn decode_freshness(&self, bytes: &[u8]) -> Option<i64> {
        if bytes.len() != FEATURES_OFFSET || bytes[0] != FORMAT || bytes[1..RANK_OFFSET] != self.version_bytes {
            return None;
        }
        Reader { bytes, at: RANK_OFFSET }.i64()
    }

    fn key_prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.project.len() + self.view.len() + 24);
        out.extend_from_slice(b"sk:");
        out.extend_from_slice(self.project.as_bytes());
        out.extend_from_slice(b":{");
        out
    }

    /// `}:<view>` for a row view, `}:<view>:t` for an aggregated view: the two kinds hold
    /// different Redis types (a string, a hash), so a view that changes kind (applied with
    /// `--allow-breaking`) must not meet its old keys (`WRONGTYPE`). Old keys expire by
    /// their own expiry.
    fn key_suffix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"}:");
        out.extend_from_slice(self.view.as_bytes());
        if self.tiles.is_some() {
            out.extend_from_slice(b":t");
        }
    }

    /// The value of one row; `values` must match the view's features in order and type.
    pub fn value(&self, event_ts: i64, created: Option<i64>, values: &[Scalar]) -> Result<Vec<u8>> {
        if values.len() != self.features.len() {
            return Err(Error::Shape {
                view: self.view.clone(),
                what: format!("{} features, got {} values", self.features.len(), values.len()),
            });
        }
        let mut out = self.value_header(event_ts, created);
        for (v, (name, ty)) in values.iter().zip(&self.features) {
            put_scalar(&mut out, v, *ty).map_err(|found| Error::Shape {
                view: self.view.clone(),
                what: format!("feature `{name}` is {ty}, got {found}"),
            })?;
        }
        Ok(out)
    }

    fn value_header(&self, event_ts: i64, created: Option<i64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(FEATURES_OFFSET + 9 * self.features.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.version_bytes);
        out.extend_from_slice(&order_i64(event_ts));
        match created {
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&order_i64(c));
            }
            None => out.extend_from_slice(&[0; 9]),
        }
        out
    }

    /// Reads a value written for this view. A value of another format or view version is
    /// [`Decoded::OtherVersion`], never misread as this one.
    pub fn decode(&self, bytes: &[u8]) -> Decoded {
        if bytes.len() < FEATURES_OFFSET || bytes[0] != FORMAT || bytes[1..RANK_OFFSET] != self.version_bytes {
            return Decoded::OtherVersion;
        }
        let mut r = Reader { bytes, at: RANK_OFFSET };
        let parsed = (|| {
            let event_ts = r.i64()?;
            let created = match r.u8()? {
                0 => {
                    r.take(8)?;
                    None
                }
                1 => Some(r.i64()?),
                _ => return None,
            };
            let mut values = Vec::with_capacity(self.features.len());
            for (_, ty) in &self.features {
                values.push(r.scalar(*ty)?);
            }
            (r.at == bytes.len()).then_some(Row {
                event_ts,
                created,
                values,
            })
        })();
        parsed.map_or(Decoded::Corrupt, Decoded::Row)
    }

    /// Encodes a materialization batch: columns `[keys.., event_timestamp, created?, features..]`
    /// (int64 keys as Int64, string keys as Utf8, times as µs). Rows whose key or event time is null are
    /// not written (the offline side never produces them); they are an error here.
    /// The key columns (the batch's first) of a batch in this view's key types.
    fn key_columns<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<KeyColumn<'a>>> {
        let bad = |what: &str| Error::Shape {
            view: self.view.clone(),
            what: what.to_string(),
        };
        batch
            .columns()
            .iter()
            .take(self.keys.len())
            .zip(&self.keys)
            .map(|(c, (name, ty))| match ty {
                KeyType::Int64 => c
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(KeyColumn::Int)
                    .ok_or_else(|| bad(&format!("key `{name}` is {}, expected Int64", c.data_type()))),
                KeyType::String => c
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(KeyColumn::Str)
                    .ok_or_else(|| bad(&format!("key `{name}` is {}, expected Utf8", c.data_type()))),
            })
            .collect()
    }

    fn row_key(&self, prefix: &[u8], keys: &[KeyColumn<'_>], row: usize) -> Vec<u8> {
        let mut key = prefix.to_vec();
        for c in keys {
            c.put(&mut key, row);
        }
        self.key_suffix(&mut key);
        key
    }

    /// The store key of each row of a batch whose first columns are the view's keys; `None`
    /// where a key is null.
    pub fn batch_keys(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = self.key_columns(batch)?;
        let prefix = self.key_prefix();
        Ok((0..batch.num_rows())
            .map(|row| (!keys.iter().any(|c| c.is_null(row))).then(|| self.row_key(&prefix, &keys, row)))
            .collect())
    }

    pub fn encode_batch(&self, batch: &RecordBatch) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let k = self.keys.len();
        let first_feature = k + 1 + usize::from(self.created);
        if batch.num_columns() != first_feature + self.features.len() {
            return Err(Error::Shape {
                view: self.view.clone(),
                what: format!(
                    "a batch of {} columns, expected {}",
                    batch.num_columns(),
                    first_feature + self.features.len()
                ),
            });
        }
        let bad = |what: &str| Error::Shape {
            view: self.view.clone(),
            what: what.to_string(),
        };
        let keys = self.key_columns(batch)?;
        let micros = |i: usize, what: &str| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| {
                    bad(&format!(
                        "{what} is {}, expected timestamps in µs",
                        batch.column(i).data_type()
                    ))
                })
        };
        let ts = micros(k, "event_timestamp")?;
        let created = if self.created {
            Some(micros(k + 1, "created")?)
        } else {
            None
        };
        let features: Vec<Column<'_>> = batch.columns()[first_feature..]
            .iter()
            .zip(&self.features)
            .map(|(c, (name, ty))| {
                let column = Column::new(c.as_ref());
                column.holds(*ty).then_some(column).ok_or_else(|| {
                    bad(&format!(
                        "feature `{name}` is {}, expected {}",
                        c.data_type(),
                        arrow_type_name(*ty)
                    ))
                })
            })
            .collect::<Result<_>>()?;

        let prefix = self.key_prefix();
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if ts.is_null(row) || keys.iter().any(|c| c.is_null(row)) {
                return Err(bad(&format!("row {row} has a null key or event time")));
            }
            let key = self.row_key(&prefix, &keys, row);
            let created = created.and_then(|c| c.is_valid(row).then(|| c.value(row)));
            let mut value = self.value_header(ts.value(row), created);
            for c in &features {
                put_feature(&mut value, c, row);
            }
            out.push((key, value));
        }
        Ok(out)
    }
}

/// The result of reading a value back.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Row(Row),
    /// Written under another view version or value format.
    OtherVersion,
    /// The right version, but the bytes do not parse: damaged or written by a buggy writer.
    Corrupt,
}

/// A stored row: when it happened, when it landed, its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub event_ts: i64,
    pub created: Option<i64>,
    pub values: Vec<Scalar>,
}

fn arrow_type_name(ty: FeatureType) -> &'static str {
    match ty {
        FeatureType::Bool => "Boolean",
        FeatureType::Int32 => "Int32",
        FeatureType::Int64 => "Int64",
        FeatureType::Float32 => "Float32",
        FeatureType::Float64 => "Float64",
        FeatureType::String => "Utf8",
        FeatureType::Timestamp => "Timestamp(µs)",
    }
}

enum KeyColumn<'a> {
    Int(&'a Int64Array),
    Str(&'a StringArray),
}

impl KeyColumn<'_> {
    fn is_null(&self, row: usize) -> bool {
        match self {
            KeyColumn::Int(a) => a.is_null(row),
            KeyColumn::Str(a) => a.is_null(row),
        }
    }

    fn put(&self, out: &mut Vec<u8>, row: usize) {
        match self {
            KeyColumn::Int(a) => put_key_int(out, a.value(row)),
            KeyColumn::Str(a) => put_key_str(out, a.value(row)),
        }
    }
}

/// Writes one feature value: a null flag, then the value's order-preserving bytes.
fn put_feature(out: &mut Vec<u8>, column: &Column<'_>, row: usize) {
    if column.is_null(row) {
        out.push(0);
        return;
    }
    out.push(1);
    match column {
        Column::Bool(a) => out.push(u8::from(a.value(row))),
        Column::Int32(a) => out.extend_from_slice(&order_i32(a.value(row))),
        Column::Int64(a) => out.extend_from_slice(&order_i64(a.value(row))),
        Column::Time(a) => out.extend_from_slice(&order_i64(a.value(row))),
        Column::Float32(a) => out.extend_from_slice(&order_f32(a.value(row))),
        Column::Float64(a) => out.extend_from_slice(&order_f64(a.value(row))),
        Column::Utf8(a) => put_str(out, a.value(row)),
        // `holds` refused such a column before any row was encoded; it reads as all null.
        Column::Other => {}
    }
}

/// Writes one scalar of type `ty`; on a type mismatch returns what was found.
fn put_scalar(out: &mut Vec<u8>, v: &Scalar, ty: FeatureType) -> std::result::Result<(), &'static str> {
    let bytes_start = out.len();
    out.push(1);
    match (v, ty) {
        (Scalar::Null, _) => {
            out[bytes_start] = 0;
        }
        (Scalar::Bool(b), FeatureType::Bool) => out.push(u8::from(*b)),
        (Scalar::Int32(i), FeatureType::Int32) => out.extend_from_slice(&order_i32(*i)),
        (Scalar::Int64(i), FeatureType::Int64) => out.extend_from_slice(&order_i64(*i)),
        (Scalar::Float32(x), FeatureType::Float32) => out.extend_from_slice(&order_f32(*x)),
        (Scalar::Float64(x), FeatureType::Float64) => out.extend_from_slice(&order_f64(*x)),
        (Scalar::String(s), FeatureType::String) => put_str(out, s),
        (Scalar::Timestamp(t), FeatureType::Timestamp) => out.extend_from_slice(&order_i64(*t)),
        (other, _) => {
            out.truncate(bytes_start);
            return Err(match other {
                Scalar::Null => "null",
                Scalar::Bool(_) => "bool",
                Scalar::Int32(_) => "int32",
                Scalar::Int64(_) => "int64",
                Scalar::Float32(_) => "float32",
                Scalar::Float64(_) => "float64",
                Scalar::String(_) => "string",
                Scalar::Timestamp(_) => "timestamp",
            });
        }
    }
    Ok(())
}

fn put_key_int(out: &mut Vec<u8>, v: i64) {
    out.push(b'i');
    out.extend_from_slice(&order_i64(v));
}

fn put_key_str(out: &mut Vec<u8>, v: &str) {
    out.push(b's');
    put_str(out, v);
}

/// Strings keep byte order: `0x00` becomes `0x00 0xFF`, and `0x00 0x01` ends the string.
fn put_str(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

fn order_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn order_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

fn order_f64(v: f64) -> [u8; 8] {
    let bits = v.to_bits();
    (if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }).to_be_bytes()
}

fn order_f32(v: f32) -> [u8; 4] {
    let bits = v.to_bits();
    (if bits >> 31 == 1 { !bits } else { bits | (1 << 31) }).to_be_bytes()
}

/// A cursor over untrusted bytes: every read is bounds-checked and yields `None` past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn i64(&mut self) -> Option<i64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
    }

    fn i32(&mut self) -> Option<i32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some((u32::from_be_bytes(b) ^ (1 << 31)) as i32)
    }

    fn f64(&mut self) -> Option<f64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        let bits = u64::from_be_bytes(b);
        Some(f64::from_bits(if bits >> 63 == 1 { bits & !(1 << 63) } else { !bits }))
    }

    fn f32(&mut self) -> Option<f32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        let bits = u32::from_be_bytes(b);
        Some(f32::from_bits(if bits >> 31 == 1 { bits & !(1 << 31) } else { !bits }))
    }

    fn string(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            match self.u8()? {
                0 => match self.u8()? {
                    0xFF => out.push(0),
                    1 => break,
                    _ => return None,
                },
                b => out.push(b),
            }
        }
        String::from_utf8(out).ok()
    }

    fn scalar(&mut self, ty: FeatureType) -> Option<Scalar> {
        match self.u8()? {
            0 => return Some(Scalar::Null),
            1 => {}
            _ => return None,
        }
        Some(match ty {
            FeatureType::Bool => match self.u8()? {
                0 => Scalar::Bool(false),
                1 => Scalar::Bool(true),
                _ => return None,
            },
            FeatureType::Int32 => Scalar::Int32(self.i32()?),
            FeatureType::Int64 => Scalar::Int64(self.i64()?),
            FeatureType::Float32 => Scalar::Float32(self.f32()?),
            FeatureType::Float64 => Scalar::Float64(self.f64()?),
            FeatureType::String => Scalar::String(self.string()?),
            FeatureType::Timestamp => Scalar::Timestamp(self.i64()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(features: Vec<(&str, FeatureType)>) -> ViewLayout {
        ViewLayout::from_parts(
            "demo",
            "driver_stats",
            "2299e865c2b5d81c",
            vec![("driver_id".into(), KeyType::Int64)],
            features.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
            None,
            AsOf::Event,
            false,
        )
        .unwrap()
    }

    #[test]
    fn the_script_and_supersedes_agree_on_impossible_times() {
        let bytes: Vec<String> = impossible_rank().iter().map(u8::to_string).collect();
        assert!(
            NEWER_WINS_LUA.contains(&format!("local IMPOSSIBLE = {{{}}}", bytes.join(", "))),
            "NEWER_WINS_LUA's IMPOSSIBLE must hold {bytes:?}"
        );
        let l = layout(vec![("conv_rate", FeatureType::Float64)]);
        let at = |ts: i64| l.freshness_value(ts);
        assert!(!supersedes(&at(1), &at(instant::LATEST - 1)));
        assert!(supersedes(&at(1), &at(instant::LATEST)));
        assert!(supersedes(&at(1), &at(i64::MAX)));
    }

    /// Freshness records: the newest wins, another version is not read as this one, and no
    /// feature key can be a freshness key.
    #[test]
    fn freshness_records_rank_like_values() {
        let l = layout(vec![("conv_rate", FeatureType::Float64)]);
        let times = [-5, 0, 7, 1_735_689_600_000_000, i64::MIN, i64::MAX];
        for a in times {
            assert_eq!(l.decode_freshness(&l.freshness_value(a)), Some(a));
            for b in times {
                assert_eq!(
                    supersedes(&l.freshness_value(a), &l.freshness_value(b)),
                    a > b || b >= instant::LATEST,
                    "{a} over {b}"
                );
            }
        }
        let other = ViewLayout::from_parts(
            "demo",
            "driver_stats",
            "0000000000000001",
            l.keys.clone(),
            l.features.clone(),
            None,
            AsOf::Event,
            false,
        )
        .unwrap();
        assert_eq!(other.decode_freshness(&l.freshness_value(9)), None);
        assert!(supersedes(&other.freshness_value(1), &l.freshness_value(9)));
        let value = l.value(5, None, &[Scalar::Float64(0.5)]).unwrap();
        assert_eq!(l.decode_freshness(&value), None);
        assert_eq!(l.freshness_key(), b"sk:demo:fresh:driver_stats");
        assert!(!l.key(&[KeyValue::Int64(1)]).unwrap().starts_with(b"sk:demo:f"));
    }

    /// The module doc's worked example, byte for byte.
    #[test]
    fn worked_example() {
        let l = layout(vec![("conv_rate", FeatureType::Float64)]);
        let key = l.key(&[KeyValue::Int64(1001)]).unwrap();
        assert_eq!(
            hex::encode(&key),
            "736b3a64656d6f3a7b".to_string() + "6980000000000003e9" + "7d3a6472697665725f7374617473"
        );
        let value = l.value(1_735_689_600_000_000, None, &[Scalar::Float64(0.5)]).unwrap();
        assert_eq!(
            hex::encode(&value),
            "01".to_string() + "2299e865c2b5d81c" + "80062a99ba0c6000" + "000000000000000000" + "01bfe0000000000000"
        );
        assert_eq!(
            l.decode(&value),
            Decoded::Row(Row {
                event_ts: 1_735_689_600_000_000,
                created: None,
                values: vec![Scalar::Float64(0.5)]
            })
        );
    }

    fn every_type() -> ViewLayout {
        layout(FeatureType::ALL.iter().map(|t| (t.name(), *t)).collect())
    }

    #[test]
    fn every_type_round_trips_including_nulls_and_extremes() {
        let l = every_type();
        let rows = [
            vec![
                Scalar::Bool(true),
                Scalar::Int32(i32::MIN),
                Scalar::Int64(i64::MAX),
                Scalar::Float32(f32::NAN),
                Scalar::Float64(f64::NEG_INFINITY),
                Scalar::String("a\0b\u{1F600}".into()),
                Scalar::Timestamp(i64::MIN),
            ],
            vec![const { Scalar::Null }; 7],
            vec![
                Scalar::Bool(false),
                Scalar::Int32(-1),
                Scalar::Int64(0),
                Scalar::Float32(-0.0),
                Scalar::Float64(f64::INFINITY),
                Scalar::String(String::new()),
                Scalar::Timestamp(i64::MAX),
            ],
        ];
        for (i, values) in rows.iter().enumerate() {
            for created in [None, Some(i64::MIN), Some(-1), Some(i64::MAX)] {
                let bytes = l.value(i as i64 - 1, created, values).unwrap();
                let Decoded::Row(row) = l.decode(&bytes) else {
                    panic!("row {i} did not decode")
                };
                assert_eq!(row.event_ts, i as i64 - 1);
                assert_eq!(row.created, created);
                for (got, want) in row.values.iter().zip(values) {
                    match (got, want) {
                        (Scalar::Float32(a), Scalar::Float32(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                        (Scalar::Float64(a), Scalar::Float64(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                        _ => assert_eq!(got, want),
                    }
                }
            }
        }
    }

    #[test]
    fn another_version_or_damage_is_never_misread() {
        let l = every_type();
        let bytes = l.value(5, None, &[const { Scalar::Null }; 7]).unwrap();
        let mut other = l.clone();
        other.version = "0000000000000001".into();
        other.version_bytes = [0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(other.decode(&bytes), Decoded::OtherVersion);
        assert_eq!(l.decode(&bytes[..bytes.len() - 1]), Decoded::Corrupt);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(l.decode(&longer), Decoded::Corrupt);
        assert_eq!(l.decode(b"garbage"), Decoded::OtherVersion);
        // Every truncation decodes to something without panicking.
        for n in 0..bytes.len() {
            assert_ne!(
                l.decode(&bytes[..n]),
                Decoded::Row(Row {
                    event_ts: 5,
                    created: None,
                    values: vec![const { Scalar::Null }; 7]
                })
            );
        }
    }

    /// Byte order of the ranked part equals the offline order: (ts, created with null
    /// oldest, then values with null lowest, floats in total order, strings by bytes).
    #[test]
    fn rank_bytes_order_like_the_offline_join() {
        let l = layout(vec![("f", FeatureType::Float64), ("s", FeatureType::String)]);
        let floats = [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            1.5,
            -2.5,
            f64::MIN_POSITIVE,
        ];
        let strings = ["", "a", "a\0", "ab", "b", "\u{e9}"];
        let mut rows = Vec::new();
        for ts in [-1i64, 0, 7] {
            for created in [None, Some(-3), Some(4)] {
                for f in floats.iter().map(|f| Some(*f)).chain([None]) {
                    for s in strings.iter().map(|s| Some(*s)).chain([None]) {
                        rows.push((ts, created, f, s));
                    }
                }
            }
        }
        let offline_order = |a: &(i64, Option<i64>, Option<f64>, Option<&str>),
                             b: &(i64, Option<i64>, Option<f64>, Option<&str>)| {
            let floats = match (a.2, b.2) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (x, y) => x.is_some().cmp(&y.is_some()),
            };
            a.0.cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then(floats)
                .then(a.3.map(str::as_bytes).cmp(&b.3.map(str::as_bytes)))
        };
        let encode = |r: &(i64, Option<i64>, Option<f64>, Option<&str>)| {
            let values = [
                r.2.map_or(Scalar::Null, Scalar::Float64),
                r.3.map_or(Scalar::Null, |s| Scalar::String(s.into())),
            ];
            l.value(r.0, r.1, &values).unwrap()
        };
        for a in &rows {
            for b in &rows {
                let (ea, eb) = (encode(a), encode(b));
                assert_eq!(
                    ea[RANK_OFFSET..].cmp(&eb[RANK_OFFSET..]),
                    offline_order(a, b),
                    "{a:?} vs {b:?}"
                );
                assert_eq!(supersedes(&ea, &eb), offline_order(a, b).is_gt());
            }
        }
    }

    #[test]
    fn keys_of_one_entity_share_a_hash_tag_and_types_are_checked() {
        let a = layout(vec![]);
        let mut b = a.clone();
        b.view = "driver_trips".into();
        let key = [KeyValue::Int64(0x7d7d)]; // contains `}` bytes
        let tag = |k: &[u8]| {
            let open = k.iter().position(|&c| c == b'{').unwrap();
            let close = open + 1 + k[open + 1..].iter().position(|&c| c == b'}').unwrap();
            k[open + 1..close].to_vec()
        };
        let (ka, kb) = (a.key(&key).unwrap(), b.key(&key).unwrap());
        assert_ne!(ka, kb);
        assert!(!tag(&ka).is_empty());
        assert_eq!(tag(&ka), tag(&kb));
        let err = a.key(&[KeyValue::String("1001".into())]).unwrap_err().to_string();
        assert!(err.contains("driver_id: int64"), "{err}");
        assert_eq!(
            KeyValue::parse("007", KeyType::String).unwrap(),
            KeyValue::String("007".into())
        );
        assert_eq!(KeyValue::parse("7", KeyType::Int64).unwrap(), KeyValue::Int64(7));
        assert!(KeyValue::parse("x", KeyType::Int64).is_err());
    }
}
