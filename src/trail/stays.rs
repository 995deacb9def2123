//! Places visited: a *stay* is a dwell of at least N minutes within R metres (defaults 10 min,
//! 50 m), found by growing a cluster from each fix while later fixes stay within R metres of
//! the cluster's centroid.
//!
//! Arrival is the first fix of the cluster and departure the last fix inside it. Fixes less
//! precise than a limit (network fixes, by default anything over 100 m) are left out: a stay is
//! not made or broken by a mast location. Whether a stay is at a known address or inside a zone
//! is answered by a caller-supplied lookup ([`find_stays_with`]) or a list of [`Place`]s.

use super::fixes;
use super::geo::{haversine_m, place_at, Place};
use crate::model::{time::rfc3339_ms, Reading, TimeMs};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StayConfig {
    pub min_dwell_ms: TimeMs,
    pub radius_m: f64,
    /// Fixes with a confidence radius above this are ignored.
    pub max_precision_m: f64,
}

impl Default for StayConfig {
    fn default() -> Self {
        StayConfig {
            min_dwell_ms: 10 * 60_000,
            radius_m: 50.0,
            max_precision_m: 100.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stay {
    #[serde(with = "rfc3339_ms")]
    pub arrival: TimeMs,
    #[serde(with = "rfc3339_ms")]
    pub departure: TimeMs,
    pub duration_ms: TimeMs,
    pub lat: f64,
    pub lon: f64,
    pub fixes: usize,
    /// The known address or zone the stay's centroid is in, if any.
    pub place: Option<String>,
}

/// Stays, with `place_of(lat, lon)` naming the known place at each centroid.
pub fn find_stays_with(
    readings: &[Reading],
    cfg: &StayConfig,
    place_of: impl Fn(f64, f64) -> Option<String>,
) -> Vec<Stay> {
    let pts: Vec<(TimeMs, f64, f64)> = fixes(readings)
        .into_iter()
        .filter(|f| f.pos.precision_m() <= cfg.max_precision_m)
        .map(|f| (f.t_ms, f.pos.lat(), f.pos.lon()))
        .collect();
    let mut stays = Vec::new();
    let mut i = 0;
    while i < pts.len() {
        let (mut sum_lat, mut sum_lon) = (pts[i].1, pts[i].2);
        let mut j = i + 1;
        while j < pts.len() {
            let n = (j - i) as f64;
            let (clat, clon) = (sum_lat / n, sum_lon / n);
            if haversine_m(clat, clon, pts[j].1, pts[j].2) > cfg.radius_m {
                break;
            }
            sum_lat += pts[j].1;
            sum_lon += pts[j].2;
            j += 1;
        }
        let (arrival, departure) = (pts[i].0, pts[j - 1].0);
        if departure - arrival >= cfg.min_dwell_ms {
            let n = (j - i) as f64;
            let (lat, lon) = (sum_lat / n, sum_lon / n);
            stays.push(Stay {
                arrival,
                departure,
                duration_ms: departure - arrival,
                lat,
                lon,
                fixes: j - i,
                place: place_of(lat, lon),
            });
            i = j;
        } else {
            i += 1;
        }
    }
    stays
}

/// Stays, named by the first of `places` containing each centroid.
pub fn find_stays(readings: &[Reading], cfg: &StayConfig, places: &[Place]) -> Vec<Stay> {
    find_stays_with(readings, cfg, |lat, lon| {
        place_at(places, lat, lon).map(|p| p.name().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource, ReadingBody};

    fn at(t_min: i64, lat: f64, lon: f64, precision_m: u32) -> Reading {
        Reading {
            t_ms: t_min * 60_000,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: (lat * 1e7).round() as i32,
                lon_e7: (lon * 1e7).round() as i32,
                precision_cm: precision_m * 100,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    #[test]
    fn a_dwell_then_a_walk_then_a_short_pause() {
        let mut trail = Vec::new();
        // 15 minutes within ~10 m of a point.
        for m in 0..=15 {
            trail.push(at(m, 51.5 + (m % 2) as f64 * 0.00005, -0.1, 5));
        }
        // A mast fix 2 km away, ignored.
        trail.push(at(16, 51.52, -0.1, 1500));
        // Walking away ~100 m a minute, then 5 minutes still (too short).
        for m in 17..25 {
            trail.push(at(m, 51.5 + (m - 16) as f64 * 0.0009, -0.1, 5));
        }
        for m in 25..30 {
            trail.push(at(m, 51.5 + 8.0 * 0.0009, -0.1, 5));
        }
        let home = Place::Circle {
            name: "home".into(),
            lat: 51.5,
            lon: -0.1,
            radius_m: 30.0,
        };
        let stays = find_stays(&trail, &StayConfig::default(), &[home]);
        assert_eq!(stays.len(), 1, "{stays:?}");
        let s = &stays[0];
        assert_eq!((s.arrival, s.departure, s.fixes), (0, 15 * 60_000, 16));
        assert_eq!(s.place.as_deref(), Some("home"));
        let none = find_stays_with(&trail, &StayConfig::default(), |_, _| None);
        assert_eq!(none[0].place, None);
    }
}
