//! Behaviour with known truth: how often people break their conditions and how tags misbehave.
//!
//! Every rate is a command-line option. Curfew rates are per curfew night, zone rates per zone per
//! day, device rates per tag per day, alcohol rates per alcohol-tag day. The decisions themselves
//! are taken where the thing happens (`plan` for movement, `tag` for devices and alcohol); this
//! module owns the numbers and the drinking curve.

use crate::rng::Rng;
use tagstream::model::TimeMs;

/// Violation and fault rates.
#[derive(Clone, Debug, clap::Args)]
pub struct Rates {
    /// Late return (AL08 then AL09), per curfew night.
    #[arg(long, default_value_t = 0.03)]
    pub late_return: f64,
    /// Arrival after the window opens but within the order's grace (no violation), per night.
    #[arg(long, default_value_t = 0.03)]
    pub within_grace: f64,
    /// Leaving home during curfew and coming back (AL10), per night.
    #[arg(long, default_value_t = 0.02)]
    pub leave_during_curfew: f64,
    /// Leaving before the window closes (AL11), per night.
    #[arg(long, default_value_t = 0.02)]
    pub out_at_end: f64,
    /// Out for the whole curfew period (AL12), per night.
    #[arg(long, default_value_t = 0.01)]
    pub whole_night_absence: f64,
    /// Walking through an exclusion zone, per zone per day.
    #[arg(long, default_value_t = 0.03)]
    pub exclusion_pass: f64,
    /// Stopping inside an exclusion zone, per zone per day.
    #[arg(long, default_value_t = 0.015)]
    pub exclusion_dwell: f64,
    /// Visiting a place outside the inclusion zone, per day.
    #[arg(long, default_value_t = 0.04)]
    pub inclusion_exit: f64,
    /// Strap opened and closed again, per tag per day.
    #[arg(long, default_value_t = 0.005)]
    pub strap_tamper: f64,
    /// Skipping charging until the battery dies, per GPS tag per day.
    #[arg(long, default_value_t = 0.01)]
    pub battery_death: f64,
    /// Mobile signal losses (store and forward), episodes per tag per day.
    #[arg(long, default_value_t = 0.3)]
    pub signal_loss: f64,
    /// Home monitoring unit power cut (AL04), per unit per day.
    #[arg(long, default_value_t = 0.005)]
    pub hmu_power_loss: f64,
    /// Home monitoring unit moved (AL05), per unit per day.
    #[arg(long, default_value_t = 0.001)]
    pub hmu_moved: f64,
    /// Device fault (AL24), per tag per day.
    #[arg(long, default_value_t = 0.002)]
    pub device_fault: f64,
    /// Drinking episodes, per alcohol tag per day.
    #[arg(long, default_value_t = 0.06)]
    pub drinking: f64,
    /// Share of drinking episodes that stay under the 0.02 g/dL threshold (light).
    #[arg(long, default_value_t = 0.2)]
    pub light_drinking_share: f64,
    /// Share of drinking episodes that are heavy (the rest of the detectable ones are moderate).
    #[arg(long, default_value_t = 0.4)]
    pub heavy_drinking_share: f64,
    /// Environmental alcohol spikes (hand gel, perfume), per alcohol tag per day.
    #[arg(long, default_value_t = 0.03)]
    pub environmental: f64,
    /// IR obstruction episodes, per alcohol tag per day.
    #[arg(long, default_value_t = 0.01)]
    pub obstruction: f64,
    /// Alcohol tag removals, per alcohol tag per day.
    #[arg(long, default_value_t = 0.005)]
    pub removal: f64,
    /// Multipath outliers, per GPS fix (scaled up in dense areas).
    #[arg(long, default_value_t = 0.002)]
    pub gps_outlier: f64,
    /// Crimes placed on trails (true hits), per GPS tag per day.
    #[arg(long, default_value_t = 0.02)]
    pub hits: f64,
    /// Near-miss crimes (just outside the vicinity or the window), per GPS tag per day.
    #[arg(long, default_value_t = 0.02)]
    pub near_misses: f64,
    /// Unrelated crimes per force per day.
    #[arg(long, default_value_t = 20.0)]
    pub unrelated_crimes: f64,
    /// Share of a day's crimes resubmitted (a new version) in the next day's batch.
    #[arg(long, default_value_t = 0.05)]
    pub resubmitted: f64,
    /// Share of crime CSV rows that are malformed.
    #[arg(long, default_value_t = 0.05)]
    pub malformed_share: f64,
    /// Minutes without an upload that count as no contact in truth (tagstream's `no_contact_ms`).
    #[arg(long, default_value_t = 60)]
    pub no_contact_after_min: u32,
    /// Multiplies every violation and fault rate (not crimes or outliers): 0 gives a compliant run.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
}

impl Default for Rates {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            rates: Rates,
        }
        Wrap::parse_from(["tagsim"]).rates
    }
}

impl Rates {
    /// A violation/fault rate after `rate_scale`.
    pub fn scaled(&self, rate: f64) -> f64 {
        (rate * self.rate_scale).max(0.0)
    }
}

/// How much someone drank, as the curve it leaves on the skin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DrinkingEpisode {
    /// When transdermal alcohol starts to rise (drinking start plus the 1–2 h skin lag).
    pub onset_ms: TimeMs,
    pub peak_gdl: f64,
    pub rise_ms: TimeMs,
    pub fall_ms: TimeMs,
    pub drink_start_ms: TimeMs,
}

impl DrinkingEpisode {
    /// Plans an episode that starts drinking at `drink_start_ms`.
    pub fn plan(rng: &mut Rng, rates: &Rates, drink_start_ms: TimeMs) -> Self {
        let u = rng.f64();
        let peak_gdl = if u < rates.light_drinking_share {
            rng.range(0.006, 0.017)
        } else if u < rates.light_drinking_share + rates.heavy_drinking_share {
            rng.range(0.09, 0.28)
        } else {
            rng.range(0.03, 0.08)
        };
        // Mean rates; the sin² ramps peak at pi/2 times the mean, kept under the plausibility
        // limits (0.05 g/dL/h up, 0.025 g/dL/h down).
        let up_gdl_h = rng.range(0.012, 0.03);
        let down_gdl_h = rng.range(0.007, 0.015);
        let lag_ms = (rng.range(60.0, 120.0) * 60.0) as i64 * 1000;
        DrinkingEpisode {
            onset_ms: drink_start_ms + lag_ms,
            peak_gdl,
            rise_ms: (peak_gdl / up_gdl_h * 3600.0) as i64 * 1000,
            fall_ms: (peak_gdl / down_gdl_h * 3600.0) as i64 * 1000,
            drink_start_ms,
        }
    }
    pub fn end_ms(&self) -> TimeMs {
        self.onset_ms + self.rise_ms + self.fall_ms
    }
    /// Transdermal alcohol (g/dL) the episode contributes at `t_ms`.
    pub fn tac_at(&self, t_ms: TimeMs) -> f64 {
        if t_ms <= self.onset_ms || t_ms >= self.end_ms() {
            return 0.0;
        }
        let half_pi = std::f64::consts::FRAC_PI_2;
        let dt = (t_ms - self.onset_ms) as f64;
        if dt < self.rise_ms as f64 {
            self.peak_gdl * (half_pi * dt / self.rise_ms as f64).sin().powi(2)
        } else {
            let x = (dt - self.rise_ms as f64) / self.fall_ms as f64;
            self.peak_gdl * (half_pi * (1.0 - x)).sin().powi(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drinking_curves_rise_and_fall_within_limits() {
        let rates = Rates::default();
        let mut rng = Rng::new(9);
        for _ in 0..200 {
            let e = DrinkingEpisode::plan(&mut rng, &rates, 0);
            let step = 600_000;
            let mut prev = 0.0;
            let mut t = e.onset_ms;
            while t <= e.end_ms() + step {
                let v = e.tac_at(t);
                let slope_h = (v - prev) / (step as f64 / 3_600_000.0);
                assert!(
                    (-0.025 - 1e-9..=0.05 + 1e-9).contains(&slope_h),
                    "{slope_h}"
                );
                prev = v;
                t += step;
            }
        }
    }

    #[test]
    fn defaults_parse() {
        let r = Rates::default();
        assert!(r.late_return > 0.0 && r.rate_scale == 1.0);
    }
}
