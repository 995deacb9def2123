//! People and device activations: a tag assigned to a person from one time to another.
//!
//! Compliance is keyed on the activation, never the physical device: tags are reused and replaced.

use super::time::{rfc3339_ms, rfc3339_ms_opt};
use super::{TagId, TimeMs};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A monitored person (nominal, PoP, device wearer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub date_of_birth: Option<NaiveDate>,
    #[serde(default)]
    pub nomis_id: Option<String>,
    #[serde(default)]
    pub pnc_ref: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub offender_manager: Option<String>,
    /// Restricted cases are visible only to named roles.
    #[serde(default)]
    pub restricted: bool,
}

/// A tag assigned to a person over `[from, to)`; `to` is `None` while the activation is open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub id: String,
    pub person: String,
    pub tag: TagId,
    #[serde(with = "rfc3339_ms")]
    pub from: TimeMs,
    #[serde(with = "rfc3339_ms_opt", default)]
    pub to: Option<TimeMs>,
}

impl Activation {
    /// Whether the tag was assigned to this activation at event time `t_ms`.
    pub fn covers(&self, t_ms: TimeMs) -> bool {
        t_ms >= self.from && self.to.is_none_or(|to| t_ms < to)
    }

    /// Whether two activations' periods intersect.
    pub fn overlaps(&self, other: &Activation) -> bool {
        let self_end = self.to.unwrap_or(TimeMs::MAX);
        let other_end = other.to.unwrap_or(TimeMs::MAX);
        self.from < other_end && other.from < self_end
    }
}
