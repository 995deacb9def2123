//! File formats in and out of tagstream (the interchange contract, `docs/formats.md`): readings
//! as JSON Lines, the orders document, alerts and sober days as JSON Lines. Readers report every bad line or
//! record with its line number and keep the rest.

pub mod alerts_jsonl;
pub mod csv_safe;
pub mod orders_file;
pub mod readings_jsonl;
pub mod sober_days_jsonl;

use serde::Serialize;
use std::fmt;

/// A problem with one line or record of an input file; the rest of the file is still used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: usize,
    /// What the record is, when known (`activations[2] "A3"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            Some(record) => write!(f, "line {}: {}: {}", self.line, record, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}
