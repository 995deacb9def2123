//! Presence at a curfew address: what one reading says, and the compressed history of it.
//!
//! - RF (`rf` readings from the home monitoring unit): `in_range` is home, out of range is away,
//!   for windows at an address where RF counts (`timetable::PlanAddress::rf_counts`). For an
//!   address apart from every unit, `in_range` goes into that address's fix list as a definite
//!   away observation (the wearer is at the unit); out of range says nothing about it.
//! - GPS / LBS / Wi-Fi fixes, against the address circle (`radius_m`), taking the fix's precision
//!   (its ~95% confidence radius, times `precision_scale`) into account: **home** if the whole
//!   confidence circle lies within the radius (d + p ≤ r), **away** if it lies entirely outside
//!   (d − p > r), **uncertain** otherwise. Network fixes are usually so imprecise that they come out
//!   uncertain; that is how they count as weaker evidence.
//!
//! Uncertain observations never change the presence state (hysteresis): they only show the tag is
//! reporting. The history is kept as runs of equal observations (a night at home is one run), split
//! where two observations are further apart than the configured maximum age, so that a run is
//! continuous evidence.

use super::super::geodesy::LocalProjection;
use crate::model::{Position, Reading, TimeMs};

/// At most this many runs are kept before a pruning point to carry the presence state over it.
const MAX_CARRIED_RUNS: usize = 64;

/// What one observation says about presence at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Presence {
    Home,
    Away,
    Uncertain,
}

/// Classifies a fix against an address circle (see the module doc).
pub fn classify_fix(
    fix: &Position,
    address: &LocalProjection,
    radius_m: f64,
    precision_scale: f64,
) -> Presence {
    let (x, y) = address.to_xy(fix.lat(), fix.lon());
    let d_m = (x * x + y * y).sqrt();
    let p_m = fix.precision_m() * precision_scale;
    if d_m + p_m <= radius_m {
        Presence::Home
    } else if d_m - p_m > radius_m {
        Presence::Away
    } else {
        Presence::Uncertain
    }
}

/// Consecutive observations of one class, each within `max_gap_ms` of the next.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    pub class: Presence,
    pub first_ms: TimeMs,
    pub last_ms: TimeMs,
    /// How many observations the run holds (approximate after a late observation split it).
    pub n: u32,
    /// The first reading of the run, as evidence (none for the second half of a split run).
    #[serde(with = "crate::pipeline::snapshot::via")]
    pub evidence: Option<Reading>,
}

/// The runs of one presence source (RF, or GPS against one address), in time order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// How an observation changed a run list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// In order, counted in the last run.
    Extended,
    /// In order, a new last run.
    Appended,
    /// Out of order: inside or before earlier runs (verdicts must be recomputed).
    Inserted,
}

/// The definite presence state at the end of a run list, kept incrementally for observations
/// that arrive in order, so that an observation that changes nothing costs nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DefiniteState {
    /// `Some(true)` home, `Some(false)` away, `None` not yet known.
    pub home: Option<bool>,
    /// Away observations since the last home one.
    pub pending_away: u32,
}

impl DefiniteState {
    /// Counts one in-order observation; true when the definite state changed.
    pub fn observe(&mut self, class: Presence, n: u32, away_min_fixes: u32) -> bool {
        match class {
            Presence::Home => {
                self.pending_away = 0;
                let changed = self.home != Some(true);
                self.home = Some(true);
                changed
            }
            Presence::Away => {
                self.pending_away = self.pending_away.saturating_add(n);
                if self.pending_away >= away_min_fixes.max(1) && self.home != Some(false) {
                    self.home = Some(false);
                    return true;
                }
                false
            }
            Presence::Uncertain => false,
        }
    }

    /// The state at the end of `runs`.
    pub fn of_runs(runs: &[Run], away_min_fixes: u32) -> Self {
        let mut state = Self::default();
        for run in runs {
            state.observe(run.class, run.n, away_min_fixes);
        }
        state
    }
}

impl RunList {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Adds an observation at any time (in order is the fast path).
    pub fn insert(&mut self, reading: &Reading, class: Presence, max_gap_ms: TimeMs) -> Change {
        self.insert_weighted(reading, class, max_gap_ms, 1)
    }

    /// Adds an observation that counts as `weight` observations (an RF reading in a GPS list,
    /// which one reading makes definite).
    pub fn insert_weighted(
        &mut self,
        reading: &Reading,
        class: Presence,
        max_gap_ms: TimeMs,
        weight: u32,
    ) -> Change {
        let t = reading.t_ms;
        let weight = weight.max(1);
        let fresh_run = Run {
            class,
            first_ms: t,
            last_ms: t,
            n: weight,
            evidence: Some(*reading),
        };
        let idx = self.runs.partition_point(|r| r.first_ms <= t);
        if self.runs.is_empty() {
            self.runs.push(fresh_run);
            return Change::Appended;
        }
        if idx == self.runs.len() {
            if let Some(last) = self.runs.last_mut() {
                if t >= last.last_ms {
                    if last.class == class && t - last.last_ms <= max_gap_ms {
                        last.last_ms = t;
                        last.n = last.n.saturating_add(weight);
                        return Change::Extended;
                    }
                    self.runs.push(fresh_run);
                    return Change::Appended;
                }
            }
        }
        // Out of order: inside run idx-1, between idx-1 and idx, or before everything.
        if idx > 0 {
            let prev = self.runs[idx - 1];
            if t <= prev.last_ms {
                if prev.class == class {
                    self.runs[idx - 1].n = prev.n.saturating_add(weight);
                    return Change::Inserted;
                }
                // Split prev around t.
                let n_left = prev.n.div_ceil(2).max(1);
                let mut parts = Vec::with_capacity(3);
                if t > prev.first_ms {
                    parts.push(Run {
                        last_ms: t - 1,
                        n: n_left,
                        ..prev
                    });
                }
                parts.push(fresh_run);
                if t < prev.last_ms {
                    let n_right = if t > prev.first_ms {
                        prev.n.saturating_sub(n_left).max(1)
                    } else {
                        prev.n
                    };
                    parts.push(Run {
                        first_ms: t + 1,
                        n: n_right,
                        evidence: None,
                        ..prev
                    });
                }
                self.runs.splice(idx - 1..idx, parts);
                return Change::Inserted;
            }
            if prev.class == class && t - prev.last_ms <= max_gap_ms {
                self.runs[idx - 1].last_ms = t;
                self.runs[idx - 1].n = prev.n.saturating_add(weight);
                return Change::Inserted;
            }
        }
        if let Some(next) = self.runs.get_mut(idx) {
            if next.class == class && next.first_ms - t <= max_gap_ms {
                next.first_ms = t;
                next.n = next.n.saturating_add(weight);
                next.evidence = Some(*reading);
                return Change::Inserted;
            }
        }
        self.runs.insert(idx, fresh_run);
        Change::Inserted
    }

    /// Whether some observation lies within `max_age_ms` before `t_ms` (runs are continuous).
    pub fn fresh_at(&self, t_ms: TimeMs, max_age_ms: TimeMs) -> bool {
        let idx = self.runs.partition_point(|r| r.first_ms <= t_ms);
        idx > 0 && self.runs[idx - 1].last_ms >= t_ms - max_age_ms
    }

    /// Drops runs that end before `keep_from_ms`, keeping the last home run before it (the
    /// state carried into what is kept) and everything after it.
    pub fn prune_before(&mut self, keep_from_ms: TimeMs) {
        let first_kept = self.runs.partition_point(|r| r.last_ms < keep_from_ms);
        // Keep the last home run before the cut (or, with none, the run just before it).
        let cut = self.runs[..first_kept]
            .iter()
            .rposition(|r| r.class == Presence::Home)
            .filter(|&i| first_kept - i <= MAX_CARRIED_RUNS)
            .unwrap_or(first_kept.saturating_sub(1));
        if cut > 0 {
            self.runs.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReadingBody;

    fn rf(t_ms: TimeMs, in_range: bool) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Rf { in_range },
        }
    }

    #[test]
    fn runs_compress_in_order_and_split_for_late_observations() {
        let mut list = RunList::default();
        for t in [0, 10, 20, 30] {
            list.insert(&rf(t, true), Presence::Home, 100);
        }
        assert_eq!(list.runs.len(), 1);
        assert_eq!(list.runs[0].n, 4);
        assert_eq!(
            list.insert(&rf(500, true), Presence::Home, 100),
            Change::Appended
        );
        assert_eq!(
            list.runs.len(),
            2,
            "a gap longer than the maximum starts a new run"
        );
        assert_eq!(
            list.insert(&rf(15, false), Presence::Away, 100),
            Change::Inserted
        );
        let classes: Vec<_> = list
            .runs
            .iter()
            .map(|r| (r.class, r.first_ms, r.last_ms))
            .collect();
        assert_eq!(
            classes,
            vec![
                (Presence::Home, 0, 14),
                (Presence::Away, 15, 15),
                (Presence::Home, 16, 30),
                (Presence::Home, 500, 500)
            ]
        );
        assert!(list.fresh_at(40, 20));
        assert!(!list.fresh_at(60, 20));
        list.prune_before(400);
        assert_eq!(
            list.runs.len(),
            2,
            "the last home run before the cut is kept"
        );
    }
}
