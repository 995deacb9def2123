//! Orders and their conditions (curfew, exclusion and inclusion zones, trail, alcohol), exactly as
//! the interchange contract (section 8 of the domain page) spells them. Unknown fields are accepted
//! so that other systems may add to the contract without breaking us.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// An order (court order or licence condition set) belonging to a person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub person: String,
    /// UK local date the order starts.
    pub from: NaiveDate,
    /// UK local date the order ends (exclusive of the day after); open if absent.
    #[serde(default)]
    pub to: Option<NaiveDate>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One requirement of an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    Curfew(CurfewCondition),
    ExclusionZone(ZoneCondition),
    InclusionZone(ZoneCondition),
    Trail,
    Alcohol(AlcoholCondition),
}

impl Condition {
    pub fn type_name(&self) -> &'static str {
        match self {
            Condition::Curfew(_) => "curfew",
            Condition::ExclusionZone(_) => "exclusion_zone",
            Condition::InclusionZone(_) => "inclusion_zone",
            Condition::Trail => "trail",
            Condition::Alcohol(_) => "alcohol",
        }
    }
}

/// Weekday names as the contract writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A curfew: windows per weekday, in UK local time, at up to three addresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurfewCondition {
    /// Minutes of lateness tolerated before a breach; no public source fixes it, so per order.
    #[serde(default)]
    pub grace_min: u32,
    pub addresses: Vec<CurfewAddress>,
    pub timetable: Vec<TimetableEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurfewAddress {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    /// An addition to the contract: the address where the home monitoring unit (the RF base
    /// station) is installed — at most one per curfew. RF presence readings count only for
    /// windows at it; absent (false) on every address of a person, RF counts everywhere as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hmu: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A window `start`–`end` (`HH:MM`, local); an end not after the start runs into the next day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimetableEntry {
    pub days: Vec<Day>,
    pub start: String,
    pub end: String,
    pub address: String,
}

/// An exclusion or inclusion zone: a GeoJSON geometry, or a point plus `radius_m`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneCondition {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub geometry: serde_json::Value,
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// When present the zone applies only inside these local-time windows.
    #[serde(default)]
    pub schedule: Option<Vec<ScheduleEntry>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub days: Vec<Day>,
    pub start: String,
    pub end: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlcoholMode {
    /// Total abstinence: confirmed drinking is a breach.
    Abstinence,
    /// Monitoring of intake level (AML): reported, not alerted.
    Level,
}

/// Which legal requirement an alcohol condition is: the AAMR (a court order; total abstinence, at
/// most 120 days) or AML (alcohol monitoring on licence; abstinence or level, 30 days to 12 months).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlcoholRequirement {
    Aamr,
    Aml,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlcoholCondition {
    pub mode: AlcoholMode,
    /// An addition to the contract. Absent: an abstinence condition is taken to be an AAMR
    /// (monitored for at most 120 days), a level condition AML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<AlcoholRequirement>,
}

/// Parses `HH:MM` (00:00–23:59, or 24:00 as an end) into minutes after midnight.
pub fn parse_local_hhmm(text: &str) -> Result<u32, String> {
    let bad = || format!("'{text}' is not a time of day HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// People, activations and orders together: what an orders document holds, what the order book
/// exports, and what `rules::StandardRules::new` compiles rules from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrdersFile {
    pub people: Vec<super::Person>,
    pub activations: Vec<super::Activation>,
    pub orders: Vec<Order>,
}
