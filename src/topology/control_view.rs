//! [`ControlApplier`]: the views beside the pipeline that follow the control records in log order
//! — the shared activation directory (TAC index, trails, hits), updated in memory at once, and
//! the metadata database's people, activations, orders and change history (what the API reads),
//! written on a thread of their own so a slow disk write never holds up the committed batches
//! behind it — the hub's decisions, applied to the alert and hit stores on that same thread
//! ([`DecisionView`]) — and the answer to whoever submitted each record ([`ControlGate`]),
//! given once the view has it, in log order.

use super::control_gate::{ControlGate, Outcome};
use super::decision_view::{DecisionView, STORE_DID_NOT_TAKE};
use super::purge_follow::PurgeRecords;
use crate::crime::service::HitService;
use crate::formats::orders_file::OrdersFile;
use crate::model::CrimeVersion;
use crate::model::{Activation, Change, ControlRecord};
use crate::orders::OrderBook;
use crate::pipeline::dispatcher::update_directory;
use crate::pipeline::{ActivationDirectory, SharedDirectory};
use crate::store::metadata::{Metadata, ViewChange};
use std::sync::mpsc;
use std::sync::Arc;

/// One record on its way to the view thread.
enum ViewWork {
    /// A change to people, activations or orders, applied (or refused) by the book.
    Orders(ViewWrite),
    /// A hub decision or a user record, applied by its store on the view thread.
    Store {
        record: u64,
        control: Arc<ControlRecord>,
    },
    /// A purge record, after its orders write (cluster mode): this node's stores follow it.
    Purge {
        record: u64,
        control: Arc<ControlRecord>,
    },
}

impl ViewWork {
    fn record(&self) -> u64 {
        match self {
            ViewWork::Orders(w) => w.record,
            ViewWork::Store { record, .. } | ViewWork::Purge { record, .. } => *record,
        }
    }
}

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
    /// The directory as of the records applied, published to `directory` by
    /// [`ControlApplier::publish_directory`] (once for a run of changes, not once each).
    local: ActivationDirectory,
    dirty: bool,
    writes: mpsc::Sender<ViewWork>,
    /// To answer a submitter directly when the view thread is gone (never leave one waiting).
    gate: Arc<ControlGate>,
    /// Cluster mode: applied purge records go on to the view thread, for this node's stores
    /// to follow (`super::purge_follow`).
    follows_purges: bool,
}

impl ControlApplier {
    /// `book` is the state as of the records before the first one this applier will see.
    pub fn new(
        book: OrderBook,
        metadata: Metadata,
        decisions: DecisionView,
        hits: HitService,
        directory: SharedDirectory,
        gate: Arc<ControlGate>,
        purges: Option<PurgeRecords>,
    ) -> std::io::Result<Self> {
        let (writes, queue) = mpsc::channel::<ViewWork>();
        let answers = gate.clone();
        let follows_purges = purges.is_some();
        std::thread::Builder::new()
            .name("metadata-view".into())
            .spawn(move || {
                // Whatever queued while the last lot was written goes in one transaction.
                while let Ok(first) = queue.recv() {
                    let mut lot = vec![first];
                    while lot.len() < MAX_WRITES_PER_TRANSACTION {
                        match queue.try_recv() {
                            Ok(write) => lot.push(write),
                            Err(_) => break,
                        }
                    }
                    let orders: Vec<&ViewWrite> = lot
                        .iter()
                        .filter_map(|work| match work {
                            ViewWork::Orders(write) => Some(write),
                            ViewWork::Store { .. } | ViewWork::Purge { .. } => None,
                        })
                        .collect();
                    let outcome = match orders.is_empty() {
                        true => Ok(()),
                        false => write_views(&metadata, &orders),
                    };
                    // Answered in log order (the gate's "applied below" only moves forward).
                    for work in &lot {
                        let answer = match work {
                            ViewWork::Orders(write) => match (&write.refused, &outcome) {
                                (Some(reason), _) => Err(reason.clone()),
                                (None, Ok(())) => Ok(None),
                                (None, Err(e)) => Err(e.clone()),
                            },
                            ViewWork::Store { record, control } => {
                                apply_to_store(&metadata, &decisions, &hits, *record, control)
                            }
                            // Answered with its orders write, before this.
                            ViewWork::Purge { record, control } => {
                                if let Some(purges) = &purges {
                                    purges.applied(*record, control.clone());
                                }
                                continue;
                            }
                        };
                        answers.answered(work.record(), answer);
                    }
                }
            })?;
        let local = (**directory.load()).clone();
        Ok(Self {
            book,
            directory,
            local,
            dirty: false,
            writes,
            gate,
            follows_purges,
        })
    }

    /// Applies record `record`.
    pub fn apply(&mut self, record: u64, control: &Arc<ControlRecord>) {
        if !control.change.reaches_rules() {
            let work = ViewWork::Store {
                record,
                control: control.clone(),
            };
            self.send(work);
            return;
        }
        let person = self.book.person_of(&control.change);
        let (refused, view) = match self.book.apply(record, control) {
            Err(reason) => (Some(reason), OrdersFile::default()),
            Ok(applied) => {
                if applied.activations_changed {
                    update_directory(&mut self.local, &self.book, control, &applied);
                    self.dirty = true;
                }
                let view = applied
                    .person
                    .as_deref()
                    .map(|p| self.book.records_of(p))
                    .unwrap_or_default();
                (None, view)
            }
        };
        let purged = refused.is_none() && matches!(control.change, Change::Purge { .. });
        self.send(ViewWork::Orders(ViewWrite {
            record,
            control: control.clone(),
            person,
            refused,
            view: only_what_changed(view, &control.change),
        }));
        if purged && self.follows_purges {
            let work = ViewWork::Purge {
                record,
                control: control.clone(),
            };
            // Answered already (the orders write above); the next start follows it instead.
            if self.writes.send(work).is_err() {
                tracing::error!(
                    record,
                    "the metadata view thread has stopped before a purge record"
                );
            }
        }
    }

    fn send(&self, work: ViewWork) {
        let record = work.record();
        if self.writes.send(work).is_err() {
            tracing::error!(record, "the metadata view thread has stopped");
            let reason = "the change is stored but the metadata view has stopped".to_string();
            self.gate.applied(record, Err(reason));
        }
    }
}

impl ControlApplier {
    /// Makes the activations as of the last record applied visible to the stages beside the
    /// pipeline: call before the next batch is handed to them, and at the end of a group.
    pub fn publish_directory(&mut self) {
        if std::mem::take(&mut self.dirty) {
            self.directory.store(Arc::new(self.local.clone()));
        }
    }
}

/// Applies a hub decision, a crime batch or a user record to its store; the submitter's answer.
fn apply_to_store(
    metadata: &Metadata,
    decisions: &DecisionView,
    hits: &HitService,
    record: u64,
    control: &ControlRecord,
) -> Outcome {
    if control.change.is_user() {
        return match metadata.apply_user_record(record, control) {
            Ok(outcome) => outcome.map(|()| None),
            Err(e) => {
                tracing::error!(record, error = %e, "users table did not take a user record");
                Err(format!(
                    "{STORE_DID_NOT_TAKE} metadata database did not take it ({e}); it is applied again at the next start"
                ))
            }
        };
    }
    let answer = decisions.apply(record, control).map_err(|e| {
        tracing::warn!(record, error = %e, "decision not applied");
        e.to_string()
    })?;
    // A crime batch just stored is matched against the trails here, on every node, at its log
    // position among the other control records; the node that took the upload waits for the
    // summary (`HitService::matched`).
    if let (Change::CrimeBatch { .. }, Some(answer)) = (&control.change, &answer) {
        match serde_json::from_value::<Vec<CrimeVersion>>(answer["new_versions"].clone()) {
            Ok(versions) => hits.submit_new_crimes(record, versions),
            Err(e) => {
                tracing::error!(record, error = %e, "a stored crime batch's versions do not read back");
                return Err(format!(
                    "{STORE_DID_NOT_TAKE} crime store's answer does not read back ({e}); the batch is matched at the next start"
                ));
            }
        }
    }
    Ok(answer)
}

/// The records of `view` (a person's, after the change) that `change` touched: the view only
/// rewrites those (a curfew variation rewrites one order, not the person's whole file). A purge
/// or anything else keeps them all.
fn only_what_changed(mut view: OrdersFile, change: &Change) -> OrdersFile {
    match change {
        Change::PutPerson { .. } => {
            view.activations.clear();
            view.orders.clear();
        }
        Change::PutActivation {
            activation: Activation { id, .. },
        }
        | Change::EndActivation { activation: id, .. } => {
            view.people.clear();
            view.orders.clear();
            view.activations.retain(|a| &a.id == id);
        }
        Change::PutOrder { order } => {
            view.people.clear();
            view.activations.clear();
            view.orders.retain(|o| o.id == order.id);
        }
        _ => {}
    }
    view
}

/// At most this many changes are written to the view in one transaction.
const MAX_WRITES_PER_TRANSACTION: usize = 4096;

/// Writes records to the metadata view in one transaction. The records are in the log and
/// applied by the pipeline whatever happens here; a view that failed to follow is an error for
/// their submitters, never a silent success.
fn write_views(metadata: &Metadata, lot: &[&ViewWrite]) -> Result<(), String> {
    let changes: Vec<ViewChange<'_>> = lot
        .iter()
        .map(|w| ViewChange {
            record: w.record,
            control: &w.control,
            person: w.person.as_deref(),
            refused: w.refused.as_deref(),
            records: &w.view,
        })
        .collect();
    metadata.apply_view_changes(&changes).map_err(|e| {
        tracing::error!(error = %e, records = lot.len(), "metadata view did not take changes");
        format!("the change is stored but the metadata database did not take it: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Order, Person};

    fn file() -> OrdersFile {
        let activation = |id: &str| Activation {
            id: id.into(),
            person: "P1".into(),
            tag: format!("T{id}"),
            from: 0,
            to: None,
        };
        let order = |id: &str| Order {
            id: id.into(),
            person: "P1".into(),
            from: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            to: None,
            conditions: Vec::new(),
        };
        OrdersFile {
            people: vec![serde_json::from_str::<Person>(r#"{"id": "P1"}"#).unwrap()],
            activations: vec![activation("A1"), activation("A2")],
            orders: vec![order("O1"), order("O2")],
        }
    }

    /// A change rewrites only the record it touched in the metadata view.
    #[test]
    fn the_view_rewrites_only_the_record_a_change_touched() {
        let f = file();
        let order = only_what_changed(
            f.clone(),
            &Change::PutOrder {
                order: f.orders[1].clone(),
            },
        );
        assert!(order.people.is_empty() && order.activations.is_empty());
        assert_eq!(order.orders, vec![f.orders[1].clone()]);
        let ended = only_what_changed(
            f.clone(),
            &Change::EndActivation {
                activation: "A2".into(),
                to: 5,
            },
        );
        assert!(ended.people.is_empty() && ended.orders.is_empty());
        assert_eq!(ended.activations, vec![f.activations[1].clone()]);
        let person = only_what_changed(
            f.clone(),
            &Change::PutPerson {
                person: f.people[0].clone(),
            },
        );
        assert_eq!((person.people.len(), person.activations.len()), (1, 0));
        let purge = Change::Purge {
            activations: vec!["A1".into()],
            people: Vec::new(),
            windows: Vec::new(),
        };
        assert_eq!(only_what_changed(f.clone(), &purge), f);
    }
}
