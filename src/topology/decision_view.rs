//! [`DecisionView`]: the alert and hit stores follow the hub's decisions (alert actions, hit
//! reviews) in log order. Live, each decision is applied when the log hands it over, and its
//! submitter is answered with the outcome; at start, the decisions after each store's mark are
//! applied again from the log ([`DecisionView::catch_up`]), so a decision acknowledged just
//! before a crash is never lost and a store rebuilt from nothing gets every decision back.
//!
//! Applying is deterministic given the stores' state: an action on an alert already resolved, or
//! on one retention has since purged, is refused the same way live and on every rebuild.

use crate::alerts::alert_store::AlertStoreError;
use crate::alerts::LiveAlerts;
use crate::crime::import::{store_batch, ImportError, StoredBatch};
use crate::model::{Change, ControlRecord};
use crate::store::crime_store::{CrimeStore, CrimeStoreError};
use std::sync::Arc;

/// How a [`DecisionError::Store`] message starts (the API answers it as a server error).
pub const STORE_DID_NOT_TAKE: &str = "the change is stored in the log but the";

/// Why a decision was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// Refused, the same way on every replay: the message says why.
    #[error("{0}")]
    Refused(String),
    /// The store could not take it now; it stays in the log and is applied at the next start.
    #[error("the change is stored in the log but the {store} did not take it ({reason}); it is applied again at the next start")]
    Store { store: &'static str, reason: String },
}

/// Applies hub decisions to the alert store (through the live alert book, which numbers and
/// publishes the change) and to the crime store's hits.
#[derive(Clone)]
pub struct DecisionView {
    alerts: Arc<LiveAlerts>,
    crimes: CrimeStore,
}

/// What a start-up catch-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    pub applied: u64,
    pub refused: u64,
}

impl DecisionView {
    pub fn new(alerts: Arc<LiveAlerts>, crimes: CrimeStore) -> Self {
        Self { alerts, crimes }
    }

    /// Applies one decision or crime batch (log record `record`). A crime batch answers with
    /// its report (`report`: what was stored) and the new versions (`new_versions`) to match.
    /// Anything else: nothing to do.
    pub fn apply(
        &self,
        record: u64,
        control: &ControlRecord,
    ) -> Result<Option<serde_json::Value>, DecisionError> {
        match &control.change {
            Change::CrimeBatch {
                source: _,
                radius_m,
                report,
                crimes,
            } => {
                let batch = StoredBatch {
                    report: report.clone(),
                    crimes,
                    radius_m: *radius_m,
                    uploaded_by: &control.actor,
                    uploaded_ms: control.recorded,
                };
                let (report, new_versions) = store_batch(&self.crimes, batch, Some(record))
                    .map_err(|ImportError::Store(e)| DecisionError::Store {
                        store: "crime store",
                        reason: e.to_string(),
                    })?;
                Ok(Some(
                    serde_json::json!({"report": report, "new_versions": new_versions}),
                ))
            }
            Change::AlertAction { alert, review, .. } => self
                .alerts
                .review(alert, &control.actor, control.recorded, review, record)
                .map(|_| None)
                .map_err(|e| match e {
                    AlertStoreError::NotFound(_) | AlertStoreError::Invalid(_) => {
                        DecisionError::Refused(e.to_string())
                    }
                    other => DecisionError::Store {
                        store: "alert store",
                        reason: other.to_string(),
                    },
                }),
            Change::HitReview {
                hit,
                activation,
                decision,
                reason,
                ..
            } => match self.crimes.review_hit(
                hit,
                *decision,
                reason,
                &control.actor,
                control.recorded,
                record,
            ) {
                // Not here yet: another node's hit, on its way through the outputs stream (the
                // node that took the decision held it).
                Err(CrimeStoreError::HitNotFound(_)) => self.crimes.review_when_hit_arrives(
                    hit,
                    activation,
                    *decision,
                    reason,
                    &control.actor,
                    control.recorded,
                    record,
                ),
                other => other.map(|_| ()),
            }
            .map(|()| None)
            .map_err(|e| match e {
                CrimeStoreError::HitNotFound(_)
                | CrimeStoreError::Invalid(_)
                | CrimeStoreError::Withdrawn { .. } => DecisionError::Refused(e.to_string()),
                other => DecisionError::Store {
                    store: "crime store",
                    reason: other.to_string(),
                },
            }),
            _ => Ok(None),
        }
    }

    /// Stores, in log order, the crime batches among `records` the crime store has not taken
    /// yet (from its mark on): at start, before the stored crimes are matched.
    pub fn catch_up_crime_batches<'a>(
        &self,
        records: impl IntoIterator<Item = (u64, &'a ControlRecord)>,
    ) -> Result<CatchUp, DecisionError> {
        let below = self
            .crimes
            .crimes_applied_below()
            .map_err(|e| store_error("crime store", e))?;
        self.catch_up_with(records, |change| {
            matches!(change, Change::CrimeBatch { .. }).then_some(below)
        })
    }

    /// Applies, in log order, the decisions among `records` that a store has not taken yet
    /// (from its mark on): at start, once the alerts and hits are in their stores.
    pub fn catch_up<'a>(
        &self,
        records: impl IntoIterator<Item = (u64, &'a ControlRecord)>,
    ) -> Result<CatchUp, DecisionError> {
        let alerts_below = match self.alerts.store() {
            Some(store) => store
                .decisions_applied_below()
                .map_err(|e| store_error("alert store", e))?,
            None => u64::MAX,
        };
        let hits_below = self
            .crimes
            .decisions_applied_below()
            .map_err(|e| store_error("crime store", e))?;
        self.catch_up_with(records, |change| match change {
            Change::AlertAction { .. } => Some(alerts_below),
            Change::HitReview { .. } => Some(hits_below),
            _ => None,
        })
    }

    /// Applies the records `mark_of` gives a store mark for, from that mark on. A store that
    /// cannot take one stops the start: serving with an acknowledged record missing would be
    /// silent loss.
    fn catch_up_with<'a>(
        &self,
        records: impl IntoIterator<Item = (u64, &'a ControlRecord)>,
        mark_of: impl Fn(&Change) -> Option<u64>,
    ) -> Result<CatchUp, DecisionError> {
        let mut done = CatchUp::default();
        for (record, control) in records {
            match mark_of(&control.change) {
                Some(below) if record >= below => {}
                _ => continue,
            }
            match self.apply(record, control) {
                Ok(_) => done.applied += 1,
                Err(DecisionError::Refused(reason)) => {
                    tracing::debug!(record, %reason, "record refused at catch-up");
                    done.refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

fn store_error(store: &'static str, e: impl std::fmt::Display) -> DecisionError {
    DecisionError::Store {
        store,
        reason: e.to_string(),
    }
}
