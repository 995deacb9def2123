//! The event-time clock: what "now" is for the rules (no contact, curfew checks, day settling),
//! and which readings are too far from it to be fed to them.
//!
//! The clock is a deterministic function of the log (batches in log order and their recorded
//! arrival times, never the wall clock), so every node that reads the log — live, restart,
//! replay, a node owning only some partitions — computes the same clock at the same record. It
//! is computed here, in the dispatcher, and is independent of the number of partitions.
//!
//! Definition (see `docs/rules.md`, "The event-time clock"): every tag has its latest event
//! time (readings more than `max_future_ms` ahead of their batch's arrival excluded). The live
//! tags are those with a batch that arrived within `live_window_ms` of the newest arrival
//! (without arrival times: whose latest is within that window of the clock). With `n` live tags
//! and `k = max(1, floor(clock_trim · n))`, the clock candidate is the (k+1)-th highest latest
//! event time — the maximum with the top `k` tags trimmed off — and the clock is the greatest
//! candidate so far (monotone). One tag cannot move it: not forward (it is never above the
//! second-highest live tag), not back (monotone); a tag that stops uploading sinks to the
//! bottom, where it holds nothing back. With fewer than `min_clock_tags` live tags nothing can
//! tell a wrong tag from a right one: the candidate is the maximum, and only the arrival bound
//! protects.
//!
//! The order statistic is recomputed every `max(1, tags / 8)` batches (a scan and one
//! selection), so the cost per batch is one map update plus O(1) amortised; the cadence depends
//! only on the log, so the clock stays a function of it.

use super::PipelineConfig;
use crate::model::{Batch, TimeMs};
use std::collections::HashMap;

/// What the clock decides about one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fed to the rules (in order, or as late data).
    Admit,
    /// Absurdly ahead of the clock (or of its batch's arrival): held out of the rules until the
    /// clock catches up; raises `device_clock`.
    Ahead,
    /// Older than the clock minus `late_horizon_ms`: stored and counted, not fed to the rules.
    TooOld,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct TagClock {
    /// Latest event time of the tag's readings that were within the arrival bound.
    latest_seen_ms: TimeMs,
    /// Latest event time of the tag's readings that were fed to the rules.
    latest_admitted_ms: Option<TimeMs>,
    last_arrival_ms: Option<TimeMs>,
}

/// The outcome of one batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchClock {
    pub admitted: u32,
    pub ahead: u32,
    /// Of `ahead`: beyond the batch's arrival plus `max_future_ms`.
    pub ahead_of_arrival: u32,
    pub too_old: u32,
    /// When, in event time, the tag was last heard from once this batch is counted: the clock,
    /// or the tag's own latest admitted reading if later (`None` before anything is known).
    pub contact_ms: Option<TimeMs>,
    /// The clock after this batch, when it advanced.
    pub advanced_to_ms: Option<TimeMs>,
}

/// The clock and the per-tag state it is computed from.
pub struct EventClock {
    config: PipelineConfig,
    tags: HashMap<String, TagClock>,
    clock_ms: Option<TimeMs>,
    established: bool,
    newest_arrival_ms: Option<TimeMs>,
    /// The newest arrival time when the clock last advanced: the clock is that stale in the
    /// server's own (recorded) time.
    advanced_at_arrival_ms: Option<TimeMs>,
    since_recompute: usize,
    scratch: Vec<TimeMs>,
}

impl EventClock {
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            config,
            tags: HashMap::new(),
            clock_ms: None,
            established: false,
            newest_arrival_ms: None,
            advanced_at_arrival_ms: None,
            since_recompute: 0,
            scratch: Vec::new(),
        }
    }

    /// The clock, once any reading was admitted.
    pub fn clock_ms(&self) -> Option<TimeMs> {
        self.clock_ms
    }

    /// Whether enough tags are live for the skew bound to apply.
    pub fn established(&self) -> bool {
        self.established
    }

    /// Classifies every reading of `batch` (into `verdicts`, one per reading, in order), then
    /// counts the batch into the tags' state and, on its cadence, recomputes the clock.
    pub fn observe(&mut self, batch: &Batch, verdicts: &mut Vec<Verdict>) -> BatchClock {
        verdicts.clear();
        let arrival_ms = (batch.arrival_ms > 0).then_some(batch.arrival_ms);
        let cfg = &self.config;
        let mut out = BatchClock::default();
        // One hash lookup per batch on the hot path (a second only for a tag seen first).
        let mut slot = self.tags.get_mut(&batch.tag);
        let state = slot.as_deref().copied();
        let mut latest_seen = state.map(|s| s.latest_seen_ms);
        let mut own_admitted = state.and_then(|s| s.latest_admitted_ms);
        // When every tag went quiet (an outage), the clock stood still while the server's time
        // went on: the bound grows by the recorded time since the clock last advanced, so the
        // tags coming back are not all "ahead" (in accelerated runs this is seconds).
        let stale_ms = match (arrival_ms, self.advanced_at_arrival_ms) {
            (Some(a), Some(at)) => (a - at).max(0),
            _ => 0,
        };
        let skew_clock = self
            .clock_ms
            .filter(|_| self.established)
            .map(|c| c.saturating_add(stale_ms));
        for r in &batch.readings {
            let verdict =
                if arrival_ms.is_some_and(|a| r.t_ms > a.saturating_add(cfg.max_future_ms)) {
                    out.ahead_of_arrival += 1;
                    Verdict::Ahead
                } else {
                    latest_seen = Some(latest_seen.map_or(r.t_ms, |m| m.max(r.t_ms)));
                    // Measured from the clock or from the tag's own last admitted reading, whichever
                    // is later: a tag's own continuous readings (a backlog after a long silence in a
                    // small population) are never "ahead" of themselves.
                    let base = match (skew_clock, own_admitted) {
                        (Some(c), Some(o)) => Some(c.max(o)),
                        (Some(c), None) => Some(c),
                        _ => None,
                    };
                    if base.is_some_and(|b| r.t_ms > b.saturating_add(cfg.max_skew_ms)) {
                        Verdict::Ahead
                    } else if self
                        .clock_ms
                        .is_some_and(|c| r.t_ms < c.saturating_sub(cfg.late_horizon_ms))
                    {
                        Verdict::TooOld
                    } else {
                        own_admitted = Some(own_admitted.map_or(r.t_ms, |m| m.max(r.t_ms)));
                        Verdict::Admit
                    }
                };
            match verdict {
                Verdict::Admit => out.admitted += 1,
                Verdict::Ahead => out.ahead += 1,
                Verdict::TooOld => out.too_old += 1,
            }
            verdicts.push(verdict);
        }
        if let Some(seen) = latest_seen {
            let entry = TagClock {
                latest_seen_ms: seen,
                latest_admitted_ms: own_admitted,
                last_arrival_ms: arrival_ms.or(state.and_then(|s| s.last_arrival_ms)),
            };
            match slot.as_deref_mut() {
                Some(s) => *s = entry,
                None => {
                    self.tags.insert(batch.tag.clone(), entry);
                }
            }
        } else if let (Some(a), Some(s)) = (arrival_ms, slot) {
            s.last_arrival_ms = Some(a);
        }
        if let Some(a) = arrival_ms {
            self.newest_arrival_ms = Some(self.newest_arrival_ms.map_or(a, |n| n.max(a)));
        }
        self.since_recompute += 1;
        if self.since_recompute >= (self.tags.len() / 8).max(1) {
            self.since_recompute = 0;
            let before = self.clock_ms;
            self.recompute();
            if self.clock_ms != before {
                out.advanced_to_ms = self.clock_ms;
                self.advanced_at_arrival_ms = self.newest_arrival_ms;
            }
        }
        out.contact_ms = match (self.clock_ms, own_admitted) {
            (Some(c), Some(o)) => Some(c.max(o)),
            (c, o) => c.or(o),
        };
        out
    }

    /// The input has ended (`tagstream replay --final` / `--until`): recomputes the clock now
    /// rather than on its cadence, so it stands where the last batch put it. Returns the clock
    /// when that advanced it.
    pub fn catch_up(&mut self) -> Option<TimeMs> {
        self.since_recompute = 0;
        let before = self.clock_ms;
        self.recompute();
        (self.clock_ms != before).then_some(self.clock_ms).flatten()
    }

    /// Moves the clock to `t_ms` without a reading (`tagstream replay --until`): the caller
    /// knows no input comes before it. Never moves it back; returns whether it advanced.
    pub fn advance_to(&mut self, t_ms: TimeMs) -> bool {
        if self.clock_ms.is_some_and(|c| c >= t_ms) {
            return false;
        }
        self.clock_ms = Some(t_ms);
        self.advanced_at_arrival_ms = self.newest_arrival_ms;
        true
    }

    /// Recomputes the clock from the live tags (see the module comment).
    fn recompute(&mut self) {
        let cfg = &self.config;
        self.scratch.clear();
        for tag in self.tags.values() {
            let live = match (tag.last_arrival_ms, self.newest_arrival_ms) {
                (Some(a), Some(newest)) => a >= newest.saturating_sub(cfg.live_window_ms),
                _ => self
                    .clock_ms
                    .is_none_or(|c| tag.latest_seen_ms >= c.saturating_sub(cfg.live_window_ms)),
            };
            if live {
                self.scratch.push(tag.latest_seen_ms);
            }
        }
        let n = self.scratch.len();
        if n == 0 {
            self.established = false;
            return;
        }
        self.established = n >= cfg.min_clock_tags.max(2);
        let trim = if cfg.clock_trim.is_finite() {
            cfg.clock_trim.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let rank = if self.established {
            n - 1 - ((trim * n as f64).floor() as usize).max(1).min(n - 1)
        } else {
            n - 1
        };
        let (_, &mut candidate_ms, _) = self.scratch.select_nth_unstable(rank);
        self.clock_ms = Some(self.clock_ms.map_or(candidate_ms, |c| c.max(candidate_ms)));
    }
}

/// The clock's and flags' live counters live in `metrics` (which `/metrics` reads); the
/// dispatcher and the partitions write them.
pub use crate::metrics::pipeline_gauges::PipelineGauges;

/// An [`EventClock`] in a snapshot (its configuration is rebuilt; tags in id order).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct EventClockState {
    tags: Vec<(String, TagClock)>,
    clock_ms: Option<TimeMs>,
    established: bool,
    newest_arrival_ms: Option<TimeMs>,
    advanced_at_arrival_ms: Option<TimeMs>,
    since_recompute: usize,
}

impl EventClock {
    pub fn save(&self) -> EventClockState {
        let mut tags: Vec<(String, TagClock)> =
            self.tags.iter().map(|(k, v)| (k.clone(), *v)).collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        EventClockState {
            tags,
            clock_ms: self.clock_ms,
            established: self.established,
            newest_arrival_ms: self.newest_arrival_ms,
            advanced_at_arrival_ms: self.advanced_at_arrival_ms,
            since_recompute: self.since_recompute,
        }
    }

    pub fn restore(config: PipelineConfig, state: EventClockState) -> Self {
        Self {
            config,
            tags: state.tags.into_iter().collect(),
            clock_ms: state.clock_ms,
            established: state.established,
            newest_arrival_ms: state.newest_arrival_ms,
            advanced_at_arrival_ms: state.advanced_at_arrival_ms,
            since_recompute: state.since_recompute,
            scratch: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceEvent, Reading, ReadingBody};

    const MIN: TimeMs = 60_000;
    const HOUR: TimeMs = 60 * MIN;

    fn batch(tag: &str, arrival_ms: TimeMs, times: &[TimeMs]) -> Batch {
        Batch {
            tag: tag.into(),
            seq: 1,
            epoch: 0,
            arrival_ms,
            readings: times
                .iter()
                .map(|&t_ms| Reading {
                    t_ms,
                    battery_pct: None,
                    body: ReadingBody::Event(DeviceEvent::Charging),
                })
                .collect(),
        }
    }

    fn feed(clock: &mut EventClock, b: &Batch) -> (BatchClock, Vec<Verdict>) {
        let mut v = Vec::new();
        let out = clock.observe(b, &mut v);
        (out, v)
    }

    #[test]
    fn one_tag_ahead_cannot_move_the_clock_of_fifty() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let t0 = 1_800_000_000_000;
        for round in 0..6 {
            for tag in 0..50 {
                let t = t0 + round * 5 * MIN + tag;
                feed(&mut clock, &batch(&format!("T{tag}"), t + 10 * MIN, &[t]));
            }
        }
        let before = clock.clock_ms().unwrap();
        assert!(before >= t0 + 20 * MIN, "the clock follows the tags");
        let (out, v) = feed(&mut clock, &batch("T7", t0 + 40 * MIN, &[t0 + 23 * HOUR]));
        assert_eq!(v, vec![Verdict::Ahead]);
        assert_eq!(out.ahead, 1);
        for _ in 0..60 {
            feed(&mut clock, &batch("T7", t0 + 40 * MIN, &[t0 + 23 * HOUR]));
        }
        assert!(clock.clock_ms().unwrap() <= t0 + 30 * MIN);
    }

    #[test]
    fn a_silent_tag_does_not_hold_the_clock_back() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let t0 = 1_800_000_000_000;
        for i in 0..40 {
            let t = t0 + i * 5 * MIN;
            for tag in ["A", "B", "C", "D"] {
                feed(&mut clock, &batch(tag, t, &[t]));
            }
            if i < 2 {
                feed(&mut clock, &batch("S", t, &[t]));
            }
        }
        // S went silent at t0 + 5 min; the others are at t0 + 195 min.
        assert_eq!(clock.clock_ms(), Some(t0 + 195 * MIN));
    }

    #[test]
    fn below_min_tags_the_clock_is_the_maximum_and_from_then_on_the_top_tag_is_trimmed() {
        let mut clock = EventClock::new(PipelineConfig::default());
        feed(&mut clock, &batch("A", 0, &[HOUR]));
        feed(&mut clock, &batch("B", 0, &[HOUR + 10 * MIN]));
        assert_eq!(clock.clock_ms(), Some(HOUR + 10 * MIN));
        feed(&mut clock, &batch("C", 0, &[HOUR + 30 * MIN]));
        assert_eq!(clock.clock_ms(), Some(HOUR + 10 * MIN));
        feed(&mut clock, &batch("B", 0, &[HOUR + 20 * MIN]));
        assert_eq!(clock.clock_ms(), Some(HOUR + 20 * MIN));
    }

    #[test]
    fn readings_far_ahead_of_arrival_are_ahead_even_for_a_lone_tag() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let now = 1_800_000_000_000;
        let (_, v) = feed(&mut clock, &batch("A", now, &[now - MIN, now + 25 * HOUR]));
        assert_eq!(v, vec![Verdict::Admit, Verdict::Ahead]);
        assert_eq!(clock.clock_ms(), Some(now - MIN));
    }

    #[test]
    fn after_an_outage_the_tags_coming_back_are_not_ahead() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let t0 = 1_800_000_000_000;
        for tag in ["A", "B", "C", "D", "E"] {
            feed(&mut clock, &batch(tag, t0 + 10 * MIN, &[t0]));
        }
        // Nothing for 10 hours, then every tag uploads what it has now.
        let back = t0 + 10 * HOUR;
        for tag in ["A", "B", "C", "D", "E"] {
            let (out, _) = feed(&mut clock, &batch(tag, back + 10 * MIN, &[back]));
            assert_eq!(out.ahead, 0, "{tag}");
        }
        assert_eq!(clock.clock_ms(), Some(back));
        // The clock is fresh again: a tag 23 h ahead is ahead.
        let (out, _) = feed(
            &mut clock,
            &batch("A", back + 11 * MIN, &[back + 23 * HOUR]),
        );
        assert_eq!(out.ahead, 1);
    }

    #[test]
    fn too_old_readings_are_flagged_but_a_two_day_backlog_is_admitted() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let now = 1_800_000_000_000;
        for tag in ["A", "B", "C"] {
            feed(&mut clock, &batch(tag, now, &[now]));
        }
        let (out, v) = feed(
            &mut clock,
            &batch("A", now, &[now - 2 * 24 * HOUR, now - 40 * 24 * HOUR]),
        );
        assert_eq!(v, vec![Verdict::Admit, Verdict::TooOld]);
        assert_eq!(out.contact_ms, Some(now), "a backlog is contact now");
    }

    #[test]
    fn a_tag_returning_after_a_long_silence_is_not_ahead_of_itself() {
        let mut clock = EventClock::new(PipelineConfig::default());
        let now = 1_800_000_000_000;
        for tag in ["A", "B", "C"] {
            feed(&mut clock, &batch(tag, now, &[now]));
        }
        // Everyone quiet for 10 h (arrival unknown in this input), then A's continuous readings.
        let times: Vec<TimeMs> = (1..=120).map(|i| now + i * 5 * MIN).collect();
        let (out, _) = feed(&mut clock, &batch("A", 0, &times));
        assert_eq!(out.ahead, 0);
    }
}
