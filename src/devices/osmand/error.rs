//! What can be wrong with an OsmAnd request, and the HTTP status the listener answers to it.
//!
//! `param` names the query or form parameter as sent (`lat`, `timestamp`); in the JSON form it is
//! the JSON path of the value (`location.coords.latitude`, `location[2].timestamp`). Values
//! quoted back in an error are cut to [`QUOTED_CHARS`] characters, so a hostile request cannot
//! make its own error message large.

use thiserror::Error;

/// At most this many characters of a refused value are quoted in an error.
pub const QUOTED_CHARS: usize = 40;

/// Why a request was refused. Nothing is decoded from a refused request: every parameter (every
/// location of a JSON array) is checked before any reading is handed on.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum OsmandError {
    #[error("method {method} is not GET or POST")]
    MethodNotAllowed { method: String },
    #[error("query string of {len_bytes} bytes exceeds the limit of {max_bytes}")]
    QueryTooLong { len_bytes: usize, max_bytes: usize },
    #[error("body of {len_bytes} bytes exceeds the limit of {max_bytes}")]
    BodyTooLarge { len_bytes: usize, max_bytes: usize },
    #[error("content type {content_type:?} is neither application/x-www-form-urlencoded nor application/json")]
    UnsupportedContentType { content_type: String },
    #[error("more than {max_params} parameters")]
    TooManyParameters { max_params: usize },
    #[error("parameter {index}: bad percent-encoding at byte {offset} of {part} {text:?}")]
    BadPercentEncoding {
        index: usize,
        part: &'static str,
        offset: usize,
        text: String,
    },
    #[error("parameter {index}: {part} is not UTF-8 once percent-decoded")]
    NotUtf8 { index: usize, part: &'static str },
    #[error("parameter {param} sent more than once (or with its alias {alias})")]
    DuplicateParameter { param: String, alias: String },
    #[error("no device id (id or deviceid; device_id in JSON)")]
    MissingDeviceId,
    #[error("device id of {len_chars} characters exceeds the limit of {max_chars}")]
    DeviceIdTooLong { len_chars: usize, max_chars: usize },
    #[error(
        "device id character {ch:?} at index {index} is not a letter, digit, '.', '_', ':' or '-'"
    )]
    DeviceIdCharacter { ch: char, index: usize },
    #[error("no time (timestamp)")]
    MissingTime,
    #[error("{param} {value:?} is not Unix seconds, Unix milliseconds or an ISO 8601 date-time")]
    BadTimestamp { param: String, value: String },
    #[error("{param} {value:?} is not a finite decimal number")]
    BadNumber { param: String, value: String },
    #[error("{param} {value:?} is not true/false/1/0")]
    BadBool { param: String, value: String },
    #[error("{param} {value} is outside {min}..={max}")]
    OutOfRange {
        param: String,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("{param} {t_ms} ms is outside {min_t_ms}..={max_t_ms} ms")]
    TimeOutOfRange {
        param: String,
        t_ms: i64,
        min_t_ms: i64,
        max_t_ms: i64,
    },
    #[error("{present} sent without {missing}")]
    IncompleteLocation {
        present: String,
        missing: &'static str,
    },
    #[error("location {value:?} is not latitude,longitude")]
    BadLocationPair { value: String },
    #[error("JSON body is not valid JSON at line {line}, column {column}: {message}")]
    BadJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("JSON body nests deeper than {max_depth} at byte {offset}")]
    JsonTooDeep { max_depth: usize, offset: usize },
    #[error("JSON {path} is {found}, expected {expected}")]
    WrongJsonType {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("JSON {path} is missing")]
    MissingJsonField { path: String },
    #[error("JSON location array holds {count} locations, outside 1..={max_locations}")]
    LocationCount { count: usize, max_locations: usize },
}

impl OsmandError {
    /// The HTTP status the listener answers with: 405 for a method other than GET/POST, 413 for
    /// a body over the limit, 414 for a query string over it, 415 for a content type that is
    /// neither form nor JSON, and 400 for everything malformed or out of range.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed { .. } => 405,
            Self::BodyTooLarge { .. } => 413,
            Self::QueryTooLong { .. } => 414,
            Self::UnsupportedContentType { .. } => 415,
            Self::TooManyParameters { .. }
            | Self::BadPercentEncoding { .. }
            | Self::NotUtf8 { .. }
            | Self::DuplicateParameter { .. }
            | Self::MissingDeviceId
            | Self::DeviceIdTooLong { .. }
            | Self::DeviceIdCharacter { .. }
            | Self::MissingTime
            | Self::BadTimestamp { .. }
            | Self::BadNumber { .. }
            | Self::BadBool { .. }
            | Self::OutOfRange { .. }
            | Self::TimeOutOfRange { .. }
            | Self::IncompleteLocation { .. }
            | Self::BadLocationPair { .. }
            | Self::BadJson { .. }
            | Self::JsonTooDeep { .. }
            | Self::WrongJsonType { .. }
            | Self::MissingJsonField { .. }
            | Self::LocationCount { .. } => 400,
        }
    }
}

/// Why a reading cannot be written as an OsmAnd request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OsmandEncodeError {
    #[error("OsmAnd carries positions and the charging event only, not {what}")]
    NotCarried { what: &'static str },
    #[error("OsmAnd cannot say a position came from {source_name}: it would arrive as GPS")]
    NotGps { source_name: &'static str },
    #[error("device id refused: {0}")]
    DeviceId(String),
}

/// `text` cut to [`QUOTED_CHARS`] characters, for quoting in an error.
pub(crate) fn quoted(text: &str) -> String {
    text.chars().take(QUOTED_CHARS).collect()
}
