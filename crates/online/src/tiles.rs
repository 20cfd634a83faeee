//! Aggregated views online: per entity, tiles of partial aggregates, merged at lookup.
//!
//! An aggregated view's store key is the same as a row view's (`sk:<project>:{<entity>}:<view>`,
//! see [`crate::layout`]), but it holds a *map* of tiles (a Redis hash; a map record in the
//! embedded store). Materialization replaces an entity's map with the tiles computed offline
//! from every row (batch files and push log); a push appends its rows' partial states to
//! their tiles, in one atomic call per entity. A lookup reads the map and merges, per
//! feature, the tiles inside its window at the clock ([`skewless_aggregates`]): the
//! same exact, order-free merges the training set does, so both give the same bits.
//!
//! # Bytes
//!
//! ```text
//! field   8 bytes   tile index floor(ts / tile), int64 big-endian with the sign bit flipped
//! value   records, each:
//!         4 bytes   length of the rest of the record (u32 big-endian)
//!         1 byte    format: 2 (materialized) or 3 (pushed, tagged)
//!         8 bytes   view version (as in row values)
//!         8 bytes   format 3 only: the push's tag
//!         ...       one state per feature, in declared order (skewless_aggregates::encode):
//!                   count: u64 · sum/mean: u64 n, sum · var/stddev: u64 n, sum, sum of squares
//!                   min/max: 0 | 1 value · first/last: 0 | 1 ts i64, 0 | 1 created i64, value
//!                   count_distinct: u32 k, then k × (u32 length, value bytes)
//!                   sum: 1 byte flags (NaN, +inf, −inf), u8 k + k f64 partials, u8 k + k f64
//!                   (inputs ≥ 2^900, scaled by 2^-600); value: 'b' u8 | 'i' i64 | 'f' f64 bits
//!                   | 's' u32 length + UTF-8
//! ```
//!
//! A tile's value is one record after materialization; each push adds one. Records of
//! another view version are skipped, as row values of another version are.
//!
//! **Appends are idempotent.** A push's records carry its tag (from its id and rows when it
//! has an id, else random), and a tile merges one record per tag: a record appended twice (a
//! retried push, a command resent after a lost connection whose first send had landed)
//! counts once. So a push can always be written again, and a retry of a push whose online
//! write failed makes its rows servable.
//!
//! **Expiry.** A write drops the entity's tiles before the longest window's first tile at the
//! entity's newest event, and sets the key to expire once no write has touched it for the
//! longest window, a tile and a day ([`TileSpec::expire_at_ms`]). Views with a `lifetime`
//! feature keep every tile and never expire.

use std::sync::Arc;

use arrow::array::Array;

use skewless_aggregates::{DecodeError, Decoder, State, Value, encode, first_tile, tile_of};
use skewless_defs::planted::Fault;
use skewless_defs::{AggFunction, FeatureType, FeatureView};

use crate::layout::Scalar;
use crate::lookup::Status;

/// The record format byte of materialized tile records (row values are format 1).
pub const FORMAT: u8 = 2;
/// The record format byte of pushed tile records: the version is followed by the push's tag.
pub const TAGGED: u8 = 3;

/// What the store needs to know about an aggregated view's features.
#[derive(Debug, Clone, PartialEq)]
pub struct TileSpec {
    /// The tile in µs (1 for exact windows).
    pub tile: i64,
    /// Per feature in declared order: its function, window (µs; `None`: lifetime) and type.
    pub features: Vec<(AggFunction, Option<i64>, FeatureType)>,
    /// The longest window in µs; `None` when some feature is `lifetime`.
    pub longest: Option<i64>,
}

impl TileSpec {
    /// The spec of an aggregated view; `None` for a row view.
    pub fn new(view: &FeatureView) -> Option<Arc<Self>> {
        let tile = view.tile?.micros();
        let features = view
            .features
            .iter()
            .map(|f| {
                let agg = f.aggregation.as_ref()?;
                Some((agg.function, agg.window.micros(), f.ty))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Arc::new(TileSpec {
            tile,
            features,
            longest: view.longest_window_micros(),
        }))
    }

    /// Empty states, one per feature.
    pub fn empty(&self) -> Vec<State> {
        self.features.iter().map(|(f, _, _)| State::empty(*f)).collect()
    }

    /// Tiles before this one are outside every window at `now` (`None`: keep all).
    pub fn keep_from(&self, now: i64) -> Option<i64> {
        self.longest.map(|w| first_tile(now, self.tile, w))
    }

    /// When a key written at wall-clock `now_ms` may expire: once no write has touched it for
    /// the longest window and a tile, plus a day's margin (`None`: never, with `lifetime`).
    pub fn expire_at_ms(&self, now_ms: u64) -> Option<u64> {
        let longest = self.longest?;
        let span_ms = (longest.saturating_add(self.tile) / 1000).max(0) as u64;
        Some(now_ms.saturating_add(span_ms).saturating_add(86_400_000))
    }
}

/// The map field of a tile index: order-preserving bytes.
pub fn field(tile: i64) -> [u8; 8] {
    (tile as u64 ^ (1 << 63)).to_be_bytes()
}

/// The tile index of a map field; `None` for bytes of another shape.
pub fn tile_index(field: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = field.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// One record: the states of a tile (one per feature), for view version `version`; tagged
/// with `tag` when pushed (materialized records have none).
pub fn record(version: &[u8; 8], tag: Option<[u8; 8]>, states: &[State]) -> Vec<u8> {
    let mut body = vec![if tag.is_some() { TAGGED } else { FORMAT }];
    body.extend_from_slice(version);
    if let Some(tag) = tag {
        body.extend_from_slice(&tag);
    }
    for s in states {
        encode(s, &mut body);
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// What one tile's value holds.
#[derive(Debug)]
pub enum Decoded {
    /// The merge of its records of this version (`None`: none were).
    States(Option<Vec<State>>),
    /// Bytes that do not parse.
    Corrupt,
}

/// Merges the records of one tile value that belong to `version`.
pub fn decode(spec: &TileSpec, version: &[u8; 8], bytes: &[u8]) -> Decoded {
    match decode_records(spec, version, bytes) {
        Ok(states) => Decoded::States(states),
        Err(_) => Decoded::Corrupt,
    }
}

fn decode_records(spec: &TileSpec, version: &[u8; 8], mut bytes: &[u8]) -> Result<Option<Vec<State>>, DecodeError> {
    let mut merged: Option<Vec<State>> = None;
    // A set, not a list: a hot key's tile holds a record per push until the next
    // materialization, and every lookup reads them all.
    let mut tags: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    while !bytes.is_empty() {
        let (len, rest) = split(bytes, 4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (body, rest) = split(rest, len)?;
        bytes = rest;
        if body.len() < 9 || body[1..9] != version[..] {
            continue;
        }
        let states = match body[0] {
            FORMAT => &body[9..],
            TAGGED => {
                let (tag, states) = split(&body[9..], 8)?;
                if !tags.insert(tag) {
                    continue;
                }
                states
            }
            _ => continue,
        };
        let mut decoder = Decoder::new(states);
        let states = spec
            .features
            .iter()
            .map(|(f, _, _)| decoder.state(*f))
            .collect::<Result<Vec<_>, _>>()?;
        decoder.finish()?;
        match &mut merged {
            None => merged = Some(states),
            Some(m) => m.iter_mut().zip(&states).for_each(|(a, b)| a.merge(b)),
        }
    }
    Ok(merged)
}

/// `bytes` split after `n`, or how far short it is.
fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    bytes.split_at_checked(n).ok_or(DecodeError::Truncated {
        needed: n,
        left: bytes.len(),
    })
}

/// The value and status at `now` of each feature in `features` (indices into the spec's,
/// in that order) from an entity's tiles `(index, states)`: only those are merged.
///
/// A window with rows gives `PRESENT`. An empty one gives count 0 (`PRESENT`: 0 is the
/// value, as offline) and null otherwise, `OUTSIDE_MAX_AGE` when the entity has tiles but
/// none in the window, `NOT_FOUND` when it has none.
pub fn evaluate(spec: &TileSpec, tiles: &[(i64, Vec<State>)], now: i64, features: &[usize]) -> Vec<(Scalar, Status)> {
    let last = tile_of(now, spec.tile);
    features
        .iter()
        .map(|&j| {
            let (function, window, ty) = &spec.features[j];
            let first = window.map_or(i64::MIN, |w| first_tile(now, spec.tile, w));
            let mut merged = State::empty(*function);
            let mut any = false;
            let mut naive = None::<f64>;
            for (_, states) in tiles.iter().filter(|(i, _)| (first..=last).contains(i)) {
                merged.merge(&states[j]);
                any = true;
                if let Some(Value::Float(x)) = planted_naive_sum(*function, &states[j]) {
                    naive = Some(naive.map_or(x, |sum| sum + x));
                }
            }
            if let Some(sum) = naive {
                return (Scalar::Float64(sum), Status::Present);
            }
            let status = if any || function.zero_when_empty() {
                Status::Present
            } else if tiles.is_empty() {
                Status::NotFound
            } else {
                Status::OutsideMaxAge
            };
            (scalar(*ty, merged.finish(*function)), status)
        })
        .collect()
}

/// With the planted fault [`Fault::NaiveFloatSums`] (tests of the parity harness only): a
/// float sum's tile, rounded on its own, to be added naively in tile order.
fn planted_naive_sum(function: AggFunction, state: &State) -> Option<Value> {
    (function == AggFunction::Sum && skewless_defs::planted::active(Fault::NaiveFloatSums))
        .then(|| state.finish(function))
        .flatten()
}

fn scalar(ty: FeatureType, value: Option<Value>) -> Scalar {
    match (ty, value) {
        (_, None) => Scalar::Null,
        (FeatureType::Bool, Some(Value::Bool(b))) => Scalar::Bool(b),
        (FeatureType::Int32, Some(Value::Int(i))) => i32::try_from(i).map_or(Scalar::Null, Scalar::Int32),
        (FeatureType::Int64, Some(Value::Int(i))) => Scalar::Int64(i),
        (FeatureType::Timestamp, Some(Value::Int(i))) => Scalar::Timestamp(i),
        (FeatureType::Float32, Some(Value::Float(f))) => Scalar::Float32(f as f32),
        (FeatureType::Float64, Some(Value::Float(f))) => Scalar::Float64(f),
        (FeatureType::String, Some(Value::Str(s))) => Scalar::String(s),
        _ => Scalar::Null,
    }
}

/// One entity's tile write: optionally replace the whole map, append records to tiles, drop
/// tiles before `keep_from`, and set the key's expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct TileWrite {
    pub key: Vec<u8>,
    /// Delete the entity's tiles first (materialization: the records are complete).
    pub replace: bool,
    /// `(field, record)`: the record is appended to the tile's value.
    pub append: Vec<([u8; 8], Vec<u8>)>,
    /// Tiles with a smaller field are deleted.
    pub keep_from: Option<[u8; 8]>,
    /// Absolute expiry of the key in ms since the epoch; `None`: no expiry.
    pub expire_at_ms: Option<u64>,
}

/// What a batch of events is to an entity's tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// Its whole history (materialization): the records replace the entity's tiles.
    Replace,
    /// A push tagged so: the records are appended, and count once per tag.
    Append([u8; 8]),
}

/// The tile writes of a batch of events `[keys.., ts, created?, inputs..]` (the view's select
/// list): per entity, each tile's states folded from its events, as one record per tile.
/// Events whose effective time (`ts`, or `max(ts, created)` with `as_of: available`) is after
/// `end` are left out; so are tiles older than the longest window before the entity's newest
/// event.
pub fn writes(
    layout: &crate::ViewLayout,
    batch: &arrow::array::RecordBatch,
    end: Option<i64>,
    records: Records,
    now_ms: u64,
) -> crate::Result<Vec<TileWrite>> {
    use std::collections::{BTreeMap, HashMap};
    let spec = layout
        .tiles
        .as_ref()
        .ok_or_else(|| crate::Error::Internal(format!("view `{}` is not aggregated", layout.view)))?;
    let keys = layout.batch_keys(batch)?;
    let k = layout.keys.len();
    let micros = |i: usize| {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .ok_or_else(|| crate::Error::Shape {
                view: layout.view.clone(),
                what: format!("column {i} is not a timestamp"),
            })
    };
    let ts = micros(k)?;
    let created = if layout.created { Some(micros(k + 1)?) } else { None };
    let inputs = &batch.columns()[k + 1 + usize::from(layout.created)..];
    if inputs.len() != spec.features.len() {
        return Err(crate::Error::Internal(format!(
            "view `{}`: {} inputs for {} features",
            layout.view,
            inputs.len(),
            spec.features.len()
        )));
    }
    // Per entity key: its newest event time, and its tiles' states.
    type Entity = (i64, BTreeMap<i64, Vec<State>>);
    let mut entities: HashMap<Vec<u8>, Entity> = HashMap::new();
    let inputs: Vec<skewless_aggregates::Column<'_>> = inputs
        .iter()
        .map(|a| skewless_aggregates::Column::new(a.as_ref()))
        .collect();
    for (row, key) in keys.into_iter().enumerate() {
        let Some(key) = key else { continue };
        if ts.is_null(row) {
            continue;
        }
        let t = ts.value(row);
        let c = created.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        let effective = match layout.as_of {
            skewless_defs::AsOf::Available => c.map_or(t, |c| c.max(t)),
            skewless_defs::AsOf::Event => t,
        };
        if end.is_some_and(|end| effective > end) {
            continue;
        }
        let (newest, tiles) = entities.entry(key).or_insert_with(|| (t, BTreeMap::new()));
        *newest = (*newest).max(t);
        let states = tiles.entry(tile_of(t, spec.tile)).or_insert_with(|| spec.empty());
        for (state, input) in states.iter_mut().zip(&inputs) {
            state.add(input.value(row).as_ref(), t, c);
        }
    }
    let version = layout.version_bytes();
    let tag = match records {
        Records::Replace => None,
        Records::Append(tag) => Some(tag),
    };
    let expire_at_ms = spec.expire_at_ms(now_ms);
    Ok(entities
        .into_iter()
        .map(|(key, (newest, tiles))| {
            let keep_from = spec.keep_from(newest);
            TileWrite {
                key,
                replace: records == Records::Replace,
                append: tiles
                    .into_iter()
                    .filter(|(i, _)| keep_from.is_none_or(|k| *i >= k))
                    .map(|(i, states)| (field(i), record(version, tag, &states)))
                    .collect(),
                keep_from: keep_from.map(field),
                expire_at_ms,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_sort_like_tiles_and_records_round_trip() {
        let tiles = [-3i64, -1, 0, 1, 500];
        let fields: Vec<_> = tiles.iter().map(|&t| field(t)).collect();
        assert!(fields.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tile_index(&field(-7)), Some(-7));
        let spec = TileSpec {
            tile: 10,
            features: vec![
                (AggFunction::Count, Some(20), FeatureType::Int64),
                (AggFunction::Sum, None, FeatureType::Float64),
            ],
            longest: None,
        };
        let version = [1u8; 8];
        let mut a = spec.empty();
        a[0].add(Some(&Value::Bool(true)), 5, None);
        a[1].add(Some(&Value::Float(0.5)), 5, None);
        let mut b = spec.empty();
        b[0].add(Some(&Value::Bool(true)), 7, None);
        b[1].add(Some(&Value::Float(0.25)), 7, None);
        let bytes = [
            record(&version, None, &a),
            record(&[2u8; 8], None, &a),
            record(&version, None, &b),
        ]
        .concat();
        let Decoded::States(Some(states)) = decode(&spec, &version, &bytes) else {
            panic!("records decode");
        };
        let both = [0, 1];
        let values = evaluate(&spec, &[(0, states)], 9, &both);
        assert_eq!(values[0], (Scalar::Int64(2), Status::Present));
        assert_eq!(values[1], (Scalar::Float64(0.75), Status::Present));
        // Pushed records: one per tag counts, however often it was appended; untagged
        // (materialized) records and other tags all count.
        let tagged = [
            record(&version, None, &a),
            record(&version, Some([7; 8]), &b),
            record(&version, Some([7; 8]), &b),
            record(&version, Some([8; 8]), &b),
            record(&version, Some([7; 8]), &b),
        ]
        .concat();
        let Decoded::States(Some(states)) = decode(&spec, &version, &tagged) else {
            panic!("tagged records decode");
        };
        let values = evaluate(&spec, &[(0, states)], 9, &both);
        assert_eq!(values[0], (Scalar::Int64(3), Status::Present));
        assert_eq!(values[1], (Scalar::Float64(1.0), Status::Present));
        // A record cut inside its tag is corrupt, not a record of no tag.
        let mut cut = record(&version, Some([7; 8]), &b)[..4 + 1 + 8 + 4].to_vec();
        let len = (cut.len() - 4) as u32;
        cut[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(decode(&spec, &version, &cut), Decoded::Corrupt));
        assert!(matches!(
            decode(&spec, &version, &bytes[..bytes.len() - 1]),
            Decoded::Corrupt
        ));
        // Tile 0 is outside the 20 µs window at 25 (tiles 1 and 2): count 0, still present.
        let out = evaluate(&spec, &[(0, spec.empty())], 25, &both);
        assert_eq!(out[0], (Scalar::Int64(0), Status::Present));
        assert_eq!(evaluate(&spec, &[], 25, &both)[1], (Scalar::Null, Status::NotFound));
    }
}
