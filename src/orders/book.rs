//! [`OrderBook`]: people, activations and the versions of every order, as the control records in
//! the log built them. [`OrderBook::apply`] is a pure function of the book and the record, so the
//! live pipeline, the metadata view, replay and rebuild all accept and reject the same records.

use crate::formats::orders_file::{check_activation_record, check_order_record, OrdersFile};
use crate::model::{Activation, Change, ControlRecord, Order, Person, TimeMs};
use chrono::{Duration, NaiveDate, TimeZone};
use std::collections::{BTreeMap, HashMap};

/// One version of an order: what the order said from `effective_ms` (`None`: from its start).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderVersion {
    pub order: Order,
    pub effective_ms: Option<TimeMs>,
    /// The log record that made this version.
    pub record: u64,
}

/// What an accepted record changed, for the views that follow the book.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Applied {
    /// The person whose rules or activations changed (the pipeline rebuilds their activations).
    pub person: Option<String>,
    /// Whether the set of activations changed (the activation directory is rebuilt).
    pub activations_changed: bool,
    /// Activations that left the book (purged): their rule state leaves memory.
    pub retired: Vec<String>,
    /// People who left the book (purged).
    pub people_removed: Vec<String>,
}

/// Version `i` of an order cut to the UK local days it is in effect (from its effective day
/// until the day before the next version's); `None` when that leaves no day.
fn in_effect(versions: &[OrderVersion], i: usize) -> Option<Order> {
    let v = versions.get(i)?;
    let mut order = v.order.clone();
    if let Some(e) = v.effective_ms {
        order.from = order.from.max(uk_date(e));
    }
    if let Some(next) = versions.get(i + 1).and_then(|n| n.effective_ms) {
        let last_day = uk_date(next) - Duration::days(1);
        order.to = Some(order.to.map_or(last_day, |t| t.min(last_day)));
    }
    order.to.is_none_or(|to| to >= order.from).then_some(order)
}

/// People, activations and order versions, by id. Serialisable for pipeline snapshots (the id
/// lists keep their order, which the rules depend on).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct OrderBook {
    people: BTreeMap<String, Person>,
    activations: BTreeMap<String, Activation>,
    /// Activation ids per tag, for the overlap check.
    #[serde(with = "sorted_map")]
    activations_by_tag: HashMap<String, Vec<String>>,
    /// Activation ids per person.
    #[serde(with = "sorted_map")]
    activations_by_person: HashMap<String, Vec<String>>,
    orders: BTreeMap<String, Vec<OrderVersion>>,
    /// Order ids per person.
    #[serde(with = "sorted_map")]
    orders_by_person: HashMap<String, Vec<String>>,
}

/// `#[serde(with = ...)]` for a `HashMap` written in key order, so that one book always
/// serialises to the same bytes (pipeline snapshots).
mod sorted_map {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    pub fn serialize<S: Serializer>(
        map: &HashMap<String, Vec<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&String, &Vec<String>)> = map.iter().collect();
        pairs.sort();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<String, Vec<String>>, D::Error> {
        Vec::<(String, Vec<String>)>::deserialize(d).map(|v| v.into_iter().collect())
    }
}

/// The UK local date of an event time.
pub fn uk_date(t_ms: TimeMs) -> NaiveDate {
    let utc = chrono::Utc
        .timestamp_millis_opt(t_ms)
        .single()
        .unwrap_or_default();
    utc.with_timezone(&chrono_tz::Europe::London).date_naive()
}

impl OrderBook {
    /// A book holding exactly the records of a (validated) orders document, every order as a
    /// single version from its start; record numbers 0.
    pub fn from_document(doc: &OrdersFile) -> Self {
        let mut book = Self::default();
        for p in &doc.people {
            book.people.insert(p.id.clone(), p.clone());
        }
        for a in &doc.activations {
            book.insert_activation(a.clone());
        }
        for o in &doc.orders {
            book.orders_by_person
                .entry(o.person.clone())
                .or_default()
                .push(o.id.clone());
            book.orders.insert(
                o.id.clone(),
                vec![OrderVersion {
                    order: o.clone(),
                    effective_ms: None,
                    record: 0,
                }],
            );
        }
        book
    }

    /// A book of just these activations (their people known by id only): for drivers given a
    /// fixed activation directory rather than a log of control records.
    pub fn from_activations(activations: &[Activation]) -> Self {
        let mut book = Self::default();
        for a in activations {
            book.people
                .entry(a.person.clone())
                .or_insert_with(|| Person {
                    id: a.person.clone(),
                    name: String::new(),
                    date_of_birth: None,
                    nomis_id: None,
                    pnc_ref: None,
                    address: None,
                    offender_manager: None,
                    restricted: false,
                });
            book.insert_activation(a.clone());
        }
        book
    }

    /// Applies one control record (log record number `record`). A rejected record changes
    /// nothing; the message says why, naming the record it is about.
    pub fn apply(&mut self, record: u64, control: &ControlRecord) -> Result<Applied, String> {
        let subject = control.change.subject();
        self.apply_change(record, control)
            .map_err(|e| format!("{subject}: {e}"))
    }

    fn apply_change(&mut self, record: u64, control: &ControlRecord) -> Result<Applied, String> {
        match &control.change {
            Change::PutPerson { person } => {
                if person.id.trim().is_empty() {
                    return Err("'id' must not be empty".into());
                }
                self.people.insert(person.id.clone(), person.clone());
                Ok(Applied {
                    person: Some(person.id.clone()),
                    ..Applied::default()
                })
            }
            Change::PutActivation { activation } => {
                check_activation_record(activation)?;
                self.check_activation_fits(activation)?;
                if let Some(old) = self.activations.get(&activation.id) {
                    if old.person != activation.person {
                        return Err(format!(
                            "belongs to person '{}': an activation cannot move to another person",
                            old.person
                        ));
                    }
                }
                self.insert_activation(activation.clone());
                Ok(Applied {
                    person: Some(activation.person.clone()),
                    activations_changed: true,
                    ..Applied::default()
                })
            }
            Change::EndActivation { activation, to } => {
                let mut ended = self
                    .activations
                    .get(activation)
                    .cloned()
                    .ok_or_else(|| "not found".to_string())?;
                if ended.to.is_some_and(|t| t <= *to) {
                    return Err("already ended".into());
                }
                if *to <= ended.from {
                    return Err("'to' must be after the activation's start".into());
                }
                ended.to = Some(*to);
                let person = ended.person.clone();
                self.insert_activation(ended);
                Ok(Applied {
                    person: Some(person),
                    activations_changed: true,
                    ..Applied::default()
                })
            }
            Change::PutOrder { order } => {
                check_order_record(order)?;
                if !self.people.contains_key(&order.person) {
                    return Err(format!("unknown person '{}'", order.person));
                }
                let versions = self.orders.entry(order.id.clone()).or_default();
                if let Some(first) = versions.first() {
                    if first.order.person != order.person {
                        return Err(format!(
                            "belongs to person '{}': an order cannot move to another person",
                            first.order.person
                        ));
                    }
                } else {
                    self.orders_by_person
                        .entry(order.person.clone())
                        .or_default()
                        .push(order.id.clone());
                }
                // A version replaces every version effective on or after its own day; a
                // correction (no effective time) replaces them all.
                match control.effective {
                    None => versions.clear(),
                    Some(t) => {
                        let day = uk_date(t);
                        versions.retain(|v| v.effective_ms.is_none_or(|e| uk_date(e) < day));
                    }
                }
                versions.push(OrderVersion {
                    order: order.clone(),
                    effective_ms: control.effective,
                    record,
                });
                Ok(Applied {
                    person: Some(order.person.clone()),
                    ..Applied::default()
                })
            }
            Change::Purge {
                activations,
                people,
                ..
            } => Ok(self.purge(activations, people)),
            // The hub's decisions, users and tag credentials are applied by the stores beside
            // the pipeline.
            Change::Redacted { .. }
            | Change::AlertAction { .. }
            | Change::HitReview { .. }
            | Change::PutUser { .. }
            | Change::DisableUser { .. }
            | Change::RevokeTag { .. }
            | Change::RotateTag { .. }
            | Change::TagCredentialState { .. }
            | Change::BindDevice { .. }
            | Change::UnbindDevice { .. }
            | Change::CrimeBatch { .. } => Ok(Applied::default()),
        }
    }

    /// Removes purged activations and people (with their orders); ids not held are ignored.
    fn purge(&mut self, activations: &[String], people: &[String]) -> Applied {
        let mut applied = Applied::default();
        for id in activations {
            let Some(a) = self.activations.remove(id) else {
                continue;
            };
            if let Some(list) = self.activations_by_tag.get_mut(&a.tag) {
                list.retain(|x| x != id);
            }
            if let Some(list) = self.activations_by_person.get_mut(&a.person) {
                list.retain(|x| x != id);
            }
            applied.retired.push(id.clone());
            applied.activations_changed = true;
        }
        for person in people {
            if self.people.remove(person).is_none() {
                continue;
            }
            for order in self.orders_by_person.remove(person).unwrap_or_default() {
                self.orders.remove(&order);
            }
            for id in self
                .activations_by_person
                .remove(person)
                .unwrap_or_default()
            {
                if let Some(a) = self.activations.remove(&id) {
                    if let Some(list) = self.activations_by_tag.get_mut(&a.tag) {
                        list.retain(|x| *x != id);
                    }
                    applied.retired.push(id);
                    applied.activations_changed = true;
                }
            }
            applied.people_removed.push(person.clone());
        }
        applied
    }

    fn check_activation_fits(&self, a: &Activation) -> Result<(), String> {
        if !self.people.contains_key(&a.person) {
            return Err(format!("unknown person '{}'", a.person));
        }
        let others = self.activations_by_tag.get(&a.tag).into_iter().flatten();
        for other in others.filter(|id| **id != a.id) {
            if let Some(o) = self.activations.get(other).filter(|o| o.overlaps(a)) {
                return Err(format!(
                    "overlaps activation '{}' on the same tag '{}'",
                    o.id, a.tag
                ));
            }
        }
        Ok(())
    }

    fn insert_activation(&mut self, a: Activation) {
        if let Some(old) = self.activations.get(&a.id) {
            if old.tag != a.tag {
                if let Some(list) = self.activations_by_tag.get_mut(&old.tag) {
                    list.retain(|id| *id != a.id);
                }
            }
        }
        let list = self.activations_by_tag.entry(a.tag.clone()).or_default();
        if !list.contains(&a.id) {
            list.push(a.id.clone());
        }
        let mine = self
            .activations_by_person
            .entry(a.person.clone())
            .or_default();
        if !mine.contains(&a.id) {
            mine.push(a.id.clone());
        }
        self.activations.insert(a.id.clone(), a);
    }

    /// Whose records a change is about, judged before it is applied (an activation being ended
    /// names its person only here).
    pub fn person_of(&self, change: &Change) -> Option<String> {
        match change {
            // A decision is about a person but changes none of their records.
            change if change.is_decision() => None,
            Change::EndActivation { activation, .. } => {
                self.activation(activation).map(|a| a.person.clone())
            }
            change => change.person().map(str::to_string),
        }
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.get(id)
    }

    pub fn activation(&self, id: &str) -> Option<&Activation> {
        self.activations.get(id)
    }

    /// Every activation, by id.
    pub fn activations(&self) -> impl Iterator<Item = &Activation> {
        self.activations.values()
    }

    /// The activations of one person, by start.
    pub fn activations_of(&self, person: &str) -> Vec<&Activation> {
        let ids = self.activations_by_person.get(person).into_iter().flatten();
        let mut list: Vec<&Activation> = ids.filter_map(|id| self.activations.get(id)).collect();
        list.sort_by_key(|a| a.from);
        list
    }

    /// The latest version of an order.
    pub fn order(&self, id: &str) -> Option<&Order> {
        self.orders.get(id)?.last().map(|v| &v.order)
    }

    /// Every version of an order, oldest first.
    pub fn order_versions(&self, id: &str) -> &[OrderVersion] {
        self.orders.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// What the rules apply for one person: each version of each order, cut to the UK local days
    /// it is in effect (so a variation leaves the days before it judged by the version before).
    pub fn rule_orders_of(&self, person: &str) -> Vec<Order> {
        self.orders_by_person
            .get(person)
            .into_iter()
            .flatten()
            .flat_map(|id| {
                let versions = self.order_versions(id);
                (0..versions.len()).filter_map(move |i| in_effect(versions, i))
            })
            .collect()
    }

    /// One person's orders as the rules apply them on UK local day `day`: for each order in
    /// effect that day, the version that governs it (cut to its days, as
    /// [`Self::rule_orders_of`] cuts it) and the version as recorded.
    pub fn orders_on(&self, person: &str, day: NaiveDate) -> Vec<(Order, &OrderVersion)> {
        let mut out = Vec::new();
        for id in self.orders_by_person.get(person).into_iter().flatten() {
            let versions = self.order_versions(id);
            for (i, version) in versions.iter().enumerate() {
                match in_effect(versions, i) {
                    Some(order) if order.from <= day && order.to.is_none_or(|to| day <= to) => {
                        out.push((order, version))
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Everything, each order at its latest version, ordered by id: the document a view shows.
    pub fn document(&self) -> OrdersFile {
        OrdersFile {
            people: self.people.values().cloned().collect(),
            activations: self.activations.values().cloned().collect(),
            orders: self
                .orders
                .values()
                .filter_map(|v| v.last().map(|v| v.order.clone()))
                .collect(),
        }
    }

    /// One person's records: the person, their activations and their orders (latest versions).
    pub fn records_of(&self, person: &str) -> OrdersFile {
        OrdersFile {
            people: self.people.get(person).cloned().into_iter().collect(),
            activations: self.activations_of(person).into_iter().cloned().collect(),
            orders: self
                .orders_by_person
                .get(person)
                .into_iter()
                .flatten()
                .filter_map(|id| self.order(id).cloned())
                .collect(),
        }
    }

    /// Every person.
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.people.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::parse_time;

    fn record(change: Change, effective: Option<&str>) -> ControlRecord {
        ControlRecord {
            recorded: 0,
            actor: "test".into(),
            effective: effective.map(|t| parse_time(t).unwrap()),
            change,
        }
    }

    fn person(id: &str) -> Change {
        Change::PutPerson {
            person: serde_json::from_value(serde_json::json!({"id": id})).unwrap(),
        }
    }

    fn activation(id: &str, person: &str, tag: &str, from: &str, to: Option<&str>) -> Change {
        Change::PutActivation {
            activation: serde_json::from_value(
                serde_json::json!({"id": id, "person": person, "tag": tag, "from": from, "to": to}),
            )
            .unwrap(),
        }
    }

    fn order(id: &str, person: &str, start: &str) -> Change {
        Change::PutOrder {
            order: serde_json::from_value(serde_json::json!({
                "id": id, "person": person, "from": "2026-03-01",
                "conditions": [{"type": "curfew", "addresses": [{"id": "home", "lat": 51.45, "lon": -2.59, "radius_m": 50}],
                  "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": start, "end": "07:00", "address": "home"}]}]
            }))
            .unwrap(),
        }
    }

    #[test]
    fn records_are_checked_against_the_book_and_a_rejected_one_changes_nothing() {
        let mut book = OrderBook::default();
        let err = book
            .apply(1, &record(order("O1", "P1", "19:00"), None))
            .unwrap_err();
        assert_eq!(err, "order 'O1': unknown person 'P1'");
        book.apply(2, &record(person("P1"), None)).unwrap();
        let a = activation("A1", "P1", "T1", "2026-03-01T00:00:00Z", None);
        assert!(book.apply(3, &record(a, None)).unwrap().activations_changed);
        let overlap = activation("A2", "P1", "T1", "2026-03-02T00:00:00Z", None);
        let err = book.apply(4, &record(overlap, None)).unwrap_err();
        assert!(err.contains("overlaps activation 'A1'"), "{err}");
        assert!(book.activation("A2").is_none());
        // Ending A1 lets a later activation use the tag.
        let end = Change::EndActivation {
            activation: "A1".into(),
            to: parse_time("2026-03-02T00:00:00Z").unwrap(),
        };
        book.apply(5, &record(end.clone(), None)).unwrap();
        assert_eq!(
            book.apply(6, &record(end, None)).unwrap_err(),
            "activation 'A1': already ended"
        );
        let later = activation("A2", "P1", "T1", "2026-03-02T00:00:00Z", None);
        book.apply(7, &record(later, None)).unwrap();
        assert_eq!(book.activations_of("P1").len(), 2);
    }

    #[test]
    fn a_variation_applies_from_its_day_and_a_correction_replaces_every_version() {
        let mut book = OrderBook::default();
        book.apply(1, &record(person("P1"), None)).unwrap();
        book.apply(2, &record(order("O1", "P1", "19:00"), None))
            .unwrap();
        book.apply(
            3,
            &record(order("O1", "P1", "20:00"), Some("2026-03-10T12:00:00Z")),
        )
        .unwrap();
        let rule_orders = book.rule_orders_of("P1");
        assert_eq!(rule_orders.len(), 2);
        assert_eq!(rule_orders[0].to, NaiveDate::from_ymd_opt(2026, 3, 9));
        assert_eq!(
            rule_orders[1].from,
            NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()
        );
        // Each day is governed by the version in effect on it.
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let on_9th = book.orders_on("P1", day(9));
        assert_eq!(on_9th.len(), 1);
        assert_eq!((on_9th[0].1.record, on_9th[0].0.to), (2, Some(day(9))));
        let on_10th = book.orders_on("P1", day(10));
        assert_eq!(on_10th.len(), 1);
        assert_eq!(on_10th[0].1.record, 3);
        assert!(book.orders_on("P1", day(1) - Duration::days(1)).is_empty());
        // A backdated variation before the 10th supersedes the version from the 10th.
        book.apply(
            4,
            &record(order("O1", "P1", "21:00"), Some("2026-03-05T12:00:00Z")),
        )
        .unwrap();
        let versions = book.order_versions("O1");
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1].record, 4);
        // A correction replaces the whole history.
        book.apply(5, &record(order("O1", "P1", "22:00"), None))
            .unwrap();
        assert_eq!(book.order_versions("O1").len(), 1);
        assert_eq!(book.rule_orders_of("P1").len(), 1);
    }
}
