//! Lookups: entity keys in, feature values with a status and an event time out.
//!
//! The statuses follow DESIGN.md's point-in-time rule at the clock's instant `now` (an
//! argument, so tests and parity checks inject it):
//!
//! - `PRESENT`: a row of this view version with `event_timestamp <= now`, within the ttl
//!   (`event_timestamp >= now - ttl`), and with `as_of: available`, `created <= now`.
//! - `OUTSIDE_MAX_AGE`: a row exists but is older than the ttl allows. Its values are not
//!   returned: a stale value is never served as present.
//! - `NOT_FOUND`: no row, a row from another view version (counted in
//!   [`LookupStats::other_version`]), a damaged row (counted), or a row not yet valid at `now`.
//!
//! Each distinct store key is read once, however often a request repeats it, and all keys of
//! a request go to the store in one [`OnlineStore::read`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::layout::{Decoded, KeyValue, Scalar, ViewLayout};
use crate::store::OnlineStore;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Present,
    NotFound,
    OutsideMaxAge,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NotFound => "NOT_FOUND",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// Features of one view to look up: indices into the layout's features, in output order.
#[derive(Debug, Clone)]
pub struct Selection {
    pub layout: Arc<ViewLayout>,
    pub features: Vec<usize>,
}

/// One looked-up feature value.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureValue {
    /// `Scalar::Null` unless the status is `PRESENT` (a present value may be null too).
    pub value: Scalar,
    pub status: Status,
    /// The row's event time (µs) when a row of this version was found, also when too old.
    pub event_timestamp: Option<i64>,
}

impl FeatureValue {
    /// No value found.
    pub const NOT_FOUND: FeatureValue = FeatureValue {
        value: Scalar::Null,
        status: Status::NotFound,
        event_timestamp: None,
    };
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Distinct store keys read.
    pub keys_read: usize,
    /// Values written under another view version or format: read as NOT_FOUND.
    pub other_version: usize,
    /// Values of this version that did not parse: read as NOT_FOUND.
    pub corrupt: usize,
}

#[derive(Debug, Clone)]
pub struct Lookup {
    /// Per entity, the selected features in selection order.
    pub rows: Vec<Vec<FeatureValue>>,
    pub stats: LookupStats,
}

/// An entity key by join-key name: `driver_id = 1001`.
pub type Entity = HashMap<String, KeyValue>;

/// An entity's join keys by name: a map ([`Entity`]), or a row of the key slots a serving
/// plan laid out once for its selection (no map per request).
pub trait EntityKeys {
    fn key(&self, name: &str) -> Option<&KeyValue>;
}

impl EntityKeys for Entity {
    fn key(&self, name: &str) -> Option<&KeyValue> {
        self.get(name)
    }
}

/// Looks up `selections` for every entity, as of `now` (µs since the epoch).
pub async fn lookup<E: EntityKeys + Sync>(
    store: &dyn OnlineStore,
    selections: &[Selection],
    entities: &[E],
    now: i64,
) -> Result<Lookup> {
    // Distinct keys, and for each (entity, selection) the index of its key. Row views' keys
    // and aggregated views' keys are read apart (values and tile maps).
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut tile_index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut tile_keys: Vec<Vec<u8>> = Vec::new();
    let mut slots = Vec::with_capacity(entities.len() * selections.len());
    for (row, entity) in entities.iter().enumerate() {
        for s in selections {
            let key_values = s
                .layout
                .keys
                .iter()
                .map(|(name, ty)| match entity.key(name) {
                    Some(v) if v.key_type() == *ty => Ok(v.clone()),
                    Some(v) => Err(Error::KeyType {
                        entity: row + 1,
                        key: name.clone(),
                        value: v.to_string(),
                        found: v.key_type(),
                        view: s.layout.view.clone(),
                        expected: *ty,
                    }),
                    None => Err(Error::MissingKey {
                        entity: row + 1,
                        key: name.clone(),
                        view: s.layout.view.clone(),
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            let key = s.layout.key(&key_values)?;
            let (index, list) = match s.layout.tiles {
                Some(_) => (&mut tile_index, &mut tile_keys),
                None => (&mut index, &mut keys),
            };
            let i = match index.get(&key) {
                Some(&i) => i,
                None => {
                    index.insert(key.clone(), list.len());
                    list.push(key);
                    list.len() - 1
                }
            };
            slots.push(i);
        }
    }
    let (values, tiles) = futures::future::try_join(
        async {
            if keys.is_empty() {
                Ok(Vec::new())
            } else {
                store.read(&keys).await
            }
        },
        async {
            if tile_keys.is_empty() {
                Ok(Vec::new())
            } else {
                store.read_tiles(&tile_keys).await
            }
        },
    )
    .await?;
    if values.len() != keys.len() || tiles.len() != tile_keys.len() {
        return Err(Error::Internal(format!(
            "{} answered {} values for {} keys",
            store.describe(),
            values.len() + tiles.len(),
            keys.len() + tile_keys.len()
        )));
    }

    let mut stats = LookupStats {
        keys_read: keys.len() + tile_keys.len(),
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(entities.len());
    let mut slot = slots.into_iter();
    for _ in entities {
        let mut out = Vec::new();
        for s in selections {
            if let Some(spec) = &s.layout.tiles {
                let map = slot.next().and_then(|i| tiles.get(i)).map_or(&[][..], Vec::as_slice);
                let values = aggregated(spec, s.layout.version_bytes(), map, now, &s.features, &mut stats);
                out.extend(values.into_iter().map(|(value, status)| FeatureValue {
                    value,
                    status,
                    event_timestamp: None,
                }));
                continue;
            }
            let raw = slot.next().and_then(|i| values[i].as_deref());
            let found = raw.map(|bytes| s.layout.decode(bytes));
            let (status, row) = match found {
                None => (Status::NotFound, None),
                Some(Decoded::OtherVersion) => {
                    stats.other_version += 1;
                    (Status::NotFound, None)
                }
                Some(Decoded::Corrupt) => {
                    stats.corrupt += 1;
                    (Status::NotFound, None)
                }
                Some(Decoded::Row(row)) => (status_at(&s.layout, row.event_ts, row.created, now), Some(row)),
            };
            for &f in &s.features {
                let value = match (&row, status) {
                    (Some(row), Status::Present) => row.values.get(f).cloned().unwrap_or(Scalar::Null),
                    _ => Scalar::Null,
                };
                out.push(FeatureValue {
                    value,
                    status,
                    event_timestamp: row.as_ref().filter(|_| status != Status::NotFound).map(|r| r.event_ts),
                });
            }
        }
        rows.push(out);
    }
    Ok(Lookup { rows, stats })
}

/// `features` of an aggregated view for one entity from its tile map: the tiles of this
/// version merged per feature over the window at `now` ([`crate::tiles::evaluate`]).
fn aggregated(
    spec: &crate::tiles::TileSpec,
    version: &[u8; 8],
    map: &[(Vec<u8>, Vec<u8>)],
    now: i64,
    features: &[usize],
    stats: &mut LookupStats,
) -> Vec<(Scalar, Status)> {
    let mut tiles = Vec::with_capacity(map.len());
    for (field, value) in map {
        let Some(index) = crate::tiles::tile_index(field) else {
            stats.corrupt += 1;
            continue;
        };
        match crate::tiles::decode(spec, version, value) {
            crate::tiles::Decoded::States(Some(states)) => tiles.push((index, states)),
            crate::tiles::Decoded::States(None) => stats.other_version += 1,
            crate::tiles::Decoded::Corrupt => stats.corrupt += 1,
        }
    }
    crate::tiles::evaluate(spec, &tiles, now, features)
}

/// The status of a stored row at `now`, by DESIGN.md's candidate rule.
pub fn status_at(layout: &ViewLayout, event_ts: i64, created: Option<i64>, now: i64) -> Status {
    let landed = match layout.as_of {
        skewless_defs::AsOf::Event => true,
        skewless_defs::AsOf::Available => created.is_some_and(|c| c <= now),
    };
    if event_ts > now || !landed {
        return Status::NotFound;
    }
    match layout.ttl_micros {
        Some(ttl) if event_ts < now.saturating_sub(ttl) => Status::OutsideMaxAge,
        _ => Status::Present,
    }
}
