//! Feeding the trail store from the durable log: each log record's readings resolved to their
//! activations (the same resolution the dispatcher makes), and catching up on open by
//! replaying only the log records from the store's checkpoint on.

use super::error::TrailError;
use super::store::TrailStore;
use crate::log::{LogError, LogReader};
use crate::model::{Batch, Reading, ReadingBody};
use crate::pipeline::ActivationDirectory;
use std::path::Path;
use thiserror::Error;

/// The position readings of one log record grouped by the activation covering each reading's
/// event time (readings of no activation are dropped, as the dispatcher drops them).
pub fn group_positions(
    directory: &ActivationDirectory,
    batch: &Batch,
) -> Vec<(String, Vec<Reading>)> {
    let mut groups: Vec<(String, Vec<Reading>)> = Vec::new();
    for r in &batch.readings {
        if !matches!(r.body, ReadingBody::Position(_)) {
            continue;
        }
        let Some(a) = directory.resolve(&batch.tag, r.t_ms) else {
            continue;
        };
        match groups.iter_mut().find(|(id, _)| *id == a.id) {
            Some((_, list)) => list.push(*r),
            None => groups.push((a.id.clone(), vec![*r])),
        }
    }
    groups
}

/// Appends grouped positions of log record `log_record`; returns the positions applied.
pub fn apply_groups(
    store: &TrailStore,
    log_record: u64,
    groups: &[(String, Vec<Reading>)],
) -> Result<u64, TrailError> {
    let mut applied = 0;
    for (activation, readings) in groups {
        applied += store.append(activation, log_record, readings)?;
    }
    Ok(applied)
}

/// The live trail feed's place in the log: the next record to apply, and the record a
/// checkpoint may claim. A record whose append failed holds every later checkpoint back to it,
/// so a restart re-applies from there (appends are idempotent) instead of the checkpoint
/// claiming a record the store never took.
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

    /// Applies the next log record's groups (see [`group_positions`]) and moves on; a failure is
    /// returned and remembered.
    pub fn apply(
        &mut self,
        store: &TrailStore,
        groups: &[(String, Vec<Reading>)],
    ) -> Result<u64, TrailError> {
        let record = self.next_record;
        self.next_record += 1;
        apply_groups(store, record, groups).inspect_err(|_| {
            self.first_failed.get_or_insert(record);
        })
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

/// Applies one log record to the store (see [`group_positions`]). Returns the positions applied.
pub fn apply_batch(
    store: &TrailStore,
    directory: &ActivationDirectory,
    log_record: u64,
    batch: &Batch,
) -> Result<u64, TrailError> {
    apply_groups(store, log_record, &group_positions(directory, batch))
}

/// Why catching up failed.
#[derive(Debug, Error)]
pub enum FeedError {
    #[error("reading the log: {0}")]
    Log(#[from] LogError),
    #[error("trail store: {0}")]
    Trail(#[from] TrailError),
}

/// Replays log records from `from_record` on into the store (segments wholly before it are
/// not read), then checkpoints. Returns the next log record number.
pub fn catch_up(
    store: &TrailStore,
    directory: &ActivationDirectory,
    log_dir: &Path,
    from_record: u64,
) -> Result<u64, FeedError> {
    let mut reader = LogReader::open_from(log_dir, from_record)?;
    let mut next = reader.next_record().max(from_record);
    for item in reader.by_ref() {
        let (record, entry) = item?;
        if record < from_record {
            continue;
        }
        if let crate::model::LogEntry::Batch(batch) = &entry {
            apply_batch(store, directory, record, batch)?;
        }
        next = record + 1;
    }
    store.checkpoint(next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource};
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
        let good = |t_ms| vec![("A1".to_string(), vec![fix(t_ms)])];
        assert!(cursor.apply(&store, &good(1_000)).is_ok());
        assert_eq!(cursor.checkpoint_record(), 11);
        // An append the store refuses (an activation name over its limit) fails: injected.
        let refused = vec![("A".repeat(5_000), vec![fix(2_000)])];
        assert!(cursor.apply(&store, &refused).is_err());
        assert!(cursor.apply(&store, &good(3_000)).is_ok());
        assert_eq!(cursor.last_record(), 12);
        assert_eq!(
            cursor.checkpoint_record(),
            11,
            "the checkpoint never claims the record the store did not take"
        );
        // A restart re-applies from the checkpoint: records already taken are skipped.
        let mut again = FeedCursor::new(cursor.checkpoint_record());
        assert!(again.apply(&store, &refused).is_err());
        assert_eq!(again.apply(&store, &good(3_000)).expect("idempotent"), 0);
        assert_eq!(store.positions("A1", 0, i64::MAX).expect("read").len(), 2);
    }
}
