//! Time helpers: UTC milliseconds inside, Europe/London only where local time is meant (curfew and
//! zone timetables, daily routines, order dates).

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::London;
use std::sync::OnceLock;
use tagstream::model::{Day, TimeMs};

pub const SECOND_MS: i64 = 1000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// UTC instant of a UK local date and minutes after local midnight (minutes may exceed 24 h,
/// rolling into following days). In the spring-forward gap the later valid instant is used; in the
/// autumn overlap the earlier.
pub fn local_to_utc_ms(date: NaiveDate, minutes: i64) -> TimeMs {
    let days = minutes.div_euclid(24 * 60);
    let m = minutes.rem_euclid(24 * 60);
    let date = date + chrono::Duration::days(days);
    let time = NaiveTime::from_hms_opt((m / 60) as u32, (m % 60) as u32, 0).unwrap_or_default();
    let naive = date.and_time(time);
    match London.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
        chrono::LocalResult::None => {
            // Spring-forward gap: the clock jumps an hour; the same wall time an hour later exists.
            let later = naive + chrono::Duration::hours(1);
            London
                .from_local_datetime(&later)
                .earliest()
                .map_or(0, |t| t.timestamp_millis())
        }
    }
}

/// The Europe/London UTC offset, by chrono-tz, uncached.
fn london_offset_ms_slow(t_ms: TimeMs) -> i64 {
    Utc.timestamp_millis_opt(t_ms)
        .single()
        .map(|t| {
            let l = t.with_timezone(&London).naive_local();
            l.and_utc().timestamp_millis() - t_ms
        })
        .unwrap_or(0)
}

/// Europe/London offset changes 2000–2100 as (instant, offset from then on), found once with
/// chrono-tz: the simulator asks for local time millions of times a second.
fn offset_table() -> &'static [(TimeMs, i64)] {
    static TABLE: OnceLock<Vec<(TimeMs, i64)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let from = 946_684_800_000; // 2000-01-01
        let to = 4_102_444_800_000; // 2100-01-01
        let mut table = vec![(from, london_offset_ms_slow(from))];
        let mut t = from;
        while t < to {
            let next = t + DAY_MS;
            let off = london_offset_ms_slow(next);
            if off != table.last().map_or(0, |x| x.1) {
                // Narrow the change down to the minute.
                let (mut lo, mut hi) = (t, next);
                while hi - lo > MINUTE_MS {
                    let mid = lo + (hi - lo) / 2 / MINUTE_MS * MINUTE_MS;
                    let mid = if mid == lo { lo + MINUTE_MS } else { mid };
                    if london_offset_ms_slow(mid) == off {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                table.push((hi, off));
            }
            t = next;
        }
        table
    })
}

/// The Europe/London offset from UTC at an instant (milliseconds).
#[inline]
pub fn london_offset_ms(t_ms: TimeMs) -> i64 {
    let table = offset_table();
    if t_ms < table[0].0 || t_ms >= 4_102_444_800_000 {
        return london_offset_ms_slow(t_ms);
    }
    let i = table.partition_point(|x| x.0 <= t_ms);
    table[i - 1].1
}

/// UK local date of an instant.
#[inline]
pub fn local_date(t_ms: TimeMs) -> NaiveDate {
    let days = (t_ms + london_offset_ms(t_ms)).div_euclid(DAY_MS);
    NaiveDate::from_num_days_from_ce_opt(days as i32 + 719_163).unwrap_or_default()
}

/// UK local minutes after local midnight of an instant.
#[inline]
pub fn local_minutes(t_ms: TimeMs) -> i64 {
    (t_ms + london_offset_ms(t_ms)).rem_euclid(DAY_MS) / MINUTE_MS
}

/// The contract weekday of a date.
pub fn day_of(date: NaiveDate) -> Day {
    match date.weekday() {
        Weekday::Mon => Day::Mon,
        Weekday::Tue => Day::Tue,
        Weekday::Wed => Day::Wed,
        Weekday::Thu => Day::Thu,
        Weekday::Fri => Day::Fri,
        Weekday::Sat => Day::Sat,
        Weekday::Sun => Day::Sun,
    }
}

/// Monday = 0 … Sunday = 6.
pub fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

/// A bit mask over weekdays (bit 0 = Monday).
pub fn day_mask(days: &[Day]) -> u8 {
    days.iter().fold(0, |m, d| m | (1 << (*d as u8)))
}

pub fn ymd_compact(date: NaiveDate) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_offsets_follow_dst() {
        let winter = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
        let summer = NaiveDate::from_ymd_opt(2026, 3, 30).expect("date");
        let w = local_to_utc_ms(winter, 19 * 60);
        let s = local_to_utc_ms(summer, 19 * 60);
        assert_eq!(
            tagstream::model::time::format_time(w),
            "2026-03-02T19:00:00Z"
        );
        assert_eq!(
            tagstream::model::time::format_time(s),
            "2026-03-30T18:00:00Z"
        );
        assert_eq!(local_minutes(s), 19 * 60);
        assert_eq!(local_date(s), summer);
        assert_eq!(day_of(winter), Day::Mon);
        // The cached offsets agree with chrono-tz minute by minute around both 2026 changes.
        for start in [1_774_742_400_000i64, 1_792_886_400_000] {
            for k in 0..(3 * 24 * 60) {
                let t = start + k * MINUTE_MS;
                assert_eq!(london_offset_ms(t), london_offset_ms_slow(t), "{t}");
                let l = Utc
                    .timestamp_millis_opt(t)
                    .single()
                    .expect("t")
                    .with_timezone(&London);
                assert_eq!(local_date(t), l.date_naive());
            }
        }
        // 01:30 on the spring-forward day does not exist locally; it maps to 02:30 BST = 01:30Z.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29).expect("date");
        assert_eq!(
            tagstream::model::time::format_time(local_to_utc_ms(gap, 90)),
            "2026-03-29T01:30:00Z"
        );
    }
}
