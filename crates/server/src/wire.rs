//! The JSON of both APIs, read and written without building JSON trees.
//!
//! A lookup's answer is serialized straight from the serving core's [`GetOutput`] into the
//! response bytes, and an entity's fields are read straight into the `name = text` pairs the
//! core parses: per request, only the bytes of the answer are allocated, not a map per value.
//! The shapes are those documented in `docs/server.md` (and tested in `tests/it`).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use skewless_online::{FeatureValue, Given, GivenValue};
use skewless_serving::core::GetOutput;
use skewless_serving::json::{InstantJson, ScalarJson};

use crate::failure::Malformed;

/// Feast reports missing values with the epoch as their event time.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// One entity of `POST /v1/features`: its fields (join keys and request fields), each as its
/// text and the JSON kind it came as, for the serving core's one input rule
/// ([`skewless_online::input`]).
#[derive(Debug)]
pub struct EntityFields(pub Vec<(String, GivenValue)>);

impl<'de> Deserialize<'de> for EntityFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntityVisitor)
    }
}

struct EntityVisitor;

impl<'de> Visitor<'de> for EntityVisitor {
    type Value = EntityFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of entity fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntityFields, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(FieldValue(&name))?;
            fields.push((name, value));
        }
        Ok(EntityFields(fields))
    }
}

/// One field's value and kind; anything but a number, string or boolean is an error naming it.
pub struct FieldValue<'a>(pub &'a str);

impl<'de> DeserializeSeed<'de> for FieldValue<'_> {
    type Value = GivenValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<GivenValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn given(text: String, given: Given) -> GivenValue {
    GivenValue { text, given }
}

impl<'de> Visitor<'de> for FieldValue<'_> {
    type Value = GivenValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entity field `{}`: a number, string or boolean", self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<GivenValue, E> {
        Ok(given(v.to_string(), Given::String))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<GivenValue, E> {
        Ok(given(v, Given::String))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<GivenValue, E> {
        Ok(given(v.to_string(), Given::Number))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<GivenValue, E> {
        Ok(given(v.to_string(), Given::Number))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<GivenValue, E> {
        // As JSON writes it: `3.0` stays `3.0` and `-0` becomes `-0.0`, so neither is taken
        // for an integer.
        let text = serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        Ok(given(text, Given::Number))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<GivenValue, E> {
        Ok(given(v.to_string(), Given::Bool))
    }
}

/// A JSON value as the serving core reads it: its text and kind.
pub(crate) fn given_value(field: &str, value: &serde_json::Value) -> Result<GivenValue, Malformed> {
    use serde_json::Value;
    match value {
        Value::String(s) => Ok(given(s.clone(), Given::String)),
        Value::Number(n) => Ok(given(n.to_string(), Given::Number)),
        Value::Bool(b) => Ok(given(b.to_string(), Given::Bool)),
        other => Err(Malformed::NotAScalar {
            field: field.to_string(),
            found: other.clone(),
        }),
    }
}

/// A JSON object that says no key twice (serde_json's map keeps the last silently; which of
/// two values was meant is a guess). For `#[serde(deserialize_with)]`.
pub fn unique_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    deserializer.deserialize_map(UniqueMap)
}

struct UniqueMap;

impl<'de> Visitor<'de> for UniqueMap {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("`{key}` is given twice")));
            }
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// How a feature is named in an answer: `feature`, or `view__feature` with full names.
fn write_name(view: &str, feature: &str, full: bool) -> String {
    if full {
        format!("{view}__{feature}")
    } else {
        feature.to_string()
    }
}

/// The answer of `POST /v1/features`.
pub struct OwnResponse<'a> {
    pub found: &'a GetOutput,
    pub full_names: bool,
    pub applied_seq: u64,
}

impl Serialize for OwnResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<String> = self
            .found
            .features
            .iter()
            .map(|f| write_name(&f.view, &f.feature, self.full_names))
            .collect();
        // The features' order in every entity's object, found once: by name. Names are
        // unique: a request whose features share one is refused before it gets here.
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| names[a].cmp(&names[b]));
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("applied_version", &self.applied_seq)?;
        map.serialize_entry("at", &InstantJson(self.found.at))?;
        map.serialize_entry(
            "results",
            &Results {
                found: self.found,
                names: &names,
                order: &order,
            },
        )?;
        map.serialize_entry("versions", &*self.found.served)?;
        map.end()
    }
}

struct Results<'a> {
    found: &'a GetOutput,
    names: &'a [String],
    order: &'a [usize],
}

impl Serialize for Results<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.found.rows.len()))?;
        for (entity, row) in self.found.entities.iter().zip(&self.found.rows) {
            seq.serialize_element(&EntityResult {
                entity,
                row,
                names: self.names,
                order: self.order,
            })?;
        }
        seq.end()
    }
}

struct EntityResult<'a> {
    entity: &'a [(String, skewless_online::Scalar)],
    row: &'a [FeatureValue],
    names: &'a [String],
    order: &'a [usize],
}

impl Serialize for EntityResult<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("entity", &EntityEcho(self.entity))?;
        map.serialize_entry(
            "features",
            &Features {
                row: self.row,
                names: self.names,
                order: self.order,
            },
        )?;
        map.end()
    }
}

struct EntityEcho<'a>(&'a [(String, skewless_online::Scalar)]);

impl Serialize for EntityEcho<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &ScalarJson(value))?;
        }
        map.end()
    }
}

/// One entity's features in `order` (by name; a name asked twice appears once).
struct Features<'a> {
    row: &'a [FeatureValue],
    names: &'a [String],
    order: &'a [usize],
}

impl Serialize for Features<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.order.len()))?;
        for &i in self.order {
            map.serialize_entry(&self.names[i], &Value(&self.row[i]))?;
        }
        map.end()
    }
}

/// `{"value", "status", "event_timestamp"}`.
struct Value<'a>(&'a FeatureValue);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event_timestamp", &self.0.event_timestamp.map(InstantJson))?;
        map.serialize_entry("status", self.0.status.name())?;
        map.serialize_entry("value", &ScalarJson(&self.0.value))?;
        map.end()
    }
}

/// The answer of `POST /get-online-features`: the join-key columns as given (each value
/// `PRESENT` at the epoch), then one column per feature.
pub struct FeastResponse<'a> {
    pub found: &'a GetOutput,
    pub full_names: bool,
    pub keys: &'a [(&'a String, &'a Vec<serde_json::Value>)],
}

impl Serialize for FeastResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<String> = self
            .keys
            .iter()
            .map(|(name, _)| (*name).clone())
            .chain(
                self.found
                    .features
                    .iter()
                    .map(|f| write_name(&f.view, &f.feature, self.full_names)),
            )
            .collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("metadata", &Metadata { feature_names: &names })?;
        map.serialize_entry("results", &FeastColumns(self))?;
        map.end()
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    feature_names: &'a [String],
}

struct FeastColumns<'a>(&'a FeastResponse<'a>);

impl Serialize for FeastColumns<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        let n = response.found.rows.len();
        let mut seq = serializer.serialize_seq(Some(response.keys.len() + response.found.features.len()))?;
        for (_, values) in response.keys {
            seq.serialize_element(&KeyColumn { values, n })?;
        }
        for i in 0..response.found.features.len() {
            seq.serialize_element(&FeatureColumn {
                rows: &response.found.rows,
                i,
            })?;
        }
        seq.end()
    }
}

struct KeyColumn<'a> {
    values: &'a [serde_json::Value],
    n: usize,
}

impl Serialize for KeyColumn<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event_timestamps", &vec![EPOCH; self.n])?;
        map.serialize_entry("statuses", &vec!["PRESENT"; self.n])?;
        map.serialize_entry("values", self.values)?;
        map.end()
    }
}

struct FeatureColumn<'a> {
    rows: &'a [Vec<FeatureValue>],
    i: usize,
}

impl Serialize for FeatureColumn<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let column = || self.rows.iter().map(|row| &row[self.i]);
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry(
            "event_timestamps",
            &column().map(|v| FeastTimestamp(v.event_timestamp)).collect::<Vec<_>>(),
        )?;
        map.serialize_entry("statuses", &column().map(|v| v.status.name()).collect::<Vec<_>>())?;
        map.serialize_entry("values", &column().map(|v| ScalarJson(&v.value)).collect::<Vec<_>>())?;
        map.end()
    }
}

/// An event time, or the epoch for a missing value (as Feast writes it).
struct FeastTimestamp(Option<i64>);

impl Serialize for FeastTimestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => InstantJson(t).serialize(serializer),
            None => serializer.serialize_str(EPOCH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_fields_keep_their_text_and_kind_and_bad_ones_are_named() {
        let fields: EntityFields = serde_json::from_str(
            r#"{"driver_id": 1001, "tier": "gold", "vip": true, "km": 3.0, "x": -2.5e3, "z": -0}"#,
        )
        .unwrap();
        assert_eq!(
            fields.0,
            [
                ("driver_id", "1001", Given::Number),
                ("tier", "gold", Given::String),
                ("vip", "true", Given::Bool),
                ("km", "3.0", Given::Number),
                ("x", "-2500.0", Given::Number),
                ("z", "-0.0", Given::Number),
            ]
            .map(|(a, b, kind)| (a.to_string(), given(b.to_string(), kind)))
        );
        let twice = serde_json::from_str::<Wrapped>(r#"{"m": {"a": 1, "a": 2}}"#).unwrap_err();
        assert!(twice.to_string().contains("`a` is given twice"), "{twice}");
        assert_eq!(
            serde_json::from_str::<Wrapped>(r#"{"m": {"a": 1, "b": 2}}"#)
                .unwrap()
                .m
                .len(),
            2
        );
        for bad in [
            r#"{"driver_id": null}"#,
            r#"{"driver_id": [1]}"#,
            r#"{"driver_id": {"a": 1}}"#,
        ] {
            let e = serde_json::from_str::<EntityFields>(bad).unwrap_err().to_string();
            assert!(e.contains("entity field `driver_id`"), "{bad}: {e}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Wrapped {
        #[serde(deserialize_with = "unique_map")]
        m: serde_json::Map<String, serde_json::Value>,
    }
}
