//! The log's typed errors: every failure names the file (and, for damage, the byte offset) it
//! concerns, so an operator can go straight to the problem.
//!
//! [`LogError`] is `Clone` (I/O errors are held in an `Arc`) because one failed group commit must
//! fail every request in the group with the same error.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// What is wrong with the bytes at some offset of a segment.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Corruption {
    #[error("segment header is {len_bytes} bytes, shorter than the 8-byte header")]
    ShortHeader { len_bytes: u64 },
    #[error("segment header {found:02x?} is not a tagstream log header version 1")]
    BadHeader { found: [u8; 8] },
    #[error("record header cut short: {available_bytes} of 8 bytes present")]
    ShortRecordHeader { available_bytes: u64 },
    #[error("record payload length {len_bytes} is outside 1..={max_bytes}")]
    BadLength { len_bytes: u64, max_bytes: u64 },
    #[error("record payload cut short: {available_bytes} of {len_bytes} bytes present")]
    ShortPayload {
        available_bytes: u64,
        len_bytes: u64,
    },
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("record payload is checksummed but malformed: {0}")]
    Payload(#[from] PayloadError),
}

/// Why a checksummed payload does not decode to a batch.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PayloadError {
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("payload of {len_bytes} bytes is too short for its fields")]
    TooShort { len_bytes: usize },
    #[error("payload is {len_bytes} bytes but its fields say {expected_bytes}")]
    LengthMismatch {
        len_bytes: usize,
        expected_bytes: usize,
    },
    #[error("tag is not UTF-8")]
    TagNotUtf8,
    #[error("reading {index}: {source}")]
    Reading {
        index: usize,
        source: crate::wire::RecordError,
    },
    #[error("control record is not valid: {0}")]
    Control(String),
}

/// Every way a log operation fails.
#[derive(Debug, Error, Clone)]
pub enum LogError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("{} at offset {offset}: {kind}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        kind: Corruption,
    },
    #[error("{}: segment starts at record {found} but the previous segments end at record {expected}", path.display())]
    SegmentGap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("batch tag is {len_bytes} bytes; the log stores tags of 1 to 255 bytes")]
    BadTag { len_bytes: usize },
    #[error("control record of {len_bytes} bytes cannot be stored: {message}")]
    ControlTooLarge { len_bytes: usize, message: String },
    #[error("batch has {count} readings; one record holds at most {max}")]
    BatchTooLarge { count: usize, max: usize },
    #[error("batch of tag {tag} is of session epoch {epoch}, older than the tag's current epoch {current_epoch}; not stored")]
    StaleEpoch {
        tag: String,
        epoch: u32,
        current_epoch: u32,
    },
    #[error("log writer refused the operation after an earlier I/O error: {0}")]
    Poisoned(String),
    #[error("log committer has shut down")]
    Closed,
    /// The log is kept elsewhere (cluster mode) and the operation failed there.
    #[error("the log's stream: {0}")]
    Remote(String),
    /// The operation does not exist for this kind of log (yet).
    #[error("not possible with this log: {0}")]
    Unsupported(String),
}

impl LogError {
    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Result alias for log operations.
pub type LogResult<T> = Result<T, LogError>;
