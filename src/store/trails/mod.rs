//! The trail store: every position of every activation, durable, compact and indexed by
//! activation, time and area.
//!
//! It is derived from the durable log (the source of truth) and feeds the practitioner review
//! API (trails by activation and period) and crime matching ("who was near here between these
//! times"). Layout of its directory:
//!
//! - data files ([`chunk_file`]): append-only, holding blocks — the positions of one activation
//!   in one time chunk (an hour by default), column-encoded ([`codec`]);
//! - the manifest ([`manifest`]): append-only, checksummed records of activation names, block
//!   references (file, offset, length, checksum, time range, box, first/last fix), removals,
//!   retention watermarks and checkpoints — the log record number up to which the store holds
//!   everything, so a restart replays only the log after it;
//! - in memory ([`index`]): per activation its blocks sorted by time, the unsealed buffers, and
//!   the R-tree of block envelopes ([`spatial`]).
//!
//! [`store::TrailStore`] ties them together: one writer appends and checkpoints, any number of
//! readers query concurrently.

pub mod chunk_file;
pub mod codec;
pub mod error;
pub mod feed;
pub mod index;
pub mod manifest;
pub mod spatial;
pub mod store;

pub use error::{CodecError, TrailError};
pub use feed::{FeedCursor, TrailFeed};
pub use spatial::QueryBox;
pub use store::{Candidate, RecoveryReport, TrailConfig, TrailStats, TrailStore};
