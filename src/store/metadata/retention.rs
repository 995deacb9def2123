//! Retention in the metadata database: which activations ended before a cutoff, and one
//! transaction that removes them, the people left with nothing held (their orders and caseload
//! links too), old audit records about people no longer held, records the ids purged (so an
//! orders file re-imported at start cannot bring them back) and the purge run itself.
//!
//! The policy (what "past retention" means for an order) is the caller's: see
//! [`crate::retention`]. The run record holds ids and counts only, never the data removed.

use super::orders::{documents, from_json, is_purged};
use super::{Metadata, MetadataError};
use crate::model::time::rfc3339_ms;
use crate::model::{Activation, Order, PurgedWindow};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

/// The metadata side of a purge.
pub struct MetadataPurge<'a> {
    /// Activations to delete (already judged past retention).
    pub activations: &'a [Activation],
    /// Whether an order ended long enough ago for its person to be purged.
    pub order_past_retention: &'a dyn Fn(&Order) -> bool,
    /// Purged activations' windows to remember (a purge record's, applied on another node),
    /// whether or not this database held the activations: whoever purges next removes late
    /// readings in them.
    pub windows: &'a [PurgedWindow],
    /// The people to remove, when already decided (a purge record from the log, applied on
    /// another node): these, whatever the policy says. `None`: judged here.
    pub people: Option<&'a [String]>,
    /// Audit records about people no longer held are deleted when older than this.
    pub audit_before_ms: i64,
    /// The run record (its report is completed with [`MetadataPurged`] by `finish`).
    pub run: NewPurgeRun,
}

/// The record of a purge run to store.
#[derive(Debug, Clone)]
pub struct NewPurgeRun {
    pub t_ms: i64,
    pub now_ms: i64,
    pub days_after_end: u32,
    pub trigger: String,
}

/// What the metadata transaction removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetadataPurged {
    pub activations: u64,
    /// Ids of the people removed.
    pub people: Vec<String>,
    pub orders: u64,
    pub caseload_links: u64,
    pub audit_records: u64,
}

/// A stored purge run, as admins read it.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeRun {
    pub id: i64,
    #[serde(with = "rfc3339_ms")]
    pub t: i64,
    #[serde(with = "rfc3339_ms")]
    pub now: i64,
    pub days_after_end: u32,
    pub trigger: String,
    pub report: serde_json::Value,
}

fn in_list(tx: &Transaction<'_>, sql: &str, ids: &[String]) -> Result<usize, MetadataError> {
    let mut n = 0;
    let mut stmt = tx.prepare(sql)?;
    for id in ids {
        n += stmt.execute([id])?;
    }
    Ok(n)
}

fn mark_purged(
    tx: &Transaction<'_>,
    kind: &str,
    ids: &[String],
    run: i64,
) -> Result<(), MetadataError> {
    let mut stmt =
        tx.prepare("INSERT OR REPLACE INTO purged_ids (kind, id, run) VALUES (?1, ?2, ?3)")?;
    for id in ids {
        stmt.execute(params![kind, id, run])?;
    }
    Ok(())
}

impl Metadata {
    /// Activations that ended at or before `cutoff_ms` (open ones never do), by id.
    pub fn activations_ended_by(&self, cutoff_ms: i64) -> Result<Vec<Activation>, MetadataError> {
        let sql = "SELECT id, document FROM activations
                   WHERE to_ms IS NOT NULL AND to_ms <= ?1 ORDER BY id";
        documents(&self.lock(), "activation", sql, [cutoff_ms])
    }

    /// The people [`Metadata::purge`] would remove with `req` (judged in a transaction that is
    /// rolled back): the purge's log compaction erases their control records in the same run.
    pub fn people_due(&self, req: &MetadataPurge<'_>) -> Result<Vec<String>, MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let (_, people) = remove_activations_find_people(&tx, req)?;
        drop(tx); // rolled back
        Ok(people)
    }

    /// Removes, in one transaction: the activations; every person left without activations
    /// whose orders are all past retention (and who has at least one order, or lost an
    /// activation in this purge), with their orders and caseload links; audit records about
    /// people no longer held older than the cutoff. Records the ids purged and the run, whose
    /// report `finish` builds from what was removed. Returns the run id and what was removed.
    pub fn purge(
        &self,
        req: &MetadataPurge<'_>,
        finish: impl FnOnce(&MetadataPurged) -> serde_json::Value,
    ) -> Result<(i64, MetadataPurged), MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut purged = MetadataPurged::default();
        let (activations, people) = remove_activations_find_people(&tx, req)?;
        purged.activations = activations;
        purged.people = people;
        let mut order_ids = Vec::new();
        for person in &purged.people {
            let mut stmt =
                tx.prepare_cached("SELECT id FROM orders WHERE person = ?1 ORDER BY id")?;
            let ids = stmt.query_map([person], |r| r.get::<_, String>(0))?;
            order_ids.extend(ids.collect::<Result<Vec<_>, _>>()?);
        }
        purged.orders =
            in_list(&tx, "DELETE FROM orders WHERE person = ?1", &purged.people)? as u64;
        purged.caseload_links = in_list(
            &tx,
            "DELETE FROM caseloads WHERE person = ?1",
            &purged.people,
        )? as u64;
        in_list(&tx, "DELETE FROM people WHERE id = ?1", &purged.people)?;
        // The history of the person's records goes with them (its rows name addresses).
        in_list(&tx, "DELETE FROM changes WHERE person = ?1", &purged.people)?;
        purged.audit_records = tx.execute(
            "DELETE FROM audit WHERE person IS NOT NULL AND t_ms < ?1
               AND person NOT IN (SELECT id FROM people)",
            [req.audit_before_ms],
        )? as u64;

        let report = finish(&purged);
        tx.execute(
            "INSERT INTO purge_runs (t_ms, now_ms, days_after_end, trigger, report)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                req.run.t_ms,
                req.run.now_ms,
                req.run.days_after_end,
                req.run.trigger,
                report.to_string()
            ],
        )?;
        let run = tx.last_insert_rowid();
        let mut windows = tx.prepare(
            "INSERT OR REPLACE INTO purged_ids (kind, id, run, tag, from_ms, to_ms)
             VALUES ('activation', ?1, ?2, ?3, ?4, ?5)",
        )?;
        for a in req.activations {
            windows.execute(params![a.id, run, a.tag, a.from, a.to])?;
        }
        for w in req.windows {
            windows.execute(params![w.activation, run, w.tag, w.from, w.to])?;
        }
        drop(windows);
        mark_purged(&tx, "person", &purged.people, run)?;
        mark_purged(&tx, "order", &order_ids, run)?;
        tx.commit()?;
        Ok((run, purged))
    }

    /// The tag and window `[from_ms, to_ms)` (`None`: open) of every activation ever purged.
    pub fn purged_windows(&self) -> Result<Vec<(String, i64, Option<i64>)>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT tag, from_ms, to_ms FROM purged_ids WHERE kind = 'activation' AND tag IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Purge runs, newest first (at most `limit`).
    pub fn purge_runs(&self, limit: u32) -> Result<Vec<PurgeRun>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, t_ms, now_ms, days_after_end, trigger, report FROM purge_runs
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, t, now, days_after_end, trigger, report) = row?;
            out.push(PurgeRun {
                id,
                t,
                now,
                days_after_end,
                trigger,
                report: from_json(&format!("purge run {id}"), &report)?,
            });
        }
        Ok(out)
    }

    /// Whether a person, activation or order with this id was purged.
    pub fn was_purged(&self, kind: &str, id: &str) -> Result<bool, MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        is_purged(&tx, kind, id)
    }
}

/// Deletes the request's activations (in `tx`) and finds every person then left without
/// activations whose orders are all past retention (or who has no order and lost an activation
/// here). Returns the activations deleted and those people.
fn remove_activations_find_people(
    tx: &rusqlite::Transaction<'_>,
    req: &MetadataPurge<'_>,
) -> Result<(u64, Vec<String>), MetadataError> {
    let activation_ids: Vec<String> = req.activations.iter().map(|a| a.id.clone()).collect();
    let mut lost_activation: Vec<String> = Vec::new();
    for id in &activation_ids {
        let person: Option<String> = tx
            .query_row("SELECT person FROM activations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        lost_activation.extend(person);
    }
    let activations = in_list(tx, "DELETE FROM activations WHERE id = ?1", &activation_ids)? as u64;

    let candidates: Vec<String> = {
        let mut stmt = tx.prepare(
            "SELECT id FROM people p WHERE NOT EXISTS
                   (SELECT 1 FROM activations a WHERE a.person = p.id) ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    if let Some(listed) = req.people {
        return Ok((activations, listed.to_vec()));
    }
    let mut people = Vec::new();
    for person in candidates {
        let sql = "SELECT id, document FROM orders WHERE person = ?1";
        let orders: Vec<Order> = documents(tx, "order", sql, [&person])?;
        let due = if orders.is_empty() {
            lost_activation.contains(&person)
        } else {
            orders.iter().all(req.order_past_retention)
        };
        if due {
            people.push(person);
        }
    }

    Ok((activations, people))
}

#[cfg(test)]
mod tests {
    use super::super::{NewAuditEntry, NewUser, Role};
    use super::*;
    use crate::formats::orders_file::OrdersFile;

    /// P1: activation A1 (ended), order O1 ended; P2: activation A2 (ended), open order O2;
    /// P3: nothing at all; P4: no activation, order O4 ended.
    fn fixture(dir: &std::path::Path) -> Metadata {
        let m = Metadata::open(dir).unwrap();
        let doc: OrdersFile = serde_json::from_value(serde_json::json!({
            "people": [{"id": "P1"}, {"id": "P2"}, {"id": "P3"}, {"id": "P4"}],
            "activations": [
                {"id": "A1", "person": "P1", "tag": "T1", "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"},
                {"id": "A2", "person": "P2", "tag": "T2", "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}],
            "orders": [
                {"id": "O1", "person": "P1", "from": "2020-01-01", "to": "2020-01-31", "conditions": []},
                {"id": "O2", "person": "P2", "from": "2020-01-01", "conditions": []},
                {"id": "O4", "person": "P4", "from": "2020-01-01", "to": "2020-01-31", "conditions": []}]
        }))
        .unwrap();
        assert!(m.import_orders(&doc).unwrap().is_empty());
        m.add_user_with_token(
            &NewUser {
                name: "pat".into(),
                role: Role::Practitioner {
                    caseload: vec!["P1".into(), "P2".into()],
                },
                expires_ms: None,
            },
            "token",
        )
        .unwrap();
        for (person, t_ms) in [("P1", 10), ("P1", 2_000), ("P2", 10), ("P3", 10)] {
            m.audit(&NewAuditEntry {
                t_ms,
                user_name: "hana".into(),
                role: "hub".into(),
                action: "person.read".into(),
                person: Some(person.into()),
                ..NewAuditEntry::default()
            })
            .unwrap();
        }
        m
    }

    fn run() -> NewPurgeRun {
        NewPurgeRun {
            t_ms: 1,
            now_ms: 2,
            days_after_end: 3,
            trigger: "test".into(),
        }
    }

    #[test]
    fn people_go_only_with_nothing_left_and_every_order_over_and_old_audit_goes_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let m = fixture(dir.path());
        let due = m
            .activations_ended_by(crate::model::time::parse_time("2021-01-01T00:00:00Z").unwrap())
            .unwrap();
        let ids: Vec<&str> = due.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["A1", "A2"]);
        let all_over = |o: &Order| o.to.is_some();
        let (run_id, purged) = m
            .purge(
                &MetadataPurge {
                    people: None,
                    windows: &[],
                    activations: &due,
                    order_past_retention: &all_over,
                    audit_before_ms: 1_000,
                    run: run(),
                },
                |p| serde_json::json!({"people": p.people}),
            )
            .unwrap();
        // P1: nothing left, order over. P2: open order. P3: never had anything (kept: nothing
        // says when its data expires). P4: no activation, but its only order is over.
        assert_eq!(purged.people, ["P1", "P4"]);
        assert_eq!(
            (purged.activations, purged.orders, purged.caseload_links),
            (2, 2, 1)
        );
        // Audit about people no longer held, older than the cutoff: P1's first record only.
        assert_eq!(purged.audit_records, 1);
        let p1_audit = m
            .audit_entries(&crate::store::metadata::AuditQuery {
                person: Some("P1".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p1_audit.len(), 1);
        assert_eq!(p1_audit[0].t, 2_000);
        let caseload = m.user_by_name("pat").unwrap().unwrap().role;
        assert_eq!(
            caseload,
            Role::Practitioner {
                caseload: vec!["P2".into()]
            }
        );
        let runs = m.purge_runs(10).unwrap();
        assert_eq!((runs[0].id, runs[0].trigger.as_str()), (run_id, "test"));
        assert_eq!(runs[0].report["people"], serde_json::json!(["P1", "P4"]));
        assert!(m.was_purged("person", "P1").unwrap());
        assert!(m.was_purged("order", "O4").unwrap());
        assert!(!m.was_purged("person", "P2").unwrap());
        let mut windows = m.purged_windows().unwrap();
        windows.sort();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0], ("T1".to_string(), due[0].from, due[0].to));

        // Re-importing the original document brings back none of it, nor anything new for a
        // purged person.
        let mut again = m.orders_document().unwrap();
        again
            .people
            .push(serde_json::from_value(serde_json::json!({"id": "P1"})).unwrap());
        again.activations.push(
            serde_json::from_value(serde_json::json!({"id": "A9", "person": "P1", "tag": "T9",
                "from": "2022-01-01T00:00:00Z"}))
            .unwrap(),
        );
        let skipped = m.import_orders(&again).unwrap();
        assert_eq!(skipped, ["person P1", "activation A9"]);
        assert!(m.person("P1").unwrap().is_none());
    }
}
