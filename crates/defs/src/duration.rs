//! Durations as written in definitions: `90s`, `15m`, `2h`, `7d`, `1w`, or sums like `1h30m`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds; what `ttl` and windows are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    seconds: u64,
}

const UNITS: [(char, u64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl Duration {
    pub const fn from_seconds(seconds: u64) -> Self {
        Duration { seconds }
    }

    pub const fn seconds(self) -> u64 {
        self.seconds
    }

    pub const fn micros(self) -> i64 {
        // ttl values are bounded by parsing (< 2^63 µs, about 292 000 years).
        (self.seconds as i64).saturating_mul(1_000_000)
    }
}

/// Why a duration did not parse; rendered after "invalid duration `x`: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub &'static str);

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DurationError("expected a number followed by a unit: s, m, h, d or w"));
        }
        let mut total: u64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(DurationError("expected a number followed by a unit: s, m, h, d or w"));
            }
            let number: u64 = rest[..digits].parse().map_err(|_| DurationError("number too large"))?;
            let unit = rest[digits..]
                .chars()
                .next()
                .ok_or(DurationError("missing unit: s, m, h, d or w"))?;
            let (_, scale) = UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .ok_or(DurationError("unknown unit; use s, m, h, d or w"))?;
            let part = number.checked_mul(*scale).ok_or(DurationError("duration too large"))?;
            total = total.checked_add(part).ok_or(DurationError("duration too large"))?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        if total > i64::MAX as u64 / 1_000_000 {
            return Err(DurationError("duration too large"));
        }
        Ok(Duration { seconds: total })
    }
}

impl fmt::Display for Duration {
    /// The canonical form: `1h30m`, `2d`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.seconds;
        // Weeks parse but never print: `30d` reads better than `4w2d`.
        for (unit, scale) in UNITS.into_iter().skip(1) {
            if rest >= scale {
                write!(f, "{}{unit}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e: DurationError| serde::de::Error::custom(e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let secs = |t: &str| t.parse::<Duration>().map(Duration::seconds);
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("2h"), Ok(7_200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("1w"), Ok(604_800));
        assert_eq!(secs("1h30m"), Ok(5_400));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "10",
            "h",
            "2x",
            "1.5h",
            "-3h",
            "99999999999999999999s",
            "300000000000d",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn display_round_trips_canonically() {
        for (text, canonical) in [
            ("90s", "1m30s"),
            ("120m", "2h"),
            ("1h30m", "1h30m"),
            ("14d", "14d"),
            ("2w", "14d"),
            ("0s", "0s"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string(), canonical);
            assert_eq!(canonical.parse::<Duration>().unwrap(), d);
        }
    }
}
