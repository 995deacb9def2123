//! Crime data and crime matching (domain page section 4).
//!
//! Imports: the police forces' daily batch CSV and the public data.police.uk street-level CSV,
//! parsed and validated into crimes with WGS84 locations (`forces`, `coordinates`, `police_csv`;
//! pure: callers hand over the bytes of one file and get back crimes and a report of every
//! rejected row). Matching: `matcher` runs the hit rule ([`crate::rules::hits`]) over trails both
//! ways, and `service` is the worker that owns it in the server.

pub mod coordinates;
pub mod evidence;
pub mod forces;
pub mod import;
pub mod matcher;
pub mod police_csv;
pub mod service;

pub use coordinates::{bng_to_wgs84, ConversionError, LatLon};
pub use forces::{
    crime_type_by_id, force_by_code, force_by_id, force_by_name, CrimeType, Force, CRIME_TYPES,
    FORCES,
};
pub use police_csv::{
    parse_police_batch, BatchReport, BatchStatus, OriginalCoordinates, PoliceCrime, PoliceCsvRules,
    RowError,
};
