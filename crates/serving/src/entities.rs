//! A lookup's entities, typed as they are read: one slot per join key and per request field
//! a plan reads, laid out once per selection ([`FieldTable`]).
//!
//! A reader (the server's JSON of both APIs, a command line's `name=value` pairs) hands each
//! value to [`Entities::set`] as a [`Given`]; the one input rule
//! ([`skewless_online::input`]) types it by the field's declared type there and then. No
//! value becomes text first, and a request builds no map: names resolve through the plan's
//! table.

use skewless_defs::{FeatureType, KeyType};
use skewless_online::{EntityKeys, Given, KeyValue, Scalar};

use crate::core::{EntityProblem, RequestError};

/// Where an entity field goes, and its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A join key of a view the plan reads.
    Key { slot: usize, ty: KeyType },
    /// A request field of an on-demand view the plan evaluates.
    Request { slot: usize, ty: FeatureType },
}

/// The fields an entity of one plan may carry, by name.
#[derive(Debug, Default)]
pub struct FieldTable {
    /// Sorted by name; a join key wins over a request field of the same name.
    by_name: Vec<(String, Field)>,
    keys: usize,
    requests: usize,
}

impl FieldTable {
    /// The table of these join keys and request fields (each list without repeats).
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a String, KeyType)>,
        requests: impl IntoIterator<Item = (&'a String, FeatureType)>,
    ) -> Self {
        let mut by_name: Vec<(String, Field)> = Vec::new();
        for (slot, (name, ty)) in keys.into_iter().enumerate() {
            by_name.push((name.clone(), Field::Key { slot, ty }));
        }
        let key_count = by_name.len();
        let mut requests_count = 0;
        for (name, ty) in requests {
            if by_name.iter().any(|(n, _)| n == name) {
                continue;
            }
            by_name.push((
                name.clone(),
                Field::Request {
                    slot: requests_count,
                    ty,
                },
            ));
            requests_count += 1;
        }
        by_name.sort_by(|a, b| a.0.cmp(&b.0));
        FieldTable {
            by_name,
            keys: key_count,
            requests: requests_count,
        }
    }

    /// The field named `name`, with the name as the table holds it (borrowed for as long as
    /// the table, not the request's text).
    pub fn find(&self, name: &str) -> Option<(&str, Field)> {
        self.by_name
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| (self.by_name[i].0.as_str(), self.by_name[i].1))
    }

    /// [`FieldTable::find`], or the problem that names the fields there are.
    pub fn named(&self, name: &str) -> Result<(&str, Field), EntityProblem> {
        self.find(name).ok_or_else(|| EntityProblem::UnknownField {
            field: name.to_string(),
            known: self.by_name.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// The join keys' and request fields' names, sorted, with their fields.
    pub fn fields(&self) -> impl Iterator<Item = (&str, Field)> {
        self.by_name.iter().map(|(n, f)| (n.as_str(), *f))
    }
}

/// Entities typed by one plan's [`FieldTable`], in request order.
#[derive(Debug)]
pub struct Entities<'p> {
    table: &'p FieldTable,
    count: usize,
    /// `count × table.keys`, row-major.
    keys: Vec<Option<KeyValue>>,
    /// `count × table.requests`, row-major.
    requests: Vec<Option<Scalar>>,
}

impl<'p> Entities<'p> {
    /// No entities yet; room for `capacity`.
    pub fn new(table: &'p FieldTable, capacity: usize) -> Self {
        Entities {
            table,
            count: 0,
            keys: Vec::with_capacity(capacity * table.keys),
            requests: Vec::with_capacity(capacity * table.requests),
        }
    }

    /// Adds an entity with no field set; returns its index (from 0).
    pub fn add(&mut self) -> usize {
        self.keys.extend(std::iter::repeat_n(None, self.table.keys));
        self.requests.extend(std::iter::repeat_n(None, self.table.requests));
        self.count += 1;
        self.count - 1
    }

    /// Removes the last entity added.
    pub fn pop(&mut self) {
        if self.count > 0 {
            self.count -= 1;
            self.keys.truncate(self.count * self.table.keys);
            self.requests.truncate(self.count * self.table.requests);
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn table(&self) -> &'p FieldTable {
        self.table
    }

    /// Sets field `name` of entity `entity` to `value`, typed by the field's declaration.
    pub fn set(&mut self, entity: usize, name: &str, value: Given<'_>) -> Result<(), RequestError> {
        let (_, field) = self.table.named(name).map_err(|problem| bad(entity, problem))?;
        self.set_field(entity, name, field, value)
    }

    /// [`Entities::set`] for a field already looked up (a column of values for one field).
    pub fn set_field(&mut self, entity: usize, name: &str, field: Field, value: Given<'_>) -> Result<(), RequestError> {
        let typed = |error| {
            bad(
                entity,
                EntityProblem::Value {
                    field: name.to_string(),
                    error,
                },
            )
        };
        // An entity says each field once: which of two values would count is a guess.
        let twice = || {
            bad(
                entity,
                EntityProblem::Twice {
                    field: name.to_string(),
                },
            )
        };
        match field {
            Field::Key { slot, ty } => {
                let cell = &mut self.keys[entity * self.table.keys + slot];
                if cell.is_some() {
                    return Err(twice());
                }
                *cell = Some(KeyValue::from_given(value, ty).map_err(typed)?);
            }
            Field::Request { slot, ty } => {
                let cell = &mut self.requests[entity * self.table.requests + slot];
                if cell.is_some() {
                    return Err(twice());
                }
                *cell = Some(Scalar::from_given(value, ty).map_err(typed)?);
            }
        }
        Ok(())
    }

    /// Entity `entity`'s join keys, as a lookup reads them.
    pub(crate) fn keys_of(&self, entity: usize) -> KeyRow<'_> {
        let width = self.table.keys;
        KeyRow {
            table: self.table,
            keys: &self.keys[entity * width..(entity + 1) * width],
        }
    }

    /// Entity `entity`'s value of request field slot `slot`.
    pub(crate) fn request(&self, entity: usize, slot: usize) -> Option<&Scalar> {
        self.requests[entity * self.table.requests + slot].as_ref()
    }

    /// Entity `entity`'s fields as given, typed, sorted by name (the answer's echo).
    pub fn echo(&self, entity: usize) -> Vec<(String, Scalar)> {
        self.table
            .fields()
            .filter_map(|(name, field)| {
                let value = match field {
                    Field::Key { slot, .. } => match &self.keys[entity * self.table.keys + slot] {
                        Some(KeyValue::Int64(i)) => Scalar::Int64(*i),
                        Some(KeyValue::String(s)) => Scalar::String(s.clone()),
                        None => return None,
                    },
                    Field::Request { slot, .. } => self.request(entity, slot)?.clone(),
                };
                Some((name.to_string(), value))
            })
            .collect()
    }
}

fn bad(entity: usize, problem: EntityProblem) -> RequestError {
    RequestError::BadEntity {
        entity: entity + 1,
        problem,
    }
}

/// One entity's join keys, found by name through the plan's table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRow<'a> {
    table: &'a FieldTable,
    keys: &'a [Option<KeyValue>],
}

impl EntityKeys for KeyRow<'_> {
    fn key(&self, name: &str) -> Option<&KeyValue> {
        match self.table.find(name) {
            Some((_, Field::Key { slot, .. })) => self.keys[slot].as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FieldTable {
        let (driver, tier, km) = ("driver_id".to_string(), "tier".to_string(), "km".to_string());
        FieldTable::new(
            [(&driver, KeyType::Int64), (&tier, KeyType::String)],
            [(&km, FeatureType::Float64), (&driver, FeatureType::Int64)],
        )
    }

    #[test]
    fn values_are_typed_into_their_slots_and_echoed_by_name() {
        let table = table();
        let mut entities = Entities::new(&table, 2);
        for (i, (id, tier)) in [(1001, "gold"), (7, "silver")].into_iter().enumerate() {
            assert_eq!(entities.add(), i);
            entities.set(i, "tier", Given::Str(tier)).unwrap();
            entities.set(i, "driver_id", Given::Int(id)).unwrap();
        }
        entities.set(1, "km", Given::Float(3.5)).unwrap();
        assert_eq!(entities.len(), 2);
        assert_eq!(entities.keys_of(0).key("driver_id"), Some(&KeyValue::Int64(1001)));
        assert_eq!(
            entities.keys_of(1).key("tier"),
            Some(&KeyValue::String("silver".into()))
        );
        assert_eq!(entities.keys_of(1).key("km"), None, "a request field is not a key");
        assert_eq!(entities.request(0, 0), None);
        assert_eq!(entities.request(1, 0), Some(&Scalar::Float64(3.5)));
        assert_eq!(
            entities.echo(1),
            [
                ("driver_id".to_string(), Scalar::Int64(7)),
                ("km".to_string(), Scalar::Float64(3.5)),
                ("tier".to_string(), Scalar::String("silver".into())),
            ]
        );
    }

    #[test]
    fn bad_fields_name_the_entity_and_the_field() {
        let table = table();
        let mut entities = Entities::new(&table, 1);
        entities.add();
        entities.add();
        let problem = |e: RequestError| match e {
            RequestError::BadEntity { entity, problem } => (entity, problem),
            other => panic!("{other:?}"),
        };
        let (entity, e) = problem(entities.set(1, "driver_id", Given::Str("1001")).unwrap_err());
        assert_eq!(entity, 2);
        assert!(
            matches!(e, EntityProblem::Value { ref field, .. } if field == "driver_id"),
            "{e:?}"
        );
        let (_, e) = problem(entities.set(0, "rating", Given::Int(5)).unwrap_err());
        assert_eq!(
            e,
            EntityProblem::UnknownField {
                field: "rating".into(),
                known: vec!["driver_id".into(), "km".into(), "tier".into()],
            }
        );
        entities.set(0, "km", Given::Int(2)).unwrap();
        let (_, e) = problem(entities.set(0, "km", Given::Int(2)).unwrap_err());
        assert_eq!(e, EntityProblem::Twice { field: "km".into() });
        let (_, e) = problem(entities.set(0, "tier", Given::Null).unwrap_err());
        assert_eq!(e.to_string(), "`tier`: expected a string, found null");
    }
}
