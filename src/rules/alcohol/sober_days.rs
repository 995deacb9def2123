//! Sober days: each Europe/London calendar day of an alcohol order, as monitored through one
//! activation, classified from the day's coverage and the findings overlapping it; and the
//! sober-day rate of any set of days.
//!
//! Classification (first that applies; `reasons` lists every one that applies):
//! 1. `drinking` — a confirmed drinking event overlaps the day (level-mode orders too: the day
//!    record is how level mode reports drinking; only abstinence alerts);
//! 2. `tamper` — an obstruction, removal or strap tamper overlaps the day;
//! 3. `not_worn` — no TAC reading during the day;
//! 4. `partial` — the fitting day (the activation starts after local midnight, or a `fitted`
//!    event), the removal day (the activation ends before the next midnight, or a `removed`
//!    event), fewer than `min_day_readings` readings, or coverage below `min_day_coverage`;
//! 5. `sober`.
//!
//! Coverage is the fraction of the day's `day_slot_ms` slots (46, 48 or 50 half hours for a 23-,
//! 24- or 25-hour day) holding at least one reading, so gaps count as not monitored, never as
//! sober, and the daylight-saving days are judged on their true length.
//!
//! Sober-day rate = sober ÷ days worn, where days worn are `sober`, `drinking` and `tamper` days
//! (the bracelet was on and the day was judged). `partial` and `not_worn` days are left out of
//! both: they were not monitored as whole days.

use super::analyzer::{Finding, FindingKind};
use super::config::{Thresholds, MAX_DAY_SLOTS};
use crate::model::{AlcoholMode, DayReason, SoberDay, SoberDayStatus, TimeMs};
use chrono::{DateTime, Days, NaiveDate, TimeZone};
use chrono_tz::Europe::London;
use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The Europe/London calendar day of an event time.
pub fn local_date(t_ms: TimeMs) -> NaiveDate {
    DateTime::from_timestamp_millis(t_ms)
        .map(|utc| utc.with_timezone(&London).date_naive())
        .unwrap_or_default()
}

/// Start of a Europe/London calendar day in UTC milliseconds (local midnight always exists in
/// Europe/London: the clocks change at 01:00 UTC).
pub fn local_midnight_ms(date: NaiveDate) -> TimeMs {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match London.from_local_datetime(&midnight).earliest() {
        Some(dt) => dt.timestamp_millis(),
        None => midnight.and_utc().timestamp_millis(),
    }
}

/// `[start, end)` of a Europe/London calendar day in UTC milliseconds: 23, 24 or 25 hours.
pub fn local_day_bounds(date: NaiveDate) -> (TimeMs, TimeMs) {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    (local_midnight_ms(date), local_midnight_ms(next))
}

/// Readings and device events seen during one day.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DayState {
    pub date: NaiveDate,
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
    slots: u128,
    pub readings: u32,
    /// A late reading fell in the day, or a late reading changed a finding overlapping it.
    pub late: bool,
    pub fitted: bool,
    pub removed: bool,
    /// Fingerprint of the record last emitted for this day (the record itself is not kept:
    /// a year of days per activation would cost more than the rest of the rule's state).
    pub emitted: Option<u64>,
}

impl DayState {
    fn new(date: NaiveDate) -> Self {
        let (start_ms, end_ms) = local_day_bounds(date);
        Self {
            date,
            start_ms,
            end_ms,
            slots: 0,
            readings: 0,
            late: false,
            fitted: false,
            removed: false,
            emitted: None,
        }
    }

    fn slot_count(&self, th: &Thresholds) -> u32 {
        let len_ms = self.end_ms - self.start_ms;
        ((len_ms + th.day_slot_ms - 1) / th.day_slot_ms).clamp(1, MAX_DAY_SLOTS as i64) as u32
    }

    /// Counts a TAC reading at `t_ms` (inside the day).
    pub fn add_reading(&mut self, th: &Thresholds, t_ms: TimeMs) {
        let slot = ((t_ms - self.start_ms) / th.day_slot_ms).clamp(0, MAX_DAY_SLOTS as i64 - 1);
        self.slots |= 1u128 << slot;
        self.readings += 1;
    }

    /// Covered slots in parts per million of the day's slots.
    fn coverage_ppm(&self, th: &Thresholds) -> i64 {
        self.slots.count_ones() as i64 * 1_000_000 / self.slot_count(th) as i64
    }
}

/// One alcohol order as seen by one activation: its monitored span and its days.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OrderDays {
    pub order_id: String,
    pub mode: AlcoholMode,
    /// The order's own span in UTC (order dates, abstinence cap applied), for gating alerts.
    pub span_from_ms: TimeMs,
    pub span_to_ms: TimeMs,
    /// First and last day classified for this activation (order ∩ activation).
    first: NaiveDate,
    last: Option<NaiveDate>,
    days: Vec<DayState>,
    /// `days[..settled]` have been emitted at least once.
    settled: usize,
    /// End of the next day to settle, when there is one.
    next_end_ms: Option<TimeMs>,
    /// The day last looked up by date, and its index.
    last_lookup: Option<(NaiveDate, usize)>,
}

impl OrderDays {
    /// `from` is the order's first local date and `order_last` its last monitored one
    /// (inclusive; see [`super::rule::monitored_last_day`]), `activation_*` the activation's UTC
    /// span.
    pub fn new(
        order_id: String,
        mode: AlcoholMode,
        from: NaiveDate,
        order_last: Option<NaiveDate>,
        activation_from_ms: TimeMs,
        activation_to_ms: Option<TimeMs>,
    ) -> Option<Self> {
        let span_from_ms = local_midnight_ms(from);
        let span_to_ms = order_last.map_or(TimeMs::MAX, |d| local_day_bounds(d).1);
        let first = from.max(local_date(activation_from_ms));
        let activation_last = activation_to_ms.map(|to| local_date(to - 1));
        let last = match (order_last, activation_last) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if last.is_some_and(|l| l < first) || activation_to_ms.is_some_and(|to| to <= span_from_ms)
        {
            return None;
        }
        Some(Self {
            order_id,
            mode,
            span_from_ms,
            span_to_ms,
            first,
            last,
            days: Vec::new(),
            settled: 0,
            next_end_ms: Some(local_day_bounds(first).1),
            last_lookup: None,
        })
    }

    pub fn covers(&self, t_ms: TimeMs) -> bool {
        t_ms >= self.span_from_ms && t_ms < self.span_to_ms
    }

    fn index_of(&self, date: NaiveDate) -> Option<usize> {
        if date < self.first || self.last.is_some_and(|l| date > l) {
            return None;
        }
        usize::try_from((date - self.first).num_days()).ok()
    }

    /// The state of `date`, created (with the days before it) if needed; `None` outside the
    /// order's days for this activation.
    pub fn day_mut(&mut self, date: NaiveDate) -> Option<(usize, &mut DayState)> {
        let i = match self.last_lookup {
            Some((d, i)) if d == date => i,
            _ => {
                let i = self.index_of(date)?;
                self.last_lookup = Some((date, i));
                i
            }
        };
        while self.days.len() <= i {
            let d = self
                .first
                .checked_add_days(Days::new(self.days.len() as u64))
                .unwrap_or(self.first);
            self.days.push(DayState::new(d));
        }
        Some((i, &mut self.days[i]))
    }

    pub fn day(&self, i: usize) -> &DayState {
        &self.days[i]
    }

    pub fn day_at_mut(&mut self, i: usize) -> &mut DayState {
        &mut self.days[i]
    }

    pub fn is_settled(&self, i: usize) -> bool {
        i < self.settled
    }

    /// Indices of settled days overlapping `[from_ms, to_ms)`.
    pub fn settled_overlapping(&self, from_ms: TimeMs, to_ms: TimeMs) -> std::ops::Range<usize> {
        let days = &self.days[..self.settled];
        let a = days.partition_point(|d| d.end_ms <= from_ms);
        let b = days.partition_point(|d| d.start_ms < to_ms);
        a..b.max(a)
    }

    /// When the next day is due to settle: its end plus the settle time, or plus the longer
    /// settle time while a possible drinking event that started before its end is undecided.
    pub fn next_due_ms(
        &self,
        th: &Thresholds,
        pending_since: Option<TimeMs>,
        reorder_ms: TimeMs,
    ) -> Option<TimeMs> {
        let end = self.next_end_ms?;
        let wait = if pending_since.is_some_and(|s| s < end) {
            th.max_settle_ms
        } else {
            th.settle_ms
        };
        Some(end.saturating_add(wait).saturating_add(reorder_ms))
    }

    /// The next day to settle if it is due at `clock_ms`; the caller classifies and emits it,
    /// then calls [`OrderDays::mark_settled`].
    pub fn due_day(
        &mut self,
        th: &Thresholds,
        clock_ms: TimeMs,
        pending_since: Option<TimeMs>,
        reorder_ms: TimeMs,
    ) -> Option<usize> {
        let due = self.next_due_ms(th, pending_since, reorder_ms)?;
        if clock_ms < due {
            return None;
        }
        let date = self
            .first
            .checked_add_days(Days::new(self.settled as u64))?;
        self.day_mut(date).map(|(i, _)| i)
    }

    pub fn mark_settled(&mut self) {
        self.settled += 1;
        let next = self.first.checked_add_days(Days::new(self.settled as u64));
        self.next_end_ms = next
            .filter(|d| self.last.is_none_or(|l| *d <= l))
            .map(|d| local_day_bounds(d).1);
    }
}

/// What a day's classification looks at besides the day's own readings.
pub struct DayContext<'a> {
    pub th: &'a Thresholds,
    pub activation_from_ms: TimeMs,
    pub activation_to_ms: Option<TimeMs>,
    /// Findings with the id of their alert, if one was raised.
    pub findings: &'a [(&'a Finding, Option<&'a str>)],
    /// Strap open → closed intervals (`None` = still open).
    pub straps: &'a [(TimeMs, Option<TimeMs>)],
    /// Effective end of findings still open (the newest reading analysed).
    pub open_until_ms: TimeMs,
    /// Start of an undecided possible drinking event, if any.
    pub pending_since: Option<TimeMs>,
}

/// Classifies one day: status, every reason that applies, and the overlapping alerts.
pub fn classify_day(
    cx: &DayContext<'_>,
    day: &DayState,
) -> (SoberDayStatus, Vec<DayReason>, Vec<String>) {
    let mut reasons = Vec::new();
    let mut alerts = Vec::new();
    let overlaps = |start: TimeMs, end: Option<TimeMs>| {
        let end = end.unwrap_or(cx.open_until_ms).max(start + 1);
        start < day.end_ms && end > day.start_ms
    };
    for (finding, alert) in cx.findings {
        if !overlaps(finding.start_ms, finding.end_ms) {
            continue;
        }
        reasons.push(match finding.kind {
            FindingKind::Drinking => DayReason::ConfirmedDrinking,
            FindingKind::Environmental => DayReason::EnvironmentalExposure,
            FindingKind::Unconfirmed => DayReason::UnconfirmedAlcohol,
            FindingKind::Obstruction => DayReason::Obstruction,
            FindingKind::Removal => DayReason::Removal,
        });
        if let Some(id) = alert {
            alerts.push(id.to_string());
        }
    }
    if cx
        .straps
        .iter()
        .any(|(open, close)| overlaps(*open, *close))
    {
        reasons.push(DayReason::StrapTamper);
    }
    if cx.pending_since.is_some_and(|s| s < day.end_ms) {
        reasons.push(DayReason::DecisionPending);
    }
    if day.readings == 0 {
        reasons.push(DayReason::NoReadings);
    }
    if cx.activation_from_ms > day.start_ms || day.fitted {
        reasons.push(DayReason::FittingDay);
    }
    if cx.activation_to_ms.is_some_and(|to| to < day.end_ms) || day.removed {
        reasons.push(DayReason::RemovalDay);
    }
    if day.readings > 0 && day.readings < cx.th.min_day_readings {
        reasons.push(DayReason::FewReadings);
    }
    if day.readings > 0 && day.coverage_ppm(cx.th) < cx.th.min_day_coverage_ppm {
        reasons.push(DayReason::LowCoverage);
    }
    reasons.sort();
    reasons.dedup();
    alerts.sort();
    alerts.dedup();
    let has = |r: DayReason| reasons.contains(&r);
    let status = if has(DayReason::ConfirmedDrinking) {
        SoberDayStatus::Drinking
    } else if has(DayReason::Obstruction) || has(DayReason::Removal) || has(DayReason::StrapTamper)
    {
        SoberDayStatus::Tamper
    } else if has(DayReason::NoReadings) {
        SoberDayStatus::NotWorn
    } else if has(DayReason::FittingDay)
        || has(DayReason::RemovalDay)
        || has(DayReason::FewReadings)
        || has(DayReason::LowCoverage)
    {
        SoberDayStatus::Partial
    } else {
        SoberDayStatus::Sober
    };
    (status, reasons, alerts)
}

/// A fingerprint of a day record, to tell whether it changed since it was last emitted.
pub fn record_fingerprint(day: &SoberDay) -> u64 {
    let mut h = DefaultHasher::new();
    day.activation.hash(&mut h);
    day.order.hash(&mut h);
    day.date.hash(&mut h);
    day.status.hash(&mut h);
    day.reasons.hash(&mut h);
    day.readings.hash(&mut h);
    day.coverage.to_bits().hash(&mut h);
    day.alerts.hash(&mut h);
    day.late.hash(&mut h);
    h.finish()
}

/// Coverage of a day as a fraction rounded to three decimals.
pub fn coverage_fraction(th: &Thresholds, day: &DayState) -> f64 {
    (day.coverage_ppm(th) as f64 / 1000.0).round() / 1000.0
}

/// Hours in a day's local length (23, 24 or 25).
pub fn day_hours(day: &DayState) -> u8 {
    ((day.end_ms - day.start_ms) / 3_600_000) as u8
}

/// Counts of days by status and the sober-day rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RateSummary {
    pub days: u32,
    /// `sober` + `drinking` + `tamper`: the days the rate is taken over.
    pub worn: u32,
    pub sober: u32,
    pub drinking: u32,
    pub tamper: u32,
    pub partial: u32,
    pub not_worn: u32,
    /// sober ÷ worn; `None` when no day was worn.
    pub rate: Option<f64>,
}

/// The sober-day rate of any set of days: one order's, or pooled across orders (a force, a
/// period, a cohort). Each day counts once however many times it was re-issued, so pass the
/// latest record per (activation, order, date), as the sober-day book holds them.
pub fn sober_day_rate(days: &[SoberDay]) -> RateSummary {
    let mut s = RateSummary::default();
    for day in days {
        s.days += 1;
        match day.status {
            SoberDayStatus::Sober => s.sober += 1,
            SoberDayStatus::Drinking => s.drinking += 1,
            SoberDayStatus::Tamper => s.tamper += 1,
            SoberDayStatus::Partial => s.partial += 1,
            SoberDayStatus::NotWorn => s.not_worn += 1,
        }
    }
    s.worn = s.sober + s.drinking + s.tamper;
    s.rate = (s.worn > 0).then(|| s.sober as f64 / s.worn as f64);
    s
}

/// The sober-day rate of each order in `days`.
pub fn sober_day_rates_by_order(days: &[SoberDay]) -> BTreeMap<String, RateSummary> {
    let mut by_order: BTreeMap<String, Vec<SoberDay>> = BTreeMap::new();
    for day in days {
        by_order
            .entry(day.order.clone())
            .or_default()
            .push(day.clone());
    }
    by_order
        .into_iter()
        .map(|(order, days)| (order, sober_day_rate(&days)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn local_days_are_23_24_and_25_hours_around_the_clock_changes() {
        let hours = |d: &str| {
            let (a, b) = local_day_bounds(date(d));
            (b - a) / 3_600_000
        };
        assert_eq!(hours("2026-03-28"), 24);
        assert_eq!(hours("2026-03-29"), 23);
        assert_eq!(hours("2026-10-25"), 25);
        // BST: local midnight is 23:00 UTC the day before.
        let (start, _) = local_day_bounds(date("2017-05-03"));
        assert_eq!(
            crate::model::time::format_time(start),
            "2017-05-02T23:00:00Z"
        );
        assert_eq!(local_date(start), date("2017-05-03"));
        assert_eq!(local_date(start - 1), date("2017-05-02"));
    }

    #[test]
    fn order_days_respect_the_monitored_span_and_the_activation() {
        let from = date("2026-01-01");
        let act_from = local_midnight_ms(date("2025-12-01"));
        let o = OrderDays::new(
            "O".into(),
            AlcoholMode::Abstinence,
            from,
            Some(date("2026-04-30")),
            act_from,
            None,
        )
        .unwrap();
        assert_eq!(o.last, Some(date("2026-04-30")));
        assert_eq!(o.span_to_ms, local_midnight_ms(date("2026-05-01")));
        let act_to = local_midnight_ms(date("2026-02-10")) + 3_600_000;
        let o = OrderDays::new(
            "O".into(),
            AlcoholMode::Level,
            from,
            Some(date("2026-06-30")),
            act_from,
            Some(act_to),
        )
        .unwrap();
        assert_eq!(o.last, Some(date("2026-02-10")));
        assert!(OrderDays::new(
            "O".into(),
            AlcoholMode::Level,
            from,
            None,
            act_from,
            Some(act_from + 1)
        )
        .is_none());
    }

    #[test]
    fn rate_counts_sober_over_worn_days() {
        let day = |status| SoberDay {
            activation: "A".into(),
            order: "O".into(),
            date: date("2026-01-01"),
            status,
            reasons: vec![],
            person: "P".into(),
            mode: AlcoholMode::Abstinence,
            readings: 48,
            coverage: 1.0,
            day_hours: 24,
            alerts: vec![],
            late: false,
            rule: "alcohol/1".into(),
            config_version: "x".into(),
            withdrawn: None,
            amended_by: None,
        };
        use SoberDayStatus::*;
        let days: Vec<SoberDay> = [Sober, Sober, Sober, Drinking, Tamper, Partial, NotWorn]
            .into_iter()
            .map(day)
            .collect();
        let s = sober_day_rate(&days);
        assert_eq!(
            (s.days, s.worn, s.sober, s.partial, s.not_worn),
            (7, 5, 3, 1, 1)
        );
        assert_eq!(s.rate, Some(0.6));
        assert_eq!(sober_day_rate(&[]).rate, None);
        assert_eq!(sober_day_rates_by_order(&days)["O"], s);
    }
}
