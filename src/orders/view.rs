//! [`ControlApplier`]: the views beside the pipeline that follow the control records in log order
//! — the metadata database's people, activations and orders (what the API reads), and the
//! shared activation directory (TAC index, trails, hits) — and the answer to whoever submitted
//! each record ([`super::gate::ControlGate`]).

use super::gate::ControlGate;
use super::OrderBook;
use crate::formats::orders_file::OrdersFile;
use crate::model::ControlRecord;
use crate::pipeline::{ActivationDirectory, SharedDirectory};
use crate::store::metadata::Metadata;
use std::sync::Arc;

/// Applies control records to the views, in log order.
pub struct ControlApplier {
    book: OrderBook,
    metadata: Metadata,
    directory: SharedDirectory,
    gate: Arc<ControlGate>,
}

impl ControlApplier {
    /// `book` is the state as of the records before the first one this applier will see.
    pub fn new(
        book: OrderBook,
        metadata: Metadata,
        directory: SharedDirectory,
        gate: Arc<ControlGate>,
    ) -> Self {
        Self {
            book,
            metadata,
            directory,
            gate,
        }
    }

    /// Applies record `record`; returns the `(activation, person)` pairs of the person it
    /// changed (for the hit matcher). Blocks on the metadata database.
    pub fn apply(&mut self, record: u64, control: &ControlRecord) -> Vec<(String, String)> {
        let applied = match self.book.apply(record, control) {
            Ok(applied) => applied,
            Err(reason) => {
                self.gate.applied(record, Err(reason));
                return Vec::new();
            }
        };
        let mut activations = Vec::new();
        let mut outcome = Ok(());
        if let Some(person) = &applied.person {
            let view = OrdersFile {
                people: self.book.person(person).cloned().into_iter().collect(),
                activations: self
                    .book
                    .activations_of(person)
                    .into_iter()
                    .cloned()
                    .collect(),
                orders: self
                    .book
                    .document()
                    .orders
                    .into_iter()
                    .filter(|o| &o.person == person)
                    .collect(),
            };
            activations = view
                .activations
                .iter()
                .map(|a| (a.id.clone(), a.person.clone()))
                .collect();
            // The record is in the log and applied by the pipeline whatever happens here; a view
            // that failed to follow is an error for the caller, never a silent success.
            if let Err(e) = self.metadata.import_orders(&view) {
                tracing::error!(record, error = %e, "metadata view did not take a change");
                outcome = Err(format!(
                    "the change is stored but the metadata database did not take it: {e}"
                ));
            }
        }
        if applied.activations_changed {
            let all: Vec<_> = self.book.activations().cloned().collect();
            self.directory
                .store(Arc::new(ActivationDirectory::new(&all)));
        }
        self.gate.applied(record, outcome);
        activations
    }
}
