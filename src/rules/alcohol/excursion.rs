//! Excursions: segmentation of the TAC curve into onset, peak and return, and the decision on
//! each one — confirmed drinking, environmental exposure, or unconfirmed alcohol.
//!
//! An excursion opens when TAC (raw or despiked) rises more than `onset_delta` above the wearer's
//! baseline; the onset is the last reading before it. It closes when raw and despiked TAC are
//! both back within `return_delta` of the baseline for `return_readings` readings; the return is
//! the first of those. It is confirmed as drinking when:
//! - the despiked peak reaches `peak_min`, and at least `min_readings_near_peak` readings are at
//!   or above half its height (a body curve holds its peak for hours; a splash of alcohol on
//!   the sensor shows on one or two readings, and the wide rate curve would hide how fast);
//! - the rise onset → peak on the rate curve is no faster than `max_absorption`;
//! - the fall peak → return on the rate curve (or, before the return, peak → the current
//!   reading once the curve has come down by `confirm_descent_fraction` of its height) is no
//!   faster than `max_elimination`.
//!
//! Confirmation is final; every later reading updates the peak, the area and the readings
//! counted, and the return sets the end and the final fall rate. An excursion
//! that closes unconfirmed is environmental when its raw peak reaches `environmental_min_peak`
//! and its raw rise or fall is faster than the body allows, otherwise unconfirmed.

use super::analyzer::{ExcursionMetrics, Finding, FindingKind, FindingMetrics};
use super::baseline::RunningMedian;
use super::config::Thresholds;
use super::smoothing::{SmoothedPoint, TacPoint};
use crate::model::TimeMs;

const HOUR_MS: i64 = 3_600_000;

/// Rate of change in µg/dL per hour; a rise in no time is infinitely fast.
pub fn rate_ugdl_per_h(delta_ugdl: i64, dt_ms: TimeMs) -> i64 {
    if dt_ms > 0 {
        delta_ugdl * HOUR_MS / dt_ms
    } else if delta_ugdl > 0 {
        i64::MAX
    } else {
        0
    }
}

/// A time and a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct At {
    t_ms: TimeMs,
    ugdl: i32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Excursion {
    start: TacPoint,
    /// Last reading before the excursion (rate curve), when in the same segment.
    onset: Option<At>,
    baseline_ugdl: i32,
    readings: u32,
    /// The `min_readings_near_peak` highest despiked values, highest first: enough readings
    /// are near the peak exactly when the last of them is at or above half its height.
    top_ugdl: Vec<i32>,
    /// Despiked peak, and the reading it was.
    peak: At,
    peak_point: TacPoint,
    /// Peak of the rate curve.
    rate_peak: At,
    /// Rate curve at the first reading (stands in for a missing onset).
    rate_start: At,
    max_raw: At,
    auc_ugdl_ms: i64,
    /// Previous reading (despiked) for the area, `None` after a gap.
    prev: Option<At>,
    /// Consecutive readings back at baseline, and the first of them (rate value, raw value).
    returned: u32,
    return_at: Option<(At, i32, TacPoint)>,
    confirmed: bool,
    /// Fall rate that confirmed the event (reported while it is open).
    confirm_elimination: Option<i64>,
}

impl Excursion {
    fn absorption(&self) -> i64 {
        let onset = self.onset.unwrap_or(self.rate_start);
        if self.rate_peak.t_ms <= onset.t_ms {
            return 0;
        }
        rate_ugdl_per_h(
            (self.rate_peak.ugdl as i64 - onset.ugdl as i64).max(0),
            self.rate_peak.t_ms - onset.t_ms,
        )
    }

    fn elimination_to(&self, to: At) -> i64 {
        rate_ugdl_per_h(
            (self.rate_peak.ugdl as i64 - to.ugdl as i64).max(0),
            to.t_ms - self.rate_peak.t_ms,
        )
    }

    /// Half the peak's height above the baseline, as a level.
    fn half_peak_ugdl(&self) -> i64 {
        let base = self.baseline_ugdl as i64;
        base + (self.peak.ugdl as i64 - base) / 2
    }

    fn note_value(&mut self, th: &Thresholds, ugdl: i32) {
        let n = th.min_readings_near_peak as usize;
        if self.top_ugdl.len() < n || self.top_ugdl.last().is_some_and(|v| ugdl > *v) {
            let at = self.top_ugdl.partition_point(|v| *v >= ugdl);
            self.top_ugdl.insert(at, ugdl);
            self.top_ugdl.truncate(n);
        }
    }

    /// Peak, readings near it and rise allow confirmation.
    fn shape_ok(&self, th: &Thresholds) -> bool {
        let near_peak = self.top_ugdl.len() >= th.min_readings_near_peak as usize
            && self
                .top_ugdl
                .last()
                .is_some_and(|v| *v as i64 >= self.half_peak_ugdl());
        self.peak.ugdl >= th.peak_min_ugdl
            && near_peak
            && self.absorption() <= th.max_absorption_ugdl_per_h
    }

    /// The curve has come down far enough, slowly enough, to confirm before the return.
    fn descent_ok(&self, th: &Thresholds, now: At) -> bool {
        if now.t_ms <= self.rate_peak.t_ms {
            return false;
        }
        let height = self.rate_peak.ugdl as i64 - self.baseline_ugdl as i64;
        let fallen = self.rate_peak.ugdl as i64 - now.ugdl as i64;
        height > 0
            && fallen * 1_000_000 >= height * th.confirm_descent_ppm
            && self.elimination_to(now) <= th.max_elimination_ugdl_per_h
    }

    /// Raw rise or fall faster than the body allows (the environmental signature).
    fn raw_too_fast(&self, th: &Thresholds, ret_t_ms: TimeMs, ret_raw: i32) -> bool {
        let rise = self.onset.map(|onset| {
            rate_ugdl_per_h(
                (self.max_raw.ugdl as i64 - self.baseline_ugdl as i64).max(0),
                self.max_raw.t_ms - onset.t_ms,
            )
        });
        let fall = rate_ugdl_per_h(
            (self.max_raw.ugdl as i64 - ret_raw as i64).max(0),
            ret_t_ms - self.max_raw.t_ms,
        );
        rise.is_some_and(|r| r > th.max_absorption_ugdl_per_h)
            || fall > th.max_elimination_ugdl_per_h
    }

    fn finding(
        &self,
        kind: FindingKind,
        now: At,
        end: Option<(TimeMs, TacPoint)>,
        elimination: Option<i64>,
    ) -> Finding {
        Finding {
            kind,
            start_ms: self.start.t_ms,
            end_ms: end.map(|e| e.0),
            as_of_ms: now.t_ms,
            metrics: FindingMetrics::Excursion(ExcursionMetrics {
                baseline_tac_ugdl: self.baseline_ugdl,
                peak_ms: self.peak.t_ms,
                peak_tac_ugdl: self.peak.ugdl,
                max_raw_tac_ugdl: self.max_raw.ugdl,
                auc_ugdl_ms: self.auc_ugdl_ms,
                absorption_ugdl_per_h: self.absorption(),
                elimination_ugdl_per_h: elimination,
                readings: self.readings,
                start_point: self.start,
                peak_point: self.peak_point,
                end_point: end.map(|e| e.1),
            }),
        }
    }
}

/// Baseline and the excursion in progress, fed the smoothed stream.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExcursionTracker {
    baseline: RunningMedian,
    last_idle: Option<At>,
    active: Option<Excursion>,
}

impl ExcursionTracker {
    pub fn new(th: &Thresholds) -> Self {
        Self {
            baseline: RunningMedian::new(th.baseline_readings),
            last_idle: None,
            active: None,
        }
    }

    pub fn baseline_ugdl(&self, th: &Thresholds) -> i32 {
        self.baseline
            .median()
            .unwrap_or(0)
            .clamp(0, th.baseline_max_ugdl)
    }

    /// Start of an excursion that may still be confirmed as drinking (peak reached, undecided).
    pub fn pending_since(&self, th: &Thresholds) -> Option<TimeMs> {
        self.active
            .as_ref()
            .filter(|ex| !ex.confirmed && ex.peak.ugdl >= th.peak_min_ugdl)
            .map(|ex| ex.start.t_ms)
    }

    /// Start of the confirmed drinking event in progress, if any.
    pub fn open_drinking_since(&self) -> Option<TimeMs> {
        self.active
            .as_ref()
            .filter(|ex| ex.confirmed)
            .map(|ex| ex.start.t_ms)
    }

    pub fn push(&mut self, th: &Thresholds, s: &SmoothedPoint, out: &mut Vec<Finding>) {
        let f = &s.filtered;
        let t_ms = f.point.t_ms;
        let raw = f.point.sample.tac_ugdl;
        let despiked = At {
            t_ms,
            ugdl: f.tac_ugdl,
        };
        let rate = At {
            t_ms,
            ugdl: s.rate_tac_ugdl,
        };
        let base = self.baseline_ugdl(th);
        let open_level = base as i64 + th.onset_delta_ugdl as i64;

        let ex = match &mut self.active {
            Some(ex) => ex,
            None => {
                if (raw as i64) <= open_level && (f.tac_ugdl as i64) <= open_level {
                    self.baseline.push(f.tac_ugdl);
                    self.last_idle = Some(rate);
                    return;
                }
                let onset = self.last_idle.filter(|_| !f.segment_start);
                self.active.insert(Excursion {
                    start: f.point,
                    onset,
                    baseline_ugdl: base,
                    readings: 0,
                    top_ugdl: Vec::new(),
                    peak: despiked,
                    peak_point: f.point,
                    rate_peak: rate,
                    rate_start: rate,
                    max_raw: At { t_ms, ugdl: raw },
                    auc_ugdl_ms: 0,
                    prev: None,
                    returned: 0,
                    return_at: None,
                    confirmed: false,
                    confirm_elimination: None,
                })
            }
        };

        ex.readings += 1;
        let ex_base = ex.baseline_ugdl as i64;
        let above = |v: i32| (v as i64 - ex_base).max(0);
        if let Some(prev) = ex.prev.filter(|_| !f.segment_start) {
            ex.auc_ugdl_ms += (above(prev.ugdl) + above(despiked.ugdl)) * (t_ms - prev.t_ms) / 2;
        }
        ex.prev = Some(despiked);
        ex.note_value(th, despiked.ugdl);
        if despiked.ugdl > ex.peak.ugdl {
            ex.peak = despiked;
            ex.peak_point = f.point;
        }
        if rate.ugdl > ex.rate_peak.ugdl {
            ex.rate_peak = rate;
        }
        if raw > ex.max_raw.ugdl {
            ex.max_raw = At { t_ms, ugdl: raw };
        }
        let return_level = ex.baseline_ugdl as i64 + th.return_delta_ugdl as i64;
        if raw as i64 <= return_level && f.tac_ugdl as i64 <= return_level {
            ex.returned += 1;
            if ex.returned == 1 {
                ex.return_at = Some((rate, raw, f.point));
            }
        } else {
            ex.returned = 0;
            ex.return_at = None;
        }

        if ex.returned >= th.return_readings {
            if let Some((ret, ret_raw, ret_point)) = ex.return_at {
                let elimination = ex.elimination_to(ret);
                if !ex.confirmed && ex.shape_ok(th) && elimination <= th.max_elimination_ugdl_per_h
                {
                    ex.confirmed = true;
                }
                let kind = if ex.confirmed {
                    FindingKind::Drinking
                } else if ex.max_raw.ugdl >= th.environmental_min_peak_ugdl
                    && ex.raw_too_fast(th, ret.t_ms, ret_raw)
                {
                    FindingKind::Environmental
                } else {
                    FindingKind::Unconfirmed
                };
                out.push(ex.finding(kind, rate, Some((ret.t_ms, ret_point)), Some(elimination)));
                self.active = None;
                self.baseline.push(f.tac_ugdl);
                self.last_idle = Some(rate);
                return;
            }
        }

        if !ex.confirmed && ex.shape_ok(th) && ex.descent_ok(th, rate) {
            ex.confirmed = true;
            ex.confirm_elimination = Some(ex.elimination_to(rate));
        }
        if ex.confirmed {
            // Every reading of an open event updates it (peak, area, readings so far).
            out.push(ex.finding(FindingKind::Drinking, rate, None, ex.confirm_elimination));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_hour_and_an_instant_rise_is_infinite() {
        assert_eq!(rate_ugdl_per_h(25_000, HOUR_MS), 25_000);
        assert_eq!(rate_ugdl_per_h(25_000, 30 * 60_000), 50_000);
        assert_eq!(rate_ugdl_per_h(1, 0), i64::MAX);
        assert_eq!(rate_ugdl_per_h(0, 0), 0);
    }
}
