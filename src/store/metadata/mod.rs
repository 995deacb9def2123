//! The metadata database: people, activations, orders, users, the audit log, the record of
//! retention purges and tag credential generations, in SQLite (an embedded, transactional store anyone can inspect with the
//! `sqlite3` tool). Schema changes are
//! numbered migrations (`migrations.rs`), applied in order on open and recorded in
//! `PRAGMA user_version`. Nothing here is held only in memory.

mod audit;
mod changes;
mod device_bindings;
mod migrations;
mod order_queries;
mod orders;
mod retention;
mod tag_credentials;
mod users;

pub use audit::{AuditEntry, AuditQuery, NewAuditEntry};
pub use changes::{ChangeEntry, ViewChange};
pub use device_bindings::BoundDevice;
pub use order_queries::{Page, PersonRecords, PersonScope};
pub use retention::{MetadataPurge, MetadataPurged, NewPurgeRun, PurgeRun};
pub use tag_credentials::TagCredential;
pub use users::{account_with_token, new_account, parse_expiry, CaseloadLink, NewUser, Role, User};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("metadata database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata database: stored {what} is not valid: {message}")]
    Corrupt { what: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A handle to the metadata database; cheap to clone, safe to share between tasks. SQLite calls
/// are short; the API runs them off the async workers.
#[derive(Clone)]
pub struct Metadata {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Tag credential records taken since open (see [`Metadata::credential_changes`]).
    credential_changes: Arc<std::sync::atomic::AtomicU64>,
}

impl Metadata {
    /// Opens (creating if needed) `DATA/metadata.sqlite3` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        let path = data_dir.join("metadata.sqlite3");
        let open_err = |source| MetadataError::Open {
            path: path.clone(),
            source,
        };
        // Created owner-only before SQLite opens it: its -wal and -shm files take the same mode.
        crate::data_dir::ensure_private_file(&path).map_err(|e| MetadataError::Write {
            path: path.clone(),
            source: e.source,
        })?;
        let mut conn = Connection::open(&path).map_err(open_err)?;
        // WAL for concurrent readers; FULL sync so an audit record is on disk before data is
        // returned, as the data-protection rules require.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
            credential_changes: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends the WAL's unsynced pages to the device now, a step, rather than in the burst of
    /// the next sync (see `store::write_back`). Scheduling only: a failure is logged and
    /// loses nothing, the next sync still writes them.
    pub(crate) fn write_back_wal(&self) {
        if let Err(e) = crate::store::write_back::write_back_sqlite_wal(&self.path) {
            tracing::warn!(error = %e, "writing back the metadata WAL early failed; the next sync will");
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A consistent copy of the whole database at `path` (`VACUUM INTO`), e.g. before a rebuild.
    pub fn backup_to(&self, path: &Path) -> Result<(), MetadataError> {
        let target = path.to_string_lossy().to_string();
        self.lock().execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Empties the views the log rebuilds at start (people, activations, orders, their change
    /// history, users and caseloads), keeping what only this database holds: the audit trail,
    /// tag credentials and the record of purge runs. For `tagstream rebuild`.
    pub fn clear_log_views(&self) -> Result<(), MetadataError> {
        self.lock().execute_batch(
            "BEGIN;
             DELETE FROM changes; DELETE FROM orders; DELETE FROM activations; DELETE FROM people;
             DELETE FROM caseloads; DELETE FROM users; DELETE FROM users_applied;
             DELETE FROM tag_credentials;
             COMMIT;",
        )?;
        Ok(())
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, MetadataError> {
        Ok(self
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}
