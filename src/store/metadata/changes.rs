//! The change history view: every control record of the log (who changed what, when, effective
//! from when, and whether the record book refused it), by person. Written by the control applier
//! as records are applied and again from the log at start, so it is a view of the log.

use super::{Metadata, MetadataError};
use crate::model::{ControlRecord, TimeMs};
use rusqlite::params;
use serde::Serialize;

/// One change as the history API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeEntry {
    /// Log record number of the change.
    pub record: u64,
    #[serde(with = "crate::model::time::rfc3339_ms")]
    pub recorded: TimeMs,
    pub actor: String,
    #[serde(
        with = "crate::model::time::rfc3339_ms_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub effective: Option<TimeMs>,
    pub subject: String,
    /// The control record (its `op` and the record it puts).
    pub change: serde_json::Value,
    /// Why the record book refused it; absent when it was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One control record for the view: the record, whose records it changes, why it was refused
/// (if it was), and the person's records after it (empty when refused).
pub struct ViewChange<'a> {
    pub record: u64,
    pub control: &'a ControlRecord,
    pub person: Option<&'a str>,
    pub refused: Option<&'a str>,
    pub records: &'a crate::formats::orders_file::OrdersFile,
}

impl Metadata {
    /// Applies control records to the view in one transaction (one sync for the lot): each
    /// change's history row, and the people, activations and orders it left (records retention
    /// purged are not brought back).
    ///
    /// Not synced (synchronous=NORMAL for this transaction): the records are durable in the
    /// log, and a start rebuilds this view from it, so a lost transaction costs nothing. A sync
    /// per lot would put the view's writes in front of the log's `fdatasync` on the same disk.
    pub fn apply_view_changes(&self, changes: &[ViewChange<'_>]) -> Result<(), MetadataError> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let applied = Self::insert_view_changes(&mut conn, changes);
        // The connection's other writers (audit first) rely on FULL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        drop(conn);
        applied?;
        self.write_back_wal();
        Ok(())
    }

    fn insert_view_changes(
        conn: &mut rusqlite::Connection,
        changes: &[ViewChange<'_>],
    ) -> Result<(), MetadataError> {
        let tx = conn.transaction()?;
        for c in changes {
            insert_change(&tx, c.record, c.control, c.person, c.refused)?;
            for p in &c.records.people {
                if !super::orders::is_purged(&tx, "person", &p.id)? {
                    super::orders::put_person(&tx, p)?;
                }
            }
            for a in &c.records.activations {
                let purged = super::orders::is_purged(&tx, "activation", &a.id)?
                    || super::orders::is_purged(&tx, "person", &a.person)?;
                if !purged {
                    super::orders::put_activation(&tx, a)?;
                }
            }
            for o in &c.records.orders {
                let purged = super::orders::is_purged(&tx, "order", &o.id)?
                    || super::orders::is_purged(&tx, "person", &o.person)?;
                if !purged {
                    super::orders::put_order(&tx, o)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records one control record (idempotent: a record already recorded is left as it is).
    pub fn record_change(
        &self,
        record: u64,
        control: &ControlRecord,
        person: Option<&str>,
        refused: Option<&str>,
    ) -> Result<(), MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        insert_change(&tx, record, control, person, refused)?;
        tx.commit()?;
        Ok(())
    }

    /// Records many control records in one transaction (the history rebuilt at start).
    pub fn record_changes(
        &self,
        changes: &[(u64, &ControlRecord, Option<&str>, Option<&str>)],
    ) -> Result<(), MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for (record, control, person, refused) in changes {
            insert_change(&tx, *record, control, *person, *refused)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One past the highest control record in the change history (0 when empty): a node
    /// checkpoint restores only over a history at least as far along as when it was taken.
    pub fn changes_recorded_below(&self) -> Result<u64, MetadataError> {
        let conn = self.lock();
        let max: Option<i64> =
            conn.query_row("SELECT MAX(record) FROM changes", [], |r| r.get(0))?;
        Ok(max.map_or(0, |m| m as u64 + 1))
    }

    /// Every change to one person's records, oldest first.
    pub fn changes_of(&self, person: &str) -> Result<Vec<ChangeEntry>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT record, recorded_ms, actor, effective_ms, subject, change, refused
             FROM changes WHERE person = ?1 ORDER BY record",
        )?;
        let rows = stmt.query_map([person], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (record, recorded, actor, effective, subject, change, refused) = row?;
            let change = super::orders::from_json(&format!("change {record}"), &change)?;
            out.push(ChangeEntry {
                record: record as u64,
                recorded,
                actor,
                effective,
                subject,
                change,
                refused,
            });
        }
        Ok(out)
    }
}

fn insert_change(
    tx: &rusqlite::Transaction<'_>,
    record: u64,
    control: &ControlRecord,
    person: Option<&str>,
    refused: Option<&str>,
) -> Result<(), MetadataError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO changes
           (record, recorded_ms, actor, effective_ms, kind, subject, person, change, refused)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        record as i64,
        control.recorded,
        control.actor,
        control.effective,
        control.change.op(),
        control.change.subject(),
        person,
        serde_json::to_string(control).map_err(|e| MetadataError::Invalid(e.to_string()))?,
        refused
    ])?;
    Ok(())
}
