//! Control records: every change besides the tags' readings — people, activations and orders,
//! retention purges, users, police crime batches and the hub's decisions — enters the durable log
//! beside the tags' batches, so that every output is a function of the log alone. The pipeline
//! applies those the rules see at their log position; the stores beside it (metadata, alerts,
//! crimes and hits) are views built from them.
//!
//! The JSON of a [`ControlRecord`] is what a control log record holds and what a recorded JSON
//! Lines file carries on a `"control"` line (see `docs/formats.md`).

use super::time::{rfc3339_ms, rfc3339_ms_opt};
use super::{
    Activation, Batch, DeviceBinding, DeviceProtocol, HitDecision, Order, Person, PoliceCrime,
    ReviewAction, TimeMs, UserAccount,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One record of the log, as the pipeline consumes it: a tag's batch or a control record (with
/// its log record number, which names the change in order history and withdrawals).
#[derive(Clone, Debug, PartialEq)]
pub enum LogEntry {
    Batch(Arc<Batch>),
    Control {
        record: u64,
        control: Arc<ControlRecord>,
    },
}

impl LogEntry {
    /// The batch, if this entry is one.
    pub fn batch(&self) -> Option<&Arc<Batch>> {
        match self {
            LogEntry::Batch(b) => Some(b),
            LogEntry::Control { .. } => None,
        }
    }
}

/// One accepted change, as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlRecord {
    /// Wall-clock time the change was accepted: recorded with it, never read by a rule.
    #[serde(with = "rfc3339_ms")]
    pub recorded: TimeMs,
    /// Who made the change (a user name, `import:<file>` or `migration`).
    pub actor: String,
    /// The event time the change takes effect from (an order variation applies to the UK local
    /// days from this time's day on; earlier days keep the version before it). Absent: from the
    /// start of the record it changes (a correction).
    #[serde(
        with = "rfc3339_ms_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub effective: Option<TimeMs>,
    #[serde(flatten)]
    pub change: Change,
}

/// What a control record changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Creates or replaces a person.
    PutPerson { person: Person },
    /// Creates or replaces an activation (a tag fitted to a person, its period).
    PutActivation { activation: Activation },
    /// Ends an open activation at `to` (tag removed, or swapped for another).
    EndActivation {
        activation: String,
        #[serde(with = "rfc3339_ms")]
        to: TimeMs,
    },
    /// Creates an order or records a new version of it.
    PutOrder { order: Order },
    /// Retention purged these activations and people (with their orders): they leave every
    /// view and the pipeline's memory at this record.
    Purge {
        activations: Vec<String>,
        people: Vec<String>,
        /// Each purged activation's tag and period, so that whichever node purges next removes
        /// readings that arrive late for it (the activation's own records are erased). Absent
        /// in records written before it was added.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        windows: Vec<PurgedWindow>,
    },
    /// A record about a purged person, erased from the log by compaction (record numbers are
    /// kept); `op` is what it was. Changes nothing.
    Redacted { was: String },
    /// The hub acted on an alert (of `activation`, `person`'s: so retention can erase the
    /// record with them). The record's `recorded` time is when, its `actor` who.
    AlertAction {
        alert: String,
        activation: String,
        person: String,
        review: ReviewAction,
    },
    /// The hub confirmed or rejected a crime hit on `person`, with its reason.
    HitReview {
        hit: String,
        activation: String,
        person: String,
        decision: HitDecision,
        reason: String,
    },
    /// Creates an API user (the token's digest only). A user of that name with the same
    /// digest is this record applied again: accepted, nothing changes.
    PutUser { user: UserAccount },
    /// Disables a user: their token is refused from this record on.
    DisableUser { name: String },
    /// Revokes a tag's credentials (lost, stolen): refused at hello and on live connections
    /// until rotated. Applying it again changes nothing (the first revocation time stays).
    RevokeTag { tag: String },
    /// Moves a tag to its next credential generation, clearing any revocation: the previous
    /// secret is refused from this record on, on every node.
    RotateTag { tag: String },
    /// Binds a device (an IMEI, an OsmAnd device id) to a tag: its readings are the tag's from
    /// this record on, and it is refused whenever the tag is revoked. A device already bound is
    /// moved to the new tag; a tag bound to another device is refused (one device per tag).
    BindDevice { binding: DeviceBinding },
    /// Unbinds a device: refused from this record on (live connections at their next upload).
    UnbindDevice {
        protocol: DeviceProtocol,
        device: String,
    },
    /// A tag's credential state exactly as a metadata database written before credentials
    /// were log records holds it: written once, at the first start that finds no record of
    /// the tag in the log (actor `migration`). Applying it again changes nothing.
    TagCredentialState {
        tag: String,
        generation: u64,
        revoked_ms: Option<i64>,
    },
    /// A police crime batch, as validated at upload: its report (rows, errors, status) and the
    /// good rows. The crime store numbers the versions when it applies the record, so every
    /// replay and rebuild numbers them the same. `actor` is the uploader.
    CrimeBatch {
        /// The file name it was uploaded as.
        source: String,
        radius_m: f64,
        report: serde_json::Value,
        crimes: Vec<PoliceCrime>,
    },
}

/// A purged activation's tag and period `[from, to)` (`to` absent: open).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedWindow {
    pub activation: String,
    pub tag: String,
    #[serde(with = "rfc3339_ms")]
    pub from: TimeMs,
    #[serde(
        with = "rfc3339_ms_opt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<TimeMs>,
}

impl Change {
    /// The person the change is about, when the change names them.
    pub fn person(&self) -> Option<&str> {
        match self {
            Change::PutPerson { person } => Some(&person.id),
            Change::PutActivation { activation } => Some(&activation.person),
            Change::PutOrder { order } => Some(&order.person),
            Change::AlertAction { person, .. } | Change::HitReview { person, .. } => Some(person),
            Change::EndActivation { .. }
            | Change::Purge { .. }
            | Change::Redacted { .. }
            | Change::PutUser { .. }
            | Change::DisableUser { .. }
            | Change::RevokeTag { .. }
            | Change::RotateTag { .. }
            | Change::TagCredentialState { .. }
            | Change::BindDevice { .. }
            | Change::UnbindDevice { .. }
            | Change::CrimeBatch { .. } => None,
        }
    }

    /// Whether this is a hub decision (an alert action or a hit review): it changes the alert
    /// and hit stores, never the people, activations and orders the rules are made of.
    pub fn is_decision(&self) -> bool {
        matches!(self, Change::AlertAction { .. } | Change::HitReview { .. })
    }

    /// Whether this changes who may call or connect — the API's users and the tags'
    /// credentials — never what the rules see. Applied to the metadata database in log order
    /// under one mark.
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Change::PutUser { .. }
                | Change::DisableUser { .. }
                | Change::RevokeTag { .. }
                | Change::RotateTag { .. }
                | Change::TagCredentialState { .. }
                | Change::BindDevice { .. }
                | Change::UnbindDevice { .. }
        )
    }

    /// Whether this changes who may connect as a tag: its credentials or a device bound to it.
    pub fn is_tag_credential(&self) -> bool {
        matches!(
            self,
            Change::RevokeTag { .. }
                | Change::RotateTag { .. }
                | Change::TagCredentialState { .. }
                | Change::BindDevice { .. }
                | Change::UnbindDevice { .. }
        )
    }

    /// Whether the rules can see this change (people, activations, orders, purges); the hub's
    /// decisions, users and crime batches change only the stores beside the pipeline.
    pub fn reaches_rules(&self) -> bool {
        !self.is_decision() && !self.is_user() && !matches!(self, Change::CrimeBatch { .. })
    }

    /// The `op` name, as the JSON spells it.
    pub fn op(&self) -> &'static str {
        match self {
            Change::PutPerson { .. } => "put_person",
            Change::PutActivation { .. } => "put_activation",
            Change::EndActivation { .. } => "end_activation",
            Change::PutOrder { .. } => "put_order",
            Change::Purge { .. } => "purge",
            Change::Redacted { .. } => "redacted",
            Change::AlertAction { .. } => "alert_action",
            Change::HitReview { .. } => "hit_review",
            Change::PutUser { .. } => "put_user",
            Change::DisableUser { .. } => "disable_user",
            Change::RevokeTag { .. } => "revoke_tag",
            Change::RotateTag { .. } => "rotate_tag",
            Change::TagCredentialState { .. } => "tag_credential_state",
            Change::BindDevice { .. } => "bind_device",
            Change::UnbindDevice { .. } => "unbind_device",
            Change::CrimeBatch { .. } => "crime_batch",
        }
    }

    /// `person P1`, `activation A1`, `order O1`: what the change is about, for messages.
    pub fn subject(&self) -> String {
        match self {
            Change::PutPerson { person } => format!("person '{}'", person.id),
            Change::PutActivation { activation } => format!("activation '{}'", activation.id),
            Change::EndActivation { activation, .. } => format!("activation '{activation}'"),
            Change::PutOrder { order } => format!("order '{}'", order.id),
            Change::Purge {
                activations,
                people,
                ..
            } => format!(
                "retention purge of {} activation(s), {} person(s)",
                activations.len(),
                people.len()
            ),
            Change::Redacted { was } => format!("a {was} record erased by retention"),
            Change::AlertAction { alert, review, .. } => {
                format!("{} of alert '{alert}'", review.name())
            }
            Change::HitReview { hit, .. } => format!("review of hit '{hit}'"),
            Change::PutUser { user } => format!("user '{}'", user.name),
            Change::DisableUser { name } => format!("user '{name}'"),
            Change::RevokeTag { tag }
            | Change::RotateTag { tag }
            | Change::TagCredentialState { tag, .. } => format!("tag '{tag}'"),
            Change::BindDevice { binding } => format!(
                "{} device '{}' of tag '{}'",
                binding.protocol, binding.device, binding.tag
            ),
            Change::UnbindDevice { protocol, device } => {
                format!("{protocol} device '{device}'")
            }
            Change::CrimeBatch { report, .. } => format!(
                "crime batch '{}'",
                report["batch_id"].as_str().unwrap_or_default()
            ),
        }
    }
}

/// Why an output no longer holds: the change (control record) whose re-evaluation withdrew it,
/// or the later data that showed it never happened (no change: `null`). A withdrawn alert,
/// sober day or hit is kept, re-issued with this set, never deleted: one representation for
/// every rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// Log record number of the change; `None` when later data withdrew it.
    pub change: Option<u64>,
    /// What happened, e.g. `order 'O1' changed, effective …`.
    pub reason: String,
}
