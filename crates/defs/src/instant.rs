//! The instants skewless accepts, on every path that takes one from outside: pushed event and
//! availability times, lookup clocks (`at`), materialization bounds.
//!
//! The online store keeps one latest value per key, chosen newest-wins. A row with an event
//! time far in the future (a millisecond epoch read as seconds lands in the year 58,900)
//! would win against every real row and hide them all from lookups, while training sets at
//! real instants never see it: silent skew. So instants given from outside must lie in
//! [`EARLIEST`, `LATEST`) (1900-01-01 to 2200-01-01 UTC), which a unit mistake (seconds for
//! milliseconds or microseconds) always leaves; and pushed rows must not be more than
//! [`PUSH_AHEAD_MICROS`] ahead of the ingestion clock (clock skew between client and
//! server), so no row can hide a key's current value for longer than that.
//!
//! Source files are not checked row by row: their rows are only ever read at instants that
//! passed this check, and a row after such an instant is never a candidate.

/// 1900-01-01T00:00:00Z, in µs since the epoch: the earliest instant accepted.
pub const EARLIEST: i64 = -2_208_988_800_000_000;
/// 2200-01-01T00:00:00Z, in µs since the epoch: the first instant refused.
pub const LATEST: i64 = 7_258_118_400_000_000;
/// How far ahead of the ingestion clock a pushed event or availability time may be: 5 min.
pub const PUSH_AHEAD_MICROS: i64 = 5 * 60 * 1_000_000;

/// Why an instant is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstantError {
    /// Outside 1900-01-01 to 2200-01-01 UTC.
    OutOfRange { micros: i64 },
    /// A pushed time more than [`PUSH_AHEAD_MICROS`] ahead of the ingestion clock `now`.
    Ahead { micros: i64, now: i64 },
}

impl std::fmt::Display for InstantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            InstantError::OutOfRange { micros } => write!(
                f,
                "{} is outside the accepted instants, 1900-01-01 to 2200-01-01 UTC{}",
                describe(micros),
                if micros >= LATEST {
                    " (epoch numbers are seconds, not milliseconds)"
                } else {
                    ""
                }
            ),
            InstantError::Ahead { micros, now } => write!(
                f,
                "{} is {} s ahead of the server's clock; pushed times may be at most {} s ahead (the \
                 online store keeps the newest row per key, so a future row would hide the current one)",
                describe(micros),
                (micros - now) / 1_000_000,
                PUSH_AHEAD_MICROS / 1_000_000
            ),
        }
    }
}

impl std::error::Error for InstantError {}

/// `Ok` when `micros` is in the accepted range, else why not (the caller names the place).
pub fn check(micros: i64) -> Result<(), InstantError> {
    if (EARLIEST..LATEST).contains(&micros) {
        Ok(())
    } else {
        Err(InstantError::OutOfRange { micros })
    }
}

/// `Ok` when a pushed time `micros` is accepted at ingestion clock `now`.
pub fn check_pushed(micros: i64, now: i64) -> Result<(), InstantError> {
    check(micros)?;
    if micros > now.saturating_add(PUSH_AHEAD_MICROS) {
        return Err(InstantError::Ahead { micros, now });
    }
    Ok(())
}

/// An instant for a message: µs since the epoch and, when in range, its date.
fn describe(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    // Days from the civil date algorithm, so this crate needs no date library.
    let days = seconds.div_euclid(86_400);
    if (EARLIEST..LATEST).contains(&micros) {
        let (y, m, d) = civil_from_days(days);
        format!("instant {y:04}-{m:02}-{d:02} ({micros} µs since the epoch)")
    } else {
        format!("instant {micros} µs since the epoch")
    }
}

/// (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_and_its_edges() {
        assert!(check(EARLIEST).is_ok());
        assert!(check(EARLIEST - 1).is_err());
        assert!(check(LATEST - 1).is_ok());
        assert!(check(LATEST).is_err());
        assert!(check(0).is_ok());
        // A millisecond epoch read as seconds, and 1e20.
        let ms_as_seconds = 1_796_300_000_000i64.saturating_mul(1_000_000);
        let err = check(ms_as_seconds).unwrap_err();
        assert_eq!(err, InstantError::OutOfRange { micros: ms_as_seconds });
        assert!(err.to_string().contains("seconds, not milliseconds"), "{err}");
        assert!(check(i64::MAX).is_err());
        assert!(check(i64::MIN).is_err());
    }

    #[test]
    fn pushed_times_may_be_only_a_little_ahead() {
        let now = 1_796_300_000_000_000;
        assert!(check_pushed(now, now).is_ok());
        assert!(check_pushed(now + PUSH_AHEAD_MICROS, now).is_ok());
        let err = check_pushed(now + PUSH_AHEAD_MICROS + 1, now).unwrap_err();
        assert_eq!(
            err,
            InstantError::Ahead {
                micros: now + PUSH_AHEAD_MICROS + 1,
                now
            }
        );
        assert!(err.to_string().contains("300 s ahead of the server's clock"), "{err}");
        assert!(check_pushed(now - 86_400_000_000 * 365 * 50, now).is_ok());
    }

    #[test]
    fn dates_in_messages_are_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-25_567), (1900, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(describe(LATEST - 1).starts_with("instant 2199-12-31"));
    }
}
