//! The JSON of both APIs, read and written without building JSON trees.
//!
//! A lookup's answer is serialized straight from the serving core's [`GetOutput`] into the
//! response bytes, and an entity's fields are read straight into the `name = text` pairs the
//! core parses: per request, only the bytes of the answer are allocated, not a map per value.
//! The shapes are those documented in `docs/server.md` (and tested in `tests/it`).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use skewless_online::{FeatureValue, Given, GivenKind};
use skewless_serving::core::EntityProblem;
use skewless_serving::core::GetOutput;
use skewless_serving::json::{InstantJson, ScalarJson};
use skewless_serving::{Entities, Field, FieldTable};

use crate::failure::Malformed;

/// Feast reports missing values with the epoch as their event time.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Why a lookup's entities were not read: the serving core's typed refusal (a field's
/// value, an unknown field, a field twice), too many entities, or a shape of Feast's columns.
#[derive(Debug)]
pub(crate) enum EntitiesRefused {
    Serving(skewless_serving::RequestError),
    TooMany { asked: usize },
    Malformed(Malformed),
}

/// Reads a lookup's `entities` straight into `entities`, typed by the plan's fields as each
/// value is read ([`skewless_serving::entities`]): the list of objects of `POST /v1/features`
/// (`columns: false`) or Feast's column-major object (`columns: true`). At most `limit`
/// entities are taken; past that the rest are only counted.
pub(crate) fn read_entities(
    json: &serde_json::value::RawValue,
    columns: bool,
    entities: &mut Entities<'_>,
    limit: usize,
) -> Result<(), EntitiesRefused> {
    let mut refused = None;
    let mut reader = serde_json::Deserializer::from_str(json.get());
    let read = if columns {
        Columns {
            entities,
            refused: &mut refused,
            limit,
        }
        .deserialize(&mut reader)
    } else {
        Rows {
            entities,
            refused: &mut refused,
            limit,
        }
        .deserialize(&mut reader)
    };
    match (read, refused) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(refused)) => Err(refused),
        (Err(e), None) => Err(EntitiesRefused::Malformed(Malformed::NotARequest(e))),
    }
}

/// The serde error that stands for a refusal recorded beside it.
fn stop<E: de::Error>(slot: &mut Option<EntitiesRefused>, refused: EntitiesRefused) -> E {
    *slot = Some(refused);
    E::custom("refused")
}

/// `[{field: value, …}, …]`.
struct Rows<'r, 'p> {
    entities: &'r mut Entities<'p>,
    refused: &'r mut Option<EntitiesRefused>,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`entities`: a list of objects of entity fields")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            if self.entities.len() == self.limit {
                let mut asked = self.limit;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {
                    asked += 1;
                }
                return match asked > self.limit {
                    true => Err(stop(self.refused, EntitiesRefused::TooMany { asked })),
                    false => Ok(()),
                };
            }
            let seed = Row {
                entities: &mut *self.entities,
                refused: &mut *self.refused,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
        }
    }
}

/// One entity's `{field: value, …}`.
struct Row<'r, 'p> {
    entities: &'r mut Entities<'p>,
    refused: &'r mut Option<EntitiesRefused>,
}

impl<'de> DeserializeSeed<'de> for Row<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of entity fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let entity = self.entities.add();
        let table = self.entities.table();
        while let Some(name) = map.next_key_seed(FieldName(table))? {
            let field = match name {
                Ok(found) => found,
                Err(problem) => return Err(stop(self.refused, unknown(entity, problem))),
            };
            map.next_value_seed(FieldValue {
                entities: &mut *self.entities,
                refused: &mut *self.refused,
                entity,
                field,
            })?;
        }
        Ok(())
    }
}

/// A field's name, found in the plan's table (the name borrowed from it), or the unknown
/// name.
struct FieldName<'t>(&'t FieldTable);

/// An unknown field of entity `entity` (from 0).
fn unknown(entity: usize, problem: EntityProblem) -> EntitiesRefused {
    EntitiesRefused::Serving(skewless_serving::RequestError::BadEntity {
        entity: entity + 1,
        problem,
    })
}

impl<'de, 't> DeserializeSeed<'de> for FieldName<'t> {
    type Value = Result<(&'t str, Field), EntityProblem>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'t> Visitor<'_> for FieldName<'t> {
    type Value = Result<(&'t str, Field), EntityProblem>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.named(name))
    }
}

/// One value of field `field` of entity `entity`, typed into its slot as it is read.
struct FieldValue<'r, 'p> {
    entities: &'r mut Entities<'p>,
    refused: &'r mut Option<EntitiesRefused>,
    entity: usize,
    field: (&'p str, Field),
}

impl FieldValue<'_, '_> {
    fn set<E: de::Error>(self, given: Given<'_>) -> Result<(), E> {
        let (name, field) = self.field;
        self.entities
            .set_field(self.entity, name, field, given)
            .map_err(|e| stop(self.refused, EntitiesRefused::Serving(e)))
    }
}

impl<'de> DeserializeSeed<'de> for FieldValue<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldValue<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entity field `{}`: a number, string or boolean", self.field.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.set(Given::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.set(Given::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(i) => self.set(Given::Int(i)),
            Err(_) => self.set(Given::UInt(v)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.set(Given::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.set(Given::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.set(Given::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.set(Given::Nested(GivenKind::List))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.set(Given::Nested(GivenKind::Object))
    }
}

/// Feast's `{field: [value per entity, …], …}`: every column as long as the first.
struct Columns<'r, 'p> {
    entities: &'r mut Entities<'p>,
    refused: &'r mut Option<EntitiesRefused>,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Columns<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Columns<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`entities`: an object of columns (field: [values])")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let table = self.entities.table();
        // The first column's name and length: every other column must match it.
        let mut first: Option<(String, usize)> = None;
        while let Some(name) = map.next_key::<String>()? {
            // A column names a field of every entity: an unknown one is reported for the first.
            let field = match table.named(&name) {
                Ok(found) => found,
                Err(problem) => return Err(stop(self.refused, unknown(0, problem))),
            };
            let values = map.next_value_seed(Column {
                entities: &mut *self.entities,
                refused: &mut *self.refused,
                field,
                len: first.as_ref().map(|(_, n)| *n),
                limit: self.limit,
            })?;
            match &first {
                None => first = Some((name, values)),
                Some((first, first_values)) if *first_values != values => {
                    let ragged = Malformed::Ragged {
                        column: name,
                        values,
                        first: first.clone(),
                        first_values: *first_values,
                    };
                    return Err(stop(self.refused, EntitiesRefused::Malformed(ragged)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// One Feast column: its values typed into entity after entity. The first column adds the
/// entities (`len: None`); a later one fills them and answers how many values it held.
struct Column<'r, 'p> {
    entities: &'r mut Entities<'p>,
    refused: &'r mut Option<EntitiesRefused>,
    field: (&'p str, Field),
    len: Option<usize>,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for Column<'_, '_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Column<'_, '_> {
    fn not_a_list<E: de::Error>(self, found: serde_json::Value) -> Result<usize, E> {
        let column = self.field.0.to_string();
        Err(stop(
            self.refused,
            EntitiesRefused::Malformed(Malformed::NotAList { column, found }),
        ))
    }
}

impl<'de> Visitor<'de> for Column<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entities.{}: a list of values", self.field.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut i = 0;
        loop {
            let room = self.len.unwrap_or(self.limit);
            if i == room {
                // Past the first column's length (or the limit): only counted, for the error.
                let mut values = i;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {
                    values += 1;
                }
                if self.len.is_none() && values > self.limit {
                    return Err(stop(self.refused, EntitiesRefused::TooMany { asked: values }));
                }
                return Ok(values);
            }
            if self.len.is_none() {
                self.entities.add();
            }
            let seed = FieldValue {
                entities: &mut *self.entities,
                refused: &mut *self.refused,
                entity: i,
                field: self.field,
            };
            if seq.next_element_seed(seed)?.is_none() {
                if self.len.is_none() {
                    // The entity added for a value that did not come.
                    self.entities.pop();
                }
                return Ok(i);
            }
            i += 1;
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.not_a_list(v.into())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        self.not_a_list(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        self.not_a_list(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<usize, E> {
        self.not_a_list(v.into())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<usize, E> {
        self.not_a_list(v.into())
    }

    fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
        self.not_a_list(serde_json::Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<usize, A::Error> {
        let found = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.not_a_list(found)
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

/// The answer of `POST /get-online-features`: the join-key columns as given (typed, in
/// name order; each value `PRESENT` at the epoch), then one column per feature.
pub struct FeastResponse<'a> {
    pub found: &'a GetOutput,
    pub full_names: bool,
}

impl Serialize for FeastResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<String> = self
            .found
            .key_names
            .iter()
            .cloned()
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
        let keys = &response.found.key_names;
        let mut seq = serializer.serialize_seq(Some(keys.len() + response.found.features.len()))?;
        for name in keys.iter() {
            seq.serialize_element(&KeyColumn {
                name,
                entities: &response.found.entities,
                n,
            })?;
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
    name: &'a str,
    /// Per entity, its fields sorted by name.
    entities: &'a [Vec<(String, skewless_online::Scalar)>],
    n: usize,
}

impl Serialize for KeyColumn<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event_timestamps", &vec![EPOCH; self.n])?;
        map.serialize_entry("statuses", &vec!["PRESENT"; self.n])?;
        let values: Vec<ScalarJson> = self
            .entities
            .iter()
            .map(|fields| {
                let value = fields
                    .binary_search_by(|(n, _)| n.as_str().cmp(self.name))
                    .map_or(&skewless_online::Scalar::Null, |i| &fields[i].1);
                ScalarJson(value)
            })
            .collect();
        map.serialize_entry("values", &values)?;
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

    fn table() -> FieldTable {
        use skewless_defs::{FeatureType as F, KeyType as K};
        let names = ["driver_id", "tier", "vip", "km", "x", "z"].map(String::from);
        FieldTable::new(
            [(&names[0], K::Int64), (&names[1], K::String)],
            [
                (&names[2], F::Bool),
                (&names[3], F::Float64),
                (&names[4], F::Float64),
                (&names[5], F::Float64),
            ],
        )
    }

    fn read(json: &str, columns: bool, table: &FieldTable, limit: usize) -> Result<Vec<String>, EntitiesRefused> {
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
        let mut entities = Entities::new(table, 2);
        read_entities(&raw, columns, &mut entities, limit)?;
        Ok((0..entities.len()).map(|i| format!("{:?}", entities.echo(i))).collect())
    }

    fn refusal(result: Result<Vec<String>, EntitiesRefused>) -> String {
        match result {
            Ok(echo) => panic!("read: {echo:?}"),
            Err(EntitiesRefused::Serving(e)) => e.to_string(),
            Err(EntitiesRefused::Malformed(e)) => e.to_string(),
            Err(EntitiesRefused::TooMany { asked }) => format!("too many: {asked}"),
        }
    }

    #[test]
    fn entities_are_typed_as_they_are_read_and_bad_ones_are_named() {
        use skewless_online::Scalar;
        let table = table();
        let typed = |pairs: &[(&str, Scalar)]| {
            format!(
                "{:?}",
                pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect::<Vec<_>>()
            )
        };
        let rows = read(
            r#"[{"driver_id": 1001, "tier": "gold", "vip": true, "km": 3.0, "x": -2.5e3, "z": -0},
                {"tier": "g\u00f6ld", "driver_id": 7}]"#,
            false,
            &table,
            10,
        )
        .unwrap();
        assert_eq!(
            rows,
            [
                typed(&[
                    ("driver_id", Scalar::Int64(1001)),
                    ("km", Scalar::Float64(3.0)),
                    ("tier", Scalar::String("gold".into())),
                    ("vip", Scalar::Bool(true)),
                    ("x", Scalar::Float64(-2500.0)),
                    ("z", Scalar::Float64(-0.0)),
                ]),
                typed(&[("driver_id", Scalar::Int64(7)), ("tier", Scalar::String("göld".into()))]),
            ]
        );
        // Feast's columns give the same entities.
        let columns = read(
            r#"{"tier": ["gold", "göld"], "driver_id": [1001, 7]}"#,
            true,
            &table,
            10,
        )
        .unwrap();
        assert_eq!(columns[1], rows[1]);

        for (json, columns, message) in [
            (
                r#"[{"driver_id": null}]"#,
                false,
                "entity 1: `driver_id`: expected an int64, found null",
            ),
            (
                r#"[{}, {"driver_id": [1]}]"#,
                false,
                "entity 2: `driver_id`: expected an int64, found a list",
            ),
            (
                r#"[{"tier": {"a": 1}}]"#,
                false,
                "entity 1: `tier`: expected a string, found an object",
            ),
            (
                r#"[{"driver_id": "1001"}]"#,
                false,
                "entity 1: `driver_id`: expected an int64 (a JSON number), found the string \"1001\"",
            ),
            (
                r#"[{"driver_id": 1.0}]"#,
                false,
                "entity 1: `driver_id`: expected an int64, found the number 1.0",
            ),
            (r#"[{"km": 1, "km": 2}]"#, false, "entity 1: `km`: given twice"),
            (
                r#"[{"rating": 1}]"#,
                false,
                "entity 1: `rating` is neither a join key nor a request field of the requested features (known: driver_id, km, tier, vip, x, z)",
            ),
            (r#"[{}, {}, {"x": 1}]"#, false, "too many: 3"),
            (r#"{"driver_id": [1, 2, 3]}"#, true, "too many: 3"),
            (
                r#"{"driver_id": [1, 2], "tier": ["a"]}"#,
                true,
                "entities.tier has 1 values but entities.driver_id has 2",
            ),
            (
                r#"{"driver_id": [1], "tier": ["a", "b", "c"]}"#,
                true,
                "entities.tier has 3 values but entities.driver_id has 1",
            ),
            (
                r#"{"driver_id": 5}"#,
                true,
                "entities.driver_id: expected a list of values, found 5",
            ),
            (
                r#"{"driver_id": {"a": [1]}}"#,
                true,
                "entities.driver_id: expected a list of values, found {\"a\":[1]}",
            ),
            (
                r#"{"driver_id": [1], "rating": [2]}"#,
                true,
                "entity 1: `rating` is neither a join key nor a request field of the requested features (known: driver_id, km, tier, vip, x, z)",
            ),
        ] {
            assert_eq!(refusal(read(json, columns, &table, 2)), message, "{json}");
        }
        // Not the shape at all: serde's words.
        let e = refusal(read(r#"{"driver_id": 1}"#, false, &table, 2));
        assert!(e.starts_with("the body is not a valid request"), "{e}");
    }

    #[test]
    fn objects_say_each_key_once() {
        let twice = serde_json::from_str::<Wrapped>(r#"{"m": {"a": 1, "a": 2}}"#).unwrap_err();
        assert!(twice.to_string().contains("`a` is given twice"), "{twice}");
        assert_eq!(
            serde_json::from_str::<Wrapped>(r#"{"m": {"a": 1, "b": 2}}"#)
                .unwrap()
                .m
                .len(),
            2
        );
    }

    #[derive(Debug, Deserialize)]
    struct Wrapped {
        #[serde(deserialize_with = "unique_map")]
        m: serde_json::Map<String, serde_json::Value>,
    }
}
