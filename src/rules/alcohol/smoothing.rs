//! Smoothing, in two streaming stages, both pure functions of the readings in event-time order.
//!
//! 1. [`Despiker`] (one reading of delay): TAC readings further than a tolerance from the median
//!    of themselves and their two neighbours are replaced by that median (a Hampel-type filter:
//!    an isolated spike goes, a smooth curve — its peak included — is kept exactly); IR voltage
//!    and temperature are replaced by the median of three.
//! 2. [`RateSmoother`] (half a window of delay): the centred moving mean of the despiked TAC over
//!    ± `rate_half_window_ms`. Rates of rise and fall are judged on this curve: they are
//!    differences, which reading-to-reading noise would otherwise dominate.
//!
//! A gap longer than `max_gap_ms` ends a segment: nothing is smoothed across it.

use super::config::Thresholds;
use crate::model::{TacSample, TimeMs};
use std::collections::VecDeque;

/// One TAC reading as the alcohol rule keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TacPoint {
    pub t_ms: TimeMs,
    pub sample: TacSample,
    pub battery_pct: Option<u8>,
}

/// A reading after the first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilteredPoint {
    /// The reading as measured.
    pub point: TacPoint,
    /// TAC with isolated spikes removed.
    pub tac_ugdl: i32,
    /// Median of three IR readings.
    pub ir_uv: i32,
    /// Median of three temperatures.
    pub temp_mc: i32,
    /// First reading of a segment (the very first, or the first after a gap).
    pub segment_start: bool,
}

/// A reading after both stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmoothedPoint {
    pub filtered: FilteredPoint,
    /// Centred moving mean of the despiked TAC: the curve rates are judged on.
    pub rate_tac_ugdl: i32,
}

fn median3(a: i32, b: i32, c: i32) -> i32 {
    a.max(b).min(a.min(b).max(c))
}

/// What the first stage released for one input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DespikerOut {
    pub point: Option<FilteredPoint>,
    /// The segment ended after `point`.
    pub segment_end: bool,
}

/// Stage 1: spike filter on TAC, median of three on IR and temperature.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Despiker {
    prev: Option<TacPoint>,
    cur: Option<TacPoint>,
}

impl Despiker {
    fn filter(
        th: &Thresholds,
        prev: Option<TacPoint>,
        cur: TacPoint,
        next: Option<TacPoint>,
    ) -> FilteredPoint {
        let a = prev.unwrap_or(cur).sample;
        let b = next.unwrap_or(cur).sample;
        let c = cur.sample;
        let m = median3(a.tac_ugdl, c.tac_ugdl, b.tac_ugdl);
        let spike = (c.tac_ugdl as i64 - m as i64).abs() > th.spike_tolerance_ugdl as i64;
        FilteredPoint {
            point: cur,
            tac_ugdl: if spike { m } else { c.tac_ugdl },
            ir_uv: median3(a.ir_uv, c.ir_uv, b.ir_uv),
            temp_mc: median3(a.temp_mc, c.temp_mc, b.temp_mc),
            segment_start: prev.is_none(),
        }
    }

    /// Takes the next reading (event-time order); releases the one before it.
    pub fn push(&mut self, th: &Thresholds, p: TacPoint) -> DespikerOut {
        let Some(cur) = self.cur.replace(p) else {
            return DespikerOut::default();
        };
        if p.t_ms - cur.t_ms > th.max_gap_ms {
            let out = Self::filter(th, self.prev.take(), cur, None);
            DespikerOut {
                point: Some(out),
                segment_end: true,
            }
        } else {
            let out = Self::filter(th, self.prev.replace(cur), cur, Some(p));
            DespikerOut {
                point: Some(out),
                segment_end: false,
            }
        }
    }

    /// The segment ended (no next reading within the gap limit): releases the held reading.
    pub fn end_segment(&mut self, th: &Thresholds) -> DespikerOut {
        let prev = self.prev.take();
        DespikerOut {
            point: self.cur.take().map(|cur| Self::filter(th, prev, cur, None)),
            segment_end: true,
        }
    }

    pub fn has_pending(&self) -> bool {
        self.cur.is_some()
    }
}

/// Stage 2: centred moving mean over ± the rate half-window, within a segment. Points are
/// released in order, so the window's two edges only move forward: a running sum, not a scan.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RateSmoother {
    /// Points of the current segment from the window's left edge on.
    buf: VecDeque<FilteredPoint>,
    /// Index in `buf` of the next point to release.
    next: usize,
    /// Window of the next point: `buf[lo..hi]` (`lo` is always 0 after trimming) and its sum.
    hi: usize,
    sum: i64,
}

impl RateSmoother {
    /// Releases `buf[next]` with the mean over its window (the caller knows no later point of
    /// the segment can still fall inside it).
    fn release_next(&mut self, th: &Thresholds) -> SmoothedPoint {
        let t = self.buf[self.next].point.t_ms;
        while self.hi < self.buf.len() && self.buf[self.hi].point.t_ms <= t + th.rate_half_window_ms
        {
            self.sum += self.buf[self.hi].tac_ugdl as i64;
            self.hi += 1;
        }
        while self
            .buf
            .front()
            .is_some_and(|p| p.point.t_ms < t - th.rate_half_window_ms)
        {
            if let Some(p) = self.buf.pop_front() {
                self.sum -= p.tac_ugdl as i64;
            }
            self.next -= 1;
            self.hi -= 1;
        }
        let n = self.hi as i64; // the window is buf[0..hi]; it holds the point itself
        let out = SmoothedPoint {
            filtered: self.buf[self.next],
            // Rounded to the nearest µg/dL.
            rate_tac_ugdl: (2 * self.sum + n).div_euclid(2 * n) as i32,
        };
        self.next += 1;
        out
    }

    /// Takes a despiked point; releases every point whose window is now complete.
    pub fn push(
        &mut self,
        th: &Thresholds,
        f: FilteredPoint,
        emit: &mut impl FnMut(SmoothedPoint),
    ) {
        if f.segment_start {
            self.end_segment(th, emit);
        }
        self.buf.push_back(f);
        let newest = f.point.t_ms;
        while self.next < self.buf.len()
            && newest > self.buf[self.next].point.t_ms + th.rate_half_window_ms
        {
            let out = self.release_next(th);
            emit(out);
        }
    }

    /// The segment ended: releases everything held, windows cut at the segment's end.
    pub fn end_segment(&mut self, th: &Thresholds, emit: &mut impl FnMut(SmoothedPoint)) {
        while self.next < self.buf.len() {
            let out = self.release_next(th);
            emit(out);
        }
        self.buf.clear();
        self.next = 0;
        self.hi = 0;
        self.sum = 0;
    }

    pub fn has_pending(&self) -> bool {
        self.next < self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(min: i64, tac: i32) -> TacPoint {
        TacPoint {
            t_ms: min * 60_000,
            sample: TacSample {
                tac_ugdl: tac,
                ir_uv: 1_000_000,
                temp_mc: 33_000,
            },
            battery_pct: None,
        }
    }

    fn despike_all(th: &Thresholds, tacs: &[(i64, i32)]) -> Vec<(i32, bool)> {
        let mut d = Despiker::default();
        let mut out = vec![];
        for &(m, v) in tacs {
            if let Some(f) = d.push(th, pt(m, v)).point {
                out.push((f.tac_ugdl, f.segment_start));
            }
        }
        if let Some(f) = d.end_segment(th).point {
            out.push((f.tac_ugdl, f.segment_start));
        }
        out
    }

    #[test]
    fn median_of_three() {
        assert_eq!(median3(1, 2, 3), 2);
        assert_eq!(median3(3, 1, 2), 2);
        assert_eq!(median3(2, 3, 1), 2);
        assert_eq!(median3(5, 5, 1), 5);
    }

    #[test]
    fn an_isolated_spike_is_removed_and_a_smooth_peak_kept() {
        let th = Thresholds::default();
        let spike = despike_all(&th, &[(0, 0), (30, 0), (60, 50_000), (90, 0), (120, 0)]);
        assert_eq!(
            spike.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![0, 0, 0, 0, 0]
        );
        let smooth = despike_all(
            &th,
            &[
                (0, 10_000),
                (30, 18_000),
                (60, 21_000),
                (90, 19_000),
                (120, 15_000),
            ],
        );
        assert_eq!(
            smooth.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![10_000, 18_000, 21_000, 19_000, 15_000]
        );
    }

    #[test]
    fn a_gap_starts_a_new_segment_and_nothing_is_filtered_across_it() {
        let th = Thresholds::default();
        // 40_000 would be a spike between zeros, but the next reading is 3 hours later.
        let out = despike_all(&th, &[(0, 0), (30, 40_000), (210, 0), (240, 0)]);
        assert_eq!(out, vec![(0, true), (40_000, false), (0, true), (0, false)]);
    }

    #[test]
    fn the_rate_curve_is_a_centred_mean_released_once_its_window_is_complete() {
        let th = Thresholds {
            rate_half_window_ms: 60 * 60_000,
            ..Thresholds::default()
        };
        let mut s = RateSmoother::default();
        let mut out = vec![];
        for (i, v) in [0, 0, 30_000, 60_000, 30_000, 0, 0].into_iter().enumerate() {
            let f = FilteredPoint {
                point: pt(i as i64 * 30, v),
                tac_ugdl: v,
                ir_uv: 0,
                temp_mc: 0,
                segment_start: i == 0,
            };
            s.push(&th, f, &mut |p| out.push(p.rate_tac_ugdl));
            // Point i is released once a point more than 60 min later exists (i + 3).
            assert_eq!(out.len(), i.saturating_sub(2));
        }
        s.end_segment(&th, &mut |p| out.push(p.rate_tac_ugdl));
        // Windows of ±60 min = ±2 readings, cut at the ends.
        assert_eq!(
            out,
            vec![10_000, 22_500, 24_000, 24_000, 24_000, 22_500, 10_000]
        );
        assert!(!s.has_pending());
    }
}
