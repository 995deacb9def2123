//! The orders-document import (`--orders FILE` at start, and the first start over a metadata
//! database written before control records existed): the control records that bring the book to
//! what the document says, for what differs only, so importing the same document twice writes
//! nothing the second time.

use super::OrderBook;
use crate::formats::orders_file::OrdersFile;
use crate::model::Change;

/// The changes that make `book` hold every record of `doc` (people, then activations, then
/// orders, each in document order). Records the book has and the document lacks are left alone:
/// an import adds and updates, it never deletes. An order that differs is imported as a
/// correction (the document is the whole order, not a variation from a date).
pub fn changes_for(book: &OrderBook, doc: &OrdersFile) -> Vec<Change> {
    let mut changes = Vec::new();
    for p in &doc.people {
        if book.person(&p.id) != Some(p) {
            changes.push(Change::PutPerson { person: p.clone() });
        }
    }
    for a in &doc.activations {
        if book.activation(&a.id) != Some(a) {
            changes.push(Change::PutActivation {
                activation: a.clone(),
            });
        }
    }
    for o in &doc.orders {
        let versions = book.order_versions(&o.id);
        let same =
            versions.len() == 1 && versions[0].order == *o && versions[0].effective_ms.is_none();
        if !same {
            changes.push(Change::PutOrder { order: o.clone() });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::orders_file::parse_orders;
    use crate::model::ControlRecord;

    #[test]
    fn importing_a_document_twice_changes_nothing_the_second_time() {
        let doc = parse_orders(
            r#"{"people":[{"id":"P1"}],
              "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"}],
              "orders":[{"id":"O1","person":"P1","from":"2026-03-01","conditions":[{"type":"trail"}]}]}"#,
        )
        .unwrap()
        .accepted;
        let mut book = OrderBook::default();
        let changes = changes_for(&book, &doc);
        assert_eq!(changes.len(), 3);
        for (i, change) in changes.into_iter().enumerate() {
            let record = ControlRecord {
                recorded: 0,
                actor: "import".into(),
                effective: None,
                change,
            };
            book.apply(i as u64, &record).unwrap();
        }
        assert!(changes_for(&book, &doc).is_empty());
        assert_eq!(book.document(), doc);
    }
}
