//! A batch: the unit a tag uploads, the log stores and the pipeline consumes.

use super::{Reading, TagId, TimeMs};

/// Readings one tag uploaded in one go, numbered by the tag (`seq` strictly increases per tag and
/// session epoch; a re-sent batch keeps its number, which is how duplicates are recognised).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub tag: TagId,
    /// The tag's session epoch (from its hello; 0 for tags that never changed it). A tag that
    /// restarts its numbering does so in a higher epoch, so `(epoch, seq)` increases per tag.
    pub epoch: u32,
    pub seq: u64,
    /// Wall-clock time the server received the batch. An input recorded with the batch, never read
    /// by a rule; it lets latency and lateness be measured after the fact.
    pub arrival_ms: TimeMs,
    pub readings: Vec<Reading>,
}

/// Which of its tag's batches a reading came in: `(epoch, seq)` as the tag numbered it. With the
/// tag and the event time it names a stored reading in a way that survives log compaction and
/// the cluster log (a log record number or stream sequence does not travel with the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct BatchSeq {
    pub epoch: u32,
    pub seq: u64,
}

impl Batch {
    pub fn batch_seq(&self) -> BatchSeq {
        BatchSeq {
            epoch: self.epoch,
            seq: self.seq,
        }
    }
}
