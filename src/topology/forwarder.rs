//! The forwarder: the task that takes each group the committer made durable, in log order, and
//! hands it on: control records to the control applier (metadata view, decisions, directory)
//! and the hit service, batches to the TAC index, the whole group to the trail feed and then to
//! the pipeline. It also counts what was committed, for `/metrics` and the ingest watchdog.

use crate::crime::service::HitService;
use crate::metrics::silence_watch::SystemHealth;
use crate::model::LogEntry;
use crate::pipeline::SharedDirectory;
use crate::store::tac_book::TacBook;
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
    pub tac: Arc<TacBook>,
    pub directory: SharedDirectory,
    pub applier: ControlApplier,
    pub hits: HitService,
    pub trail_feed: std::sync::mpsc::SyncSender<Vec<LogEntry>>,
    pub pipeline_input: mpsc::Sender<Vec<LogEntry>>,
}

impl Forwarder {
    /// Runs until the committer's channel closes or the pipeline is gone.
    pub fn spawn(self, mut committed_rx: mpsc::Receiver<Vec<LogEntry>>, now_ms: fn() -> i64) {
        let Forwarder {
            counters,
            system,
            tac,
            directory,
            mut applier,
            hits,
            trail_feed,
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
                for entry in &group {
                    match entry {
                        LogEntry::Batch(batch) => {
                            applier.publish_directory();
                            tac.apply(&directory.load(), batch)
                        }
                        LogEntry::Control { record, control } => {
                            let applied =
                                tokio::task::block_in_place(|| applier.apply(*record, control));
                            hits.control(*record, &control.change, applied);
                        }
                    }
                }
                applier.publish_directory();
                // Bounded: a trail store that falls behind slows ingest instead of growing memory.
                match trail_feed.try_send(group.clone()) {
                    Ok(()) | Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {}
                    Err(std::sync::mpsc::TrySendError::Full(group)) => {
                        let _ = tokio::task::block_in_place(|| trail_feed.send(group));
                    }
                }
                if pipeline_input.send(group).await.is_err() {
                    break;
                }
            }
        });
    }
}
