//! Numbered schema migrations. Each runs once, in order, inside a transaction, and bumps
//! `PRAGMA user_version`. Never edit a released migration: add the next one.

use super::MetadataError;
use crate::store::sqlite_schema::{apply_migrations, SchemaError};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: people, activations, orders, users, caseloads, audit.
    "CREATE TABLE people (
        id TEXT PRIMARY KEY,
        document TEXT NOT NULL,           -- the person record as the orders contract spells it
        restricted INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE activations (
        id TEXT PRIMARY KEY,
        person TEXT NOT NULL REFERENCES people(id),
        tag TEXT NOT NULL,
        from_ms INTEGER NOT NULL,
        to_ms INTEGER,
        document TEXT NOT NULL
     );
     CREATE INDEX activations_by_tag ON activations(tag, from_ms);
     CREATE INDEX activations_by_person ON activations(person);
     CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        person TEXT NOT NULL REFERENCES people(id),
        document TEXT NOT NULL
     );
     CREATE INDEX orders_by_person ON orders(person);
     CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin','hub','police','practitioner')),
        force TEXT,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE caseloads (
        user_id INTEGER NOT NULL REFERENCES users(id),
        person TEXT NOT NULL,
        PRIMARY KEY (user_id, person)
     );
     CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t_ms INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        person TEXT,
        from_ms INTEGER,
        to_ms INTEGER,
        format TEXT,
        purpose TEXT,
        detail TEXT
     );
     CREATE INDEX audit_by_person ON audit(person, t_ms);
     CREATE INDEX audit_by_time ON audit(t_ms);",
    // 2: retention: a record of every purge run (ids and counts, never the purged data), and
    // the ids purged, so that re-importing an orders file cannot bring a purged record back.
    "CREATE TABLE purge_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        t_ms INTEGER NOT NULL,            -- wall clock when the run was recorded
        now_ms INTEGER NOT NULL,          -- the 'now' retention was judged against
        days_after_end INTEGER NOT NULL,
        trigger TEXT NOT NULL,            -- schedule, cli, or admin:<user name>
        report TEXT NOT NULL              -- JSON: ids purged and counts per store
     );
     CREATE TABLE purged_ids (
        kind TEXT NOT NULL CHECK (kind IN ('person','activation','order')),
        id TEXT NOT NULL,
        run INTEGER NOT NULL REFERENCES purge_runs(id),
        tag TEXT,                         -- activations: the tag and window whose readings
        from_ms INTEGER,                  -- later runs keep out of the log (a reading that
        to_ms INTEGER,                    -- arrives after its activation was purged)
        PRIMARY KEY (kind, id)
     );",
    // 3: tokens may expire (NULL: never, as every user created before this migration).
    "ALTER TABLE users ADD COLUMN expires_ms INTEGER;",
    // 4: per-tag credentials: the generation a tag's secret is derived at (rotation bumps it)
    // and whether the tag is revoked. A tag with no row is at generation 0, not revoked.
    "CREATE TABLE tag_credentials (
        tag TEXT PRIMARY KEY,
        generation INTEGER NOT NULL CHECK (generation >= 0),
        revoked_ms INTEGER,               -- set: refused at hello until the next rotation
        updated_ms INTEGER NOT NULL
     );",
    // 5: the history of every change to people, activations and orders: one row per control
    // record of the log (a view, rebuilt from the log at start), refused ones with the reason.
    "CREATE TABLE changes (
        record INTEGER PRIMARY KEY,       -- the control record's log record number
        recorded_ms INTEGER NOT NULL,     -- wall clock when it was accepted
        actor TEXT NOT NULL,
        effective_ms INTEGER,             -- event time it takes effect from (NULL: from the start)
        kind TEXT NOT NULL,               -- put_person, put_activation, end_activation, put_order
        subject TEXT NOT NULL,            -- e.g. order 'O1'
        person TEXT,                      -- whose record it changes (NULL: unknown person)
        change TEXT NOT NULL,             -- the control record's JSON
        refused TEXT                      -- NULL: applied; else why the record book refused it
     );
     CREATE INDEX changes_by_person ON changes(person, record);",
    // 6: per-person reads in their own order straight from an index (a person's activations by
    // start, orders by id), no sort; the new indexes cover what the single-column ones did.
    "CREATE INDEX activations_by_person_start ON activations(person, from_ms);
     DROP INDEX activations_by_person;
     CREATE INDEX orders_by_person_id ON orders(person, id);
     DROP INDEX orders_by_person;",
    // Every user record (log record number) below this one has been taken by the users table:
    // start-up applies the ones from it on from the log (users are control records, the table a view of them).
    "CREATE TABLE users_applied (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        applied_below INTEGER NOT NULL
     );",
    // 8: third-party devices bound to tags (a view of the log's bind_device / unbind_device
    // records): one device per tag, a device on one tag at a time.
    "CREATE TABLE device_bindings (
        protocol TEXT NOT NULL,           -- teltonika, osmand
        device TEXT NOT NULL,             -- the IMEI or OsmAnd device id
        tag TEXT NOT NULL UNIQUE,
        bound_ms INTEGER NOT NULL,        -- wall clock when the binding was accepted
        actor TEXT NOT NULL,
        PRIMARY KEY (protocol, device)
     );",
];

/// Applies every migration not yet applied.
pub fn migrate(conn: &mut Connection) -> Result<(), MetadataError> {
    apply_migrations(conn, "metadata", MIGRATIONS).map_err(|e| match e {
        SchemaError::Sql(e) => MetadataError::from(e),
        too_new => MetadataError::Invalid(too_new.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metadata::Metadata;
    use sha2::Digest;

    /// Migration 3 (token expiry) keeps the users a version-2 database holds; their tokens still
    /// work and never expire.
    #[test]
    fn users_of_a_version_2_database_survive_the_expiry_migration() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join("metadata.sqlite3")).unwrap();
            apply_migrations(&mut conn, "metadata", &MIGRATIONS[..2]).unwrap();
            let digest = hex::encode(sha2::Sha256::digest(b"old-token"));
            conn.execute(
                "INSERT INTO users (name, role, force, token_sha256, created_ms)
                 VALUES ('old-pc', 'police', 'Kent', ?1, 0)",
                [digest],
            )
            .unwrap();
        }
        let m = Metadata::open(dir.path()).unwrap();
        assert_eq!(m.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let user = m.authenticate("old-token").unwrap().unwrap();
        assert_eq!(user.name, "old-pc");
        assert_eq!(user.expires_ms, None);
        assert!(!user.expired_at(i64::MAX));
    }

    /// Migration 6 (per-person indexes) keeps the records of a version-5 database, replaces
    /// the single-column indexes, and the per-person reads find the records through the new ones.
    #[test]
    fn records_of_a_version_5_database_survive_the_index_migration() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join("metadata.sqlite3")).unwrap();
            apply_migrations(&mut conn, "metadata", &MIGRATIONS[..5]).unwrap();
            conn.execute_batch(
                r#"INSERT INTO people (id, document) VALUES ('P1', '{"id":"P1","name":"Old"}');
                   INSERT INTO activations (id, person, tag, from_ms, document) VALUES ('A1', 'P1',
                     'T1', 0, '{"id":"A1","person":"P1","tag":"T1","from":"1970-01-01T00:00:00Z"}');
                   INSERT INTO orders (id, person, document) VALUES ('O1', 'P1',
                     '{"id":"O1","person":"P1","from":"2026-01-01","conditions":[]}');"#,
            )
            .unwrap();
        }
        let m = Metadata::open(dir.path()).unwrap();
        assert_eq!(m.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let indexes: Vec<String> = {
            let conn = m.lock();
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
                .unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(
            indexes,
            [
                "activations_by_person_start",
                "activations_by_tag",
                "audit_by_person",
                "audit_by_time",
                "changes_by_person",
                "orders_by_person_id"
            ]
        );
        let records = m.person_records("P1").unwrap();
        assert_eq!(records.activations[0].id, "A1");
        assert_eq!(records.orders[0].id, "O1");
        assert_eq!(m.activations_of("P1").unwrap(), records.activations);
    }
}
