//! When a report was measured: the `timestamp` parameter (JSON `location.timestamp`).
//!
//! Accepted, as Traccar accepts them:
//! - digits only: Unix seconds if below 2^31 − 1 (what the Traccar Client sends), Unix
//!   milliseconds otherwise (in milliseconds, 2^31 − 1 is 1970-01-25: no device sends that).
//!   From 2038-01-19 a device sending seconds would be read as sending 1970 and refused; the
//!   encoder writes milliseconds from then on;
//! - an ISO 8601 / RFC 3339 date-time with `T` or a space, with an offset or `Z`, fractional
//!   seconds allowed (`2016-01-27T18:55:47Z`, `2025-06-15T13:45:12.862Z`);
//! - the same without an offset, taken as UTC (`2014-06-04 09:10:11`, as some apps send it).
//!
//! Anything else is refused, and so is a time outside the limits' window. The decoder has no
//! clock: a request without a time is refused rather than stamped with its arrival time, because
//! a reading's time is when the device measured it.

use super::error::{quoted, OsmandError};
use super::limits::Limits;
use crate::model::TimeMs;
use chrono::{DateTime, NaiveDateTime};

/// Below this a digits-only timestamp is seconds, as Traccar decides.
const SECONDS_BELOW: u64 = i32::MAX as u64;

/// Parses a timestamp and checks it is within the limits' window.
pub fn parse_timestamp(param: &str, text: &str, limits: &Limits) -> Result<TimeMs, OsmandError> {
    let bad = || OsmandError::BadTimestamp {
        param: param.to_string(),
        value: quoted(text),
    };
    let t_ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = text.parse().map_err(|_| bad())?;
        let ms = if n < SECONDS_BELOW {
            n.checked_mul(1000)
        } else {
            Some(n)
        };
        ms.and_then(|ms| TimeMs::try_from(ms).ok())
            .ok_or_else(bad)?
    } else {
        parse_date_time(text).ok_or_else(bad)?
    };
    if t_ms < limits.min_t_ms || t_ms > limits.max_t_ms {
        return Err(OsmandError::TimeOutOfRange {
            param: param.to_string(),
            t_ms,
            min_t_ms: limits.min_t_ms,
            max_t_ms: limits.max_t_ms,
        });
    }
    Ok(t_ms)
}

/// An RFC 3339 date-time (`T` or space), or one without an offset taken as UTC.
fn parse_date_time(text: &str) -> Option<TimeMs> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Result<TimeMs, OsmandError> {
        parse_timestamp("timestamp", text, &Limits::default())
    }

    #[test]
    fn seconds_milliseconds_and_dates() {
        assert_eq!(t("1377177267"), Ok(1_377_177_267_000));
        assert_eq!(t("1442068686579"), Ok(1_442_068_686_579));
        assert_eq!(t("2016-01-27T18:55:47Z"), Ok(1_453_920_947_000));
        assert_eq!(t("2025-06-15T13:45:12.862Z"), Ok(1_749_995_112_862));
        assert_eq!(t("2016-01-27T20:55:47+02:00"), Ok(1_453_920_947_000));
        assert_eq!(t("2014-06-04 09:10:11"), Ok(1_401_873_011_000));
        assert_eq!(t("2014-06-04T09:10:11"), Ok(1_401_873_011_000));
    }

    #[test]
    fn nonsense_and_out_of_window_are_refused() {
        for bad in [
            "",
            "-1377177267",
            "1377177267.5",
            "yesterday",
            "2016-13-01T00:00:00Z",
            "99999999999999999999999",
        ] {
            assert!(
                matches!(t(bad), Err(OsmandError::BadTimestamp { .. })),
                "{bad}: {:?}",
                t(bad)
            );
        }
        for out in [
            "0",
            "946684799",
            "2100-01-01T00:00:00.001Z",
            "18446744073709551615",
        ] {
            assert!(
                matches!(
                    t(out),
                    Err(OsmandError::TimeOutOfRange { .. }) | Err(OsmandError::BadTimestamp { .. })
                ),
                "{out}: {:?}",
                t(out)
            );
        }
        assert!(matches!(
            t("0"),
            Err(OsmandError::TimeOutOfRange { t_ms: 0, .. })
        ));
    }
}
