//! Sober days: the day-by-day record of an alcohol order (contract section 8). One record per
//! activation, order and Europe/London calendar day; a record may be re-issued with a new status
//! (late data, a later decision), so stores upsert by (activation, order, date).

use super::AlcoholMode;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How a day is classified. The rules are in `docs/alcohol.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoberDayStatus {
    /// Worn and monitored all day, no confirmed drinking, no tamper.
    Sober,
    /// A confirmed drinking event overlaps the day.
    Drinking,
    /// An obstruction, removal or strap tamper overlaps the day.
    Tamper,
    /// Fitting or removal day, or too little of the day monitored.
    Partial,
    /// No reading at all that day.
    NotWorn,
}

impl SoberDayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sober => "sober",
            Self::Drinking => "drinking",
            Self::Tamper => "tamper",
            Self::Partial => "partial",
            Self::NotWorn => "not_worn",
        }
    }
}

/// Why a day has its status (every reason that applies, not only the deciding one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayReason {
    ConfirmedDrinking,
    Obstruction,
    Removal,
    StrapTamper,
    NoReadings,
    FittingDay,
    RemovalDay,
    FewReadings,
    LowCoverage,
    /// Informational: an environmental exposure (not drinking) was recorded that day.
    EnvironmentalExposure,
    /// Informational: alcohol was seen but not confirmed (below the peak threshold, too few
    /// readings, or an implausible curve that was not fast enough to be environmental).
    UnconfirmedAlcohol,
    /// The day was settled while a possible drinking event overlapping it was still undecided.
    DecisionPending,
}

/// One day of one alcohol order, as monitored through one activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoberDay {
    pub activation: String,
    pub order: String,
    /// The Europe/London calendar day.
    pub date: NaiveDate,
    pub status: SoberDayStatus,
    pub reasons: Vec<DayReason>,
    pub person: String,
    pub mode: AlcoholMode,
    /// TAC readings during the day.
    pub readings: u32,
    /// Fraction (0–1) of the day's reading slots that hold at least one reading.
    pub coverage: f64,
    /// Length of the local day: 23, 24 or 25 hours.
    pub day_hours: u8,
    /// Ids of the alcohol alerts overlapping the day.
    pub alerts: Vec<String>,
    /// Issued or changed because of a reading that arrived after its window was evaluated.
    pub late: bool,
    /// The rule and its version.
    pub rule: String,
    /// Fingerprint of the rule parameters.
    pub config_version: String,
    /// Set when a change (a control record) means the day's record no longer holds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub withdrawn: Option<super::Withdrawal>,
    /// The log record number of the change whose re-evaluation issued or changed this record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amended_by: Option<u64>,
}

impl SoberDay {
    /// The upsert key: activation, order, date.
    pub fn key(&self) -> (&str, &str, NaiveDate) {
        (&self.activation, &self.order, self.date)
    }
}
