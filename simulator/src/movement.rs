//! Travel between places: walking, cycling, bus and car at realistic speeds with stops.
//!
//! Simplification (no road data): a trip is a polyline from origin to destination through one to
//! three waypoints offset sideways from the straight line (so paths bend like streets), travelled
//! as alternating moving legs (cruising speed varying ±20%) and stops (crossings, traffic lights,
//! bus stops; a bus trip starts with a wait at the stop). The true position at any instant is a
//! pure function of the trip, so truth and readings agree.

use crate::geo::Xy;
use crate::rng::Rng;
use tagstream::model::TimeMs;

/// How a trip is travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Walk,
    Cycle,
    Bus,
    Car,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Walk => "walk",
            Mode::Cycle => "cycle",
            Mode::Bus => "bus",
            Mode::Car => "car",
        }
    }
    /// Typical cruising speed (km/h) and the spacing (m) and length (s) of stops.
    fn profile(self) -> (f64, f64, (f64, f64)) {
        match self {
            Mode::Walk => (5.0, 500.0, (5.0, 40.0)),
            Mode::Cycle => (16.0, 600.0, (0.0, 30.0)),
            Mode::Bus => (28.0, 400.0, (15.0, 45.0)),
            Mode::Car => (38.0, 600.0, (0.0, 60.0)),
        }
    }
    /// The fastest the mode ever moves in this simulator (km/h).
    pub fn max_kmh(self) -> f64 {
        match self {
            Mode::Walk => 7.0,
            Mode::Cycle => 25.0,
            Mode::Bus => 45.0,
            Mode::Car => 60.0,
        }
    }
}

/// One piece of a trip: moving from distance `d0_m` to `d1_m` along the path, or stopped
/// (`d0_m == d1_m`), over `[t0_ms, t1_ms)`.
#[derive(Clone, Copy, Debug)]
pub struct Leg {
    pub t0_ms: TimeMs,
    pub t1_ms: TimeMs,
    pub d0_m: f64,
    pub d1_m: f64,
}

/// A planned trip.
#[derive(Clone, Debug)]
pub struct Trip {
    pub mode: Mode,
    pub pts: Vec<Xy>,
    /// Cumulative distance at each point.
    pub cum_m: Vec<f64>,
    pub legs: Vec<Leg>,
}

/// Where a person is: position, speed and heading (heading only when moving).
#[derive(Clone, Copy, Debug)]
pub struct Kinematics {
    pub pos: Xy,
    pub speed_kmh: f64,
    pub heading_deg: Option<f64>,
}

impl Trip {
    /// Plans a trip from `a` to `b` by `mode`, departing at `t0_ms`; `via` forces a waypoint.
    pub fn plan(
        rng: &mut Rng,
        mode: Mode,
        a: Xy,
        b: Xy,
        via: Option<Xy>,
        t0_ms: TimeMs,
        walk_kmh: f64,
    ) -> Trip {
        let mut pts = vec![a];
        let direct = a.dist_m(b);
        match via {
            Some(v) => pts.push(v),
            None if direct > 150.0 => {
                let n = if direct > 3000.0 {
                    3
                } else if direct > 800.0 {
                    2
                } else {
                    1
                };
                let (dx, dy) = ((b.x_m - a.x_m) / direct, (b.y_m - a.y_m) / direct);
                for k in 1..=n {
                    let f = k as f64 / (n + 1) as f64 + rng.range(-0.08, 0.08);
                    let off = rng
                        .gauss(0.0, 0.1 * direct)
                        .clamp(-0.25 * direct, 0.25 * direct);
                    pts.push(a.lerp(b, f).add(-dy * off, dx * off));
                }
            }
            None => {}
        }
        pts.push(b);
        let mut cum_m = Vec::with_capacity(pts.len());
        let mut acc = 0.0;
        cum_m.push(0.0);
        for w in pts.windows(2) {
            acc += w[0].dist_m(w[1]);
            cum_m.push(acc);
        }
        let total = acc;
        let (mut cruise_kmh, spacing_m, (stop_lo, stop_hi)) = mode.profile();
        if mode == Mode::Walk {
            cruise_kmh = walk_kmh;
        }
        let mut legs = Vec::new();
        let mut t = t0_ms;
        if mode == Mode::Bus {
            let wait = (rng.range(60.0, 480.0) * 1000.0) as i64;
            legs.push(Leg {
                t0_ms: t,
                t1_ms: t + wait,
                d0_m: 0.0,
                d1_m: 0.0,
            });
            t += wait;
        }
        let mut d = 0.0;
        while d < total {
            let step = (spacing_m * rng.range(0.5, 1.5)).min(total - d);
            let v_kmh = (cruise_kmh * rng.range(0.8, 1.2)).min(mode.max_kmh());
            let dur = ((step / (v_kmh / 3.6)) * 1000.0).max(1000.0) as i64;
            legs.push(Leg {
                t0_ms: t,
                t1_ms: t + dur,
                d0_m: d,
                d1_m: d + step,
            });
            t += dur;
            d += step;
            if d < total - 1.0 {
                let stop = (rng.range(stop_lo, stop_hi) * 1000.0) as i64;
                if stop > 0 {
                    legs.push(Leg {
                        t0_ms: t,
                        t1_ms: t + stop,
                        d0_m: d,
                        d1_m: d,
                    });
                    t += stop;
                }
            }
        }
        if legs.is_empty() {
            legs.push(Leg {
                t0_ms: t,
                t1_ms: t + 1000,
                d0_m: 0.0,
                d1_m: 0.0,
            });
        }
        Trip {
            mode,
            pts,
            cum_m,
            legs,
        }
    }

    pub fn start_ms(&self) -> TimeMs {
        self.legs.first().map_or(0, |l| l.t0_ms)
    }
    pub fn end_ms(&self) -> TimeMs {
        self.legs.last().map_or(0, |l| l.t1_ms)
    }
    pub fn duration_ms(&self) -> TimeMs {
        self.end_ms() - self.start_ms()
    }

    /// Shifts the whole trip in time.
    pub fn shift(&mut self, dt_ms: TimeMs) {
        for l in &mut self.legs {
            l.t0_ms += dt_ms;
            l.t1_ms += dt_ms;
        }
    }

    /// Position along the path at distance `d_m`, and the heading of that stretch.
    pub fn at_distance(&self, d_m: f64) -> (Xy, f64) {
        let i = match self.cum_m.binary_search_by(|c| c.total_cmp(&d_m)) {
            Ok(i) => i.min(self.pts.len() - 2),
            Err(i) => i.saturating_sub(1).min(self.pts.len().saturating_sub(2)),
        };
        if self.pts.len() < 2 {
            return (self.pts[0], 0.0);
        }
        let (a, b) = (self.pts[i], self.pts[i + 1]);
        let seg = self.cum_m[i + 1] - self.cum_m[i];
        let f = if seg > 0.0 {
            ((d_m - self.cum_m[i]) / seg).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (a.lerp(b, f), a.heading_deg(b))
    }

    /// Where the traveller is at `t_ms` (clamped to the trip).
    pub fn at(&self, t_ms: TimeMs) -> Kinematics {
        let i = self
            .legs
            .partition_point(|l| l.t1_ms <= t_ms)
            .min(self.legs.len() - 1);
        let l = self.legs[i];
        let span = (l.t1_ms - l.t0_ms).max(1) as f64;
        let f = ((t_ms - l.t0_ms) as f64 / span).clamp(0.0, 1.0);
        let d = l.d0_m + (l.d1_m - l.d0_m) * f;
        let (pos, heading) = self.at_distance(d);
        let moving = l.d1_m > l.d0_m && t_ms >= l.t0_ms && t_ms < l.t1_ms;
        let speed_kmh = if moving {
            (l.d1_m - l.d0_m) / (span / 1000.0) * 3.6
        } else {
            0.0
        };
        Kinematics {
            pos,
            speed_kmh,
            heading_deg: moving.then_some(heading),
        }
    }
}

/// Chooses a travel mode for a distance, given what the person has.
pub fn choose_mode(rng: &mut Rng, dist_m: f64, has_car: bool, has_bike: bool) -> Mode {
    if dist_m < 1200.0 {
        return Mode::Walk;
    }
    if has_car && rng.chance(0.8) {
        return Mode::Car;
    }
    if has_bike && dist_m < 8000.0 && rng.chance(0.7) {
        return Mode::Cycle;
    }
    if dist_m < 2500.0 && rng.chance(0.5) {
        return Mode::Walk;
    }
    Mode::Bus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_respect_mode_speeds_and_arrive() {
        let mut rng = Rng::new(3);
        for mode in [Mode::Walk, Mode::Cycle, Mode::Bus, Mode::Car] {
            let a = Xy::new(0.0, 0.0);
            let b = Xy::new(4000.0, 2500.0);
            let trip = Trip::plan(&mut rng, mode, a, b, None, 0, 5.0);
            let mut prev = trip.at(trip.start_ms()).pos;
            let mut t = trip.start_ms() + 1000;
            while t <= trip.end_ms() {
                let k = trip.at(t);
                assert!(
                    k.pos.dist_m(prev) / 1.0 * 3.6 <= mode.max_kmh() + 1e-6,
                    "{mode:?}"
                );
                prev = k.pos;
                t += 1000;
            }
            assert!(trip.at(trip.end_ms()).pos.dist_m(b) < 1e-6);
        }
    }
}
