//! The durable append-only log: the only place a reading becomes durable, and so the gate for
//! acknowledging it to a tag.
//!
//! The log owns a directory of segment files, named by the global number of their first record
//! (`00000000000000000000.seg`), each starting with an 8-byte magic+version header and holding
//! framed, checksummed batch records (see [`record`]). It owns:
//!
//! - the on-disk format ([`record`], [`segment`]);
//! - appending and syncing ([`writer`]), with recovery on open ([`recovery`]): a torn tail of the
//!   last segment is cut off; damage inside a segment is quarantined (the segment copied aside,
//!   the damage reported) and only the damaged records are lost ([`resync`] finds the intact
//!   records after it);
//! - reading back in log order for replay, inspect and startup ([`reader`], [`summary`]);
//! - group commit and per-tag deduplication ([`committer`]): a batch is acknowledged only after the
//!   `fdatasync` that makes it durable, so a crash at any instant loses no acknowledged reading;
//! - compaction for retention ([`compact`]): sealed segments rewritten without an activation's
//!   readings, crash-safely, with record numbers unchanged.

pub mod committer;
pub mod compact;
pub mod error;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod resync;
pub mod segment;
pub mod summary;
pub mod writer;

pub use committer::{
    note_durable, AppendOutcome, CommitConfig, CommitHandle, CommitStats, DedupState,
    GroupCommitter, RemoteLog,
};
pub use compact::{compact, CompactReport, TagWindows};
pub use error::{Corruption, LogError, LogResult, PayloadError};
pub use reader::{for_each_batch_in, Batches, Damage, LogReader, TornTail};
pub use recovery::{DamageReport, RecoveryReport, TornTailReport, QUARANTINE_DIR};
pub use summary::{
    summarize, DamageSummary, LogSummary, ReadingCounts, SegmentSummary, TornTailSummary,
};
pub use writer::{LogConfig, LogWriter, DEFAULT_SEGMENT_MAX_BYTES};

#[cfg(test)]
mod test_batches;
