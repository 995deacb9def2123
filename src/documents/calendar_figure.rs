//! The sober-day calendar: the period's days as month blocks (Monday to Sunday columns, four
//! months a row), each day coloured by its status with a letter for readers in greyscale, and a
//! legend with the count of each status. Hand-written SVG; the same days give the same bytes.

use crate::model::SoberDayStatus;
use crate::rules::alcohol::chart::status_colour;
use chrono::{Datelike, Days, NaiveDate};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the calendar shows for one day of the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarStatus {
    Sober,
    Drinking,
    Tamper,
    Partial,
    NotWorn,
    /// No day record yet: the day has not been settled (data may still come).
    AwaitingData,
}

impl CalendarStatus {
    pub fn of(status: SoberDayStatus) -> CalendarStatus {
        match status {
            SoberDayStatus::Sober => CalendarStatus::Sober,
            SoberDayStatus::Drinking => CalendarStatus::Drinking,
            SoberDayStatus::Tamper => CalendarStatus::Tamper,
            SoberDayStatus::Partial => CalendarStatus::Partial,
            SoberDayStatus::NotWorn => CalendarStatus::NotWorn,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            CalendarStatus::Sober => "Sober",
            CalendarStatus::Drinking => "Drinking",
            CalendarStatus::Tamper => "Tamper",
            CalendarStatus::Partial => "Partial",
            CalendarStatus::NotWorn => "Not worn",
            CalendarStatus::AwaitingData => "Awaiting data",
        }
    }

    /// The letter printed in the day's cell (none for sober days).
    fn letter(self) -> &'static str {
        match self {
            CalendarStatus::Sober => "",
            CalendarStatus::Drinking => "D",
            CalendarStatus::Tamper => "T",
            CalendarStatus::Partial => "P",
            CalendarStatus::NotWorn => "N",
            CalendarStatus::AwaitingData => "?",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            CalendarStatus::AwaitingData => "#ffffff",
            CalendarStatus::Sober => status_colour(SoberDayStatus::Sober),
            CalendarStatus::Drinking => status_colour(SoberDayStatus::Drinking),
            CalendarStatus::Tamper => status_colour(SoberDayStatus::Tamper),
            CalendarStatus::Partial => status_colour(SoberDayStatus::Partial),
            CalendarStatus::NotWorn => status_colour(SoberDayStatus::NotWorn),
        }
    }

    const ALL: [CalendarStatus; 6] = [
        CalendarStatus::Sober,
        CalendarStatus::Drinking,
        CalendarStatus::Tamper,
        CalendarStatus::Partial,
        CalendarStatus::NotWorn,
        CalendarStatus::AwaitingData,
    ];
}

const CELL: f64 = 19.0;
const MONTH_GAP: f64 = 16.0;
const MONTHS_PER_ROW: usize = 4;
const MONTH_W: f64 = 7.0 * CELL;
const MONTH_H: f64 = 18.0 + 12.0 + 6.0 * CELL;
const LEGEND_H: f64 = 34.0;

/// The calendar of `days` (one status per date, in date order, every date of the period).
pub fn calendar_svg(days: &[(NaiveDate, CalendarStatus)]) -> String {
    let mut months: BTreeMap<(i32, u32), Vec<(NaiveDate, CalendarStatus)>> = BTreeMap::new();
    for (date, status) in days {
        months
            .entry((date.year(), date.month()))
            .or_default()
            .push((*date, *status));
    }
    let rows = months.len().div_ceil(MONTHS_PER_ROW).max(1);
    let width = MONTHS_PER_ROW as f64 * MONTH_W + (MONTHS_PER_ROW - 1) as f64 * MONTH_GAP;
    let height = rows as f64 * (MONTH_H + MONTH_GAP) + LEGEND_H;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans" font-size="8"><rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    for (i, ((year, month), month_days)) in months.iter().enumerate() {
        let left = (i % MONTHS_PER_ROW) as f64 * (MONTH_W + MONTH_GAP);
        let top = (i / MONTHS_PER_ROW) as f64 * (MONTH_H + MONTH_GAP);
        let first = NaiveDate::from_ymd_opt(*year, *month, 1).unwrap_or_default();
        let _ = write!(
            svg,
            r#"<text x="{left}" y="{:.1}" font-size="10" font-weight="bold">{}</text>"#,
            top + 12.0,
            first.format("%B %Y")
        );
        for (col, name) in ["M", "T", "W", "T", "F", "S", "S"].iter().enumerate() {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555555">{name}</text>"##,
                left + (col as f64 + 0.5) * CELL,
                top + 26.0
            );
        }
        let offset = first.weekday().num_days_from_monday() as u64;
        for (date, status) in month_days {
            let n = offset + u64::from(date.day0());
            let (col, row) = ((n % 7) as f64, (n / 7) as f64);
            let (x, y) = (left + col * CELL, top + 30.0 + row * CELL);
            let dash = if *status == CalendarStatus::AwaitingData {
                r#" stroke-dasharray="2,1.5""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="#777777" stroke-width="0.5"{dash}/><text x="{:.1}" y="{:.1}" font-size="6.5">{}</text><text x="{:.1}" y="{:.1}" font-size="7" font-weight="bold" text-anchor="end">{}</text>"##,
                x + 0.75,
                y + 0.75,
                CELL - 1.5,
                CELL - 1.5,
                status.fill(),
                x + 2.0,
                y + 7.5,
                date.day(),
                x + CELL - 2.5,
                y + CELL - 3.0,
                status.letter()
            );
        }
    }
    let mut counts: BTreeMap<CalendarStatus, usize> = BTreeMap::new();
    for (_, status) in days {
        *counts.entry(*status).or_default() += 1;
    }
    let legend_top = rows as f64 * (MONTH_H + MONTH_GAP) + 4.0;
    let step = width / CalendarStatus::ALL.len() as f64;
    for (i, status) in CalendarStatus::ALL.iter().enumerate() {
        let x = i as f64 * step;
        let dash = if *status == CalendarStatus::AwaitingData {
            r#" stroke-dasharray="2,1.5""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{legend_top:.1}" width="12" height="12" fill="{}" stroke="#777777" stroke-width="0.5"{dash}/><text x="{:.1}" y="{:.1}" font-size="5.5" font-weight="bold" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" font-size="8">{} ({})</text>"##,
            status.fill(),
            x + 6.0,
            legend_top + 8.5,
            status.letter(),
            x + 16.0,
            legend_top + 9.5,
            status.words(),
            counts.get(status).copied().unwrap_or(0)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Every date from `from` to `to` inclusive.
pub fn dates(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    let count = (to - from).num_days().max(-1) + 1;
    (0..count as u64).filter_map(move |i| from.checked_add_days(Days::new(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn every_day_is_one_cell_and_the_legend_counts_them() {
        let days: Vec<(NaiveDate, CalendarStatus)> = dates(date("2026-01-30"), date("2026-03-02"))
            .enumerate()
            .map(|(i, d)| (d, CalendarStatus::ALL[i % 6]))
            .collect();
        assert_eq!(days.len(), 32);
        let svg = calendar_svg(&days);
        let doc = roxmltree::Document::parse(&svg).expect("the calendar is XML");
        let cells = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("width") == Some("17.5"))
            .count();
        assert_eq!(cells, 32);
        for month in ["January 2026", "February 2026", "March 2026"] {
            assert!(svg.contains(month), "{month}");
        }
        assert!(svg.contains("Awaiting data (5)"), "{svg}");
        assert!(svg.contains("Sober (6)"));
        assert_eq!(svg, calendar_svg(&days));
        assert_eq!(dates(date("2026-01-02"), date("2026-01-01")).count(), 0);
    }
}
