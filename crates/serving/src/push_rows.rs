//! Pushed rows in, one Arrow batch in the source's own schema out, or an error that names
//! the row and the field.
//!
//! Rows arrive as JSON objects (`/v1/push`, JSON lines), as Feast's column-major `df`, or as
//! Arrow batches (Arrow IPC, Parquet, CSV). Whatever the form, each value must be of its
//! column's type: no silent coercion (`"12"` is not a number, `1.5` is not an int64), and a
//! field that is not a column of the source is refused rather than dropped. Join keys and the
//! event time must be present. A row without an availability time (`created`) gets the
//! ingestion instant, so `as_of: available` views see it exactly from when it was knowable.
//!
//! JSON values: numbers for numeric columns (`"NaN"`, `"Infinity"`, `"-Infinity"` for the
//! non-finite floats, as skewless writes them); strings for string columns; for timestamps, an
//! RFC 3339 string (a naive one is UTC) or a number of seconds since the epoch.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use serde_json::{Map, Value};
use skewless_defs::Source;

use skewless_online::input::{self, Given, GivenKind, ValueError};

use crate::json::parse_instant;

/// A pushed row or field that cannot be taken, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The row's index in the push (from 0).
    pub row: Option<usize>,
    pub field: Option<String>,
    pub problem: InputProblem,
}

/// What is wrong with a pushed row or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    /// The field is not a column of the push source.
    UnknownField { source: String, columns: Vec<String> },
    /// A column the source requires is not given at all.
    NoColumn { source: String },
    /// A join key or the event time is null.
    MissingRequired,
    /// A value of a column that is not nullable is null.
    MissingNotNullable,
    /// A column of Feast's column-major `df` is not a list.
    NotAList,
    /// Columns of `df` of different lengths.
    Ragged {
        values: usize,
        first: String,
        first_values: usize,
    },
    /// A value (text or Arrow) that the column's type refuses.
    Value(skewless_online::input::ValueError),
    /// An Arrow value that cannot be cast to the column's type, as Arrow says.
    Cast { to: DataType, why: String },
    /// An instant out of the accepted range or too far ahead of the clock.
    Time(skewless_defs::instant::InstantError),
    /// Text that is not an accepted instant.
    InstantText(crate::json::InstantTextError),
    /// A column type that JSON cannot carry.
    NotInJson { ty: DataType },
    /// The availability column is not a timestamp.
    NotATimestamp { ty: DataType },
    /// Arrow refused to assemble the typed rows (a bug if it happens: the types were checked).
    Assemble(String),
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::UnknownField { source, columns } => write!(
                f,
                "not a column of source `{source}` (its columns: {})",
                columns.join(", ")
            ),
            InputProblem::NoColumn { source } => write!(f, "source `{source}` has no such column"),
            InputProblem::MissingRequired => f.write_str("missing: join keys and the event time are required"),
            InputProblem::MissingNotNullable => f.write_str("missing: the source's column is not nullable"),
            InputProblem::NotAList => f.write_str("expected a list of values (`df` is column-major)"),
            InputProblem::Ragged {
                values,
                first,
                first_values,
            } => write!(f, "{values} values, but column `{first}` has {first_values}"),
            InputProblem::Value(e) => write!(f, "{e}"),
            InputProblem::Cast { to, why } => write!(f, "cannot be read as {to}: {why}"),
            InputProblem::Time(e) => write!(f, "{e}"),
            InputProblem::InstantText(e) => write!(f, "{e}"),
            InputProblem::NotInJson { ty } => write!(
                f,
                "the source's column type {ty} cannot be pushed as JSON; push Arrow IPC or Parquet"
            ),
            InputProblem::NotATimestamp { ty } => write!(f, "the availability column is {ty}, expected a timestamp"),
            InputProblem::Assemble(why) => f.write_str(why),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.row, &self.field) {
            (Some(row), Some(field)) => write!(f, "row {row}, field `{field}`: {}", self.problem),
            (Some(row), None) => write!(f, "row {row}: {}", self.problem),
            (None, Some(field)) => write!(f, "field `{field}`: {}", self.problem),
            (None, None) => write!(f, "{}", self.problem),
        }
    }
}

impl std::error::Error for InputError {}

fn at(row: Option<usize>, field: Option<&str>, problem: InputProblem) -> InputError {
    InputError {
        row,
        field: field.map(str::to_string),
        problem,
    }
}

/// A row that cannot join the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// The field is given twice in the row.
    Twice { field: String },
    /// More rows than a push can hold.
    TooManyRows,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Twice { field } => write!(f, "`{field}` is given twice"),
            RowError::TooManyRows => f.write_str("too many rows"),
        }
    }
}

impl std::error::Error for RowError {}

/// JSON rows gathered column by column as they are read: per field, its values with their
/// row, and no map per row. A row as a map costs a key string and a tree node per field (the
/// 12 × its JSON that pushes of rows took); a cell here costs its value and a row number.
/// A field a row leaves out reads as null. A field given twice in one row is an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowColumns {
    rows: usize,
    /// By field name, in name order: `(row, value)`, rows ascending.
    columns: std::collections::BTreeMap<String, Vec<(u32, Value)>>,
}

impl RowColumns {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row of `(field, value)` pairs; the error names a field given twice (the
    /// columns are then left part-way through the row: discard them).
    pub fn push_row(&mut self, fields: impl IntoIterator<Item = (String, Value)>) -> Result<(), RowError> {
        let row = u32::try_from(self.rows).map_err(|_| RowError::TooManyRows)?;
        for (field, value) in fields {
            match self.columns.get_mut(&field) {
                Some(cells) if cells.last().is_some_and(|(r, _)| *r == row) => {
                    return Err(RowError::Twice { field });
                }
                Some(cells) => cells.push((row, value)),
                None => {
                    self.columns.insert(field, vec![(row, value)]);
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The fields any row names, each with the first row that names it.
    fn fields(&self) -> impl Iterator<Item = (&str, usize)> {
        self.columns
            .iter()
            .map(|(name, cells)| (name.as_str(), cells.first().map_or(0, |(r, _)| *r as usize)))
    }

    /// Field `name`'s value in every row, null where a row leaves it out.
    fn column<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let cells = self.columns.get(name).map_or(&[][..], Vec::as_slice);
        let mut next = cells.iter().peekable();
        (0..self.rows).map(move |row| match next.peek() {
            Some((r, _)) if *r as usize == row => next.next().map_or(&Value::Null, |(_, v)| v),
            _ => &Value::Null,
        })
    }
}

impl From<Vec<Map<String, Value>>> for RowColumns {
    fn from(rows: Vec<Map<String, Value>>) -> Self {
        let mut out = RowColumns::default();
        for row in rows {
            // A map holds each key once.
            let _ = out.push_row(row);
        }
        out
    }
}

/// A JSON list of objects, read straight into columns.
impl<'de> serde::Deserialize<'de> for RowColumns {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

        struct Rows;
        struct OneRow<'a>(&'a mut RowColumns);

        impl<'de> DeserializeSeed<'de> for OneRow<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
                deserializer.deserialize_map(self)
            }
        }

        impl<'de> Visitor<'de> for OneRow<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    fields.push((key, map.next_value::<Value>()?));
                }
                let row = self.0.rows;
                self.0
                    .push_row(fields)
                    .map_err(|e| de::Error::custom(format_args!("row {row}: {e}")))
            }
        }

        impl<'de> Visitor<'de> for Rows {
            type Value = RowColumns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowColumns, A::Error> {
                let mut out = RowColumns::default();
                while seq.next_element_seed(OneRow(&mut out))?.is_some() {}
                Ok(out)
            }
        }

        deserializer.deserialize_seq(Rows)
    }
}

/// What a source's pushes must look like.
#[derive(Debug, Clone)]
pub struct PushSchema {
    pub schema: SchemaRef,
    /// Columns that must not be null: the join keys of every view reading the source, and the event time.
    pub required: Vec<String>,
    /// The event time column.
    pub timestamp: String,
    /// The availability column, filled with the ingestion instant where absent.
    pub created: Option<String>,
    /// The source's name, for messages.
    pub source: String,
}

impl PushSchema {
    pub fn new(source: &Source, schema: SchemaRef, keys: &[String]) -> Self {
        let mut required: Vec<String> = keys.to_vec();
        required.push(source.timestamp.clone());
        PushSchema {
            schema,
            required,
            timestamp: source.timestamp.clone(),
            created: source.created.clone(),
            source: source.name.clone(),
        }
    }

    fn unknown_field(&self, row: Option<usize>, field: &str) -> InputError {
        at(
            row,
            Some(field),
            InputProblem::UnknownField {
                source: self.source.clone(),
                columns: self.schema.fields().iter().map(|f| f.name().clone()).collect(),
            },
        )
    }

    /// JSON objects, one per row (gathered by column as they were read).
    pub fn from_rows(&self, rows: &RowColumns, now: i64) -> Result<RecordBatch, InputError> {
        // The first row that names a field the source lacks.
        if let Some((field, row)) = rows
            .fields()
            .filter(|(f, _)| self.schema.index_of(f).is_err())
            .min_by_key(|&(_, row)| row)
        {
            return Err(self.unknown_field(Some(row), field));
        }
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| json_column(field.name(), field.data_type(), rows.column(field.name())))
            .collect::<Result<Vec<_>, _>>()?;
        self.finish(columns, rows.len(), now)
    }

    /// Feast's column-major `df`: `{"column": [values…], …}`, every column as long.
    pub fn from_columns(&self, df: &Map<String, Value>, now: i64) -> Result<RecordBatch, InputError> {
        let mut len: Option<(usize, &str)> = None;
        for (name, values) in df {
            if self.schema.index_of(name).is_err() {
                return Err(self.unknown_field(None, name));
            }
            let Value::Array(values) = values else {
                return Err(at(None, Some(name), InputProblem::NotAList));
            };
            match len {
                None => len = Some((values.len(), name)),
                Some((n, first)) if n != values.len() => {
                    return Err(at(
                        None,
                        Some(name),
                        InputProblem::Ragged {
                            values: values.len(),
                            first: first.to_string(),
                            first_values: n,
                        },
                    ));
                }
                Some(_) => {}
            }
        }
        let rows = len.map_or(0, |(n, _)| n);
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| match df.get(field.name()) {
                Some(Value::Array(values)) => json_column(field.name(), field.data_type(), values.iter()),
                _ => json_column(field.name(), field.data_type(), std::iter::repeat_n(&Value::Null, rows)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.finish(columns, rows, now)
    }

    /// Arrow batches (from Arrow IPC, Parquet or CSV): columns matched by name and cast
    /// strictly to the source's types.
    pub fn from_batches(&self, batches: &[RecordBatch], now: i64) -> Result<RecordBatch, InputError> {
        let mut out = Vec::with_capacity(batches.len());
        let mut offset = 0;
        for batch in batches {
            let schema = batch.schema();
            if let Some(field) = schema.fields().iter().find(|f| self.schema.index_of(f.name()).is_err()) {
                return Err(self.unknown_field(None, field.name()));
            }
            let columns = self
                .schema
                .fields()
                .iter()
                .map(|field| match schema.index_of(field.name()) {
                    Ok(i) => strict_cast(batch.column(i), field.data_type(), field.name(), offset),
                    Err(_) => Ok(new_null_array(field.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(self.finish(columns, batch.num_rows(), now).map_err(|e| InputError {
                row: e.row.map(|r| r + offset),
                ..e
            })?);
            offset += batch.num_rows();
        }
        let schema = out
            .first()
            .map_or_else(|| Arc::clone(&self.schema), RecordBatch::schema);
        concat_batches(&schema, &out).map_err(|e| at(None, None, InputProblem::Assemble(e.to_string())))
    }

    /// Checks the required columns and the times given (`now`: the ingestion clock).
    fn finish(&self, columns: Vec<ArrayRef>, rows: usize, now: i64) -> Result<RecordBatch, InputError> {
        for name in &self.required {
            let Ok(i) = self.schema.index_of(name) else {
                return Err(at(
                    None,
                    Some(name),
                    InputProblem::NoColumn {
                        source: self.source.clone(),
                    },
                ));
            };
            if columns[i].null_count() > 0
                && let Some(row) = (0..rows).find(|&r| columns[i].is_null(r))
            {
                return Err(at(Some(row), Some(name), InputProblem::MissingRequired));
            }
        }
        for (field, column) in self.schema.fields().iter().zip(&columns) {
            let filled_later = self.created.as_deref() == Some(field.name().as_str());
            if !field.is_nullable()
                && !filled_later
                && column.null_count() > 0
                && let Some(row) = (0..rows).find(|&r| column.is_null(r))
            {
                return Err(at(Some(row), Some(field.name()), InputProblem::MissingNotNullable));
            }
        }
        // Given times must be instants the online path can hold (`skewless_defs::instant`).
        // The event time ranks rows newest-wins, so it may not run ahead of the clock; an
        // availability time only breaks ties of one event time, and may (a late row's).
        if let Ok(i) = self.schema.index_of(&self.timestamp) {
            check_times(&columns[i], &self.timestamp, Some(now))?;
        }
        if let Some(created) = &self.created
            && let Ok(i) = self.schema.index_of(created)
        {
            check_times(&columns[i], created, None)?;
        }
        // Missing availability times stay null until `fill_created`, so the batch's schema
        // takes nulls there even where the source's does not.
        let schema = match &self.created {
            Some(created) => {
                let fields: Vec<arrow::datatypes::FieldRef> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| {
                        if f.name() == created && !f.is_nullable() {
                            Arc::new(f.as_ref().clone().with_nullable(true))
                        } else {
                            Arc::clone(f)
                        }
                    })
                    .collect();
                Arc::new(arrow::datatypes::Schema::new_with_metadata(
                    fields,
                    self.schema.metadata().clone(),
                ))
            }
            None => Arc::clone(&self.schema),
        };
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(schema, columns, &options)
            .map_err(|e| at(None, None, InputProblem::Assemble(e.to_string())))
    }

    /// `batch` (from `from_rows`, `from_columns` or `from_batches`) with its missing
    /// availability times set to the ingestion instant `now`.
    /// The batch is then in the source's own schema.
    pub fn fill_created(&self, batch: RecordBatch, now: i64) -> Result<RecordBatch, InputError> {
        let mut columns = batch.columns().to_vec();
        if let Some(created) = &self.created
            && let Ok(i) = self.schema.index_of(created)
            && columns[i].null_count() > 0
        {
            columns[i] = fill_nulls_with_instant(&columns[i], now).map_err(|e| at(None, Some(created), e))?;
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)
            .map_err(|e| at(None, None, InputProblem::Assemble(e.to_string())))
    }
}

/// Checks every value of a timestamp column against the accepted range and, given the
/// ingestion clock `now`, the pushed-time rule; names the first row that breaks it.
fn check_times(column: &ArrayRef, name: &str, now: Option<i64>) -> Result<(), InputError> {
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return Ok(());
    };
    let per_micro: (i64, i64) = match unit {
        TimeUnit::Second => (1_000_000, 1),
        TimeUnit::Millisecond => (1_000, 1),
        TimeUnit::Microsecond => (1, 1),
        TimeUnit::Nanosecond => (1, 1_000),
    };
    let raw = arrow::compute::cast(column, &DataType::Int64).map_err(|e| {
        at(
            None,
            Some(name),
            InputProblem::Cast {
                to: DataType::Int64,
                why: e.to_string(),
            },
        )
    })?;
    let Some(raw) = raw.as_any().downcast_ref::<Int64Array>() else {
        return Ok(());
    };
    for (row, value) in raw.iter().enumerate() {
        let Some(value) = value else { continue };
        let micros = value
            .checked_mul(per_micro.0)
            .map_or(if value < 0 { i64::MIN } else { i64::MAX }, |v| {
                v.div_euclid(per_micro.1)
            });
        match now {
            Some(now) => skewless_defs::instant::check_pushed(micros, now),
            None => skewless_defs::instant::check(micros),
        }
        .map_err(|e| at(Some(row), Some(name), InputProblem::Time(e)))?;
    }
    Ok(())
}

fn strict_cast(column: &ArrayRef, ty: &DataType, name: &str, offset: usize) -> Result<ArrayRef, InputError> {
    if column.data_type() == ty {
        return Ok(Arc::clone(column));
    }
    if let Some(typed) = text_cast(column, ty, name, offset)? {
        return Ok(typed);
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(column, ty, &options).map_err(|e| {
        // The first row that fails on its own names the place.
        let row = (0..column.len()).find(|&r| cast_with_options(&column.slice(r, 1), ty, &options).is_err());
        at(
            row.map(|r| r + offset),
            Some(name),
            InputProblem::Cast {
                to: ty.clone(),
                why: e.to_string(),
            },
        )
    })
}

/// Whether text of column type `ty` is read by the one rule for text
/// ([`skewless_online::input`]: `1001` but not `+1001`, `01001` or ` 1001`; `NaN` and
/// `Infinity` but not `inf`; `true` and `false`; instants as a JSON push's strings); if not,
/// Arrow's cast decides (text, dates, decimals).
fn has_text_rule(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Timestamp(..)
    )
}

/// A text column (CSV, or strings in Arrow or Parquet) read as `ty` by the one rule for text, the
/// rule every other entry point follows, then typed as a JSON push's values are; `None` when
/// `column` is not text or `ty` has no rule.
fn text_cast(column: &ArrayRef, ty: &DataType, name: &str, offset: usize) -> Result<Option<ArrayRef>, InputError> {
    if !has_text_rule(ty) {
        return Ok(None);
    }
    let texts: Vec<Option<&str>> = if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
        a.iter().collect()
    } else if let Some(a) = column.as_any().downcast_ref::<LargeStringArray>() {
        a.iter().collect()
    } else if let Some(a) = column.as_any().downcast_ref::<arrow::array::StringViewArray>() {
        a.iter().collect()
    } else {
        return Ok(None);
    };
    let values: Vec<Given> = texts.into_iter().map(|t| t.map_or(Given::Null, Given::Text)).collect();
    given_column(name, ty, &values).map(Some).map_err(|e| InputError {
        row: e.row.map(|r| r + offset),
        ..e
    })
}

/// `column` (a timestamp column) with its nulls replaced by the instant `now` (µs).
fn fill_nulls_with_instant(column: &ArrayRef, now: i64) -> Result<ArrayRef, InputProblem> {
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return Err(InputProblem::NotATimestamp {
            ty: column.data_type().clone(),
        });
    };
    let value = match unit {
        TimeUnit::Second => now.div_euclid(1_000_000),
        TimeUnit::Millisecond => now.div_euclid(1_000),
        TimeUnit::Microsecond => now,
        TimeUnit::Nanosecond => now.saturating_mul(1_000),
    };
    let assemble = |e: arrow::error::ArrowError| InputProblem::Assemble(e.to_string());
    let as_i64 = arrow::compute::cast(column, &DataType::Int64).map_err(assemble)?;
    let ints = as_i64
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| InputProblem::Assemble("the availability column did not cast to int64".into()))?;
    let filled: Int64Array = ints.iter().map(|v| Some(v.unwrap_or(value))).collect();
    arrow::compute::cast(&filled, column.data_type()).map_err(assemble)
}

/// A JSON value as the one input rule reads it ([`skewless_online::input`]).
pub fn given(value: &Value) -> Given<'_> {
    match value {
        Value::Null => Given::Null,
        Value::Bool(b) => Given::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Given::Int(i),
            (None, Some(u)) => Given::UInt(u),
            (None, None) => Given::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Given::Str(s),
        Value::Array(_) => Given::Nested(GivenKind::List),
        Value::Object(_) => Given::Nested(GivenKind::Object),
    }
}

/// Every value through `rule`, nulls kept; a refusal names its row and the field.
fn typed<'v, T>(
    values: &[Given<'v>],
    name: &str,
    rule: impl Fn(Given<'v>) -> Result<T, ValueError>,
) -> Result<Vec<Option<T>>, InputError> {
    values
        .iter()
        .enumerate()
        .map(|(r, v)| match *v {
            Given::Null => Ok(None),
            g => rule(g)
                .map(Some)
                .map_err(|e| at(Some(r), Some(name), InputProblem::Value(e))),
        })
        .collect()
}

/// A column of JSON values typed as `ty` by the one input rule (the rule of lookups too);
/// null is null. Timestamps take RFC 3339 text (a naive one is UTC) or seconds since the
/// epoch.
pub fn json_column<'a>(
    name: &str,
    ty: &DataType,
    values: impl Iterator<Item = &'a Value>,
) -> Result<ArrayRef, InputError> {
    let values: Vec<Given> = values.map(given).collect();
    given_column(name, ty, &values)
}

/// [`json_column`] of values already read as [`Given`]s (text too: CSV, Arrow strings).
fn given_column(name: &str, ty: &DataType, values: &[Given<'_>]) -> Result<ArrayRef, InputError> {
    let refused = |row: usize| move |e: ValueError| at(Some(row), Some(name), InputProblem::Value(e));
    macro_rules! typed {
        ($array:ty, $rule:expr) => {
            Arc::new(<$array>::from(typed(values, name, $rule)?)) as ArrayRef
        };
    }
    let array: ArrayRef = match ty {
        DataType::Boolean => typed!(BooleanArray, input::boolean),
        DataType::Int8 => typed!(Int8Array, |g| input::integer::<i8>(g, input::INT8)),
        DataType::Int16 => typed!(Int16Array, |g| input::integer::<i16>(g, input::INT16)),
        DataType::Int32 => typed!(Int32Array, |g| input::integer::<i32>(g, input::INT32)),
        DataType::Int64 => typed!(Int64Array, |g| input::integer::<i64>(g, input::INT64)),
        DataType::UInt8 => typed!(UInt8Array, |g| input::integer::<u8>(g, input::UINT8)),
        DataType::UInt16 => typed!(UInt16Array, |g| input::integer::<u16>(g, input::UINT16)),
        DataType::UInt32 => typed!(UInt32Array, |g| input::integer::<u32>(g, input::UINT32)),
        DataType::UInt64 => typed!(UInt64Array, |g| input::integer::<u64>(g, input::UINT64)),
        DataType::Float32 => typed!(Float32Array, input::float32),
        DataType::Float64 => typed!(Float64Array, input::float64),
        DataType::Utf8 => typed!(StringArray, input::string),
        DataType::LargeUtf8 => typed!(LargeStringArray, input::string),
        DataType::Timestamp(unit, tz) => {
            let mut out: Vec<Option<i64>> = Vec::with_capacity(values.len());
            for (r, v) in values.iter().enumerate() {
                let micros = match *v {
                    Given::Null => None,
                    Given::Str(s) | Given::Text(s) => {
                        Some(parse_instant(s).map_err(|e| at(Some(r), Some(name), InputProblem::InstantText(e)))?)
                    }
                    g => Some(
                        input::seconds(g)
                            .unwrap_or_else(|| {
                                Err(ValueError::new(
                                    "an instant (RFC 3339 text or seconds since the epoch)",
                                    g,
                                ))
                            })
                            .map_err(refused(r))?,
                    ),
                };
                out.push(match unit {
                    TimeUnit::Second => micros.map(|m| m.div_euclid(1_000_000)),
                    TimeUnit::Millisecond => micros.map(|m| m.div_euclid(1_000)),
                    TimeUnit::Microsecond => micros,
                    TimeUnit::Nanosecond => match micros {
                        Some(m) => Some(m.checked_mul(1_000).ok_or_else(|| {
                            refused(r)(ValueError::new("an instant within 1677–2262 (nanosecond column)", *v))
                        })?),
                        None => None,
                    },
                });
            }
            match unit {
                TimeUnit::Second => Arc::new(TimestampSecondArray::from(out).with_timezone_opt(tz.clone())),
                TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(out).with_timezone_opt(tz.clone())),
                TimeUnit::Microsecond => Arc::new(TimestampMicrosecondArray::from(out).with_timezone_opt(tz.clone())),
                TimeUnit::Nanosecond => Arc::new(TimestampNanosecondArray::from(out).with_timezone_opt(tz.clone())),
            }
        }
        other => {
            return Err(at(None, Some(name), InputProblem::NotInJson { ty: other.clone() }));
        }
    };
    Ok(array)
}

/// A file of rows to push that cannot be read: its path, the line (JSON lines) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {problem}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct FileError {
    pub path: std::path::PathBuf,
    pub line: Option<usize>,
    pub problem: FileProblem,
}

/// Why a file of rows cannot be pushed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// Opening or decoding it failed (the reader's words: I/O, Parquet, CSV).
    #[error("{0}")]
    Unreadable(String),
    /// A JSON line that is not an object.
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    #[error("{0}")]
    Row(RowError),
    /// An extension none of the readers takes.
    #[error("push reads .parquet, .csv or JSON lines (.jsonl, .ndjson, .json)")]
    UnknownFormat,
}

/// Reads a file of rows to push: Parquet (`.parquet`, `.pq`), CSV (`.csv`, typed as the
/// source's columns) or JSON lines (`.jsonl`, `.ndjson`, `.json`: one object per line).
pub fn read_file(path: &std::path::Path, schema: &PushSchema) -> Result<crate::push::PushInput, FileError> {
    use crate::push::PushInput;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let at = |line: Option<usize>, problem: FileProblem| FileError {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let failed = |e: &dyn fmt::Display| at(None, FileProblem::Unreadable(e.to_string()));
    let open = || std::fs::File::open(path).map_err(|e| failed(&e));
    if name.ends_with(".parquet") || name.ends_with(".pq") {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)
            .and_then(|b| b.build())
            .map_err(|e| failed(&e))?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| failed(&e))?;
        Ok(PushInput::Batches(batches))
    } else if name.ends_with(".csv") {
        // Columns with a text rule ([`has_text_rule`]) are read as text, then typed by it ([`strict_cast`]),
        // naming the row and column of a value it refuses.
        let types: Vec<(&str, DataType)> = schema
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = if has_text_rule(f.data_type()) {
                    DataType::Utf8
                } else {
                    f.data_type().clone()
                };
                (f.name().as_str(), ty)
            })
            .collect();
        let csv_schema = skewless_sources::files::csv_schema_with_types(path, &types).map_err(|e| failed(&e))?;
        let reader = arrow::csv::ReaderBuilder::new(csv_schema)
            .with_header(true)
            .build(open()?)
            .map_err(|e| failed(&e))?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| failed(&e))?;
        Ok(PushInput::Batches(batches))
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        let text = std::fs::read_to_string(path).map_err(|e| failed(&e))?;
        let mut rows = RowColumns::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Map<String, Value> =
                serde_json::from_str(line).map_err(|e| at(Some(i + 1), FileProblem::NotAnObject(e.to_string())))?;
            rows.push_row(row).map_err(|e| at(Some(i + 1), FileProblem::Row(e)))?;
        }
        Ok(PushInput::Rows(rows))
    } else {
        Err(at(None, FileProblem::UnknownFormat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use serde_json::json;

    fn schema() -> PushSchema {
        let fields = vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "created",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("fare", DataType::Float64, true),
            Field::new("rate", DataType::Float32, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
        ];
        PushSchema {
            schema: Arc::new(Schema::new(fields)),
            required: vec!["driver_id".into(), "ts".into()],
            timestamp: "ts".into(),
            created: Some("created".into()),
            source: "trips".into(),
        }
    }

    /// The ingestion clock of these tests: 2026-01-01T00:00:00Z (pushed times may not be
    /// more than 5 minutes after it).
    const NOW: i64 = 1_767_225_600_000_000;

    fn rows(v: Value) -> RowColumns {
        serde_json::from_value(v).unwrap()
    }

    /// Rows read straight into columns hold what the rows said: a field a row leaves out is
    /// null there, an unknown field is named with the first row that gives it, and a field
    /// given twice in a row is refused with the row.
    #[test]
    fn rows_are_read_into_columns_cell_by_cell() {
        let r = rows(json!([{"a": 1, "b": "x"}, {"b": "y"}, {}, {"a": 4}]));
        assert_eq!(r.len(), 4);
        let a: Vec<&Value> = r.column("a").collect();
        assert_eq!(a, [&json!(1), &Value::Null, &Value::Null, &json!(4)]);
        let b: Vec<&Value> = r.column("b").collect();
        assert_eq!(b, [&json!("x"), &json!("y"), &Value::Null, &Value::Null]);
        assert_eq!(r.column("c").count(), 4);
        assert_eq!(r.fields().collect::<Vec<_>>(), [("a", 0), ("b", 0)]);
        let maps: Vec<Map<String, Value>> =
            serde_json::from_value(json!([{"a": 1, "b": "x"}, {"b": "y"}, {}, {"a": 4}])).unwrap();
        assert_eq!(RowColumns::from(maps), r);

        let twice = serde_json::from_str::<RowColumns>(r#"[{"a": 1}, {"b": 1, "b": 1}]"#).unwrap_err();
        assert!(twice.to_string().contains("row 1: `b` is given twice"), "{twice}");
        let late = schema()
            .from_rows(
                &rows(json!([{"driver_id": 1, "ts": 0}, {"driver_id": 2, "ts": 0, "nope": 1}])),
                NOW,
            )
            .unwrap_err();
        assert_eq!((late.row, late.field.as_deref()), (Some(1), Some("nope")), "{late}");
    }

    #[test]
    fn json_rows_become_typed_columns_and_created_is_the_ingestion_instant() {
        let s = schema();
        let typed = s
            .from_rows(
                &rows(json!([
                    {"driver_id": 1, "ts": "2025-01-01T00:00:00Z", "fare": 2.5, "rate": 0.1, "city": "x", "ok": true},
                    {"driver_id": 2, "ts": 1735689600.5, "created": "2025-01-02 00:00:00", "fare": "NaN"}
                ])),
                NOW,
            )
            .unwrap();
        // `created` is left null by typing, then filled with the ingestion instant.
        assert!(typed.column(2).is_null(0));
        let batch = s.fill_created(typed, NOW).unwrap();
        let ts = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(ts.values(), &[1_735_689_600_000_000_000, 1_735_689_600_500_000_000]);
        let created = batch
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(created.values(), &[NOW, 1_735_776_000_000_000]);
        let fare = batch.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(fare.value(1).is_nan());
        let rate = batch.column(4).as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(rate.value(0), 0.1f32);
        assert!(batch.column(5).is_null(1));
        // Column-major (Feast's `df`) gives the same batch.
        let df: Map<String, Value> = serde_json::from_value(json!({
            "driver_id": [1, 2], "ts": ["2025-01-01T00:00:00Z", 1735689600.5],
            "created": [null, "2025-01-02 00:00:00"], "fare": [2.5, "NaN"], "rate": [0.1, null],
            "city": ["x", null], "ok": [true, null]
        }))
        .unwrap();
        let by_columns = s.fill_created(s.from_columns(&df, NOW).unwrap(), NOW).unwrap();
        assert_eq!(format!("{by_columns:?}"), format!("{batch:?}"));
    }

    #[test]
    fn bad_values_name_their_row_and_field() {
        let s = schema();
        let cases = [
            (
                json!([{"driver_id": 1, "ts": "2025-01-01"}, {"driver_id": "2", "ts": "2025-01-01"}]),
                "row 1, field `driver_id`: expected an int64 (a JSON number), found the string \"2\"",
            ),
            (
                json!([{"driver_id": 1.5, "ts": "2025-01-01"}]),
                "row 0, field `driver_id`: expected an int64, found the number 1.5",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01", "fare": "12"}]),
                "row 0, field `fare`: expected a float64 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\"), found the string \"12\"",
            ),
            (
                json!([{"driver_id": 1, "ts": "yesterday"}]),
                "row 0, field `ts`: `yesterday` is not an instant: use `now`, RFC 3339 (2025-01-01T12:00:00Z), or a date (2025-01-01)",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01"}, {"ts": "2025-01-01"}]),
                "row 1, field `driver_id`: missing: join keys and the event time are required",
            ),
            (
                json!([{"driver_id": 1, "ts": null}]),
                "row 0, field `ts`: missing: join keys and the event time are required",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01", "tip": 1}]),
                "row 0, field `tip`: not a column of source `trips` (its columns: driver_id, ts, created, fare, rate, city, ok)",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01", "ok": 1}]),
                "row 0, field `ok`: expected true or false, found the number 1",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01", "created": 1_796_300_000_000i64}]),
                "row 0, field `created`: instant 1796300000000000000 µs since the epoch is outside the accepted instants, \
                 1900-01-01 to 2200-01-01 UTC (epoch numbers are seconds, not milliseconds)",
            ),
            (
                json!([{"driver_id": 1, "ts": "2026-01-01T01:00:00Z"}]),
                "row 0, field `ts`: instant 2026-01-01 (1767229200000000 µs since the epoch) is 3600 s ahead of the \
                 server's clock; pushed times may be at most 300 s ahead (the online store keeps the newest row per \
                 key, so a future row would hide the current one)",
            ),
            (
                json!([{"driver_id": 1, "ts": "2025-01-01", "created": -1e13}]),
                "row 0, field `created`: expected an instant, found the number -10000000000000.0 (out of range)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(s.from_rows(&rows(input), NOW).unwrap_err().to_string(), expected);
        }
        let df: Map<String, Value> =
            serde_json::from_value(json!({"driver_id": [1, 2], "ts": ["2025-01-01"]})).unwrap();
        assert_eq!(
            s.from_columns(&df, NOW).unwrap_err().to_string(),
            "field `ts`: 1 values, but column `driver_id` has 2"
        );
    }

    #[test]
    fn arrow_batches_are_cast_strictly_and_name_the_failing_row() {
        let s = schema();
        let input = RecordBatch::try_from_iter(vec![
            (
                "driver_id",
                Arc::new(StringArray::from(vec!["1", "2", "x"])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(StringArray::from(vec!["2025-01-01T00:00:00Z"; 3])) as ArrayRef,
            ),
        ])
        .unwrap();
        let err = s.from_batches(&[input.slice(0, 2), input.clone()], NOW).unwrap_err();
        assert_eq!((err.row, err.field.as_deref()), (Some(4), Some("driver_id")), "{err}");
        let ok = s
            .fill_created(s.from_batches(&[input.slice(0, 2)], NOW).unwrap(), NOW)
            .unwrap();
        assert_eq!(ok.num_rows(), 2);
        assert_eq!(ok.schema(), s.schema);
        let created = ok
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(created.values(), &[NOW, NOW]);
    }

    /// One rule, every form a push takes: a value as text (a CSV cell, an Arrow or Parquet
    /// string) is taken exactly when the lookups' rule for text takes it, and then equals the
    /// value a JSON push of the same literal gives.
    #[test]
    fn text_follows_the_one_rule_in_csv_and_arrow_strings() {
        let s = schema();
        // (column, text, taken)
        let table = [
            ("driver_id", "1001", true),
            ("driver_id", "-3", true),
            ("driver_id", "0", true),
            ("driver_id", "+1001", false),
            ("driver_id", "01001", false),
            ("driver_id", " 1001", false),
            ("driver_id", "1001.0", false),
            ("driver_id", "-0", false),
            ("driver_id", "9223372036854775808", false),
            ("fare", "3.25", true),
            ("fare", "-0.0", true),
            ("fare", "1e-3", true),
            ("fare", "NaN", true),
            ("fare", "Infinity", true),
            ("fare", "-Infinity", true),
            ("fare", "inf", false),
            ("fare", "1e400", false),
            ("fare", "0x1p3", false),
            ("fare", " 3.25", false),
            ("rate", "0.1", true),
            ("rate", "1e39", false),
            ("ok", "true", true),
            ("ok", "false", true),
            ("ok", "True", false),
            ("ok", "1", false),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (column, text, taken) in table {
            let driver = if column == "driver_id" { text } else { "7" };
            // Arrow strings.
            let mut columns: Vec<(&str, ArrayRef)> = vec![
                ("driver_id", Arc::new(StringArray::from(vec![driver]))),
                ("ts", Arc::new(StringArray::from(vec!["2025-01-01T00:00:00Z"]))),
            ];
            if column != "driver_id" {
                columns.push((column, Arc::new(StringArray::from(vec![text]))));
            }
            let arrow = s.from_batches(&[RecordBatch::try_from_iter(columns).unwrap()], NOW);
            // A CSV file (quoted, so the cell's spaces are kept).
            let csv = dir.path().join("rows.csv");
            let header = if column == "driver_id" {
                "driver_id,ts".to_string()
            } else {
                format!("driver_id,ts,{column}")
            };
            let cells = if column == "driver_id" {
                format!("\"{text}\",2025-01-01T00:00:00Z")
            } else {
                format!("7,2025-01-01T00:00:00Z,\"{text}\"")
            };
            std::fs::write(&csv, format!("{header}\n{cells}\n")).unwrap();
            let crate::push::PushInput::Batches(batches) = read_file(&csv, &s).unwrap() else {
                panic!("a CSV file reads as batches");
            };
            let from_csv = s.from_batches(&batches, NOW);
            for (form, got) in [("arrow", &arrow), ("csv", &from_csv)] {
                match got {
                    Ok(batch) if taken => {
                        // The same literal as JSON (names as strings, the rest as numbers).
                        let literal: Value = serde_json::from_str(text).unwrap_or(json!(text));
                        let mut row = json!({"driver_id": 7, "ts": "2025-01-01T00:00:00Z"});
                        row[column] = literal;
                        let json = s.from_rows(&rows(json!([row])), NOW).unwrap();
                        let i = s.schema.index_of(column).unwrap();
                        assert_eq!(
                            format!("{:?}", batch.column(i)),
                            format!("{:?}", json.column(i)),
                            "{form} {column}={text:?}"
                        );
                    }
                    Err(e) if !taken => {
                        assert_eq!((e.row, e.field.as_deref()), (Some(0), Some(column)), "{form}: {e}");
                    }
                    other => panic!("{form} {column}={text:?}: taken should be {taken}, got {other:?}"),
                }
            }
        }
        // JSON too: a number beyond float32's range is refused, not rounded to an infinity.
        let err = s
            .from_rows(
                &rows(json!([{"driver_id": 7, "ts": "2025-01-01T00:00:00Z", "rate": 1e39}])),
                NOW,
            )
            .unwrap_err();
        assert_eq!((err.row, err.field.as_deref()), (Some(0), Some("rate")), "{err}");
    }
}
