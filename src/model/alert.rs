//! Alerts: what the rules tell the hub. The JSON shape is the interchange contract (section 8).
//!
//! An alert's id is a function of its activation, rule and start time only, so reprocessing the
//! same readings (replay, recovery after a crash) yields the same ids and updates alerts in place.

use super::time::{rfc3339_ms, rfc3339_ms_opt};
use super::{Reading, TimeMs};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Alert types, named as the contract names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    CurfewViolation,
    ExclusionZoneEntry,
    InclusionZoneExit,
    StrapTamper,
    BatteryLow,
    BatteryDead,
    HmuPowerLoss,
    HmuMoved,
    DeviceFault,
    NoContact,
    DrinkingEvent,
    AlcoholObstruction,
    AlcoholRemoval,
    EnvironmentalAlcohol,
    /// The tag's clock is absurdly ahead of the event-time clock (or of the server's arrival
    /// time): its readings are held out of the rules (see `docs/rules.md`).
    DeviceClock,
}

impl AlertType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CurfewViolation => "curfew_violation",
            Self::ExclusionZoneEntry => "exclusion_zone_entry",
            Self::InclusionZoneExit => "inclusion_zone_exit",
            Self::StrapTamper => "strap_tamper",
            Self::BatteryLow => "battery_low",
            Self::BatteryDead => "battery_dead",
            Self::HmuPowerLoss => "hmu_power_loss",
            Self::HmuMoved => "hmu_moved",
            Self::DeviceFault => "device_fault",
            Self::NoContact => "no_contact",
            Self::DrinkingEvent => "drinking_event",
            Self::AlcoholObstruction => "alcohol_obstruction",
            Self::AlcoholRemoval => "alcohol_removal",
            Self::EnvironmentalAlcohol => "environmental_alcohol",
            Self::DeviceClock => "device_clock",
        }
    }
}

/// How sure a zone alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Confirmed,
    Possible,
}

/// One alert, in the contract's field order. `end` is `None` while the condition is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    pub activation: String,
    pub person: String,
    #[serde(with = "rfc3339_ms")]
    pub start: TimeMs,
    #[serde(with = "rfc3339_ms_opt")]
    pub end: Option<TimeMs>,
    /// Raised or changed by a reading that arrived after its window had been evaluated.
    pub late: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidence: Option<Confidence>,
    /// The rule and its version that produced the alert.
    pub rule: String,
    /// Measurements behind the alert, for rules that have them (alcohol); absent otherwise, so
    /// other alerts keep their exact bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<Box<AlertDetails>>,
    /// Set when a change to the orders or the activation (a control record) means the alert no
    /// longer holds: the alert is kept, withdrawn (see `docs/formats.md`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub withdrawn: Option<super::Withdrawal>,
    /// The log record number of the change whose re-evaluation raised or changed this alert.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amended_by: Option<u64>,
    /// The readings that caused the alert (and the one that ended it).
    #[serde(skip_deserializing, default)]
    pub evidence: Vec<Reading>,
}

/// What an alcohol alert measured (every field optional; absent fields are not written).
/// Concentrations in g/dL, rates in g/dL per hour, area under the curve in g/dL·h.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertDetails {
    /// Fingerprint of the rule parameters that produced the alert (see `docs/alcohol.md`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config_version: Option<String>,
    /// The orders the alert was raised under.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub orders: Vec<String>,
    #[serde(
        with = "rfc3339_ms_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub peak: Option<TimeMs>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_tac_gdl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_raw_tac_gdl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auc_gdl_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub absorption_gdl_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub elimination_gdl_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub readings: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ir_baseline_v: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ir_v: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temp_c: Option<f64>,
}

/// The stable id of an alert: a hash of activation, rule key and start time.
pub fn alert_id(activation: &str, rule_key: &str, start: TimeMs) -> String {
    let mut h = Sha256::new();
    h.update(activation.as_bytes());
    h.update([0]);
    h.update(rule_key.as_bytes());
    h.update([0]);
    h.update(start.to_le_bytes());
    let digest = h.finalize();
    format!("al-{}", hex::encode(&digest[..10]))
}
