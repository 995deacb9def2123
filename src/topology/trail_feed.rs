//! The live trail feed: the thread that runs the trail store's [`TrailFeed`] sink (the
//! positions the dispatcher filed under each activation appended in log order, then handed,
//! with each change to a person's activations, to live crime matching) and checkpoints the
//! store every few seconds; the dispatcher's task reaches it through a bounded queue
//! ([`TrailFeedSender`]).

use crate::model::{ReadingBody, TimeMs};
use crate::pipeline::{Output, Sink};
use crate::store::trails::TrailFeed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Committed groups the trail feed may have waiting: seconds of load at 0.5 M readings/s, so a
/// checkpoint's `fsync` does not reach back into the pipeline, yet memory stays bounded.
pub const TRAIL_FEED_GROUPS: usize = 4096;

/// How often the live feed checkpoints the store (so a restart re-appends only a little).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// The dispatcher's side of the trail feed: gathers one committed group's outputs for the
/// trail store and sends them together. The queue is bounded ([`TRAIL_FEED_GROUPS`]): when the
/// store falls behind for longer than a checkpoint takes, the dispatcher waits, which holds
/// the pipeline and so, through the committer, slows ingest instead of growing memory.
pub struct TrailFeedSender {
    tx: SyncSender<FeedGroup>,
    pending: Vec<Output>,
    /// Every record before this one dispatched ([`Sink::passed`]), and the last such mark sent.
    passed: u64,
    sent_passed: u64,
}

/// One committed group's outputs for the trail store, and the record the log was dispatched
/// up to (so the store's checkpoint passes records that held no position).
struct FeedGroup {
    outputs: Vec<Output>,
    next_record: u64,
}

impl Sink for TrailFeedSender {
    fn emit(&mut self, output: Output, _cause_arrival_ms: Option<TimeMs>) {
        let wanted = match &output {
            Output::Readings { readings, .. } => readings
                .readings()
                .iter()
                .any(|r| matches!(r.body, ReadingBody::Position(_))),
            Output::Activations { .. } => true,
            Output::Alert(_) | Output::SoberDay(_) | Output::Purged { .. } => false,
        };
        if wanted {
            self.pending.push(output);
        }
    }

    fn passed(&mut self, next_record: u64) {
        self.passed = self.passed.max(next_record);
    }

    fn flush(&mut self) {
        if self.pending.is_empty() && self.passed == self.sent_passed {
            return;
        }
        self.sent_passed = self.passed;
        let group = FeedGroup {
            outputs: std::mem::take(&mut self.pending),
            next_record: self.passed,
        };
        match self.tx.try_send(group) {
            // Disconnected: the feed stopped (shutdown, or it failed and said so).
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(group)) => {
                let _ = tokio::task::block_in_place(|| self.tx.send(group));
            }
        }
    }
}

/// Starts the trail feed's thread. It runs until every sender is gone, then seals the store
/// with the checkpoint it reached; the handle says when that is done.
pub fn spawn_trail_feed(
    mut feed: TrailFeed,
) -> std::io::Result<(TrailFeedSender, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<FeedGroup>(TRAIL_FEED_GROUPS);
    let thread = std::thread::Builder::new()
        .name("trail-feed".into())
        .spawn(move || run(&mut feed, rx))?;
    Ok((
        TrailFeedSender {
            tx,
            pending: Vec::new(),
            passed: 0,
            sent_passed: 0,
        },
        thread,
    ))
}

fn run(feed: &mut TrailFeed, rx: Receiver<FeedGroup>) {
    let mut last_checkpoint = Instant::now();
    loop {
        match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok(group) => {
                for output in group.outputs {
                    feed.emit(output, None);
                }
                feed.passed(group.next_record);
                feed.flush();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if let Err(e) = feed.checkpoint() {
                tracing::error!(error = %e, "trail store checkpoint failed");
            }
            last_checkpoint = Instant::now();
        }
    }
    if let Err(e) = feed.seal() {
        tracing::error!(error = %e, "trail store flush at shutdown failed");
    }
}
