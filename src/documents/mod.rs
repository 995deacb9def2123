//! Documents people hand on: the hit evidence pack for police, the breach report and the
//! sober-day report for practitioners. Each is built from outputs the stores already hold (hits,
//! alerts, sober days, trails, TAC readings) as a content model (serialisable: the pack's JSON),
//! then laid out as PDF (`layout`, krilla) with maps and charts drawn as SVG (`usvg`), and
//! listed in a manifest of SHA-256 digests so anyone can show a document is unchanged and, while
//! the data is held, regenerate it byte for byte. No wall clock and no randomness: the same
//! inputs give the same bytes.

pub mod breach_report;
pub mod calendar_figure;
pub mod distance_chart;
pub mod fonts;
pub mod hit_pack;
pub mod layout;
pub mod manifest;
pub mod map_figure;
pub mod offline;
pub mod sober_day_report;
pub mod sources;
pub mod text;

/// Why a document could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("figure could not be drawn: {0}")]
    Figure(String),
    #[error("PDF could not be written: {0}")]
    Pdf(String),
    #[error("the document's JSON could not be written: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Crimes(#[from] crate::store::crime_store::CrimeStoreError),
    #[error(transparent)]
    Metadata(#[from] crate::store::metadata::MetadataError),
    #[error("reading the positions: {0}")]
    Trails(#[from] crate::store::trails::TrailError),
}
