//! [`AlcoholRule`]: the per-activation state machine that ties the TAC analyzer, the alert
//! lifecycle and the sober-day book together, driven only by event time.
//!
//! - TAC readings in event-time order go through the analyzer; its findings become alerts
//!   (`drinking_event` under abstinence orders only, `environmental_alcohol`,
//!   `alcohol_obstruction`, `alcohol_removal`), each re-emitted with the same id as it changes.
//! - A reading older than what the analyzer has taken (a late reading) is inserted into the kept
//!   history and the analysis re-run from the last state snapshot before it; findings that
//!   change are re-emitted marked late. Readings older than the kept history (`late_window_ms`)
//!   count toward day coverage only.
//! - Days settle when the event-time clock passes their end plus the settle time; a settled day
//!   is re-issued whenever something changes its record. Days are kept only for an activation
//!   that has sent a TAC reading (the person's other tags are not alcohol tags).

use super::analyzer::{Finding, FindingKind, FindingMetrics, TacAnalyzer};
use super::config::{Thresholds, ALCOHOL_RULE_VERSION};
use super::smoothing::TacPoint;
use super::sober_days::{
    classify_day, coverage_fraction, day_hours, local_date, local_day_bounds, record_fingerprint,
    DayContext, OrderDays,
};
use crate::model::{
    alert_id, AlcoholMode, AlcoholRequirement, Alert, AlertDetails, AlertType, Condition,
    DeviceEvent, Order, Reading, ReadingBody, SoberDay, TimeMs,
};
use crate::pipeline::snapshot::{load_rule_state, save_rule_state, RuleState, RuleStateError};
use crate::pipeline::{ActivationInfo, Rule, RuleContext};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// A copy of the analyzer after it took `consumed` readings (absolute count), the newest at
/// `after_ms`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Snapshot {
    after_ms: TimeMs,
    consumed: u64,
    analyzer: TacAnalyzer,
}

/// The latest state of a finding and the alert last emitted for it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct FindingRecord {
    finding: Finding,
    late: bool,
    #[serde(with = "crate::pipeline::snapshot::via")]
    alert: Option<Alert>,
}

/// Alcohol monitoring of one activation under its person's alcohol orders.
pub struct AlcoholRule {
    th: Arc<Thresholds>,
    reorder_ms: TimeMs,
    activation_from_ms: TimeMs,
    activation_to_ms: Option<TimeMs>,
    orders: Vec<OrderDays>,
    analyzer: TacAnalyzer,
    /// Readings taken since the oldest snapshot, in event-time order.
    history: VecDeque<TacPoint>,
    /// Absolute index of `history[0]`.
    history_base: u64,
    snapshots: VecDeque<Snapshot>,
    findings: BTreeMap<(TimeMs, FindingKind), FindingRecord>,
    /// Keys of the findings still open, and the longest closed one: a day only needs the
    /// findings that start within that span before it, plus the open ones.
    open_findings: BTreeSet<(TimeMs, FindingKind)>,
    longest_closed_ms: TimeMs,
    /// Strap open → closed (`None` while open).
    straps: Vec<(TimeMs, Option<TimeMs>)>,
    /// A TAC reading was seen: this activation is the person's alcohol tag. Until then no day
    /// is settled (a person on an alcohol order may also wear a GPS or RF tag, whose activation
    /// must not fill the sober-day record with days "not worn").
    is_alcohol_tag: bool,
    clock_ms: TimeMs,
    deadline_ms: Option<TimeMs>,
    scratch: Vec<Finding>,
    /// `[start, end)` and date of the local day last looked up.
    day_cache: Option<(TimeMs, TimeMs, NaiveDate)>,
}

/// How many days from its start an alcohol order is monitored for, when a cap applies: the
/// AAMR's `abstinence_max_days` (120) for abstinence orders unless they are named AML; AML and
/// level monitoring run as long as the order does.
fn monitored_days_cap(order: &Order, abstinence_max_days: Option<u32>) -> Option<u32> {
    match (alcohol_mode(order)?, alcohol_requirement(order)) {
        (_, Some(AlcoholRequirement::Aml)) | (AlcoholMode::Level, None) => None,
        _ => abstinence_max_days,
    }
}

/// The last local date an alcohol order is monitored: its end date or the cap's last day,
/// whichever comes first; `None` while it runs open-ended without a cap.
pub fn monitored_last_day(order: &Order, abstinence_max_days: Option<u32>) -> Option<NaiveDate> {
    let capped = monitored_days_cap(order, abstinence_max_days).and_then(|d| {
        order
            .from
            .checked_add_days(chrono::Days::new(d.max(1) as u64 - 1))
    });
    match (order.to, capped) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The requirement an order's alcohol condition names, if any.
fn alcohol_requirement(order: &Order) -> Option<AlcoholRequirement> {
    order.conditions.iter().find_map(|c| match c {
        Condition::Alcohol(a) => a.requirement,
        _ => None,
    })
}

/// The alcohol mode of an order (abstinence wins if an order somehow has both), if any.
fn alcohol_mode(order: &Order) -> Option<AlcoholMode> {
    order
        .conditions
        .iter()
        .filter_map(|c| match c {
            Condition::Alcohol(a) => Some(a.mode),
            _ => None,
        })
        .reduce(|a, b| {
            if a == AlcoholMode::Abstinence || b == AlcoholMode::Abstinence {
                AlcoholMode::Abstinence
            } else {
                a
            }
        })
}

fn gdl(ugdl: i64) -> f64 {
    ugdl as f64 / 1e6
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn as_reading(p: &TacPoint) -> Reading {
    Reading {
        t_ms: p.t_ms,
        battery_pct: p.battery_pct,
        body: ReadingBody::Tac(p.sample),
    }
}

/// The alert for a finding, if it raises one under the orders covering its start.
fn alert_for(
    th: &Thresholds,
    orders: &[OrderDays],
    activation: &ActivationInfo,
    f: &Finding,
    late: bool,
) -> Option<Alert> {
    let covering = orders.iter().filter(|o| o.covers(f.start_ms));
    let (alert_type, under): (AlertType, Vec<String>) = match f.kind {
        FindingKind::Drinking => (
            AlertType::DrinkingEvent,
            covering
                .filter(|o| o.mode == AlcoholMode::Abstinence)
                .map(|o| o.order_id.clone())
                .collect(),
        ),
        FindingKind::Environmental => (
            AlertType::EnvironmentalAlcohol,
            covering.map(|o| o.order_id.clone()).collect(),
        ),
        FindingKind::Obstruction => (
            AlertType::AlcoholObstruction,
            covering.map(|o| o.order_id.clone()).collect(),
        ),
        FindingKind::Removal => (
            AlertType::AlcoholRemoval,
            covering.map(|o| o.order_id.clone()).collect(),
        ),
        FindingKind::Unconfirmed => return None,
    };
    if under.is_empty() {
        return None;
    }
    let mut details = AlertDetails {
        config_version: Some(th.config_version.clone()),
        orders: under,
        ..AlertDetails::default()
    };
    let mut evidence = Vec::new();
    match &f.metrics {
        FindingMetrics::Excursion(m) => {
            details.peak = Some(m.peak_ms);
            details.peak_tac_gdl = Some(gdl(m.peak_tac_ugdl as i64));
            details.max_raw_tac_gdl = Some(gdl(m.max_raw_tac_ugdl as i64));
            // µg/dL·ms → g/dL·h
            details.auc_gdl_h = Some(round4(m.auc_ugdl_ms as f64 / 3.6e12));
            details.absorption_gdl_per_h = Some(round4(gdl(m.absorption_ugdl_per_h)));
            details.elimination_gdl_per_h = m.elimination_ugdl_per_h.map(|r| round4(gdl(r)));
            details.readings = Some(m.readings);
            evidence.push(as_reading(&m.start_point));
            if m.peak_point != m.start_point {
                evidence.push(as_reading(&m.peak_point));
            }
            evidence.extend(m.end_point.as_ref().map(as_reading));
        }
        FindingMetrics::Tamper(m) => {
            details.ir_baseline_v = Some(m.ir_baseline_uv as f64 / 1e6);
            details.ir_v = Some(m.ir_uv as f64 / 1e6);
            details.temp_c = Some(m.temp_mc as f64 / 1e3);
            details.readings = Some(m.readings);
            evidence.push(as_reading(&m.start_point));
            evidence.extend(m.end_point.as_ref().map(as_reading));
        }
    }
    Some(Alert {
        id: alert_id(&activation.id, alert_type.as_str(), f.start_ms),
        alert_type,
        code: None,
        activation: activation.id.clone(),
        person: activation.person.clone(),
        start: f.start_ms,
        end: f.end_ms,
        late,
        zone: None,
        confidence: None,
        rule: ALCOHOL_RULE_VERSION.to_string(),
        details: Some(Box::new(details)),
        withdrawn: None,
        amended_by: None,
        evidence,
    })
}

impl AlcoholRule {
    /// The rule for `activation` under the alcohol orders among `orders`; `None` when no
    /// alcohol order has a day within the activation.
    pub fn new(
        th: Arc<Thresholds>,
        activation: &ActivationInfo,
        orders: &[Arc<Order>],
        reorder_ms: TimeMs,
    ) -> Option<Self> {
        let orders: Vec<OrderDays> = orders
            .iter()
            .filter_map(|o| {
                let mode = alcohol_mode(o)?;
                OrderDays::new(
                    o.id.clone(),
                    mode,
                    o.from,
                    monitored_last_day(o, th.abstinence_max_days),
                    activation.from_ms,
                    activation.to_ms,
                )
            })
            .collect();
        if orders.is_empty() {
            return None;
        }
        let analyzer = TacAnalyzer::new(&th);
        let mut rule = Self {
            reorder_ms: reorder_ms.max(0),
            activation_from_ms: activation.from_ms,
            activation_to_ms: activation.to_ms,
            orders,
            snapshots: VecDeque::from([Snapshot {
                after_ms: TimeMs::MIN,
                consumed: 0,
                analyzer: analyzer.clone(),
            }]),
            analyzer,
            history: VecDeque::new(),
            history_base: 0,
            findings: BTreeMap::new(),
            open_findings: BTreeSet::new(),
            longest_closed_ms: 0,
            straps: Vec::new(),
            is_alcohol_tag: false,
            clock_ms: TimeMs::MIN,
            deadline_ms: None,
            scratch: Vec::new(),
            day_cache: None,
            th,
        };
        rule.update_deadline();
        Some(rule)
    }

    fn date_of(&mut self, t_ms: TimeMs) -> NaiveDate {
        if let Some((a, b, d)) = self.day_cache {
            if t_ms >= a && t_ms < b {
                return d;
            }
        }
        let d = local_date(t_ms);
        let (a, b) = local_day_bounds(d);
        self.day_cache = Some((a, b, d));
        d
    }

    fn update_deadline(&mut self) {
        let th = &self.th;
        let pending = self.analyzer.pending_decision_since(th);
        let flush = self
            .analyzer
            .last_ms()
            .filter(|_| self.analyzer.has_pending() && !self.analyzer.segment_ended())
            .map(|last| last + th.max_gap_ms + self.reorder_ms + 1);
        let settle = self
            .orders
            .iter()
            .filter(|_| self.is_alcohol_tag)
            .filter_map(|o| o.next_due_ms(th, pending, self.reorder_ms))
            .min();
        self.deadline_ms = match (flush, settle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Classifies day `i` of order `oi` and emits it if its record changed.
    fn emit_day(&mut self, ctx: &mut RuleContext<'_>, oi: usize, i: usize) {
        let (day_start, day_end) = {
            let day = self.orders[oi].day(i);
            (day.start_ms, day.end_ms)
        };
        let first = (
            day_start.saturating_sub(self.longest_closed_ms),
            FindingKind::Drinking,
        );
        let closed = self
            .findings
            .range(first..(day_end, FindingKind::Drinking))
            .filter(|(_, r)| r.finding.end_ms.is_some());
        let open = self
            .open_findings
            .iter()
            .filter_map(|k| self.findings.get_key_value(k));
        let findings: Vec<(&Finding, Option<&str>)> = closed
            .chain(open)
            .map(|(_, r)| (&r.finding, r.alert.as_ref().map(|a| a.id.as_str())))
            .collect();
        let cx = DayContext {
            th: &self.th,
            activation_from_ms: self.activation_from_ms,
            activation_to_ms: self.activation_to_ms,
            findings: &findings,
            straps: &self.straps,
            open_until_ms: self.analyzer.last_ms().unwrap_or(TimeMs::MIN),
            pending_since: self.analyzer.pending_decision_since(&self.th),
        };
        let order = &self.orders[oi];
        let day = order.day(i);
        let (status, reasons, alerts) = classify_day(&cx, day);
        let record = SoberDay {
            activation: ctx.activation.id.clone(),
            order: order.order_id.clone(),
            date: day.date,
            status,
            reasons,
            person: ctx.activation.person.clone(),
            mode: order.mode,
            readings: day.readings,
            coverage: coverage_fraction(&self.th, day),
            day_hours: day_hours(day),
            alerts,
            late: day.late,
            rule: ALCOHOL_RULE_VERSION.to_string(),
            config_version: self.th.config_version.clone(),
            withdrawn: None,
            amended_by: None,
        };
        let fingerprint = record_fingerprint(&record);
        let day = self.orders[oi].day_at_mut(i);
        if day.emitted != Some(fingerprint) {
            day.emitted = Some(fingerprint);
            ctx.emit_sober_day(record);
        }
    }

    /// Re-issues every settled day overlapping `[from_ms, to_ms)` (open end: up to the newest
    /// reading), marking them late when a late reading caused the change.
    fn reissue_overlapping(
        &mut self,
        ctx: &mut RuleContext<'_>,
        from_ms: TimeMs,
        to_ms: Option<TimeMs>,
        late: bool,
    ) {
        let open_until = self.analyzer.last_ms().unwrap_or(from_ms);
        let to_ms = to_ms.unwrap_or(open_until).max(from_ms + 1);
        for oi in 0..self.orders.len() {
            for i in self.orders[oi].settled_overlapping(from_ms, to_ms) {
                if late {
                    self.orders[oi].day_at_mut(i).late = true;
                }
                self.emit_day(ctx, oi, i);
            }
        }
    }

    /// Records a new state of a finding: alert lifecycle, then the days it touches.
    fn apply(&mut self, ctx: &mut RuleContext<'_>, f: Finding, late: bool) {
        let key = f.key();
        let (from_ms, mut to_ms) = (f.start_ms, f.end_ms);
        match self.findings.get_mut(&key) {
            Some(rec) if rec.finding.same_content(&f) => {
                rec.finding.as_of_ms = f.as_of_ms;
                return;
            }
            Some(rec) => {
                // The days of the old span need a new look too.
                to_ms = match (rec.finding.end_ms, to_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                rec.finding = f;
                rec.late |= late;
            }
            None => {
                self.findings.insert(
                    key,
                    FindingRecord {
                        finding: f,
                        late,
                        alert: None,
                    },
                );
            }
        }
        if let Some(rec) = self.findings.get(&key) {
            match rec.finding.end_ms {
                None => {
                    self.open_findings.insert(key);
                }
                Some(end) => {
                    self.open_findings.remove(&key);
                    self.longest_closed_ms = self.longest_closed_ms.max(end - rec.finding.start_ms);
                }
            }
        }
        if let Some(rec) = self.findings.get_mut(&key) {
            let alert = alert_for(
                &self.th,
                &self.orders,
                ctx.activation,
                &rec.finding,
                rec.late,
            );
            if let Some(alert) = alert.filter(|a| rec.alert.as_ref() != Some(a)) {
                rec.alert = Some(alert.clone());
                ctx.emit_alert(alert);
            }
        }
        self.reissue_overlapping(ctx, from_ms, to_ms, late);
    }

    /// Keeps a copy of the analyzer if the last is `snapshot_every_ms` old; says if it did.
    fn maybe_snapshot(&mut self, t_ms: TimeMs, consumed: u64) -> bool {
        let due = self
            .snapshots
            .back()
            .is_none_or(|s| t_ms >= s.after_ms.saturating_add(self.th.snapshot_every_ms));
        if due {
            self.snapshots.push_back(Snapshot {
                after_ms: t_ms,
                consumed,
                analyzer: self.analyzer.clone(),
            });
        }
        due
    }

    fn trim_history(&mut self) {
        let newest = self.analyzer.last_ms().unwrap_or(TimeMs::MIN);
        let keep_after = newest.saturating_sub(self.th.late_window_ms);
        let old = self
            .snapshots
            .iter()
            .skip(1)
            .take_while(|s| s.after_ms < keep_after)
            .count();
        if old > 0 {
            self.snapshots.drain(..old);
        }
        if let Some(first) = self.snapshots.front() {
            let drop = (first.consumed - self.history_base) as usize;
            if drop > 0 {
                self.history.drain(..drop.min(self.history.len()));
                self.history_base = first.consumed;
            }
        }
    }

    /// Ends the analyzer's segment if no reading can still join it at `clock_ms`.
    fn flush_if_quiet(&mut self, out: &mut Vec<Finding>) {
        if let Some(last) = self.analyzer.last_ms() {
            if self.analyzer.has_pending()
                && !self.analyzer.segment_ended()
                && self.clock_ms > last + self.th.max_gap_ms + self.reorder_ms
            {
                self.analyzer.end_segment(&self.th, out);
            }
        }
    }

    fn on_tac(&mut self, ctx: &mut RuleContext<'_>, p: TacPoint, late: bool) {
        self.is_alcohol_tag = true;
        let date = self.date_of(p.t_ms);
        for oi in 0..self.orders.len() {
            if let Some((i, day)) = self.orders[oi].day_mut(date) {
                day.add_reading(&self.th, p.t_ms);
                day.late |= late;
                if self.orders[oi].is_settled(i) {
                    self.emit_day(ctx, oi, i);
                }
            }
        }
        let in_order = match self.analyzer.last_ms() {
            None => true,
            Some(last) => {
                p.t_ms >= last
                    && !(self.analyzer.segment_ended() && p.t_ms - last <= self.th.max_gap_ms)
            }
        };
        if in_order {
            let mut out = std::mem::take(&mut self.scratch);
            self.analyzer.push(&self.th, p, &mut out);
            self.history.push_back(p);
            let snapshot =
                self.maybe_snapshot(p.t_ms, self.history_base + self.history.len() as u64);
            for f in out.drain(..) {
                self.apply(ctx, f, late);
            }
            self.scratch = out;
            if snapshot {
                self.trim_history();
            }
        } else {
            self.reanalyse_with(ctx, p, late);
        }
    }

    /// Re-runs the analysis from the last snapshot before `q` with `q` inserted.
    fn reanalyse_with(&mut self, ctx: &mut RuleContext<'_>, q: TacPoint, late: bool) {
        let si = self.snapshots.partition_point(|s| s.after_ms < q.t_ms);
        if si == 0 {
            return; // older than the kept history: counted toward coverage only
        }
        self.snapshots.truncate(si);
        let Some(snap) = self.snapshots.back() else {
            return;
        };
        let snap_ms = snap.after_ms;
        let start = (snap.consumed - self.history_base) as usize;
        self.analyzer = snap.analyzer.clone();
        // History is in event-time order and everything before `start` is older than `q`.
        let at = self
            .history
            .partition_point(|h| h.t_ms <= q.t_ms)
            .max(start);
        self.history.insert(at, q);
        let mut out = std::mem::take(&mut self.scratch);
        for i in start..self.history.len() {
            let p = self.history[i];
            self.analyzer.push(&self.th, p, &mut out);
            self.maybe_snapshot(p.t_ms, self.history_base + i as u64 + 1);
        }
        self.flush_if_quiet(&mut out);
        let mut finals: BTreeMap<(TimeMs, FindingKind), Finding> = BTreeMap::new();
        for f in out.drain(..) {
            finals.insert(f.key(), f);
        }
        self.scratch = out;
        // Findings that began after the snapshot and did not come out again no longer exist.
        // (An alert already raised for one stays as it was: alerts are never withdrawn.)
        let stale: Vec<(TimeMs, FindingKind)> = self
            .findings
            .keys()
            .filter(|k| k.0 > snap_ms && !finals.contains_key(k))
            .copied()
            .collect();
        for key in stale {
            self.open_findings.remove(&key);
            if let Some(rec) = self.findings.remove(&key) {
                self.reissue_overlapping(ctx, rec.finding.start_ms, rec.finding.end_ms, late);
            }
        }
        for f in finals.into_values() {
            self.apply(ctx, f, late);
        }
        self.trim_history();
    }

    fn on_event(
        &mut self,
        ctx: &mut RuleContext<'_>,
        t_ms: TimeMs,
        event: DeviceEvent,
        late: bool,
    ) {
        match event {
            DeviceEvent::StrapOpen if self.straps.iter().all(|s| s.1.is_some()) => {
                self.straps.push((t_ms, None));
                self.reissue_overlapping(ctx, t_ms, None, late);
            }
            DeviceEvent::StrapClosed => {
                let open = self
                    .straps
                    .iter_mut()
                    .rev()
                    .find(|s| s.1.is_none() && s.0 <= t_ms);
                if let Some(strap) = open {
                    strap.1 = Some(t_ms);
                    let from = strap.0;
                    self.reissue_overlapping(ctx, from, Some(t_ms), late);
                }
            }
            DeviceEvent::Fitted | DeviceEvent::Removed => {
                let date = self.date_of(t_ms);
                for oi in 0..self.orders.len() {
                    if let Some((i, day)) = self.orders[oi].day_mut(date) {
                        if event == DeviceEvent::Fitted {
                            day.fitted = true;
                        } else {
                            day.removed = true;
                        }
                        day.late |= late;
                        if self.orders[oi].is_settled(i) {
                            self.emit_day(ctx, oi, i);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The event-time clock stands at `clock_ms`: end a quiet segment, settle due days.
    fn advance(&mut self, ctx: &mut RuleContext<'_>, clock_ms: TimeMs) {
        self.clock_ms = self.clock_ms.max(clock_ms);
        if self.deadline_ms.is_none_or(|d| d > self.clock_ms) {
            return;
        }
        let mut out = std::mem::take(&mut self.scratch);
        self.flush_if_quiet(&mut out);
        for f in out.drain(..) {
            self.apply(ctx, f, false);
        }
        self.scratch = out;
        let settling = if self.is_alcohol_tag {
            0..self.orders.len()
        } else {
            0..0
        };
        for oi in settling {
            loop {
                let pending = self.analyzer.pending_decision_since(&self.th);
                let Some(i) =
                    self.orders[oi].due_day(&self.th, self.clock_ms, pending, self.reorder_ms)
                else {
                    break;
                };
                self.emit_day(ctx, oi, i);
                self.orders[oi].mark_settled();
            }
        }
        self.update_deadline();
    }
}

/// What an [`AlcoholRule`] has seen (its thresholds and period are rebuilt; the days of its
/// orders are kept whole, their bounds with them).
#[derive(serde::Serialize, serde::Deserialize)]
struct AlcoholState {
    orders: Vec<OrderDays>,
    analyzer: TacAnalyzer,
    history: VecDeque<TacPoint>,
    history_base: u64,
    snapshots: VecDeque<Snapshot>,
    findings: Vec<((TimeMs, FindingKind), FindingRecord)>,
    open_findings: BTreeSet<(TimeMs, FindingKind)>,
    longest_closed_ms: TimeMs,
    straps: Vec<(TimeMs, Option<TimeMs>)>,
    is_alcohol_tag: bool,
    clock_ms: TimeMs,
    deadline_ms: Option<TimeMs>,
    day_cache: Option<(TimeMs, TimeMs, NaiveDate)>,
}

impl Rule for AlcoholRule {
    fn name(&self) -> &'static str {
        "alcohol"
    }

    fn save_state(&self) -> Result<RuleState, RuleStateError> {
        let state = AlcoholState {
            orders: self.orders.clone(),
            analyzer: self.analyzer.clone(),
            history: self.history.clone(),
            history_base: self.history_base,
            snapshots: self.snapshots.clone(),
            findings: self.findings.iter().map(|(k, v)| (*k, v.clone())).collect(),
            open_findings: self.open_findings.clone(),
            longest_closed_ms: self.longest_closed_ms,
            straps: self.straps.clone(),
            is_alcohol_tag: self.is_alcohol_tag,
            clock_ms: self.clock_ms,
            deadline_ms: self.deadline_ms,
            day_cache: self.day_cache,
        };
        save_rule_state(self.name(), &state)
    }

    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError> {
        let s: AlcoholState = load_rule_state(self.name(), state)?;
        let ids = |orders: &[OrderDays]| -> Vec<String> {
            orders.iter().map(|o| o.order_id.clone()).collect()
        };
        if ids(&s.orders) != ids(&self.orders) {
            return Err(RuleStateError {
                rule: self.name(),
                message: format!(
                    "state for orders {:?}, the rule watches {:?}",
                    ids(&s.orders),
                    ids(&self.orders)
                ),
            });
        }
        self.orders = s.orders;
        self.analyzer = s.analyzer;
        self.history = s.history;
        self.history_base = s.history_base;
        self.snapshots = s.snapshots;
        self.findings = s.findings.into_iter().collect();
        self.open_findings = s.open_findings;
        self.longest_closed_ms = s.longest_closed_ms;
        self.straps = s.straps;
        self.is_alcohol_tag = s.is_alcohol_tag;
        self.clock_ms = s.clock_ms;
        self.deadline_ms = s.deadline_ms;
        self.day_cache = s.day_cache;
        Ok(())
    }

    fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool) {
        match reading.body {
            ReadingBody::Tac(sample) => {
                let p = TacPoint {
                    t_ms: reading.t_ms,
                    sample,
                    battery_pct: reading.battery_pct,
                };
                self.on_tac(ctx, p, late);
            }
            ReadingBody::Event(event) => self.on_event(ctx, reading.t_ms, event, late),
            _ => return,
        }
        self.update_deadline();
    }

    fn on_contact(&mut self, ctx: &mut RuleContext<'_>, contact_ms: TimeMs) {
        self.advance(ctx, contact_ms);
    }

    fn on_clock(&mut self, ctx: &mut RuleContext<'_>, clock_ms: TimeMs) {
        self.advance(ctx, clock_ms);
    }

    fn next_deadline(&self) -> Option<TimeMs> {
        self.deadline_ms
    }

    /// Every day that ended within the input (a day waits `settle_ms` after its end, plus the
    /// reorder window, for late data), and the day the input ends in if it ends at most
    /// `max_gap_ms` before midnight: so short a stretch without readings is no gap to this
    /// rule (a recording that stops at midnight has its last day). A day with a drinking
    /// episode still undecided waits the longer `max_settle_ms`, as it would live.
    fn final_horizon_ms(&self, input_end_ms: TimeMs) -> TimeMs {
        let (_, day_end_ms) = local_day_bounds(local_date(input_end_ms));
        let through_ms = if day_end_ms - input_end_ms <= self.th.max_gap_ms {
            day_end_ms
        } else {
            input_end_ms
        };
        through_ms
            .saturating_add(self.th.settle_ms)
            .saturating_add(self.reorder_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlcoholCondition;

    fn order(
        mode: AlcoholMode,
        requirement: Option<AlcoholRequirement>,
        to: Option<&str>,
    ) -> Order {
        Order {
            id: "O".into(),
            person: "P".into(),
            from: "2026-01-01".parse().unwrap(),
            to: to.map(|d| d.parse().unwrap()),
            conditions: vec![Condition::Alcohol(AlcoholCondition { mode, requirement })],
        }
    }

    #[test]
    fn the_abstinence_cap_applies_to_aamr_orders_only() {
        let day = |d: &str| Some(d.parse::<NaiveDate>().unwrap());
        let aamr = order(AlcoholMode::Abstinence, None, None);
        assert_eq!(monitored_last_day(&aamr, Some(120)), day("2026-04-30"));
        assert_eq!(monitored_last_day(&aamr, None), None);
        let ends_first = order(AlcoholMode::Abstinence, None, Some("2026-02-01"));
        assert_eq!(
            monitored_last_day(&ends_first, Some(120)),
            day("2026-02-01")
        );
        let named = order(
            AlcoholMode::Abstinence,
            Some(AlcoholRequirement::Aamr),
            Some("2026-12-31"),
        );
        assert_eq!(monitored_last_day(&named, Some(120)), day("2026-04-30"));
        let aml = order(
            AlcoholMode::Abstinence,
            Some(AlcoholRequirement::Aml),
            Some("2026-12-31"),
        );
        assert_eq!(monitored_last_day(&aml, Some(120)), day("2026-12-31"));
        let level = order(AlcoholMode::Level, None, None);
        assert_eq!(monitored_last_day(&level, Some(120)), None);
    }
}
