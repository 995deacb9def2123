//! Alcohol rule parameters: [`AlcoholConfig`] (the `[rules.alcohol]` section, every threshold with
//! a serde default) and [`Thresholds`], the same values compiled to the fixed-point units the
//! rule computes in, plus the configuration fingerprint every output carries.
//!
//! Why each default is what it is: `docs/alcohol.md`.

use crate::model::TimeMs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the alcohol algorithm, recorded on every alert and sober day it produces.
pub const ALCOHOL_RULE_VERSION: &str = "alcohol/1";

const MINUTE_MS: TimeMs = 60 * 1000;
const HOUR_MS: TimeMs = 60 * MINUTE_MS;

/// Every threshold of the alcohol rule. Concentrations in g/dL, rates in g/dL per hour,
/// voltages in volts, temperatures in °C, durations in milliseconds of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlcoholConfig {
    // --- confirmation of a drinking event ---
    /// A confirmed drinking event peaks at or above this (spike-filtered curve).
    pub peak_min_tac_gdl: f64,
    /// Fastest plausible rise, onset → peak, on the rate curve.
    pub max_absorption_gdl_per_h: f64,
    /// Fastest plausible fall, peak → return (or → the confirming reading), on the rate curve.
    pub max_elimination_gdl_per_h: f64,
    /// Fewest readings at or above half the excursion's peak height for it to be confirmed: the
    /// body holds a peak for hours, a splash of hand gel shows on a reading or two.
    pub min_readings_near_peak: u32,
    /// Before the curve has returned, confirmation needs it to have fallen by this fraction of
    /// its height above baseline.
    pub confirm_descent_fraction: f64,
    // --- smoothing ---
    /// A reading further than this from the median of itself and its two neighbours is a spike
    /// and replaced by that median.
    pub spike_tolerance_tac_gdl: f64,
    /// Half-width of the centred moving mean (over the spike-filtered curve) that rates are
    /// judged on.
    pub rate_half_window_ms: TimeMs,
    // --- segmentation ---
    /// An excursion opens when TAC rises more than this above the wearer's baseline.
    pub onset_delta_tac_gdl: f64,
    /// An excursion has returned when TAC is no more than this above the baseline ...
    pub return_delta_tac_gdl: f64,
    /// ... for this many consecutive readings.
    pub return_readings: u32,
    /// The wearer's TAC baseline is the median of this many readings outside excursions ...
    pub baseline_readings: u32,
    /// ... and never more than this.
    pub baseline_max_tac_gdl: f64,
    /// More than this between two readings is a gap: not monitored, and a break in smoothing.
    pub max_gap_ms: TimeMs,
    // --- environmental exposure ---
    /// An unconfirmed excursion whose raw peak reaches this, and whose raw rise or fall is
    /// faster than the body allows, is recorded as environmental exposure.
    pub environmental_min_peak_tac_gdl: f64,
    // --- tamper ---
    /// The wearer's IR baseline is the median of this many normal readings ...
    pub ir_baseline_readings: u32,
    /// ... and tamper is not judged before this many.
    pub ir_baseline_min_readings: u32,
    /// IR (median of three) further than this from the baseline, with skin temperature, counts
    /// toward an obstruction.
    pub obstruction_tolerance_v: f64,
    /// An obstruction is confirmed after this long ...
    pub obstruction_min_ms: TimeMs,
    /// ... and this many readings.
    pub obstruction_min_readings: u32,
    /// Skin temperature range (median of three); outside it, with IR change, counts toward removal.
    pub skin_min_temp_c: f64,
    pub skin_max_temp_c: f64,
    /// IR change that, with temperature out of skin range, counts toward a removal.
    pub removal_ir_tolerance_v: f64,
    /// A removal is confirmed after this long ...
    pub removal_min_ms: TimeMs,
    /// ... and this many readings.
    pub removal_min_readings: u32,
    // --- sober days ---
    /// A day is divided into slots of this length; coverage = slots holding a reading ÷ slots.
    pub day_slot_ms: TimeMs,
    /// A day with less coverage than this is partial.
    pub min_day_coverage: f64,
    /// A day with fewer readings than this is partial.
    pub min_day_readings: u32,
    /// A day is settled this long after it ends (event time) ...
    pub settle_ms: TimeMs,
    /// ... or, while a possible drinking event overlapping it is undecided, up to this long.
    pub max_settle_ms: TimeMs,
    // --- orders ---
    /// Abstinence orders are monitored for at most this many days from their start (AAMR: 120).
    /// `None` = only the order's own dates. See `docs/alcohol.md` on AAMR and AML.
    pub abstinence_max_days: Option<u32>,
    // --- late data ---
    /// Readings up to this much older than the newest are re-analysed in place when they
    /// arrive late; older ones count toward day coverage only.
    pub late_window_ms: TimeMs,
    /// How often (event time) the analysis state is kept for re-analysis.
    pub snapshot_every_ms: TimeMs,
}

impl Default for AlcoholConfig {
    fn default() -> Self {
        Self {
            peak_min_tac_gdl: 0.02,
            max_absorption_gdl_per_h: 0.05,
            max_elimination_gdl_per_h: 0.025,
            min_readings_near_peak: 3,
            confirm_descent_fraction: 0.5,
            spike_tolerance_tac_gdl: 0.02,
            rate_half_window_ms: 2 * HOUR_MS,
            onset_delta_tac_gdl: 0.01,
            return_delta_tac_gdl: 0.01,
            return_readings: 2,
            baseline_readings: 12,
            baseline_max_tac_gdl: 0.01,
            max_gap_ms: 90 * MINUTE_MS,
            environmental_min_peak_tac_gdl: 0.02,
            ir_baseline_readings: 16,
            ir_baseline_min_readings: 3,
            obstruction_tolerance_v: 0.3,
            obstruction_min_ms: 2 * HOUR_MS,
            obstruction_min_readings: 4,
            skin_min_temp_c: 24.0,
            skin_max_temp_c: 40.0,
            removal_ir_tolerance_v: 0.3,
            removal_min_ms: HOUR_MS,
            removal_min_readings: 3,
            day_slot_ms: 30 * MINUTE_MS,
            min_day_coverage: 0.75,
            min_day_readings: 24,
            settle_ms: 12 * HOUR_MS,
            max_settle_ms: 48 * HOUR_MS,
            abstinence_max_days: Some(120),
            late_window_ms: 72 * HOUR_MS,
            snapshot_every_ms: 6 * HOUR_MS,
        }
    }
}

/// A parameter that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rules.alcohol.{field}: {problem}")]
pub struct AlcoholConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl AlcoholConfig {
    /// Checks that every parameter is usable; [`Thresholds::new`] clamps what this rejects.
    pub fn validate(&self) -> Result<(), AlcoholConfigError> {
        let err = |field: &'static str, problem: &str| {
            Err(AlcoholConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        let concentrations = [
            ("peak_min_tac_gdl", self.peak_min_tac_gdl),
            ("max_absorption_gdl_per_h", self.max_absorption_gdl_per_h),
            ("max_elimination_gdl_per_h", self.max_elimination_gdl_per_h),
            ("spike_tolerance_tac_gdl", self.spike_tolerance_tac_gdl),
            ("onset_delta_tac_gdl", self.onset_delta_tac_gdl),
            ("return_delta_tac_gdl", self.return_delta_tac_gdl),
            ("baseline_max_tac_gdl", self.baseline_max_tac_gdl),
            (
                "environmental_min_peak_tac_gdl",
                self.environmental_min_peak_tac_gdl,
            ),
            ("obstruction_tolerance_v", self.obstruction_tolerance_v),
            ("removal_ir_tolerance_v", self.removal_ir_tolerance_v),
        ];
        for (field, value) in concentrations {
            if !(value.is_finite() && (0.0..=10.0).contains(&value)) {
                return err(field, "must be a number from 0 to 10");
            }
        }
        for (field, value) in [
            ("confirm_descent_fraction", self.confirm_descent_fraction),
            ("min_day_coverage", self.min_day_coverage),
        ] {
            if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
                return err(field, "must be a fraction from 0 to 1");
            }
        }
        if self.return_delta_tac_gdl > self.onset_delta_tac_gdl {
            return err(
                "return_delta_tac_gdl",
                "must not exceed onset_delta_tac_gdl",
            );
        }
        if !(self.skin_min_temp_c.is_finite()
            && self.skin_max_temp_c.is_finite()
            && self.skin_min_temp_c < self.skin_max_temp_c)
        {
            return err("skin_min_temp_c", "must be below skin_max_temp_c");
        }
        for (field, value) in [
            ("min_readings_near_peak", self.min_readings_near_peak),
            ("return_readings", self.return_readings),
            ("baseline_readings", self.baseline_readings),
            ("ir_baseline_readings", self.ir_baseline_readings),
            ("ir_baseline_min_readings", self.ir_baseline_min_readings),
        ] {
            if !(1..=256).contains(&value) {
                return err(field, "must be from 1 to 256");
            }
        }
        if self.ir_baseline_min_readings > self.ir_baseline_readings {
            return err(
                "ir_baseline_min_readings",
                "must not exceed ir_baseline_readings",
            );
        }
        for (field, value) in [
            ("rate_half_window_ms", self.rate_half_window_ms),
            ("max_gap_ms", self.max_gap_ms),
            ("obstruction_min_ms", self.obstruction_min_ms),
            ("removal_min_ms", self.removal_min_ms),
            ("settle_ms", self.settle_ms),
            ("max_settle_ms", self.max_settle_ms),
            ("late_window_ms", self.late_window_ms),
            ("snapshot_every_ms", self.snapshot_every_ms),
        ] {
            if !(0..=366 * 24 * HOUR_MS).contains(&value) {
                return err(field, "must be from 0 to a year of milliseconds");
            }
        }
        if self.max_settle_ms < self.settle_ms {
            return err("max_settle_ms", "must not be less than settle_ms");
        }
        if self.snapshot_every_ms == 0 || self.max_gap_ms == 0 {
            return err(
                "snapshot_every_ms",
                "snapshot_every_ms and max_gap_ms must be positive",
            );
        }
        // 25 hours must fit in MAX_DAY_SLOTS slots.
        if self.day_slot_ms < MIN_DAY_SLOT_MS {
            return err(
                "day_slot_ms",
                "too short: a 25-hour day must fit in 128 slots",
            );
        }
        if self.abstinence_max_days == Some(0) {
            return err("abstinence_max_days", "must be at least 1 (or absent)");
        }
        Ok(())
    }

    /// Short fingerprint of every parameter: changes whenever any threshold changes.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        hex::encode(&digest[..4])
    }
}

/// The most slots a day is divided into (a bit set of 128).
pub const MAX_DAY_SLOTS: usize = 128;
/// The shortest slot that fits a 25-hour day into [`MAX_DAY_SLOTS`].
pub const MIN_DAY_SLOT_MS: TimeMs =
    (25 * HOUR_MS + MAX_DAY_SLOTS as i64 - 1) / MAX_DAY_SLOTS as i64;

/// [`AlcoholConfig`] in the units the rule computes in: TAC in µg/dL (1e-6 g/dL), rates in µg/dL
/// per hour, IR in µV, temperature in m°C. Integer arithmetic keeps outputs bit-identical.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub peak_min_ugdl: i32,
    pub max_absorption_ugdl_per_h: i64,
    pub max_elimination_ugdl_per_h: i64,
    pub min_readings_near_peak: u32,
    /// Descent fraction in parts per million.
    pub confirm_descent_ppm: i64,
    pub spike_tolerance_ugdl: i32,
    pub rate_half_window_ms: TimeMs,
    pub onset_delta_ugdl: i32,
    pub return_delta_ugdl: i32,
    pub return_readings: u32,
    pub baseline_readings: usize,
    pub baseline_max_ugdl: i32,
    pub max_gap_ms: TimeMs,
    pub environmental_min_peak_ugdl: i32,
    pub ir_baseline_readings: usize,
    pub ir_baseline_min_readings: usize,
    pub obstruction_tolerance_uv: i32,
    pub obstruction_min_ms: TimeMs,
    pub obstruction_min_readings: u32,
    pub skin_min_mc: i32,
    pub skin_max_mc: i32,
    pub removal_ir_tolerance_uv: i32,
    pub removal_min_ms: TimeMs,
    pub removal_min_readings: u32,
    pub day_slot_ms: TimeMs,
    /// Minimum coverage in parts per million.
    pub min_day_coverage_ppm: i64,
    pub min_day_readings: u32,
    pub settle_ms: TimeMs,
    pub max_settle_ms: TimeMs,
    pub abstinence_max_days: Option<u32>,
    pub late_window_ms: TimeMs,
    pub snapshot_every_ms: TimeMs,
    /// [`AlcoholConfig::fingerprint`].
    pub config_version: String,
}

fn micro(value: f64) -> i64 {
    if value.is_finite() {
        (value * 1e6)
            .round()
            .clamp(i32::MIN as f64, i32::MAX as f64) as i64
    } else {
        0
    }
}

fn milli(value: f64) -> i32 {
    if value.is_finite() {
        (value * 1e3)
            .round()
            .clamp(i32::MIN as f64, i32::MAX as f64) as i32
    } else {
        0
    }
}

impl Thresholds {
    /// Compiles a configuration. Values [`AlcoholConfig::validate`] would reject are clamped to
    /// the nearest usable value, so the rule never divides by zero or overflows.
    pub fn new(config: &AlcoholConfig) -> Self {
        let c = config;
        let count = |v: u32| v.clamp(1, 256);
        let ms = |v: TimeMs| v.clamp(0, 366 * 24 * HOUR_MS);
        let ir_baseline_readings = count(c.ir_baseline_readings) as usize;
        let settle_ms = ms(c.settle_ms);
        let onset_delta_ugdl = micro(c.onset_delta_tac_gdl).max(0) as i32;
        Self {
            peak_min_ugdl: micro(c.peak_min_tac_gdl) as i32,
            max_absorption_ugdl_per_h: micro(c.max_absorption_gdl_per_h),
            max_elimination_ugdl_per_h: micro(c.max_elimination_gdl_per_h),
            min_readings_near_peak: count(c.min_readings_near_peak),
            confirm_descent_ppm: micro(c.confirm_descent_fraction).clamp(0, 1_000_000),
            spike_tolerance_ugdl: micro(c.spike_tolerance_tac_gdl).max(0) as i32,
            rate_half_window_ms: ms(c.rate_half_window_ms),
            onset_delta_ugdl,
            return_delta_ugdl: (micro(c.return_delta_tac_gdl).max(0) as i32).min(onset_delta_ugdl),
            return_readings: count(c.return_readings),
            baseline_readings: count(c.baseline_readings) as usize,
            baseline_max_ugdl: micro(c.baseline_max_tac_gdl).max(0) as i32,
            max_gap_ms: ms(c.max_gap_ms).max(1),
            environmental_min_peak_ugdl: micro(c.environmental_min_peak_tac_gdl) as i32,
            ir_baseline_readings,
            ir_baseline_min_readings: (count(c.ir_baseline_min_readings) as usize)
                .min(ir_baseline_readings),
            obstruction_tolerance_uv: micro(c.obstruction_tolerance_v).max(0) as i32,
            obstruction_min_ms: ms(c.obstruction_min_ms),
            obstruction_min_readings: count(c.obstruction_min_readings),
            skin_min_mc: milli(c.skin_min_temp_c),
            skin_max_mc: milli(c.skin_max_temp_c),
            removal_ir_tolerance_uv: micro(c.removal_ir_tolerance_v).max(0) as i32,
            removal_min_ms: ms(c.removal_min_ms),
            removal_min_readings: count(c.removal_min_readings),
            day_slot_ms: c.day_slot_ms.clamp(MIN_DAY_SLOT_MS, 25 * HOUR_MS),
            min_day_coverage_ppm: micro(c.min_day_coverage).clamp(0, 1_000_000),
            min_day_readings: c.min_day_readings,
            settle_ms,
            max_settle_ms: ms(c.max_settle_ms).max(settle_ms),
            abstinence_max_days: c.abstinence_max_days.map(|d| d.max(1)),
            late_window_ms: ms(c.late_window_ms),
            snapshot_every_ms: ms(c.snapshot_every_ms).max(1),
            config_version: c.fingerprint(),
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::new(&AlcoholConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_compile_to_fixed_point() {
        let config = AlcoholConfig::default();
        config.validate().unwrap();
        let th = Thresholds::new(&config);
        assert_eq!(th.peak_min_ugdl, 20_000);
        assert_eq!(th.max_absorption_ugdl_per_h, 50_000);
        assert_eq!(th.max_elimination_ugdl_per_h, 25_000);
        assert_eq!(th.obstruction_tolerance_uv, 300_000);
        assert_eq!(th.skin_min_mc, 24_000);
        assert_eq!(th.config_version.len(), 8);
    }

    #[test]
    fn the_fingerprint_changes_with_any_threshold() {
        let a = AlcoholConfig::default();
        let b = AlcoholConfig {
            max_elimination_gdl_per_h: 0.03,
            ..AlcoholConfig::default()
        };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), AlcoholConfig::default().fingerprint());
    }

    #[test]
    fn unusable_values_are_rejected_by_name() {
        let bad = AlcoholConfig {
            min_day_coverage: 1.5,
            ..AlcoholConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "min_day_coverage");
        let bad = AlcoholConfig {
            day_slot_ms: 1000,
            ..AlcoholConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "day_slot_ms");
        let toml: Result<AlcoholConfig, _> = toml::from_str("peak_min_tac_gdl = 0.03\nbogus = 1");
        assert!(toml.is_err(), "unknown fields are refused");
        let toml: AlcoholConfig = toml::from_str("peak_min_tac_gdl = 0.03").unwrap();
        assert_eq!(
            toml.max_elimination_gdl_per_h, 0.025,
            "unset fields keep their defaults"
        );
    }
}
