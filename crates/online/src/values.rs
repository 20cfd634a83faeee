//! Feature values between their forms: [`Scalar`]s (what a lookup returns) and Arrow arrays
//! (what the engine evaluates on-demand features over). Values a request gives are read by
//! [`crate::input`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use skewless_defs::FeatureType;

use crate::layout::Scalar;
use crate::{Error, Result};

/// A column of `ty` from scalars (nulls allowed); another scalar type is an error.
pub fn to_array(ty: FeatureType, values: &[Scalar]) -> Result<ArrayRef> {
    let mismatch = |v: &Scalar| Error::Internal(format!("a column of {ty} was given {v:?}"));
    macro_rules! column {
        ($array:ty, $variant:ident) => {
            Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        Scalar::Null => Ok(None),
                        Scalar::$variant(x) => Ok(Some(x.clone())),
                        other => Err(mismatch(other)),
                    })
                    .collect::<Result<$array>>()?,
            ) as ArrayRef
        };
    }
    Ok(match ty {
        FeatureType::Bool => column!(BooleanArray, Bool),
        FeatureType::Int32 => column!(Int32Array, Int32),
        FeatureType::Int64 => column!(Int64Array, Int64),
        FeatureType::Float32 => column!(Float32Array, Float32),
        FeatureType::Float64 => column!(Float64Array, Float64),
        FeatureType::String => column!(StringArray, String),
        FeatureType::Timestamp => {
            let array: TimestampMicrosecondArray = values
                .iter()
                .map(|v| match v {
                    Scalar::Null => Ok(None),
                    Scalar::Timestamp(t) => Ok(Some(*t)),
                    other => Err(mismatch(other)),
                })
                .collect::<Result<_>>()?;
            Arc::new(array.with_timezone("UTC"))
        }
    })
}

/// The value at `row` of a column of one of the feature types.
pub fn scalar_at(array: &dyn Array, row: usize) -> Result<Scalar> {
    if array.is_null(row) {
        return Ok(Scalar::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Scalar::Bool(array.as_boolean().value(row)),
        DataType::Int32 => Scalar::Int32(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Scalar::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => Scalar::Float32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Scalar::Float64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Scalar::String(array.as_string::<i32>().value(row).to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Scalar::Timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        other => return Err(Error::Internal(format!("no scalar form for Arrow type {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_round_trip_through_arrow() {
        for ty in FeatureType::ALL {
            let value = match ty {
                FeatureType::Bool => Scalar::Bool(true),
                FeatureType::Int32 => Scalar::Int32(-3),
                FeatureType::Int64 => Scalar::Int64(i64::MIN),
                FeatureType::Float32 => Scalar::Float32(0.25),
                FeatureType::Float64 => Scalar::Float64(f64::INFINITY),
                FeatureType::String => Scalar::String("x".into()),
                FeatureType::Timestamp => Scalar::Timestamp(-1),
            };
            let array = to_array(ty, &[value.clone(), Scalar::Null]).unwrap();
            assert_eq!(scalar_at(&array, 0).unwrap(), value);
            assert_eq!(scalar_at(&array, 1).unwrap(), Scalar::Null);
        }
        assert!(to_array(FeatureType::Int64, &[Scalar::String("1".into())]).is_err());
    }

    #[test]
    fn request_values_from_text() {
        assert_eq!(Scalar::parse("3.5", FeatureType::Float64), Ok(Scalar::Float64(3.5)));
        assert_eq!(Scalar::parse("true", FeatureType::Bool), Ok(Scalar::Bool(true)));
        assert_eq!(
            Scalar::parse("1970-01-01T00:00:01Z", FeatureType::Timestamp),
            Ok(Scalar::Timestamp(1_000_000))
        );
        assert!(
            Scalar::parse("x", FeatureType::Int32)
                .unwrap_err()
                .to_string()
                .contains("`x`")
        );
    }
}
