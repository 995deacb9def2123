//! The verdict on one curfew window: a pure function of the window, the presence runs, how far
//! the activation's own data reaches (`coverage_ms`) and the event-time clock.
//!
//! Definite presence comes from runs: a home run is *home* from its first observation; away
//! observations become *away* (from the first of them) once `away_min_fixes` of them have been
//! seen with no home observation in between (uncertain observations neither count nor break the
//! count). Uncertain observations never change the state.
//!
//! For a window `[ws, we)` with grace g and commencement check at `tc = ws + g`:
//! 1. Nothing is decided until tc is *settled*: the activation's data reaches tc, or the clock is
//!    `settle_ms` past it (the tag's upload lag is waited for, then the rule decides on what it has).
//!    Away at tc only by an observation that uncertain ones have followed since before tc (or one
//!    older than `max_age_ms`): wait up to `settle_ms` for a definite observation. A tc at which
//!    the tag was known dead raises nothing (`dead`).
//! 2. Home at some point in `[ws, tc]` (or home at ws) means no commencement breach. A departure
//!    after having been home is a *departure* episode (AL10) whenever it happens.
//! 3. Never home from ws to tc: if there is an observation within `max_age_ms` before tc, the state
//!    decides — away: **AL08** (confirmed) from ws; only uncertain fixes: presumed home (no breach is
//!    raised without evidence of absence). With no observation at all (no data): **AL08 possible**
//!    from ws — absence of data is not presence — unless home was the state before ws and the
//!    first definite observation after tc, within `settle_ms`, is home (the silence is bridged).
//! 4. A return home (at r ≤ we; r is the first of the uncertain observations that led up to the
//!    home one from the last away one, if any) closes the open episode: a commencement episode becomes AL08
//!    `[ws, r]` plus an **AL09** `[r, r]`; a departure AL10 `[t, r]`.
//! 5. When we is settled with an episode still open: commencement → **AL12** `[ws, we]`, departure →
//!    **AL11** `[t, we]`.

use super::presence::{Presence, Run};
use crate::model::{Reading, TimeMs};

/// One window to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowSpec {
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
    pub grace_ms: TimeMs,
}

impl WindowSpec {
    /// The commencement check time: window start plus grace (never past the end).
    pub fn check_ms(&self) -> TimeMs {
        (self.start_ms + self.grace_ms).min(self.end_ms)
    }
}

/// What the verdict is computed from.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    pub runs: &'a [Run],
    pub away_min_fixes: u32,
    pub max_age_ms: TimeMs,
    pub settle_ms: TimeMs,
    pub coverage_ms: Option<TimeMs>,
    pub clock_ms: TimeMs,
    /// Intervals `[from, to)` when the tag was known to be dead (`battery_dead` until it was
    /// heard from again; `to` is `TimeMs::MAX` while it still is): nothing can be seen then.
    pub dead: &'a [(TimeMs, TimeMs)],
}

impl EvalInput<'_> {
    pub fn covered(&self, t_ms: TimeMs) -> bool {
        self.coverage_ms.is_some_and(|c| c >= t_ms)
    }

    pub fn settled(&self, t_ms: TimeMs) -> bool {
        self.covered(t_ms) || self.clock_ms >= t_ms.saturating_add(self.settle_ms)
    }

    fn fresh_at(&self, t_ms: TimeMs) -> bool {
        let idx = self.runs.partition_point(|r| r.first_ms <= t_ms);
        idx > 0 && self.runs[idx - 1].last_ms >= t_ms - self.max_age_ms
    }

    fn dead_at(&self, t_ms: TimeMs) -> bool {
        self.dead.iter().any(|&(a, b)| a <= t_ms && t_ms < b)
    }
}

/// Which kind of breach an episode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EpisodeKind {
    /// Not home when the window opened (AL08, then AL09 or AL12).
    Commencement,
    /// Left during the window (AL10, or AL11 when still out at the end).
    Departure,
}

/// One absence inside a window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Episode {
    pub kind: EpisodeKind,
    pub start_ms: TimeMs,
    /// `None` while open.
    pub end_ms: Option<TimeMs>,
    /// The code the episode's alert carries now: AL08, AL10, AL11 or AL12.
    #[serde(with = "code_serde")]
    pub code: Code,
    /// Closed by a return home (AL08 → with an AL09 at `end_ms`; AL10).
    pub returned: bool,
    /// Observed (true) or inferred from no data (false).
    pub confirmed: bool,
    #[serde(with = "crate::pipeline::snapshot::via")]
    pub evidence: Vec<Reading>,
}

/// An alert code (a type alias, so that serde does not take the field for a borrowed string).
pub type Code = &'static str;

/// An episode's code in a snapshot: read back as the code of this module it names.
mod code_serde {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    const CODES: [&str; 5] = ["AL08", "AL09", "AL10", "AL11", "AL12"];

    pub fn serialize<S: Serializer>(code: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(code)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let text = String::deserialize(d)?;
        CODES
            .into_iter()
            .find(|c| *c == text)
            .ok_or_else(|| D::Error::custom(format!("unknown curfew code '{text}'")))
    }
}

/// The verdict on a window so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub episodes: Vec<Episode>,
    pub commencement_settled: bool,
    pub end_settled: bool,
}

/// A change of definite presence state.
#[derive(Debug, Clone, Copy)]
struct StateEvent {
    t_ms: TimeMs,
    home: bool,
    evidence: Option<Reading>,
}

/// Definite state changes from runs (see the module doc).
///
/// A return home is dated from the first observation after the last away one when only
/// uncertain observations (each within `max_gap_ms` of the previous one) lead up to the home
/// observation: those show the tag reporting without placing the person away, which is what an
/// arrival indoors looks like (GPS fails indoors, the tag falls back to Wi-Fi/LBS fixes whose
/// circles overlap the address, and the first precise fix can come many minutes later).
fn state_events(runs: &[Run], away_min_fixes: u32, max_gap_ms: TimeMs) -> Vec<StateEvent> {
    let mut out = Vec::new();
    // (first away time, evidence, count, already emitted)
    let mut pending: Option<(TimeMs, Option<Reading>, u32, bool)> = None;
    // The first of an unbroken chain of uncertain observations since the last away one.
    let mut uncertain_since: Option<(TimeMs, Option<Reading>)> = None;
    let mut prev_last: Option<TimeMs> = None;
    for run in runs {
        let contiguous = prev_last.is_some_and(|p| run.first_ms - p <= max_gap_ms);
        prev_last = Some(run.last_ms);
        if !contiguous {
            uncertain_since = None;
        }
        match run.class {
            Presence::Home => {
                pending = None;
                // After a gap longer than the maximum age the state was unknown, so a home run
                // is news even when the last state was home: it is the return that closes an
                // absence inferred from the silence (seed 33 at 1,000 tags, A615: home until
                // 20:49, silent to 21:05:16, home all night, and an AL12 for want of this).
                if !contiguous || out.last().is_none_or(|e: &StateEvent| !e.home) {
                    let away = out.last().is_some_and(|e: &StateEvent| !e.home);
                    let (t_ms, evidence) = match uncertain_since {
                        Some((u, ev)) if away => (u, run.evidence.or(ev)),
                        _ => (run.first_ms, run.evidence),
                    };
                    out.push(StateEvent {
                        t_ms,
                        home: true,
                        evidence,
                    });
                }
                uncertain_since = None;
            }
            Presence::Away => {
                uncertain_since = None;
                let p = pending.get_or_insert((run.first_ms, run.evidence, 0, false));
                p.2 = p.2.saturating_add(run.n);
                if p.2 >= away_min_fixes.max(1) && !p.3 {
                    p.3 = true;
                    out.push(StateEvent {
                        t_ms: p.0,
                        home: false,
                        evidence: p.1,
                    });
                }
            }
            Presence::Uncertain => {
                if uncertain_since.is_none() && contiguous {
                    uncertain_since = Some((run.first_ms, run.evidence));
                }
            }
        }
    }
    out
}

/// The runs a window's verdict depends on: those from `max_age_ms` before its start to its end,
/// plus the ones before that carry the presence state in (back to the last home run, bounded).
fn window_runs<'r>(runs: &'r [Run], w: &WindowSpec, max_age_ms: TimeMs) -> &'r [Run] {
    const MAX_CARRIED_RUNS: usize = 64;
    let lo = runs.partition_point(|r| r.last_ms < w.start_ms - max_age_ms);
    let start = runs[..lo]
        .iter()
        .rposition(|r| r.class == Presence::Home)
        .filter(|&i| lo - i <= MAX_CARRIED_RUNS)
        .unwrap_or(lo.saturating_sub(1));
    let end = runs.partition_point(|r| r.first_ms <= w.end_ms);
    &runs[start..end.max(start)]
}

/// Whether the state at `tc` is away only by an away observation that uncertain observations
/// have followed since, starting by `tc` (or by one older than the maximum age): a return may
/// have happened before the check and the first definite observation is what tells.
fn stale_away(runs: &[Run], events: &[StateEvent], tc: TimeMs, input: &EvalInput<'_>) -> bool {
    if state_at(events, tc).is_none_or(|e| e.home) {
        return false;
    }
    let before = runs.partition_point(|r| r.first_ms <= tc);
    let Some(last_away) = runs[..before]
        .iter()
        .rposition(|r| r.class == Presence::Away)
    else {
        return false;
    };
    let after = &runs[last_away + 1..];
    let since_before_tc = after.first().is_some_and(|r| r.first_ms <= tc);
    let old = tc - runs[last_away].last_ms.min(tc) > input.max_age_ms;
    (since_before_tc || old) && after.iter().all(|r| r.class == Presence::Uncertain)
}

/// No observation near the check, but the wearer was home when last seen before the window
/// and the first definite observation after the check, within `settle_ms` of it, is home too
/// (seed 33 at 1,000 tags, A615: home by GPS until 20:49:16, silent to 21:05:16, 16 s after a
/// 21:05 check, home all night; the truth has no breach). A silence that ends away, or later
/// than `settle_ms` after the check, or that began away, still raises the possible AL08.
fn silence_bridged(
    runs: &[Run],
    events: &[StateEvent],
    w: &WindowSpec,
    input: &EvalInput<'_>,
) -> bool {
    let tc = w.check_ms();
    if !state_at(events, w.start_ms).is_some_and(|e| e.home) {
        return false;
    }
    runs.iter()
        .find(|r| r.first_ms > tc && r.class != Presence::Uncertain)
        .is_some_and(|r| {
            r.class == Presence::Home && r.first_ms <= tc.saturating_add(input.settle_ms)
        })
}

fn state_at(events: &[StateEvent], t_ms: TimeMs) -> Option<&StateEvent> {
    let idx = events.partition_point(|e| e.t_ms <= t_ms);
    idx.checked_sub(1).map(|i| &events[i])
}

fn push_evidence(ep: &mut Episode, reading: Option<Reading>) {
    if let Some(r) = reading {
        if ep.evidence.len() < super::MAX_EVIDENCE && !ep.evidence.contains(&r) {
            ep.evidence.push(r);
        }
    }
}

/// Judges one window (see the module doc).
pub fn evaluate(w: &WindowSpec, input: &EvalInput<'_>) -> Verdict {
    let mut verdict = Verdict::default();
    let tc = w.check_ms();
    if !input.settled(tc) {
        return verdict;
    }
    let runs = window_runs(input.runs, w, input.max_age_ms);
    let events = state_events(runs, input.away_min_fixes, input.max_age_ms);
    let waited = tc.saturating_add(input.settle_ms);
    if input.clock_ms < waited && !input.covered(waited) && stale_away(runs, &events, tc, input) {
        // Away only by evidence that uncertain observations have followed since before the
        // check (often an arrival indoors): wait, up to `settle_ms`, for a definite one.
        return verdict;
    }
    verdict.commencement_settled = true;

    let mut home_seen =
        input.fresh_at(w.start_ms) && state_at(&events, w.start_ms).is_some_and(|e| e.home);
    let mut open: Option<Episode> = None;
    let mut commencement_done = false;
    let close = |ep: &mut Option<Episode>, done: &mut Vec<Episode>, e: &StateEvent| {
        if let Some(mut episode) = ep.take() {
            episode.end_ms = Some(e.t_ms);
            episode.returned = true;
            push_evidence(&mut episode, e.evidence);
            done.push(episode);
        }
    };
    let first = events.partition_point(|e| e.t_ms <= w.start_ms);
    let mut i = first;
    loop {
        let next = events.get(i).filter(|e| e.t_ms <= w.end_ms);
        if !commencement_done && next.is_none_or(|e| e.t_ms > tc) {
            commencement_done = true;
            if !home_seen && open.is_none() && input.dead_at(tc) {
                // The tag was dead at the check: nothing can be seen, so nothing is claimed
                // (the health rule raises AL23; stale evidence from before is no verdict).
            } else if !home_seen && open.is_none() {
                if input.fresh_at(tc) {
                    match state_at(&events, tc) {
                        Some(e) if !e.home => {
                            let mut ep = Episode {
                                kind: EpisodeKind::Commencement,
                                start_ms: w.start_ms,
                                end_ms: None,
                                code: "AL08",
                                returned: false,
                                confirmed: true,
                                evidence: Vec::new(),
                            };
                            push_evidence(&mut ep, e.evidence);
                            open = Some(ep);
                        }
                        // Home, or only uncertain fixes: no breach without evidence of absence.
                        _ => home_seen = true,
                    }
                } else if silence_bridged(runs, &events, w, input) {
                    // Home before the window and seen home again within `settle_ms` of the
                    // check: the silence between is no evidence of absence (as with uncertain
                    // fixes, presumed home).
                    home_seen = true;
                } else {
                    open = Some(Episode {
                        kind: EpisodeKind::Commencement,
                        start_ms: w.start_ms,
                        end_ms: None,
                        code: "AL08",
                        returned: false,
                        confirmed: false,
                        evidence: Vec::new(),
                    });
                }
            }
        }
        let Some(e) = next else { break };
        if e.home {
            home_seen = true;
            close(&mut open, &mut verdict.episodes, e);
        } else if e.t_ms < w.end_ms && open.is_none() && (home_seen || e.t_ms > tc) {
            let mut ep = Episode {
                kind: EpisodeKind::Departure,
                start_ms: e.t_ms,
                end_ms: None,
                code: "AL10",
                returned: false,
                confirmed: true,
                evidence: Vec::new(),
            };
            push_evidence(&mut ep, e.evidence);
            open = Some(ep);
        }
        i += 1;
    }
    if input.settled(w.end_ms) {
        verdict.end_settled = true;
        if let Some(mut ep) = open.take() {
            ep.end_ms = Some(w.end_ms);
            ep.code = match ep.kind {
                EpisodeKind::Commencement => "AL12",
                EpisodeKind::Departure => "AL11",
            };
            verdict.episodes.push(ep);
        }
    }
    verdict.episodes.extend(open);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: TimeMs = 60_000;

    fn home_run(first_ms: TimeMs, last_ms: TimeMs) -> Run {
        Run {
            class: Presence::Home,
            first_ms,
            last_ms,
            n: ((last_ms - first_ms) / MIN + 1) as u32,
            evidence: None,
        }
    }

    fn judge(runs: &[Run], w: &WindowSpec) -> Vec<(&'static str, TimeMs, Option<TimeMs>, bool)> {
        evaluate(
            w,
            &EvalInput {
                runs,
                away_min_fixes: 3,
                max_age_ms: 10 * MIN,
                settle_ms: 15 * MIN,
                coverage_ms: Some(w.end_ms + MIN),
                clock_ms: w.end_ms + MIN,
                dead: &[],
            },
        )
        .episodes
        .iter()
        .map(|e| (e.code, e.start_ms, e.end_ms, e.confirmed))
        .collect()
    }

    /// Seed 33 at 1,000 tags, A615 (window 21:00–06:00, grace 5): home by GPS until 20:49:16,
    /// no fix until 21:05:16 (16 s after the check), then home all night. Home on both sides of
    /// a silence that ends within `settle_ms` of the check: presumed home, no alert (before: an
    /// AL12 for the whole night, the return after the silence not seen as a return).
    #[test]
    fn home_on_both_sides_of_a_silence_over_the_check_is_presumed_home() {
        let ws = 21 * 60 * MIN;
        let w = WindowSpec {
            start_ms: ws,
            end_ms: ws + 9 * 60 * MIN,
            grace_ms: 5 * MIN,
        };
        let before = home_run(ws - 10 * 60 * MIN, ws - 11 * MIN + 16_000);
        let r = ws + 5 * MIN + 16_000;
        assert_eq!(judge(&[before, home_run(r, w.end_ms + MIN)], &w), vec![]);
        // Seen home only 20 minutes after the check: a possible AL08 to the return, an AL09.
        let late = ws + 25 * MIN;
        assert_eq!(
            judge(&[before, home_run(late, w.end_ms + MIN)], &w),
            vec![("AL08", ws, Some(late), false)]
        );
        // Seen away first after the silence: still no evidence of being home at the check.
        let away = Run {
            class: Presence::Away,
            first_ms: ws + 7 * MIN,
            last_ms: ws + 9 * MIN,
            n: 3,
            evidence: None,
        };
        let back = ws + 40 * MIN;
        assert_eq!(
            judge(&[before, away, home_run(back, w.end_ms + MIN)], &w),
            vec![("AL08", ws, Some(back), false)]
        );
    }
}
