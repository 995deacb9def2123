//! Targeted reads of people, activations and orders for the API: an order by id (an
//! activation by id is `Metadata::activations_by_id`, beside the writes), one person's records,
//! a set of records by id, and the people (or order ids) a caller may see, filtered in SQL. Each
//! reads and decodes only the rows it returns, through the primary keys and the indexes of
//! migrations 1 and 6, so a request's cost does not grow with the caseload of the whole service
//! (the whole-document read, [`Metadata::orders_document`], is for the pipeline and the orders
//! file).

use super::orders::{documents, from_json};
use super::{Metadata, MetadataError};
use crate::model::{Activation, Order, Person};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// Which people a reader may see: the store's form of the API's visibility rule
/// (`Caller::scope`), so the filter can run in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonScope<'a> {
    /// Everyone, restricted cases too (admin, hub).
    Everyone,
    /// Only these people, and never a restricted one (a practitioner's caseload).
    Caseload(&'a [String]),
    /// No one (police).
    NoOne,
}

impl PersonScope<'_> {
    /// Whether a person is in scope: the same rule the SQL filters apply.
    pub fn admits(&self, person: &Person) -> bool {
        match self {
            PersonScope::Everyone => true,
            PersonScope::Caseload(ids) => !person.restricted && ids.contains(&person.id),
            PersonScope::NoOne => false,
        }
    }
}

/// One page of a listing by id: the records after `after` (exclusive), at most `limit` of them
/// (`None`: from the start, all of them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Page<'a> {
    pub after: Option<&'a str>,
    pub limit: Option<usize>,
}

impl Page<'_> {
    /// SQLite's `LIMIT`: a negative limit is no limit.
    fn sql_limit(&self) -> i64 {
        self.limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// A list of ids as one SQL parameter, read back with `json_each` (one statement however many
/// ids, instead of one query per id).
fn id_list<S: AsRef<str>>(ids: &[S]) -> Result<String, MetadataError> {
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&ids).map_err(|e| MetadataError::Invalid(e.to_string()))
}

/// The statement of [`Metadata::order_ids_visible`], put together from fixed pieces (never from
/// the ids, which are bound: `?1` the caseload if there is one, then the wanted ids) so that
/// each case has a plain condition its index can serve: the people's key for a caseload, the
/// orders' key for a wanted set.
fn order_ids_sql(caseload: bool, wanted: bool) -> String {
    let mut sql = String::from("SELECT o.id FROM orders o JOIN people p ON p.id = o.person");
    let mut and = " WHERE ";
    let mut n = 0;
    if caseload {
        n += 1;
        sql.push_str(&format!(
            "{and}p.id IN (SELECT value FROM json_each(?{n})) AND p.restricted = 0"
        ));
        and = " AND ";
    }
    if wanted {
        n += 1;
        sql.push_str(&format!("{and}o.id IN (SELECT value FROM json_each(?{n}))"));
    }
    sql.push_str(" ORDER BY o.id");
    sql
}

/// A person's activations (by id) and orders (by id), as the person read returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRecords {
    pub activations: Vec<Activation>,
    pub orders: Vec<Order>,
}

impl Metadata {
    /// One order, by id.
    pub fn order(&self, id: &str) -> Result<Option<Order>, MetadataError> {
        let text: Option<String> = self
            .lock()
            .query_row("SELECT document FROM orders WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        text.map(|t| from_json(&format!("order {id}"), &t))
            .transpose()
    }

    /// A person's activations and orders, each by id, read together (one lock, so no write
    /// through this handle falls between them).
    pub fn person_records(&self, person: &str) -> Result<PersonRecords, MetadataError> {
        let conn = self.lock();
        Ok(PersonRecords {
            activations: documents(
                &conn,
                "activation",
                "SELECT id, document FROM activations WHERE person = ?1 ORDER BY id",
                [person],
            )?,
            orders: documents(
                &conn,
                "order",
                "SELECT id, document FROM orders WHERE person = ?1 ORDER BY id",
                [person],
            )?,
        })
    }

    /// The activations of a tag, by start (a tag is reused: one activation per wearer).
    pub fn activations_of_tag(&self, tag: &str) -> Result<Vec<Activation>, MetadataError> {
        let sql = "SELECT id, document FROM activations WHERE tag = ?1 ORDER BY from_ms";
        documents(&self.lock(), "activation", sql, [tag])
    }

    /// The activations with these ids, by id (ids that do not exist are left out).
    pub fn activations_with_ids<S: AsRef<str>>(
        &self,
        ids: &[S],
    ) -> Result<HashMap<String, Activation>, MetadataError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = "SELECT id, document FROM activations
                   WHERE id IN (SELECT value FROM json_each(?1))";
        let found: Vec<Activation> = documents(&self.lock(), "activation", sql, [id_list(ids)?])?;
        Ok(found.into_iter().map(|a| (a.id.clone(), a)).collect())
    }

    /// The people with these ids, by id (ids that do not exist are left out).
    pub fn people_with_ids<S: AsRef<str>>(
        &self,
        ids: &[S],
    ) -> Result<HashMap<String, Person>, MetadataError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = "SELECT id, document FROM people WHERE id IN (SELECT value FROM json_each(?1))";
        let found: Vec<Person> = documents(&self.lock(), "person", sql, [id_list(ids)?])?;
        Ok(found.into_iter().map(|p| (p.id.clone(), p)).collect())
    }

    /// The people in `scope`, ordered by id, one page of them. The scope is applied in SQL
    /// (primary key and `restricted` column) and checked again on each decoded record, so a
    /// `restricted` column out of step with its document can never widen what is returned.
    pub fn people_visible(
        &self,
        scope: PersonScope<'_>,
        page: Page<'_>,
    ) -> Result<Vec<Person>, MetadataError> {
        let conn = self.lock();
        let limit = page.sql_limit();
        let people: Vec<Person> = match scope {
            PersonScope::NoOne => return Ok(Vec::new()),
            PersonScope::Everyone => documents(
                &conn,
                "person",
                "SELECT id, document FROM people WHERE id > ?1 ORDER BY id LIMIT ?2",
                params![page.after.unwrap_or(""), limit],
            )?,
            PersonScope::Caseload(ids) => documents(
                &conn,
                "person",
                "SELECT id, document FROM people
                 WHERE id IN (SELECT value FROM json_each(?1)) AND restricted = 0 AND id > ?2
                 ORDER BY id LIMIT ?3",
                params![id_list(ids)?, page.after.unwrap_or(""), limit],
            )?,
        };
        Ok(people.into_iter().filter(|p| scope.admits(p)).collect())
    }

    /// The ids of the people in `scope`, ordered by id, without decoding their records.
    pub fn person_ids_visible(&self, scope: PersonScope<'_>) -> Result<Vec<String>, MetadataError> {
        let conn = self.lock();
        let ids = match scope {
            PersonScope::NoOne => return Ok(Vec::new()),
            PersonScope::Everyone => {
                let mut stmt = conn.prepare("SELECT id FROM people ORDER BY id")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            }
            PersonScope::Caseload(ids) => {
                let mut stmt = conn.prepare(
                    "SELECT id FROM people
                     WHERE id IN (SELECT value FROM json_each(?1)) AND restricted = 0
                     ORDER BY id",
                )?;
                let rows = stmt.query_map([id_list(ids)?], |r| r.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            }
        };
        Ok(ids)
    }

    /// The ids of the orders whose person is in `scope` (and, if `wanted` is given, whose id is
    /// in it), ordered by id. An order whose person does not exist is never in scope.
    pub fn order_ids_visible<S: AsRef<str>>(
        &self,
        scope: PersonScope<'_>,
        wanted: Option<&[S]>,
    ) -> Result<Vec<String>, MetadataError> {
        let mut args: Vec<String> = Vec::new();
        match scope {
            PersonScope::NoOne => return Ok(Vec::new()),
            PersonScope::Everyone => {}
            PersonScope::Caseload(ids) => args.push(id_list(ids)?),
        }
        if let Some(wanted) = wanted {
            args.push(id_list(wanted)?);
        }
        let sql = order_ids_sql(matches!(scope, PersonScope::Caseload(_)), wanted.is_some());
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::orders_file::OrdersFile;

    const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn person(id: &str, restricted: bool) -> Person {
        Person {
            id: id.into(),
            name: format!("Name of {id}"),
            date_of_birth: None,
            nomis_id: None,
            pnc_ref: None,
            address: None,
            offender_manager: None,
            restricted,
        }
    }

    fn activation(
        id: &str,
        person: &str,
        tag: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Activation {
        Activation {
            id: id.into(),
            person: person.into(),
            tag: tag.into(),
            from: from_ms,
            to: to_ms,
        }
    }

    fn order(id: &str, person: &str) -> Order {
        Order {
            id: id.into(),
            person: person.into(),
            from: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            to: None,
            conditions: vec![],
        }
    }

    /// P1 (two activations, two orders), P2 restricted (one of each), P3 (nothing), P4 (one
    /// order); stored out of id order so nothing depends on insertion order.
    fn fixture() -> (tempfile::TempDir, Metadata) {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path()).unwrap();
        let doc = OrdersFile {
            people: vec![
                person("P4", false),
                person("P2", true),
                person("P1", false),
                person("P3", false),
            ],
            activations: vec![
                // A1b starts before A1a: by id and by start differ.
                activation("A1b", "P1", "T9", T0_MS, Some(T0_MS + 1_000)),
                activation("A1a", "P1", "T1", T0_MS + 5_000, None),
                activation("A2", "P2", "T9", T0_MS + 2_000, None),
            ],
            orders: vec![
                order("O1z", "P1"),
                order("O1a", "P1"),
                order("O2", "P2"),
                order("O4", "P4"),
            ],
        };
        m.import_orders(&doc).unwrap();
        (dir, m)
    }

    fn ids<T>(records: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
        records.iter().map(|r| id(r).to_string()).collect()
    }

    #[test]
    fn one_activation_and_one_order_by_id() {
        let (_dir, m) = fixture();
        let a = m.activations_by_id("A2").unwrap().unwrap();
        assert_eq!((a.person.as_str(), a.tag.as_str()), ("P2", "T9"));
        assert_eq!(m.activations_by_id("nope").unwrap(), None);
        assert_eq!(m.order("O4").unwrap().unwrap().person, "P4");
        assert!(m.order("nope").unwrap().is_none());
    }

    #[test]
    fn a_persons_records_are_theirs_only_by_id() {
        let (_dir, m) = fixture();
        let r = m.person_records("P1").unwrap();
        assert_eq!(ids(&r.activations, |a| &a.id), ["A1a", "A1b"]);
        assert_eq!(ids(&r.orders, |o| &o.id), ["O1a", "O1z"]);
        // The same as the whole-document read filtered by person, which the API used to do.
        let doc = m.orders_document().unwrap();
        let expected: Vec<_> = doc
            .activations
            .iter()
            .filter(|a| a.person == "P1")
            .cloned()
            .collect();
        assert_eq!(r.activations, expected);
    }

    #[test]
    fn a_person_with_no_activations_or_orders_has_empty_records() {
        let (_dir, m) = fixture();
        let r = m.person_records("P3").unwrap();
        assert!(r.activations.is_empty() && r.orders.is_empty());
        let r = m.person_records("P4").unwrap();
        assert!(r.activations.is_empty());
        assert_eq!(ids(&r.orders, |o| &o.id), ["O4"]);
        // And one who does not exist at all.
        assert_eq!(
            m.person_records("nobody").unwrap(),
            PersonRecords {
                activations: vec![],
                orders: vec![]
            }
        );
    }

    #[test]
    fn activations_of_a_reused_tag_by_start() {
        let (_dir, m) = fixture();
        assert_eq!(
            ids(&m.activations_of_tag("T9").unwrap(), |a| &a.id),
            ["A1b", "A2"]
        );
        assert!(m.activations_of_tag("T0").unwrap().is_empty());
    }

    #[test]
    fn records_by_a_set_of_ids_leave_out_unknown_ones() {
        let (_dir, m) = fixture();
        let found = m
            .activations_with_ids(&["A2", "A1a", "A2", "missing"])
            .unwrap();
        let mut keys: Vec<_> = found.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["A1a", "A2"]);
        assert_eq!(found["A2"].tag, "T9");
        let people = m
            .people_with_ids(&["P2".to_string(), "P9".to_string()])
            .unwrap();
        assert_eq!(people.len(), 1);
        assert!(people["P2"].restricted);
        assert!(m.people_with_ids::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn everyone_sees_restricted_people_too() {
        let (_dir, m) = fixture();
        let all = m
            .people_visible(PersonScope::Everyone, Page::default())
            .unwrap();
        assert_eq!(ids(&all, |p| &p.id), ["P1", "P2", "P3", "P4"]);
        assert_eq!(
            m.person_ids_visible(PersonScope::Everyone).unwrap(),
            ["P1", "P2", "P3", "P4"]
        );
    }

    #[test]
    fn a_caseload_sees_its_unrestricted_people_only() {
        let (_dir, m) = fixture();
        // P2 is restricted, P9 does not exist, P4 is not on the caseload.
        let caseload: Vec<String> = ["P3", "P2", "P9", "P1"].map(String::from).to_vec();
        let scope = PersonScope::Caseload(&caseload);
        let seen = m.people_visible(scope, Page::default()).unwrap();
        assert_eq!(ids(&seen, |p| &p.id), ["P1", "P3"]);
        assert_eq!(m.person_ids_visible(scope).unwrap(), ["P1", "P3"]);
        // The same people the API's rule admits from the whole document.
        let doc = m.orders_document().unwrap();
        let by_rule: Vec<Person> = doc.people.into_iter().filter(|p| scope.admits(p)).collect();
        assert_eq!(seen, by_rule);
        let empty: Vec<String> = vec![];
        assert!(m
            .people_visible(PersonScope::Caseload(&empty), Page::default())
            .unwrap()
            .is_empty());
        assert!(m
            .people_visible(PersonScope::NoOne, Page::default())
            .unwrap()
            .is_empty());
        assert!(m.person_ids_visible(PersonScope::NoOne).unwrap().is_empty());
    }

    /// A `restricted` column out of step with the document (edited by hand) cannot show a
    /// restricted person to a caseload: the decoded record is checked too.
    #[test]
    fn the_document_decides_restriction_even_if_the_column_disagrees() {
        let (_dir, m) = fixture();
        m.lock()
            .execute("UPDATE people SET restricted = 0 WHERE id = 'P2'", [])
            .unwrap();
        let caseload = vec!["P2".to_string()];
        let seen = m
            .people_visible(PersonScope::Caseload(&caseload), Page::default())
            .unwrap();
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn people_come_in_pages_by_id() {
        let (_dir, m) = fixture();
        let page = |after, limit| {
            let people = m
                .people_visible(PersonScope::Everyone, Page { after, limit })
                .unwrap();
            ids(&people, |p| &p.id)
        };
        assert_eq!(page(None, Some(2)), ["P1", "P2"]);
        assert_eq!(page(Some("P2"), Some(2)), ["P3", "P4"]);
        assert_eq!(page(Some("P4"), Some(2)), Vec::<String>::new());
        assert_eq!(page(Some("P1"), None), ["P2", "P3", "P4"]);
        let caseload: Vec<String> = ["P1", "P3", "P4"].map(String::from).to_vec();
        let seen = m
            .people_visible(
                PersonScope::Caseload(&caseload),
                Page {
                    after: Some("P1"),
                    limit: Some(1),
                },
            )
            .unwrap();
        assert_eq!(ids(&seen, |p| &p.id), ["P3"]);
    }

    #[test]
    fn orders_in_scope_and_in_the_wanted_set() {
        let (_dir, m) = fixture();
        let none: Option<&[&str]> = None;
        assert_eq!(
            m.order_ids_visible(PersonScope::Everyone, none).unwrap(),
            ["O1a", "O1z", "O2", "O4"]
        );
        assert_eq!(
            m.order_ids_visible(PersonScope::Everyone, Some(&["O4", "O2", "nope"][..]))
                .unwrap(),
            ["O2", "O4"]
        );
        let caseload: Vec<String> = ["P1", "P2"].map(String::from).to_vec();
        let scope = PersonScope::Caseload(&caseload);
        // O2's person is restricted; O4's is not on the caseload.
        assert_eq!(m.order_ids_visible(scope, none).unwrap(), ["O1a", "O1z"]);
        assert_eq!(
            m.order_ids_visible(scope, Some(&["O1z", "O2", "O4"][..]))
                .unwrap(),
            ["O1z"]
        );
        assert!(m
            .order_ids_visible(PersonScope::NoOne, none)
            .unwrap()
            .is_empty());
    }

    /// Every per-request read goes through a key or an index, never a scan of a whole table:
    /// the point of this module.
    #[test]
    fn per_request_reads_use_keys_and_indexes() {
        let (_dir, m) = fixture();
        let conn = m.lock();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        for (sql, index) in [
            (
                "SELECT document FROM people WHERE id = 'P1'",
                "sqlite_autoindex_people_1",
            ),
            (
                "SELECT document FROM activations WHERE id = 'A1'",
                "sqlite_autoindex_activations_1",
            ),
            (
                "SELECT document FROM orders WHERE id = 'O1'",
                "sqlite_autoindex_orders_1",
            ),
            (
                "SELECT id, document FROM activations WHERE person = 'P1' ORDER BY from_ms",
                "activations_by_person_start",
            ),
            (
                "SELECT id, document FROM orders WHERE person = 'P1' ORDER BY id",
                "orders_by_person_id",
            ),
            (
                "SELECT id, document FROM activations WHERE tag = 'T1' ORDER BY from_ms",
                "activations_by_tag",
            ),
            (
                "SELECT id, document FROM people
                 WHERE id IN (SELECT value FROM json_each('[\"P1\"]')) AND restricted = 0
                 AND id > '' ORDER BY id LIMIT 10",
                "sqlite_autoindex_people_1",
            ),
            (
                "SELECT id, document FROM activations
                 WHERE id IN (SELECT value FROM json_each('[\"A1\"]'))",
                "sqlite_autoindex_activations_1",
            ),
            (
                "SELECT id, document FROM people WHERE id IN (SELECT value FROM json_each('[\"P1\"]'))",
                "sqlite_autoindex_people_1",
            ),
            (
                &order_ids_sql(true, false).replace("?1", "'[\"P1\"]'"),
                "orders_by_person_id",
            ),
            (
                &order_ids_sql(true, true)
                    .replace("?1", "'[\"P1\"]'")
                    .replace("?2", "'[\"O1\"]'"),
                "sqlite_autoindex_people_1",
            ),
            (
                &order_ids_sql(false, true).replace("?1", "'[\"O1\"]'"),
                "sqlite_autoindex_orders_1",
            ),
        ] {
            let p = plan(sql);
            assert!(p.contains(index), "{sql}: {p}");
            // The only scan allowed is of the bound id list itself.
            assert!(
                p.split("; ")
                    .all(|step| !step.starts_with("SCAN ") || step.starts_with("SCAN json_each")),
                "{sql}: {p}"
            );
            // Per-person reads come back in their order straight from the index.
            if sql.contains("person = 'P1'") {
                assert!(!p.contains("TEMP B-TREE"), "{sql}: {p}");
            }
        }
    }
}
