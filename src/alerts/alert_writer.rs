//! Persist-behind for live alert changes: one thread stores, in event-number order, the alert
//! changes the live book has already published, many per SQLite transaction, and reports how far
//! it has got (`persisted_through`). Storing is off the ingest→alert path, and batching cuts the
//! store's disk writes (a transaction per change rewrote ~20 KiB of pages, whose writeback then
//! stalled the log's `fdatasync`).
//!
//! Nothing is lost by writing behind: an alert is a function of durable readings, and a change
//! not yet stored when the process dies is re-derived from the log at the next start (which
//! publishes it again under a new number, above every number handed out before). Readers that
//! must see everything published so far (the API, SSE catch-up, retention) wait for
//! `persisted_through` first. The thread also checkpoints the WAL between its commits.

use super::alert_store::{AlertStore, PendingEvent};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Published changes waiting to be stored before the publisher waits (backpressure).
const QUEUE_BATCHES: usize = 4096;
/// After the first queued change, gather more for this long into the same transaction.
const GATHER: Duration = Duration::from_millis(5);
/// At most this many changes per transaction.
const MAX_PER_COMMIT: usize = 4096;
/// Checkpoint the WAL at most this often (only after writes).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Handle to the writer thread.
pub struct AlertWriter {
    queue: SyncSender<Vec<PendingEvent>>,
    persisted_tx: Arc<watch::Sender<i64>>,
    persisted: watch::Receiver<i64>,
}

impl AlertWriter {
    /// Starts the writer; `persisted_through` is the highest event number already stored.
    pub fn spawn(store: AlertStore, persisted_through: i64) -> std::io::Result<Self> {
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE_BATCHES);
        let (persisted_tx, persisted) = watch::channel(persisted_through);
        let persisted_tx = Arc::new(persisted_tx);
        let thread_tx = persisted_tx.clone();
        std::thread::Builder::new()
            .name("alert-writer".into())
            .spawn(move || write_behind(store, rx, &thread_tx))?;
        Ok(Self {
            queue,
            persisted_tx,
            persisted,
        })
    }

    /// Queues published changes (in event-number order); waits only when the queue is full.
    pub fn send(&self, pending: Vec<PendingEvent>) {
        if pending.is_empty() {
            return;
        }
        if self.queue.send(pending).is_err() {
            tracing::error!("alert writer stopped; changes are re-derived at the next start");
        }
    }

    /// Records that every number up to `seq` is stored or will never be: for a number the
    /// caller stored itself (a review) or used for nothing, with nothing queued before it.
    pub fn mark_persisted(&self, seq: i64) {
        advance(&self.persisted_tx, seq);
    }

    /// The highest event number stored so far.
    pub fn persisted_through(&self) -> i64 {
        *self.persisted.borrow()
    }

    /// Waits (async) until every event up to `seq` is stored.
    pub async fn wait_persisted(&self, seq: i64) {
        let mut rx = self.persisted.clone();
        let _ = rx.wait_for(|stored| *stored >= seq).await;
    }

    /// Waits (blocking the calling thread) until every event up to `seq` is stored.
    pub fn wait_persisted_blocking(&self, seq: i64) {
        let mut rx = self.persisted.clone();
        while *rx.borrow_and_update() < seq {
            if futures::executor::block_on(rx.changed()).is_err() {
                return;
            }
        }
    }
}

fn advance(persisted: &watch::Sender<i64>, through: i64) {
    persisted.send_if_modified(|stored| {
        let moved = through > *stored;
        *stored = (*stored).max(through);
        moved
    });
}

fn write_behind(
    store: AlertStore,
    rx: Receiver<Vec<PendingEvent>>,
    persisted: &watch::Sender<i64>,
) {
    let mut last_checkpoint = Instant::now();
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    checkpoint(&store);
                    dirty = false;
                    last_checkpoint = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = first;
        let gather_until = Instant::now() + GATHER;
        while batch.len() < MAX_PER_COMMIT {
            let left = gather_until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let through = batch.last().map(|p| p.event.seq).unwrap_or(0);
        // A failed commit (disk full, I/O error) is retried: the changes are already published
        // and the API waits for them. Backing off keeps the log's disk share.
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = store.persist(&batch) {
            tracing::error!(error = %e, events = batch.len(), "storing alert changes failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        advance(persisted, through);
        dirty = true;
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&store);
            dirty = false;
            last_checkpoint = Instant::now();
        }
    }
    if dirty {
        checkpoint(&store);
    }
}

fn checkpoint(store: &AlertStore) {
    if let Err(e) = store.checkpoint() {
        tracing::warn!(error = %e, "alert store WAL checkpoint failed");
    }
}
