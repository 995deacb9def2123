//! UK local time (Europe/London) for the rules that are written in it: curfew timetables, zone
//! schedules and order dates. Everything else in tagstream is UTC milliseconds.
//!
//! Owns the two conversions and the one rule for the clock changes:
//! - a local time that does not exist (the spring-forward gap, 01:00–02:00 on the last Sunday of
//!   March) is read as the same wall time one hour later (01:30 → 02:30 BST), the time a clock that
//!   was not put forward would show;
//! - a local time that exists twice (01:00–02:00 on the last Sunday of October) is the earlier
//!   (BST) instant.
//!
//! A window whose ends are converted this way has its true length in real time: 19:00–07:00 over
//! the spring change is 11 hours, over the autumn change 13 hours. [`SlotCalendar`] expands weekly
//! slots (days, start, end) into concrete UTC intervals, lazily, date by date.

use crate::model::{parse_local_hhmm, Day, TimeMs};
use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::London;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// Why a local-time specification could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocalTimeError {
    #[error("{field}: {message}")]
    BadTime { field: String, message: String },
    #[error("{field}: no days")]
    NoDays { field: String },
}

/// The UTC instant of `minutes` after local midnight of `date` (minutes may run past 24 h into
/// the following days). Gap and overlap resolved as the module doc says.
pub fn local_to_utc_ms(date: NaiveDate, minutes: i64) -> TimeMs {
    let date = date + Duration::days(minutes.div_euclid(24 * 60));
    let m = minutes.rem_euclid(24 * 60);
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(m);
    resolve(naive)
}

fn resolve(naive: NaiveDateTime) -> TimeMs {
    match London.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        LocalResult::None => {
            let later = naive + Duration::hours(1);
            match London.from_local_datetime(&later).earliest() {
                Some(t) => t.timestamp_millis(),
                // Not reachable for Europe/London; fall back to reading the time as UTC.
                None => naive.and_utc().timestamp_millis(),
            }
        }
    }
}

/// The offset of Europe/London from UTC at `t_ms`, in milliseconds.
pub fn london_offset_ms(t_ms: TimeMs) -> i64 {
    match Utc.timestamp_millis_opt(t_ms) {
        LocalResult::Single(t) => {
            t.with_timezone(&London)
                .naive_local()
                .and_utc()
                .timestamp_millis()
                - t_ms
        }
        _ => 0,
    }
}

/// The UK local date of an instant.
pub fn local_date(t_ms: TimeMs) -> NaiveDate {
    let days = (t_ms + london_offset_ms(t_ms)).div_euclid(DAY_MS);
    NaiveDate::from_num_days_from_ce_opt(days as i32 + 719_163).unwrap_or_default()
}

/// The UTC instant at which UK local date `date` begins.
pub fn local_midnight_ms(date: NaiveDate) -> TimeMs {
    local_to_utc_ms(date, 0)
}

/// Monday = 0 … Sunday = 6.
pub fn day_index(day: Day) -> u8 {
    match day {
        Day::Mon => 0,
        Day::Tue => 1,
        Day::Wed => 2,
        Day::Thu => 3,
        Day::Fri => 4,
        Day::Sat => 5,
        Day::Sun => 6,
    }
}

/// A weekly local-time slot: on each of `days` (bit 0 = Monday), from `start_min` to `end_min`
/// minutes after local midnight; an end not after the start runs into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySlot {
    pub days_mask: u8,
    pub start_min: u32,
    pub end_min: u32,
    /// Caller's tag (the curfew address index; 0 for zone schedules).
    pub tag: usize,
}

impl WeeklySlot {
    /// Parses a contract entry (`days`, `"HH:MM"`, `"HH:MM"`); `field` names it in errors.
    pub fn parse(
        days: &[Day],
        start: &str,
        end: &str,
        tag: usize,
        field: &str,
    ) -> Result<Self, LocalTimeError> {
        let bad = |which: &str, message: String| LocalTimeError::BadTime {
            field: format!("{field}.{which}"),
            message,
        };
        let start_min = parse_local_hhmm(start).map_err(|m| bad("start", m))?;
        let end_min = parse_local_hhmm(end).map_err(|m| bad("end", m))?;
        let days_mask = days.iter().fold(0u8, |m, d| m | (1 << day_index(*d)));
        if days_mask == 0 {
            return Err(LocalTimeError::NoDays {
                field: field.to_string(),
            });
        }
        Ok(Self {
            days_mask,
            start_min,
            end_min,
            tag,
        })
    }

    /// Minutes after local midnight of the start date at which the slot ends.
    fn end_offset_min(&self) -> u32 {
        if self.end_min > self.start_min {
            self.end_min
        } else {
            self.end_min + 24 * 60
        }
    }

    /// The concrete interval of this slot starting on `date`, if the slot runs that weekday.
    pub fn on(&self, date: NaiveDate) -> Option<Interval> {
        let wd = date.weekday().num_days_from_monday();
        if self.days_mask & (1 << wd) == 0 {
            return None;
        }
        Some(Interval {
            start_ms: local_to_utc_ms(date, self.start_min as i64),
            end_ms: local_to_utc_ms(date, self.end_offset_min() as i64),
            date,
            tag: self.tag,
        })
    }
}

/// A concrete UTC interval `[start_ms, end_ms)` from a slot starting on local `date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
    pub date: NaiveDate,
    pub tag: usize,
}

/// Expands weekly slots into intervals in start order, one local date at a time, between
/// optional first and last dates. Intervals with the same tag that overlap or touch are merged.
#[derive(Debug, Clone)]
pub struct SlotCalendar {
    slots: Vec<WeeklySlot>,
    next_date: NaiveDate,
    last_date: Option<NaiveDate>,
    /// Generated, not yet taken, sorted by start.
    pending: Vec<Interval>,
}

impl SlotCalendar {
    pub fn new(
        slots: Vec<WeeklySlot>,
        first_date: NaiveDate,
        last_date: Option<NaiveDate>,
    ) -> Self {
        Self {
            slots,
            next_date: first_date,
            last_date,
            pending: Vec::new(),
        }
    }

    /// Where the calendar stands (its slots and last date are configuration): the next date
    /// to generate and the intervals generated but not taken, for snapshots.
    pub fn position(&self) -> (NaiveDate, Vec<Interval>) {
        (self.next_date, self.pending.clone())
    }

    /// Resumes from a [`Self::position`] of a calendar built from the same slots and dates.
    pub fn resume_at(&mut self, next_date: NaiveDate, pending: Vec<Interval>) {
        self.next_date = next_date;
        self.pending = pending;
    }

    fn exhausted(&self) -> bool {
        self.slots.is_empty() || self.last_date.is_some_and(|last| self.next_date > last)
    }

    fn generate_date(&mut self) {
        let date = self.next_date;
        for slot in &self.slots {
            if let Some(iv) = slot.on(date) {
                if iv.end_ms > iv.start_ms {
                    let at = self.pending.partition_point(|p| p.start_ms <= iv.start_ms);
                    self.pending.insert(at, iv);
                }
            }
        }
        self.next_date = date.succ_opt().unwrap_or(date);
    }

    /// Generates dates until every interval starting at or before `t_ms` is pending.
    fn generate_through(&mut self, t_ms: TimeMs) {
        // Intervals of date d start at or after local midnight of d.
        while !self.exhausted() && local_midnight_ms(self.next_date) <= t_ms {
            self.generate_date();
        }
    }

    /// The next interval (merged with any same-tag intervals it overlaps or touches).
    pub fn next_interval(&mut self) -> Option<Interval> {
        // A week without any slot day cannot happen (every slot has a day), so this ends.
        let mut guard = 0;
        while self.pending.is_empty() && !self.exhausted() && guard < 8 {
            self.generate_date();
            guard += 1;
        }
        if self.pending.is_empty() {
            return None;
        }
        let mut head = self.pending.remove(0);
        loop {
            self.generate_through(head.end_ms);
            let Some(i) = self
                .pending
                .iter()
                .position(|p| p.tag == head.tag && p.start_ms <= head.end_ms)
            else {
                break;
            };
            let other = self.pending.remove(i);
            head.end_ms = head.end_ms.max(other.end_ms);
        }
        Some(head)
    }
}

/// Whether `t_ms` falls in any of the slots (weekly local-time schedule test), computed directly:
/// the local weekday and minute of `t_ms`, and the previous day for overnight slots.
pub fn in_weekly_slots(slots: &[WeeklySlot], t_ms: TimeMs) -> bool {
    let local_ms = t_ms + london_offset_ms(t_ms);
    let days = local_ms.div_euclid(DAY_MS);
    let minute = (local_ms.rem_euclid(DAY_MS) / MINUTE_MS) as u32;
    // 1970-01-01 was a Thursday (index 3).
    let wd = (days + 3).rem_euclid(7) as u8;
    let prev = (wd + 6) % 7;
    slots.iter().any(|s| {
        if s.end_min > s.start_min {
            s.days_mask & (1 << wd) != 0 && minute >= s.start_min && minute < s.end_min
        } else {
            (s.days_mask & (1 << wd) != 0 && minute >= s.start_min)
                || (s.days_mask & (1 << prev) != 0 && minute < s.end_min)
        }
    })
}

/// The interval of any of `slots` that contains `t_ms` (the latest-ending one if several do).
pub fn slot_interval_at(slots: &[WeeklySlot], t_ms: TimeMs) -> Option<Interval> {
    let date = local_date(t_ms);
    let dates = [date.pred_opt().unwrap_or(date), date];
    slots
        .iter()
        .flat_map(|s| dates.iter().filter_map(move |d| s.on(*d)))
        .filter(|iv| iv.start_ms <= t_ms && t_ms < iv.end_ms)
        .max_by_key(|iv| iv.end_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::{format_time, parse_time};

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn clock_changes_resolve_by_the_documented_rule() {
        // Spring 2026: 29 March, 01:00 GMT → 02:00 BST.
        assert_eq!(
            format_time(local_to_utc_ms(d("2026-03-29"), 90)),
            "2026-03-29T01:30:00Z"
        );
        assert_eq!(
            format_time(local_to_utc_ms(d("2026-03-29"), 60)),
            "2026-03-29T01:00:00Z"
        );
        // Autumn 2026: 25 October, 02:00 BST → 01:00 GMT; 01:30 happens twice, the first is used.
        assert_eq!(
            format_time(local_to_utc_ms(d("2026-10-25"), 90)),
            "2026-10-25T00:30:00Z"
        );
        assert_eq!(
            format_time(local_to_utc_ms(d("2026-10-24"), 19 * 60)),
            "2026-10-24T18:00:00Z"
        );
    }

    #[test]
    fn overnight_windows_have_their_real_length_across_both_changes() {
        let slot = WeeklySlot::parse(&[Day::Sat], "19:00", "07:00", 0, "t").unwrap();
        let spring = slot.on(d("2026-03-28")).unwrap();
        assert_eq!(spring.end_ms - spring.start_ms, 11 * 3_600_000);
        let autumn = slot.on(d("2026-10-24")).unwrap();
        assert_eq!(autumn.end_ms - autumn.start_ms, 13 * 3_600_000);
    }

    #[test]
    fn calendar_merges_touching_slots_and_schedule_test_matches() {
        let slots = vec![
            WeeklySlot::parse(&[Day::Mon], "19:00", "23:00", 0, "a").unwrap(),
            WeeklySlot::parse(&[Day::Mon], "23:00", "07:00", 0, "b").unwrap(),
        ];
        let mut cal = SlotCalendar::new(slots.clone(), d("2026-03-02"), Some(d("2026-03-09")));
        let first = cal.next_interval().unwrap();
        assert_eq!(format_time(first.start_ms), "2026-03-02T19:00:00Z");
        assert_eq!(format_time(first.end_ms), "2026-03-03T07:00:00Z");
        let second = cal.next_interval().unwrap();
        assert_eq!(second.date, d("2026-03-09"));
        assert!(cal.next_interval().is_none());
        assert!(in_weekly_slots(
            &slots,
            parse_time("2026-03-03T06:59:00Z").unwrap()
        ));
        assert!(!in_weekly_slots(
            &slots,
            parse_time("2026-03-03T07:00:00Z").unwrap()
        ));
        assert!(!in_weekly_slots(
            &slots,
            parse_time("2026-03-04T06:00:00Z").unwrap()
        ));
        assert_eq!(
            local_date(parse_time("2026-06-01T23:30:00Z").unwrap()),
            d("2026-06-02")
        );
    }
}
