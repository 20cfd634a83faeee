//! Instants and values as text: how every path reads an instant it is given and writes the
//! values and instants it answers with (one JSON convention for the server, the CLI, the
//! served log and manifests).

use chrono::Utc;

/// Text that is not an accepted instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstantTextError {
    /// Not in any of the forms [`parse_instant`] reads.
    NotAnInstant { text: String },
    /// An instant, outside the accepted range.
    Refused {
        text: String,
        why: skewless_defs::instant::InstantError,
    },
}

impl std::fmt::Display for InstantTextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantTextError::NotAnInstant { text } => write!(
                f,
                "`{text}` is not an instant: use `now`, RFC 3339 (2025-01-01T12:00:00Z), or a date (2025-01-01)"
            ),
            InstantTextError::Refused { text, why } => write!(f, "`{text}`: {why}"),
        }
    }
}

impl std::error::Error for InstantTextError {}

/// Reads an instant: `now`, RFC 3339 (`2025-01-01T12:00:00Z`, any offset), a naive
/// date-time (UTC), or a date (midnight UTC). Returns µs since the epoch.
pub fn parse_instant(text: &str) -> Result<i64, InstantTextError> {
    let text = text.trim();
    let micros = parse_any_instant(text).ok_or_else(|| InstantTextError::NotAnInstant { text: text.to_string() })?;
    skewless_defs::instant::check(micros).map_err(|why| InstantTextError::Refused {
        text: text.to_string(),
        why,
    })?;
    Ok(micros)
}

/// [`parse_instant`] without the range check.
fn parse_any_instant(text: &str) -> Option<i64> {
    if text == "now" {
        return Some(Utc::now().timestamp_micros());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_micros())
}

/// A value as JSON, the one convention of every JSON skewless writes: numbers as numbers,
/// except the non-finite floats JSON cannot hold, which are the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"` (as in the protobuf JSON mapping); null as null;
/// timestamps as RFC 3339 UTC strings.
pub fn scalar_to_json(value: &skewless_online::Scalar) -> serde_json::Value {
    serde_json::to_value(ScalarJson(value)).unwrap_or(serde_json::Value::Null)
}

/// A value serialized as [`scalar_to_json`] writes it, without building a JSON tree: for
/// answers written straight to bytes (the feature server).
#[derive(Debug, Clone, Copy)]
pub struct ScalarJson<'a>(pub &'a skewless_online::Scalar);

impl serde::Serialize for ScalarJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use skewless_online::Scalar;
        let float = |x: f64, serializer: S| {
            if x.is_finite() {
                serializer.serialize_f64(x)
            } else if x.is_nan() {
                serializer.serialize_str("NaN")
            } else if x > 0.0 {
                serializer.serialize_str("Infinity")
            } else {
                serializer.serialize_str("-Infinity")
            }
        };
        match self.0 {
            Scalar::Null => serializer.serialize_unit(),
            Scalar::Bool(b) => serializer.serialize_bool(*b),
            Scalar::Int32(i) => serializer.serialize_i32(*i),
            Scalar::Int64(i) => serializer.serialize_i64(*i),
            // Through its shortest decimal form, so 0.5379f32 prints as 0.5379, not 0.537899971.
            Scalar::Float32(x) => float(x.to_string().parse().unwrap_or(f64::from(*x)), serializer),
            Scalar::Float64(x) => float(*x, serializer),
            Scalar::String(s) => serializer.serialize_str(s),
            Scalar::Timestamp(t) => InstantJson(*t).serialize(serializer),
        }
    }
}

/// µs since the epoch as RFC 3339 UTC, for output: `2026-11-14T22:52:04.592672Z`, with
/// the fraction as milliseconds when it is whole milliseconds and left out when it is zero
/// (chrono's `AutoSi`). Years 0 to 9999 are written here directly (a server answer holds one
/// per value); others go through chrono, which writes them with a sign.
pub fn format_instant(micros: i64) -> String {
    match InstantText::new(micros) {
        Some(text) => text.as_str().to_string(),
        None => chrono::DateTime::from_timestamp_micros(micros).map_or_else(
            || format!("{micros}µs"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
    }
}

/// An instant serialized as [`format_instant`] writes it, without allocating: for answers
/// written straight to bytes.
#[derive(Debug, Clone, Copy)]
pub struct InstantJson(pub i64);

impl serde::Serialize for InstantJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match InstantText::new(self.0) {
            Some(text) => serializer.serialize_str(text.as_str()),
            None => serializer.serialize_str(&format_instant(self.0)),
        }
    }
}

/// The text of an instant of the years 0 to 9999, on the stack.
struct InstantText {
    bytes: [u8; 27],
    len: usize,
}

impl InstantText {
    fn new(micros: i64) -> Option<Self> {
        let seconds = micros.div_euclid(1_000_000);
        let fraction = micros.rem_euclid(1_000_000);
        let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut text = InstantText { bytes: [0; 27], len: 0 };
        text.digits(year, 4);
        for (separator, value) in [
            (b'-', month),
            (b'-', day),
            (b'T', second_of_day / 3600),
            (b':', second_of_day / 60 % 60),
            (b':', second_of_day % 60),
        ] {
            text.push(separator);
            text.digits(value, 2);
        }
        if fraction != 0 {
            text.push(b'.');
            if fraction % 1000 == 0 {
                text.digits(fraction / 1000, 3);
            } else {
                text.digits(fraction, 6);
            }
        }
        text.push(b'Z');
        Some(text)
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// `n` (≥ 0) in `width` decimal digits, zero-padded.
    fn digits(&mut self, n: i64, width: usize) {
        let mut n = n;
        for slot in self.bytes[self.len..self.len + width].iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.len += width;
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path writes what chrono writes, over random instants and the edges.
    #[test]
    fn instants_are_formatted_as_chrono_formats_them() {
        let chrono = |micros: i64| {
            chrono::DateTime::from_timestamp_micros(micros)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges = [
            0,
            -1,
            1,
            999,
            1000,
            1_000_000,
            -1_000_000,
            951_782_400_000_000,     // 2000-02-29
            -62_167_219_200_000_000, // 0000-01-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01: through chrono
            -62_167_219_200_000_001, // before year 0: through chrono
        ];
        let randoms = (0..20_000).map(|i| {
            let r = random() as i64 % 253_402_300_800_000_000;
            // Some whole seconds and whole milliseconds too.
            match i % 3 {
                0 => r,
                1 => r / 1_000_000 * 1_000_000,
                _ => r / 1000 * 1000,
            }
        });
        for micros in edges.into_iter().chain(randoms) {
            assert_eq!(format_instant(micros), chrono(micros), "{micros}");
        }
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1_000_000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Ok(1_000_000));
        assert_eq!(parse_instant("1970-01-01T00:00:01.5"), Ok(1_500_000));
        assert_eq!(parse_instant("1970-01-02"), Ok(86_400_000_000));
        assert!(parse_instant("yesterday").is_err());
        assert_eq!(format_instant(1_500_000), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn json_convention_for_non_finite_floats() {
        use serde_json::json;
        use skewless_online::Scalar;
        assert_eq!(scalar_to_json(&Scalar::Float64(f64::NAN)), json!("NaN"));
        assert_eq!(scalar_to_json(&Scalar::Float32(f32::INFINITY)), json!("Infinity"));
        assert_eq!(scalar_to_json(&Scalar::Float64(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(scalar_to_json(&Scalar::Float32(0.5379)), json!(0.5379));
        assert_eq!(scalar_to_json(&Scalar::Null), json!(null));
    }
}
