//! [`ControlGate`]: how an API write becomes a change. The change is appended to the durable log
//! as a control record; the caller is answered once the record is durable **and** applied (the
//! metadata view and the pipeline's inputs follow it), with the book's verdict: accepted, or
//! refused with the reason. A refused record stays in the log, refused the same way by every
//! replay and rebuild.

use crate::log::{CommitHandle, LogError};
use crate::model::{Change, ControlRecord, TimeMs};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Refused(String),
    #[error("the change is too large for one log record: {0}")]
    TooLarge(String),
    #[error("the change could not be stored: {0}")]
    Log(LogError),
    #[error("the server is stopping; the change was stored but its outcome is unknown")]
    Stopped,
}

/// Submits control records and reports their outcome once applied.
pub struct ControlGate {
    commit: CommitHandle,
    /// Every record below this number has been applied.
    applied_below: watch::Sender<u64>,
    outcomes: Mutex<HashMap<u64, Outcome>>,
}

/// What applying a record gave: accepted (with what the store answered, for records whose
/// submitter needs more than "done", e.g. a crime batch's stored versions), or refused with why.
pub type Outcome = Result<Option<serde_json::Value>, String>;

impl ControlGate {
    pub fn new(commit: CommitHandle, applied_below: u64) -> Self {
        Self {
            commit,
            applied_below: watch::channel(applied_below).0,
            outcomes: Mutex::new(HashMap::new()),
        }
    }

    /// Appends one change (made by `actor`, effective from `effective`), waits until it is
    /// applied and returns its record number, or why it was refused. The record carries the
    /// wall-clock time it was accepted (no rule reads it).
    pub async fn submit(
        &self,
        actor: &str,
        effective: Option<TimeMs>,
        change: Change,
    ) -> Result<u64, ControlError> {
        self.submit_answered(actor, effective, change)
            .await
            .map(|(record, _)| record)
    }

    /// [`Self::submit`], returning what the store that applied the record answered too.
    pub async fn submit_answered(
        &self,
        actor: &str,
        effective: Option<TimeMs>,
        change: Change,
    ) -> Result<(u64, Option<serde_json::Value>), ControlError> {
        let recorded = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as TimeMs);
        let control = ControlRecord {
            recorded,
            actor: actor.to_string(),
            effective,
            change,
        };
        let record = self
            .commit
            .append_control(control)
            .await
            .map_err(|e| match e {
                LogError::ControlTooLarge { .. } => ControlError::TooLarge(e.to_string()),
                other => ControlError::Log(other),
            })?;
        let mut applied = self.applied_below.subscribe();
        applied
            .wait_for(|below| *below > record)
            .await
            .map_err(|_| ControlError::Stopped)?;
        let outcome = self
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&record);
        match outcome {
            Some(Ok(answer)) => Ok((record, answer)),
            None => Ok((record, None)),
            Some(Err(reason)) => Err(ControlError::Refused(reason)),
        }
    }

    /// Called by the applier, in log order: record `record` was applied with `outcome`.
    pub fn applied(&self, record: u64, outcome: Result<(), String>) {
        self.answered(record, outcome.map(|()| None));
    }

    /// [`Self::applied`], with what the store answered.
    pub fn answered(&self, record: u64, outcome: Outcome) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record, outcome);
        self.applied_below.send_replace(record + 1);
    }

    /// The durable log handle (for the start-up import).
    pub fn commit(&self) -> &CommitHandle {
        &self.commit
    }
}
