//! Daily summary per Europe/London calendar day: time at home, time out, distance travelled,
//! stays and data coverage.
//!
//! - Each fix accounts for the time from it to the next fix, but for at most the missing-data
//!   limit (5 minutes): at home if it is inside one of the home circles, else out. Time after a
//!   longer gap is neither (it is missing data).
//! - Distance is the great-circle length along the trail, leaving out fixes less precise than a
//!   limit and hops that would need a speed above a limit (jumps); a hop across midnight is
//!   shared between the days in proportion to time.
//! - Stays are counted on the day they start.
//! - Coverage is the share of the day (23, 24 or 25 hours) within 5 minutes of some fix.

use super::fixes;
use super::geo::{haversine_m, Place};
use super::stays::{find_stays, StayConfig};
use crate::model::{Reading, TimeMs};
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Europe::London;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DailyConfig {
    pub max_gap_ms: TimeMs,
    pub max_speed_kmh: f64,
    /// Fixes less precise than this are left out of the distance.
    pub distance_max_precision_m: f64,
    pub stays: StayConfig,
}

impl Default for DailyConfig {
    fn default() -> Self {
        DailyConfig {
            max_gap_ms: 5 * 60_000,
            max_speed_kmh: 200.0,
            distance_max_precision_m: 100.0,
            stays: StayConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaySummary {
    pub date: NaiveDate,
    /// Length of the local day (DST days are 23 or 25 hours).
    pub day_ms: TimeMs,
    pub time_at_home_ms: TimeMs,
    pub time_out_ms: TimeMs,
    pub distance_m: f64,
    pub stays: usize,
    /// Share of the day within the gap limit of a fix, 0..=1.
    pub coverage: f64,
    pub fixes: usize,
}

fn local_date(t_ms: TimeMs) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_millis(t_ms).map(|d| d.with_timezone(&London).date_naive())
}

fn day_start_ms(date: NaiveDate) -> Option<TimeMs> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    London
        .from_local_datetime(&midnight)
        .earliest()
        .map(|d| d.timestamp_millis())
}

fn overlap(a: (TimeMs, TimeMs), b: (TimeMs, TimeMs)) -> TimeMs {
    (a.1.min(b.1) - a.0.max(b.0)).max(0)
}

/// Calls `add(day index, overlap)` for each day (start, end) that the interval overlaps.
fn spread(
    days: &[(NaiveDate, TimeMs, TimeMs)],
    iv: (TimeMs, TimeMs),
    mut add: impl FnMut(usize, TimeMs),
) {
    let first_day = days.partition_point(|(_, _, e)| *e <= iv.0);
    for (k, (_, s, e)) in days.iter().enumerate().skip(first_day) {
        if *s >= iv.1 {
            break;
        }
        let o = overlap(iv, (*s, *e));
        if o > 0 {
            add(k, o);
        }
    }
}

/// One summary per local day from the first fix's day to the last fix's day.
pub fn daily_summaries(readings: &[Reading], home: &[Place], cfg: &DailyConfig) -> Vec<DaySummary> {
    let f = fixes(readings);
    let (Some(first), Some(last)) = (f.first(), f.last()) else {
        return Vec::new();
    };
    let (Some(d0), Some(d1)) = (local_date(first.t_ms), local_date(last.t_ms)) else {
        return Vec::new();
    };
    let mut days: Vec<(NaiveDate, TimeMs, TimeMs)> = Vec::new();
    let mut d = d0;
    while d <= d1 {
        let next = d.succ_opt().unwrap_or(d);
        match (day_start_ms(d), day_start_ms(next)) {
            (Some(s), Some(e)) if next > d => days.push((d, s, e)),
            _ => break,
        }
        d = next;
    }
    let mut out: Vec<DaySummary> = days
        .iter()
        .map(|(date, s, e)| DaySummary {
            date: *date,
            day_ms: e - s,
            time_at_home_ms: 0,
            time_out_ms: 0,
            distance_m: 0.0,
            stays: 0,
            coverage: 0.0,
            fixes: 0,
        })
        .collect();
    for (i, fix) in f.iter().enumerate() {
        let k = days.partition_point(|(_, _, e)| *e <= fix.t_ms);
        if let Some(day) = out.get_mut(k) {
            day.fixes += 1;
        }
        let next_t = f.get(i + 1).map_or(TimeMs::MAX, |n| n.t_ms);
        let owned = (fix.t_ms, next_t.min(fix.t_ms + cfg.max_gap_ms));
        let at_home = home
            .iter()
            .any(|h| h.contains(fix.pos.lat(), fix.pos.lon()));
        spread(&days, owned, |k, o| {
            if at_home {
                out[k].time_at_home_ms += o;
            } else {
                out[k].time_out_ms += o;
            }
        });
    }

    // Distance over precise fixes, leaving out jumps.
    let precise: Vec<_> = f
        .iter()
        .filter(|x| x.pos.precision_m() <= cfg.distance_max_precision_m)
        .collect();
    for w in precise.windows(2) {
        let (a, b) = (w[0], w[1]);
        let dist = haversine_m(a.pos.lat(), a.pos.lon(), b.pos.lat(), b.pos.lon());
        let dt = b.t_ms - a.t_ms;
        if dt <= 0 {
            continue;
        }
        let speed_kmh = (dist / 1000.0) / (dt as f64 / 3_600_000.0);
        if speed_kmh > cfg.max_speed_kmh {
            continue;
        }
        spread(&days, (a.t_ms, b.t_ms), |k, o| {
            out[k].distance_m += dist * o as f64 / dt as f64;
        });
    }

    // Coverage: union of [t - gap, t + gap].
    let mut covered: Vec<(TimeMs, TimeMs)> = Vec::new();
    for fix in &f {
        let iv = (fix.t_ms - cfg.max_gap_ms, fix.t_ms + cfg.max_gap_ms);
        match covered.last_mut() {
            Some(last) if iv.0 <= last.1 => last.1 = last.1.max(iv.1),
            _ => covered.push(iv),
        }
    }
    for iv in covered {
        spread(&days, iv, |k, o| out[k].coverage += o as f64);
    }
    for d in &mut out {
        d.coverage /= d.day_ms as f64;
    }

    for s in find_stays(readings, &cfg.stays, home) {
        let k = days.partition_point(|(_, _, e)| *e <= s.arrival);
        if let Some(day) = out.get_mut(k) {
            day.stays += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_time;
    use crate::model::{Position, PositionSource, ReadingBody};

    fn at(t_ms: TimeMs, lat: f64, lon: f64) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: (lat * 1e7).round() as i32,
                lon_e7: (lon * 1e7).round() as i32,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    #[test]
    fn home_out_distance_and_coverage_on_a_dst_day() {
        // 29 March 2026: clocks go forward in the UK, a 23-hour day starting 00:00 GMT.
        let start = parse_time("2026-03-29T00:00:00Z").unwrap();
        let home = Place::Circle {
            name: "home".into(),
            lat: 51.5,
            lon: -0.1,
            radius_m: 50.0,
        };
        let mut trail = Vec::new();
        // An hour at home, a fix a minute.
        for m in 0..60 {
            trail.push(at(start + m * 60_000, 51.5, -0.1));
        }
        // Then 10 minutes walking north, ~100 m a minute.
        for m in 1..=10 {
            trail.push(at(
                start + (59 + m) * 60_000,
                51.5 + m as f64 * 0.0009,
                -0.1,
            ));
        }
        // A jump of 100 km in a minute is ignored.
        trail.push(at(start + 70 * 60_000, 52.4, -0.1));
        let days = daily_summaries(&trail, &[home], &DailyConfig::default());
        assert_eq!(days.len(), 1);
        let d = &days[0];
        assert_eq!(d.day_ms, 23 * 3_600_000);
        assert_eq!(d.time_at_home_ms, 60 * 60_000);
        // 10 walking fixes own a minute each; the last fix owns 5 minutes.
        assert_eq!(d.time_out_ms, 10 * 60_000 + 5 * 60_000);
        assert!(
            (d.distance_m - 10.0 * 100.07).abs() < 5.0,
            "{}",
            d.distance_m
        );
        // Covered: from 5 minutes before midnight (clipped) to 5 minutes after the last fix.
        let covered_ms = (70 + 5) * 60_000;
        assert!((d.coverage - covered_ms as f64 / d.day_ms as f64).abs() < 1e-9);
        assert_eq!(d.stays, 1);
        assert_eq!(d.fixes, 71);
    }

    #[test]
    fn an_hour_across_local_midnight_is_split() {
        // Summer time: local midnight is 23:00 UTC.
        let t = parse_time("2026-07-01T22:30:00Z").unwrap();
        let trail: Vec<Reading> = (0..=60).map(|m| at(t + m * 60_000, 51.5, -0.1)).collect();
        let days = daily_summaries(&trail, &[], &DailyConfig::default());
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].date.to_string(), "2026-07-01");
        assert_eq!(days[0].time_out_ms, 30 * 60_000);
        assert_eq!(days[1].time_out_ms, 30 * 60_000 + 5 * 60_000);
    }
}
