//! The breach report: one curfew or zone alert, for the practitioner and for enforcement. It
//! holds the order condition in force (the curfew timetable and addresses, or the zone and its
//! schedule), the alert's timeline (raised, each hub action, ended, withdrawn), a map of the
//! curfew address with its radius or the zone, with the positions around the alert, the
//! readings that decided it and the positions around it, what the alert record says about late
//! data and amendments, and the hub's review and outcome. PDF, JSON, manifest, as the hit pack.

use super::layout::{render, Block, Document, Figure, Table};
use super::manifest::{sha256_hex, Manifest, ManifestFile};
use super::map_figure::{draw_map, MapArea, MapLayers, MapPlace, MapPosition, TileSource};
use super::text;
use super::DocumentError;
use crate::model::time::format_time;
use crate::model::{
    Alert, AlertType, BatchSeq, CurfewCondition, Person, PositionSource, Reading, ReadingBody,
    TimeMs, ZoneCondition,
};
use crate::rules::geodesy::haversine_m;
use crate::rules::zones::geometry::{Placement, ZoneGeometry};
use serde::Serialize;
use serde_json::{json, Value};

/// Bumped whenever the report's layout or content changes.
pub const LAYOUT_VERSION: u32 = 2;

/// How far before the alert's start and after its end the positions reach.
pub const POSITION_MARGIN_MS: TimeMs = 3_600_000;

/// A new track letter after a gap this long between positions.
const LABEL_GAP_MS: TimeMs = 30 * 60_000;

/// Which version of the order a report quotes the condition from, and why that one.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionVersion {
    /// The log record that made the version, who made it and when it was recorded.
    pub record: u64,
    pub actor: String,
    pub recorded_ms: TimeMs,
    /// The event time the version took effect from (`None`: from the order's start).
    pub effective_ms: Option<TimeMs>,
    /// The UK days the version governs (`None`: open-ended).
    pub days_from: chrono::NaiveDate,
    pub days_to: Option<chrono::NaiveDate>,
    pub basis: VersionBasis,
}

/// How far into the log the order book was read to find the version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VersionBasis {
    /// The alert stands as raised: the book through the log's last change to the person.
    AsRaised { through_record: u64 },
    /// The alert was re-evaluated after change `record`: the book through that change.
    AmendedBy(u64),
    /// Change `record` withdrew the alert: the book just before it.
    WithdrawnBy(u64),
}

/// The condition an alert was raised under: in the version of the order that governed the
/// alert's day (see [`ConditionVersion`]).
#[derive(Clone, Debug)]
pub enum BreachCondition {
    Curfew {
        order: String,
        curfew: CurfewCondition,
    },
    Zone {
        order: String,
        /// `exclusion_zone` or `inclusion_zone`.
        kind: &'static str,
        zone: ZoneCondition,
    },
    /// No order of the person holds the condition any more.
    Gone,
}

/// What the report is built from, as the stores hold it (see `sources::BreachSources`).
pub struct BreachReportInput<'a> {
    pub alert: &'a Alert,
    /// The readings the rule named as the alert's cause (and the one that ended it).
    pub evidence: &'a [Reading],
    /// The hub's review as it stands, and its history (alert store).
    pub review: &'a Value,
    pub history: &'a [Value],
    pub person: &'a Person,
    pub condition: &'a BreachCondition,
    /// The order version the condition is quoted from (`None` when no order holds it).
    pub condition_version: Option<&'a ConditionVersion>,
    /// The activation's positions from an hour before the alert to an hour after its end.
    pub positions: &'a [Reading],
    /// The batch each of `positions` came in (empty, or one per position; `None` where the
    /// trail store does not know it).
    pub position_batches: &'a [Option<BatchSeq>],
    pub window_from_ms: TimeMs,
    pub window_to_ms: TimeMs,
    pub tiles: Option<&'a dyn TileSource>,
}

/// The report's content: the JSON file, and what the PDF lays out.
#[derive(Serialize)]
pub struct BreachReport {
    pub document: &'static str,
    pub layout_version: u32,
    pub generator: String,
    pub alert: Value,
    pub person: Value,
    pub condition: Value,
    pub timeline: Vec<Value>,
    pub evidence: Vec<Value>,
    pub positions: Vec<Value>,
    pub review: Value,
    pub map: Value,
}

/// The three files of a report.
pub struct BreachReportFiles {
    pub pdf: Vec<u8>,
    pub json: Vec<u8>,
    pub manifest: Manifest,
}

impl BreachReportFiles {
    /// The PDF, the JSON and the manifest (`<alert>-breach-manifest.json`), each with its file
    /// name.
    pub fn into_named(self, alert: &str) -> [(String, Vec<u8>); 3] {
        [
            (self.manifest.files[0].name.clone(), self.pdf),
            (self.manifest.files[1].name.clone(), self.json),
            (
                format!("{alert}-breach-manifest.json"),
                self.manifest.to_bytes(),
            ),
        ]
    }
}

fn alert_words(t: AlertType) -> &'static str {
    match t {
        AlertType::CurfewViolation => "Curfew violation",
        AlertType::ExclusionZoneEntry => "Exclusion zone entry",
        AlertType::InclusionZoneExit => "Inclusion zone exit",
        _ => "Alert",
    }
}

fn source_words(source: PositionSource) -> &'static str {
    match source {
        PositionSource::Gps => "GPS",
        PositionSource::Lbs => "cell (LBS)",
        PositionSource::Wifi => "Wi-Fi",
    }
}

fn days_words(days: &[crate::model::Day]) -> String {
    let names: Vec<String> = days
        .iter()
        .map(|d| {
            serde_json::to_value(d)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    names.join(", ")
}

/// Where a position stands against the condition: distance to the nearest curfew address
/// (and whether inside its radius), or to the zone's boundary (and which side).
fn against_condition(condition: &BreachCondition, lat: f64, lon: f64) -> String {
    match condition {
        BreachCondition::Curfew { curfew, .. } => curfew
            .addresses
            .iter()
            .map(|a| (haversine_m(lat, lon, a.lat, a.lon), a))
            .min_by(|x, y| x.0.total_cmp(&y.0))
            .map(|(d, a)| {
                format!(
                    "{d:.0} m from {} ({})",
                    a.id,
                    if d <= a.radius_m { "inside" } else { "outside" }
                )
            })
            .unwrap_or_default(),
        BreachCondition::Zone { zone, .. } => {
            match ZoneGeometry::from_geojson(&zone.geometry, zone.radius_m) {
                Ok(g) => {
                    let side = match g.place(lat, lon, 0.0) {
                        Placement::Inside => "inside",
                        Placement::Outside => "outside",
                        Placement::Straddling {
                            centre_inside: true,
                        } => "inside",
                        Placement::Straddling {
                            centre_inside: false,
                        } => "outside",
                    };
                    format!(
                        "{:.0} m from the boundary ({side})",
                        g.boundary_distance_m(lat, lon)
                    )
                }
                Err(e) => format!("zone geometry: {e}"),
            }
        }
        BreachCondition::Gone => String::new(),
    }
}

fn reading_json(r: &Reading, condition: &BreachCondition) -> Value {
    let mut v = json!({ "t": format_time(r.t_ms), "t_uk": text::uk_time(r.t_ms) });
    match &r.body {
        ReadingBody::Position(p) => {
            v["kind"] = json!("position");
            v["lat"] = json!(p.lat());
            v["lon"] = json!(p.lon());
            v["bng"] = json!(text::bng(p.lat(), p.lon()));
            v["precision_m"] = json!(p.precision_m());
            v["source"] = json!(p.source);
            v["source_words"] = json!(source_words(p.source));
            v["against_condition"] = json!(against_condition(condition, p.lat(), p.lon()));
        }
        ReadingBody::Rf { in_range } => {
            v["kind"] = json!("rf");
            v["in_range"] = json!(in_range);
        }
        ReadingBody::Tac(_) => v["kind"] = json!("tac"),
        ReadingBody::Event(e) => {
            v["kind"] = json!("event");
            v["event"] = serde_json::to_value(e).unwrap_or(Value::Null);
        }
    }
    v
}

/// What a reading says, in one line of the table.
fn reading_row(v: &Value) -> Vec<String> {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let what = match v["kind"].as_str() {
        Some("position") => format!(
            "{} fix, {:.0} m precision",
            s("source_words"),
            v["precision_m"].as_f64().unwrap_or(0.0)
        ),
        Some("rf") => match v["in_range"].as_bool() {
            Some(true) => "RF: in range of the home unit".into(),
            _ => "RF: out of range of the home unit".into(),
        },
        Some("event") => format!("device event {}", v["event"]),
        _ => "TAC reading".into(),
    };
    let place = match v["kind"].as_str() {
        Some("position") => format!(
            "{:.6}, {:.6} ({})",
            v["lat"].as_f64().unwrap_or(0.0),
            v["lon"].as_f64().unwrap_or(0.0),
            s("bng")
        ),
        _ => "—".into(),
    };
    vec![s("t_uk"), what, place, s("against_condition")]
}

fn condition_json(condition: &BreachCondition, version: Option<&ConditionVersion>) -> Value {
    let mut quoted = match condition {
        BreachCondition::Curfew { order, curfew } => {
            json!({ "order": order, "type": "curfew", "curfew": curfew })
        }
        BreachCondition::Zone { order, kind, zone } => {
            json!({ "order": order, "type": kind, "zone": zone })
        }
        BreachCondition::Gone => json!({ "type": "gone" }),
    };
    if let Some(v) = version {
        let (basis, basis_record) = match v.basis {
            VersionBasis::AsRaised { through_record } => ("as_raised", through_record),
            VersionBasis::AmendedBy(record) => ("amended_by", record),
            VersionBasis::WithdrawnBy(record) => ("withdrawn_by", record),
        };
        quoted["version"] = json!({
            "record": v.record,
            "actor": v.actor,
            "recorded": format_time(v.recorded_ms),
            "effective": v.effective_ms.map(format_time),
            "days_from": v.days_from,
            "days_to": v.days_to,
            "basis": basis,
            "basis_record": basis_record,
        });
    }
    quoted
}

/// Which version the condition is quoted from, in words, for under the condition.
fn version_words(version: Option<&ConditionVersion>) -> String {
    let Some(v) = version else {
        return "No version of the person's orders held this condition on the alert's day.".into();
    };
    let days = match v.days_to {
        Some(to) => format!(
            "{} to {}",
            v.days_from.format("%d %b %Y"),
            to.format("%d %b %Y")
        ),
        None => format!("from {}", v.days_from.format("%d %b %Y")),
    };
    let made = format!(
        "Quoted from the version of the order made by log record {} ({}, recorded {}{}), \
         which governed the days {days}",
        v.record,
        v.actor,
        text::utc_time(v.recorded_ms),
        match v.effective_ms {
            Some(t) => format!(", effective from {}", text::uk_time(t)),
            None => String::new(),
        },
    );
    let why = match v.basis {
        VersionBasis::AsRaised { through_record } => format!(
            "the version in force on the alert's day, the log read through record \
             {through_record}; no change since altered the alert"
        ),
        VersionBasis::AmendedBy(record) => format!(
            "the version the alert was re-evaluated under after the change in log record \
             {record}"
        ),
        VersionBasis::WithdrawnBy(record) => format!(
            "the version the alert stood under until the change in log record {record} \
             withdrew it"
        ),
    };
    format!("{made}: {why}.")
}

/// The outer ring of each polygon of a GeoJSON geometry, as (lat, lon).
fn rings(geometry: &Value) -> Vec<Vec<(f64, f64)>> {
    let ring = |r: &Value| -> Vec<(f64, f64)> {
        r.as_array()
            .map(|pts| {
                pts.iter()
                    .filter_map(|p| Some((p.get(1)?.as_f64()?, p.get(0)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let coords = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => coords.get(0).map(ring).into_iter().collect(),
        Some("MultiPolygon") => coords
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p.get(0)).map(ring).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn map_layers(input: &BreachReportInput) -> MapLayers {
    let mut layers = MapLayers::default();
    match input.condition {
        BreachCondition::Curfew { curfew, .. } => {
            layers.places = curfew
                .addresses
                .iter()
                .map(|a| MapPlace {
                    label: a.id.clone(),
                    lat: a.lat,
                    lon: a.lon,
                    radius_m: a.radius_m,
                })
                .collect();
        }
        BreachCondition::Zone { zone, .. } => {
            let label = if zone.name.is_empty() {
                zone.id.clone()
            } else {
                zone.name.clone()
            };
            match zone.geometry["type"].as_str() {
                Some("Point") => {
                    let c = &zone.geometry["coordinates"];
                    if let (Some(lon), Some(lat)) = (
                        c.get(0).and_then(Value::as_f64),
                        c.get(1).and_then(Value::as_f64),
                    ) {
                        layers.places.push(MapPlace {
                            label,
                            lat,
                            lon,
                            radius_m: zone.radius_m.unwrap_or(0.0),
                        });
                    }
                }
                _ => {
                    layers.areas = rings(&zone.geometry)
                        .into_iter()
                        .map(|ring| MapArea {
                            label: label.clone(),
                            ring,
                        })
                        .collect();
                }
            }
        }
        BreachCondition::Gone => {}
    }
    let mut letter = b'A';
    let mut n = 0;
    let mut last: Option<TimeMs> = None;
    for r in input.positions {
        let ReadingBody::Position(p) = &r.body else {
            continue;
        };
        if last.is_some_and(|t| r.t_ms - t > LABEL_GAP_MS) && letter < b'Z' {
            letter += 1;
            n = 0;
        }
        n += 1;
        last = Some(r.t_ms);
        layers.positions.push(MapPosition {
            label: format!("{}{n}", letter as char),
            lat: p.lat(),
            lon: p.lon(),
            precision_m: p.precision_m(),
            weaker: p.source != PositionSource::Gps,
        });
    }
    layers
}

fn timeline(input: &BreachReportInput) -> Vec<Value> {
    let a = input.alert;
    let mut rows = vec![json!({
        "t": format_time(a.start),
        "what": format!("{} began (the time the readings show)", alert_words(a.alert_type)),
    })];
    for h in input.history {
        let mut what = format!(
            "Hub: {} by {}",
            h["action"].as_str().unwrap_or(""),
            h["user"].as_str().unwrap_or("")
        );
        for (key, label) in [
            ("assignee", "assigned to"),
            ("outcome", "outcome"),
            ("notes", "notes"),
        ] {
            if let Some(v) = h[key].as_str() {
                what += &format!("; {label}: {v}");
            }
        }
        rows.push(json!({ "t": h["t"], "what": what }));
    }
    if let Some(end) = a.end {
        rows.push(json!({
            "t": format_time(end),
            "what": "The condition was met again: the alert ended",
        }));
    }
    if let Some(w) = &a.withdrawn {
        rows.push(json!({
            "t": null,
            "what": format!(
                "Withdrawn: {}{}",
                w.reason,
                w.change.map(|c| format!(" (log record {c})")).unwrap_or_default()
            ),
        }));
    }
    // In time order; the withdrawal (no time of its own) last.
    rows.sort_by_key(|r| (r["t"].is_null(), r["t"].as_str().map(str::to_string)));
    rows
}

/// Builds the report's content and its map.
pub fn build(input: &BreachReportInput) -> (BreachReport, String) {
    let a = input.alert;
    let map = draw_map(&map_layers(input), input.tiles);
    let report = BreachReport {
        document: "tagstream breach report",
        layout_version: LAYOUT_VERSION,
        generator: format!("tagstream {}", env!("CARGO_PKG_VERSION")),
        alert: json!({
            "id": a.id,
            "type": a.alert_type.as_str(),
            "type_words": alert_words(a.alert_type),
            "code": a.code,
            "activation": a.activation,
            "start": format_time(a.start),
            "end": a.end.map(format_time),
            "start_uk": text::uk_time(a.start),
            "end_uk": a.end.map(text::uk_time),
            "zone": a.zone,
            "confidence": a.confidence,
            "late": a.late,
            "amended_by": a.amended_by,
            "withdrawn": a.withdrawn.as_ref().map(|w| json!({"change": w.change, "reason": w.reason})),
            "rule": a.rule,
        }),
        person: json!({
            "id": input.person.id,
            "name": input.person.name,
            "nomis_id": input.person.nomis_id,
            "pnc_ref": input.person.pnc_ref,
            "offender_manager": input.person.offender_manager,
        }),
        condition: condition_json(input.condition, input.condition_version),
        timeline: timeline(input),
        evidence: input
            .evidence
            .iter()
            .map(|r| reading_json(r, input.condition))
            .collect(),
        positions: input
            .positions
            .iter()
            .map(|r| reading_json(r, input.condition))
            .collect(),
        review: json!({ "current": input.review, "history": input.history }),
        map: json!({ "basemap": map.basemap_note, "zoom": map.zoom }),
    };
    (report, map.svg)
}

fn or_dash(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn condition_blocks(condition: &BreachCondition) -> Vec<Block> {
    match condition {
        BreachCondition::Curfew { order, curfew } => vec![
            Block::Fields(vec![
                ("Order".into(), order.clone()),
                ("Condition".into(), "Curfew".into()),
                (
                    "Grace".into(),
                    format!("{} min of lateness tolerated", curfew.grace_min),
                ),
            ]),
            Block::Table(Table {
                columns: vec![
                    ("Address".into(), 1.0),
                    ("WGS84 lat, lon".into(), 1.6),
                    ("BNG".into(), 1.3),
                    ("Radius".into(), 0.7),
                    ("Home unit".into(), 0.7),
                ],
                rows: curfew
                    .addresses
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            text::lat_lon(a.lat, a.lon),
                            text::bng(a.lat, a.lon),
                            format!("{:.0} m", a.radius_m),
                            if a.hmu { "yes".into() } else { "—".into() },
                        ]
                    })
                    .collect(),
            }),
            Block::Table(Table {
                columns: vec![
                    ("Days".into(), 2.0),
                    ("From (UK time)".into(), 1.0),
                    ("To (UK time)".into(), 1.0),
                    ("At".into(), 1.0),
                ],
                rows: curfew
                    .timetable
                    .iter()
                    .map(|e| {
                        vec![
                            days_words(&e.days),
                            e.start.clone(),
                            e.end.clone(),
                            e.address.clone(),
                        ]
                    })
                    .collect(),
            }),
        ],
        BreachCondition::Zone { order, kind, zone } => {
            let mut blocks = vec![Block::Fields(vec![
                ("Order".into(), order.clone()),
                (
                    "Condition".into(),
                    match *kind {
                        "exclusion_zone" => "Exclusion zone: must not enter".into(),
                        _ => "Inclusion zone: must not leave".into(),
                    },
                ),
                ("Zone".into(), format!("{} {}", zone.id, zone.name)),
                (
                    "Shape".into(),
                    format!(
                        "{}{}",
                        zone.geometry["type"].as_str().unwrap_or("?"),
                        zone.radius_m
                            .map(|r| format!(", radius {r:.0} m"))
                            .unwrap_or_default()
                    ),
                ),
                (
                    "Schedule".into(),
                    if zone.schedule.is_none() {
                        "at all times".into()
                    } else {
                        "only in the windows below (UK time)".into()
                    },
                ),
            ])];
            if let Some(schedule) = &zone.schedule {
                blocks.push(Block::Table(Table {
                    columns: vec![
                        ("Days".into(), 2.0),
                        ("From".into(), 1.0),
                        ("To".into(), 1.0),
                    ],
                    rows: schedule
                        .iter()
                        .map(|e| vec![days_words(&e.days), e.start.clone(), e.end.clone()])
                        .collect(),
                }));
            }
            blocks
        }
        BreachCondition::Gone => vec![Block::Paragraph(
            "No order of the person holds this condition now (the order was changed or ended \
             since the alert)."
                .into(),
        )],
    }
}

fn readings_table(rows: &[Value]) -> Block {
    Block::Table(Table {
        columns: vec![
            ("UK time".into(), 1.7),
            ("Reading".into(), 1.6),
            ("Position (WGS84, BNG)".into(), 2.4),
            ("Against the condition".into(), 1.6),
        ],
        rows: rows.iter().map(reading_row).collect(),
    })
}

/// Lays the report out as a document.
fn document(report: &BreachReport, input: &BreachReportInput, map_svg: String) -> Document {
    let a = input.alert;
    let al = &report.alert;
    let mut blocks = vec![Block::Title(format!(
        "Breach report: {} {}",
        alert_words(a.alert_type),
        a.id
    ))];
    blocks.push(Block::Note(format!(
        "Made by {} (report layout {}) from the data listed in its manifest; the same data \
         gives the same bytes. Times are UK local time with UTC beside them.",
        report.generator, LAYOUT_VERSION
    )));
    if let Some(w) = &a.withdrawn {
        blocks.push(Block::Paragraph(format!(
            "WITHDRAWN: {}. This alert no longer holds; the report shows it as it stood.",
            w.reason
        )));
    }
    blocks.push(Block::Heading("1. The alert".into()));
    blocks.push(Block::Fields(vec![
        ("Alert".into(), a.id.clone()),
        ("Type".into(), alert_words(a.alert_type).into()),
        ("Code".into(), or_dash(&al["code"])),
        ("Began".into(), text::uk_and_utc(a.start)),
        ("Ended".into(), text::ended(a.start, a.end, "still open")),
        ("Confidence".into(), or_dash(&al["confidence"])),
        ("Activation".into(), a.activation.clone()),
        ("Rule".into(), a.rule.clone()),
    ]));
    blocks.push(Block::Heading("2. The person".into()));
    blocks.push(Block::Fields(vec![
        ("Name".into(), input.person.name.clone()),
        ("Subject identifier".into(), input.person.id.clone()),
        ("NOMIS id".into(), or_dash(&report.person["nomis_id"])),
        ("PNC reference".into(), or_dash(&report.person["pnc_ref"])),
        (
            "Offender manager".into(),
            or_dash(&report.person["offender_manager"]),
        ),
    ]));
    blocks.push(Block::Heading("3. The condition in force".into()));
    blocks.extend(condition_blocks(input.condition));
    blocks.push(Block::Note(version_words(input.condition_version)));
    blocks.push(Block::Heading("4. Timeline".into()));
    blocks.push(Block::Table(Table {
        columns: vec![("UK time".into(), 1.4), ("What happened".into(), 3.6)],
        rows: report
            .timeline
            .iter()
            .map(|r| {
                let t = r["t"]
                    .as_str()
                    .and_then(|t| crate::model::time::parse_time(t).ok())
                    .map(text::uk_time)
                    .unwrap_or_else(|| "—".into());
                vec![t, or_dash(&r["what"])]
            })
            .collect(),
    }));
    blocks.push(Block::Heading("5. The hub's review and outcome".into()));
    let review = &report.review["current"];
    blocks.push(Block::Fields(vec![
        ("State".into(), or_dash(&review["state"])),
        ("Outcome".into(), or_dash(&review["outcome"])),
        ("Notes".into(), or_dash(&review["notes"])),
        ("Reviewed by".into(), or_dash(&review["reviewed_by"])),
        (
            "Reviewed at".into(),
            review["reviewed_at"]
                .as_str()
                .and_then(|t| crate::model::time::parse_time(t).ok())
                .map(text::uk_and_utc)
                .unwrap_or_else(|| "—".into()),
        ),
    ]));
    blocks.push(Block::Heading("6. Late data and amendments".into()));
    blocks.push(Block::Fields(vec![
        (
            "Late data".into(),
            if a.late {
                "Yes: raised or changed by readings that arrived after their time had been \
                 judged."
                    .into()
            } else {
                "No: every reading behind the alert arrived in time.".into()
            },
        ),
        (
            "Amended".into(),
            match a.amended_by {
                Some(record) => {
                    format!("Re-evaluated after the change to the orders in log record {record}.")
                }
                None => "No change to the orders re-evaluated this alert.".into(),
            },
        ),
        (
            "Withdrawn".into(),
            match &a.withdrawn {
                Some(w) => w.reason.clone(),
                None => "No".into(),
            },
        ),
    ]));
    blocks.push(Block::Heading("7. Map".into()));
    blocks.push(Block::Figure(Figure {
        svg: map_svg,
        width_share: 1.0,
        caption: format!(
            "Exhibit 1. {} and the person's positions from {} to {}, labelled in time order \
             (A1, A2, …; a new letter after a gap of 30 minutes) with their confidence circles. \
             Filled dots are GPS fixes, hollow dots cell or Wi-Fi fixes. {}",
            match input.condition {
                BreachCondition::Curfew { .. } => "The curfew addresses with their radius",
                BreachCondition::Zone { .. } => "The zone",
                BreachCondition::Gone => "The condition (no longer held)",
            },
            text::uk_time(input.window_from_ms),
            text::uk_time(input.window_to_ms),
            or_dash(&report.map["basemap"])
        ),
    }));
    blocks.push(Block::Heading("8. The readings that decided it".into()));
    if report.evidence.is_empty() {
        blocks.push(Block::Paragraph(
            "The alert record names no readings (an alert raised for lack of readings).".into(),
        ));
    } else {
        blocks.push(readings_table(&report.evidence));
    }
    blocks.push(Block::Heading("9. Positions around the alert".into()));
    if report.positions.is_empty() {
        blocks.push(Block::Paragraph("No position in the window.".into()));
    } else {
        blocks.push(readings_table(&report.positions));
    }
    Document {
        title: format!("Breach report {}", a.id),
        footer: format!(
            "Breach report {} · {} · {}",
            a.id,
            input.person.id,
            alert_words(a.alert_type)
        ),
        blocks,
    }
}

/// What the report was built from: the alert and its review as stored, the person, the
/// condition, and the positions drawn (activation and event time), each with a digest.
fn inputs(input: &BreachReportInput, report: &BreachReport) -> Result<Value, DocumentError> {
    Ok(json!({
        "alert": { "id": input.alert.id, "sha256": sha256_hex(&serde_json::to_vec(&report.alert)?) },
        "evidence": { "readings": input.evidence.len(), "sha256": sha256_hex(&serde_json::to_vec(&report.evidence)?) },
        "review": { "sha256": sha256_hex(&serde_json::to_vec(&report.review)?) },
        "person": { "id": input.person.id, "sha256": sha256_hex(&serde_json::to_vec(&report.person)?) },
        "condition": {
            "order_version_record": input.condition_version.map(|v| v.record),
            "sha256": sha256_hex(&serde_json::to_vec(&report.condition)?),
        },
        "positions": {
            "activation": input.alert.activation,
            "from": format_time(input.window_from_ms),
            "to": format_time(input.window_to_ms),
            "t": input.positions.iter().map(|r| format_time(r.t_ms)).collect::<Vec<_>>(),
            "batches": input.position_batches,
            "sha256": sha256_hex(&serde_json::to_vec(&report.positions)?),
        },
        "basemap": report.map["basemap"],
    }))
}

/// Builds the report's PDF, JSON and manifest.
pub fn breach_report(input: &BreachReportInput) -> Result<BreachReportFiles, DocumentError> {
    let (report, map_svg) = build(input);
    let pdf = render(&document(&report, input, map_svg))?;
    let mut json = serde_json::to_vec_pretty(&report)?;
    json.push(b'\n');
    let id = &input.alert.id;
    let manifest = Manifest {
        manifest_version: 1,
        document: "breach_report".into(),
        generator: report.generator.clone(),
        layout_version: LAYOUT_VERSION,
        subject: json!({ "alert": id, "person": input.person.id }),
        files: vec![
            ManifestFile::of(format!("{id}-breach.pdf"), &pdf),
            ManifestFile::of(format!("{id}-breach.json"), &json),
        ],
        inputs: inputs(input, &report)?,
    };
    Ok(BreachReportFiles {
        pdf,
        json,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CurfewAddress, Day, Position, TimetableEntry, Withdrawal};

    const HOME: (f64, f64) = (51.4545, -2.5879);
    const T0: TimeMs = 1_773_171_000_000; // 2026-03-10T19:30:00Z

    fn fix(t_ms: TimeMs, at: (f64, f64)) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: (at.0 * 1e7) as i32,
                lon_e7: (at.1 * 1e7) as i32,
                precision_cm: 800,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    fn alert(alert_type: AlertType) -> Alert {
        Alert {
            id: "al-1".into(),
            alert_type,
            code: Some("AL10".into()),
            activation: "A1".into(),
            person: "P1".into(),
            start: T0,
            end: Some(T0 + 5_400_000),
            late: true,
            zone: Some("Z1".into()),
            confidence: None,
            rule: "curfew/5".into(),
            details: None,
            withdrawn: Some(Withdrawal {
                change: Some(12),
                reason: "order 'O1' changed".into(),
            }),
            amended_by: Some(12),
            evidence: vec![],
        }
    }

    fn person() -> Person {
        Person {
            id: "P1".into(),
            name: "Casey Curfew".into(),
            date_of_birth: None,
            nomis_id: None,
            pnc_ref: None,
            address: None,
            offender_manager: None,
            restricted: false,
        }
    }

    fn curfew() -> BreachCondition {
        BreachCondition::Curfew {
            order: "O1".into(),
            curfew: CurfewCondition {
                grace_min: 0,
                addresses: vec![CurfewAddress {
                    id: "home".into(),
                    lat: HOME.0,
                    lon: HOME.1,
                    radius_m: 75.0,
                    hmu: false,
                }],
                timetable: vec![TimetableEntry {
                    days: vec![Day::Mon, Day::Tue],
                    start: "19:00".into(),
                    end: "07:00".into(),
                    address: "home".into(),
                }],
            },
        }
    }

    fn zone() -> BreachCondition {
        BreachCondition::Zone {
            order: "O1".into(),
            kind: "exclusion_zone",
            zone: ZoneCondition {
                id: "Z1".into(),
                name: "Town centre".into(),
                geometry: json!({"type": "Polygon", "coordinates": [[
                    [-2.5929, 51.4625], [-2.5829, 51.4625], [-2.5829, 51.4665],
                    [-2.5929, 51.4665], [-2.5929, 51.4625]]]}),
                radius_m: None,
                schedule: None,
            },
        }
    }

    #[test]
    fn positions_are_measured_against_the_condition_and_the_timeline_is_in_order() {
        let town = (51.4645, -2.5879);
        assert_eq!(
            against_condition(&curfew(), HOME.0, HOME.1),
            "0 m from home (inside)"
        );
        assert!(against_condition(&curfew(), town.0, town.1).ends_with("(outside)"));
        let inside = against_condition(&zone(), town.0, town.1);
        assert!(inside.ends_with("from the boundary (inside)"), "{inside}");
        assert!(against_condition(&zone(), HOME.0, HOME.1).ends_with("(outside)"));

        let (alert, person, condition) = (alert(AlertType::CurfewViolation), person(), curfew());
        let review = json!({"state": "resolved", "outcome": "breach_confirmed"});
        let history = vec![
            json!({"t": "2026-03-11T08:00:00.000Z", "user": "hana", "action": "resolve",
                   "outcome": "breach_confirmed", "notes": "Admitted"}),
            json!({"t": "2026-03-10T20:00:00.000Z", "user": "hana", "action": "acknowledge"}),
        ];
        let positions: Vec<Reading> = (0..4)
            .map(|i| fix(T0 - 3_600_000 + i * 300_000, HOME))
            .chain((0..3).map(|i| fix(T0 + i * 300_000, town)))
            .collect();
        let version = ConditionVersion {
            record: 3,
            actor: "import:orders.json".into(),
            recorded_ms: T0 - 86_400_000,
            effective_ms: None,
            days_from: chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
            days_to: chrono::NaiveDate::from_ymd_opt(2026, 4, 30),
            basis: VersionBasis::WithdrawnBy(12),
        };
        let input = BreachReportInput {
            alert: &alert,
            evidence: &positions[4..5],
            review: &review,
            history: &history,
            person: &person,
            condition: &condition,
            condition_version: Some(&version),
            positions: &positions,
            position_batches: &[],
            window_from_ms: T0 - 3_600_000,
            window_to_ms: T0 + 9_000_000,
            tiles: None,
        };
        let (report, map) = build(&input);
        let whats: Vec<&str> = report
            .timeline
            .iter()
            .map(|r| r["what"].as_str().unwrap())
            .collect();
        assert!(whats[0].starts_with("Curfew violation began"), "{whats:?}");
        assert!(
            whats[1].starts_with("Hub: acknowledge by hana"),
            "{whats:?}"
        );
        assert!(
            whats[2].starts_with("The condition was met again"),
            "{whats:?}"
        );
        assert!(whats[3].contains("resolve") && whats[3].contains("Admitted"));
        assert!(whats[4].starts_with("Withdrawn: order 'O1' changed (log record 12)"));
        assert_eq!(report.evidence.len(), 1);
        assert_eq!(report.positions.len(), 7);
        assert_eq!(report.condition["curfew"]["addresses"][0]["id"], "home");
        assert_eq!(report.condition["version"]["record"], 3);
        assert_eq!(report.condition["version"]["basis"], "withdrawn_by");
        let words = version_words(Some(&version));
        assert!(
            words.contains("log record 3 (import:orders.json")
                && words.contains("09 Mar 2026 to 30 Apr 2026")
                && words.contains("until the change in log record 12 withdrew it"),
            "{words}"
        );
        assert!(map.contains("home"), "the address is labelled on the map");
        let layers = map_layers(&input);
        assert_eq!(layers.places.len(), 1);
        // The 45-minute gap before the alert starts a new letter.
        assert_eq!(layers.positions[3].label, "A4");
        assert_eq!(layers.positions[4].label, "B1");

        let a = breach_report(&input).expect("builds");
        let b = breach_report(&input).expect("builds");
        assert_eq!(
            (&a.pdf, &a.json, &a.manifest),
            (&b.pdf, &b.json, &b.manifest)
        );
        assert_eq!(a.manifest.files[0].name, "al-1-breach.pdf");
        assert_eq!(a.manifest.inputs["condition"]["order_version_record"], 3);
        assert_eq!(a.manifest.files[1].sha256, sha256_hex(&a.json));
        assert_eq!(
            a.manifest.inputs["positions"]["t"]
                .as_array()
                .unwrap()
                .len(),
            7
        );

        let zone_alert = Alert {
            alert_type: AlertType::ExclusionZoneEntry,
            ..alert.clone()
        };
        let zone = zone();
        let z = BreachReportInput {
            alert: &zone_alert,
            condition: &zone,
            ..input
        };
        let layers = map_layers(&z);
        assert_eq!((layers.areas.len(), layers.places.len()), (1, 0));
        assert_eq!(layers.areas[0].ring.len(), 5);
        let c = breach_report(&z).expect("builds");
        assert_ne!(
            c.manifest.inputs["condition"],
            a.manifest.inputs["condition"]
        );
    }
}
