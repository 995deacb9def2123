//! Synthetic trails for the trail store's benchmark and scale test: each activation has a home
//! and a workplace a few km apart and a daily routine (night at home, drive to work, a day at
//! work with some network fixes indoors, drive back, an evening walk), one fix a minute with GPS
//! noise, varying precision, speed, heading, satellites and battery, and about 1% of minutes
//! missing. Deterministic for a given seed; cheap enough to generate hundreds of millions.

#![allow(dead_code)]

use tagstream::model::{Position, PositionSource, Reading, ReadingBody};

pub const MIN_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;
/// 2026-03-02T00:00:00Z
pub const START_MS: i64 = 1_772_409_600_000;

/// xorshift64*: fast, deterministic.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One activation's movement model.
pub struct Walker {
    rng: Rng,
    home: (f64, f64),
    work: (f64, f64),
    pos: (f64, f64),
    heading: f64,
    sats: u8,
    battery: f64,
}

impl Walker {
    pub fn new(index: u64) -> Self {
        let mut rng = Rng::new(index + 1);
        let home = (
            51.3 + 0.4 * (rng.unit() + 1.0) / 2.0,
            -2.9 + 0.6 * (rng.unit() + 1.0) / 2.0,
        );
        let work = (home.0 + 0.05 * rng.unit(), home.1 + 0.08 * rng.unit());
        Walker {
            rng,
            home,
            work,
            pos: home,
            heading: 0.0,
            sats: 9,
            battery: 100.0,
        }
    }

    fn toward(&mut self, target: (f64, f64), minutes_left: f64) {
        let f = (1.0 / minutes_left.max(1.0)).min(1.0);
        let d = ((target.0 - self.pos.0) * f, (target.1 - self.pos.1) * f);
        self.move_by(d);
    }

    fn move_by(&mut self, d: (f64, f64)) {
        self.pos.0 += d.0;
        self.pos.1 += d.1;
        if d.0 != 0.0 || d.1 != 0.0 {
            let east = d.1 * 0.62;
            self.heading = east.atan2(d.0).to_degrees().rem_euclid(360.0);
        }
    }

    /// The reading for minute `m` since [`START_MS`], or `None` for a missing minute.
    pub fn fix(&mut self, m: i64) -> Option<Reading> {
        let minute_of_day = m % 1440;
        let before = self.pos;
        let mut indoors = false;
        match minute_of_day {
            480..=509 => self.toward(self.work, (510 - minute_of_day) as f64),
            510..=1019 => {
                self.pos = self.work;
                indoors = true;
            }
            1020..=1049 => self.toward(self.home, (1050 - minute_of_day) as f64),
            1140..=1259 => {
                // Evening walk: ~80 m a minute, wandering.
                let a = self.rng.unit() * 0.5 + self.heading.to_radians();
                self.move_by((a.cos() * 0.00072, a.sin() * 0.00116));
            }
            1260..=1289 => self.toward(self.home, (1290 - minute_of_day) as f64),
            _ => self.pos = self.home,
        }
        let moved_deg =
            ((self.pos.0 - before.0).powi(2) + ((self.pos.1 - before.1) * 0.62).powi(2)).sqrt();
        let speed_kmh = moved_deg * 111.2 * 60.0;
        if self.rng.below(10) == 0 {
            self.sats = (self.sats as i64 + self.rng.below(3) as i64 - 1).clamp(4, 14) as u8;
        }
        self.battery = if minute_of_day < 420 {
            (self.battery + 0.2).min(100.0)
        } else {
            (self.battery - 0.04).max(5.0)
        };
        if self.rng.below(100) == 0 {
            return None;
        }
        let t_ms = START_MS + m * MIN_MS;
        let network = indoors && self.rng.below(8) == 0;
        let (source, precision_m, noise_deg) = if network {
            (
                PositionSource::Lbs,
                300.0 + 900.0 * (self.rng.unit() + 1.0) / 2.0,
                0.004,
            )
        } else {
            (
                PositionSource::Gps,
                3.0 + 12.0 * (self.rng.unit() + 1.0) / 2.0,
                0.00004,
            )
        };
        let lat = self.pos.0 + noise_deg * self.rng.unit();
        let lon = self.pos.1 + noise_deg * 1.6 * self.rng.unit();
        let moving = speed_kmh > 1.0;
        let heading = if moving {
            self.heading
        } else {
            360.0 * (self.rng.unit() + 1.0) / 2.0
        };
        Some(Reading {
            t_ms,
            battery_pct: Some(self.battery as u8),
            body: ReadingBody::Position(Position {
                lat_e7: (lat * 1e7).round() as i32,
                lon_e7: (lon * 1e7).round() as i32,
                precision_cm: (precision_m * 100.0) as u32,
                source,
                speed_ckmh: (source == PositionSource::Gps).then(|| {
                    ((if moving {
                        speed_kmh
                    } else {
                        0.5 * (self.rng.unit() + 1.0)
                    }) * 100.0) as u16
                }),
                heading_cdeg: (source == PositionSource::Gps)
                    .then(|| ((heading * 100.0) as u16).min(35_999)),
                satellites: (source == PositionSource::Gps).then_some(self.sats),
            }),
        })
    }
}

/// Activation name for an index.
pub fn activation_name(i: u64) -> String {
    format!("ACT-{i:07}")
}
