//! The curfew rule (`curfew/5`): timetabled windows at up to three addresses, in UK local time,
//! judged as a state check from RF or GPS presence, with AL08–AL12 alerts. RF presence counts
//! only at the address with the home monitoring unit (`hmu`) when the person's orders mark one.
//!
//! - `timetable`: a curfew condition compiled once per order, expanded lazily into UTC windows.
//! - `presence`: what RF and GPS readings say about being at an address, kept as runs.
//! - `verdict`: the pure judgement of one window (the algorithm is documented there and in
//!   `docs/rules.md`).
//!
//! This file owns the per-activation state machine: which windows are live, when the event-time
//! clock settles them (`next_deadline` / `on_clock`), and turning verdicts into alerts with stable
//! ids. Every verdict is recomputed from the runs when something it depends on changed, and the
//! alerts that differ from what was emitted are emitted again under the same id; a change caused
//! by data older than a decision already taken is marked `late`.
//!
//! Alert semantics (one alert per absence, updated in place):
//! - the *commencement* alert (id from the window start) is AL08 while open; when the person comes
//!   back it keeps code AL08 with its `end` set, and an **AL09** alert `[r, r]` (its own id, also
//!   keyed on the window start) records the late return; if the window closes first it becomes
//!   **AL12** `[ws, we]`;
//! - a *departure* alert (id from the departure time) is AL10 while open and when closed by a
//!   return; if the window closes first it becomes **AL11** `[t, we]`;
//! - `confidence` is `confirmed` when absence was observed, `possible` when it is inferred from
//!   having no data at the commencement check;
//! - an alert that later data shows never happened is *withdrawn*: emitted once more as it was
//!   last emitted, with `late: true` and `withdrawn` (no change, the reason in words), as every
//!   rule's withdrawn outputs are.

pub mod presence;
pub mod timetable;
pub mod verdict;

use crate::model::{
    alert_id, Alert, AlertType, Confidence, Reading, ReadingBody, TimeMs, Withdrawal,
};
use crate::pipeline::snapshot::{load_rule_state, save_rule_state, RuleState, RuleStateError};
use crate::pipeline::{ActivationInfo, Rule, RuleContext};
use presence::{classify_fix, Change, DefiniteState, Presence, RunList};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use timetable::{ActivationWindows, CurfewPlan, WindowsCursor};
use verdict::{evaluate, EpisodeKind, EvalInput, Verdict, WindowSpec};

/// Version of the curfew rule, recorded on every alert it raises.
pub const CURFEW_RULE_VERSION: &str = "curfew/5";
/// At most this many readings are kept as an alert's evidence.
pub const MAX_EVIDENCE: usize = 16;

const MINUTE_MS: TimeMs = 60_000;

/// Curfew settings (the grace period is per order: `grace_min` in the condition).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurfewConfig {
    /// Away fixes (GPS/LBS/Wi-Fi) needed, with no home fix between, before the person counts as
    /// gone: one drifting fix, or two multipath outliers in a row, does not raise AL10. RF needs
    /// one reading.
    pub gps_away_min_fixes: u32,
    /// A fix supports a presence state for this long; with no observation within it before the
    /// commencement check the state is unknown (no data). Also the gap that splits runs.
    pub gps_max_age_ms: TimeMs,
    /// The same for RF readings (an HMU reports changes, not a fix a minute).
    pub rf_max_age_ms: TimeMs,
    /// How long past a decision time (commencement check, window end) the rule waits for the
    /// activation's own data to reach it before deciding on what it has.
    pub settle_ms: TimeMs,
    /// Multiplier on a fix's reported precision (its ~95% radius) in the presence test.
    pub precision_scale: f64,
    /// How long after a window has ended late data can still change its verdict.
    pub late_retention_ms: TimeMs,
    /// An LBS or Wi-Fi fix counts as "away" only when even a circle this many times its stated
    /// precision is outside the address: network fixes miss by more than their radius often
    /// enough that, paired with one GPS multipath outlier, they made false AL10s (measured against
    /// the simulator: AL10 precision 0.79 → 0.99 at 2.0). They count as "home" as before.
    pub network_away_scale: f64,
}

impl Default for CurfewConfig {
    fn default() -> Self {
        Self {
            gps_away_min_fixes: 3,
            gps_max_age_ms: 10 * MINUTE_MS,
            rf_max_age_ms: 12 * 60 * MINUTE_MS,
            settle_ms: 15 * MINUTE_MS,
            precision_scale: 1.0,
            late_retention_ms: 48 * 60 * MINUTE_MS,
            network_away_scale: 2.0,
        }
    }
}

/// Total absence of one order's curfew for one activation, so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbsenceTally {
    pub order: String,
    /// Observed absence inside curfew windows (closed episodes).
    pub confirmed_ms: TimeMs,
    /// Absence inferred from no data.
    pub possible_ms: TimeMs,
    /// Windows with at least one closed breach.
    pub breached_windows: u32,
}

impl AbsenceTally {
    fn add(&mut self, other: &WindowTally) {
        self.confirmed_ms += other.confirmed_ms;
        self.possible_ms += other.possible_ms;
        self.breached_windows += u32::from(other.breached);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WindowTally {
    confirmed_ms: TimeMs,
    possible_ms: TimeMs,
    breached: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct WindowState {
    spec: WindowSpec,
    address: usize,
    #[serde(with = "crate::pipeline::snapshot::via")]
    emitted: Vec<Alert>,
    commencement_settled: bool,
    end_settled: bool,
    /// The latest decision point that was settled by the clock rather than by data.
    clock_decided_ms: Option<TimeMs>,
    tally: WindowTally,
    /// The verdict behind `emitted` (alerts are rebuilt only when it changes).
    episodes: Vec<verdict::Episode>,
}

/// The curfew rule of one curfew condition for one activation.
pub struct CurfewRule {
    plan: Arc<CurfewPlan>,
    config: CurfewConfig,
    key: String,
    key_al09: String,
    windows_source: ActivationWindows,
    /// Everything it has seen, the state a snapshot saves (with where `windows_source` stands).
    seen: Seen,
}

/// What a [`CurfewRule`] has seen; its plan, configuration and keys are rebuilt, not saved.
#[derive(Clone, Serialize, Deserialize)]
struct Seen {
    upcoming: Option<(WindowSpec, usize)>,
    windows: VecDeque<WindowState>,
    rf: RunList,
    gps: Vec<RunList>,
    rf_state: DefiniteState,
    gps_state: Vec<DefiniteState>,
    rf_seen: bool,
    /// The tag reported `battery_dead` and nothing has come from it since: the home unit cannot
    /// see a dead tag, so its "out of range" says nothing about where the person is.
    tag_dead: bool,
    /// When the tag was known dead: `[battery_dead, next sign of life)`, `TimeMs::MAX` if open.
    dead: Vec<(TimeMs, TimeMs)>,
    /// When the home unit was without power: `[hmu_power_loss, hmu_power_restored)`. It reports
    /// nothing then, so its last report before the cut says nothing about the time after it.
    hmu_off: Vec<(TimeMs, TimeMs)>,
    coverage_ms: Option<TimeMs>,
    clock_ms: TimeMs,
    retired: AbsenceTally,
}

impl CurfewRule {
    pub fn new(plan: Arc<CurfewPlan>, config: CurfewConfig, activation: &ActivationInfo) -> Self {
        let key = format!("curfew:{}:{}", plan.order_id, plan.condition_index);
        let mut source = plan.windows_for(activation.from_ms, activation.to_ms);
        let grace_ms = plan.grace_ms;
        let upcoming = source.next().map(|iv| {
            (
                WindowSpec {
                    start_ms: iv.start_ms,
                    end_ms: iv.end_ms,
                    grace_ms,
                },
                iv.tag,
            )
        });
        let seen = Seen {
            gps: vec![RunList::default(); plan.addresses.len()],
            gps_state: vec![DefiniteState::default(); plan.addresses.len()],
            retired: AbsenceTally {
                order: plan.order_id.clone(),
                ..AbsenceTally::default()
            },
            upcoming,
            windows: VecDeque::new(),
            rf: RunList::default(),
            rf_state: DefiniteState::default(),
            rf_seen: false,
            tag_dead: false,
            dead: Vec::new(),
            hmu_off: Vec::new(),
            coverage_ms: None,
            clock_ms: TimeMs::MIN,
        };
        Self {
            key_al09: format!("{key}:AL09"),
            key,
            plan,
            config,
            windows_source: source,
            seen,
        }
    }

    /// The order whose curfew this rule watches.
    pub fn order_id(&self) -> &str {
        &self.plan.order_id
    }

    /// Total absence so far: retired windows plus the current verdicts of live ones.
    pub fn absence(&self) -> AbsenceTally {
        let mut tally = self.seen.retired.clone();
        for w in &self.seen.windows {
            tally.add(&w.tally);
        }
        tally
    }

    fn now_ms(&self) -> TimeMs {
        self.seen
            .coverage_ms
            .unwrap_or(TimeMs::MIN)
            .max(self.seen.clock_ms)
    }

    /// Moves windows that have started into the live list.
    fn admit_windows(&mut self) {
        let now = self.now_ms();
        while let Some((spec, address)) = self.seen.upcoming {
            if spec.start_ms > now {
                break;
            }
            self.seen.windows.push_back(WindowState {
                spec,
                address,
                emitted: Vec::new(),
                commencement_settled: false,
                end_settled: false,
                clock_decided_ms: None,
                tally: WindowTally::default(),
                episodes: Vec::new(),
            });
            let grace_ms = self.plan.grace_ms;
            self.seen.upcoming = self.windows_source.next().map(|iv| {
                (
                    WindowSpec {
                        start_ms: iv.start_ms,
                        end_ms: iv.end_ms,
                        grace_ms,
                    },
                    iv.tag,
                )
            });
        }
    }

    /// Drops windows whose verdict can no longer change, and the runs only they needed.
    fn retire_windows(&mut self) {
        let mut retired_any = false;
        while let Some(front) = self.seen.windows.front() {
            let expired = front.end_settled
                && self.seen.clock_ms
                    >= front
                        .spec
                        .end_ms
                        .saturating_add(self.config.late_retention_ms);
            if !expired {
                break;
            }
            if let Some(w) = self.seen.windows.pop_front() {
                self.seen.retired.add(&w.tally);
                retired_any = true;
            }
        }
        if retired_any || self.seen.windows.is_empty() {
            let keep_from = self
                .seen
                .windows
                .front()
                .map(|w| w.spec.start_ms)
                .or(self.seen.upcoming.map(|(s, _)| s.start_ms))
                .unwrap_or(self.now_ms());
            let max_age = self.config.gps_max_age_ms.max(self.config.rf_max_age_ms);
            let keep_from = keep_from.saturating_sub(max_age);
            self.seen.rf.prune_before(keep_from);
            for list in &mut self.seen.gps {
                list.prune_before(keep_from);
            }
            self.seen.dead.retain(|&(_, to)| to >= keep_from);
            self.seen.hmu_off.retain(|&(_, to)| to >= keep_from);
        }
    }

    /// Whether the home unit was without power at some point of `[from, to]`.
    fn hmu_off_during(&self, from: TimeMs, to: TimeMs) -> bool {
        self.seen.hmu_off.iter().any(|&(a, b)| a <= to && from < b)
    }

    /// Whether window `w` is judged from RF: the activation has RF readings and RF counts at the
    /// window's address (it has the home monitoring unit, or no address of the person is marked).
    fn rf_judges(&self, address: usize) -> bool {
        self.seen.rf_seen && self.plan.addresses[address].rf_counts
    }

    /// The presence source of window `w`: RF where the activation has RF readings and RF counts
    /// at the window's address, except for a window the home unit was without power for, which
    /// is judged from the tag's fixes when it has any (the unit's last report before the cut is
    /// stale, the fixes are not). Other windows: the fixes against the window's address.
    fn runs_for_window(&self, w: &WindowState) -> (&RunList, u32, TimeMs) {
        let gps = &self.seen.gps[w.address];
        if self.rf_judges(w.address)
            && !gps.is_empty()
            && self.hmu_off_during(
                w.spec.start_ms.saturating_sub(self.config.gps_max_age_ms),
                w.spec.end_ms,
            )
        {
            return (
                gps,
                self.config.gps_away_min_fixes,
                self.config.gps_max_age_ms,
            );
        }
        self.runs_for(w.address)
    }

    fn runs_for(&self, address: usize) -> (&RunList, u32, TimeMs) {
        if self.rf_judges(address) {
            (&self.seen.rf, 1, self.config.rf_max_age_ms)
        } else {
            (
                &self.seen.gps[address],
                self.config.gps_away_min_fixes,
                self.config.gps_max_age_ms,
            )
        }
    }

    fn evaluate_window(&self, w: &WindowState) -> Verdict {
        let (runs, away_min_fixes, max_age_ms) = self.runs_for_window(w);
        // An RF-only verdict cannot see through a power cut at the unit either.
        let rf_only = self.seen.rf_seen && std::ptr::eq(runs, &self.seen.rf);
        let blind: Vec<(TimeMs, TimeMs)>;
        let dead: &[(TimeMs, TimeMs)] = if rf_only && !self.seen.hmu_off.is_empty() {
            blind = self
                .seen
                .dead
                .iter()
                .chain(&self.seen.hmu_off)
                .copied()
                .collect();
            &blind
        } else {
            &self.seen.dead
        };
        evaluate(
            &w.spec,
            &EvalInput {
                runs: &runs.runs,
                away_min_fixes,
                max_age_ms,
                settle_ms: self.config.settle_ms,
                coverage_ms: self.seen.coverage_ms,
                clock_ms: self.seen.clock_ms,
                dead,
            },
        )
    }

    /// Recomputes window `i` and emits what changed. `late_from_ms`: the event time of the
    /// reading that caused this (if any) and whether the pipeline flagged it late.
    fn refresh(&mut self, ctx: &mut RuleContext<'_>, i: usize, cause: Option<(TimeMs, bool)>) {
        let verdict = self.evaluate_window(&self.seen.windows[i]);
        let unchanged = verdict.episodes == self.seen.windows[i].episodes;
        let alerts = if unchanged {
            Vec::new()
        } else {
            self.alerts_of(ctx, &self.seen.windows[i], &verdict)
        };
        let covered = |t: TimeMs| self.seen.coverage_ms.is_some_and(|c| c >= t);
        let w = &mut self.seen.windows[i];
        // Decision points newly settled by the clock rather than by data.
        let tc = w.spec.check_ms();
        if verdict.commencement_settled && !w.commencement_settled && !covered(tc) {
            w.clock_decided_ms = Some(w.clock_decided_ms.map_or(tc, |d| d.max(tc)));
        }
        if verdict.end_settled && !w.end_settled && !covered(w.spec.end_ms) {
            w.clock_decided_ms = Some(
                w.clock_decided_ms
                    .map_or(w.spec.end_ms, |d| d.max(w.spec.end_ms)),
            );
        }
        w.commencement_settled |= verdict.commencement_settled;
        w.end_settled |= verdict.end_settled;
        let cause_late =
            cause.is_some_and(|(t, late)| late || w.clock_decided_ms.is_some_and(|d| t <= d));

        if unchanged {
            return;
        }
        let mut tally = WindowTally::default();
        for ep in &verdict.episodes {
            if let Some(end) = ep.end_ms {
                if ep.confirmed {
                    tally.confirmed_ms += end - ep.start_ms;
                } else {
                    tally.possible_ms += end - ep.start_ms;
                }
                tally.breached = true;
            }
        }
        w.tally = tally;

        let mut next_emitted = Vec::with_capacity(alerts.len());
        for mut alert in alerts {
            match w.emitted.iter().position(|old| old.id == alert.id) {
                Some(j) => {
                    let old = w.emitted.swap_remove(j);
                    alert.late = old.late;
                    if alert != old {
                        alert.late = old.late || cause_late;
                        ctx.emit_alert(alert.clone());
                    }
                }
                None => {
                    alert.late = cause_late;
                    ctx.emit_alert(alert.clone());
                }
            }
            next_emitted.push(alert);
        }
        for mut gone in std::mem::take(&mut w.emitted) {
            gone.late = true;
            gone.withdrawn = Some(Withdrawal {
                change: None,
                reason: format!(
                    "readings that arrived later show no {} in this curfew window",
                    match gone.code.as_deref() {
                        Some("AL09") => "late return",
                        Some("AL10" | "AL11") => "departure",
                        _ => "absence at its start",
                    }
                ),
            });
            ctx.emit_alert(gone);
        }
        w.emitted = next_emitted;
        w.episodes = verdict.episodes;
    }

    fn alerts_of(&self, ctx: &RuleContext<'_>, w: &WindowState, verdict: &Verdict) -> Vec<Alert> {
        let activation = &ctx.activation.id;
        let make = |key: &str,
                    anchor: TimeMs,
                    code: &str,
                    start: TimeMs,
                    end: Option<TimeMs>,
                    confirmed: bool,
                    evidence: Vec<Reading>| Alert {
            id: alert_id(activation, key, anchor),
            alert_type: AlertType::CurfewViolation,
            code: Some(code.to_string()),
            activation: activation.clone(),
            person: ctx.activation.person.clone(),
            start,
            end,
            late: false,
            zone: None,
            confidence: Some(if confirmed {
                Confidence::Confirmed
            } else {
                Confidence::Possible
            }),
            rule: CURFEW_RULE_VERSION.to_string(),
            withdrawn: None,
            amended_by: None,
            evidence,
            details: None,
        };
        let mut out = Vec::with_capacity(verdict.episodes.len() + 1);
        for ep in &verdict.episodes {
            let anchor = match ep.kind {
                EpisodeKind::Commencement => w.spec.start_ms,
                EpisodeKind::Departure => ep.start_ms,
            };
            out.push(make(
                &self.key,
                anchor,
                ep.code,
                ep.start_ms,
                ep.end_ms,
                ep.confirmed,
                ep.evidence.clone(),
            ));
            if ep.kind == EpisodeKind::Commencement && ep.returned {
                if let Some(r) = ep.end_ms {
                    let evidence = ep.evidence.last().copied().into_iter().collect();
                    out.push(make(
                        &self.key_al09,
                        w.spec.start_ms,
                        "AL09",
                        r,
                        Some(r),
                        ep.confirmed,
                        evidence,
                    ));
                }
            }
        }
        out
    }

    /// Whether window `i` needs recomputing after a reading at `t_ms`.
    fn affected(
        &self,
        i: usize,
        t_ms: TimeMs,
        reshaped: bool,
        old_coverage: Option<TimeMs>,
    ) -> bool {
        let w = &self.seen.windows[i];
        let max_age = if self.rf_judges(w.address) {
            self.config.rf_max_age_ms
        } else {
            self.config.gps_max_age_ms
        };
        let in_range = t_ms >= w.spec.start_ms - max_age && t_ms <= w.spec.end_ms;
        let crossed = |p: TimeMs| {
            old_coverage.is_none_or(|c| c < p) && self.seen.coverage_ms.is_some_and(|c| c >= p)
        };
        // Data reaching a decision point decides it, or re-decides one the clock decided; data
        // older than a point the clock decided may change that decision.
        (reshaped && in_range)
            || (!w.commencement_settled && t_ms >= w.spec.check_ms())
            || crossed(w.spec.check_ms())
            || crossed(w.spec.end_ms)
            || w.clock_decided_ms.is_some_and(|d| t_ms <= d)
    }
}

/// A [`CurfewRule`]'s snapshot: what it has seen, and where its window calendar stands.
#[derive(Serialize, Deserialize)]
struct CurfewState {
    windows_source: WindowsCursor,
    #[serde(flatten)]
    seen: Seen,
}

impl Rule for CurfewRule {
    fn name(&self) -> &'static str {
        "curfew"
    }

    fn save_state(&self) -> Result<RuleState, RuleStateError> {
        let state = CurfewState {
            windows_source: self.windows_source.cursor(),
            seen: self.seen.clone(),
        };
        save_rule_state(self.name(), &state)
    }

    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError> {
        let CurfewState {
            windows_source,
            seen: s,
        } = load_rule_state(self.name(), state)?;
        let addresses = self.plan.addresses.len();
        let window_addresses = s.windows.iter().map(|w| w.address);
        if s.gps.len() != addresses
            || s.gps_state.len() != addresses
            || window_addresses
                .chain(s.upcoming.map(|(_, a)| a))
                .any(|a| a >= addresses)
        {
            return Err(RuleStateError {
                rule: self.name(),
                message: format!(
                    "state for {} addresses, the plan has {}",
                    s.gps.len(),
                    self.plan.addresses.len()
                ),
            });
        }
        self.windows_source.resume(windows_source);
        self.seen = s;
        Ok(())
    }

    fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool) {
        let t = reading.t_ms;
        // Whether the definite presence state moved (or the history was edited out of order).
        let mut changed = false;
        let mut mode_changed = false;
        match &reading.body {
            ReadingBody::Rf { in_range } => {
                let class = if *in_range {
                    Presence::Home
                } else if self.seen.tag_dead {
                    Presence::Uncertain
                } else {
                    Presence::Away
                };
                changed = match self
                    .seen
                    .rf
                    .insert(reading, class, self.config.rf_max_age_ms)
                {
                    Change::Inserted => {
                        self.seen.rf_state = DefiniteState::of_runs(&self.seen.rf.runs, 1);
                        true
                    }
                    Change::Extended | Change::Appended => self.seen.rf_state.observe(class, 1, 1),
                };
                mode_changed = !self.seen.rf_seen;
                self.seen.rf_seen = true;
                if *in_range {
                    // In range of a unit elsewhere: away from an address apart from every unit,
                    // as definite as a run of away fixes (out of range says nothing about it).
                    // The unit reports changes and heartbeats, so consecutive in-range reports
                    // are one continuous run, as in the RF list.
                    let away_min = self.config.gps_away_min_fixes;
                    for (i, address) in self.plan.addresses.iter().enumerate() {
                        if !address.rf_in_range_is_away {
                            continue;
                        }
                        let (list, state) = (&mut self.seen.gps[i], &mut self.seen.gps_state[i]);
                        changed |= match list.insert_weighted(
                            reading,
                            Presence::Away,
                            self.config.rf_max_age_ms,
                            away_min,
                        ) {
                            Change::Inserted => {
                                *state = DefiniteState::of_runs(&list.runs, away_min);
                                true
                            }
                            Change::Extended | Change::Appended => {
                                state.observe(Presence::Away, away_min, away_min)
                            }
                        };
                    }
                }
            }
            ReadingBody::Position(fix) => {
                let away_min = self.config.gps_away_min_fixes;
                for ((address, list), state) in self
                    .plan
                    .addresses
                    .iter()
                    .zip(self.seen.gps.iter_mut())
                    .zip(self.seen.gps_state.iter_mut())
                {
                    let mut class = classify_fix(
                        fix,
                        &address.projection,
                        address.radius_m,
                        self.config.precision_scale,
                    );
                    if class == Presence::Away && fix.source != crate::model::PositionSource::Gps {
                        let strict = classify_fix(
                            fix,
                            &address.projection,
                            address.radius_m,
                            self.config.precision_scale * self.config.network_away_scale.max(1.0),
                        );
                        if strict != Presence::Away {
                            class = Presence::Uncertain;
                        }
                    }
                    let moved = match list.insert(reading, class, self.config.gps_max_age_ms) {
                        Change::Inserted => {
                            *state = DefiniteState::of_runs(&list.runs, away_min);
                            true
                        }
                        Change::Extended | Change::Appended => state.observe(class, 1, away_min),
                    };
                    // Also in RF mode: a window the home unit was off for, or at an address RF
                    // does not count for, is judged from fixes.
                    changed |= moved
                        && (!self.seen.rf_seen
                            || !self.seen.hmu_off.is_empty()
                            || !address.rf_counts);
                }
            }
            ReadingBody::Event(crate::model::DeviceEvent::BatteryDead) => {
                if !self.seen.tag_dead {
                    self.seen.dead.push((t, TimeMs::MAX));
                }
                self.seen.tag_dead = true;
            }
            ReadingBody::Event(crate::model::DeviceEvent::HmuPowerLoss) => {
                if self.seen.hmu_off.last().is_none_or(|l| l.1 != TimeMs::MAX) {
                    self.seen.hmu_off.push((t, TimeMs::MAX));
                    changed = true;
                }
            }
            ReadingBody::Event(crate::model::DeviceEvent::HmuPowerRestored) => {
                if let Some(last) = self.seen.hmu_off.last_mut() {
                    if last.1 == TimeMs::MAX && t >= last.0 {
                        last.1 = t;
                    }
                }
            }
            ReadingBody::Event(_) | ReadingBody::Tac(_) => {}
        }
        let revives = matches!(
            reading.body,
            ReadingBody::Position(_)
                | ReadingBody::Tac(_)
                | ReadingBody::Event(crate::model::DeviceEvent::Charging)
        );
        // A sign of life from before the death (a stored reading uploaded late) revives nothing.
        let dead_since = self
            .seen
            .dead
            .last()
            .filter(|d| d.1 == TimeMs::MAX)
            .map(|d| d.0);
        if revives && self.seen.tag_dead && dead_since.is_none_or(|d| t >= d) {
            self.seen.tag_dead = false;
            if let Some(last) = self.seen.dead.last_mut() {
                if last.1 == TimeMs::MAX {
                    last.1 = t;
                }
            }
        }
        let old_coverage = self.seen.coverage_ms;
        self.seen.coverage_ms = Some(old_coverage.map_or(t, |c| c.max(t)));
        self.admit_windows();
        for i in 0..self.seen.windows.len() {
            if mode_changed || late || self.affected(i, t, changed, old_coverage) {
                self.refresh(ctx, i, Some((t, late)));
            }
        }
    }

    fn on_contact(&mut self, _ctx: &mut RuleContext<'_>, contact_ms: TimeMs) {
        self.seen.clock_ms = self.seen.clock_ms.max(contact_ms);
    }

    fn on_clock(&mut self, ctx: &mut RuleContext<'_>, clock_ms: TimeMs) {
        self.seen.clock_ms = self.seen.clock_ms.max(clock_ms);
        self.admit_windows();
        for i in 0..self.seen.windows.len() {
            let w = &self.seen.windows[i];
            let due = (!w.commencement_settled
                && self.seen.clock_ms >= w.spec.check_ms().saturating_add(self.config.settle_ms))
                || (!w.end_settled
                    && self.seen.clock_ms >= w.spec.end_ms.saturating_add(self.config.settle_ms));
            if due {
                self.refresh(ctx, i, None);
            }
        }
        self.retire_windows();
    }

    fn next_deadline(&self) -> Option<TimeMs> {
        let settle = self.config.settle_ms;
        let live = self.seen.windows.iter().filter_map(|w| {
            if !w.commencement_settled {
                Some(w.spec.check_ms().saturating_add(settle))
            } else if !w.end_settled {
                Some(w.spec.end_ms.saturating_add(settle))
            } else {
                None
            }
        });
        let upcoming = self
            .seen
            .upcoming
            .map(|(s, _)| s.check_ms().saturating_add(settle));
        live.chain(upcoming).min()
    }

    /// Every window whose commencement check or end lies within the input: its verdict waits
    /// only `settle_ms` for late data.
    fn final_horizon_ms(&self, input_end_ms: TimeMs) -> TimeMs {
        input_end_ms.saturating_add(self.config.settle_ms)
    }
}
