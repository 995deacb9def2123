//! Feeding the trail store from the durable log, in log order: the dispatcher resolved each
//! record's readings to their activations (`pipeline::Output::Readings`); the feed appends
//! them and keeps its place, so a checkpoint never claims a record the store did not take.

use super::error::TrailError;
use super::store::TrailStore;
use crate::model::{BatchSeq, Reading, TimeMs};
use crate::pipeline::{Output, Sink};

/// The trail feed's place in the log: the next record to apply, and the record a checkpoint
/// may claim. A record whose append failed holds every later checkpoint back to it, so a
/// restart re-applies from there (appends are idempotent) instead of the checkpoint claiming a
/// record the store never took.
#[derive(Debug, Clone, Copy)]
pub struct FeedCursor {
    next_record: u64,
    first_failed: Option<u64>,
}

impl FeedCursor {
    pub fn new(next_record: u64) -> Self {
        Self {
            next_record,
            first_failed: None,
        }
    }

    /// Appends one activation's readings of log record `record` (records come in log order;
    /// one record may come in several calls, one per activation) and moves past it; a failure
    /// is returned and remembered. Returns the positions applied.
    pub fn apply(
        &mut self,
        store: &TrailStore,
        record: u64,
        batch: Option<BatchSeq>,
        activation: &str,
        readings: &[Reading],
    ) -> Result<u64, TrailError> {
        self.next_record = self.next_record.max(record + 1);
        store
            .append_from_batch(activation, record, batch, readings)
            .inspect_err(|_| {
                self.first_failed.get_or_insert(record);
            })
    }

    /// Every record before `record` has been seen (the records in between held no readings
    /// for the store).
    pub fn passed(&mut self, record: u64) {
        self.next_record = self.next_record.max(record);
    }

    /// The log record a checkpoint may name: the next one, or the first that failed.
    pub fn checkpoint_record(&self) -> u64 {
        self.first_failed.unwrap_or(self.next_record)
    }

    /// The record the last append was for (for error messages).
    pub fn last_record(&self) -> u64 {
        self.next_record.saturating_sub(1)
    }
}

/// The trail store as a pipeline sink, and after it whatever reads positions back from it (the
/// hit matcher), fed with the dispatcher's outputs.
pub struct TrailFeed {
    trails: TrailStore,
    cursor: FeedCursor,
    downstream: Option<Box<dyn Sink + Send>>,
}

impl TrailFeed {
    /// A feed whose next record is `next_record`; `downstream` (live: the hit matcher) is
    /// handed every output once the store holds its positions.
    pub fn new(
        trails: TrailStore,
        next_record: u64,
        downstream: Option<Box<dyn Sink + Send>>,
    ) -> Self {
        Self {
            trails,
            cursor: FeedCursor::new(next_record),
            downstream,
        }
    }

    /// Checkpoints the store where the feed is (see [`FeedCursor`]).
    pub fn checkpoint(&self) -> Result<u64, TrailError> {
        self.trails.checkpoint(self.cursor.checkpoint_record())
    }

    /// Seals every open chunk at the feed's checkpoint (shutdown).
    pub fn seal(&self) -> Result<u64, TrailError> {
        self.trails.flush(self.cursor.checkpoint_record())
    }

    /// The log record a checkpoint may claim (see [`FeedCursor`]).
    pub fn checkpoint_record(&self) -> u64 {
        self.cursor.checkpoint_record()
    }

    /// After reading the log through record `next_record - 1` (start-up, offline commands):
    /// checkpoints the store there, or at the first record whose append failed.
    pub fn checkpoint_through(&mut self, next_record: u64) -> Result<u64, TrailError> {
        self.cursor.passed(next_record);
        let record = self.cursor.checkpoint_record();
        self.trails.checkpoint(record)?;
        Ok(record)
    }
}

impl Sink for TrailFeed {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        match &output {
            Output::Readings {
                record,
                batch,
                activation,
                readings,
            } => {
                // A failure holds the checkpoint back to this record (see `FeedCursor`), so the
                // next start re-applies it from the log.
                if let Err(e) = self.cursor.apply(
                    &self.trails,
                    *record,
                    *batch,
                    &activation.id,
                    readings.readings(),
                ) {
                    tracing::error!(error = %e, record, "trail store append failed; the checkpoint stays before it");
                }
            }
            Output::Activations { record, .. } => self.cursor.passed(record + 1),
            Output::Alert(_) | Output::SoberDay(_) | Output::Purged { .. } => return,
        }
        // Live crime matching reads the positions back from the store: after the append.
        if let Some(downstream) = &mut self.downstream {
            downstream.emit(output, cause_arrival_ms);
        }
    }

    fn flush(&mut self) {
        if let Some(downstream) = &mut self.downstream {
            downstream.flush();
        }
    }

    fn passed(&mut self, next_record: u64) {
        self.cursor.passed(next_record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource, ReadingBody};
    use crate::store::trails::TrailConfig;

    fn fix(t_ms: i64) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: 514_545_000,
                lon_e7: -25_879_000,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    #[test]
    fn a_failed_append_holds_the_checkpoint_back_and_a_retry_from_there_applies_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).expect("open");
        let mut cursor = FeedCursor::new(10);
        assert!(cursor.apply(&store, 10, None, "A1", &[fix(1_000)]).is_ok());
        assert_eq!(cursor.checkpoint_record(), 11);
        // An append the store refuses (an activation name over its limit) fails: injected.
        let refused = "A".repeat(5_000);
        assert!(cursor
            .apply(&store, 11, None, &refused, &[fix(2_000)])
            .is_err());
        assert!(cursor.apply(&store, 12, None, "A1", &[fix(3_000)]).is_ok());
        assert_eq!(cursor.last_record(), 12);
        assert_eq!(
            cursor.checkpoint_record(),
            11,
            "the checkpoint never claims the record the store did not take"
        );
        // A restart re-applies from the checkpoint: records already taken are skipped.
        let mut again = FeedCursor::new(cursor.checkpoint_record());
        assert!(again
            .apply(&store, 11, None, &refused, &[fix(2_000)])
            .is_err());
        assert_eq!(
            again
                .apply(&store, 12, None, "A1", &[fix(3_000)])
                .expect("idempotent"),
            0
        );
        assert_eq!(store.positions("A1", 0, i64::MAX).expect("read").len(), 2);
    }
}
