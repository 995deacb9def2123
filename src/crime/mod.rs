//! Crime data and crime matching (domain page section 4).
//!
//! Imports: the police forces' daily batch CSV and the public data.police.uk street-level CSV,
//! parsed and validated into crimes with WGS84 locations (`forces`, `coordinates`, `police_csv`,
//! `public_csv`; pure: callers hand over the bytes of one file and get back crimes and a report
//! of every rejected row). `import` files a parsed batch in the crime store as versions.
//! Matching: `matcher` runs the hit rule ([`crate::rules::hits`]) over trails both ways, and
//! `service` is the worker that owns it in the server. `evidence` renders hits for disclosure.

pub mod coordinates;
pub mod evidence;
pub mod forces;
pub mod import;
pub mod matcher;
pub mod police_csv;
pub mod public_csv;
mod records;
pub mod service;
#[cfg(test)]
pub(crate) mod test_fixtures;

pub use coordinates::{bng_to_wgs84, ConversionError, LatLon};
pub use forces::{
    crime_type_by_id, force_by_code, force_by_id, force_by_name, CrimeType, Force, CRIME_TYPES,
    FORCES,
};
pub use police_csv::{
    parse_police_batch, parse_police_batch_from, BatchReport, BatchStatus, PoliceCsvRules, RowError,
};
pub use public_csv::{
    parse_public_csv, PublicCrime, PublicCsvError, PublicImport, SkippedRow, ACQUISITIVE_TYPES,
};
