//! People, activations and orders in the metadata database, stored as their contract documents
//! (the JSON of section 8) with the columns needed to look them up. Every change is validated
//! against the whole set, with the same checks as the orders file.

use super::{Metadata, MetadataError};
use crate::formats::orders_file::{check_activation_against, check_order_against, OrdersFile};
use crate::model::{Activation, Order, Person};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, MetadataError> {
    serde_json::to_string(value).map_err(|e| MetadataError::Invalid(e.to_string()))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<T, MetadataError> {
    serde_json::from_str(text).map_err(|e| MetadataError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// The stored documents an `SELECT id, document …` query returns, decoded (`what` names them in
/// errors, e.g. `activation`).
pub(super) fn documents<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    what: &str,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<T>, MetadataError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, text) = row?;
        out.push(from_json(&format!("{what} {id}"), &text)?);
    }
    Ok(out)
}

/// Whether retention purged the record `kind` (`person`, `activation`, `order`) with this id.
pub(super) fn is_purged(tx: &Transaction<'_>, kind: &str, id: &str) -> Result<bool, MetadataError> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM purged_ids WHERE kind = ?1 AND id = ?2")?
        .query_row([kind, id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn put_person(tx: &Transaction<'_>, p: &Person) -> Result<(), MetadataError> {
    tx.prepare_cached(
        "INSERT INTO people (id, document, restricted) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET document = excluded.document, restricted = excluded.restricted",
    )?
    .execute(params![p.id, to_json(p)?, p.restricted])?;
    Ok(())
}

pub(super) fn put_activation(tx: &Transaction<'_>, a: &Activation) -> Result<(), MetadataError> {
    tx.prepare_cached(
        "INSERT INTO activations (id, person, tag, from_ms, to_ms, document) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET person = excluded.person, tag = excluded.tag,
           from_ms = excluded.from_ms, to_ms = excluded.to_ms, document = excluded.document",
    )?
    .execute(params![a.id, a.person, a.tag, a.from, a.to, to_json(a)?])?;
    Ok(())
}

pub(super) fn put_order(tx: &Transaction<'_>, o: &Order) -> Result<(), MetadataError> {
    tx.prepare_cached(
        "INSERT INTO orders (id, person, document) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET person = excluded.person, document = excluded.document",
    )?
    .execute(params![o.id, o.person, to_json(o)?])?;
    Ok(())
}

impl Metadata {
    /// Stores every record of an (already validated) orders document, replacing same-id records.
    /// Records purged by retention, and records of a purged person, are not brought back: they
    /// are skipped and named (e.g. `activation A1`) in the returned list.
    pub fn import_orders(&self, doc: &OrdersFile) -> Result<Vec<String>, MetadataError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut skipped = Vec::new();
        let mut skip = |kind: &str, id: &str, person: &str| -> Result<bool, MetadataError> {
            let hit = is_purged(&tx, kind, id)? || is_purged(&tx, "person", person)?;
            if hit {
                skipped.push(format!("{kind} {id}"));
            }
            Ok(hit)
        };
        let mut people = Vec::new();
        for p in &doc.people {
            if !skip("person", &p.id, &p.id)? {
                people.push(p);
            }
        }
        let mut activations = Vec::new();
        for a in &doc.activations {
            if !skip("activation", &a.id, &a.person)? {
                activations.push(a);
            }
        }
        let mut orders = Vec::new();
        for o in &doc.orders {
            if !skip("order", &o.id, &o.person)? {
                orders.push(o);
            }
        }
        for p in people {
            put_person(&tx, p)?;
        }
        for a in activations {
            put_activation(&tx, a)?;
        }
        for o in orders {
            put_order(&tx, o)?;
        }
        tx.commit()?;
        Ok(skipped)
    }

    /// Every `(kind, id)` retention purged (`person`, `activation`, `order`).
    pub fn purged_records(
        &self,
    ) -> Result<std::collections::HashSet<(String, String)>, MetadataError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT kind, id FROM purged_ids")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = std::collections::HashSet::new();
        for row in rows {
            out.insert(row?);
        }
        Ok(out)
    }

    /// Everything, as one orders document (ordered by id).
    pub fn orders_document(&self) -> Result<OrdersFile, MetadataError> {
        let conn = self.lock();
        Ok(OrdersFile {
            people: documents(
                &conn,
                "person",
                "SELECT id, document FROM people ORDER BY id",
                [],
            )?,
            activations: documents(
                &conn,
                "activation",
                "SELECT id, document FROM activations ORDER BY id",
                [],
            )?,
            orders: documents(
                &conn,
                "order",
                "SELECT id, document FROM orders ORDER BY id",
                [],
            )?,
        })
    }

    pub fn person(&self, id: &str) -> Result<Option<Person>, MetadataError> {
        let text: Option<String> = self
            .lock()
            .query_row("SELECT document FROM people WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        text.map(|t| from_json(&format!("person {id}"), &t))
            .transpose()
    }

    /// Creates or replaces a person.
    pub fn upsert_person(&self, p: &Person) -> Result<(), MetadataError> {
        if p.id.trim().is_empty() {
            return Err(MetadataError::Invalid("'id' must not be empty".into()));
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        put_person(&tx, p)?;
        tx.commit()?;
        Ok(())
    }

    /// Creates or replaces an activation, refusing one that overlaps another on the same tag.
    pub fn upsert_activation(&self, a: &Activation) -> Result<(), MetadataError> {
        let doc = self.orders_document()?;
        check_activation_against(a, &doc).map_err(MetadataError::Invalid)?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        put_activation(&tx, a)?;
        tx.commit()?;
        Ok(())
    }

    /// Ends an open activation at `to_ms`.
    pub fn end_activation(&self, id: &str, to_ms: i64) -> Result<Activation, MetadataError> {
        let doc = self.orders_document()?;
        let mut a = doc
            .activations
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| MetadataError::NotFound(format!("activation '{id}'")))?;
        if a.to.is_some_and(|to| to <= to_ms) {
            return Err(MetadataError::Conflict(format!(
                "activation '{id}' already ended"
            )));
        }
        a.to = Some(to_ms);
        self.upsert_activation(&a)?;
        Ok(a)
    }

    /// Creates or replaces an order, validated like the orders file (curfew legal limits too).
    pub fn upsert_order(&self, o: &Order) -> Result<(), MetadataError> {
        let doc = self.orders_document()?;
        check_order_against(o, &doc).map_err(MetadataError::Invalid)?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        put_order(&tx, o)?;
        tx.commit()?;
        Ok(())
    }

    /// One activation by id.
    pub fn activations_by_id(&self, id: &str) -> Result<Option<Activation>, MetadataError> {
        let sql = "SELECT id, document FROM activations WHERE id = ?1";
        Ok(documents(&self.lock(), "activation", sql, [id])?
            .into_iter()
            .next())
    }

    /// Orders of a person, by id.
    pub fn orders_of(&self, person: &str) -> Result<Vec<Order>, MetadataError> {
        let sql = "SELECT id, document FROM orders WHERE person = ?1 ORDER BY id";
        documents(&self.lock(), "order", sql, [person])
    }

    /// Activations of a person, by start.
    pub fn activations_of(&self, person: &str) -> Result<Vec<Activation>, MetadataError> {
        let sql = "SELECT id, document FROM activations WHERE person = ?1 ORDER BY from_ms";
        documents(&self.lock(), "activation", sql, [person])
    }
}
