//! How documents write times, places and codes: UK local time with its zone (GMT or BST) beside
//! UTC, positions in WGS84 and British National Grid, crime types in words.

use crate::crime::coordinates::wgs84_to_bng;
use crate::crime::forces::crime_type_by_id;
use crate::model::TimeMs;

/// `t_ms` in UK local time, in chrono's `format`.
fn uk_format(t_ms: TimeMs, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| {
            t.with_timezone(&chrono_tz::Europe::London)
                .format(format)
                .to_string()
        })
        .unwrap_or_else(|| format!("{t_ms} ms"))
}

/// `Fri 04 Jan 2019 12:27:19 GMT`: UK local time, with the zone so no reader has to work it out.
pub fn uk_time(t_ms: TimeMs) -> String {
    uk_format(t_ms, "%a %d %b %Y %H:%M:%S %Z")
}

/// `04 Jan 2019`: a UK local calendar day.
pub fn uk_date(t_ms: TimeMs) -> String {
    uk_format(t_ms, "%d %b %Y")
}

/// `13:05`: UK local clock time.
pub fn uk_clock(t_ms: TimeMs) -> String {
    uk_format(t_ms, "%H:%M")
}

/// `2019-01-04 12:27:19Z`.
pub fn utc_time(t_ms: TimeMs) -> String {
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{t_ms} ms"))
}

/// `Fri 04 Jan 2019 12:27:19 GMT (2019-01-04 12:27:19Z)`: UK local time with UTC beside it.
pub fn uk_and_utc(t_ms: TimeMs) -> String {
    format!("{} ({})", uk_time(t_ms), utc_time(t_ms))
}

/// When something that began at `start_ms` ended, and how long it lasted; `open` if it has not.
pub fn ended(start_ms: TimeMs, end_ms: Option<TimeMs>, open: &str) -> String {
    match end_ms {
        Some(end) => format!("{}; {}", uk_and_utc(end), duration((end - start_ms) / 1000)),
        None => open.to_string(),
    }
}

/// `51.499946, -0.137433`.
pub fn lat_lon(lat: f64, lon: f64) -> String {
    format!("{lat:.6}, {lon:.6}")
}

/// `E 529381 N 179534`, or why there is none (outside the grid's projection).
pub fn bng(lat: f64, lon: f64) -> String {
    match wgs84_to_bng(lat, lon) {
        Ok(p) => format!("E {:.0} N {:.0}", p.easting_m, p.northing_m),
        Err(_) => "not on the British National Grid".into(),
    }
}

/// `Burglary in a dwelling (BIAD)`; an id the batch format does not know is given as it is.
pub fn crime_type(id: &str) -> String {
    match crime_type_by_id(id) {
        Some(t) => format!("{} ({id})", t.description),
        None => id.to_string(),
    }
}

/// A duration in words: `1 h 05 min`, `12 min 30 s`, `45 s`.
pub fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s:02} s"),
        _ => format!("{h} h {m:02} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_uk_local_time_with_the_zone_and_in_utc() {
        // 2019-01-04T12:27:19Z (winter) and 2026-07-01T12:00:00Z (summer).
        assert_eq!(uk_time(1_546_604_839_000), "Fri 04 Jan 2019 12:27:19 GMT");
        assert_eq!(uk_time(1_782_907_200_000), "Wed 01 Jul 2026 13:00:00 BST");
        assert_eq!(utc_time(1_782_907_200_000), "2026-07-01 12:00:00Z");
        assert_eq!(uk_date(1_782_907_200_000), "01 Jul 2026");
    }

    #[test]
    fn crime_types_are_in_words_and_unknown_ids_are_kept() {
        assert_eq!(crime_type("BIAD"), "Burglary in a dwelling (BIAD)");
        assert_eq!(crime_type("XYZ"), "XYZ");
        assert_eq!(duration(3_900), "1 h 05 min");
        assert_eq!(duration(750), "12 min 30 s");
        assert_eq!(bng(51.499946, -0.137433), "E 529381 N 179534");
    }
}
