//! Ground truth: what really happened, as JSON Lines, to score tagstream's alerts and hits against.
//!
//! Alert-like items use the alert contract's `type` names and curfew `code`s (AL08–AL12, AL04,
//! AL05, AL21, AL23, AL24). Curfew and zone items are derived from the simulated trajectory itself,
//! not from what the behaviour model intended, so an accidental breach is recorded too (its
//! `behaviour` is `incidental`). Curfew rules used for derivation, per window `[ws, we)` and each
//! maximal interval `[a, b]` away from the address inside it:
//! - `a = ws`, `b = we`: AL12 `[ws, we]` (out for the entire period);
//! - `a = ws`, `b < we`: if `b − ws` exceeds the order's grace, AL08 `[ws, b]` and AL09 `[b, b]`
//!   (within 5 minutes either side of the grace limit they are recorded as not `detectable`);
//! - `a > ws`, `b = we`: AL11 `[a, we]`;
//! - `a > ws`, `b < we`: AL10 `[a, b]`.
//!
//! `no_contact` is a silence of more than `--no-contact-after-min` (60, tagstream's default)
//! between two uploads of a tag, from the last contact to the next (open when still silent at the
//! end); silences within 5 minutes of the threshold are not `detectable`.
//!
//! Informational types (not alerts): `hit` (a true crime hit), `near_miss` (a crime placed just
//! outside the vicinity or the window), `gps_outlier` (a multipath fix), `signal_loss` (no mobile
//! signal: readings stored and uploaded later), `crime_row_error` (a deliberately malformed CSV
//! row). `detectable` says whether the readings can show the item
//! (e.g. a drink peaking under 0.02 g/dL, or a zone clipped for seconds between fixes, cannot).
//!
//! `confirmable` (absent means `true`) says whether a detectable item can get the higher
//! confidence from the readings actually taken. A `hit` carries it only when `false`: no fix the tag
//! reported under the hit's activation during the crime's window, simulated outliers aside, has
//! its whole confidence circle inside the vicinity (`distance + precision ≤ 100 m`, the distance
//! measured as the hit rule measures it), so tagstream can only call it `possible`; the score's
//! `hits [certain]` row leaves such hits out of its recall (`crimes::confirmable`).

use crate::orders::Window;
use crate::plan::{Plan, Seg};
use crate::population::Profile;
use serde::Serialize;
use tagstream::model::time::{rfc3339_ms, rfc3339_ms_opt};
use tagstream::model::TimeMs;

/// One truth record.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TruthItem {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(with = "rfc3339_ms")]
    pub start: TimeMs,
    #[serde(with = "rfc3339_ms_opt")]
    pub end: Option<TimeMs>,
    pub detectable: bool,
    /// Whether the readings hold the evidence the higher confidence needs (a confirmed zone
    /// entry: see [`zone_truth`]; a certain hit: `crimes::confirmable`); absent where that does
    /// not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crime_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crime_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closest_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub closest_t: Option<TimeMs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_tac_gdl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_m: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

mod opt_time {
    use super::*;
    use serde::Serializer;
    pub fn serialize<S: Serializer>(t: &Option<TimeMs>, s: S) -> Result<S::Ok, S::Error> {
        rfc3339_ms_opt::serialize(t, s)
    }
}

/// The alert types the contract defines (items of other types are informational).
pub use tagstream::score::ALERT_TYPES;

impl TruthItem {
    /// An item about a person, under the activation (and tag) in force at `start`.
    pub fn about(p: &Profile, kind: &str, start: TimeMs, end: Option<TimeMs>) -> Self {
        let a = p.activation_at(start);
        TruthItem {
            kind: kind.to_string(),
            activation: Some(a.id.clone()),
            person: Some(p.person.id.clone()),
            tag: Some(a.tag.clone()),
            start,
            end,
            detectable: true,
            ..Default::default()
        }
    }
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }
    pub fn with_behaviour(mut self, b: &str) -> Self {
        self.behaviour = Some(b.to_string());
        self
    }
    /// Sort key: start, then activation number, type, code, zone, crime reference.
    pub fn sort_key(&self) -> (TimeMs, u64, String, String, String, String) {
        let act = self
            .activation
            .as_deref()
            .and_then(|a| a.trim_start_matches('A').parse().ok())
            .unwrap_or(0);
        (
            self.start,
            act,
            self.kind.clone(),
            self.code.clone().unwrap_or_default(),
            self.zone.clone().unwrap_or_default(),
            format!(
                "{}{:?}",
                self.crime_ref.clone().unwrap_or_default(),
                self.line
            ),
        )
    }
}

fn injected_label(
    plan: &Plan,
    labels: &[&str],
    t0: TimeMs,
    t1: TimeMs,
    zone: Option<&str>,
) -> String {
    plan.injected
        .iter()
        .find(|i| {
            labels.contains(&i.label)
                && i.t0_ms <= t1 + 10 * 60_000
                && t0 <= i.t1_ms + 10 * 60_000
                && (zone.is_none() || i.zone.as_deref() == zone)
        })
        .map_or_else(|| "incidental".to_string(), |i| i.label.to_string())
}

/// Half-width of the band around a curfew's grace limit whose late arrivals are not `detectable`.
pub const GRACE_MARGIN_MS: i64 = 5 * 60_000;

/// Curfew violations in one cycle's windows, from the trajectory (rules in the module doc).
pub fn curfew_truth(p: &Profile, plan: &Plan, windows: &[Window], out: &mut Vec<TruthItem>) {
    for w in windows {
        if w.start_ms < p.activation.from {
            continue;
        }
        let (ws, we) = (w.start_ms, w.end_ms);
        let mut home: Vec<(TimeMs, TimeMs)> = Vec::new();
        for s in &plan.segs {
            if let Seg::Stay {
                place: Some(pl),
                t0_ms,
                t1_ms,
                ..
            } = s
            {
                if *pl == w.place {
                    let (a, b) = ((*t0_ms).max(ws), (*t1_ms).min(we));
                    if a < b {
                        match home.last_mut() {
                            Some(last) if last.1 >= a => last.1 = last.1.max(b),
                            _ => home.push((a, b)),
                        }
                    }
                }
            }
        }
        let mut away = Vec::new();
        let mut cur = ws;
        for (a, b) in &home {
            if *a > cur {
                away.push((cur, *a));
            }
            cur = cur.max(*b);
        }
        if cur < we {
            away.push((cur, we));
        }
        let grace_ms = w.grace_min as i64 * 60_000;
        for (a, b) in away {
            let base = |code: &str, s: TimeMs, e: TimeMs, labels: &[&str]| {
                let mut it = TruthItem::about(p, "curfew_violation", s, Some(e)).with_code(code);
                it.order = Some(w.order_id.clone());
                it.address = Some(w.address_id.clone());
                it.behaviour = Some(injected_label(plan, labels, s, e, None));
                it
            };
            if a == ws && b == we {
                out.push(base("AL12", ws, we, &["whole_night_absence"]));
            } else if a == ws {
                // Arrivals within 5 minutes either side of the grace limit are recorded but not
                // counted: an indoor arrival is often first seen by a fix minutes later.
                if b - ws > grace_ms - GRACE_MARGIN_MS {
                    let mut al08 = base("AL08", ws, b, &["late_return", "within_grace"]);
                    al08.detectable = b - ws > grace_ms + GRACE_MARGIN_MS;
                    let mut al09 = base("AL09", b, b, &["late_return", "within_grace"]);
                    al09.detectable = al08.detectable;
                    out.push(al08);
                    out.push(al09);
                }
            } else if b == we {
                let mut it = base("AL11", a, we, &["out_at_end"]);
                it.detectable = we - a >= 5 * 60_000;
                out.push(it);
            } else {
                let mut it = base("AL10", a, b, &["leave_during_curfew"]);
                it.detectable = b - a >= 5 * 60_000;
                out.push(it);
            }
        }
    }
}

/// Exclusion-zone entries and inclusion-zone exits in one cycle, from the trajectory. An item is
/// `detectable` when the breach lasted two minutes (two fixes a minute apart can fall in it).
/// Whether it is `confirmable` depends on the fixes the tag then takes, so the caller decides it
/// once the item is over ([`ZONE_CONFIRM_SPAN_MS`]).
pub fn zone_truth(p: &Profile, plan: &Plan, out: &mut Vec<TruthItem>) {
    const STEP_MS: i64 = 5_000;
    for z in &p.rules.zones {
        let c = z.shape.centre();
        let (inner, outer) = match &z.shape {
            crate::orders::Shape::Circle { radius_m, .. } => (*radius_m, *radius_m),
            crate::orders::Shape::Polygon(poly) => {
                let ring = poly.rings.first().map(|r| r.as_slice()).unwrap_or(&[]);
                let d: Vec<f64> = ring.iter().map(|q| q.dist_m(c)).collect();
                (
                    d.iter().cloned().fold(f64::MAX, f64::min) * 0.7,
                    d.iter().cloned().fold(0.0, f64::max),
                )
            }
        };
        let bad = |pos: crate::geo::Xy, t: TimeMs| z.breached_at(pos, t);
        // Runs of "in breach" as [start, end).
        let mut runs: Vec<(TimeMs, TimeMs)> = Vec::new();
        let mut push = |a: TimeMs, b: TimeMs| match runs.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => runs.push((a, b)),
        };
        for s in &plan.segs {
            match s {
                Seg::Stay {
                    pos, t0_ms, t1_ms, ..
                } => {
                    let d = pos.dist_m(c);
                    let trivially_ok = if z.exclusion { d > outer } else { d < inner };
                    if trivially_ok {
                        continue;
                    }
                    if z.schedule.is_empty() {
                        if bad(*pos, *t0_ms) {
                            push(*t0_ms, *t1_ms);
                        }
                    } else {
                        let mut t = *t0_ms;
                        while t < *t1_ms {
                            let e = (t + 60_000).min(*t1_ms);
                            if bad(*pos, t) {
                                push(t, e);
                            }
                            t = e;
                        }
                    }
                }
                Seg::Move(trip) => {
                    let trivially_ok = if z.exclusion {
                        trip.pts
                            .windows(2)
                            .all(|w| crate::geo::seg_dist_m(c, w[0], w[1]).0 > outer)
                    } else {
                        trip.pts.iter().all(|q| q.dist_m(c) < inner)
                    };
                    if trivially_ok {
                        continue;
                    }
                    let mut t = trip.start_ms();
                    while t < trip.end_ms() {
                        let e = (t + STEP_MS).min(trip.end_ms());
                        if bad(trip.at(t).pos, t) {
                            push(t, e);
                        }
                        t = e;
                    }
                }
            }
        }
        let kind = if z.exclusion {
            "exclusion_zone_entry"
        } else {
            "inclusion_zone_exit"
        };
        let labels: &[&str] = if z.exclusion {
            &["exclusion_pass_through", "exclusion_dwell"]
        } else {
            &["inclusion_exit"]
        };
        for (a, b) in runs {
            if a < p.activation.from {
                continue;
            }
            let mut it = TruthItem::about(p, kind, a, Some(b));
            it.zone = Some(z.id.clone());
            it.detectable = b - a >= 2 * 60_000;
            it.behaviour = Some(injected_label(
                plan,
                labels,
                a,
                b,
                if z.exclusion {
                    Some(z.id.as_str())
                } else {
                    None
                },
            ));
            out.push(it);
        }
    }
}

/// What a zone item needs to be `confirmable`, the zones rule's default standard for a confirmed
/// entry: GPS fixes taken while the wearer was in breach (not simulated multipath outliers),
/// each no less precise than `max_confirm_precision_m` and with its whole reported circle on the
/// breaching side, the first and last at least a minute apart. A breach whose fixes fall short
/// (a two-minute pass with one fix inside, or fixes whose circles straddle the boundary) can
/// only ever be a `possible` entry.
pub const ZONE_CONFIRM_SPAN_MS: TimeMs = 60_000;
/// See [`ZONE_CONFIRM_SPAN_MS`].
pub const ZONE_CONFIRM_MAX_PRECISION_M: f64 = 50.0;

/// Marks items the readings cannot show because the activation's tag was flat (no reading shows
/// where the wearer was, and a flat tag reports no strap or fault events): movement items that
/// began while it was flat, device faults raised then, and strap tampers opened or closed then
/// (the event is lost, so the rule sees no tamper, or one that never closes).
pub fn mark_unseen_while_dead(items: &mut [TruthItem]) {
    let mut dead: std::collections::HashMap<String, Vec<(TimeMs, TimeMs)>> = Default::default();
    for it in items.iter().filter(|i| i.kind == "battery_dead") {
        if let Some(a) = &it.activation {
            dead.entry(a.clone())
                .or_default()
                .push((it.start, it.end.unwrap_or(TimeMs::MAX)));
        }
    }
    for it in items.iter_mut() {
        let strap = match it.kind.as_str() {
            "curfew_violation"
            | "exclusion_zone_entry"
            | "inclusion_zone_exit"
            | "device_fault" => false,
            "strap_tamper" => true,
            _ => continue,
        };
        let flat_at = |t: TimeMs| {
            it.activation
                .as_ref()
                .and_then(|a| dead.get(a))
                .is_some_and(|iv| iv.iter().any(|&(a, b)| t >= a && t <= b))
        };
        let flat = flat_at(it.start) || (strap && it.end.is_some_and(flat_at));
        if flat {
            it.detectable = false;
            it.behaviour = Some(format!(
                "{} (tag flat)",
                it.behaviour.as_deref().unwrap_or("incidental")
            ));
        }
    }
}

/// Joins items of the same activation, type, code and zone that continue each other across a
/// cycle boundary (end of one within a minute of the start of the next), then sorts.
pub fn merge_and_sort(mut items: Vec<TruthItem>) -> Vec<TruthItem> {
    mark_unseen_while_dead(&mut items);
    items.sort_by(|a, b| {
        (&a.activation, &a.kind, &a.code, &a.zone, a.start).cmp(&(
            &b.activation,
            &b.kind,
            &b.code,
            &b.zone,
            b.start,
        ))
    });
    let mut out: Vec<TruthItem> = Vec::with_capacity(items.len());
    for it in items {
        let mergeable = matches!(
            it.kind.as_str(),
            "exclusion_zone_entry" | "inclusion_zone_exit"
        );
        if let Some(last) = out.last_mut() {
            if mergeable
                && last.kind == it.kind
                && last.activation == it.activation
                && last.zone == it.zone
                && last.end.is_some_and(|e| it.start - e <= 60_000)
            {
                last.end = it.end.max(last.end);
                last.detectable = last.end.unwrap_or(last.start) - last.start >= 2 * 60_000;
                last.confirmable = match (last.confirmable, it.confirmable) {
                    (Some(a), Some(b)) => Some(a || b),
                    (a, b) => a.or(b),
                };
                continue;
            }
        }
        out.push(it);
    }
    out.sort_by_key(|a| a.sort_key());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &str, start: TimeMs, end: Option<TimeMs>) -> TruthItem {
        TruthItem {
            kind: kind.into(),
            activation: Some("A1".into()),
            start,
            end,
            detectable: true,
            ..Default::default()
        }
    }

    /// Seed 22's A397: a strap opened at 04:06 while the tag had been flat since 22:58 sent no
    /// event, so nothing could show it.
    #[test]
    fn strap_and_fault_events_while_the_tag_is_flat_are_not_detectable() {
        let mut items = vec![
            item("battery_dead", 1_000, Some(10_000)),
            item("strap_tamper", 2_000, Some(3_000)),
            item("strap_tamper", 500, Some(2_000)),
            item("strap_tamper", 20_000, Some(21_000)),
            item("device_fault", 5_000, Some(5_000)),
            item("device_fault", 11_000, Some(11_000)),
            item("battery_low", 5_000, None),
        ];
        mark_unseen_while_dead(&mut items);
        let detectable: Vec<bool> = items.iter().map(|i| i.detectable).collect();
        assert_eq!(
            detectable,
            vec![true, false, false, true, false, true, true],
            "{items:?}"
        );
        let mut other = vec![
            item("battery_dead", 1_000, Some(10_000)),
            item("strap_tamper", 2_000, Some(3_000)),
        ];
        other[1].activation = Some("A2".into());
        mark_unseen_while_dead(&mut other);
        assert!(other[1].detectable, "another activation's flat tag");
    }
}
