//! Tamper seen in the alcohol sensor's own channels (strap events come from the device and are
//! handled beside this).
//!
//! - **Obstruction**: IR voltage (median of three) further than `obstruction_tolerance` from the
//!   wearer's baseline while the temperature is still in skin range, sustained for
//!   `obstruction_min_ms` and `obstruction_min_readings`.
//! - **Removal**: temperature (median of three) outside skin range *and* IR further than
//!   `removal_ir_tolerance` from the baseline, sustained for `removal_min_ms` and
//!   `removal_min_readings`. Neither alone is removal: a cold ankle reads 19 °C, and IR jumps
//!   briefly on a worn bracelet.
//!
//! The IR baseline is the running median of readings judged normal, so an obstruction cannot
//! drag the baseline toward itself. A gap breaks a run that is not yet confirmed; a confirmed one
//! stays open until a reading is no longer of its kind.

use super::analyzer::{Finding, FindingKind, FindingMetrics, TamperMetrics};
use super::baseline::RunningMedian;
use super::config::Thresholds;
use super::smoothing::FilteredPoint;
use crate::model::TimeMs;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Run {
    start: Option<FilteredPoint>,
    baseline_uv: i32,
    readings: u32,
    confirmed: bool,
}

impl Run {
    fn finding(
        &self,
        kind: FindingKind,
        now_ms: TimeMs,
        end: Option<FilteredPoint>,
    ) -> Option<Finding> {
        let start = self.start?;
        Some(Finding {
            kind,
            start_ms: start.point.t_ms,
            end_ms: end.map(|e| e.point.t_ms),
            as_of_ms: now_ms,
            metrics: FindingMetrics::Tamper(TamperMetrics {
                ir_baseline_uv: self.baseline_uv,
                ir_uv: start.ir_uv,
                temp_mc: start.temp_mc,
                readings: self.readings,
                start_point: start.point,
                end_point: end.map(|e| e.point),
            }),
        })
    }
}

/// IR baseline and the obstruction and removal runs in progress, fed the despiked stream.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TamperTracker {
    ir_baseline: RunningMedian,
    obstruction: Run,
    removal: Run,
}

impl TamperTracker {
    pub fn new(th: &Thresholds) -> Self {
        Self {
            ir_baseline: RunningMedian::new(th.ir_baseline_readings),
            obstruction: Run::default(),
            removal: Run::default(),
        }
    }

    /// The wearer's IR baseline, once enough normal readings were seen.
    pub fn ir_baseline_uv(&self, th: &Thresholds) -> Option<i32> {
        (self.ir_baseline.len() >= th.ir_baseline_min_readings)
            .then(|| self.ir_baseline.median())
            .flatten()
    }

    /// Starts of the confirmed tamper runs in progress.
    pub fn open_since(&self) -> impl Iterator<Item = (TimeMs, FindingKind)> + '_ {
        [
            (&self.obstruction, FindingKind::Obstruction),
            (&self.removal, FindingKind::Removal),
        ]
        .into_iter()
        .filter(|(run, _)| run.confirmed)
        .filter_map(|(run, kind)| run.start.map(|s| (s.point.t_ms, kind)))
    }

    pub fn push(&mut self, th: &Thresholds, f: &FilteredPoint, out: &mut Vec<Finding>) {
        let Some(base) = self.ir_baseline_uv(th) else {
            self.ir_baseline.push(f.ir_uv);
            return;
        };
        let dev = (f.ir_uv as i64 - base as i64).abs();
        let out_of_skin = f.temp_mc < th.skin_min_mc || f.temp_mc > th.skin_max_mc;
        let class = if out_of_skin && dev > th.removal_ir_tolerance_uv as i64 {
            Some(FindingKind::Removal)
        } else if !out_of_skin && dev > th.obstruction_tolerance_uv as i64 {
            Some(FindingKind::Obstruction)
        } else {
            None
        };
        let t_ms = f.point.t_ms;
        for (kind, run, min_ms, min_readings) in [
            (
                FindingKind::Obstruction,
                &mut self.obstruction,
                th.obstruction_min_ms,
                th.obstruction_min_readings,
            ),
            (
                FindingKind::Removal,
                &mut self.removal,
                th.removal_min_ms,
                th.removal_min_readings,
            ),
        ] {
            if class == Some(kind) {
                if run.start.is_none() || (f.segment_start && !run.confirmed) {
                    *run = Run {
                        start: Some(*f),
                        baseline_uv: base,
                        readings: 0,
                        confirmed: false,
                    };
                }
                run.readings += 1;
                let since_ms = run.start.map_or(0, |s| t_ms - s.point.t_ms);
                if !run.confirmed && since_ms >= min_ms && run.readings >= min_readings {
                    run.confirmed = true;
                    out.extend(run.finding(kind, t_ms, None));
                }
            } else if run.start.is_some() {
                if run.confirmed {
                    out.extend(run.finding(kind, t_ms, Some(*f)));
                }
                *run = Run::default();
            }
        }
        if class.is_none() {
            self.ir_baseline.push(f.ir_uv);
        }
    }
}
