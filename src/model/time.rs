//! Event-time helpers: RFC 3339 UTC text to and from milliseconds since the epoch.
//!
//! Every timestamp the product writes goes through [`format_time`], so outputs are byte-stable.

use super::TimeMs;
use chrono::{DateTime, SecondsFormat, Utc};

/// The times RFC 3339 can write (four-digit years): 0000-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999Z. A tag can send any 64-bit time; outputs write one outside this
/// range as `null` with the value as sent beside it (`t_ms`), never as invalid text.
pub const RFC3339_WRITABLE_MS: std::ops::RangeInclusive<TimeMs> =
    -62_167_219_200_000..=253_402_300_799_999;

/// Formats as RFC 3339 UTC with a `Z`: whole seconds when the millisecond part is zero, else millis.
pub fn format_time(t_ms: TimeMs) -> String {
    match DateTime::<Utc>::from_timestamp_millis(t_ms) {
        Some(dt) if t_ms.rem_euclid(1000) == 0 => dt.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("invalid-time-{t_ms}"),
    }
}

/// Parses RFC 3339 (any offset, converted to UTC) to milliseconds; sub-millisecond digits are dropped.
pub fn parse_time(text: &str) -> Result<TimeMs, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|dt| dt.timestamp_millis())
        .map_err(|e| format!("'{text}' is not an RFC 3339 time ({e})"))
}

/// Serde adapter for a required RFC 3339 time held as milliseconds.
pub mod rfc3339_ms {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TimeMs, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeMs, D::Error> {
        let text = String::deserialize(d)?;
        parse_time(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for an optional RFC 3339 time held as milliseconds (`null` when absent).
pub mod rfc3339_ms_opt {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<TimeMs>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(*t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeMs>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => parse_time(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_without_fraction_and_round_trips() {
        let t = parse_time("2026-03-28T18:30:00Z").unwrap();
        assert_eq!(format_time(t), "2026-03-28T18:30:00Z");
        assert_eq!(format_time(t + 250), "2026-03-28T18:30:00.250Z");
        assert_eq!(parse_time("2026-03-28T19:30:00+01:00").unwrap(), t);
        assert!(parse_time("28/03/2026").is_err());
    }
}
