//! Retention in the metadata database: which activations ended before a cutoff, and one
//! transaction that removes them, the people left with nothing held (their orders and caseload
//! links too), old audit records about people no longer held, records the ids purged (so an
//! orders file re-imported at start cannot bring them back) and the purge run itself.
//!
//! The policy (what "past retention" means for an order) is the caller's: see
//! [`crate::retention`]. The run record holds ids and counts only, never the data removed.

use super::orders::{from_json, is_purged};
use super::{Metadata, MetadataError};
use crate::model::time::rfc3339_ms;
use crate::model::{Activation, Order};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

/// The metadata side of a purge.
pub struct MetadataPurge<'a> {
    /// Activations to delete (already judged past retention).
    pub activations: &'a [String],
    /// Whether an order ended long enough ago for its person to be purged.
    pub order_past_retention: &'a dyn Fn(&Order) -> bool,
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

fn string_column(tx: &Transaction<'_>, sql: &str, arg: &str) -> Result<Vec<String>, MetadataError> {
    let mut stmt = tx.prepare(sql)?;
    let rows = stmt.query_map([arg], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl Metadata {
    /// Activations that ended at or before `cutoff_ms` (open ones never do), by id.
    pub fn activations_ended_by(&self, cutoff_ms: i64) -> Result<Vec<Activation>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, document FROM activations WHERE to_ms IS NOT NULL AND to_ms <= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([cutoff_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, text) = row?;
            out.push(from_json(&format!("activation {id}"), &text)?);
        }
        Ok(out)
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
        let mut lost_activation: Vec<String> = Vec::new();
        for id in req.activations {
            let person: Option<String> = tx
                .query_row("SELECT person FROM activations WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            lost_activation.extend(person);
        }
        purged.activations = in_list(
            &tx,
            "DELETE FROM activations WHERE id = ?1",
            req.activations,
        )? as u64;

        let candidates: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM people p WHERE NOT EXISTS
                   (SELECT 1 FROM activations a WHERE a.person = p.id) ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut order_ids = Vec::new();
        for person in candidates {
            let mut orders = Vec::new();
            for text in string_column(
                &tx,
                "SELECT document FROM orders WHERE person = ?1",
                &person,
            )? {
                orders.push(from_json::<Order>(&format!("order of {person}"), &text)?);
            }
            let due = if orders.is_empty() {
                lost_activation.contains(&person)
            } else {
                orders.iter().all(req.order_past_retention)
            };
            if due {
                order_ids.extend(orders.into_iter().map(|o| o.id));
                purged.people.push(person);
            }
        }
        purged.orders =
            in_list(&tx, "DELETE FROM orders WHERE person = ?1", &purged.people)? as u64;
        purged.caseload_links = in_list(
            &tx,
            "DELETE FROM caseloads WHERE person = ?1",
            &purged.people,
        )? as u64;
        in_list(&tx, "DELETE FROM people WHERE id = ?1", &purged.people)?;
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
        mark_purged(&tx, "activation", req.activations, run)?;
        mark_purged(&tx, "person", &purged.people, run)?;
        mark_purged(&tx, "order", &order_ids, run)?;
        tx.commit()?;
        Ok((run, purged))
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
