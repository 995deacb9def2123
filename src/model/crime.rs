//! A crime as the matcher sees it: one *version* of a police force's crime reference, with its
//! window and location in WGS84 (converted from British National Grid on import when the force
//! sent eastings and northings) and the vicinity radius of the import it came in; and a police
//! batch row as imported ([`PoliceCrime`]), which the crime parser produces and the crime store
//! keeps.

use super::time::rfc3339_ms;
use super::TimeMs;
use serde::{Deserialize, Serialize};

/// One version of one crime: what a hit is computed against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrimeVersion {
    /// Force identifier (column 0 of the police batch), e.g. `AvonSomerset`.
    pub force: String,
    /// The batch this version arrived in.
    pub batch_id: String,
    pub crime_ref: String,
    /// 1 for the first submission of the reference, +1 for each resubmission that changed it.
    pub version: u32,
    /// Crime type id (`RB`, `BIAD`, …) and its description.
    pub crime_type: String,
    pub crime_type_description: String,
    #[serde(rename = "from", with = "rfc3339_ms")]
    pub from_ms: TimeMs,
    #[serde(rename = "to", with = "rfc3339_ms")]
    pub to_ms: TimeMs,
    pub lat: f64,
    pub lon: f64,
    /// Vicinity radius used for this import.
    pub radius_m: f64,
    /// Free text (column 12).
    pub other_info: String,
}

impl CrimeVersion {
    /// The key a hit is attached to.
    pub fn key(&self) -> CrimeKey {
        CrimeKey {
            force: self.force.clone(),
            crime_ref: self.crime_ref.clone(),
            version: self.version,
        }
    }
}

/// (force, reference, version): unique across every batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CrimeKey {
    pub force: String,
    pub crime_ref: String,
    pub version: u32,
}

/// Where the row located the crime, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "system", rename_all = "lowercase")]
pub enum OriginalCoordinates {
    Wgs84 { lat: f64, lon: f64 },
    Bng { easting_m: f64, northing_m: f64 },
}

/// One imported crime (one version of it: a resubmitted reference is a new version downstream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoliceCrime {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// The force identifier (column 0).
    pub force: String,
    /// The crime type id (`BIAD`).
    pub crime_type: String,
    /// The crime type's description from the crime type table (`crate::crime::CRIME_TYPES`;
    /// the column is informational and not copied).
    pub crime_type_description: String,
    pub batch_id: String,
    pub crime_ref: String,
    pub from_ms: TimeMs,
    pub to_ms: TimeMs,
    /// WGS84 latitude, degrees (converted from the grid reference for BNG rows).
    pub lat: f64,
    /// WGS84 longitude, degrees.
    pub lon: f64,
    pub original: OriginalCoordinates,
    /// `WGS84` or `OSGB36`.
    pub datum: String,
    /// Column 12 as sent (quotes undone, commas and line breaks kept).
    pub other_info: String,
}
