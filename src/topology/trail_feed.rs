//! The trail feed: the thread that appends each committed group's positions to the trail store
//! in log order, checkpoints it, and then hands the appended positions to live crime matching.

use crate::crime::service::HitService;
use crate::model::LogEntry;
use crate::pipeline::SharedDirectory;
use crate::store::trails::{group_positions, FeedCursor, TrailStore};

/// Committed groups the trail feed may have waiting: seconds of load at 0.5 M readings/s, so a
/// checkpoint's `fsync` does not reach back into the pipeline, yet memory stays bounded.
pub const TRAIL_FEED_GROUPS: usize = 4096;

/// Starts the trail feed: a thread that appends every committed batch's positions to the trail
/// store in log order and checkpoints it every few seconds (so a restart replays only a little
/// log). Its queue is bounded ([`TRAIL_FEED_GROUPS`]): when the store falls behind for longer
/// than a checkpoint takes, the forwarder waits, which holds the committer and so slows ingest.
pub fn spawn_trail_feed(
    trails: TrailStore,
    directory: SharedDirectory,
    next_record: u64,
    hits: HitService,
) -> std::sync::mpsc::SyncSender<Vec<LogEntry>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<LogEntry>>(TRAIL_FEED_GROUPS);
    let spawned = std::thread::Builder::new()
        .name("trail-feed".into())
        .spawn(move || {
            let mut last_checkpoint = std::time::Instant::now();
            let mut cursor = FeedCursor::new(next_record);
            loop {
                match rx.recv_timeout(std::time::Duration::from_secs(2)) {
                    Ok(group) => {
                        let mut appended = Vec::new();
                        let directory = directory.load();
                        for entry in &group {
                            // A control record holds no positions; it still takes a record number.
                            let groups = match entry {
                                LogEntry::Batch(batch) => group_positions(&directory, batch),
                                LogEntry::Control { .. } => Vec::new(),
                            };
                            // A failure holds the checkpoint back to this record (see
                            // `FeedCursor`), so the next start re-applies it from the log.
                            if let Err(e) = cursor.apply(&trails, &groups) {
                                tracing::error!(error = %e, record = cursor.last_record(),
                                "trail store append failed; the checkpoint stays before it");
                            }
                            appended.extend(groups);
                        }
                        // Live crime matching reads the positions back from the store: after the append.
                        hits.positions(appended);
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if last_checkpoint.elapsed() >= std::time::Duration::from_secs(2) {
                    if let Err(e) = trails.checkpoint(cursor.checkpoint_record()) {
                        tracing::error!(error = %e, "trail store checkpoint failed");
                    }
                    last_checkpoint = std::time::Instant::now();
                }
            }
            if let Err(e) = trails.flush(cursor.checkpoint_record()) {
                tracing::error!(error = %e, "trail store flush at shutdown failed");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the trail feed");
    }
    tx
}
