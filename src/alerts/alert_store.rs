//! The durable alert store (`DATA/alerts.sqlite3`): every alert's current state by stable id, the
//! hub's review of it (new → acknowledged → assigned → resolved, with outcome and notes), and a
//! numbered event stream of every change for live delivery (Server-Sent Events, webhooks).
//! Retention deletes an activation's alerts with their reviews and events together; webhook
//! delivery state is a cursor per endpoint (an event number), so it holds nothing per alert.
//!
//! Alert content is derived from the durable log, so pipeline changes are written behind their
//! publication (see [`super::alert_writer`]) with `synchronous=NORMAL`: a crash can lose the last
//! few, and start-up re-derives them; only real differences become events. Event numbers are
//! handed out by the live alert book from blocks reserved here durably, so a number published
//! before a crash is never reused after it. Review actions are people's decisions: they commit
//! with `synchronous=FULL` before the API answers.

use crate::model::Alert;
use crate::pipeline::Provenance;
use crate::store::decision_mark::{decisions_applied_below, note_decision};
use crate::store::sqlite_schema::{apply_migrations, SchemaError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum AlertStoreError {
    #[error("alert store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("alert store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("alert '{0}' not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("alert store: {0}")]
    Schema(#[from] SchemaError),
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        activation TEXT NOT NULL,
        person TEXT NOT NULL,
        type TEXT NOT NULL,
        code TEXT,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,
        late INTEGER NOT NULL,
        document TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new',
        assignee TEXT,
        outcome TEXT,
        notes TEXT,
        reviewed_by TEXT,
        reviewed_ms INTEGER
     );
     CREATE INDEX alerts_by_person ON alerts(person, start_ms);
     CREATE INDEX alerts_by_type ON alerts(type, start_ms);
     CREATE INDEX alerts_by_state ON alerts(state, start_ms);
     CREATE TABLE alert_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE TABLE reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        t_ms INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        assignee TEXT,
        outcome TEXT,
        notes TEXT
     );
     CREATE TABLE delivery_cursors (
        endpoint TEXT PRIMARY KEY,
        delivered_seq INTEGER NOT NULL
     );",
    // Event numbers handed out up to here (see `reserve_event_seqs`).
    "CREATE TABLE event_seq_reservation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        reserved_through INTEGER NOT NULL
     );",
    // Every hub decision (log record number) below this one has been taken: start-up applies
    // the ones from it on from the log, so an action acknowledged just before a crash is never lost.
    "CREATE TABLE decisions_applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        applied_below INTEGER NOT NULL
     );",
    // Each event's provenance (see `AlertEvent::origin`): where webhook delivery resumes on
    // another node of a cluster. Events stored before this have none (NULL).
    "ALTER TABLE alert_events ADD COLUMN lane INTEGER;
     ALTER TABLE alert_events ADD COLUMN record INTEGER;
     CREATE INDEX alert_events_by_origin ON alert_events(lane, record);",
];

/// The lane of the hub's decisions (reviews): their events come from the control applier in log
/// order, beside the pipeline's partitions (lanes `0..partitions`).
pub const DECISION_LANE: u32 = u32::MAX;

/// Where an alert is in the hub's work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    New,
    Acknowledged,
    Assigned,
    Resolved,
}

impl ReviewState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Acknowledged => "acknowledged",
            Self::Assigned => "assigned",
            Self::Resolved => "resolved",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "acknowledged" => Self::Acknowledged,
            "assigned" => Self::Assigned,
            "resolved" => Self::Resolved,
            _ => Self::New,
        }
    }
}

pub use crate::model::{Outcome, ReviewAction};

/// The review part of an alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Review {
    pub state: ReviewState,
    pub assignee: Option<String>,
    pub outcome: Option<String>,
    pub notes: Option<String>,
    pub reviewed_by: Option<String>,
    #[serde(with = "crate::model::time::rfc3339_ms_opt")]
    pub reviewed_at: Option<i64>,
}

impl Review {
    /// The review of an alert nobody has acted on yet.
    pub fn untouched() -> Self {
        Self {
            state: ReviewState::New,
            assignee: None,
            outcome: None,
            notes: None,
            reviewed_by: None,
            reviewed_at: None,
        }
    }
}

/// An alert with its review, as the API serves it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredAlert {
    #[serde(flatten)]
    pub alert: serde_json::Value,
    pub review: Review,
}

/// One change, numbered for resumable delivery.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub seq: i64,
    pub alert_id: String,
    /// `raised` (new alert), `updated` (the pipeline changed it), `reviewed` (a person acted).
    pub kind: String,
    /// The alert with its review after the change, as JSON.
    pub body: String,
    /// Where the change came from: the pipeline partition (or [`DECISION_LANE`]) and the log
    /// record whose processing produced it. The same on every node of a cluster, unlike `seq`
    /// (`None`: stored before provenance was kept). Not part of what clients see.
    #[serde(skip)]
    pub origin: Option<Provenance>,
}

/// An alert change already numbered and published, waiting to be stored.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event: AlertEvent,
    pub alert: Alert,
    /// The alert as stored (`serde_json` of `alert`).
    pub document: String,
}

/// What [`AlertStore::purge_activation`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertsPurged {
    pub alerts: u64,
    pub reviews: u64,
    pub events: u64,
}

/// Every alert as it stands and the newest event that state includes ([`AlertStore::current`]).
#[derive(Debug, Clone, Default)]
pub struct AlertsNow {
    /// Events up to this number are reflected in `alerts`.
    pub through: i64,
    /// Each alert's JSON with its review, as an event's body carries it.
    pub alerts: Vec<String>,
}

/// Filters for listing and counting.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertFilter {
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    pub state: Option<String>,
    pub person: Option<String>,
    /// Only these people (role scoping); `None` = everyone.
    #[serde(skip)]
    pub people: Option<Vec<String>>,
    #[serde(skip)]
    pub from_ms: Option<i64>,
    #[serde(skip)]
    pub to_ms: Option<i64>,
    pub limit: Option<u32>,
}

/// A WAL larger than this after a checkpoint is truncated back to it.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct AlertStore {
    conn: Arc<Mutex<Connection>>,
    /// The database; its WAL is written back after each commit (see `store::write_back`).
    path: PathBuf,
}

impl AlertStore {
    pub fn open(data_dir: &Path) -> Result<Self, AlertStoreError> {
        let path = data_dir.join("alerts.sqlite3");
        // Owner-only before SQLite opens it: its -wal and -shm files take the same mode.
        crate::data_dir::ensure_private_file(&path)
            .map_err(|e| AlertStoreError::Invalid(e.to_string()))?;
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        apply_migrations(&mut conn, "alert", MIGRATIONS)?;
        // The alert writer checkpoints between its commits; SQLite's own automatic
        // checkpoints would land inside them and let the WAL grow under a steady write load.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A checkpoint RESTARTs the WAL rather than truncating it, so the next commits overwrite
        // blocks the file already has: no allocation, no size change, nothing for the
        // filesystem journal, whose commits the log's `fdatasync` would wait for. Only a WAL
        // grown past this (a long stall) is cut back.
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores published alert changes in one transaction: each alert's current state and its
    /// numbered event (numbers come from [`Self::reserve_event_seqs`]). Idempotent: storing the
    /// same events again changes nothing.
    pub fn persist(&self, pending: &[PendingEvent]) -> Result<(), AlertStoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO alerts (id, activation, person, type, code, start_ms, end_ms, late, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(id) DO UPDATE SET end_ms = excluded.end_ms, late = excluded.late,
                   code = excluded.code, document = excluded.document",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT OR IGNORE INTO alert_events (seq, alert_id, kind, body, lane, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in pending {
                let alert = &p.alert;
                upsert.execute(params![
                    alert.id,
                    alert.activation,
                    alert.person,
                    alert.alert_type.as_str(),
                    alert.code,
                    alert.start,
                    alert.end,
                    alert.late,
                    p.document
                ])?;
                let (lane, record) = origin_columns(p.event.origin);
                event.execute(params![
                    p.event.seq,
                    p.event.alert_id,
                    p.event.kind,
                    p.event.body,
                    lane,
                    record
                ])?;
            }
        }
        tx.commit()?;
        drop(conn);
        self.write_back_wal();
        Ok(())
    }

    /// Sends the commit's WAL pages to the device now, a small step, rather than as one burst
    /// at the checkpoint's `fsync`. Scheduling only: a failure here loses nothing (the
    /// checkpoint still syncs), so it is logged and the commit stands.
    fn write_back_wal(&self) {
        if let Err(e) = crate::store::write_back::write_back_sqlite_wal(&self.path) {
            tracing::warn!(error = %e, path = %self.path.display(), "writing back the alert WAL early failed; the checkpoint will sync it");
        }
    }

    /// The highest event number ever stored or reserved: numbering resumes above it.
    pub fn event_seq_high_water(&self) -> Result<i64, AlertStoreError> {
        let conn = self.lock();
        // sqlite_sequence keeps the highest number even after retention deleted the event.
        let used: Option<i64> = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'alert_events'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let stored: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM alert_events", [], |r| {
                r.get(0)
            })?;
        let reserved: Option<i64> = conn
            .query_row(
                "SELECT reserved_through FROM event_seq_reservation WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(used.unwrap_or(0).max(stored).max(reserved.unwrap_or(0)))
    }

    /// Durably records that event numbers up to `through` may have been published: after a
    /// crash, numbering resumes above them, so a client never sees one number for two changes.
    pub fn reserve_event_seqs(&self, through: i64) -> Result<(), AlertStoreError> {
        let conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let result = conn.execute(
            "INSERT INTO event_seq_reservation (id, reserved_through) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET reserved_through = MAX(reserved_through, excluded.reserved_through)",
            [through],
        );
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        result?;
        Ok(())
    }

    /// A fingerprint of every stored alert's document, by id: what the live book compares
    /// re-derived alerts against at start-up, so only real differences become events.
    pub fn document_fingerprints(&self) -> Result<HashMap<String, u64>, AlertStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, document FROM alerts")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, fingerprint(&r.get::<_, String>(1)?)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The review of every alert someone has acted on (the others are `new`).
    pub fn reviews(&self) -> Result<HashMap<String, Review>, AlertStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, state, assignee, outcome, notes, reviewed_by, reviewed_ms FROM alerts WHERE state != 'new'",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, review_from_row(r, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Copies the WAL back into the database and restarts it (between the writer's commits).
    pub fn checkpoint(&self) -> Result<(), AlertStoreError> {
        self.lock()
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// Applies a person's review action (log record `record`) durably (synchronous=FULL) and
    /// returns its event, numbered `seq`, with the alert's review after the action.
    pub fn review(
        &self,
        alert_id: &str,
        user: &str,
        t_ms: i64,
        action: &ReviewAction,
        record: u64,
        seq: i64,
    ) -> Result<(AlertEvent, Review), AlertStoreError> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = conn.transaction()?;
            let current: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT state, assignee FROM alerts WHERE id = ?1",
                    [alert_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((state, assignee)) = current else {
                return Err(AlertStoreError::NotFound(alert_id.to_string()));
            };
            if ReviewState::parse(&state) == ReviewState::Resolved {
                return Err(AlertStoreError::Invalid(format!(
                    "alert '{alert_id}' is already resolved"
                )));
            }
            let (name, new_state, new_assignee, outcome, notes) = match action {
                ReviewAction::Acknowledge { notes } => (
                    "acknowledge",
                    ReviewState::Acknowledged,
                    assignee,
                    None,
                    notes,
                ),
                ReviewAction::Assign { assignee, notes } => {
                    if assignee.trim().is_empty() {
                        return Err(AlertStoreError::Invalid("assign needs an assignee".into()));
                    }
                    (
                        "assign",
                        ReviewState::Assigned,
                        Some(assignee.clone()),
                        None,
                        notes,
                    )
                }
                ReviewAction::Resolve { outcome, notes } => (
                    "resolve",
                    ReviewState::Resolved,
                    assignee,
                    Some(outcome.as_str()),
                    notes,
                ),
            };
            tx.execute(
                "UPDATE alerts SET state = ?2, assignee = ?3, outcome = COALESCE(?4, outcome),
                   notes = COALESCE(?5, notes), reviewed_by = ?6, reviewed_ms = ?7 WHERE id = ?1",
                params![
                    alert_id,
                    new_state.as_str(),
                    new_assignee,
                    outcome,
                    notes,
                    user,
                    t_ms
                ],
            )?;
            tx.execute(
                "INSERT INTO reviews (alert_id, t_ms, user_name, action, state, assignee, outcome, notes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![alert_id, t_ms, user, name, new_state.as_str(), new_assignee, outcome, notes],
            )?;
            let origin = Provenance {
                lane: DECISION_LANE,
                record,
            };
            let event = append_event(&tx, alert_id, "reviewed", seq, origin)?;
            note_decision(&tx, record)?;
            tx.commit()?;
            Ok(event)
        })();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    /// Every hub decision (log record number) below this one has been taken.
    pub fn decisions_applied_below(&self) -> Result<u64, AlertStoreError> {
        Ok(decisions_applied_below(&self.lock())?)
    }

    /// Deletes every alert of an activation with its review history and its events (retention),
    /// durably (synchronous=FULL) before returning.
    pub fn purge_activation(&self, activation: &str) -> Result<AlertsPurged, AlertStoreError> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Freed pages are zeroed, and the WAL that held the rows is emptied afterwards: the
        // writer's checkpoints only restart it, which leaves old frames in the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let result = (|| {
            let tx = conn.transaction()?;
            let of_activation = "(SELECT id FROM alerts WHERE activation = ?1)";
            let purged = AlertsPurged {
                reviews: tx.execute(
                    &format!("DELETE FROM reviews WHERE alert_id IN {of_activation}"),
                    [activation],
                )? as u64,
                events: tx.execute(
                    &format!("DELETE FROM alert_events WHERE alert_id IN {of_activation}"),
                    [activation],
                )? as u64,
                alerts: tx.execute("DELETE FROM alerts WHERE activation = ?1", [activation])?
                    as u64,
            };
            tx.commit()?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(purged)
        })();
        conn.pragma_update(None, "secure_delete", "OFF")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    /// Every alert of a person (all activations), oldest first, each with its review history
    /// (subject access export).
    pub fn of_person(&self, person: &str) -> Result<Vec<serde_json::Value>, AlertStoreError> {
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut stmt =
                conn.prepare("SELECT id FROM alerts WHERE person = ?1 ORDER BY start_ms, id")?;
            let rows = stmt.query_map([person], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(stored) = self.get(&id)? else {
                continue;
            };
            let mut value = serde_json::to_value(&stored)?;
            value["review_history"] = serde_json::Value::Array(self.review_history(&id)?);
            out.push(value);
        }
        Ok(out)
    }

    /// The review history of an alert: who did what, when.
    pub fn review_history(
        &self,
        alert_id: &str,
    ) -> Result<Vec<serde_json::Value>, AlertStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT t_ms, user_name, action, state, assignee, outcome, notes FROM reviews WHERE alert_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([alert_id], |r| {
            Ok(serde_json::json!({
                "t": crate::model::time::format_time(r.get(0)?),
                "user": r.get::<_, String>(1)?,
                "action": r.get::<_, String>(2)?,
                "state": r.get::<_, String>(3)?,
                "assignee": r.get::<_, Option<String>>(4)?,
                "outcome": r.get::<_, Option<String>>(5)?,
                "notes": r.get::<_, Option<String>>(6)?,
            }))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn get(&self, alert_id: &str) -> Result<Option<StoredAlert>, AlertStoreError> {
        let conn = self.lock();
        load_one(&conn, alert_id)
    }

    fn where_clause(filter: &AlertFilter) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut sql = String::from(" WHERE 1=1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(t) = &filter.alert_type {
            args.push(Value::Text(t.clone()));
            sql += &format!(" AND type = ?{}", args.len());
        }
        if let Some(s) = &filter.state {
            args.push(Value::Text(s.clone()));
            sql += &format!(" AND state = ?{}", args.len());
        }
        if let Some(p) = &filter.person {
            args.push(Value::Text(p.clone()));
            sql += &format!(" AND person = ?{}", args.len());
        }
        if let Some(people) = &filter.people {
            let mut marks = Vec::new();
            for p in people {
                args.push(Value::Text(p.clone()));
                marks.push(format!("?{}", args.len()));
            }
            sql += &format!(
                " AND person IN ({})",
                if marks.is_empty() {
                    "NULL".into()
                } else {
                    marks.join(",")
                }
            );
        }
        if let Some(from) = filter.from_ms {
            args.push(Value::Integer(from));
            sql += &format!(" AND (end_ms IS NULL OR end_ms >= ?{})", args.len());
        }
        if let Some(to) = filter.to_ms {
            args.push(Value::Integer(to));
            sql += &format!(" AND start_ms < ?{}", args.len());
        }
        (sql, args)
    }

    pub fn list(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, AlertStoreError> {
        let conn = self.lock();
        let (where_sql, args) = Self::where_clause(filter);
        let sql = format!(
            "SELECT id FROM alerts{where_sql} ORDER BY start_ms DESC, id LIMIT {}",
            filter.limit.unwrap_or(1000).min(10_000)
        );
        let mut stmt = conn.prepare(&sql)?;
        let ids: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = load_one(&conn, &id)? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Counts by type and state under a filter.
    pub fn count(&self, filter: &AlertFilter) -> Result<serde_json::Value, AlertStoreError> {
        let conn = self.lock();
        let (where_sql, args) = Self::where_clause(filter);
        let mut stmt = conn.prepare(&format!(
            "SELECT type, state, COUNT(*) FROM alerts{where_sql} GROUP BY type, state ORDER BY type, state"
        ))?;
        let mut total = 0i64;
        let mut by = serde_json::Map::new();
        for row in stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (t, s, n) = row?;
            total += n;
            let entry = by.entry(t).or_insert_with(|| serde_json::json!({}));
            entry[s] = n.into();
        }
        Ok(serde_json::json!({"total": total, "by_type": by}))
    }

    /// Every alert as it stands (the JSON an event's body carries, with its review), in the
    /// order each was first raised, and the number of the newest stored event they reflect: a
    /// reader that follows the events after that number misses no change. One read under the
    /// store's lock, which every write takes, so the two agree.
    pub fn current(&self) -> Result<AlertsNow, AlertStoreError> {
        let conn = self.lock();
        let through: i64 = conn.query_row(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM alert_events), 0),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alert_events'), 0))",
            [],
            |r| r.get(0),
        )?;
        // First raised: the alert's oldest event still kept (retention may have dropped them
        // all: then by start).
        let mut stmt = conn.prepare(
            "SELECT a.document, a.state, a.assignee, a.outcome, a.notes, a.reviewed_by, a.reviewed_ms
             FROM alerts a LEFT JOIN (SELECT alert_id, MIN(seq) AS first FROM alert_events GROUP BY alert_id) e
               ON e.alert_id = a.id
             ORDER BY e.first IS NULL DESC, e.first, a.start_ms, a.id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, review_from_row(r, 1)?)))?;
        let mut alerts = Vec::new();
        for row in rows {
            let (document, review) = row?;
            alerts.push(serde_json::to_string(&StoredAlert {
                alert: serde_json::from_str(&document)?,
                review,
            })?);
        }
        Ok(AlertsNow { through, alerts })
    }

    /// Events after `seq`, oldest first (at most `limit`).
    pub fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<AlertEvent>, AlertStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, alert_id, kind, body, lane, record FROM alert_events
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![seq, limit], |r| {
            Ok(AlertEvent {
                seq: r.get(0)?,
                alert_id: r.get(1)?,
                kind: r.get(2)?,
                body: r.get(3)?,
                origin: origin_from_columns(r.get(4)?, r.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Where webhook delivery resumes on this node after another node delivered up to
    /// `frontier` (per lane, the record of the last event it delivered): the event number to
    /// deliver after, so that every event of a lane from its frontier record on (and every
    /// event of a lane the frontier lacks, or without provenance) is delivered, and at most the
    /// events of the frontier records are delivered twice. Computed with the
    /// `alert_events_by_origin` index; the same as [`resume_cursor_of`] over every event.
    pub fn resume_cursor(&self, frontier: &BTreeMap<u32, u64>) -> Result<i64, AlertStoreError> {
        let conn = self.lock();
        let mut first: Option<i64> = conn.query_row(
            "SELECT MIN(seq) FROM alert_events WHERE lane IS NULL OR record IS NULL",
            [],
            |r| r.get(0),
        )?;
        // Each lane present, found by seeking the index from the previous one.
        let mut next_lane =
            conn.prepare("SELECT lane FROM alert_events WHERE lane > ?1 ORDER BY lane LIMIT 1")?;
        let mut first_of_lane =
            conn.prepare("SELECT MIN(seq) FROM alert_events WHERE lane = ?1 AND record >= ?2")?;
        let mut after: i64 = -1;
        while let Some(lane) = next_lane
            .query_row([after], |r| r.get::<_, i64>(0))
            .optional()?
        {
            after = lane;
            let from = u32::try_from(lane)
                .ok()
                .and_then(|lane| frontier.get(&lane))
                .copied()
                .unwrap_or(0);
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let seq: Option<i64> = first_of_lane.query_row(params![lane, from], |r| r.get(0))?;
            first = match (first, seq) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        match first {
            Some(seq) => Ok(seq - 1),
            // Every stored event is covered by the frontier.
            None => Ok(conn.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM alert_events",
                [],
                |r| r.get(0),
            )?),
        }
    }

    /// Every webhook endpoint's delivery cursor.
    pub fn delivery_cursors(&self) -> Result<Vec<(String, i64)>, AlertStoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT endpoint, delivered_seq FROM delivery_cursors")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn delivery_cursor(&self, endpoint: &str) -> Result<i64, AlertStoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT delivered_seq FROM delivery_cursors WHERE endpoint = ?1",
                [endpoint],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    pub fn set_delivery_cursor(&self, endpoint: &str, seq: i64) -> Result<(), AlertStoreError> {
        self.lock().execute(
            "INSERT INTO delivery_cursors (endpoint, delivered_seq) VALUES (?1, ?2)
             ON CONFLICT(endpoint) DO UPDATE SET delivered_seq = excluded.delivered_seq",
            params![endpoint, seq],
        )?;
        Ok(())
    }
}

fn load_one(conn: &Connection, id: &str) -> Result<Option<StoredAlert>, AlertStoreError> {
    let row = conn
        .query_row(
            "SELECT document, state, assignee, outcome, notes, reviewed_by, reviewed_ms FROM alerts WHERE id = ?1",
            [id],
            |r| Ok((r.get::<_, String>(0)?, review_from_row(r, 1)?)),
        )
        .optional()?;
    let Some((document, review)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredAlert {
        alert: serde_json::from_str(&document)?,
        review,
    }))
}

fn append_event(
    conn: &Connection,
    alert_id: &str,
    kind: &str,
    seq: i64,
    origin: Provenance,
) -> Result<(AlertEvent, Review), AlertStoreError> {
    let stored =
        load_one(conn, alert_id)?.ok_or_else(|| AlertStoreError::NotFound(alert_id.to_string()))?;
    let body = serde_json::to_string(&stored)?;
    let (lane, record) = origin_columns(Some(origin));
    conn.execute(
        "INSERT INTO alert_events (seq, alert_id, kind, body, lane, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![seq, alert_id, kind, body, lane, record],
    )?;
    let event = AlertEvent {
        seq,
        alert_id: alert_id.to_string(),
        kind: kind.to_string(),
        body,
        origin: Some(origin),
    };
    Ok((event, stored.review))
}

/// The reference for [`AlertStore::resume_cursor`], over `(seq, origin)` of every stored event
/// in number order: the event number before the first event that is of a lane absent from
/// `frontier` (or has no provenance), or whose record is at or after its lane's frontier;
/// when there is none, the last event's number (0 without events).
pub fn resume_cursor_of(
    events: impl IntoIterator<Item = (i64, Option<Provenance>)>,
    frontier: &BTreeMap<u32, u64>,
) -> i64 {
    let mut last = 0;
    for (seq, origin) in events {
        let due = match origin {
            None => true,
            Some(origin) => frontier
                .get(&origin.lane)
                .is_none_or(|from| origin.record >= *from),
        };
        if due {
            return seq - 1;
        }
        last = seq;
    }
    last
}

fn origin_columns(origin: Option<Provenance>) -> (Option<i64>, Option<i64>) {
    match origin {
        Some(o) => (Some(i64::from(o.lane)), i64::try_from(o.record).ok()),
        None => (None, None),
    }
}

fn origin_from_columns(lane: Option<i64>, record: Option<i64>) -> Option<Provenance> {
    Some(Provenance {
        lane: u32::try_from(lane?).ok()?,
        record: u64::try_from(record?).ok()?,
    })
}

/// A cheap fingerprint of an alert document (to tell a re-derived alert from the stored one).
pub fn fingerprint(document: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    document.hash(&mut h);
    h.finish()
}

fn review_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Review> {
    Ok(Review {
        state: ReviewState::parse(&r.get::<_, String>(first)?),
        assignee: r.get(first + 1)?,
        outcome: r.get(first + 2)?,
        notes: r.get(first + 3)?,
        reviewed_by: r.get(first + 4)?,
        reviewed_at: r.get(first + 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(lane: u32, record: u64) -> Option<Provenance> {
        Some(Provenance { lane, record })
    }

    /// Two lanes interleaved (lane 0 at records 10, 12, 20; lane 1 at 11, 15, 15, 30), then a
    /// review (the decision lane) and an event without provenance.
    fn interleaved() -> Vec<(i64, Option<Provenance>)> {
        vec![
            (1, origin(0, 10)),
            (2, origin(1, 11)),
            (3, origin(0, 12)),
            (4, origin(1, 15)),
            (5, origin(1, 15)),
            (6, origin(0, 20)),
            (7, origin(DECISION_LANE, 21)),
            (8, origin(1, 30)),
        ]
    }

    fn frontier(pairs: &[(u32, u64)]) -> BTreeMap<u32, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn delivery_resumes_at_the_first_event_of_a_frontier_record_and_skips_none() {
        let events = interleaved();
        let all = [(0, 20), (1, 30), (DECISION_LANE, 21)];
        // Everything delivered through each lane's last record: only those records again.
        assert_eq!(resume_cursor_of(events.clone(), &frontier(&all)), 5);
        // Lane 1 delivered through record 15 (both of its events there: re-sent), lane 0
        // through 12, decisions through 21.
        assert_eq!(
            resume_cursor_of(
                events.clone(),
                &frontier(&[(0, 12), (1, 15), (DECISION_LANE, 21)])
            ),
            2
        );
        // Lane 0 is ahead of lane 1 (interleaved): the lagging lane decides.
        assert_eq!(
            resume_cursor_of(
                events.clone(),
                &frontier(&[(0, 20), (1, 11), (DECISION_LANE, 21)])
            ),
            1
        );
        // A lane the frontier lacks is delivered from its first event (here after lane 0's
        // record 20, due again anyway).
        assert_eq!(
            resume_cursor_of(events.clone(), &frontier(&[(0, 99), (1, 30)])),
            6
        );
        assert_eq!(resume_cursor_of(events.clone(), &frontier(&[])), 0);
        // A frontier past everything here (this node is behind): after the last event.
        assert_eq!(
            resume_cursor_of(
                events.clone(),
                &frontier(&[(0, 99), (1, 99), (DECISION_LANE, 99)])
            ),
            8
        );
        // An event without provenance is always sent again.
        let mut old = vec![(1, None)];
        old.extend(events.iter().map(|(s, o)| (s + 1, *o)));
        assert_eq!(
            resume_cursor_of(old, &frontier(&[(0, 99), (1, 99), (DECISION_LANE, 99)])),
            0
        );
        assert_eq!(resume_cursor_of(Vec::new(), &frontier(&[(0, 1)])), 0);
    }

    #[test]
    fn the_store_resumes_where_the_reference_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let alert: Alert = serde_json::from_value(serde_json::json!({
            "id": "a1", "type": "strap_tamper", "activation": "A1", "person": "P1",
            "start": "2026-03-31T00:00:00Z", "end": null, "late": false, "rule": "health/1",
        }))
        .unwrap();
        // Numbers with a gap (a restart resumes above a reserved block).
        let events: Vec<(i64, Option<Provenance>)> = interleaved()
            .into_iter()
            .map(|(seq, o)| (if seq > 4 { seq + 100 } else { seq }, o))
            .collect();
        let pending: Vec<PendingEvent> = events
            .iter()
            .map(|(seq, origin)| PendingEvent {
                event: AlertEvent {
                    seq: *seq,
                    alert_id: "a1".into(),
                    kind: "updated".into(),
                    body: "{}".into(),
                    origin: *origin,
                },
                alert: alert.clone(),
                document: "{}".into(),
            })
            .collect();
        store.persist(&pending).unwrap();
        let read: Vec<(i64, Option<Provenance>)> = store
            .events_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.origin))
            .collect();
        assert_eq!(read, events, "provenance is stored and read back");
        let frontiers = [
            frontier(&[]),
            frontier(&[(0, 12), (1, 15), (DECISION_LANE, 21)]),
            frontier(&[(0, 20), (1, 11), (DECISION_LANE, 21)]),
            frontier(&[(0, 99), (1, 30)]),
            frontier(&[(0, 20), (1, 30), (DECISION_LANE, 21)]),
            frontier(&[(0, 99), (1, 99), (DECISION_LANE, 99)]),
        ];
        for f in &frontiers {
            assert_eq!(
                store.resume_cursor(f).unwrap(),
                resume_cursor_of(events.clone(), f),
                "frontier {f:?}"
            );
        }
    }
}
