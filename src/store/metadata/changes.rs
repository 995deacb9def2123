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

impl Metadata {
    /// Records one control record (idempotent: a record already recorded is left as it is).
    pub fn record_change(
        &self,
        record: u64,
        control: &ControlRecord,
        person: Option<&str>,
        refused: Option<&str>,
    ) -> Result<(), MetadataError> {
        let json =
            serde_json::to_value(control).map_err(|e| MetadataError::Invalid(e.to_string()))?;
        let kind = json
            .get("op")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        self.lock().execute(
            "INSERT OR IGNORE INTO changes
               (record, recorded_ms, actor, effective_ms, kind, subject, person, change, refused)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                record as i64,
                control.recorded,
                control.actor,
                control.effective,
                kind,
                control.change.subject(),
                person,
                json.to_string(),
                refused
            ],
        )?;
        Ok(())
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
