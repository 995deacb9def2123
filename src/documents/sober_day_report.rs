//! The sober-day report: one person's alcohol order over a period, for the practitioner. It
//! holds the calendar of the period's days coloured by status, the sober-day rate and how it
//! is computed, the days not worn and the partial days, and each drinking event and tamper
//! (the alcohol alerts) with its TAC, IR and temperature chart from 12 h before to 12 h after.
//! PDF, JSON of the same content, and a manifest, as the hit pack.

use super::calendar_figure::{calendar_svg, dates, CalendarStatus};
use super::layout::{render, Block, Document, Figure, Table};
use super::manifest::{sha256_hex, Manifest, ManifestFile};
use super::text;
use super::DocumentError;
use crate::model::time::format_time;
use crate::model::{
    Alert, AlertType, Condition, DayReason, Order, Person, SoberDay, SoberDayStatus, TacSample,
    TimeMs,
};
use crate::rules::alcohol::{sober_day_rate, tac_chart_svg, RateSummary};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Bumped whenever the report's layout or content changes.
pub const LAYOUT_VERSION: u32 = 2;

/// How far before an event's start and after its end its chart reaches.
pub const EVENT_MARGIN_MS: TimeMs = 12 * 3_600_000;

/// How the rate is computed, in the words of `rules::alcohol::sober_days`.
pub const RATE_DEFINITION: &str = "Sober-day rate = sober days ÷ days worn. Days worn are the \
sober, drinking and tamper days: the bracelet was on and the whole day was judged. Partial days \
(the fitting or removal day, fewer readings than required, or less of the day covered by readings \
than required) and days not worn (no reading at all) are left out of both counts: they were not \
monitored as whole days. Gaps in the readings count as not monitored, never as sober. Each day \
is a UK calendar day (23, 24 or 25 hours around the clock changes). Days awaiting data have no \
record yet and are not counted.";

/// One alcohol alert and the readings its chart draws.
#[derive(Clone, Debug)]
pub struct AlcoholEvent {
    pub alert: Alert,
    pub window_from_ms: TimeMs,
    pub window_to_ms: TimeMs,
    /// The activation's TAC readings in the window, in event-time order.
    pub readings: Vec<(TimeMs, TacSample)>,
}

/// What the report is built from, as the stores hold it (see `sources::SoberDaySources`).
pub struct SoberDayReportInput<'a> {
    pub person: &'a Person,
    pub order: &'a Order,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The order's last monitored day: its end, or the AAMR's 120th day when that comes first.
    pub monitored_to: Option<NaiveDate>,
    /// The last UK date any data of the order reached (a day record or a TAC reading).
    pub data_through: Option<NaiveDate>,
    /// The order's day records in the period, every activation, withdrawn ones included.
    pub days: &'a [SoberDay],
    /// The alcohol alerts of the order overlapping the period that still hold.
    pub events: &'a [AlcoholEvent],
    /// Ids of the alcohol alerts in the period that were withdrawn.
    pub withdrawn_alerts: &'a [String],
}

/// The report's content: the JSON file, and what the PDF lays out.
#[derive(Serialize)]
pub struct SoberDayReport {
    pub document: &'static str,
    pub layout_version: u32,
    pub generator: String,
    pub person: Value,
    pub order: Value,
    pub period: Value,
    pub rate: Value,
    pub calendar: Vec<Value>,
    pub days: Vec<Value>,
    pub awaiting_data: Vec<String>,
    pub events: Vec<Value>,
    pub withdrawn: Value,
}

/// The three files of a report.
pub struct SoberDayReportFiles {
    pub pdf: Vec<u8>,
    pub json: Vec<u8>,
    pub manifest: Manifest,
    /// `<person>-<order>-sober-days-<from>-<to>`: the files' names start with it.
    pub base_name: String,
}

impl SoberDayReportFiles {
    pub fn manifest_name(&self) -> String {
        format!("{}-manifest.json", self.base_name)
    }

    /// The PDF, the JSON and the manifest, each with its file name.
    pub fn into_named(self) -> [(String, Vec<u8>); 3] {
        let manifest_name = self.manifest_name();
        [
            (self.manifest.files[0].name.clone(), self.pdf),
            (self.manifest.files[1].name.clone(), self.json),
            (manifest_name, self.manifest.to_bytes()),
        ]
    }
}

/// A name safe in a file name (ids are free text).
fn file_part(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect()
}

fn alcohol_words(order: &Order) -> String {
    order
        .conditions
        .iter()
        .find_map(|c| match c {
            Condition::Alcohol(a) => Some(format!(
                "{} ({})",
                match a.mode {
                    crate::model::AlcoholMode::Abstinence => "abstinence",
                    crate::model::AlcoholMode::Level => "monitoring of the level of drinking",
                },
                match a.requirement {
                    Some(crate::model::AlcoholRequirement::Aamr) => "AAMR",
                    Some(crate::model::AlcoholRequirement::Aml) => "AML",
                    None => match a.mode {
                        crate::model::AlcoholMode::Abstinence => "AAMR",
                        crate::model::AlcoholMode::Level => "AML",
                    },
                }
            )),
            _ => None,
        })
        .unwrap_or_else(|| "no alcohol condition".into())
}

pub fn reason_words(reason: DayReason) -> &'static str {
    match reason {
        DayReason::ConfirmedDrinking => "confirmed drinking",
        DayReason::Obstruction => "obstruction of the sensor",
        DayReason::Removal => "bracelet removal",
        DayReason::StrapTamper => "strap tamper",
        DayReason::NoReadings => "no readings",
        DayReason::FittingDay => "fitting day",
        DayReason::RemovalDay => "removal day",
        DayReason::FewReadings => "too few readings",
        DayReason::LowCoverage => "too little of the day covered",
        DayReason::EnvironmentalExposure => "environmental exposure (not drinking)",
        DayReason::UnconfirmedAlcohol => "alcohol seen, not confirmed",
        DayReason::DecisionPending => "a drinking decision was pending",
    }
}

fn alert_words(alert_type: AlertType) -> &'static str {
    match alert_type {
        AlertType::DrinkingEvent => "Confirmed drinking event",
        AlertType::AlcoholObstruction => "Tamper: obstruction of the sensor",
        AlertType::AlcoholRemoval => "Tamper: bracelet removal",
        AlertType::EnvironmentalAlcohol => "Environmental alcohol exposure (not drinking)",
        _ => "Alert",
    }
}

/// A day's status as the calendar shows it: of the records that hold for the date (one per
/// activation; two on a tag change), the one first in the classification order.
fn calendar(input: &SoberDayReportInput) -> Vec<(NaiveDate, CalendarStatus)> {
    let rank = |s: SoberDayStatus| match s {
        SoberDayStatus::Drinking => 0,
        SoberDayStatus::Tamper => 1,
        SoberDayStatus::NotWorn => 2,
        SoberDayStatus::Partial => 3,
        SoberDayStatus::Sober => 4,
    };
    let mut by_date: BTreeMap<NaiveDate, SoberDayStatus> = BTreeMap::new();
    for d in input.days.iter().filter(|d| d.withdrawn.is_none()) {
        by_date
            .entry(d.date)
            .and_modify(|s| {
                if rank(d.status) < rank(*s) {
                    *s = d.status;
                }
            })
            .or_insert(d.status);
    }
    dates(input.from, input.to)
        .map(|date| {
            let status = by_date
                .get(&date)
                .map_or(CalendarStatus::AwaitingData, |s| CalendarStatus::of(*s));
            (date, status)
        })
        .collect()
}

/// The span the order is monitored for, and why it ends when the AAMR's cap ends it.
fn monitored_words(input: &SoberDayReportInput) -> String {
    let order = input.order;
    let Some(last) = input.monitored_to else {
        return format!(
            "from {} while the order runs",
            order.from.format("%d %b %Y")
        );
    };
    let days = (last - order.from).num_days() + 1;
    let span = format!(
        "{} to {} ({days} days)",
        order.from.format("%d %b %Y"),
        last.format("%d %b %Y")
    );
    match order.to {
        Some(end) if end <= last => span,
        _ => format!(
            "{span}: an abstinence requirement is monitored for at most {days} days; days \
             after {} are not judged",
            last.format("%d %b %Y")
        ),
    }
}

/// Consecutive dates as ranges: `02 May 2017 to 05 May 2017`, `07 May 2017`.
fn date_ranges(list: &[NaiveDate]) -> String {
    let mut ranges: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for d in list {
        match ranges.last_mut() {
            Some((_, end)) if end.succ_opt() == Some(*d) => *end = *d,
            _ => ranges.push((*d, *d)),
        }
    }
    ranges
        .iter()
        .map(|(a, b)| match a == b {
            true => a.format("%d %b %Y").to_string(),
            false => format!("{} to {}", a.format("%d %b %Y"), b.format("%d %b %Y")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn rate_words(rate: &RateSummary) -> String {
    match rate.rate {
        Some(r) => format!(
            "{:.1}% ({} sober of {} days worn)",
            r * 100.0,
            rate.sober,
            rate.worn
        ),
        None => "none: no day in the period was worn and judged".into(),
    }
}

fn day_json(d: &SoberDay) -> Value {
    json!({
        "date": d.date,
        "status": d.status.as_str(),
        "reasons": d.reasons,
        "activation": d.activation,
        "readings": d.readings,
        "coverage": d.coverage,
        "day_hours": d.day_hours,
        "alerts": d.alerts,
        "late": d.late,
        "amended_by": d.amended_by,
    })
}

fn event_json(e: &AlcoholEvent) -> Value {
    let a = &e.alert;
    json!({
        "id": a.id,
        "type": a.alert_type.as_str(),
        "type_words": alert_words(a.alert_type),
        "activation": a.activation,
        "start": format_time(a.start),
        "end": a.end.map(format_time),
        "start_uk": text::uk_time(a.start),
        "end_uk": a.end.map(text::uk_time),
        "late": a.late,
        "amended_by": a.amended_by,
        "rule": a.rule,
        "details": a.details,
        "chart": {
            "from": format_time(e.window_from_ms),
            "to": format_time(e.window_to_ms),
            "readings": e.readings.len(),
        },
    })
}

/// Builds the report's content and its figures (the calendar, one chart per event).
pub fn build(input: &SoberDayReportInput) -> (SoberDayReport, String, Vec<String>) {
    let person = input.person;
    let order = input.order;
    let holding: Vec<SoberDay> = input
        .days
        .iter()
        .filter(|d| d.withdrawn.is_none())
        .cloned()
        .collect();
    let rate = sober_day_rate(&holding);
    let calendar = calendar(input);
    let awaiting: Vec<NaiveDate> = calendar
        .iter()
        .filter(|(_, s)| *s == CalendarStatus::AwaitingData)
        .map(|(d, _)| *d)
        .collect();
    let calendar_svg = calendar_svg(&calendar);
    let charts = input
        .events
        .iter()
        .map(|e| {
            let days: Vec<SoberDay> = holding
                .iter()
                .filter(|d| d.activation == e.alert.activation)
                .cloned()
                .collect();
            tac_chart_svg(
                &e.readings,
                std::slice::from_ref(&e.alert),
                &days,
                e.window_from_ms,
                e.window_to_ms,
            )
        })
        .collect();
    let report = SoberDayReport {
        document: "tagstream sober-day report",
        layout_version: LAYOUT_VERSION,
        generator: format!("tagstream {}", env!("CARGO_PKG_VERSION")),
        person: json!({
            "id": person.id,
            "name": person.name,
            "nomis_id": person.nomis_id,
            "pnc_ref": person.pnc_ref,
            "date_of_birth": person.date_of_birth,
            "offender_manager": person.offender_manager,
        }),
        order: json!({
            "id": order.id,
            "from": order.from,
            "to": order.to,
            "monitored_to": input.monitored_to,
            "alcohol": alcohol_words(order),
        }),
        period: json!({
            "from": input.from,
            "to": input.to,
            "days": calendar.len(),
            "data_through": input.data_through,
        }),
        rate: json!({
            "summary": rate,
            "awaiting_data": awaiting.len(),
            "words": rate_words(&rate),
            "definition": RATE_DEFINITION,
        }),
        calendar: calendar
            .iter()
            .map(|(d, s)| json!({ "date": d, "status": s }))
            .collect(),
        days: holding.iter().map(day_json).collect(),
        awaiting_data: awaiting.iter().map(|d| d.to_string()).collect(),
        events: input.events.iter().map(event_json).collect(),
        withdrawn: json!({
            "days": input.days.len() - holding.len(),
            "alerts": input.withdrawn_alerts,
        }),
    };
    (report, calendar_svg, charts)
}

fn opt(v: Option<&String>) -> String {
    v.filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "—".into())
}

fn number(v: Option<f64>, digits: usize, unit: &str) -> Option<String> {
    v.map(|v| format!("{v:.digits$} {unit}"))
}

/// The fields of one event: times, what was measured, how it came about.
fn event_fields(e: &AlcoholEvent) -> Vec<(String, String)> {
    let a = &e.alert;
    let mut rows = vec![
        ("Alert".to_string(), a.id.clone()),
        ("Type".into(), alert_words(a.alert_type).into()),
        ("Start".into(), text::uk_and_utc(a.start)),
        (
            "End".into(),
            text::ended(a.start, a.end, "still open when the data ended"),
        ),
        ("Activation".into(), a.activation.clone()),
    ];
    if let Some(d) = &a.details {
        let measured = [
            (
                "Peak TAC",
                d.peak_tac_gdl.map(|v| {
                    format!(
                        "{v:.3} g/dL{}",
                        d.peak
                            .map(|t| format!(" at {}", text::uk_time(t)))
                            .unwrap_or_default()
                    )
                }),
            ),
            ("Highest raw TAC", number(d.max_raw_tac_gdl, 3, "g/dL")),
            ("Area under the curve", number(d.auc_gdl_h, 3, "g/dL·h")),
            (
                "Absorption rate",
                number(d.absorption_gdl_per_h, 4, "g/dL per hour"),
            ),
            (
                "Elimination rate",
                number(d.elimination_gdl_per_h, 4, "g/dL per hour"),
            ),
            ("Readings in the event", d.readings.map(|n| n.to_string())),
            ("IR baseline", number(d.ir_baseline_v, 3, "V")),
            ("IR voltage", number(d.ir_v, 3, "V")),
            ("Skin temperature", number(d.temp_c, 1, "°C")),
        ];
        rows.extend(
            measured
                .into_iter()
                .filter_map(|(label, v)| v.map(|v| (label.to_string(), v))),
        );
    }
    if a.late {
        rows.push((
            "Late data".into(),
            "raised or changed by readings that arrived after their time had been judged".into(),
        ));
    }
    if let Some(record) = a.amended_by {
        rows.push((
            "Amended".into(),
            format!("re-evaluated after the change in log record {record}"),
        ));
    }
    rows.push(("Rule".into(), a.rule.clone()));
    rows
}

/// Lays the report out as a document.
fn document(
    report: &SoberDayReport,
    input: &SoberDayReportInput,
    calendar_svg: String,
    charts: Vec<String>,
) -> Document {
    let person = input.person;
    let order = input.order;
    let period = format!(
        "{} to {}",
        input.from.format("%a %d %b %Y"),
        input.to.format("%a %d %b %Y")
    );
    let mut blocks = vec![Block::Title(format!(
        "Sober-day report: {} ({}), order {}",
        person.name, person.id, order.id
    ))];
    blocks.push(Block::Note(format!(
        "Made by {} (report layout {}) from the data listed in its manifest; the same data \
         gives the same bytes. Days are UK calendar days; times are UK local time with UTC \
         beside them.",
        report.generator, LAYOUT_VERSION
    )));
    blocks.push(Block::Heading("1. The person and the order".into()));
    blocks.push(Block::Fields(vec![
        ("Name".into(), person.name.clone()),
        ("Subject identifier".into(), person.id.clone()),
        ("NOMIS id".into(), opt(person.nomis_id.as_ref())),
        ("PNC reference".into(), opt(person.pnc_ref.as_ref())),
        (
            "Date of birth".into(),
            person
                .date_of_birth
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "—".into()),
        ),
        (
            "Offender manager".into(),
            opt(person.offender_manager.as_ref()),
        ),
        ("Order".into(), order.id.clone()),
        (
            "Order dates".into(),
            format!(
                "{} to {}",
                order.from.format("%d %b %Y"),
                order
                    .to
                    .map(|d| d.format("%d %b %Y").to_string())
                    .unwrap_or_else(|| "open".into())
            ),
        ),
        ("Alcohol condition".into(), alcohol_words(order)),
        ("Monitored".into(), monitored_words(input)),
        ("Period of this report".into(), period.clone()),
        (
            "Data received through".into(),
            input
                .data_through
                .map(|d| d.format("%d %b %Y").to_string())
                .unwrap_or_else(|| "no data yet".into()),
        ),
    ]));
    let holding: Vec<SoberDay> = input
        .days
        .iter()
        .filter(|d| d.withdrawn.is_none())
        .cloned()
        .collect();
    let rate = sober_day_rate(&holding);
    let awaiting = report.awaiting_data.len();
    blocks.push(Block::Heading("2. Sober-day rate".into()));
    blocks.push(Block::Fields(vec![
        ("Sober-day rate".into(), rate_words(&rate)),
        (
            "Days in the period".into(),
            report.calendar.len().to_string(),
        ),
        ("Sober".into(), rate.sober.to_string()),
        ("Drinking".into(), rate.drinking.to_string()),
        ("Tamper".into(), rate.tamper.to_string()),
        ("Partial".into(), rate.partial.to_string()),
        ("Not worn".into(), rate.not_worn.to_string()),
        ("Awaiting data".into(), awaiting.to_string()),
    ]));
    blocks.push(Block::Paragraph(RATE_DEFINITION.into()));
    if rate.days as usize != report.calendar.len() - awaiting {
        blocks.push(Block::Note(
            "Some dates have a record from two tags (a tag was changed that day): each record \
             counts in the rate; the calendar shows the one first in the order drinking, \
             tamper, not worn, partial, sober."
                .into(),
        ));
    }
    blocks.push(Block::Heading("3. Calendar".into()));
    blocks.push(Block::Figure(Figure {
        svg: calendar_svg,
        width_share: 1.0,
        caption: format!(
            "Exhibit 1. Each day of the period {period}, coloured by its status, with a letter \
             for reading in black and white: D drinking, T tamper, P partial, N not worn, \
             ? awaiting data (no record yet); sober days carry no letter."
        ),
    }));
    if awaiting > 0 {
        let list: Vec<NaiveDate> = report
            .awaiting_data
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        blocks.push(Block::Note(format!(
            "Awaiting data: {}. A day is decided once the readings after its end have had time \
             to arrive.",
            date_ranges(&list)
        )));
    }
    blocks.push(Block::Heading("4. Days not worn and partial days".into()));
    let gaps: Vec<&SoberDay> = input
        .days
        .iter()
        .filter(|d| {
            d.withdrawn.is_none()
                && matches!(d.status, SoberDayStatus::NotWorn | SoberDayStatus::Partial)
        })
        .collect();
    if gaps.is_empty() {
        blocks.push(Block::Paragraph(
            "None: every day with a record was worn and judged whole.".into(),
        ));
    } else {
        blocks.push(Block::Table(Table {
            columns: vec![
                ("Date".into(), 1.3),
                ("Status".into(), 0.8),
                ("Why".into(), 2.6),
                ("Readings".into(), 0.8),
                ("Coverage".into(), 0.8),
                ("Day length".into(), 0.8),
                ("Activation".into(), 0.9),
            ],
            rows: gaps
                .iter()
                .map(|d| {
                    vec![
                        d.date.format("%a %d %b %Y").to_string(),
                        CalendarStatus::of(d.status).words().into(),
                        d.reasons
                            .iter()
                            .map(|r| reason_words(*r))
                            .collect::<Vec<_>>()
                            .join("; "),
                        d.readings.to_string(),
                        format!("{:.0}%", d.coverage * 100.0),
                        format!("{} h", d.day_hours),
                        format!(
                            "{}{}",
                            d.activation,
                            if d.late { " (late data)" } else { "" }
                        ),
                    ]
                })
                .collect(),
        }));
    }
    blocks.push(Block::Heading("5. Drinking events and tamper".into()));
    if input.events.is_empty() {
        blocks.push(Block::Paragraph(
            "No drinking event, tamper or environmental exposure was alerted in the period.".into(),
        ));
    } else {
        blocks.push(Block::Paragraph(format!(
            "{} alcohol alerts in the period, each with its readings from 12 hours before its \
             start to 12 hours after its end.",
            input.events.len()
        )));
    }
    for (i, (event, chart)) in input.events.iter().zip(charts).enumerate() {
        blocks.push(Block::Heading(format!(
            "5.{} {}, {}",
            i + 1,
            alert_words(event.alert.alert_type),
            text::uk_time(event.alert.start)
        )));
        blocks.push(Block::Fields(event_fields(event)));
        blocks.push(Block::Figure(Figure {
            svg: chart,
            width_share: 1.0,
            caption: format!(
                "Exhibit {}. TAC (g/dL), IR voltage and skin temperature of activation {} from \
                 {} to {} ({} readings); the alert is shaded, the band above shows each day's \
                 status.",
                i + 2,
                event.alert.activation,
                text::uk_time(event.window_from_ms),
                text::uk_time(event.window_to_ms),
                event.readings.len()
            ),
        }));
    }
    if !input.withdrawn_alerts.is_empty() {
        blocks.push(Block::Note(format!(
            "Withdrawn alerts (a change to the order or the activation means they no longer \
             hold): {}.",
            input.withdrawn_alerts.join(", ")
        )));
    }
    Document {
        title: format!("Sober-day report {} {}", person.id, order.id),
        footer: format!(
            "Sober-day report · {} · order {} · {}",
            person.id, order.id, period
        ),
        blocks,
    }
}

/// What the report was built from: the person and order as read, the period, a digest of the
/// day records and of the TAC readings drawn, and the alerts' stable ids.
fn inputs(input: &SoberDayReportInput, report: &SoberDayReport) -> Result<Value, DocumentError> {
    let mut readings = Vec::new();
    let mut count = 0usize;
    for e in input.events {
        for (t, s) in &e.readings {
            readings.extend_from_slice(e.alert.activation.as_bytes());
            readings.push(0);
            readings.extend_from_slice(&t.to_le_bytes());
            readings.extend_from_slice(&s.tac_ugdl.to_le_bytes());
            readings.extend_from_slice(&s.ir_uv.to_le_bytes());
            readings.extend_from_slice(&s.temp_mc.to_le_bytes());
            count += 1;
        }
    }
    Ok(json!({
        "person": { "id": input.person.id, "sha256": sha256_hex(&serde_json::to_vec(&report.person)?) },
        "order": { "id": input.order.id, "sha256": sha256_hex(&serde_json::to_vec(input.order)?) },
        "period": { "from": input.from, "to": input.to, "data_through": input.data_through },
        "sober_days": {
            "records": input.days.len(),
            "sha256": sha256_hex(&serde_json::to_vec(input.days)?),
        },
        "tac_readings": {
            "readings": count,
            "sha256": sha256_hex(&readings),
            "windows": input.events.iter().map(|e| json!({
                "alert": e.alert.id,
                "activation": e.alert.activation,
                "from": format_time(e.window_from_ms),
                "to": format_time(e.window_to_ms),
                "readings": e.readings.len(),
            })).collect::<Vec<_>>(),
        },
        "alerts": input.events.iter().map(|e| e.alert.id.clone()).collect::<Vec<_>>(),
        "withdrawn_alerts": input.withdrawn_alerts,
        "events_sha256": sha256_hex(&serde_json::to_vec(&report.events)?),
    }))
}

/// Builds the report's PDF, JSON and manifest.
pub fn sober_day_report(input: &SoberDayReportInput) -> Result<SoberDayReportFiles, DocumentError> {
    let (report, calendar_svg, charts) = build(input);
    let pdf = render(&document(&report, input, calendar_svg, charts))?;
    let mut json = serde_json::to_vec_pretty(&report)?;
    json.push(b'\n');
    let base_name = format!(
        "{}-{}-sober-days-{}-{}",
        file_part(&input.person.id),
        file_part(&input.order.id),
        input.from,
        input.to
    );
    let manifest = Manifest {
        manifest_version: 1,
        document: "sober_day_report".into(),
        generator: report.generator.clone(),
        layout_version: LAYOUT_VERSION,
        subject: json!({
            "person": input.person.id,
            "order": input.order.id,
            "from": input.from,
            "to": input.to,
        }),
        files: vec![
            ManifestFile::of(format!("{base_name}.pdf"), &pdf),
            ManifestFile::of(format!("{base_name}.json"), &json),
        ],
        inputs: inputs(input, &report)?,
    };
    Ok(SoberDayReportFiles {
        pdf,
        json,
        manifest,
        base_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlcoholCondition, AlcoholMode, AlertDetails, Withdrawal};

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn day(d: &str, status: SoberDayStatus, activation: &str) -> SoberDay {
        SoberDay {
            activation: activation.into(),
            order: "O1".into(),
            date: date(d),
            status,
            reasons: match status {
                SoberDayStatus::NotWorn => vec![DayReason::NoReadings],
                SoberDayStatus::Partial => vec![DayReason::LowCoverage],
                _ => vec![],
            },
            person: "P1".into(),
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
        }
    }

    fn person() -> Person {
        Person {
            id: "P1".into(),
            name: "Sam Sober".into(),
            date_of_birth: None,
            nomis_id: Some("A7654ZY".into()),
            pnc_ref: None,
            address: Some("never printed".into()),
            offender_manager: None,
            restricted: false,
        }
    }

    fn order() -> Order {
        Order {
            id: "O1".into(),
            person: "P1".into(),
            from: date("2026-01-05"),
            to: None,
            conditions: vec![Condition::Alcohol(AlcoholCondition {
                mode: AlcoholMode::Abstinence,
                requirement: None,
            })],
        }
    }

    fn event() -> AlcoholEvent {
        let start = 1_767_900_600_000; // 2026-01-08T20:30:00Z
        AlcoholEvent {
            alert: Alert {
                id: "al-1".into(),
                alert_type: AlertType::DrinkingEvent,
                code: None,
                activation: "A1".into(),
                person: "P1".into(),
                start,
                end: Some(start + 3_600_000),
                late: false,
                zone: None,
                confidence: None,
                rule: "alcohol/1".into(),
                details: Some(Box::new(AlertDetails {
                    peak_tac_gdl: Some(0.084),
                    ..AlertDetails::default()
                })),
                withdrawn: None,
                amended_by: None,
                evidence: vec![],
            },
            window_from_ms: start - EVENT_MARGIN_MS,
            window_to_ms: start + 3_600_000 + EVENT_MARGIN_MS,
            readings: (0..50)
                .map(|i| {
                    (
                        start - EVENT_MARGIN_MS + i * 1_800_000,
                        TacSample {
                            tac_ugdl: if (24..27).contains(&i) { 80_000 } else { 0 },
                            ir_uv: 1_000_000,
                            temp_mc: 33_000,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_calendar_rate_and_lists_follow_the_day_records() {
        use SoberDayStatus::*;
        let mut withdrawn = day("2026-01-09", Drinking, "A1");
        withdrawn.withdrawn = Some(Withdrawal {
            change: Some(7),
            reason: "order changed".into(),
        });
        let days = vec![
            day("2026-01-05", Sober, "A1"),
            day("2026-01-06", NotWorn, "A1"),
            day("2026-01-07", Partial, "A1"),
            // A tag change: the old tag's removal day and the new tag's fitting day.
            day("2026-01-07", Sober, "A2"),
            day("2026-01-08", Drinking, "A2"),
            withdrawn,
        ];
        let (person, order, events) = (person(), order(), vec![event()]);
        let input = SoberDayReportInput {
            person: &person,
            order: &order,
            from: date("2026-01-05"),
            to: date("2026-01-10"),
            monitored_to: None,
            data_through: Some(date("2026-01-10")),
            days: &days,
            events: &events,
            withdrawn_alerts: &["al-0".to_string()],
        };
        let (report, calendar, charts) = build(&input);
        let statuses: Vec<&str> = report
            .calendar
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                "sober",
                "not_worn",
                "partial",
                "drinking",
                "awaiting_data",
                "awaiting_data"
            ]
        );
        assert_eq!(report.awaiting_data, ["2026-01-09", "2026-01-10"]);
        assert_eq!(report.rate["summary"]["days"], 5);
        assert_eq!(report.rate["summary"]["worn"], 3);
        assert_eq!(report.rate["summary"]["sober"], 2);
        assert_eq!(report.rate["words"], "66.7% (2 sober of 3 days worn)");
        assert_eq!(report.withdrawn["days"], 1);
        assert_eq!(report.days.len(), 5);
        assert_eq!(report.events[0]["chart"]["readings"], 50);
        assert!(report.person.get("address").is_none(), "no address");
        assert!(calendar.contains("Awaiting data (2)"));
        assert_eq!(charts.len(), 1);
        assert!(charts[0].starts_with("<svg"));

        let a = sober_day_report(&input).expect("builds");
        let b = sober_day_report(&input).expect("builds");
        assert_eq!(
            (&a.pdf, &a.json, &a.manifest),
            (&b.pdf, &b.json, &b.manifest)
        );
        assert_eq!(a.base_name, "P1-O1-sober-days-2026-01-05-2026-01-10");
        assert_eq!(a.manifest.files[0].sha256, sha256_hex(&a.pdf));
        assert_eq!(a.manifest.files[1].sha256, sha256_hex(&a.json));
        assert_eq!(a.manifest.inputs["tac_readings"]["readings"], 50);
        assert_eq!(a.manifest.inputs["alerts"], json!(["al-1"]));

        // Another day record is another report, and the manifest says which input changed.
        let mut changed = days.clone();
        changed[0].status = Drinking;
        let c = sober_day_report(&SoberDayReportInput {
            days: &changed,
            ..input
        })
        .expect("builds");
        assert_ne!(c.pdf, a.pdf);
        assert_ne!(
            c.manifest.inputs["sober_days"]["sha256"],
            a.manifest.inputs["sober_days"]["sha256"]
        );
        assert_eq!(
            c.manifest.inputs["tac_readings"],
            a.manifest.inputs["tac_readings"]
        );
    }

    #[test]
    fn ids_are_made_safe_for_file_names_and_dates_read_as_ranges() {
        assert_eq!(file_part("../O 1"), "___O_1");
        let list: Vec<NaiveDate> = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"]
            .iter()
            .map(|d| date(d))
            .collect();
        assert_eq!(
            date_ranges(&list),
            "01 Jan 2026 to 03 Jan 2026, 05 Jan 2026"
        );
    }
}
