//! Computations over one trail (positions of one activation, sorted by event time): missing-data
//! gaps, places visited (stays), daily summaries, and exports (GeoJSON, GPX, KML, CSV).
//!
//! Pure functions: no I/O, no clock. Inputs are [`crate::model::Reading`]s as the trail store
//! returns them; non-position readings are ignored.

pub mod daily;
pub mod export;
pub mod gaps;
pub mod geo;
pub mod stays;

pub use daily::{daily_summaries, DailyConfig, DaySummary};
pub use export::{to_csv, to_geojson, to_gpx, to_kml, ExportFormat};
pub use gaps::{gap_flags, sequence_labels, GapConfig};
pub use geo::{haversine_m, Place};
pub use stays::{find_stays, find_stays_with, Stay, StayConfig};

use crate::model::{Position, Reading, ReadingBody, TimeMs};

/// A position with its event time and battery, borrowed from a reading.
#[derive(Clone, Copy, Debug)]
pub struct Fix<'a> {
    pub t_ms: TimeMs,
    pub battery_pct: Option<u8>,
    pub pos: &'a Position,
}

/// The positions among `readings`, in the order given.
pub fn fixes(readings: &[Reading]) -> Vec<Fix<'_>> {
    readings
        .iter()
        .filter_map(|r| match &r.body {
            ReadingBody::Position(p) => Some(Fix {
                t_ms: r.t_ms,
                battery_pct: r.battery_pct,
                pos: p,
            }),
            _ => None,
        })
        .collect()
}
