//! Scoring detection quality: compares the simulator's ground truth (`truth.jsonl`, written by
//! `tagsim generate`) with what tagstream produced (`alerts.jsonl`, and `hits.jsonl` when present,
//! in an outputs directory), and reports precision and recall per alert type, per curfew code, and
//! for crime hits.
//!
//! Matching rules (stable; change them only with a note in the report's `rules` field):
//! - Only truth items whose `type` is an alert type of the contract are scored as alerts; `hit`
//!   items are scored against hits; other truth types (`gps_outlier`, `near_miss`,
//!   `crime_row_error`, …) are informational and ignored.
//! - A truth item and an alert *correspond* when they have the same `activation`, the same `type`,
//!   the same `code` when both carry one, the same `zone` when both carry one, and their time
//!   intervals overlap once each is widened by the tolerance (default 5 minutes) on both sides. An
//!   open interval (`end` null) extends forever.
//! - Recall: each truth item is matched at most once (one-to-one assignment, earliest truth first,
//!   each taking the corresponding unassigned alert that starts closest to it). Recall = matched
//!   truth items ÷ detectable truth items. Items with `"detectable": false` (the readings cannot
//!   show them) are left out of the denominator and never count as misses.
//! - Precision: an alert is correct when it corresponds to any truth item (detectable or not), so an
//!   absence reported as two alerts is not penalised twice. Precision = correct alerts ÷ alerts.
//! - Hits: a hit corresponds to a truth `hit` with the same `activation`, `force` and `crime_ref`
//!   (and `crime_version` when both carry one); time is part of the crime itself. Recall and
//!   precision are computed the same way.
//! - Alert types that carry a `confidence` get a second row, `type [confirmed]`, scoring only the
//!   confirmed alerts (possible ones left out of both precision and recall). Its recall counts
//!   only truth the readings could confirm: items with `"confirmable": false` (detectable, but
//!   the fixes actually taken hold less evidence than the higher confidence needs — e.g. a
//!   two-minute pass through a zone with one fix inside it) are left out of that row's
//!   denominator (and numerator). The same holds for `hits [certain]`. A confirmed alert or a
//!   certain hit over such an item is still correct for precision.
//! - A *withdrawn* alert (one carrying `withdrawn`: later data or a change to the order showed it
//!   no longer holds, `docs/formats.md`) is a retraction, not a claim: it is left out of the
//!   alerts and counted in the row's `withdrawn` (shown under the table), so a possible breach
//!   raised on silence and withdrawn when the backlog arrived stays visible without being scored
//!   as a false alarm.
//! - An `environmental_alcohol` alert over drinking the readings cannot confirm (an undetectable
//!   `drinking_event`: below 0.02 g/dL, or still in the body when the run ends) is correct, not
//!   false: alcohol was there, and "not a drinking curve" is what the readings show. Such
//!   drinking is never a missed environmental item.
//! - Undefined ratios (nothing to divide by) are reported as `null` / `-`.

mod groups;

pub use groups::OUTPUT_GROUPS;

use crate::model::time::parse_time;
use crate::model::TimeMs;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// How many of `row`'s false alerts (`alerts`, one kind) lie over drinking the readings cannot
/// confirm (undetectable `drinking_event` truth: too little, or still in the body when the run
/// ends): alcohol was on the skin, so an `environmental_alcohol` alert there ("alcohol, not a
/// drinking curve") is no false alarm. Such drinking is never a missed environmental item.
fn over_unconfirmable_drinking(
    truth: &[Item],
    alerts: &[Item],
    corr: impl Fn(&Item, &Item) -> bool,
) -> usize {
    let drinking: Vec<Item> = truth
        .iter()
        .filter(|t| t.rec.kind == "drinking_event" && t.rec.detectable == Some(false))
        .map(|t| {
            let mut as_environmental = t.clone();
            as_environmental.rec.kind = "environmental_alcohol".into();
            as_environmental
        })
        .collect();
    let explained = |a: &Item| drinking.iter().any(|t| corr(t, a));
    let real = |a: &Item| truth.iter().any(|t| t.rec.kind == a.rec.kind && corr(t, a));
    alerts.iter().filter(|a| !real(a) && explained(a)).count()
}

/// Default time tolerance for matching alerts to truth.
pub const DEFAULT_TOLERANCE_MS: i64 = 5 * 60_000;

/// The alert types of the contract.
pub const ALERT_TYPES: [&str; 14] = [
    "curfew_violation",
    "exclusion_zone_entry",
    "inclusion_zone_exit",
    "strap_tamper",
    "battery_low",
    "battery_dead",
    "hmu_power_loss",
    "hmu_moved",
    "device_fault",
    "no_contact",
    "drinking_event",
    "alcohol_obstruction",
    "alcohol_removal",
    "environmental_alcohol",
];

/// Why scoring failed.
#[derive(Debug, Error)]
pub enum ScoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One record of truth, alerts or hits, with only the fields scoring looks at.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Record {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub activation: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub detectable: Option<bool>,
    /// Whether the readings hold the evidence the higher confidence (a confirmed zone entry, a
    /// certain hit) needs; absent means yes.
    #[serde(default)]
    pub confirmable: Option<bool>,
    #[serde(default)]
    pub force: Option<String>,
    #[serde(default)]
    pub crime_ref: Option<String>,
    #[serde(default)]
    pub crime_version: Option<serde_json::Value>,
    /// Present when the output was withdrawn (`{"change", "reason"}`).
    #[serde(default)]
    pub withdrawn: Option<serde_json::Value>,
    /// Zone (and some curfew) alerts: `confirmed` or `possible`.
    #[serde(default)]
    pub confidence: Option<String>,
    /// Hits: `certain` or `possible`.
    #[serde(default)]
    pub certainty: Option<String>,
}

/// A record with parsed times.
#[derive(Clone, Debug)]
struct Item {
    rec: Record,
    start_ms: TimeMs,
    end_ms: TimeMs,
}

/// Counts and ratios for one row of the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScoreRow {
    /// `type`, `type/code`, `hits` or `all alerts`.
    pub key: String,
    /// Truth items (all, and those the readings can show).
    pub truth: usize,
    pub detectable: usize,
    /// Detectable truth items matched one-to-one by an alert.
    pub matched: usize,
    /// Detectable truth items with no alert.
    pub missed: usize,
    /// Alerts produced, and those corresponding to no truth item.
    pub alerts: usize,
    pub false_alerts: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Withdrawn alerts (retractions), left out of `alerts`.
    pub withdrawn: usize,
}

impl ScoreRow {
    fn finish(mut self) -> Self {
        self.missed = self.detectable.saturating_sub(self.matched);
        self.precision = (self.alerts > 0)
            .then(|| (self.alerts - self.false_alerts) as f64 / self.alerts as f64);
        self.recall = (self.detectable > 0).then(|| self.matched as f64 / self.detectable as f64);
        self
    }
    fn add(&mut self, o: &ScoreRow) {
        self.truth += o.truth;
        self.detectable += o.detectable;
        self.matched += o.matched;
        self.alerts += o.alerts;
        self.false_alerts += o.false_alerts;
        self.withdrawn += o.withdrawn;
    }
}

/// The scoring result.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScoreReport {
    pub tolerance_ms: i64,
    /// Per alert type, then per curfew code (`curfew_violation/AL08`…), then `all alerts`.
    pub rows: Vec<ScoreRow>,
    /// Crime hits, when the outputs had `hits.jsonl` or the truth had hits.
    pub hits: Option<ScoreRow>,
    /// The same, counting only `certain` hits as outputs.
    pub hits_certain: Option<ScoreRow>,
    /// Truth or alert records left out because their `start`/`end` is missing or not RFC 3339.
    pub skipped_records: usize,
    pub rules: String,
    /// The hub's burden, when the monitored period is known ([`ScoreReport::with_burden`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burden: Option<Burden>,
}

/// False alerts the hub had to look at, per 100 monitored person-days.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Burden {
    /// Days a person was monitored (under at least one activation) in the period, summed.
    pub person_days: f64,
    /// Per alert type, and per confidence for the types that carry one (`type [confirmed]`,
    /// `type [possible]`).
    pub rows: Vec<BurdenRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurdenRow {
    pub key: String,
    pub false_alerts: usize,
    pub per_100_person_days: f64,
}

/// Days each person of `orders` was under at least one activation within `[from_ms, until_ms)`,
/// summed (a tag swap's two activations count once).
pub fn monitored_person_days(
    orders: &crate::model::OrdersFile,
    from_ms: TimeMs,
    until_ms: TimeMs,
) -> f64 {
    let mut by_person: HashMap<&str, Vec<(TimeMs, TimeMs)>> = HashMap::new();
    for a in &orders.activations {
        let (start, end) = (a.from.max(from_ms), a.to.unwrap_or(until_ms).min(until_ms));
        if start < end {
            by_person.entry(&a.person).or_default().push((start, end));
        }
    }
    let mut total_ms = 0i64;
    for spans in by_person.values_mut() {
        spans.sort_unstable();
        let (mut start, mut end) = spans[0];
        for &(s, e) in &spans[1..] {
            if s > end {
                total_ms += end - start;
                start = s;
            }
            end = end.max(e);
        }
        total_ms += end - start;
    }
    total_ms as f64 / 86_400_000.0
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{:.3}", x))
}

impl ScoreReport {
    /// A fixed-width text table: every row, then the rows grouped by output
    /// ([`OUTPUT_GROUPS`]).
    pub fn to_table(&self) -> String {
        let line = |key: &str, cells: [String; 8]| {
            format!(
                "{:<34} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>7}\n",
                key, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
            )
        };
        let header = |title: &str| {
            line(
                title,
                [
                    "truth",
                    "detect",
                    "matched",
                    "missed",
                    "alerts",
                    "false",
                    "precision",
                    "recall",
                ]
                .map(String::from),
            )
        };
        let row_line = |r: &ScoreRow| {
            line(
                &r.key,
                [
                    r.truth.to_string(),
                    r.detectable.to_string(),
                    r.matched.to_string(),
                    r.missed.to_string(),
                    r.alerts.to_string(),
                    r.false_alerts.to_string(),
                    fmt_ratio(r.precision),
                    fmt_ratio(r.recall),
                ],
            )
        };
        let mut s = header("kind");
        for r in self
            .rows
            .iter()
            .chain(self.hits.iter())
            .chain(self.hits_certain.iter())
        {
            s.push_str(&row_line(r));
        }
        s.push_str(&header("by output"));
        for r in self.grouped() {
            s.push_str(&row_line(&r));
        }
        if let Some(b) = &self.burden {
            s.push_str(&format!(
                "hub burden: false alerts per 100 monitored person-days ({:.1} person-days)\n",
                b.person_days
            ));
            for r in b.rows.iter().filter(|r| r.false_alerts > 0) {
                s.push_str(&format!(
                    "  {:<40} {:>7} {:>9.3}\n",
                    r.key, r.false_alerts, r.per_100_person_days
                ));
            }
            s.push_str("  by output:\n");
            for r in self.grouped_burden() {
                s.push_str(&format!(
                    "  {:<40} {:>7} {:>9.3}\n",
                    r.key, r.false_alerts, r.per_100_person_days
                ));
            }
        }
        let withdrawn: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.withdrawn > 0)
            .map(|r| format!("{} {}", r.key, r.withdrawn))
            .collect();
        if !withdrawn.is_empty() {
            s.push_str(&format!(
                "withdrawn (retracted by later data, not scored): {}\n",
                withdrawn.join(", ")
            ));
        }
        s.push_str(&format!("tolerance: {} s\n", self.tolerance_ms / 1000));
        if self.skipped_records > 0 {
            s.push_str(&format!(
                "skipped (no valid start/end): {}\n",
                self.skipped_records
            ));
        }
        s
    }

    /// The report as a JSON document.
    /// The report with the hub's burden over `person_days` monitored: each alert type's false
    /// alerts, and for types with a confidence the confirmed and possible ones apart.
    pub fn with_burden(mut self, person_days: f64) -> Self {
        let per_100 = |n: usize| {
            if person_days > 0.0 {
                n as f64 * 100.0 / person_days
            } else {
                0.0
            }
        };
        let row = |key: String, false_alerts: usize| BurdenRow {
            per_100_person_days: per_100(false_alerts),
            key,
            false_alerts,
        };
        let mut rows = Vec::new();
        for r in &self.rows {
            if r.key.contains('/') || r.key.contains('[') || r.key == "all alerts" {
                continue;
            }
            rows.push(row(r.key.clone(), r.false_alerts));
            let confirmed_key = format!("{} [confirmed]", r.key);
            if let Some(c) = self.rows.iter().find(|c| c.key == confirmed_key) {
                rows.push(row(confirmed_key, c.false_alerts));
                rows.push(row(
                    format!("{} [possible]", r.key),
                    r.false_alerts.saturating_sub(c.false_alerts),
                ));
            }
        }
        if let Some(all) = &self.hits {
            let certain = self.hits_certain.as_ref().map_or(0, |c| c.false_alerts);
            rows.push(row("hits".into(), all.false_alerts));
            rows.push(row("hits [certain]".into(), certain));
            rows.push(row(
                "hits [possible]".into(),
                all.false_alerts.saturating_sub(certain),
            ));
        }
        self.burden = Some(Burden { person_days, rows });
        self
    }

    /// The report as JSON, with the rows grouped by output (`groups`) and, with a burden, the
    /// groups' burden (`burden_groups`).
    pub fn to_json(&self) -> String {
        let mut doc = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert(
                "groups".into(),
                serde_json::to_value(self.grouped()).unwrap_or_default(),
            );
            if self.burden.is_some() {
                obj.insert(
                    "burden_groups".into(),
                    serde_json::to_value(self.grouped_burden()).unwrap_or_default(),
                );
            }
        }
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn item_act(i: &Item) -> Option<&str> {
    i.rec.activation.as_deref()
}

fn rec_act(r: &Record) -> Option<&str> {
    r.activation.as_deref()
}

/// An output re-issued as withdrawn (`withdrawn` present and not null).
fn withdrawn(i: &Item) -> bool {
    i.rec.withdrawn.as_ref().is_some_and(|w| !w.is_null())
}

fn parse_item(rec: Record) -> Option<Item> {
    let start_ms = parse_time(rec.start.as_deref()?).ok()?;
    let end_ms = match rec.end.as_deref() {
        Some(e) => parse_time(e).ok()?,
        None => TimeMs::MAX,
    };
    Some(Item {
        rec,
        start_ms,
        end_ms,
    })
}

fn same_opt(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

fn corresponds(t: &Item, a: &Item, tol: i64) -> bool {
    t.rec.activation == a.rec.activation
        && t.rec.kind == a.rec.kind
        && same_opt(&t.rec.code, &a.rec.code)
        && same_opt(&t.rec.zone, &a.rec.zone)
        && a.start_ms <= t.end_ms.saturating_add(tol)
        && t.start_ms <= a.end_ms.saturating_add(tol)
}

fn hit_corresponds(t: &Record, h: &Record) -> bool {
    let version = match (&t.crime_version, &h.crime_version) {
        (Some(x), Some(y)) => x.to_string().trim_matches('"') == y.to_string().trim_matches('"'),
        _ => true,
    };
    t.activation == h.activation && t.force == h.force && t.crime_ref == h.crime_ref && version
}

/// Matches `truth` against `found` with `corr`, returning the row's counts.
/// Matches `truth` against `found` with `corr`, returning the row's counts. Only items with the
/// same `activation` (from `act`) can correspond, so candidates are looked up by activation.
#[allow(clippy::too_many_arguments)]
fn match_group<T>(
    key: String,
    truth: &[T],
    found: &[T],
    act: impl Fn(&T) -> Option<&str>,
    detectable: impl Fn(&T) -> bool,
    corr: impl Fn(&T, &T) -> bool,
    closeness: impl Fn(&T, &T) -> i64,
) -> ScoreRow {
    let mut by_act: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        by_act.entry(act(f)).or_default().push(i);
    }
    let mut truth_by_act: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        truth_by_act.entry(act(t)).or_default().push(i);
    }
    let none = Vec::new();
    let mut taken = vec![false; found.len()];
    let mut row = ScoreRow {
        key,
        truth: truth.len(),
        alerts: found.len(),
        ..Default::default()
    };
    for t in truth {
        let det = detectable(t);
        if det {
            row.detectable += 1;
        }
        let best = by_act
            .get(&act(t))
            .unwrap_or(&none)
            .iter()
            .copied()
            .filter(|&i| !taken[i] && corr(t, &found[i]))
            .min_by_key(|&i| (closeness(t, &found[i]), i));
        if let Some(i) = best {
            taken[i] = true;
            if det {
                row.matched += 1;
            }
        }
    }
    row.false_alerts = found
        .iter()
        .filter(|a| {
            !truth_by_act
                .get(&act(a))
                .unwrap_or(&none)
                .iter()
                .any(|&i| corr(&truth[i], a))
        })
        .count();
    row.finish()
}

/// Scores parsed truth against parsed alerts (and hits, when given).
pub fn score(
    truth: &[Record],
    alerts: &[Record],
    hits: Option<&[Record]>,
    tolerance_ms: i64,
) -> ScoreReport {
    // Only scored kinds need times; informational truth (crime row errors…) is not counted.
    let scored = |r: &&Record| ALERT_TYPES.contains(&r.kind.as_str());
    let truth_items: Vec<Item> = truth
        .iter()
        .filter(scored)
        .cloned()
        .filter_map(parse_item)
        .collect();
    let parsed: Vec<Item> = alerts.iter().cloned().filter_map(parse_item).collect();
    let skipped =
        truth.iter().filter(scored).count() - truth_items.len() + alerts.len() - parsed.len();
    let (withdrawn_items, alert_items): (Vec<Item>, Vec<Item>) =
        parsed.into_iter().partition(withdrawn);
    let withdrawn_count = |kind: &str, code: Option<&str>| {
        withdrawn_items
            .iter()
            .filter(|i| i.rec.kind == kind && code.is_none_or(|c| i.rec.code.as_deref() == Some(c)))
            .count()
    };
    let mut kinds: Vec<String> = ALERT_TYPES.iter().map(|s| s.to_string()).collect();
    for a in &alert_items {
        if !kinds.contains(&a.rec.kind) {
            kinds.push(a.rec.kind.clone());
        }
    }
    // Group by (type, code?) where code rows are kept for curfew violations.
    let group = |items: &[Item], kind: &str, code: Option<&str>| -> Vec<Item> {
        let mut v: Vec<Item> = items
            .iter()
            .filter(|i| i.rec.kind == kind && code.is_none_or(|c| i.rec.code.as_deref() == Some(c)))
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.start_ms, &a.rec.activation).cmp(&(b.start_ms, &b.rec.activation)));
        v
    };
    let det = |t: &Item| t.rec.detectable.unwrap_or(true);
    let confirmable = |t: &Item| det(t) && t.rec.confirmable.unwrap_or(true);
    let corr = |t: &Item, a: &Item| corresponds(t, a, tolerance_ms);
    let close = |t: &Item, a: &Item| (t.start_ms - a.start_ms).abs();
    let mut rows = Vec::new();
    let mut total = ScoreRow {
        key: "all alerts".into(),
        ..Default::default()
    };
    for kind in &kinds {
        let t = group(&truth_items, kind, None);
        let a = group(&alert_items, kind, None);
        if t.is_empty() && a.is_empty() {
            continue;
        }
        let mut row = match_group(kind.clone(), &t, &a, item_act, det, corr, close);
        if kind == "environmental_alcohol" {
            row.false_alerts -= over_unconfirmable_drinking(&truth_items, &a, corr);
            row = row.finish();
        }
        row.withdrawn = withdrawn_count(kind, None);
        total.add(&row);
        rows.push(row);
    }
    let mut codes: BTreeMap<String, ()> = BTreeMap::new();
    for i in truth_items
        .iter()
        .chain(alert_items.iter())
        .chain(withdrawn_items.iter())
    {
        if i.rec.kind == "curfew_violation" {
            if let Some(c) = &i.rec.code {
                codes.insert(c.clone(), ());
            }
        }
    }
    for code in codes.keys() {
        let t = group(&truth_items, "curfew_violation", Some(code));
        let a = group(&alert_items, "curfew_violation", Some(code));
        let mut row = match_group(
            format!("curfew_violation/{code}"),
            &t,
            &a,
            item_act,
            det,
            corr,
            close,
        );
        row.withdrawn = withdrawn_count("curfew_violation", Some(code));
        rows.push(row);
    }
    // Alert types that carry a confidence: the same comparison with confirmed alerts only.
    for kind in &kinds {
        let a: Vec<Item> = group(&alert_items, kind, None)
            .into_iter()
            .filter(|i| i.rec.confidence.as_deref() == Some("confirmed"))
            .collect();
        let any_confidence = alert_items
            .iter()
            .any(|i| &i.rec.kind == kind && i.rec.confidence.is_some());
        if any_confidence {
            let t = group(&truth_items, kind, None);
            rows.push(match_group(
                format!("{kind} [confirmed]"),
                &t,
                &a,
                item_act,
                confirmable,
                corr,
                close,
            ));
        }
    }
    rows.push(total.finish());
    let truth_hits: Vec<Record> = truth.iter().filter(|r| r.kind == "hit").cloned().collect();
    let certain: Option<Vec<Record>> = hits.map(|h| {
        h.iter()
            .filter(|r| r.certainty.as_deref() == Some("certain"))
            .cloned()
            .collect()
    });
    let hits_certain = certain.as_deref().map(|h| {
        match_group(
            "hits [certain]".into(),
            &truth_hits,
            h,
            rec_act,
            |t| t.detectable.unwrap_or(true) && t.confirmable.unwrap_or(true),
            hit_corresponds,
            |_, _| 0,
        )
    });
    let hits_row = match hits {
        Some(h) => Some(match_group(
            "hits [certain+possible]".into(),
            &truth_hits,
            h,
            rec_act,
            |t| t.detectable.unwrap_or(true),
            hit_corresponds,
            |_, _| 0,
        )),
        None if !truth_hits.is_empty() => Some(match_group(
            "hits [certain+possible]".into(),
            &truth_hits,
            &[],
            rec_act,
            |t| t.detectable.unwrap_or(true),
            hit_corresponds,
            |_, _| 0,
        )),
        None => None,
    };
    ScoreReport {
        tolerance_ms,
        rows,
        hits: hits_row,
        hits_certain,
        skipped_records: skipped,
        rules: "same activation, same type, same code and zone when both have one, intervals overlapping within the tolerance; truth matched at most once; undetectable truth excluded from recall, and truth the readings cannot confirm from the [confirmed] and [certain] rows' recall; withdrawn curfew alerts (end = start, no confidence) counted apart, not as alerts; environmental alerts over undetectable drinking are correct; hits by activation+force+crime_ref(+version)".into(),
        burden: None,
    }
}

/// Reads a JSON Lines file of records (blank lines skipped).
pub fn read_records(path: &Path) -> Result<Vec<Record>, ScoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ScoreError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Scores `truth` (a truth.jsonl) against `outputs/alerts.jsonl` and, if present, `outputs/hits.jsonl`.
pub fn run_score(
    truth: &Path,
    outputs: &Path,
    tolerance_ms: i64,
) -> Result<ScoreReport, ScoreError> {
    let truth = read_records(truth)?;
    let alerts = read_records(&outputs.join("alerts.jsonl"))?;
    let hits_path = outputs.join("hits.jsonl");
    let hits = if hits_path.exists() {
        Some(read_records(&hits_path)?)
    } else {
        None
    };
    Ok(score(&truth, &alerts, hits.as_deref(), tolerance_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Record {
        serde_json::from_str(json).expect("test record")
    }

    fn row<'a>(r: &'a ScoreReport, key: &str) -> &'a ScoreRow {
        r.rows
            .iter()
            .find(|x| x.key == key)
            .unwrap_or_else(|| panic!("no row {key}"))
    }

    /// Seed 22's A17: light drinking (peak 0.015, undetectable) with one noisy reading at
    /// 0.023 between zeros, which the rule calls environmental. Alcohol was there: not false.
    /// The same alert with no drinking under it, or over detectable drinking, is false.
    #[test]
    fn an_environmental_alert_over_unconfirmable_drinking_is_not_a_false_alarm() {
        let truth = vec![
            rec(
                r#"{"type":"drinking_event","activation":"A17","start":"2026-03-02T20:34:49Z","end":"2026-03-02T22:30:14Z","detectable":false}"#,
            ),
            rec(
                r#"{"type":"drinking_event","activation":"A18","start":"2026-03-02T20:00:00Z","end":"2026-03-03T04:00:00Z","detectable":true}"#,
            ),
        ];
        let environmental = |activation: &str, start: &str, end: &str| {
            rec(&format!(
                r#"{{"id":"e-{activation}","type":"environmental_alcohol","activation":"{activation}","start":"{start}","end":"{end}"}}"#
            ))
        };
        let alerts = vec![
            environmental("A17", "2026-03-02T21:09:52Z", "2026-03-02T21:39:55Z"),
            environmental("A17", "2026-03-04T09:00:00Z", "2026-03-04T09:30:00Z"),
            environmental("A18", "2026-03-02T23:00:00Z", "2026-03-02T23:30:00Z"),
        ];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let env = row(&r, "environmental_alcohol");
        assert_eq!(
            (env.truth, env.detectable, env.alerts, env.false_alerts),
            (0, 0, 3, 2)
        );
        assert_eq!(row(&r, "drinking_event").detectable, 1);
    }

    /// Seed 9731's A375: a 2.1-minute pass through a zone with one fix inside can only be a
    /// possible entry. It counts against the all-confidence row's recall, not the confirmed
    /// row's; a confirmable entry missed as confirmed still does.
    #[test]
    fn unconfirmable_truth_is_left_out_of_the_confirmed_rows_recall() {
        let entry = |activation: &str, confirmable: bool| {
            rec(&format!(
                r#"{{"type":"exclusion_zone_entry","activation":"{activation}","zone":"Z1","start":"2026-03-04T17:02:00Z","end":"2026-03-04T17:04:06Z","detectable":true,"confirmable":{confirmable}}}"#
            ))
        };
        let possible = |activation: &str| {
            rec(&format!(
                r#"{{"id":"z-{activation}","type":"exclusion_zone_entry","activation":"{activation}","zone":"Z1","start":"2026-03-04T17:03:00Z","end":"2026-03-04T17:05:00Z","confidence":"possible"}}"#
            ))
        };
        let truth = vec![entry("A375", false), entry("A376", true)];
        let alerts = vec![possible("A375"), possible("A376")];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let all = row(&r, "exclusion_zone_entry");
        assert_eq!((all.detectable, all.matched), (2, 2));
        let confirmed = row(&r, "exclusion_zone_entry [confirmed]");
        assert_eq!(
            (confirmed.detectable, confirmed.matched, confirmed.missed),
            (1, 0, 1)
        );
    }

    /// Pooling sums each row's counts and recomputes its ratios (not an average of ratios), a
    /// type met in one population only is kept, and groups add up their types.
    #[test]
    fn pooled_reports_sum_counts_and_group_types_by_output() {
        let item = |kind: &str, activation: &str| {
            rec(&format!(
                r#"{{"type":"{kind}","activation":"{activation}","start":"2026-03-04T10:00:00Z","end":"2026-03-04T11:00:00Z","detectable":true}}"#
            ))
        };
        let a = score(
            &[item("strap_tamper", "A1"), item("battery_low", "A1")],
            &[item("strap_tamper", "A1")],
            None,
            DEFAULT_TOLERANCE_MS,
        )
        .with_burden(10.0);
        let b = score(
            &[item("strap_tamper", "A2"), item("hmu_moved", "A2")],
            &[
                item("strap_tamper", "A2"),
                item("hmu_moved", "A2"),
                item("battery_low", "A3"),
            ],
            None,
            DEFAULT_TOLERANCE_MS,
        )
        .with_burden(30.0);
        let pooled = ScoreReport::pooled(&[a, b]);
        let tamper = row(&pooled, "strap_tamper");
        assert_eq!((tamper.detectable, tamper.matched), (2, 2));
        let low = row(&pooled, "battery_low");
        assert_eq!(
            (low.detectable, low.matched, low.alerts, low.false_alerts),
            (1, 0, 1, 1)
        );
        assert_eq!(low.recall, Some(0.0));
        assert_eq!(row(&pooled, "hmu_moved").matched, 1);
        assert_eq!(
            pooled.rows.last().map(|r| r.key.as_str()),
            Some("all alerts")
        );
        let health = pooled
            .grouped()
            .into_iter()
            .find(|g| g.key == "device health, no contact, tamper")
            .expect("device health group");
        assert_eq!(
            (
                health.detectable,
                health.matched,
                health.alerts,
                health.false_alerts
            ),
            (4, 3, 4, 1)
        );
        let burden = pooled.burden.as_ref().expect("burden");
        assert!((burden.person_days - 40.0).abs() < 1e-9);
        let health_burden = pooled
            .grouped_burden()
            .into_iter()
            .find(|g| g.key == "device health, no contact, tamper")
            .expect("device health burden");
        assert!((health_burden.per_100_person_days - 2.5).abs() < 1e-9);
    }

    #[test]
    fn person_days_count_each_person_once_within_the_period() {
        let orders: crate::model::OrdersFile = serde_json::from_value(serde_json::json!({
            "people": [{"id": "P1"}, {"id": "P2"}],
            "activations": [
                // A tag swap: two activations, one person, no gap.
                {"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-01T00:00:00Z", "to": "2026-03-04T00:00:00Z"},
                {"id": "A2", "person": "P1", "tag": "T2", "from": "2026-03-04T00:00:00Z"},
                // Fitted half-way through the period.
                {"id": "A3", "person": "P2", "tag": "T3", "from": "2026-03-05T12:00:00Z"}],
            "orders": []
        }))
        .expect("orders");
        let t = |s: &str| parse_time(s).expect("time");
        let days = monitored_person_days(
            &orders,
            t("2026-03-02T00:00:00Z"),
            t("2026-03-09T00:00:00Z"),
        );
        assert!((days - (7.0 + 3.5)).abs() < 1e-9, "{days}");
    }

    #[test]
    fn the_burden_splits_false_alerts_by_confidence_per_100_person_days() {
        let truth = vec![rec(
            r#"{"type":"exclusion_zone_entry","activation":"A1","zone":"Z1","start":"2026-03-02T10:00:00Z","end":"2026-03-02T10:10:00Z"}"#,
        )];
        let zone = |id: &str, start: &str, confidence: &str| {
            rec(&format!(
                r#"{{"id":"{id}","type":"exclusion_zone_entry","activation":"A1","zone":"Z1","start":"{start}","end":"{start}","confidence":"{confidence}"}}"#
            ))
        };
        let alerts = vec![
            zone("z1", "2026-03-02T10:01:00Z", "confirmed"),
            zone("z2", "2026-03-03T10:00:00Z", "possible"),
            zone("z3", "2026-03-04T10:00:00Z", "possible"),
        ];
        let report = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS).with_burden(50.0);
        let burden = report.burden.expect("burden");
        let get = |key: &str| {
            burden
                .rows
                .iter()
                .find(|r| r.key == key)
                .map(|r| (r.false_alerts, r.per_100_person_days))
        };
        assert_eq!(get("exclusion_zone_entry"), Some((2, 4.0)));
        assert_eq!(get("exclusion_zone_entry [confirmed]"), Some((0, 0.0)));
        assert_eq!(get("exclusion_zone_entry [possible]"), Some((2, 4.0)));
    }

    #[test]
    fn matches_by_activation_type_code_and_overlap_within_tolerance() {
        let truth = vec![
            rec(
                r#"{"type":"curfew_violation","code":"AL08","activation":"A1","start":"2026-03-02T19:00:00Z","end":"2026-03-02T19:40:00Z"}"#,
            ),
            rec(
                r#"{"type":"curfew_violation","code":"AL10","activation":"A1","start":"2026-03-03T23:00:00Z","end":"2026-03-04T00:10:00Z"}"#,
            ),
            rec(
                r#"{"type":"curfew_violation","code":"AL12","activation":"A2","start":"2026-03-02T19:00:00Z","end":"2026-03-03T07:00:00Z"}"#,
            ),
            rec(
                r#"{"type":"gps_outlier","activation":"A2","start":"2026-03-02T10:00:00Z","end":"2026-03-02T10:00:00Z"}"#,
            ),
        ];
        let alerts = vec![
            // Matches AL08 although it starts 4 minutes after the truth ended (tolerance 5 min).
            rec(
                r#"{"id":"x1","type":"curfew_violation","code":"AL08","activation":"A1","start":"2026-03-02T19:44:00Z","end":null,"late":false}"#,
            ),
            // Wrong code for the AL10 truth: a false alert, and AL10 is missed.
            rec(
                r#"{"id":"x2","type":"curfew_violation","code":"AL11","activation":"A1","start":"2026-03-03T23:05:00Z","end":"2026-03-04T00:10:00Z"}"#,
            ),
            // Right code, wrong activation.
            rec(
                r#"{"id":"x3","type":"curfew_violation","code":"AL12","activation":"A9","start":"2026-03-02T19:00:00Z","end":"2026-03-03T07:00:00Z"}"#,
            ),
        ];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let cv = row(&r, "curfew_violation");
        assert_eq!(
            (cv.truth, cv.matched, cv.missed, cv.alerts, cv.false_alerts),
            (3, 1, 2, 3, 2)
        );
        assert_eq!(cv.recall, Some(1.0 / 3.0));
        assert_eq!(row(&r, "curfew_violation/AL08").precision, Some(1.0));
        assert_eq!(row(&r, "curfew_violation/AL10").recall, Some(0.0));
        assert_eq!(row(&r, "curfew_violation/AL11").precision, Some(0.0));
        assert_eq!(r.skipped_records, 0);
        assert!(
            r.rows.iter().all(|x| x.key != "gps_outlier"),
            "informational types are not scored"
        );
        // A tighter tolerance loses the AL08 match.
        let strict = score(&truth, &alerts, None, 60_000);
        assert_eq!(row(&strict, "curfew_violation/AL08").matched, 0);
    }

    #[test]
    fn each_truth_item_matched_once_and_split_alerts_are_not_false() {
        let truth = vec![rec(
            r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T12:00:00Z","end":"2026-03-02T12:30:00Z"}"#,
        )];
        let alerts = vec![
            rec(
                r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T12:01:00Z","end":"2026-03-02T12:10:00Z"}"#,
            ),
            rec(
                r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T12:15:00Z","end":"2026-03-02T12:29:00Z"}"#,
            ),
            rec(
                r#"{"type":"exclusion_zone_entry","zone":"Z2","activation":"A1","start":"2026-03-02T12:15:00Z","end":"2026-03-02T12:29:00Z"}"#,
            ),
        ];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let z = row(&r, "exclusion_zone_entry");
        assert_eq!((z.matched, z.alerts, z.false_alerts), (1, 3, 1));
        assert_eq!(z.recall, Some(1.0));
        assert!((z.precision.unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn undetectable_truth_is_neither_missed_nor_makes_alerts_false() {
        let truth = vec![
            rec(
                r#"{"type":"drinking_event","activation":"A3","start":"2026-03-02T20:00:00Z","end":"2026-03-03T02:00:00Z","detectable":false}"#,
            ),
            rec(
                r#"{"type":"drinking_event","activation":"A3","start":"2026-03-04T20:00:00Z","end":"2026-03-05T02:00:00Z"}"#,
            ),
        ];
        let alerts = vec![rec(
            r#"{"type":"drinking_event","activation":"A3","start":"2026-03-02T21:00:00Z","end":"2026-03-03T01:00:00Z"}"#,
        )];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let d = row(&r, "drinking_event");
        assert_eq!(
            (d.truth, d.detectable, d.matched, d.missed, d.false_alerts),
            (2, 1, 0, 1, 0)
        );
        assert_eq!(d.precision, Some(1.0));
        assert_eq!(d.recall, Some(0.0));
    }

    #[test]
    fn hits_match_on_activation_force_and_reference() {
        let truth = vec![
            rec(
                r#"{"type":"hit","activation":"A1","force":"AvonSomerset","crime_ref":"AVS/26/000001","crime_version":1,"start":"2026-03-02T10:00:00Z","end":"2026-03-02T12:00:00Z"}"#,
            ),
            rec(
                r#"{"type":"hit","activation":"A2","force":"AvonSomerset","crime_ref":"AVS/26/000002","crime_version":1,"start":"2026-03-02T10:00:00Z","end":"2026-03-02T12:00:00Z"}"#,
            ),
        ];
        let hits = vec![
            rec(
                r#"{"id":"h1","force":"AvonSomerset","batch_id":"AVS20260303","crime_ref":"AVS/26/000001","crime_version":1,"activation":"A1","certainty":"possible"}"#,
            ),
            rec(
                r#"{"id":"h2","force":"AvonSomerset","batch_id":"AVS20260303","crime_ref":"AVS/26/000003","crime_version":1,"activation":"A1","certainty":"possible"}"#,
            ),
        ];
        let r = score(&truth, &[], Some(&hits), DEFAULT_TOLERANCE_MS);
        let h = r.hits.as_ref().expect("hits row");
        assert_eq!(
            (h.truth, h.matched, h.missed, h.alerts, h.false_alerts),
            (2, 1, 1, 2, 1)
        );
        assert_eq!(h.precision, Some(0.5));
        let table = r.to_table();
        assert!(table.contains("hits") && table.contains("0.500"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["hits"]["matched"], 1);
    }

    #[test]
    fn records_without_valid_times_are_counted_as_skipped() {
        let truth = vec![
            rec(r#"{"type":"strap_tamper","activation":"A1","start":"yesterday","end":null}"#),
            rec(r#"{"type":"crime_row_error","file":"x.csv","line":3}"#),
        ];
        let alerts = vec![rec(r#"{"type":"strap_tamper","activation":"A1"}"#)];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        assert_eq!(r.skipped_records, 2);
        assert!(r.to_table().contains("skipped (no valid start/end): 2"));
    }

    #[test]
    fn withdrawn_curfew_alerts_are_counted_apart_not_as_false_alarms() {
        let truth = vec![rec(
            r#"{"type":"curfew_violation","code":"AL12","activation":"A1","start":"2026-03-02T19:00:00Z","end":"2026-03-03T07:00:00Z"}"#,
        )];
        let alerts = vec![
            rec(
                r#"{"type":"curfew_violation","code":"AL12","activation":"A1","start":"2026-03-02T19:00:00Z","end":"2026-03-03T07:00:00Z","confidence":"confirmed"}"#,
            ),
            // A possible AL08 raised on silence, withdrawn when the backlog showed the person home.
            rec(
                r#"{"type":"curfew_violation","code":"AL08","activation":"A2","start":"2026-03-02T19:00:00Z","end":"2026-03-02T21:00:00Z","confidence":"possible","late":true,"withdrawn":{"change":null,"reason":"readings that arrived later show no absence at its start in this curfew window"}}"#,
            ),
            // An AL09 is [r, r] too, but it carries a confidence: a real alert (here a false one).
            rec(
                r#"{"type":"curfew_violation","code":"AL09","activation":"A3","start":"2026-03-02T19:40:00Z","end":"2026-03-02T19:40:00Z","confidence":"confirmed"}"#,
            ),
        ];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        let cv = row(&r, "curfew_violation");
        assert_eq!((cv.alerts, cv.false_alerts, cv.withdrawn), (2, 1, 1));
        let al08 = row(&r, "curfew_violation/AL08");
        assert_eq!((al08.alerts, al08.withdrawn, al08.precision), (0, 1, None));
        assert_eq!(row(&r, "curfew_violation/AL09").false_alerts, 1);
        assert!(r
            .to_table()
            .contains("withdrawn (retracted by later data, not scored): curfew_violation 1, curfew_violation/AL08 1"));
    }

    #[test]
    fn confirmed_alerts_get_their_own_row() {
        let truth = vec![rec(
            r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T12:00:00Z","end":"2026-03-02T12:30:00Z"}"#,
        )];
        let alerts = vec![
            rec(
                r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T12:02:00Z","end":"2026-03-02T12:20:00Z","confidence":"confirmed"}"#,
            ),
            rec(
                r#"{"type":"exclusion_zone_entry","zone":"Z1","activation":"A1","start":"2026-03-02T15:00:00Z","end":"2026-03-02T15:05:00Z","confidence":"possible"}"#,
            ),
        ];
        let r = score(&truth, &alerts, None, DEFAULT_TOLERANCE_MS);
        assert_eq!(row(&r, "exclusion_zone_entry").precision, Some(0.5));
        let c = row(&r, "exclusion_zone_entry [confirmed]");
        assert_eq!((c.alerts, c.precision, c.recall), (1, Some(1.0), Some(1.0)));
        // The confirmed rows do not count twice in the total.
        assert_eq!(row(&r, "all alerts").alerts, 2);
    }

    #[test]
    fn run_score_reads_files_and_reports_missing_outputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let truth = dir.path().join("truth.jsonl");
        std::fs::write(&truth, "{\"type\":\"strap_tamper\",\"activation\":\"A1\",\"start\":\"2026-03-02T10:00:00Z\",\"end\":\"2026-03-02T10:05:00Z\"}\n").expect("write");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        assert!(matches!(
            run_score(&truth, &out, DEFAULT_TOLERANCE_MS),
            Err(ScoreError::Read { .. })
        ));
        std::fs::write(out.join("alerts.jsonl"), "{\"type\":\"strap_tamper\",\"activation\":\"A1\",\"start\":\"2026-03-02T10:00:30Z\",\"end\":\"2026-03-02T10:04:00Z\"}\n\n").expect("write");
        let r = run_score(&truth, &out, DEFAULT_TOLERANCE_MS).expect("score");
        assert_eq!(row(&r, "strap_tamper").recall, Some(1.0));
        assert!(r.hits.is_none());
        std::fs::write(out.join("alerts.jsonl"), "not json\n").expect("write");
        assert!(matches!(
            run_score(&truth, &out, DEFAULT_TOLERANCE_MS),
            Err(ScoreError::Parse { line: 1, .. })
        ));
    }
}
