//! The hub's decisions as control records carry them: an action on an alert (acknowledge, assign,
//! resolve) and a review of a crime hit (confirm, reject). They enter the durable log like every
//! other change, so the alert and hit stores are views that a rebuild reproduces; no rule reads
//! them.

use serde::{Deserialize, Serialize};

/// How a resolved alert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    BreachConfirmed,
    ReasonableExcuse,
    AuthorisedAbsence,
    FalseAlarm,
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BreachConfirmed => "breach_confirmed",
            Self::ReasonableExcuse => "reasonable_excuse",
            Self::AuthorisedAbsence => "authorised_absence",
            Self::FalseAlarm => "false_alarm",
            Self::Duplicate => "duplicate",
        }
    }
}

/// A person's action on an alert in the hub's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReviewAction {
    Acknowledge {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
    },
    Assign {
        assignee: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
    },
    Resolve {
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
    },
}

impl ReviewAction {
    /// `acknowledge`, `assign` or `resolve`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Acknowledge { .. } => "acknowledge",
            Self::Assign { .. } => "assign",
            Self::Resolve { .. } => "resolve",
        }
    }
}

/// A hub decision on a crime hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitDecision {
    Confirm,
    Reject,
}
