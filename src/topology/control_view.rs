//! [`ControlApplier`]: the views beside the pipeline that follow the control records in log order
//! — the shared activation directory (TAC index, trails, hits), updated in memory at once, and
//! the metadata database's people, activations, orders and change history (what the API reads),
//! written on a thread of their own so a slow disk write never holds up the committed batches
//! behind it — and the answer to whoever submitted each record ([`ControlGate`]),
//! given once the metadata view has it.

use super::control_gate::ControlGate;
use crate::formats::orders_file::OrdersFile;
use crate::model::ControlRecord;
use crate::orders::OrderBook;
use crate::pipeline::{ActivationDirectory, SharedDirectory};
use crate::store::metadata::Metadata;
use std::sync::mpsc;
use std::sync::Arc;

/// One applied (or refused) record on its way to the metadata view.
struct ViewWrite {
    record: u64,
    control: Arc<ControlRecord>,
    person: Option<String>,
    refused: Option<String>,
    /// The person's records after the change (empty when refused).
    view: OrdersFile,
}

/// Applies control records to the views, in log order.
pub struct ControlApplier {
    book: OrderBook,
    directory: SharedDirectory,
    writes: mpsc::Sender<ViewWrite>,
}

impl ControlApplier {
    /// `book` is the state as of the records before the first one this applier will see.
    pub fn new(
        book: OrderBook,
        metadata: Metadata,
        directory: SharedDirectory,
        gate: Arc<ControlGate>,
    ) -> std::io::Result<Self> {
        let (writes, queue) = mpsc::channel::<ViewWrite>();
        std::thread::Builder::new()
            .name("metadata-view".into())
            .spawn(move || {
                for write in queue {
                    let outcome = write_view(&metadata, &write);
                    gate.applied(write.record, outcome);
                }
            })?;
        Ok(Self {
            book,
            directory,
            writes,
        })
    }

    /// Applies record `record`; returns the `(activation, person)` pairs of the person it
    /// changed (for the hit matcher).
    pub fn apply(&mut self, record: u64, control: &Arc<ControlRecord>) -> Vec<(String, String)> {
        let person = person_of(&self.book, control);
        let (refused, view) = match self.book.apply(record, control) {
            Err(reason) => (Some(reason), OrdersFile::default()),
            Ok(applied) => {
                if applied.activations_changed {
                    let all: Vec<_> = self.book.activations().cloned().collect();
                    self.directory
                        .store(Arc::new(ActivationDirectory::new(&all)));
                }
                let view = applied
                    .person
                    .as_deref()
                    .map(|p| self.book.records_of(p))
                    .unwrap_or_default();
                (None, view)
            }
        };
        let activations = view
            .activations
            .iter()
            .map(|a| (a.id.clone(), a.person.clone()))
            .collect();
        let write = ViewWrite {
            record,
            control: control.clone(),
            person,
            refused,
            view,
        };
        if self.writes.send(write).is_err() {
            tracing::error!(record, "the metadata view thread has stopped");
        }
        activations
    }
}

/// Writes one record to the metadata view: the answer for its submitter. The record is in the
/// log and applied by the pipeline whatever happens here; a view that failed to follow is an
/// error for the caller, never a silent success.
fn write_view(metadata: &Metadata, write: &ViewWrite) -> Result<(), String> {
    let history = metadata.record_change(
        write.record,
        &write.control,
        write.person.as_deref(),
        write.refused.as_deref(),
    );
    if let Some(reason) = &write.refused {
        return Err(reason.clone());
    }
    let stored = history.and_then(|()| metadata.import_orders(&write.view).map(|_| ()));
    stored.map_err(|e| {
        tracing::error!(record = write.record, error = %e, "metadata view did not take a change");
        format!("the change is stored but the metadata database did not take it: {e}")
    })
}

/// Whose records a control record changes (before it is applied: an activation being ended
/// names its person only in the book).
pub fn person_of(book: &OrderBook, control: &ControlRecord) -> Option<String> {
    match &control.change {
        crate::model::Change::EndActivation { activation, .. } => {
            book.activation(activation).map(|a| a.person.clone())
        }
        change => change.person().map(str::to_string),
    }
}
