//! The orders document (contract section 8): people, activations and orders with their
//! conditions. Each record is checked on its own; a bad record is reported with its line number
//! and what is wrong, and every good record is kept.

use super::LineError;
use crate::model::{parse_local_hhmm, Activation, Condition, Order, Person};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};

/// The accepted content of an orders document: a model type (the rules and the order book use
/// it without this format), named here too for the format's readers.
pub use crate::model::OrdersFile;

/// The result of reading an orders document: what was accepted, and what was not (and why).
#[derive(Debug, Clone, Default)]
pub struct OrdersLoad {
    pub accepted: OrdersFile,
    pub errors: Vec<LineError>,
}

#[derive(Deserialize)]
struct RawDocument<'a> {
    #[serde(borrow, default)]
    people: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    activations: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    orders: Vec<&'a RawValue>,
}

/// Why the document as a whole could not be read.
#[derive(Debug, thiserror::Error)]
#[error("orders document is not valid JSON of the expected shape at line {line}, column {column}: {message}")]
pub struct OrdersDocumentError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn line_of(text: &str, raw: &RawValue) -> usize {
    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn id_of(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    serde_json::from_str::<Id>(raw.get()).ok()?.id
}

/// Parses and validates an orders document.
pub fn parse_orders(text: &str) -> Result<OrdersLoad, OrdersDocumentError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc: RawDocument = serde_json::from_str(text).map_err(|e| OrdersDocumentError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let mut load = OrdersLoad::default();

    let report =
        |errors: &mut Vec<LineError>, kind: &str, index: usize, raw: &RawValue, message: String| {
            let record = match id_of(raw) {
                Some(id) => format!("{kind}[{index}] \"{id}\""),
                None => format!("{kind}[{index}]"),
            };
            errors.push(LineError {
                line: line_of(text, raw),
                record: Some(record),
                message,
            });
        };

    let mut person_ids = HashSet::new();
    for (i, raw) in doc.people.iter().enumerate() {
        match serde_json::from_str::<Person>(raw.get()) {
            Ok(p) if p.id.trim().is_empty() => report(
                &mut load.errors,
                "people",
                i,
                raw,
                "'id' must not be empty".into(),
            ),
            Ok(p) if !person_ids.insert(p.id.clone()) => report(
                &mut load.errors,
                "people",
                i,
                raw,
                format!("duplicate person id '{}'", p.id),
            ),
            Ok(p) => load.accepted.people.push(p),
            Err(e) => report(&mut load.errors, "people", i, raw, e.to_string()),
        }
    }

    let mut activation_ids = HashSet::new();
    let mut by_tag: HashMap<String, Vec<Activation>> = HashMap::new();
    for (i, raw) in doc.activations.iter().enumerate() {
        let result = serde_json::from_str::<Activation>(raw.get())
            .map_err(|e| e.to_string())
            .and_then(|a| {
                check_activation(&a, &person_ids, &activation_ids, &by_tag)?;
                Ok(a)
            });
        match result {
            Ok(a) => {
                activation_ids.insert(a.id.clone());
                by_tag.entry(a.tag.clone()).or_default().push(a.clone());
                load.accepted.activations.push(a);
            }
            Err(message) => report(&mut load.errors, "activations", i, raw, message),
        }
    }

    let mut order_ids = HashSet::new();
    for (i, raw) in doc.orders.iter().enumerate() {
        let result = serde_json::from_str::<Order>(raw.get())
            .map_err(|e| e.to_string())
            .and_then(|o| {
                check_order(&o, &person_ids, &order_ids)?;
                Ok(o)
            });
        match result {
            Ok(o) => {
                order_ids.insert(o.id.clone());
                load.accepted.orders.push(o);
            }
            Err(message) => report(&mut load.errors, "orders", i, raw, message),
        }
    }
    Ok(load)
}

fn check_activation(
    a: &Activation,
    people: &HashSet<String>,
    ids: &HashSet<String>,
    by_tag: &HashMap<String, Vec<Activation>>,
) -> Result<(), String> {
    check_activation_record(a)?;
    if ids.contains(&a.id) {
        return Err(format!("duplicate activation id '{}'", a.id));
    }
    if !people.contains(&a.person) {
        return Err(format!("unknown person '{}'", a.person));
    }
    if let Some(other) = by_tag
        .get(&a.tag)
        .and_then(|list| list.iter().find(|o| o.overlaps(a)))
    {
        return Err(format!(
            "overlaps activation '{}' on the same tag '{}'",
            other.id, a.tag
        ));
    }
    Ok(())
}

fn check_order(o: &Order, people: &HashSet<String>, ids: &HashSet<String>) -> Result<(), String> {
    if ids.contains(&o.id) {
        return Err(format!("duplicate order id '{}'", o.id));
    }
    if !people.contains(&o.person) {
        return Err(format!("unknown person '{}'", o.person));
    }
    check_order_record(o)
}

/// The checks of one activation that need no other record (id, tag, period).
pub fn check_activation_record(a: &Activation) -> Result<(), String> {
    if a.id.trim().is_empty() {
        return Err("'id' must not be empty".into());
    }
    if a.tag.is_empty() || a.tag.len() > 64 {
        return Err("'tag' must be 1 to 64 bytes".into());
    }
    if a.to.is_some_and(|to| to <= a.from) {
        return Err("'to' must be after 'from'".into());
    }
    Ok(())
}

/// The checks of one order that need no other record (id, dates, every condition, the curfew
/// legal limits).
pub fn check_order_record(o: &Order) -> Result<(), String> {
    if o.id.trim().is_empty() {
        return Err("'id' must not be empty".into());
    }
    if o.to.is_some_and(|to| to < o.from) {
        return Err("'to' must not be before 'from'".into());
    }
    for (i, c) in o.conditions.iter().enumerate() {
        check_condition(c)
            .and_then(|_| match c {
                Condition::Curfew(curfew) => check_curfew_limits(o, curfew),
                _ => Ok(()),
            })
            .map_err(|e| format!("conditions[{i}] ({}): {e}", c.type_name()))?;
    }
    Ok(())
}

/// Checks one activation against a document's people and activations (API create/update).
pub fn check_activation_against(a: &Activation, doc: &OrdersFile) -> Result<(), String> {
    let people: HashSet<String> = doc.people.iter().map(|p| p.id.clone()).collect();
    let others: Vec<&Activation> = doc.activations.iter().filter(|o| o.id != a.id).collect();
    let mut by_tag: HashMap<String, Vec<Activation>> = HashMap::new();
    for o in &others {
        by_tag.entry(o.tag.clone()).or_default().push((*o).clone());
    }
    check_activation(a, &people, &HashSet::new(), &by_tag)
}

/// Checks one order against a document's people (API create/update).
pub fn check_order_against(o: &Order, doc: &OrdersFile) -> Result<(), String> {
    let people: HashSet<String> = doc.people.iter().map(|p| p.id.clone()).collect();
    check_order(o, &people, &HashSet::new())
}

fn check_lat_lon(lat: f64, lon: f64) -> Result<(), String> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("coordinates lat {lat}, lon {lon} out of range"));
    }
    Ok(())
}

fn check_condition(c: &Condition) -> Result<(), String> {
    match c {
        Condition::Curfew(curfew) => {
            if curfew.addresses.is_empty() || curfew.addresses.len() > 3 {
                return Err("a curfew needs 1 to 3 addresses".into());
            }
            for a in &curfew.addresses {
                check_lat_lon(a.lat, a.lon)?;
                if a.radius_m.is_nan() || a.radius_m <= 0.0 {
                    return Err(format!("address '{}': radius_m must be positive", a.id));
                }
            }
            // One home monitoring unit per curfew: RF presence says "at the unit", and with two
            // marked addresses it could not be told which one the person is at.
            let marked: Vec<&str> = curfew
                .addresses
                .iter()
                .filter(|a| a.hmu)
                .map(|a| a.id.as_str())
                .collect();
            if marked.len() > 1 {
                return Err(format!(
                    "addresses '{}' are all marked hmu: at most one address of a curfew has the home monitoring unit",
                    marked.join("', '")
                ));
            }
            if curfew.timetable.is_empty() {
                return Err("a curfew needs at least one timetable entry".into());
            }
            for (i, entry) in curfew.timetable.iter().enumerate() {
                if entry.days.is_empty() {
                    return Err(format!("timetable[{i}]: 'days' is empty"));
                }
                parse_local_hhmm(&entry.start).map_err(|e| format!("timetable[{i}].start: {e}"))?;
                parse_local_hhmm(&entry.end).map_err(|e| format!("timetable[{i}].end: {e}"))?;
                if !curfew.addresses.iter().any(|a| a.id == entry.address) {
                    return Err(format!(
                        "timetable[{i}]: unknown address '{}'",
                        entry.address
                    ));
                }
            }
            Ok(())
        }
        Condition::ExclusionZone(zone) | Condition::InclusionZone(zone) => check_zone(zone),
        Condition::Alcohol(a) => match (a.requirement, a.mode) {
            (Some(crate::model::AlcoholRequirement::Aamr), crate::model::AlcoholMode::Level) => {
                Err("an AAMR is total abstinence: mode 'level' is only for AML".to_string())
            }
            _ => Ok(()),
        },
        Condition::Trail => Ok(()),
    }
}

/// The legal limits of a curfew requirement (domain page, section 3): since 28 June 2022 2–20
/// hours a day, at most 112 hours in any 7 days, at most 2 years; before, 2–16 hours and 12 months.
fn check_curfew_limits(
    order: &Order,
    curfew: &crate::model::CurfewCondition,
) -> Result<(), String> {
    use crate::model::Day;
    let new_law = order.from >= chrono::NaiveDate::from_ymd_opt(2022, 6, 28).unwrap_or(order.from);
    let (max_day_min, max_days) = if new_law {
        (20 * 60, 731)
    } else {
        (16 * 60, 366)
    };
    let days = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];
    let mut week_min = 0u32;
    for day in days {
        let mut day_min = 0u32;
        for entry in curfew.timetable.iter().filter(|e| e.days.contains(&day)) {
            let start = parse_local_hhmm(&entry.start)?;
            let end = parse_local_hhmm(&entry.end)?;
            day_min += if end > start {
                end - start
            } else {
                24 * 60 - start + end
            };
        }
        if day_min == 0 {
            continue;
        }
        if day_min < 2 * 60 {
            return Err(format!(
                "curfew of {} on {day:?} is under the legal minimum of 2 hours a day",
                fmt_minutes(day_min)
            ));
        }
        if day_min > max_day_min {
            return Err(format!(
                "curfew of {} on {day:?} is over the legal maximum of {} hours a day",
                fmt_minutes(day_min),
                max_day_min / 60
            ));
        }
        week_min += day_min;
    }
    if new_law && week_min > 112 * 60 {
        return Err(format!(
            "curfew of {} a week is over the legal maximum of 112 hours in any 7 days",
            fmt_minutes(week_min)
        ));
    }
    if let Some(to) = order.to {
        if (to - order.from).num_days() > max_days {
            return Err(format!(
                "a curfew requirement may last at most {} (order runs {} to {})",
                if new_law { "2 years" } else { "12 months" },
                order.from,
                to
            ));
        }
    }
    Ok(())
}

fn fmt_minutes(min: u32) -> String {
    format!("{}h{:02}", min / 60, min % 60)
}

fn check_zone(zone: &crate::model::ZoneCondition) -> Result<(), String> {
    {
        {}
        {
            let kind = zone
                .geometry
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("");
            match kind {
                "Polygon" | "MultiPolygon" => {}
                "Point" => {
                    if !zone.radius_m.is_some_and(|r| r > 0.0) {
                        return Err(format!("zone '{}': a Point zone needs a positive radius_m", zone.id));
                    }
                }
                other => {
                    return Err(format!(
                        "zone '{}': geometry type must be Polygon, MultiPolygon or Point, not '{other}'",
                        zone.id
                    ))
                }
            }
            for (i, entry) in zone.schedule.iter().flatten().enumerate() {
                parse_local_hhmm(&entry.start).map_err(|e| format!("schedule[{i}].start: {e}"))?;
                parse_local_hhmm(&entry.end).map_err(|e| format!("schedule[{i}].end: {e}"))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"people":[{"id":"P1","name":"A","restricted":false},
 {"id":"P1","name":"dup"}],
 "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z","to":null},
  {"id":"A2","person":"P1","tag":"T1","from":"2026-03-05T00:00:00Z","to":null},
  {"id":"A3","person":"P9","tag":"T3","from":"2026-03-01T00:00:00Z"}],
 "orders":[{"id":"O1","person":"P1","from":"2026-03-01","to":"2026-06-01","conditions":[
   {"type":"curfew","grace_min":5,"addresses":[{"id":"home","lat":51.4545,"lon":-2.5879,"radius_m":50}],
    "timetable":[{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"19:00","end":"07:00","address":"home"}]},
   {"type":"exclusion_zone","id":"Z2","name":"x","geometry":{"type":"Point","coordinates":[-2.6,51.45]},"radius_m":500,
    "schedule":[{"days":["sat"],"start":"10:00","end":"18:00"}]},
   {"type":"trail"},{"type":"alcohol","mode":"abstinence"}]},
  {"id":"O2","person":"P1","from":"2026-03-01","conditions":[{"type":"curfew","addresses":[],"timetable":[]}]}]}"#;

    #[test]
    fn keeps_good_records_and_names_bad_ones_with_lines() {
        let load = parse_orders(DOC).unwrap();
        assert_eq!(load.accepted.people.len(), 1);
        assert_eq!(load.accepted.activations.len(), 1);
        assert_eq!(load.accepted.orders.len(), 1);
        assert_eq!(load.accepted.orders[0].conditions.len(), 4);
        let msgs: Vec<String> = load.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("line 2: people[1] \"P1\": duplicate"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].contains("line 4: activations[1] \"A2\": overlaps activation 'A1'"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].contains("line 5: activations[2] \"A3\": unknown person 'P9'"),
            "{}",
            msgs[2]
        );
        assert!(
            msgs[3].contains(
                "orders[1] \"O2\": conditions[0] (curfew): a curfew needs 1 to 3 addresses"
            ),
            "{}",
            msgs[3]
        );
    }

    #[test]
    fn at_most_one_curfew_address_is_the_hmu_and_hmu_is_written_only_when_set() {
        let doc = |home: &str, partner: &str| {
            format!(
                r#"{{"people":[{{"id":"P1"}}],"orders":[{{"id":"O7","person":"P1","from":"2026-03-01","conditions":[
  {{"type":"trail"}},
  {{"type":"curfew","addresses":[{{"id":"home","lat":51.45,"lon":-2.58,"radius_m":50{home}}},
                               {{"id":"partner","lat":51.48,"lon":-2.62,"radius_m":50{partner}}}],
   "timetable":[{{"days":["mon"],"start":"19:00","end":"07:00","address":"home"}},
                {{"days":["fri"],"start":"20:00","end":"08:00","address":"partner"}}]}}]}}]}}"#
            )
        };
        let both = parse_orders(&doc(r#","hmu":true"#, r#","hmu":true"#)).unwrap();
        assert!(both.accepted.orders.is_empty());
        assert_eq!(both.errors.len(), 1);
        assert_eq!(
            both.errors[0].to_string(),
            "line 1: orders[0] \"O7\": conditions[1] (curfew): addresses 'home', 'partner' are all \
             marked hmu: at most one address of a curfew has the home monitoring unit"
        );

        let one = parse_orders(&doc("", r#","hmu":true"#)).unwrap();
        assert!(one.errors.is_empty(), "{:?}", one.errors);
        let Condition::Curfew(curfew) = &one.accepted.orders[0].conditions[1] else {
            panic!("not a curfew");
        };
        assert_eq!(
            curfew.addresses.iter().map(|a| a.hmu).collect::<Vec<_>>(),
            [false, true]
        );
        // Documents without the addition serialise exactly as before.
        let written = serde_json::to_string(&one.accepted).unwrap();
        assert_eq!(written.matches("\"hmu\"").count(), 1, "{written}");
        assert!(
            written.contains(r#""radius_m":50.0,"hmu":true}"#),
            "{written}"
        );
        let none = parse_orders(&doc("", "")).unwrap();
        assert!(!serde_json::to_string(&none.accepted)
            .unwrap()
            .contains("hmu"));
    }

    #[test]
    fn broken_json_names_line_and_column() {
        let err = parse_orders("{\"people\": [\n  {\"id\": }]}").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
