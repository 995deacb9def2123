//! The forwarder: the task that takes each group the committer made durable, in log order, and
//! hands it on: control records to the control applier (metadata view, decisions, the API's
//! activation directory), then the whole group to the pipeline, whose dispatcher resolves it
//! for the rules and the stores. It also counts what was committed, for `/metrics` and the
//! ingest watchdog.

use crate::metrics::silence_watch::SystemHealth;
use crate::model::LogEntry;
use crate::topology::control_view::ControlApplier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Counters the API reports: what the log committed (seeded with what start-up replayed) and
/// the damage its recovery found.
#[derive(Default)]
pub struct Counters {
    pub committed_batches: AtomicU64,
    pub committed_readings: AtomicU64,
    /// Damaged log ranges found at start-up (quarantined, skipped) and the records lost in them.
    pub log_damaged_ranges: AtomicU64,
    pub log_records_lost: AtomicU64,
}

/// Where the forwarder hands each committed group.
pub struct Forwarder {
    pub counters: Arc<Counters>,
    pub system: Arc<SystemHealth>,
    pub applier: ControlApplier,
    pub pipeline_input: mpsc::Sender<Vec<LogEntry>>,
}

impl Forwarder {
    /// Runs until the committer's channel closes or the pipeline is gone.
    pub fn spawn(self, mut committed_rx: mpsc::Receiver<Vec<LogEntry>>, now_ms: fn() -> i64) {
        let Forwarder {
            counters,
            system,
            mut applier,
            pipeline_input,
        } = self;
        tokio::spawn(async move {
            while let Some(group) = committed_rx.recv().await {
                let batches = group.iter().filter_map(LogEntry::batch);
                let (count, readings) = batches.fold((0u64, 0u64), |(n, r), b| {
                    (n + 1, r + b.readings.len() as u64)
                });
                if count > 0 {
                    system.batches_committed(now_ms());
                }
                counters
                    .committed_batches
                    .fetch_add(count, Ordering::Relaxed);
                counters
                    .committed_readings
                    .fetch_add(readings, Ordering::Relaxed);
                let controls = group.iter().filter_map(|entry| match entry {
                    LogEntry::Control { record, control } => Some((*record, control)),
                    LogEntry::Batch(_) => None,
                });
                let mut any = false;
                for (record, control) in controls {
                    any = true;
                    tokio::task::block_in_place(|| applier.apply(record, control));
                }
                if any {
                    applier.publish_directory();
                }
                if pipeline_input.send(group).await.is_err() {
                    break;
                }
            }
        });
    }
}
