//! The crime store (`DATA/crimes.sqlite3`): police crime batches as uploaded (with their
//! validation report), every version of every crime reference, what changed between versions,
//! the public street-level overlay, and the hits with the hub's review of each.
//!
//! Batches and versions are what police sent: they commit with `synchronous=FULL` before the
//! upload is answered. Hits are derived from crimes and trails (start-up re-matches every stored
//! crime), so their writes use the WAL's normal durability; reviews are people's decisions and
//! commit in full before the API answers. Replay runs the same code on an in-memory database, so
//! version numbering is the same live and in replay.

use super::sqlite_schema::{apply_migrations, SchemaError};
use crate::model::time::{format_time, rfc3339_ms};
use crate::model::{CrimeKey, CrimeVersion, Hit, HitStanding, PoliceCrime, TimeMs};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum CrimeStoreError {
    #[error("crime store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("crime store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("hit '{0}' not found")]
    HitNotFound(String),
    /// A withdrawn hit no longer holds: there is nothing to confirm or reject.
    #[error("hit '{id}' was withdrawn ({reason}): a withdrawn hit cannot be reviewed")]
    Withdrawn { id: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("crime store: {0}")]
    Schema(#[from] SchemaError),
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE batches (
        batch_id TEXT PRIMARY KEY,
        force TEXT NOT NULL,
        status TEXT NOT NULL,
        rows INTEGER NOT NULL,
        imported INTEGER NOT NULL,
        radius_m REAL NOT NULL,
        report TEXT NOT NULL,
        uploaded_by TEXT NOT NULL,
        uploaded_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL
     );
     CREATE TABLE crimes (
        force TEXT NOT NULL,
        crime_ref TEXT NOT NULL,
        version INTEGER NOT NULL,
        batch_id TEXT NOT NULL,
        line INTEGER NOT NULL,
        document TEXT NOT NULL,
        original TEXT NOT NULL,
        changed TEXT NOT NULL,
        PRIMARY KEY (force, crime_ref, version)
     );
     CREATE INDEX crimes_by_batch ON crimes(batch_id, line);
     CREATE TABLE hits (
        id TEXT PRIMARY KEY,
        force TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        crime_ref TEXT NOT NULL,
        crime_version INTEGER NOT NULL,
        activation TEXT NOT NULL,
        person TEXT NOT NULL,
        document TEXT NOT NULL,
        withdrawn INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        reviewed_by TEXT,
        reviewed_ms INTEGER,
        reason TEXT
     );
     CREATE INDEX hits_by_batch ON hits(batch_id);
     CREATE INDEX hits_by_force ON hits(force, state);
     CREATE TABLE hit_reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hit_id TEXT NOT NULL,
        t_ms INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL
     );
     CREATE TABLE public_crimes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        crime_id TEXT,
        month TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        crime_type TEXT NOT NULL,
        document TEXT NOT NULL
     );
     CREATE INDEX public_by_month ON public_crimes(month, lat, lon);",
    // A reviewed hit that late positions re-evaluated (new evidence, or withdrawn): the hub sees
    // that its decision was made on other evidence.
    "ALTER TABLE hits ADD COLUMN changed_after_review INTEGER NOT NULL DEFAULT 0;",
    // A batch whose upload produced more pending hits than the configured bound: flagged for
    // the hub (sticky: a later re-upload does not clear it).
    "ALTER TABLE batches ADD COLUMN bulk INTEGER NOT NULL DEFAULT 0;",
    // Every hit review (log record number) below this one has been taken (see the alert store's).
    "CREATE TABLE decisions_applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        applied_below INTEGER NOT NULL
     );",
    // Why a withdrawn hit no longer holds (`HitWithdrawal`): the control record that caused it
    // (NULL when late positions or a re-match did) and the reason in words.
    "ALTER TABLE hits ADD COLUMN withdrawn_change INTEGER;
     ALTER TABLE hits ADD COLUMN withdrawn_reason TEXT;",
    // Every crime batch (log record number) below this one has been stored: start-up stores
    // the ones from it on from the log, before matching (batches are control records).
    "CREATE TABLE crimes_applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        applied_below INTEGER NOT NULL
     );",
    // Hub decisions on hits this store did not hold yet (cluster mode: a hit found by another
    // node reaches this one through the outputs stream, perhaps after the decision's record),
    // applied when the hit arrives.
    "CREATE TABLE hit_reviews_waiting (
        record INTEGER PRIMARY KEY,
        hit_id TEXT NOT NULL,
        activation TEXT NOT NULL,
        state TEXT NOT NULL,
        user_name TEXT NOT NULL,
        t_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
     );
     CREATE INDEX hit_reviews_waiting_by_hit ON hit_reviews_waiting(hit_id);",
];

/// Why a hit no longer holds: the one `withdrawn` every output carries (`change` null when late
/// positions or matching again at start withdrew it, not a control record).
pub type HitWithdrawal = crate::model::Withdrawal;

/// Which withdrawn hits a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WithdrawnFilter {
    /// Current hits only.
    Exclude,
    /// Current hits, and withdrawn ones the hub had reviewed (the API's default: a decision
    /// someone may have acted on stays visible, marked withdrawn).
    Reviewed,
    /// Every hit, withdrawn or not.
    #[default]
    Include,
    /// Withdrawn hits only.
    Only,
}

impl WithdrawnFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exclude" => Some(Self::Exclude),
            "reviewed" => Some(Self::Reviewed),
            "include" => Some(Self::Include),
            "only" => Some(Self::Only),
            _ => None,
        }
    }

    /// The SQL condition on `hits` (a constant per variant: nothing from outside).
    fn sql(self) -> &'static str {
        match self {
            Self::Exclude => "withdrawn = 0",
            Self::Reviewed => "(withdrawn = 0 OR state != 'pending')",
            Self::Include => "1",
            Self::Only => "withdrawn = 1",
        }
    }
}

/// A version stored by an import, and what changed from the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionChange {
    pub crime_ref: String,
    pub version: u32,
    /// Fields that differ from the previous version (`[]` for a first version, or a resubmission
    /// in a new batch that changed nothing).
    pub changed: Vec<String>,
}

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOutcome {
    /// New crime versions (to match).
    pub new_versions: Vec<CrimeVersion>,
    pub changes: Vec<VersionChange>,
    /// Rows identical to a version already stored from the same batch (a re-upload).
    pub unchanged: usize,
}

/// A stored batch: its report plus who uploaded it and its hit count.
#[derive(Debug, Clone, Serialize)]
pub struct StoredBatch {
    #[serde(flatten)]
    pub report: serde_json::Value,
    pub uploaded_by: String,
    #[serde(with = "rfc3339_ms")]
    pub uploaded_at: TimeMs,
    pub radius_m: f64,
    /// Hits on the batch's crimes (not withdrawn), whatever their review state.
    pub hits: u64,
    pub confirmed_hits: u64,
    pub pending_hits: u64,
    /// Hits on the batch's crimes that no longer hold (kept, marked `withdrawn`).
    pub withdrawn_hits: u64,
    /// The upload produced more pending hits than `[crime_api] bulk_pending_hits`.
    pub bulk: bool,
}

/// A batch's pending hits after its upload was matched, and whether that flagged it bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BulkFlag {
    pub pending_hits: u64,
    pub bulk: bool,
}

/// One row of the batches query.
struct StoredBatchRow {
    report: String,
    uploaded_by: String,
    uploaded_at: i64,
    radius_m: f64,
    hits: i64,
    confirmed: i64,
    pending: i64,
    withdrawn: i64,
    bulk: i64,
}

/// Where a hit is in the hub's review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitState {
    Pending,
    Confirmed,
    Rejected,
}

impl HitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// The review part of a hit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HitReview {
    pub state: HitState,
    pub by: Option<String>,
    #[serde(with = "crate::model::time::rfc3339_ms_opt")]
    pub at: Option<TimeMs>,
    pub reason: Option<String>,
    /// The hit was re-evaluated (late positions) after this decision: review it again.
    pub changed_after_review: bool,
}

/// A hit with its review, as the API serves it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredHit {
    #[serde(flatten)]
    pub hit: Hit,
    pub review: HitReview,
    /// Present when the hit no longer holds: kept, with its review history, never deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<HitWithdrawal>,
}

impl StoredHit {
    /// The hit as it stands, without its review (the hub's decisions reach every node through
    /// the log, not with the hit).
    pub fn standing(&self) -> HitStanding {
        HitStanding {
            hit: self.hit.clone(),
            withdrawn: self.withdrawn.clone(),
        }
    }
}

/// A line of `hits.jsonl` for a withdrawn hit: the hit, then `withdrawn`.
#[derive(Serialize)]
struct WithdrawnLine<'a> {
    #[serde(flatten)]
    hit: &'a Hit,
    withdrawn: &'a HitWithdrawal,
}

/// Filters for listing hits.
#[derive(Debug, Clone, Default)]
pub struct HitFilter {
    pub batch_id: Option<String>,
    pub force: Option<String>,
    pub state: Option<HitState>,
    pub person: Option<String>,
    pub limit: Option<u32>,
    /// Which withdrawn hits to return (default: all; the API defaults to `Reviewed`).
    pub withdrawn: WithdrawnFilter,
}

pub use crate::model::HitDecision;

#[derive(Clone)]
pub struct CrimeStore {
    conn: Arc<Mutex<Connection>>,
}

impl CrimeStore {
    /// Opens (creating and migrating) `DATA/crimes.sqlite3`.
    pub fn open(data_dir: &Path) -> Result<Self, CrimeStoreError> {
        let path = data_dir.join("crimes.sqlite3");
        // Owner-only before SQLite opens it: its -wal and -shm files take the same mode.
        crate::data_dir::ensure_private_file(&path)
            .map_err(|e| CrimeStoreError::Invalid(e.to_string()))?;
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::migrate(conn)
    }

    /// A throw-away store (replay).
    pub fn in_memory() -> Result<Self, CrimeStoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(mut conn: Connection) -> Result<Self, CrimeStoreError> {
        apply_migrations(&mut conn, "crime", MIGRATIONS)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every later hit write fail (tests of what callers do with a store error).
    #[cfg(test)]
    pub(crate) fn break_hits_for_tests(&self) {
        self.lock()
            .execute_batch("DROP TABLE hits")
            .expect("drop the hits table");
    }

    /// Stores a batch's report and its good rows as crime versions, in one durable transaction.
    /// A reference already held becomes a new version unless this very batch already stored the
    /// same content (a re-upload changes nothing).
    pub fn import_batch(
        &self,
        report: &serde_json::Value,
        rows: &[PoliceCrime],
        radius_m: f64,
        uploaded_by: &str,
        uploaded_ms: TimeMs,
        record: Option<u64>,
    ) -> Result<ImportOutcome, CrimeStoreError> {
        let batch_id = report["batch_id"].as_str().unwrap_or_default().to_string();
        let force = report["force"].as_str().unwrap_or_default().to_string();
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction()?;
        let mut outcome = ImportOutcome::default();
        for row in rows {
            let latest: Option<(u32, String, String)> = tx
                .query_row(
                    "SELECT version, batch_id, document FROM crimes WHERE force = ?1 AND crime_ref = ?2
                     ORDER BY version DESC LIMIT 1",
                    params![row.force, row.crime_ref],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let mut crime = CrimeVersion {
                force: row.force.clone(),
                batch_id: row.batch_id.clone(),
                crime_ref: row.crime_ref.clone(),
                version: 1,
                crime_type: row.crime_type.clone(),
                crime_type_description: row.crime_type_description.clone(),
                from_ms: row.from_ms,
                to_ms: row.to_ms,
                lat: row.lat,
                lon: row.lon,
                radius_m,
                other_info: row.other_info.clone(),
            };
            let mut changed = Vec::new();
            if let Some((version, prev_batch, doc)) = latest {
                let prev: CrimeVersion = serde_json::from_str(&doc)?;
                changed = differences(&prev, &crime);
                if prev_batch == row.batch_id && changed.is_empty() {
                    outcome.unchanged += 1;
                    continue;
                }
                crime.version = version + 1;
            }
            tx.execute(
                "INSERT INTO crimes (force, crime_ref, version, batch_id, line, document, original, changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    crime.force,
                    crime.crime_ref,
                    crime.version,
                    crime.batch_id,
                    row.line as i64,
                    serde_json::to_string(&crime)?,
                    serde_json::json!({"coordinates": row.original, "datum": row.datum}).to_string(),
                    serde_json::to_string(&changed)?,
                ],
            )?;
            outcome.changes.push(VersionChange {
                crime_ref: crime.crime_ref.clone(),
                version: crime.version,
                changed,
            });
            outcome.new_versions.push(crime);
        }
        let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches", [], |r| {
            r.get(0)
        })?;
        tx.execute(
            "INSERT INTO batches (batch_id, force, status, rows, imported, radius_m, report, uploaded_by, uploaded_ms, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(batch_id) DO UPDATE SET status = excluded.status, rows = excluded.rows,
               imported = excluded.imported, radius_m = excluded.radius_m, report = excluded.report,
               uploaded_by = excluded.uploaded_by, uploaded_ms = excluded.uploaded_ms, seq = excluded.seq",
            params![
                batch_id,
                force,
                report["status"].as_str().unwrap_or("failed"),
                report["rows"].as_u64().unwrap_or(0) as i64,
                report["imported"].as_u64().unwrap_or(0) as i64,
                radius_m,
                report.to_string(),
                uploaded_by,
                uploaded_ms,
                seq
            ],
        )?;
        if let Some(record) = record {
            tx.execute(
                "INSERT INTO crimes_applied (id, applied_below) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET applied_below = MAX(applied_below, ?1)",
                [record as i64 + 1],
            )?;
        }
        tx.commit()?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(outcome)
    }

    /// Every crime version, oldest first (start-up matching).
    pub fn all_crimes(&self) -> Result<Vec<CrimeVersion>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT document FROM crimes ORDER BY rowid")?;
        let docs = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for doc in docs {
            out.push(serde_json::from_str(&doc?)?);
        }
        Ok(out)
    }

    /// The crime versions a batch brought, by line.
    pub fn batch_crimes(&self, batch_id: &str) -> Result<Vec<serde_json::Value>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT document, original, changed, line FROM crimes WHERE batch_id = ?1 ORDER BY line",
        )?;
        let rows = stmt.query_map([batch_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, original, changed, line) = row?;
            let mut v: serde_json::Value = serde_json::from_str(&doc)?;
            v["original"] = serde_json::from_str(&original)?;
            v["changed"] = serde_json::from_str(&changed)?;
            v["line"] = line.into();
            out.push(v);
        }
        Ok(out)
    }

    /// One crime version's stored document (the row as imported, `other_info` included), by
    /// its key: what a document about one of its hits quotes.
    pub fn crime_document(
        &self,
        force: &str,
        crime_ref: &str,
        version: u32,
    ) -> Result<Option<serde_json::Value>, CrimeStoreError> {
        let conn = self.lock();
        let doc = conn
            .query_row(
                "SELECT document FROM crimes WHERE force = ?1 AND crime_ref = ?2 AND version = ?3",
                (force, crime_ref, version),
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        Ok(match doc {
            Some(d) => Some(serde_json::from_str(&d)?),
            None => None,
        })
    }

    /// Batches, newest upload first; `force` limits them to one force.
    pub fn batches(&self, force: Option<&str>) -> Result<Vec<StoredBatch>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT b.report, b.uploaded_by, b.uploaded_ms, b.radius_m,
                    (SELECT COUNT(*) FROM hits h WHERE h.batch_id = b.batch_id AND h.withdrawn = 0),
                    (SELECT COUNT(*) FROM hits h WHERE h.batch_id = b.batch_id AND h.withdrawn = 0
                       AND h.state = 'confirmed'),
                    (SELECT COUNT(*) FROM hits h WHERE h.batch_id = b.batch_id AND h.withdrawn = 0
                       AND h.state = 'pending'),
                    b.bulk,
                    (SELECT COUNT(*) FROM hits h WHERE h.batch_id = b.batch_id AND h.withdrawn = 1)
             FROM batches b WHERE (?1 IS NULL OR b.force = ?1) ORDER BY b.seq DESC",
        )?;
        let rows = stmt.query_map([force], |r| {
            Ok(StoredBatchRow {
                report: r.get(0)?,
                uploaded_by: r.get(1)?,
                uploaded_at: r.get(2)?,
                radius_m: r.get(3)?,
                hits: r.get(4)?,
                confirmed: r.get(5)?,
                pending: r.get(6)?,
                bulk: r.get(7)?,
                withdrawn: r.get(8)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            out.push(StoredBatch {
                report: serde_json::from_str(&row.report)?,
                uploaded_by: row.uploaded_by,
                uploaded_at: row.uploaded_at,
                radius_m: row.radius_m,
                hits: row.hits.max(0) as u64,
                confirmed_hits: row.confirmed.max(0) as u64,
                pending_hits: row.pending.max(0) as u64,
                withdrawn_hits: row.withdrawn.max(0) as u64,
                bulk: row.bulk != 0,
            });
        }
        Ok(out)
    }

    /// Counts the batch's pending hits and flags the batch `bulk` when there are more than
    /// `max_pending` (the upload's answer and the hub's batch list then say so).
    pub fn flag_bulk_pending(
        &self,
        batch_id: &str,
        max_pending: u64,
    ) -> Result<BulkFlag, CrimeStoreError> {
        let conn = self.lock();
        let pending: i64 = conn.query_row(
            "SELECT COUNT(*) FROM hits WHERE batch_id = ?1 AND withdrawn = 0 AND state = 'pending'",
            [batch_id],
            |r| r.get(0),
        )?;
        let pending = pending.max(0) as u64;
        if pending > max_pending {
            conn.execute(
                "UPDATE batches SET bulk = 1 WHERE batch_id = ?1",
                [batch_id],
            )?;
            tracing::warn!(
                batch_id,
                pending,
                max_pending,
                "crime batch flagged bulk: more pending hits than the configured bound"
            );
        }
        let bulk: Option<i64> = conn
            .query_row(
                "SELECT bulk FROM batches WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(BulkFlag {
            pending_hits: pending,
            bulk: bulk.unwrap_or(0) != 0,
        })
    }

    pub fn batch(&self, batch_id: &str) -> Result<Option<StoredBatch>, CrimeStoreError> {
        Ok(self
            .batches(None)?
            .into_iter()
            .find(|b| b.report["batch_id"].as_str() == Some(batch_id)))
    }

    /// Stores a hit's current form (a no-op if unchanged); `true` if something changed.
    pub fn upsert_hit(&self, hit: &Hit) -> Result<bool, CrimeStoreError> {
        self.put_hit(hit, None)
    }

    /// Marks a hit withdrawn (its trail no longer qualifies), with why; kept, with its review,
    /// for audit and shown marked. A hit already withdrawn keeps its first reason.
    pub fn withdraw_hit(&self, id: &str, why: &HitWithdrawal) -> Result<bool, CrimeStoreError> {
        let change = why.change.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
        let n = self.lock().execute(
            "UPDATE hits SET withdrawn = 1, withdrawn_change = ?2, withdrawn_reason = ?3,
               changed_after_review = (state != 'pending')
             WHERE id = ?1 AND withdrawn = 0",
            params![id, change, why.reason],
        )?;
        Ok(n > 0)
    }

    /// Stores a hit as another node published it ([`HitStanding`]: its form and withdrawal,
    /// taken exactly); a no-op if this store holds it so already. `true` if something changed.
    /// A change to a reviewed hit marks it for review again, as a local change does.
    pub fn put_hit_standing(&self, standing: &HitStanding) -> Result<bool, CrimeStoreError> {
        self.put_hit(&standing.hit, standing.withdrawn.as_ref())
    }

    /// Stores a hit's form and withdrawal (none: it holds) exactly, keeping its review; a
    /// change to a reviewed hit marks it for review again. `true` if something changed.
    fn put_hit(&self, hit: &Hit, why: Option<&HitWithdrawal>) -> Result<bool, CrimeStoreError> {
        let document = serde_json::to_string(hit)?;
        let (withdrawn, change, reason) = match why {
            Some(w) => (
                1i64,
                w.change.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
                Some(w.reason.as_str()),
            ),
            None => (0, None, None),
        };
        let conn = self.lock();
        let existing: Option<(String, i64, Option<i64>, Option<String>)> = conn
            .query_row(
                "SELECT document, withdrawn, withdrawn_change, withdrawn_reason FROM hits
                 WHERE id = ?1",
                [&hit.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        if existing.as_ref().is_some_and(|(d, w, c, r)| {
            *d == document
                && *w == withdrawn
                && (*w == 0 || (*c == change && r.as_deref() == reason))
        }) {
            return Ok(false);
        }
        let new = existing.is_none();
        conn.execute(
            "INSERT INTO hits (id, force, batch_id, crime_ref, crime_version, activation, person,
               document, withdrawn, withdrawn_change, withdrawn_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(id) DO UPDATE SET document = excluded.document, person = excluded.person,
               withdrawn = excluded.withdrawn, withdrawn_change = excluded.withdrawn_change,
               withdrawn_reason = excluded.withdrawn_reason,
               changed_after_review = (hits.state != 'pending')",
            params![
                hit.id,
                hit.force,
                hit.batch_id,
                hit.crime_ref,
                hit.crime_version,
                hit.activation,
                hit.person,
                document,
                withdrawn,
                change,
                reason
            ],
        )?;
        if new {
            apply_waiting_reviews(&conn, &hit.id)?;
        }
        Ok(true)
    }

    /// Keeps a hub decision (log record `record`) on a hit this store does not hold yet, to be
    /// applied when the hit arrives: the node that took the decision held it, and another
    /// node's hit reaches this store through the outputs stream, perhaps after the record.
    #[allow(clippy::too_many_arguments)]
    pub fn review_when_hit_arrives(
        &self,
        id: &str,
        activation: &str,
        decision: HitDecision,
        reason: &str,
        by: &str,
        now_ms: TimeMs,
        record: u64,
    ) -> Result<(), CrimeStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO hit_reviews_waiting
               (record, hit_id, activation, state, user_name, t_ms, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                i64::try_from(record).unwrap_or(i64::MAX),
                id,
                activation,
                review_state(decision).as_str(),
                by,
                now_ms,
                reason
            ],
        )?;
        // The hit may have arrived meanwhile.
        let held: bool = tx
            .query_row("SELECT COUNT(*) FROM hits WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)?;
        if held {
            apply_waiting_reviews(&tx, id)?;
        }
        super::decision_mark::note_decision(&tx, record)?;
        tx.commit()?;
        Ok(())
    }

    /// The crime version and activation of every hit not withdrawn (start-up: the matcher
    /// re-evaluates each, so a withdrawal lost in a crash is made at the next start).
    pub fn current_hit_keys(&self) -> Result<Vec<(CrimeKey, String)>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT force, crime_ref, crime_version, activation FROM hits WHERE withdrawn = 0
             ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                CrimeKey {
                    force: r.get(0)?,
                    crime_ref: r.get(1)?,
                    version: r.get(2)?,
                },
                r.get::<_, String>(3)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Hits matching the filter, by id.
    pub fn hits(&self, filter: &HitFilter) -> Result<Vec<StoredHit>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {HIT_COLUMNS} FROM hits
             WHERE {} AND (?1 IS NULL OR batch_id = ?1) AND (?2 IS NULL OR force = ?2)
               AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR person = ?4)
             ORDER BY id LIMIT ?5",
            filter.withdrawn.sql()
        ))?;
        let rows = stmt.query_map(
            params![
                filter.batch_id,
                filter.force,
                filter.state.map(HitState::as_str),
                filter.person,
                filter.limit.map(i64::from).unwrap_or(i64::MAX)
            ],
            stored_hit_row,
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// One hit, withdrawn or not.
    pub fn hit(&self, id: &str) -> Result<Option<StoredHit>, CrimeStoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                &format!("SELECT {HIT_COLUMNS} FROM hits WHERE id = ?1"),
                [id],
                stored_hit_row,
            )
            .optional()?;
        row.transpose()
    }

    /// Records a hub decision (log record `record`, durably, before the API answers) and
    /// returns the hit after it.
    pub fn review_hit(
        &self,
        id: &str,
        decision: HitDecision,
        reason: &str,
        by: &str,
        now_ms: TimeMs,
        record: u64,
    ) -> Result<StoredHit, CrimeStoreError> {
        if reason.trim().is_empty() {
            return Err(CrimeStoreError::Invalid(
                "a reason is required to confirm or reject a hit".into(),
            ));
        }
        let state = review_state(decision);
        {
            let mut conn = self.lock();
            // A withdrawn hit no longer holds: a decision on it would be about nothing.
            let withdrawn: Option<(i64, Option<String>)> = conn
                .query_row(
                    "SELECT withdrawn, withdrawn_reason FROM hits WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((1, reason)) = withdrawn {
                return Err(CrimeStoreError::Withdrawn {
                    id: id.to_string(),
                    reason: reason.unwrap_or_else(|| UNKNOWN_REASON.to_string()),
                });
            }
            conn.pragma_update(None, "synchronous", "FULL")?;
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE hits SET state = ?2, reviewed_by = ?3, reviewed_ms = ?4, reason = ?5,
                   changed_after_review = 0
                 WHERE id = ?1 AND withdrawn = 0",
                params![id, state.as_str(), by, now_ms, reason],
            )?;
            if n == 0 {
                return Err(CrimeStoreError::HitNotFound(id.to_string()));
            }
            tx.execute(
                "INSERT INTO hit_reviews (hit_id, t_ms, user_name, decision, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, now_ms, by, state.as_str(), reason],
            )?;
            super::decision_mark::note_decision(&tx, record)?;
            tx.commit()?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        self.hit(id)?
            .ok_or_else(|| CrimeStoreError::HitNotFound(id.to_string()))
    }

    /// Every hit review (log record number) below this one has been taken.
    pub fn decisions_applied_below(&self) -> Result<u64, CrimeStoreError> {
        Ok(super::decision_mark::decisions_applied_below(&self.lock())?)
    }

    /// A consistent copy of the whole database at `path` (`VACUUM INTO`), e.g. before a rebuild.
    pub fn backup_to(&self, path: &Path) -> Result<(), CrimeStoreError> {
        let target = path.to_string_lossy().to_string();
        self.lock().execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Every crime batch (log record number) below this one has been stored.
    pub fn crimes_applied_below(&self) -> Result<u64, CrimeStoreError> {
        let below: Option<i64> = self
            .lock()
            .query_row(
                "SELECT applied_below FROM crimes_applied WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(below.unwrap_or(0) as u64)
    }

    /// The ids of every stored batch.
    pub fn batch_ids(&self) -> Result<Vec<String>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT batch_id FROM batches ORDER BY seq")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<Result<Vec<_>, _>>()?)
    }

    /// Empties what the log rebuilds at start: hits, their reviews and the decision mark, and —
    /// when `batches_too` (every stored batch is in the log) — the batches, their crime
    /// versions and the batch mark. The public overlay is kept. For `tagstream rebuild`.
    pub fn clear_log_views(&self, batches_too: bool) -> Result<(), CrimeStoreError> {
        let batches = match batches_too {
            true => "DELETE FROM crimes; DELETE FROM batches; DELETE FROM crimes_applied;",
            false => "",
        };
        self.lock().execute_batch(&format!(
            "BEGIN; DELETE FROM hit_reviews; DELETE FROM hits; DELETE FROM decisions_applied;
             {batches} COMMIT;"
        ))?;
        Ok(())
    }

    /// The review history of a hit, oldest first.
    pub fn hit_reviews(&self, id: &str) -> Result<Vec<serde_json::Value>, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT t_ms, user_name, decision, reason FROM hit_reviews WHERE hit_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(serde_json::json!({
                "at": format_time(r.get::<_, i64>(0)?),
                "by": r.get::<_, String>(1)?,
                "decision": r.get::<_, String>(2)?,
                "reason": r.get::<_, String>(3)?,
            }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes every current hit as JSON Lines, by id: the same bytes as replay's `hits.jsonl`.
    pub fn write_hits_jsonl(&self, out: &mut dyn std::io::Write) -> Result<u64, CrimeStoreError> {
        self.write_hits_jsonl_with(out, WithdrawnFilter::Exclude)
    }

    /// Writes the hits `withdrawn` selects as JSON Lines, by id; a withdrawn hit's line ends
    /// with its `withdrawn` object.
    pub fn write_hits_jsonl_with(
        &self,
        out: &mut dyn std::io::Write,
        withdrawn: WithdrawnFilter,
    ) -> Result<u64, CrimeStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {HIT_COLUMNS} FROM hits WHERE {} ORDER BY id",
            withdrawn.sql()
        ))?;
        // A current hit's line is its stored document as it is (replay writes the same bytes).
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, stored_hit_row(r)?)))?;
        let mut n = 0;
        for row in rows {
            let (document, hit) = row?;
            let hit = hit?;
            let doc = match &hit.withdrawn {
                None => document,
                Some(w) => serde_json::to_string(&WithdrawnLine {
                    hit: &hit.hit,
                    withdrawn: w,
                })?,
            };
            out.write_all(doc.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| CrimeStoreError::Invalid(format!("writing hits: {e}")))?;
            n += 1;
        }
        Ok(n)
    }

    /// Replaces the public overlay rows of one source file.
    pub fn import_public(
        &self,
        source: &str,
        rows: &[serde_json::Value],
    ) -> Result<u64, CrimeStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM public_crimes WHERE source = ?1", [source])?;
        for row in rows {
            tx.execute(
                "INSERT INTO public_crimes (source, crime_id, month, lat, lon, crime_type, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    source,
                    row["crime_id"].as_str(),
                    row["month"].as_str().unwrap_or_default(),
                    row["lat"].as_f64().unwrap_or_default(),
                    row["lon"].as_f64().unwrap_or_default(),
                    row["crime_type"].as_str().unwrap_or_default(),
                    row.to_string()
                ],
            )?;
        }
        tx.commit()?;
        Ok(rows.len() as u64)
    }

    /// Public overlay rows of a month inside a box (at most `limit`).
    pub fn public_crimes(
        &self,
        month: Option<&str>,
        bbox: Option<(f64, f64, f64, f64)>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>, CrimeStoreError> {
        let (min_lon, min_lat, max_lon, max_lat) = bbox.unwrap_or((-180.0, -90.0, 180.0, 90.0));
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT document FROM public_crimes WHERE (?1 IS NULL OR month = ?1)
               AND lon BETWEEN ?2 AND ?4 AND lat BETWEEN ?3 AND ?5 ORDER BY id LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![month, min_lon, min_lat, max_lon, max_lat, limit],
            |r| r.get::<_, String>(0),
        )?;
        let mut out = Vec::new();
        for doc in rows {
            out.push(serde_json::from_str(&doc?)?);
        }
        Ok(out)
    }
}

/// The columns [`stored_hit_row`] reads, in its order.
fn review_state(decision: HitDecision) -> HitState {
    match decision {
        HitDecision::Confirm => HitState::Confirmed,
        HitDecision::Reject => HitState::Rejected,
    }
}

/// Applies the decisions waiting for hit `id` (just stored), in log order. One made before the
/// hit was withdrawn stays marked for review again, as on the node that found the hit.
fn apply_waiting_reviews(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    let waiting: Vec<(String, String, i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT state, user_name, t_ms, reason FROM hit_reviews_waiting WHERE hit_id = ?1
             ORDER BY record",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (state, by, t_ms, reason) in waiting {
        conn.execute(
            "UPDATE hits SET state = ?2, reviewed_by = ?3, reviewed_ms = ?4, reason = ?5,
               changed_after_review = withdrawn
             WHERE id = ?1",
            params![id, state, by, t_ms, reason],
        )?;
        conn.execute(
            "INSERT INTO hit_reviews (hit_id, t_ms, user_name, decision, reason)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, t_ms, by, state, reason],
        )?;
    }
    conn.execute("DELETE FROM hit_reviews_waiting WHERE hit_id = ?1", [id])?;
    Ok(())
}

const HIT_COLUMNS: &str = "document, state, reviewed_by, reviewed_ms, reason, changed_after_review,
    withdrawn, withdrawn_change, withdrawn_reason";

/// The reason of a hit withdrawn before reasons were recorded.
const UNKNOWN_REASON: &str = "withdrawn before reasons were recorded";

fn stored_hit_row(r: &rusqlite::Row) -> rusqlite::Result<Result<StoredHit, CrimeStoreError>> {
    let doc: String = r.get(0)?;
    let state: String = r.get(1)?;
    let review = HitReview {
        state: HitState::parse(&state).unwrap_or(HitState::Pending),
        by: r.get(2)?,
        at: r.get(3)?,
        reason: r.get(4)?,
        changed_after_review: r.get::<_, i64>(5)? != 0,
    };
    let withdrawn = match r.get::<_, i64>(6)? {
        0 => None,
        _ => Some(HitWithdrawal {
            change: r
                .get::<_, Option<i64>>(7)?
                .and_then(|c| u64::try_from(c).ok()),
            reason: r
                .get::<_, Option<String>>(8)?
                .unwrap_or_else(|| UNKNOWN_REASON.to_string()),
        }),
    };
    Ok(serde_json::from_str::<Hit>(&doc)
        .map(|hit| StoredHit {
            hit,
            review,
            withdrawn,
        })
        .map_err(CrimeStoreError::from))
}

/// Names of the fields that differ between two versions of a crime.
fn differences(prev: &CrimeVersion, next: &CrimeVersion) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_string());
        }
    };
    check("crime_type", prev.crime_type != next.crime_type);
    check("from", prev.from_ms != next.from_ms);
    check("to", prev.to_ms != next.to_ms);
    check("location", prev.lat != next.lat || prev.lon != next.lon);
    check("radius_m", prev.radius_m != next.radius_m);
    check("other_info", prev.other_info != next.other_info);
    out
}

impl CrimeStore {
    /// Deletes every hit on an activation and its review history (retention).
    pub fn purge_activation_hits(&self, activation: &str) -> Result<u64, CrimeStoreError> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM hit_reviews WHERE hit_id IN (SELECT id FROM hits WHERE activation = ?1)",
            [activation],
        )?;
        tx.execute(
            "DELETE FROM hit_reviews_waiting WHERE activation = ?1",
            [activation],
        )?;
        let n = tx.execute("DELETE FROM hits WHERE activation = ?1", [activation])?;
        tx.commit()?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(n as u64)
    }
}

/// Retention: hits are data about the person wearing the tag, purged with the activation.
impl super::PurgeTarget for CrimeStore {
    fn name(&self) -> &'static str {
        "crime_hits"
    }

    fn purge_activation(&self, activation: &str) -> Result<u64, super::TargetError> {
        Ok(self.purge_activation_hits(activation)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Certainty, HitAlgorithm};

    fn hit(id: &str, crime_ref: &str) -> Hit {
        Hit {
            id: id.into(),
            force: "AvonSomerset".into(),
            batch_id: "AVS20260601".into(),
            crime_ref: crime_ref.into(),
            crime_version: 1,
            activation: "A1".into(),
            person: "P1".into(),
            certainty: Certainty::Certain,
            closest_m: 12.3,
            closest_t: 1_780_000_000_000,
            inside_s: 90,
            positions: Vec::new(),
            algorithm: HitAlgorithm {
                name: "hits/2".into(),
                radius_m: 100.0,
                max_gap_s: 600,
                margin_s: 1800,
                max_precision_m: 500.0,
                label_gap_s: 600,
            },
            crime_type: "BIAD".into(),
            crime_from: 1_780_000_000_000,
            crime_to: 1_780_003_600_000,
            crime_lat: 51.4545,
            crime_lon: -2.5879,
            radius_m: 100.0,
            weaker_evidence: false,
        }
    }

    fn ids(hits: &[StoredHit]) -> Vec<&str> {
        hits.iter().map(|h| h.hit.id.as_str()).collect()
    }

    #[test]
    fn a_published_hit_is_stored_as_it_stands_once_and_a_reviewed_one_is_marked_changed() {
        let owner = CrimeStore::in_memory().unwrap();
        let replica = CrimeStore::in_memory().unwrap();
        let standing_of = |store: &CrimeStore, id: &str| store.hit(id).unwrap().unwrap().standing();
        let first = hit("H1", "AVS/1");
        owner.upsert_hit(&first).unwrap();
        assert!(replica
            .put_hit_standing(&standing_of(&owner, "H1"))
            .unwrap());
        assert!(!replica
            .put_hit_standing(&standing_of(&owner, "H1"))
            .unwrap());
        replica
            .review_hit("H1", HitDecision::Confirm, "seen on CCTV", "hana", 5, 1)
            .unwrap();
        // The owner withdraws it: the replica takes the withdrawal exactly, keeps the review
        // and asks for it again.
        let why = HitWithdrawal {
            change: Some(9),
            reason: "activation 'A1' ended (change 9): no longer".into(),
        };
        owner.withdraw_hit("H1", &why).unwrap();
        assert!(replica
            .put_hit_standing(&standing_of(&owner, "H1"))
            .unwrap());
        let stored = replica.hit("H1").unwrap().unwrap();
        assert_eq!(stored.withdrawn.as_ref(), Some(&why));
        assert_eq!(stored.review.state, HitState::Confirmed);
        assert!(stored.review.changed_after_review);
        // It holds again, in a new form: no longer withdrawn, and the exports agree.
        let mut again = first.clone();
        again.closest_m = 3.4;
        owner.upsert_hit(&again).unwrap();
        replica
            .put_hit_standing(&standing_of(&owner, "H1"))
            .unwrap();
        assert_eq!(
            replica.hit("H1").unwrap().unwrap().standing(),
            standing_of(&owner, "H1")
        );
        let export = |store: &CrimeStore| {
            let mut out = Vec::new();
            store.write_hits_jsonl(&mut out).unwrap();
            out
        };
        assert_eq!(export(&replica), export(&owner));
    }

    #[test]
    fn a_decision_on_a_hit_not_here_yet_is_applied_when_it_arrives_and_purged_with_it() {
        let owner = CrimeStore::in_memory().unwrap();
        let replica = CrimeStore::in_memory().unwrap();
        owner.upsert_hit(&hit("H1", "AVS/1")).unwrap();
        owner.upsert_hit(&hit("H2", "AVS/2")).unwrap();
        let decide = |id: &str, record| {
            replica
                .review_when_hit_arrives(
                    id,
                    "A1",
                    HitDecision::Reject,
                    "elsewhere",
                    "hana",
                    7,
                    record,
                )
                .unwrap()
        };
        decide("H1", 40);
        assert_eq!(replica.decisions_applied_below().unwrap(), 41);
        assert!(replica.hit("H1").unwrap().is_none());
        replica
            .put_hit_standing(&owner.hit("H1").unwrap().unwrap().standing())
            .unwrap();
        let arrived = replica.hit("H1").unwrap().unwrap();
        assert_eq!(arrived.review.state, HitState::Rejected);
        assert_eq!(arrived.review.by.as_deref(), Some("hana"));
        assert!(!arrived.review.changed_after_review);
        assert_eq!(replica.hit_reviews("H1").unwrap().len(), 1);
        // A decision on a purged activation's hit goes with it.
        decide("H2", 41);
        replica.purge_activation_hits("A1").unwrap();
        replica
            .put_hit_standing(&owner.hit("H2").unwrap().unwrap().standing())
            .unwrap();
        assert_eq!(
            replica.hit("H2").unwrap().unwrap().review.state,
            HitState::Pending
        );
    }

    #[test]
    fn a_withdrawn_hit_is_kept_with_why_listed_as_asked_and_cannot_be_reviewed() {
        let store = CrimeStore::in_memory().unwrap();
        let (pending, confirmed) = (hit("H1", "AVS/1"), hit("H2", "AVS/2"));
        store.upsert_hit(&pending).unwrap();
        store.upsert_hit(&confirmed).unwrap();
        store
            .review_hit("H2", HitDecision::Confirm, "seen on CCTV", "hana", 5, 1)
            .unwrap();
        let late = HitWithdrawal {
            change: None,
            reason: "late position at …: no longer".into(),
        };
        let ended = HitWithdrawal {
            change: Some(17),
            reason: "activation 'A1' ended … (change 17): no longer".into(),
        };
        assert!(store.withdraw_hit("H1", &late).unwrap());
        assert!(store.withdraw_hit("H2", &ended).unwrap());
        // Withdrawn once: a second withdrawal keeps the first reason.
        assert!(!store.withdraw_hit("H2", &late).unwrap());

        let list = |withdrawn| {
            store
                .hits(&HitFilter {
                    withdrawn,
                    ..HitFilter::default()
                })
                .unwrap()
        };
        assert!(list(WithdrawnFilter::Exclude).is_empty());
        let reviewed = list(WithdrawnFilter::Reviewed);
        assert_eq!(ids(&reviewed), ["H2"]);
        assert_eq!(reviewed[0].withdrawn.as_ref(), Some(&ended));
        assert_eq!(reviewed[0].review.state, HitState::Confirmed);
        assert!(reviewed[0].review.changed_after_review);
        assert_eq!(ids(&list(WithdrawnFilter::Include)), ["H1", "H2"]);
        assert_eq!(ids(&list(WithdrawnFilter::Only)), ["H1", "H2"]);

        // One representation: `change` a number or null, then `reason`.
        let one = store.hit("H1").unwrap().unwrap();
        let json = serde_json::to_value(&one).unwrap();
        assert_eq!(
            json["withdrawn"],
            serde_json::json!({"change": null, "reason": "late position at …: no longer"})
        );
        let two = serde_json::to_value(store.hit("H2").unwrap().unwrap()).unwrap();
        assert_eq!(two["withdrawn"]["change"], 17);

        // A review of a withdrawn hit is refused, saying why; the history is kept.
        let err = store
            .review_hit("H2", HitDecision::Reject, "changed my mind", "hana", 6, 2)
            .unwrap_err();
        assert!(
            matches!(&err, CrimeStoreError::Withdrawn { id, reason } if id == "H2" && *reason == ended.reason),
            "{err}"
        );
        assert_eq!(store.hit_reviews("H2").unwrap().len(), 1);

        // The export leaves withdrawn hits out unless asked; asked, each line ends with `withdrawn`.
        let mut current = Vec::new();
        assert_eq!(store.write_hits_jsonl(&mut current).unwrap(), 0);
        let mut all = Vec::new();
        store
            .write_hits_jsonl_with(&mut all, WithdrawnFilter::Include)
            .unwrap();
        let lines: Vec<&str> = std::str::from_utf8(&all).unwrap().lines().collect();
        let doc = serde_json::to_string(&confirmed).unwrap();
        assert_eq!(
            lines[1],
            format!(
                "{},\"withdrawn\":{}}}",
                &doc[..doc.len() - 1],
                serde_json::to_string(&ended).unwrap()
            )
        );

        // The hit holds again (a later evaluation): current once more, nothing of the withdrawal
        // left, and it is what start-up re-evaluates.
        store.upsert_hit(&pending).unwrap();
        let back = store.hit("H1").unwrap().unwrap();
        assert_eq!(back.withdrawn, None);
        assert_eq!(ids(&list(WithdrawnFilter::Exclude)), ["H1"]);
        let keys = store.current_hit_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].0.crime_ref.as_str(), keys[0].1.as_str()),
            ("AVS/1", "A1")
        );
    }
}
