//! The position fix model of a GPS ankle tag.
//!
//! Outdoors a GPS fix succeeds almost every minute; its reported precision (95% radius) is 3–30 m,
//! log-normal around a median that grows with urban density, and the actual error is a correlated
//! (AR(1)) Gaussian walk consistent with it. Occasional multipath outliers throw a fix 80–400 m
//! while reporting a good precision: those are flagged in truth. Indoors GPS mostly fails and the
//! tag falls back to a Wi-Fi or mobile-network (LBS) location about every 3 minutes, precision
//! 100–1500 m; without mobile signal there is no fallback at all.

use crate::area::Area;
use crate::behaviour::Rates;
use crate::geo::Xy;
use crate::movement::Mode;
use crate::plan::Where;
use crate::rng::Rng;
use tagstream::model::{Position, PositionSource, TimeMs};

/// Per-tag fix state.
#[derive(Clone, Debug)]
pub struct GpsModel {
    err_x_m: f64,
    err_y_m: f64,
    last_gps_ms: TimeMs,
    last_fallback_ms: TimeMs,
    /// Receiver quality: scales precision (some tags sit under trousers, some do not).
    quality: f64,
}

/// What one attempt produced: a position (lat/lon left for the caller to fill) and the true-ish
/// point it reports, plus the outlier error in metres if it was a multipath outlier.
pub enum GpsOutcome {
    Fix((Position, Xy), Option<f64>),
    None,
}

/// Fallback cadence when GPS is unavailable.
pub const FALLBACK_EVERY_MS: i64 = 3 * 60_000;

impl GpsModel {
    pub fn new(rng: &mut Rng) -> Self {
        GpsModel {
            err_x_m: 0.0,
            err_y_m: 0.0,
            last_gps_ms: i64::MIN / 2,
            last_fallback_ms: i64::MIN / 2,
            quality: rng.range(0.85, 1.2),
        }
    }

    /// One attempt at minute tick `t`.
    pub fn fix(
        &mut self,
        rng: &mut Rng,
        rates: &Rates,
        here: &Where,
        area: &Area,
        network: bool,
        t: TimeMs,
    ) -> GpsOutcome {
        // Density is only needed outdoors or once a fix succeeds; indoors the miss is decided first.
        let indoor_miss = here.indoor && !rng.chance(0.22);
        let density = if indoor_miss {
            0.0
        } else {
            area.density(here.kin.pos)
        };
        let p_gps = if here.indoor {
            0.22
        } else {
            match here.mode {
                Some(Mode::Bus) | Some(Mode::Car) => 0.95 - 0.05 * density,
                _ => 0.985 - 0.05 * density,
            }
        };
        if !indoor_miss && (here.indoor || rng.chance(p_gps)) {
            let median = if here.indoor {
                14.0 + 6.0 * density
            } else {
                4.5 + 9.0 * density
            } * self.quality;
            let precision_m = rng.lognormal(median, 0.35).clamp(3.0, 30.0);
            let sigma = precision_m / 2.4477;
            // Correlated error: positions drift rather than jump.
            let rho: f64 = if t - self.last_gps_ms <= 61_000 {
                0.85
            } else {
                0.0
            };
            let k = (1.0 - rho * rho).sqrt();
            self.err_x_m = rho * self.err_x_m + k * sigma * rng.normal();
            self.err_y_m = rho * self.err_y_m + k * sigma * rng.normal();
            let wander = if here.place.is_some() { 3.0 } else { 0.0 };
            let mut pos = here.kin.pos.add(
                self.err_x_m + rng.gauss(0.0, wander),
                self.err_y_m + rng.gauss(0.0, wander),
            );
            let mut outlier = None;
            if rng.chance(rates.gps_outlier * (0.5 + 1.5 * density)) {
                let d = rng.range(80.0, 400.0);
                let a = rng.range(0.0, std::f64::consts::TAU);
                pos = pos.add(d * a.sin(), d * a.cos());
                outlier = Some(pos.dist_m(here.kin.pos));
            }
            self.last_gps_ms = t;
            let (speed_ckmh, heading_cdeg) = match here.kin.heading_deg {
                Some(h) if here.kin.speed_kmh > 0.5 => {
                    let v = (here.kin.speed_kmh + rng.gauss(0.0, 0.4)).max(0.0);
                    let hd = (h + rng.gauss(0.0, 3.0)).rem_euclid(360.0).round() as u16 % 360;
                    (Some(((v * 10.0).round() * 10.0) as u16), Some(hd * 100))
                }
                _ => (Some(0), None),
            };
            let sats = if here.indoor {
                rng.int(4, 6)
            } else {
                rng.int(7, 12) - (3.0 * density) as i64
            };
            let position = Position {
                lat_e7: 0,
                lon_e7: 0,
                precision_cm: ((precision_m * 10.0).round() * 10.0) as u32,
                source: PositionSource::Gps,
                speed_ckmh,
                heading_cdeg,
                satellites: Some(sats.max(4) as u8),
            };
            return GpsOutcome::Fix((position, pos), outlier);
        }
        if !network
            || t - self.last_fallback_ms < FALLBACK_EVERY_MS
            || t - self.last_gps_ms < FALLBACK_EVERY_MS
        {
            return GpsOutcome::None;
        }
        self.last_fallback_ms = t;
        let (source, precision_m) = if here.indoor && rng.chance(0.6) {
            (
                PositionSource::Wifi,
                rng.lognormal(160.0, 0.35).clamp(100.0, 400.0),
            )
        } else {
            (
                PositionSource::Lbs,
                rng.lognormal(550.0, 0.5).clamp(150.0, 1500.0),
            )
        };
        let sigma = precision_m / 2.4477;
        let pos = here.kin.pos.add(sigma * rng.normal(), sigma * rng.normal());
        let position = Position {
            lat_e7: 0,
            lon_e7: 0,
            precision_cm: (precision_m.round() * 100.0) as u32,
            source,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: None,
        };
        GpsOutcome::Fix((position, pos), None)
    }
}
