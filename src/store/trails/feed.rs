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
        let (record, batch) = item?;
        if record < from_record {
            continue;
        }
        apply_batch(store, directory, record, &batch)?;
        next = record + 1;
    }
    store.checkpoint(next)?;
    Ok(next)
}
