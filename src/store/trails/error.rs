//! The trail store's typed errors: every failure names the file and, for damage, the byte offset.

use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Why a block or a manifest record does not decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("truncated: needed more bytes at byte {at} of {len}")]
    Truncated { at: usize, len: usize },
    #[error("varint longer than 10 bytes at byte {at}")]
    VarintOverflow { at: usize },
    #[error("unknown block version {0}")]
    BadVersion(u8),
    #[error("unknown position source code {0}")]
    BadSource(u8),
    #[error("value out of range for {field}: {value}")]
    OutOfRange { field: &'static str, value: i64 },
    #[error("run lengths cover {covered} positions, block has {count}")]
    RunMismatch { covered: u64, count: u64 },
    #[error("{trailing} bytes left over after the last field")]
    Trailing { trailing: usize },
    #[error("unknown manifest record kind {0}")]
    BadKind(u8),
    #[error("activation name is not UTF-8")]
    NameNotUtf8,
}

/// Every way a trail store operation fails.
#[derive(Debug, Error)]
pub enum TrailError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} at offset {offset}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", path.display())]
    Checksum {
        path: PathBuf,
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("{} at offset {offset}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        #[source]
        source: CodecError,
    },
    #[error("{}: header {found:02x?} is not a tagstream trail file header", path.display())]
    BadHeader { path: PathBuf, found: Vec<u8> },
    #[error("{}: {len_bytes} bytes on disk but the checkpoint says {expected_bytes} are durable", path.display())]
    DataShorterThanCheckpoint {
        path: PathBuf,
        len_bytes: u64,
        expected_bytes: u64,
    },
    #[error("{}: referenced by the manifest but missing", path.display())]
    MissingDataFile { path: PathBuf },
    #[error("activation name of {len_bytes} bytes is longer than {max_bytes}")]
    NameTooLong { len_bytes: usize, max_bytes: usize },
}

impl TrailError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> TrailError {
        let path = path.into();
        move |source| TrailError::Io { op, path, source }
    }
}
