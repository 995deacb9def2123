//! Crime data imports (domain page section 4): the police forces' daily batch CSV and the public
//! data.police.uk street-level CSV, parsed and validated into crimes with WGS84 locations.
//!
//! This module owns the force and crime-type tables, the BNG → WGS84 conversion, and the two
//! parsers. It is pure: callers hand it the bytes of one file and get back the crimes and a
//! report of every rejected row; it reads no files and matches nothing against trails.

pub mod coordinates;
pub mod forces;
pub mod police_csv;
pub mod public_csv;
mod records;

pub use coordinates::{bng_to_wgs84, ConversionError, LatLon};
pub use forces::{
    crime_type_by_id, force_by_code, force_by_id, force_by_name, CrimeType, Force, CRIME_TYPES,
    FORCES,
};
pub use police_csv::{
    parse_police_batch, parse_police_batch_from, BatchReport, BatchStatus, OriginalCoordinates,
    PoliceCrime, PoliceCsvRules, RowError,
};
pub use public_csv::{
    parse_public_csv, PublicCrime, PublicCsvError, PublicImport, SkippedRow, ACQUISITIVE_TYPES,
};
