//! A store's mark of the hub's decisions it has taken: the `decisions_applied` table that the
//! alert store and the crime store each keep, moved in the decision's own transaction, so a
//! start-up catch-up applies exactly the decisions from the mark on.

use rusqlite::{Connection, OptionalExtension};

/// Every hub decision (log record number) below this one has been taken by a store.
pub fn decisions_applied_below(conn: &Connection) -> rusqlite::Result<u64> {
    let below: Option<i64> = conn
        .query_row(
            "SELECT applied_below FROM decisions_applied WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(below.unwrap_or(0) as u64)
}

/// Moves a store's decision mark past `record` (never back), inside the decision's transaction.
pub fn note_decision(conn: &Connection, record: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO decisions_applied (id, applied_below) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET applied_below = MAX(applied_below, ?1)",
        [record as i64 + 1],
    )?;
    Ok(())
}
