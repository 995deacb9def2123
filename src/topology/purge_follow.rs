//! Cluster mode: a purge record reaches every node through the stream, and each node purges its
//! own stores when it applies one. The node that ran the purge compacted the stream and purged
//! its stores before appending the record; the others learn of it only from the record.
//! [`PurgeRecords`] is where the view (and the start-up pass) hands each applied purge record
//! to whoever purges this node's stores ([`PurgeFollower`], the retention job, plugged in by the
//! server once it exists: topology does not import retention). Records applied before then wait;
//! a record whose purge failed is tried again at the next record and at [`PurgeRecords::retry`],
//! never dropped.

use crate::model::ControlRecord;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Purge records this process applied and has not yet followed, and failed attempts (for
/// `/metrics`).
static WAITING: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// Writes the purge-following gauge and counter.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    e.gauge(
        "tagstream_purge_records_waiting",
        "Purge records this node applied whose purge of its own stores has not succeeded yet.",
        WAITING.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "tagstream_purge_record_failures_total",
        "Attempts to purge this node's stores for a purge record that failed (tried again).",
        FAILURES.load(Ordering::Relaxed),
    );
}

/// Purges this node's stores of what a purge record names (idempotent: what is not held is
/// skipped). The error says what failed.
pub trait PurgeFollower: Send + Sync {
    fn follow(&self, record: u64, control: &ControlRecord) -> Result<(), String>;
}

/// Applied purge records on their way to the [`PurgeFollower`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct PurgeRecords(Arc<Inner>);

#[derive(Default)]
struct Inner {
    follower: OnceLock<Arc<dyn PurgeFollower>>,
    /// Records not yet followed (no follower yet, or its purge failed), in log order.
    waiting: Mutex<Vec<(u64, Arc<ControlRecord>)>>,
}

impl PurgeRecords {
    /// Record `record`, a purge, was applied: purge this node's stores now (or once a follower
    /// is plugged in).
    pub fn applied(&self, record: u64, control: Arc<ControlRecord>) {
        self.lock().push((record, control));
        self.retry();
    }

    /// Plugs in the follower and follows every record that waited for it.
    pub fn follow_with(&self, follower: Arc<dyn PurgeFollower>) {
        // Under the lock, so a record applied meanwhile is either waiting or sees the follower.
        {
            let _waiting = self.lock();
            let _ = self.0.follower.set(follower);
        }
        self.retry();
    }

    /// Follows the records waiting, in order; stops at the first that fails (it stays, with
    /// every one after it).
    pub fn retry(&self) {
        let Some(follower) = self.0.follower.get() else {
            return;
        };
        let mut waiting = self.lock();
        while let Some((record, control)) = waiting.first().cloned() {
            if let Err(e) = follower.follow(record, &control) {
                tracing::error!(record, error = %e, "purging this node's stores for a purge record failed; tried again later");
                FAILURES.fetch_add(1, Ordering::Relaxed);
                WAITING.store(waiting.len() as u64, Ordering::Relaxed);
                return;
            }
            waiting.remove(0);
        }
        WAITING.store(0, Ordering::Relaxed);
    }

    /// Purge records not yet followed.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<ControlRecord>)>> {
        self.0.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
