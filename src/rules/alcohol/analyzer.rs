//! The TAC analyzer: smoothing, excursions and sensor tamper for one wearer, as one value that
//! can be cloned (state snapshots for re-analysis after late data). It consumes TAC readings in
//! event-time order and reports [`Finding`]s: new states of drinking events, environmental
//! exposures, unconfirmed excursions, obstructions and removals.

use super::config::Thresholds;
use super::excursion::ExcursionTracker;
use super::smoothing::{Despiker, DespikerOut, RateSmoother, TacPoint};
use super::tamper::TamperTracker;
use crate::model::TimeMs;

/// What the analyzer found.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FindingKind {
    /// Confirmed drinking event.
    Drinking,
    /// Too fast for the body: exposure to alcohol in the environment, not drinking.
    Environmental,
    /// Alcohol seen, not confirmed (below the peak threshold, too few readings, implausible).
    Unconfirmed,
    Obstruction,
    Removal,
}

/// Measurements of an excursion (TAC in µg/dL, rates in µg/dL per hour).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExcursionMetrics {
    pub baseline_tac_ugdl: i32,
    pub peak_ms: TimeMs,
    pub peak_tac_ugdl: i32,
    pub max_raw_tac_ugdl: i32,
    /// Area of the despiked curve above baseline, µg/dL × ms.
    pub auc_ugdl_ms: i64,
    pub absorption_ugdl_per_h: i64,
    /// Peak → return (closed) or peak → the confirming reading (open).
    pub elimination_ugdl_per_h: Option<i64>,
    pub readings: u32,
    pub start_point: TacPoint,
    pub peak_point: TacPoint,
    pub end_point: Option<TacPoint>,
}

/// Measurements of a tamper run (IR in µV, temperature in m°C, both median of three).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TamperMetrics {
    pub ir_baseline_uv: i32,
    pub ir_uv: i32,
    pub temp_mc: i32,
    pub readings: u32,
    pub start_point: TacPoint,
    pub end_point: Option<TacPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FindingMetrics {
    Excursion(ExcursionMetrics),
    Tamper(TamperMetrics),
}

/// One state of one finding. A finding is identified by (start, kind); a later state of the
/// same finding replaces the earlier.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub start_ms: TimeMs,
    /// `None` while open.
    pub end_ms: Option<TimeMs>,
    /// Event time of the reading that produced this state (bookkeeping, not content).
    pub as_of_ms: TimeMs,
    pub metrics: FindingMetrics,
}

impl Finding {
    pub fn key(&self) -> (TimeMs, FindingKind) {
        (self.start_ms, self.kind)
    }

    /// Same finding in the same state (ignoring when it was computed).
    pub fn same_content(&self, other: &Finding) -> bool {
        self.kind == other.kind
            && self.start_ms == other.start_ms
            && self.end_ms == other.end_ms
            && self.metrics == other.metrics
    }
}

/// Everything the alcohol analysis of one wearer remembers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TacAnalyzer {
    despiker: Despiker,
    smoother: RateSmoother,
    excursions: ExcursionTracker,
    tamper: TamperTracker,
    last_ms: Option<TimeMs>,
    /// The segment was ended by [`TacAnalyzer::end_segment`] and no reading came since.
    ended: bool,
}

impl TacAnalyzer {
    pub fn new(th: &Thresholds) -> Self {
        Self {
            despiker: Despiker::default(),
            smoother: RateSmoother::default(),
            excursions: ExcursionTracker::new(th),
            tamper: TamperTracker::new(th),
            last_ms: None,
            ended: false,
        }
    }

    /// Event time of the newest reading taken.
    pub fn last_ms(&self) -> Option<TimeMs> {
        self.last_ms
    }

    /// The current segment was ended early (see [`TacAnalyzer::end_segment`]).
    pub fn segment_ended(&self) -> bool {
        self.ended
    }

    /// Readings taken but not yet through both smoothing stages.
    pub fn has_pending(&self) -> bool {
        self.despiker.has_pending() || self.smoother.has_pending()
    }

    /// Start of an excursion that may still be confirmed as drinking.
    pub fn pending_decision_since(&self, th: &Thresholds) -> Option<TimeMs> {
        self.excursions.pending_since(th)
    }

    /// Keys of the confirmed findings still open.
    pub fn open_keys(&self) -> Vec<(TimeMs, FindingKind)> {
        let drinking = self
            .excursions
            .open_drinking_since()
            .map(|t| (t, FindingKind::Drinking));
        drinking
            .into_iter()
            .chain(self.tamper.open_since())
            .collect()
    }

    fn release(&mut self, th: &Thresholds, released: DespikerOut, out: &mut Vec<Finding>) {
        let Self {
            smoother,
            excursions,
            tamper,
            ..
        } = self;
        if let Some(f) = released.point {
            tamper.push(th, &f, out);
            smoother.push(th, f, &mut |s| excursions.push(th, &s, out));
        }
        if released.segment_end {
            smoother.end_segment(th, &mut |s| excursions.push(th, &s, out));
        }
    }

    /// Takes the next reading (event-time order: not older than [`TacAnalyzer::last_ms`]).
    pub fn push(&mut self, th: &Thresholds, p: TacPoint, out: &mut Vec<Finding>) {
        self.last_ms = Some(p.t_ms);
        self.ended = false;
        let released = self.despiker.push(th, p);
        self.release(th, released, out);
    }

    /// No reading followed within the gap limit: finish the segment now instead of waiting for
    /// the next reading to show the gap.
    pub fn end_segment(&mut self, th: &Thresholds, out: &mut Vec<Finding>) {
        let released = self.despiker.end_segment(th);
        self.release(th, released, out);
        self.ended = true;
    }
}
