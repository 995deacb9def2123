//! A crime hit: a device activation whose trail came within a crime's vicinity during the crime's
//! window, with what a reviewer needs to rule the person in or out. The JSON shape is the
//! interchange contract (`hits.jsonl`, domain page section 8), with fields added.
//!
//! A hit's id is a function of the crime version and the activation only, so re-running a batch,
//! replaying the log or late data re-evaluating a hit all update the same hit.

use super::time::rfc3339_ms;
use super::{CrimeKey, PositionSource, TimeMs};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whether the whole confidence circle of some point of the path was inside the vicinity
/// (`certain`), or the circles only overlapped it (`possible`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    Certain,
    Possible,
}

/// The algorithm and parameters that produced a hit (published and versioned).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitAlgorithm {
    pub name: String,
    pub radius_m: f64,
    /// Consecutive fixes at most this far apart are joined by a straight path.
    pub max_gap_s: i64,
    /// Positions this long before and after the window are part of the evidence.
    pub margin_s: i64,
    /// Fixes less precise than this never make a hit on their own.
    pub max_precision_m: f64,
    /// A new sequence letter starts after a gap longer than this.
    pub label_gap_s: i64,
}

/// One position of the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitPosition {
    /// `A1`, `A2`, … with a new letter after a gap.
    pub label: String,
    #[serde(with = "rfc3339_ms")]
    pub t: TimeMs,
    pub lat: f64,
    pub lon: f64,
    pub precision_m: f64,
    pub source: PositionSource,
    pub speed_kmh: Option<f64>,
    pub heading_deg: Option<f64>,
    /// Inside the crime's from–to window.
    pub in_window: bool,
    /// Distance from the crime location, metres (0.1 m).
    pub distance_m: f64,
}

/// One hit, in the contract's field order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    pub force: String,
    pub batch_id: String,
    pub crime_ref: String,
    pub crime_version: u32,
    pub activation: String,
    pub person: String,
    pub certainty: Certainty,
    /// Metres, 0.1 m.
    pub closest_m: f64,
    #[serde(with = "rfc3339_ms")]
    pub closest_t: TimeMs,
    /// Seconds the (interpolated) path spent inside the vicinity during the window.
    pub inside_s: i64,
    pub positions: Vec<HitPosition>,
    pub algorithm: HitAlgorithm,
    pub crime_type: String,
    #[serde(with = "rfc3339_ms")]
    pub crime_from: TimeMs,
    #[serde(with = "rfc3339_ms")]
    pub crime_to: TimeMs,
    pub crime_lat: f64,
    pub crime_lon: f64,
    pub radius_m: f64,
    /// No GPS fix supports the hit: every qualifying fix is LBS or Wi-Fi.
    pub weaker_evidence: bool,
}

/// A hit as it stands: its latest form and, once withdrawn, why (kept, never deleted). What a
/// processing node publishes for each change to a hit it owns, and what any node's crime store
/// takes as it is (cluster mode, `topology::outputs_link`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitStanding {
    pub hit: Hit,
    pub withdrawn: Option<super::Withdrawal>,
}

/// The stable id of the hit of `crime` on `activation`.
pub fn hit_id(crime: &CrimeKey, activation: &str) -> String {
    let mut h = Sha256::new();
    for part in [crime.force.as_str(), crime.crime_ref.as_str(), activation] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.update(crime.version.to_le_bytes());
    let digest = h.finalize();
    format!("H{}", hex::encode(&digest[..10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_ids_depend_on_every_part_of_the_key() {
        let k = |f: &str, r: &str, v| CrimeKey {
            force: f.into(),
            crime_ref: r.into(),
            version: v,
        };
        let a = hit_id(&k("Kent", "C1", 1), "A1");
        assert_eq!(a, hit_id(&k("Kent", "C1", 1), "A1"));
        assert_eq!(a.len(), 21);
        assert_ne!(a, hit_id(&k("Kent", "C1", 2), "A1"));
        assert_ne!(a, hit_id(&k("Kent", "C2", 1), "A1"));
        assert_ne!(a, hit_id(&k("Essex", "C1", 1), "A1"));
        assert_ne!(a, hit_id(&k("Kent", "C1", 1), "A2"));
    }
}
