//! Versioned schema migrations for the embedded SQLite stores: migration `i` (0-based) brings a
//! database from `PRAGMA user_version` `i` to `i + 1`, each in its own transaction. A database
//! newer than the build is refused rather than misread. Never edit a released migration.

use rusqlite::Connection;

/// Why a database could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the {store} database has schema version {found}, newer than this build knows ({known})"
    )]
    TooNew {
        store: &'static str,
        found: i64,
        known: usize,
    },
}

/// Applies every migration not yet applied.
pub fn apply_migrations(
    conn: &mut Connection,
    store: &'static str,
    migrations: &[&str],
) -> Result<(), SchemaError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if applied as usize > migrations.len() {
        return Err(SchemaError::TooNew {
            store,
            found: applied,
            known: migrations.len(),
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
