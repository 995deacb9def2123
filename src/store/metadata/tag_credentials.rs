//! Tag credentials: per tag, the generation its secret is derived at and whether it is revoked.
//! The secret itself is never stored (it is derived from the server's tag key, `wire::secret`).

use super::{Metadata, MetadataError};
use crate::model::time::rfc3339_ms_opt;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A tag's credential state. A tag never rotated nor revoked has no row: generation 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagCredential {
    pub tag: String,
    pub generation: u64,
    /// When the tag was revoked (refused at hello until rotated); `None` = usable.
    #[serde(rename = "revoked", with = "rfc3339_ms_opt")]
    pub revoked_ms: Option<i64>,
}

impl TagCredential {
    fn fresh(tag: &str) -> Self {
        Self {
            tag: tag.to_string(),
            generation: 0,
            revoked_ms: None,
        }
    }
}

fn to_generation(value: i64) -> Result<u64, MetadataError> {
    u64::try_from(value).map_err(|_| MetadataError::Corrupt {
        what: "tag credential generation".into(),
        message: format!("{value} is negative"),
    })
}

impl Metadata {
    /// The credential state of `tag` (generation 0, not revoked, if never changed).
    pub fn tag_credential(&self, tag: &str) -> Result<TagCredential, MetadataError> {
        let row = self
            .lock()
            .query_row(
                "SELECT generation, revoked_ms FROM tag_credentials WHERE tag = ?1",
                params![tag],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(TagCredential::fresh(tag)),
            Some((generation, revoked_ms)) => Ok(TagCredential {
                tag: tag.to_string(),
                generation: to_generation(generation)?,
                revoked_ms,
            }),
        }
    }

    /// Every tag whose credentials were ever rotated or revoked, by tag id.
    pub fn tag_credentials(&self) -> Result<Vec<TagCredential>, MetadataError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT tag, generation, revoked_ms FROM tag_credentials ORDER BY tag")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tag, generation, revoked_ms) = row?;
            out.push(TagCredential {
                tag,
                generation: to_generation(generation)?,
                revoked_ms,
            });
        }
        Ok(out)
    }

    /// Revokes `tag` at `now_ms` outside the log (unit tests of the store only).
    #[cfg(test)]
    pub fn revoke_tag(&self, tag: &str, now_ms: i64) -> Result<TagCredential, MetadataError> {
        revoke_in(&self.lock(), tag, now_ms)?;
        self.tag_credential(tag)
    }

    /// Rotates `tag` at `now_ms` outside the log (unit tests of the store only).
    #[cfg(test)]
    pub fn rotate_tag(&self, tag: &str, now_ms: i64) -> Result<TagCredential, MetadataError> {
        rotate_in(&self.lock(), tag, now_ms)?;
        self.tag_credential(tag)
    }

    /// How many tag credential records this database has taken since it was opened by this
    /// process: a holder of an in-memory copy reloads it when the count moves.
    pub fn credential_changes(&self) -> u64 {
        self.credential_changes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(super) fn note_credential_change(&self) {
        self.credential_changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Revokes `tag` at `now_ms` (idempotent: an already revoked tag keeps its first time).
pub(super) fn revoke_in(
    conn: &rusqlite::Connection,
    tag: &str,
    now_ms: i64,
) -> Result<(), MetadataError> {
    conn.execute(
        "INSERT INTO tag_credentials (tag, generation, revoked_ms, updated_ms)
         VALUES (?1, 0, ?2, ?2)
         ON CONFLICT(tag) DO UPDATE SET
            revoked_ms = COALESCE(revoked_ms, excluded.revoked_ms),
            updated_ms = excluded.updated_ms",
        params![tag, now_ms],
    )?;
    Ok(())
}

/// Sets `tag`'s state exactly (a migrated row: idempotent).
pub(super) fn set_in(
    conn: &rusqlite::Connection,
    tag: &str,
    generation: u64,
    revoked_ms: Option<i64>,
    now_ms: i64,
) -> Result<(), MetadataError> {
    let generation = i64::try_from(generation).map_err(|_| {
        MetadataError::Invalid(format!("tag '{tag}': generation {generation} is too large"))
    })?;
    conn.execute(
        "INSERT INTO tag_credentials (tag, generation, revoked_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(tag) DO UPDATE SET
            generation = excluded.generation,
            revoked_ms = excluded.revoked_ms,
            updated_ms = excluded.updated_ms",
        params![tag, generation, revoked_ms, now_ms],
    )?;
    Ok(())
}

/// Moves `tag` to its next credential generation and clears any revocation: the old secret
/// stops working, the one derived at the new generation works.
pub(super) fn rotate_in(
    conn: &rusqlite::Connection,
    tag: &str,
    now_ms: i64,
) -> Result<(), MetadataError> {
    conn.execute(
        "INSERT INTO tag_credentials (tag, generation, revoked_ms, updated_ms)
         VALUES (?1, 1, NULL, ?2)
         ON CONFLICT(tag) DO UPDATE SET
            generation = generation + 1,
            revoked_ms = NULL,
            updated_ms = excluded.updated_ms",
        params![tag, now_ms],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_and_rotate_are_durable_and_rotation_reinstates() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path()).unwrap();
        assert_eq!(m.tag_credential("T1").unwrap(), TagCredential::fresh("T1"));
        let revoked = m.revoke_tag("T1", 1000).unwrap();
        assert_eq!((revoked.generation, revoked.revoked_ms), (0, Some(1000)));
        assert_eq!(m.revoke_tag("T1", 2000).unwrap().revoked_ms, Some(1000));
        drop(m);
        let m = Metadata::open(dir.path()).unwrap();
        assert_eq!(m.tag_credential("T1").unwrap().revoked_ms, Some(1000));
        let rotated = m.rotate_tag("T1", 3000).unwrap();
        assert_eq!((rotated.generation, rotated.revoked_ms), (1, None));
        assert_eq!(m.rotate_tag("T2", 3000).unwrap().generation, 1);
        assert_eq!(m.rotate_tag("T1", 4000).unwrap().generation, 2);
        let all = m.tag_credentials().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].tag, "T1");
    }
}
