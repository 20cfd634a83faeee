//! The one rule for a value a request gives: an entity's join key, an on-demand view's
//! request field, or a pushed cell, typed as declared.
//!
//! A value arrives as JSON (a number, a string or a boolean: lookups of both APIs, pushes) or
//! as untyped text (a command line's `--entity`, a spine's values in parity). JSON is typed
//! as it is read (the server's parsers hand each value to this rule as a [`Given`], without
//! making text of it first). The rule is the same whatever the entry point, and never
//! guesses:
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
//! a number, and the same value is refused the same way by a lookup and a push. JSON reads
//! a number written with a fraction or an exponent (`1001.0`, `1e3`, `-0`) as a float, which
//! is never an integer.

use skewless_defs::{FeatureType, KeyType};

use crate::layout::{KeyValue, Scalar};

/// A value as a request gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Given<'a> {
    /// A JSON number written as an integer (`1001`, `-3`).
    Int(i64),
    /// A JSON integer above `i64::MAX`.
    UInt(u64),
    /// Any other JSON number (`3.25`, `1e-3`, `1001.0`, `-0`).
    Float(f64),
    /// A JSON string.
    Str(&'a str),
    /// A JSON `true` or `false`.
    Bool(bool),
    /// JSON `null`.
    Null,
    /// A JSON list or object: never a value.
    Nested(GivenKind),
    /// Text with no JSON kind: a command line, a spine value.
    Text(&'a str),
}

/// The kind of a given value, as a message names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenKind {
    Number,
    String,
    Bool,
    Null,
    List,
    Object,
    Text,
}

impl Given<'_> {
    pub fn kind(&self) -> GivenKind {
        match self {
            Given::Int(_) | Given::UInt(_) | Given::Float(_) => GivenKind::Number,
            Given::Str(_) => GivenKind::String,
            Given::Bool(_) => GivenKind::Bool,
            Given::Null => GivenKind::Null,
            Given::Nested(kind) => *kind,
            Given::Text(_) => GivenKind::Text,
        }
    }

    /// The value as a message quotes it (JSON's spelling for numbers: `3.0`, `-0.0`).
    fn shown(&self) -> String {
        match self {
            Given::Int(i) => i.to_string(),
            Given::UInt(u) => u.to_string(),
            Given::Float(x) => serde_json::Number::from_f64(*x).map_or_else(|| x.to_string(), |n| n.to_string()),
            Given::Str(s) | Given::Text(s) => s.to_string(),
            Given::Bool(b) => b.to_string(),
            Given::Null => "null".into(),
            Given::Nested(GivenKind::List) => "a list".into(),
            Given::Nested(_) => "an object".into(),
        }
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
    pub given: GivenKind,
    pub text: String,
    /// The value has the right form but does not fit the type.
    pub out_of_range: bool,
}

impl ValueError {
    /// `given` refused where `expected` was wanted.
    pub fn new(expected: &'static str, given: Given<'_>) -> Self {
        let text = given.shown();
        let text = if text.chars().count() > QUOTED_CHARS {
            format!("{}…", text.chars().take(QUOTED_CHARS).collect::<String>())
        } else {
            text
        };
        ValueError {
            expected,
            given: given.kind(),
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
            GivenKind::String => format!("the string {shown:?}"),
            GivenKind::Number => format!("the number {shown}"),
            GivenKind::Bool => format!("the boolean {shown}"),
            GivenKind::Text => format!("`{shown}`"),
            GivenKind::Null => "null".into(),
            GivenKind::List | GivenKind::Object => shown.clone(),
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

/// A type's phrases in messages: (plain, for a value given as a JSON string).
pub type Phrases = (&'static str, &'static str);
pub const INT64: Phrases = ("an int64", "an int64 (a JSON number)");
pub const INT32: Phrases = ("an int32", "an int32 (a JSON number)");
pub const INT16: Phrases = ("an int16", "an int16 (a JSON number)");
pub const INT8: Phrases = ("an int8", "an int8 (a JSON number)");
pub const UINT64: Phrases = ("a uint64", "a uint64 (a JSON number)");
pub const UINT32: Phrases = ("a uint32", "a uint32 (a JSON number)");
pub const UINT16: Phrases = ("a uint16", "a uint16 (a JSON number)");
pub const UINT8: Phrases = ("a uint8", "a uint8 (a JSON number)");

/// An integer of type `T` (see the module docs for the rule).
pub fn integer<T>(given: Given<'_>, (plain, as_json): Phrases) -> Result<T, ValueError>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
{
    let out_of_range = || ValueError::new(plain, given).out_of_range();
    match given {
        Given::Int(i) => T::try_from(i).map_err(|_| out_of_range()),
        Given::UInt(u) => T::try_from(u).map_err(|_| out_of_range()),
        Given::Text(text) if plain_integer(text) => text.parse().map_err(|_| out_of_range()),
        Given::Str(_) => Err(ValueError::new(as_json, given)),
        _ => Err(ValueError::new(plain, given)),
    }
}

const FLOAT64: Phrases = (
    "a float64",
    "a float64 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\")",
);
const FLOAT32: Phrases = (
    "a float32",
    "a float32 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\")",
);

/// A float: finite decimal numbers in range of the type, or the three names.
fn float(given: Given<'_>, max: f64, (plain, as_json): Phrases) -> Result<f64, ValueError> {
    let in_range = |x: f64| {
        if x.abs() <= max {
            Ok(x)
        } else {
            Err(ValueError::new(plain, given).out_of_range())
        }
    };
    let named = |text: &str| match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    match given {
        Given::Int(i) => in_range(i as f64),
        Given::UInt(u) => in_range(u as f64),
        Given::Float(x) => in_range(x),
        Given::Str(text) | Given::Text(text) if let Some(x) = named(text) => Ok(x),
        Given::Text(text) if plain_decimal(text) => match text.parse::<f64>() {
            Ok(x) => in_range(x),
            Err(_) => Err(ValueError::new(plain, given).out_of_range()),
        },
        Given::Str(_) => Err(ValueError::new(as_json, given)),
        _ => Err(ValueError::new(plain, given)),
    }
}

/// A float64 (see the module docs for the rule).
pub fn float64(given: Given<'_>) -> Result<f64, ValueError> {
    float(given, f64::MAX, FLOAT64)
}

/// A float32: read as a float64, then rounded once to the nearest float32; a finite number
/// beyond float32's range is refused, never rounded to an infinity.
pub fn float32(given: Given<'_>) -> Result<f32, ValueError> {
    float(given, f64::from(f32::MAX), FLOAT32).map(|x| x as f32)
}

/// `true` or `false`.
pub fn boolean(given: Given<'_>) -> Result<bool, ValueError> {
    match given {
        Given::Bool(b) => Ok(b),
        Given::Text("true") => Ok(true),
        Given::Text("false") => Ok(false),
        _ => Err(ValueError::new("true or false", given)),
    }
}

/// A string: a JSON string or text, never a number or boolean.
pub fn string<'a>(given: Given<'a>) -> Result<&'a str, ValueError> {
    match given {
        Given::Str(text) | Given::Text(text) => Ok(text),
        _ => Err(ValueError::new("a string", given)),
    }
}

/// An instant given as a number of seconds since the epoch, in µs; `None` when `given` is
/// not a number.
pub fn seconds(given: Given<'_>) -> Option<Result<i64, ValueError>> {
    let out_of_range = || ValueError::new("an instant", given).out_of_range();
    Some(match given {
        Given::Int(s) => s.checked_mul(1_000_000).ok_or_else(out_of_range),
        Given::UInt(_) => Err(out_of_range()),
        Given::Float(s) => {
            let micros = (s * 1e6).round();
            if (-9.2e18..9.2e18).contains(&micros) {
                Ok(micros as i64)
            } else {
                Err(out_of_range())
            }
        }
        _ => return None,
    })
}

impl KeyValue {
    /// A join key of type `ty` as given (see the module docs for the rule).
    pub fn from_given(given: Given<'_>, ty: KeyType) -> Result<Self, ValueError> {
        match ty {
            KeyType::Int64 => integer(given, INT64).map(KeyValue::Int64),
            KeyType::String => string(given).map(|s| KeyValue::String(s.to_string())),
        }
    }

    /// A join key from text (a command line): [`KeyValue::from_given`] with [`Given::Text`].
    pub fn parse(text: &str, ty: KeyType) -> Result<Self, ValueError> {
        Self::from_given(Given::Text(text), ty)
    }
}

impl Scalar {
    /// A request field of type `ty` as given (see the module docs for the rule).
    pub fn from_given(given: Given<'_>, ty: FeatureType) -> Result<Self, ValueError> {
        Ok(match ty {
            FeatureType::Bool => Scalar::Bool(boolean(given)?),
            FeatureType::Int32 => Scalar::Int32(integer(given, INT32)?),
            FeatureType::Int64 => Scalar::Int64(integer(given, INT64)?),
            FeatureType::Float32 => Scalar::Float32(float32(given)?),
            FeatureType::Float64 => Scalar::Float64(float64(given)?),
            FeatureType::String => Scalar::String(string(given)?.to_string()),
            FeatureType::Timestamp => Scalar::Timestamp(match given {
                Given::Str(text) | Given::Text(text) => chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| ValueError::new("an RFC 3339 instant", given))?
                    .timestamp_micros(),
                _ => seconds(given).unwrap_or_else(|| Err(ValueError::new("an instant", given)))?,
            }),
        })
    }

    /// A request field from text (a command line): [`Scalar::from_given`] with [`Given::Text`].
    pub fn parse(text: &str, ty: FeatureType) -> Result<Self, ValueError> {
        Self::from_given(Given::Text(text), ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as a table: (given, declared type, parsed or refused).
    #[test]
    fn one_rule_for_every_entry_point() {
        use FeatureType as F;
        use Given::{Bool as B, Float as X, Int as I, Str as S, Text as T};
        let ok = |v: Scalar| Some(v);
        let cases: &[(Given, FeatureType, Option<Scalar>)] = &[
            (I(1001), F::Int64, ok(Scalar::Int64(1001))),
            (T("1001"), F::Int64, ok(Scalar::Int64(1001))),
            (T("-3"), F::Int64, ok(Scalar::Int64(-3))),
            (I(0), F::Int64, ok(Scalar::Int64(0))),
            (S("1001"), F::Int64, None),
            (T(" 1001"), F::Int64, None),
            (T("+1001"), F::Int64, None),
            (T("01001"), F::Int64, None),
            (T("-0"), F::Int64, None),
            (X(-0.0), F::Int64, None),
            (X(1001.0), F::Int64, None),
            (X(1e3), F::Int64, None),
            (Given::UInt(9223372036854775808), F::Int64, None),
            (T("9223372036854775808"), F::Int64, None),
            (I(2147483648), F::Int32, None),
            (B(true), F::Int64, None),
            (Given::Null, F::Int64, None),
            (Given::Nested(GivenKind::List), F::Int64, None),
            (X(3.2), F::Float64, ok(Scalar::Float64(3.2))),
            (I(3), F::Float64, ok(Scalar::Float64(3.0))),
            (T("-0.0"), F::Float64, ok(Scalar::Float64(-0.0))),
            (X(-0.0), F::Float64, ok(Scalar::Float64(-0.0))),
            (T("1e-3"), F::Float64, ok(Scalar::Float64(1e-3))),
            (S("NaN"), F::Float64, ok(Scalar::Float64(f64::NAN))),
            (T("-Infinity"), F::Float64, ok(Scalar::Float64(f64::NEG_INFINITY))),
            (S("inf"), F::Float64, None),
            (T("inf"), F::Float64, None),
            (T("1e400"), F::Float64, None),
            (X(1e39), F::Float32, None),
            (T("1e39"), F::Float32, None),
            (X(0.1), F::Float32, ok(Scalar::Float32(0.1))),
            (S("3.2"), F::Float64, None),
            (T("0x1p3"), F::Float64, None),
            (T(".5"), F::Float64, None),
            (T("NaN"), F::Float64, ok(Scalar::Float64(f64::NAN))),
            (S("gold"), F::String, ok(Scalar::String("gold".into()))),
            (I(1001), F::String, None),
            (B(true), F::String, None),
            (B(true), F::Bool, ok(Scalar::Bool(true))),
            (T("false"), F::Bool, ok(Scalar::Bool(false))),
            (S("true"), F::Bool, None),
            (I(1), F::Bool, None),
            (T("True"), F::Bool, None),
            (
                S("1970-01-01T00:00:01Z"),
                F::Timestamp,
                ok(Scalar::Timestamp(1_000_000)),
            ),
            (X(1.5), F::Timestamp, ok(Scalar::Timestamp(1_500_000))),
            (I(2), F::Timestamp, ok(Scalar::Timestamp(2_000_000))),
            (X(1e300), F::Timestamp, None),
            (I(i64::MAX), F::Timestamp, None),
            (B(false), F::Timestamp, None),
        ];
        for (given, ty, expected) in cases {
            let got = Scalar::from_given(*given, *ty);
            match (expected, &got) {
                (Some(want), Ok(value)) => {
                    // Bit for bit (NaN, -0.0).
                    assert_eq!(format!("{want:?}"), format!("{value:?}"), "{given:?} {ty}");
                }
                (None, Err(error)) => assert!(!error.to_string().is_empty()),
                _ => panic!("{given:?} for {ty}: got {got:?}, expected {expected:?}"),
            }
        }
        // Keys follow the same rule as fields of their type.
        assert_eq!(KeyValue::from_given(I(1001), KeyType::Int64), Ok(KeyValue::Int64(1001)));
        assert!(KeyValue::from_given(S("1001"), KeyType::Int64).is_err());
        assert!(KeyValue::from_given(I(1001), KeyType::String).is_err());
        assert_eq!(
            KeyValue::from_given(S("007"), KeyType::String),
            Ok(KeyValue::String("007".into()))
        );
        let error = KeyValue::from_given(S("1001"), KeyType::Int64).unwrap_err();
        assert_eq!(error.expected, "an int64 (a JSON number)");
        assert_eq!(
            error.to_string(),
            "expected an int64 (a JSON number), found the string \"1001\""
        );
        // Numbers are quoted as JSON spells them, so `3.0` is not taken for `3`.
        assert_eq!(
            KeyValue::from_given(X(3.0), KeyType::Int64).unwrap_err().to_string(),
            "expected an int64, found the number 3.0"
        );
        assert_eq!(
            KeyValue::from_given(Given::Null, KeyType::String)
                .unwrap_err()
                .to_string(),
            "expected a string, found null"
        );
        let long = "9".repeat(100);
        let error = KeyValue::from_given(T(&long), KeyType::Int64).unwrap_err();
        assert!(error.out_of_range);
        assert_eq!(error.text.chars().count(), QUOTED_CHARS + 1, "{error}");
    }
}
