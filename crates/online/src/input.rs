//! The one rule for a value a request gives: an entity's join key or an on-demand view's
//! request field, typed as declared.
//!
//! A value arrives as JSON (a number, a string or a boolean: lookups of both APIs, pushes) or
//! as untyped text (a command line's `--entity`, a spine's values in parity). The rule is the
//! same whatever the entry point, and never guesses:
//!
//! | declared type | JSON | text |
//! |---|---|---|
//! | int64 / int32 (keys, fields) | an integer number in range (`1001`; not `"1001"`, `1001.0` or `-0`) | decimal digits with an optional `-`, no `+`, no leading zero, no space (`1001`, `-3`, `0`) |
//! | string | a string (`"1001"`; not `1001`) | the text as it is |
//! | float64 / float32 | a number, or one of the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (the form skewless writes) | a decimal number (`3.2`, `-0.0`, `1e-3`) or `NaN`, `Infinity`, `-Infinity`; not `inf`, `0x1p3`, or a number too large for the type (`1e400`) |
//! | bool | `true` or `false` | `true` or `false` |
//! | timestamp | an RFC 3339 string, or a number of seconds since the epoch | RFC 3339 |
//!
//! So `"1001"` is never an int64 key (a string key is not an int key), a JSON string is never
//! a number, and the same value is refused the same way by a lookup and a push.

use skewless_defs::{FeatureType, KeyType};

use crate::layout::{KeyValue, Scalar};

/// How a request gave a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// A JSON number, as JSON wrote it (`1001`, `3.25`, `1e-3`).
    Number,
    /// A JSON string.
    String,
    /// A JSON `true` or `false`.
    Bool,
    /// Text with no JSON kind: a command line, a spine value.
    Text,
}

/// A value as a request gave it: its text and the kind it came as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenValue {
    pub text: String,
    pub given: Given,
}

impl GivenValue {
    pub fn text(text: impl Into<String>) -> Self {
        GivenValue {
            text: text.into(),
            given: Given::Text,
        }
    }
}

/// What the serving core reads an entity's fields from: text (command line, tests) or JSON
/// values with their kinds (the server).
pub trait FieldInput {
    fn given(&self) -> (&str, Given);
}

impl FieldInput for String {
    fn given(&self) -> (&str, Given) {
        (self, Given::Text)
    }
}

impl FieldInput for GivenValue {
    fn given(&self) -> (&str, Given) {
        (&self.text, self.given)
    }
}

/// Values are quoted in messages up to this many characters (an answer never echoes a
/// huge input back).
pub const QUOTED_CHARS: usize = 64;

/// A value the rule refuses: what its declared type takes, and what was given (its kind and
/// its text, cut to [`QUOTED_CHARS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {}{}", self.found(), if self.out_of_range { " (out of range)" } else { "" })]
pub struct ValueError {
    /// What the declared type takes, as a phrase (`an int64 (a JSON number)`).
    pub expected: &'static str,
    pub given: Given,
    pub text: String,
    /// The value has the right form but does not fit the type.
    pub out_of_range: bool,
}

impl ValueError {
    fn new(expected: &'static str, text: &str, given: Given) -> Self {
        let text = if text.chars().count() > QUOTED_CHARS {
            format!("{}…", text.chars().take(QUOTED_CHARS).collect::<String>())
        } else {
            text.to_string()
        };
        ValueError {
            expected,
            given,
            text,
            out_of_range: false,
        }
    }

    fn out_of_range(mut self) -> Self {
        self.out_of_range = true;
        self
    }

    /// The value as the message shows it, by its kind.
    fn found(&self) -> String {
        let shown = &self.text;
        match self.given {
            Given::String => format!("the string {shown:?}"),
            Given::Number => format!("the number {shown}"),
            Given::Bool => format!("the boolean {shown}"),
            Given::Text => format!("`{shown}`"),
        }
    }
}

/// An integer written plainly: `-?(0|[1-9][0-9]*)`, not `-0`.
fn plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0"
}

/// A decimal number: `-?digits(.digits)?([eE][+-]?digits)?` (a JSON number's syntax).
fn plain_decimal(text: &str) -> bool {
    let rest = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && fraction.is_none_or(digits)
        && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// An integer type's phrases: (plain, for a JSON string).
type IntegerNames = (&'static str, &'static str);
const INT64: IntegerNames = ("an int64", "an int64 (a JSON number)");
const INT32: IntegerNames = ("an int32", "an int32 (a JSON number)");

fn integer<T: std::str::FromStr>(text: &str, given: Given, (plain, as_json): IntegerNames) -> Result<T, ValueError> {
    match given {
        Given::Number | Given::Text if plain_integer(text) => text
            .parse()
            .map_err(|_| ValueError::new(plain, text, given).out_of_range()),
        Given::String => Err(ValueError::new(as_json, text, given)),
        _ => Err(ValueError::new(plain, text, given)),
    }
}

/// A float type's phrases: (plain, for a JSON string).
type FloatNames = (&'static str, &'static str);
const FLOAT64: FloatNames = (
    "a float64",
    "a float64 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\")",
);
const FLOAT32: FloatNames = (
    "a float32",
    "a float32 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\")",
);

/// A float: finite decimal numbers in range of the type, or the three names.
fn float(text: &str, given: Given, max: f64, (plain, as_json): FloatNames) -> Result<f64, ValueError> {
    let named = match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    match (given, named) {
        (Given::String | Given::Text, Some(x)) => Ok(x),
        (Given::Number | Given::Text, None) if plain_decimal(text) => match text.parse::<f64>() {
            Ok(x) if x.abs() <= max => Ok(x),
            _ => Err(ValueError::new(plain, text, given).out_of_range()),
        },
        (Given::String, None) => Err(ValueError::new(as_json, text, given)),
        _ => Err(ValueError::new(plain, text, given)),
    }
}

fn boolean(text: &str, given: Given) -> Result<bool, ValueError> {
    match (given, text) {
        (Given::Bool | Given::Text, "true") => Ok(true),
        (Given::Bool | Given::Text, "false") => Ok(false),
        _ => Err(ValueError::new("true or false", text, given)),
    }
}

fn string(text: &str, given: Given) -> Result<String, ValueError> {
    match given {
        Given::String | Given::Text => Ok(text.to_string()),
        _ => Err(ValueError::new("a string", text, given)),
    }
}

impl KeyValue {
    /// A join key of type `ty` as given (see the module docs for the rule).
    pub fn from_given(text: &str, given: Given, ty: KeyType) -> Result<Self, ValueError> {
        match ty {
            KeyType::Int64 => integer(text, given, INT64).map(KeyValue::Int64),
            KeyType::String => string(text, given).map(KeyValue::String),
        }
    }

    /// A join key from text (a command line): [`KeyValue::from_given`] with [`Given::Text`].
    pub fn parse(text: &str, ty: KeyType) -> Result<Self, ValueError> {
        Self::from_given(text, Given::Text, ty)
    }
}

impl Scalar {
    /// A request field of type `ty` as given (see the module docs for the rule).
    pub fn from_given(text: &str, given: Given, ty: FeatureType) -> Result<Self, ValueError> {
        Ok(match ty {
            FeatureType::Bool => Scalar::Bool(boolean(text, given)?),
            FeatureType::Int32 => Scalar::Int32(integer(text, given, INT32)?),
            FeatureType::Int64 => Scalar::Int64(integer(text, given, INT64)?),
            FeatureType::Float32 => Scalar::Float32(float(text, given, f64::from(f32::MAX), FLOAT32)? as f32),
            FeatureType::Float64 => Scalar::Float64(float(text, given, f64::MAX, FLOAT64)?),
            FeatureType::String => Scalar::String(string(text, given)?),
            FeatureType::Timestamp => Scalar::Timestamp(match given {
                Given::Number => {
                    let seconds: f64 = text
                        .parse()
                        .map_err(|_| ValueError::new("seconds since the epoch", text, given))?;
                    let micros = (seconds * 1e6).round();
                    if !(-9.2e18..9.2e18).contains(&micros) {
                        return Err(ValueError::new("an instant", text, given).out_of_range());
                    }
                    micros as i64
                }
                Given::String | Given::Text => chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| ValueError::new("an RFC 3339 instant", text, given))?
                    .timestamp_micros(),
                Given::Bool => return Err(ValueError::new("an instant", text, given)),
            }),
        })
    }

    /// A request field from text (a command line): [`Scalar::from_given`] with [`Given::Text`].
    pub fn parse(text: &str, ty: FeatureType) -> Result<Self, ValueError> {
        Self::from_given(text, Given::Text, ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as a table: (text, given, declared type, parsed or refused).
    #[test]
    fn one_rule_for_every_entry_point() {
        use FeatureType as F;
        use Given::{Bool as B, Number as N, String as S, Text as T};
        let ok = |v: Scalar| Some(v);
        let cases: &[(&str, Given, FeatureType, Option<Scalar>)] = &[
            ("1001", N, F::Int64, ok(Scalar::Int64(1001))),
            ("1001", T, F::Int64, ok(Scalar::Int64(1001))),
            ("-3", T, F::Int64, ok(Scalar::Int64(-3))),
            ("0", N, F::Int64, ok(Scalar::Int64(0))),
            ("1001", S, F::Int64, None),
            (" 1001", T, F::Int64, None),
            ("+1001", T, F::Int64, None),
            ("01001", T, F::Int64, None),
            ("-0", T, F::Int64, None),
            ("-0.0", N, F::Int64, None),
            ("1001.0", N, F::Int64, None),
            ("1e3", N, F::Int64, None),
            ("9223372036854775808", N, F::Int64, None),
            ("2147483648", N, F::Int32, None),
            ("true", B, F::Int64, None),
            ("3.2", N, F::Float64, ok(Scalar::Float64(3.2))),
            ("-0.0", T, F::Float64, ok(Scalar::Float64(-0.0))),
            ("1e-3", T, F::Float64, ok(Scalar::Float64(1e-3))),
            ("NaN", S, F::Float64, ok(Scalar::Float64(f64::NAN))),
            ("-Infinity", T, F::Float64, ok(Scalar::Float64(f64::NEG_INFINITY))),
            ("inf", S, F::Float64, None),
            ("inf", T, F::Float64, None),
            ("1e400", T, F::Float64, None),
            ("1e39", N, F::Float32, None),
            ("3.2", S, F::Float64, None),
            ("0x1p3", T, F::Float64, None),
            (".5", T, F::Float64, None),
            ("NaN", N, F::Float64, None),
            ("gold", S, F::String, ok(Scalar::String("gold".into()))),
            ("1001", N, F::String, None),
            ("true", B, F::String, None),
            ("true", B, F::Bool, ok(Scalar::Bool(true))),
            ("false", T, F::Bool, ok(Scalar::Bool(false))),
            ("true", S, F::Bool, None),
            ("1", N, F::Bool, None),
            ("True", T, F::Bool, None),
            (
                "1970-01-01T00:00:01Z",
                S,
                F::Timestamp,
                ok(Scalar::Timestamp(1_000_000)),
            ),
            ("1.5", N, F::Timestamp, ok(Scalar::Timestamp(1_500_000))),
            ("1e300", N, F::Timestamp, None),
        ];
        for (text, given, ty, expected) in cases {
            let got = Scalar::from_given(text, *given, *ty);
            match (expected, &got) {
                (Some(want), Ok(value)) => {
                    // Bit for bit (NaN, -0.0).
                    assert_eq!(format!("{want:?}"), format!("{value:?}"), "{text} {given:?} {ty}");
                }
                (None, Err(error)) => assert!(!error.to_string().is_empty()),
                _ => panic!("{text:?} given as {given:?} for {ty}: got {got:?}, expected {expected:?}"),
            }
        }
        // Keys follow the same rule as fields of their type.
        assert_eq!(
            KeyValue::from_given("1001", N, KeyType::Int64),
            Ok(KeyValue::Int64(1001))
        );
        assert!(KeyValue::from_given("1001", S, KeyType::Int64).is_err());
        assert!(KeyValue::from_given("1001", N, KeyType::String).is_err());
        assert_eq!(
            KeyValue::from_given("007", S, KeyType::String),
            Ok(KeyValue::String("007".into()))
        );
        let error = KeyValue::from_given("1001", S, KeyType::Int64).unwrap_err();
        assert_eq!(error.expected, "an int64 (a JSON number)");
        assert_eq!(
            error.to_string(),
            "expected an int64 (a JSON number), found the string \"1001\""
        );
        let long = "9".repeat(100);
        let error = KeyValue::from_given(&long, N, KeyType::Int64).unwrap_err();
        assert!(error.out_of_range);
        assert_eq!(error.text.chars().count(), QUOTED_CHARS + 1, "{error}");
    }
}
