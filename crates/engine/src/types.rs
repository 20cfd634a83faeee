//! How definition types map to Arrow types, and which data types may feed them.
//!
//! The rule is "no silent loss": a column or expression may feed a feature of a wider type
//! (int32 → int64, int → float), floats may narrow to float32 (declared precision), but a
//! float never feeds an integer and text never feeds a number: those need an explicit CAST.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use skewless_defs::{FeatureType, KeyType};

/// The Arrow type a feature of this type has in training sets and online values.
pub fn arrow_type(ty: FeatureType) -> DataType {
    match ty {
        FeatureType::Bool => DataType::Boolean,
        FeatureType::Int32 => DataType::Int32,
        FeatureType::Int64 => DataType::Int64,
        FeatureType::Float32 => DataType::Float32,
        FeatureType::Float64 => DataType::Float64,
        FeatureType::String => DataType::Utf8,
        FeatureType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

fn int_width(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int8 | DataType::UInt8 => 8,
        DataType::Int16 | DataType::UInt16 => 16,
        DataType::Int32 | DataType::UInt32 => 32,
        DataType::Int64 => 64,
        _ => return None,
    })
}

fn is_signed_or_narrow(t: &DataType, bits: u8) -> bool {
    match t {
        DataType::UInt8 | DataType::UInt16 => bits > 16,
        DataType::UInt32 => bits > 32,
        _ => int_width(t).is_some_and(|w| w <= bits),
    }
}

/// Whether values of `actual` may feed a feature declared `declared` without silent loss.
pub fn fits(actual: &DataType, declared: FeatureType) -> bool {
    match declared {
        _ if *actual == DataType::Null => true,
        FeatureType::Bool => *actual == DataType::Boolean,
        FeatureType::Int32 => is_signed_or_narrow(actual, 32),
        FeatureType::Int64 => is_signed_or_narrow(actual, 64),
        FeatureType::Float32 | FeatureType::Float64 => {
            matches!(actual, DataType::Float16 | DataType::Float32 | DataType::Float64) || int_width(actual).is_some()
        }
        FeatureType::String => is_string(actual),
        FeatureType::Timestamp => timestamp_fits(actual),
    }
}

/// Whether a source column of type `actual` can hold an entity key of type `declared`.
pub fn key_fits(actual: &DataType, declared: KeyType) -> bool {
    match declared {
        // UInt64 too: a value past i64::MAX is refused when it is read (strict cast), not here.
        KeyType::Int64 => is_signed_or_narrow(actual, 64) || *actual == DataType::UInt64,
        KeyType::String => is_string(actual),
    }
}

/// Whether a column can serve as an event or availability time.
pub fn timestamp_fits(actual: &DataType) -> bool {
    matches!(actual, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_fits_narrowing_does_not() {
        assert!(fits(&DataType::Int32, FeatureType::Int64));
        assert!(fits(&DataType::UInt32, FeatureType::Int64));
        assert!(!fits(&DataType::Int64, FeatureType::Int32));
        assert!(!fits(&DataType::UInt32, FeatureType::Int32));
        assert!(fits(&DataType::Int64, FeatureType::Float64));
        assert!(fits(&DataType::Float64, FeatureType::Float32), "declared precision");
        assert!(!fits(&DataType::Float64, FeatureType::Int64));
        assert!(!fits(&DataType::Utf8, FeatureType::Float64));
        assert!(fits(&DataType::Utf8View, FeatureType::String));
        assert!(fits(&DataType::Null, FeatureType::Bool), "a NULL literal fits anything");
        assert!(fits(
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            FeatureType::Timestamp
        ));
    }

    #[test]
    fn keys_are_exact_kinds() {
        assert!(key_fits(&DataType::Int32, KeyType::Int64));
        // UInt64 keys are integers; values past i64::MAX fail when read (strict casts).
        assert!(key_fits(&DataType::UInt64, KeyType::Int64));
        assert!(!key_fits(&DataType::Float64, KeyType::Int64));
        assert!(!key_fits(&DataType::Int64, KeyType::String));
        assert!(key_fits(&DataType::LargeUtf8, KeyType::String));
    }
}
