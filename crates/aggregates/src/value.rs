//! The values aggregates take and give, and the Arrow columns they are read from and written to.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    PrimitiveArray, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use skewless_defs::FeatureType;

/// One input or result value of an aggregate. Ints, int32s and timestamps (µs) are `Int`;
/// float32s are widened exactly to `Float`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// The total order min, max, first and last use. Values of one input share a variant.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (a, b) => variant(a).cmp(&variant(b)),
        }
    }

    /// Order-preserving bytes: what count_distinct keeps.
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        match self {
            Value::Bool(b) => vec![0, u8::from(*b)],
            Value::Int(i) => [&[1u8][..], &(*i as u64 ^ (1 << 63)).to_be_bytes()].concat(),
            Value::Float(f) => [&[2u8][..], &f.to_bits().to_be_bytes()].concat(),
            Value::Str(s) => [&[3u8][..], s.as_bytes()].concat(),
        }
    }
}

fn variant(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int(_) => 1,
        Value::Float(_) => 2,
        Value::Str(_) => 3,
    }
}

/// NaN in one canonical form, so its bits (and its place in the total order) are one thing.
pub(crate) fn canonical(x: f64) -> f64 {
    if x.is_nan() { f64::NAN } else { x }
}

/// An input array with its type resolved once: reading a row is a match on a small tag, not a
/// type check and a downcast (the sweeps read every event once per feature). The array has
/// the Arrow type of a feature type (or Float64 for the numeric aggregates' inputs).
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    Bool(&'a BooleanArray),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Utf8(&'a StringArray),
    Time(&'a TimestampMicrosecondArray),
    /// Inputs are cast to feature types before they get here (`compile`): never read.
    Other,
}

impl<'a> Column<'a> {
    pub fn new(array: &'a dyn Array) -> Self {
        match array.data_type() {
            DataType::Boolean => Column::Bool(array.as_boolean()),
            DataType::Int32 => Column::Int32(array.as_primitive()),
            DataType::Int64 => Column::Int64(array.as_primitive()),
            DataType::Float32 => Column::Float32(array.as_primitive()),
            DataType::Float64 => Column::Float64(array.as_primitive()),
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Column::Time(array.as_primitive()),
            _ => Column::Other,
        }
    }

    /// Whether this is the Arrow type a feature of type `ty` has (`skewless_engine::arrow_type`,
    /// any time zone).
    pub fn holds(&self, ty: FeatureType) -> bool {
        matches!(
            (self, ty),
            (Column::Bool(_), FeatureType::Bool)
                | (Column::Int32(_), FeatureType::Int32)
                | (Column::Int64(_), FeatureType::Int64)
                | (Column::Float32(_), FeatureType::Float32)
                | (Column::Float64(_), FeatureType::Float64)
                | (Column::Utf8(_), FeatureType::String)
                | (Column::Time(_), FeatureType::Timestamp)
        )
    }

    /// Whether `row` is null (an `Other` column reads as all null).
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(row),
            Column::Int32(a) => a.is_null(row),
            Column::Int64(a) => a.is_null(row),
            Column::Float32(a) => a.is_null(row),
            Column::Float64(a) => a.is_null(row),
            Column::Utf8(a) => a.is_null(row),
            Column::Time(a) => a.is_null(row),
            Column::Other => true,
        }
    }

    /// The value at `row`, `None` when null.
    #[inline]
    pub fn value(&self, row: usize) -> Option<Value> {
        fn get<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, row: usize) -> Option<T::Native> {
            a.is_valid(row).then(|| a.value(row))
        }
        match self {
            Column::Bool(a) => a.is_valid(row).then(|| Value::Bool(a.value(row))),
            Column::Int32(a) => get(a, row).map(|v| Value::Int(i64::from(v))),
            Column::Int64(a) => get(a, row).map(Value::Int),
            Column::Float32(a) => get(a, row).map(|v| Value::Float(canonical(f64::from(v)))),
            Column::Float64(a) => get(a, row).map(|v| Value::Float(canonical(v))),
            Column::Utf8(a) => a.is_valid(row).then(|| Value::Str(a.value(row).to_string())),
            Column::Time(a) => get(a, row).map(Value::Int),
            Column::Other => None,
        }
    }
}

/// An Arrow array of type `ty` from finished values.
pub fn to_array(ty: FeatureType, values: &[Option<Value>]) -> ArrayRef {
    let int = |v: &Option<Value>| match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    let float = |v: &Option<Value>| match v {
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    match ty {
        FeatureType::Bool => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        FeatureType::Int32 => Arc::new(
            values
                .iter()
                .map(|v| int(v).and_then(|i| i32::try_from(i).ok()))
                .collect::<Int32Array>(),
        ),
        FeatureType::Int64 => Arc::new(values.iter().map(int).collect::<Int64Array>()),
        FeatureType::Float32 => Arc::new(
            values
                .iter()
                .map(|v| float(v).map(|f| f as f32))
                .collect::<Float32Array>(),
        ),
        FeatureType::Float64 => Arc::new(values.iter().map(float).collect::<Float64Array>()),
        FeatureType::String => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Some(Value::Str(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        FeatureType::Timestamp => Arc::new(
            values
                .iter()
                .map(int)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
    }
}
