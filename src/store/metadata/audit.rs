//! The audit log: who read or exported whose data, what, when and why. A record is committed
//! (synchronous=FULL) before the data it describes is returned.

use super::{Metadata, MetadataError};
use crate::model::time::{rfc3339_ms, rfc3339_ms_opt};
use rusqlite::params;
use serde::Serialize;

/// An audit record to write.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub t_ms: i64,
    pub user_name: String,
    pub role: String,
    /// What was done: `person.read`, `trail.read`, `trail.export`, `sar.export`, `purge`, …
    pub action: String,
    pub person: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub format: Option<String>,
    pub purpose: Option<String>,
    pub detail: Option<String>,
}

impl NewAuditEntry {
    /// An offline command's record (`tagstream people export`, `tagstream report …`): by the
    /// operating-system user as `cli:<user>`, with admin rights (whoever can open the data
    /// directory has them), at the wall clock's `now_ms`.
    pub fn by_cli(self, now_ms: i64) -> Self {
        Self {
            t_ms: now_ms,
            user_name: format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            ),
            role: "admin".into(),
            ..self
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "rfc3339_ms")]
    pub t: i64,
    pub user: String,
    pub role: String,
    pub action: String,
    pub person: Option<String>,
    #[serde(with = "rfc3339_ms_opt")]
    pub from: Option<i64>,
    #[serde(with = "rfc3339_ms_opt")]
    pub to: Option<i64>,
    pub format: Option<String>,
    pub purpose: Option<String>,
    pub detail: Option<String>,
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub person: Option<String>,
    pub user: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: Option<u32>,
}

impl Metadata {
    pub fn audit(&self, entry: &NewAuditEntry) -> Result<i64, MetadataError> {
        let conn = self.lock();
        // Cached: every API read writes one.
        conn.prepare_cached(
            "INSERT INTO audit (t_ms, user_name, role, action, person, from_ms, to_ms, format, purpose, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
                entry.t_ms,
                entry.user_name,
                entry.role,
                entry.action,
                entry.person,
                entry.from_ms,
                entry.to_ms,
                entry.format,
                entry.purpose,
                entry.detail
        ])?;
        Ok(conn.last_insert_rowid())
    }

    pub fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, t_ms, user_name, role, action, person, from_ms, to_ms, format, purpose, detail
             FROM audit
             WHERE (?1 IS NULL OR person = ?1) AND (?2 IS NULL OR user_name = ?2) AND (?3 IS NULL OR t_ms >= ?3)
             ORDER BY id LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![q.person, q.user, q.since_ms, q.limit.unwrap_or(10_000)],
            |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    t: r.get(1)?,
                    user: r.get(2)?,
                    role: r.get(3)?,
                    action: r.get(4)?,
                    person: r.get(5)?,
                    from: r.get(6)?,
                    to: r.get(7)?,
                    format: r.get(8)?,
                    purpose: r.get(9)?,
                    detail: r.get(10)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes audit records about a person older than `before_ms` (retention); returns how many.
    pub fn purge_audit(&self, person: &str, before_ms: i64) -> Result<usize, MetadataError> {
        Ok(self.lock().execute(
            "DELETE FROM audit WHERE person = ?1 AND t_ms < ?2",
            params![person, before_ms],
        )?)
    }
}
