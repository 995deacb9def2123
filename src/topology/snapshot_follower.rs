//! Cluster mode: snapshots of a live cluster (issue 15, item 2). The node holding the
//! `snapshots` lease (`cluster::lease`) follows the stream into a scratch data directory of its
//! own, `DATA/snapshot-follower/` (owner-only, locked like any data directory), and every
//! `[snapshots] live_interval_s` (or once the stream has grown by `live_records`) brings it up
//! to the stream's end and uploads it to the snapshot bucket, so the bucket's newest snapshot
//! does not wait for a node to restart.
//!
//! A round is exactly a node's start-up over that directory, stopped before anything goes live
//! ([`Mode::Snapshot`]): the scratch checkpoint restored, the stream read inline from it to its
//! end through the same topology code, every store brought past it, the checkpoint written and
//! packed by `snapshot_join::pack`, then uploaded by `snapshot_join::upload` (the package
//! format and the join path are the start-up's). Its first round (and the first after a purge)
//! reads the whole stream. It runs on its own thread and runtime and never opens the node's
//! stores; whatever happens to it, the node serves on. Errors are logged and counted
//! (`tagstream_live_snapshots_total{outcome="failed"}`), never taken for an upload.
//!
//! Purges. The scratch state is a copy of every activation's data, so it is a purge target
//! ([`LiveSnapshots::purge_target`], registered before the bucket's): a purge run here, or a
//! purge record followed here, moves the purge generation and removes the directory (or, a
//! round running, leaves that to the round). A round that sees the generation move, or a purge
//! record after the checkpoint it started from, drops its state and reads the stream again from
//! its first record (the stream is compacted by then). A snapshot it uploaded is deleted again
//! when, after the upload, the generation has moved or the stream holds a purge record at or
//! after its record: a purge that began after that check deletes the bucket's snapshots itself
//! after it (the same order the start-up upload relies on).

use super::assembly::{Mode, Packed, Start, Topology};
use super::purge_follow::PurgeFollower;
use crate::cluster::jetstream::JetStreamLog;
use crate::cluster::snapshot_store::SnapshotStore;
use crate::config::ServerConfig;
use crate::model::{Change, LogEntry};
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The follower's data directory, inside the node's.
pub const SCRATCH_DIR: &str = "snapshot-follower";
/// How often the follower looks at the stream's end (and at its lease) between rounds.
const POLL: Duration = Duration::from_secs(5);
/// A round that failed is tried again after this long at the latest.
const RETRY: Duration = Duration::from_secs(60);
/// Longest wait for an upload or a bucket request.
const BUCKET_TIMEOUT: Duration = Duration::from_secs(120);

/// Rounds by outcome, for `/metrics`.
static UPLOADED: AtomicU64 = AtomicU64::new(0);
static UNCHANGED: AtomicU64 = AtomicU64::new(0);
static DISCARDED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
/// The record of the newest snapshot this node uploaded (`u64::MAX`: none).
static NEWEST: AtomicU64 = AtomicU64::new(u64::MAX);
/// The last round that read something: how long it took and how many records it read.
static ROUND_MS: AtomicU64 = AtomicU64::new(0);
static ROUND_RECORDS: AtomicU64 = AtomicU64::new(0);

/// Writes the live snapshot counters and gauges.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    e.labeled_counter(
        "tagstream_live_snapshots_total",
        "Live snapshot rounds on this node (holder of the snapshots lease), by outcome: uploaded, \
         unchanged (the bucket held one as new), discarded (a purge made it void), failed.",
        "outcome",
        &[
            ("uploaded", load(&UPLOADED)),
            ("unchanged", load(&UNCHANGED)),
            ("discarded", load(&DISCARDED)),
            ("failed", load(&FAILED)),
        ],
    );
    let newest = load(&NEWEST);
    e.gauge(
        "tagstream_live_snapshot_record",
        "Log record of the newest live snapshot this node uploaded (-1: none).",
        if newest == u64::MAX {
            -1.0
        } else {
            newest as f64
        },
    );
    e.gauge(
        "tagstream_live_snapshot_round_seconds",
        "How long the last live snapshot round that read the stream took (read, pack, upload).",
        load(&ROUND_MS) as f64 / 1000.0,
    );
    e.gauge(
        "tagstream_live_snapshot_round_records",
        "Log records the last live snapshot round read.",
        load(&ROUND_RECORDS) as f64,
    );
}

/// What a purge and the follower share.
struct Shared {
    scratch: PathBuf,
    /// Moved by every purge this node runs or follows.
    generation: AtomicU64,
    /// A purge found the directory in use or could not remove it: the next round removes it
    /// before anything else.
    owed: AtomicBool,
    /// Held by a round (a purge removes the directory itself only when none runs).
    round: tokio::sync::Mutex<()>,
}

impl Shared {
    /// A purge: the scratch state holds what it removes.
    fn purged(&self) -> Result<u64, crate::store::TargetError> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.owed.store(true, Ordering::SeqCst);
        match self.round.try_lock() {
            Ok(_round) => {
                let removed = remove_dir(&self.scratch)?;
                self.owed.store(false, Ordering::SeqCst);
                Ok(u64::from(removed))
            }
            // The round sees the generation moved and drops its state itself.
            Err(_) => Ok(0),
        }
    }
}

/// Removes `dir` and everything in it; whether it was there.
fn remove_dir(dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The purge target standing for the follower's scratch state.
struct FollowerPurge(Arc<Shared>);

impl crate::store::PurgeTarget for FollowerPurge {
    fn name(&self) -> &'static str {
        "snapshot_follower"
    }

    fn purge_activation(&self, _activation: &str) -> Result<u64, crate::store::TargetError> {
        self.0.purged()
    }

    fn discard_copies(&self) -> Result<u64, crate::store::TargetError> {
        self.0.purged()
    }
}

/// The scratch directory's stores, for its purge follower.
pub struct ScratchStores {
    pub data_dir: PathBuf,
    pub metadata: crate::store::metadata::Metadata,
    pub alert_store: crate::alerts::alert_store::AlertStore,
    pub trails: crate::store::trails::TrailStore,
    pub crimes: crate::store::crime_store::CrimeStore,
}

/// Builds what follows purge records in the scratch stores (the retention job over them: the
/// server plugs it in, topology does not import retention).
pub trait ScratchPurges: Send + Sync {
    fn follower(&self, stores: ScratchStores) -> Result<Arc<dyn PurgeFollower>>;
}

/// The live snapshot producer of a cluster node (rounds run only while it holds the lease).
pub struct LiveSnapshots {
    shared: Arc<Shared>,
    /// The node's configuration over the scratch directory.
    config: ServerConfig,
    stream: crate::cluster::jetstream::JetStreamConfig,
    interval: Duration,
    records: u64,
    /// Whether this node holds the `snapshots` lease, and the node's stop.
    lease: Option<(watch::Receiver<bool>, CancellationToken)>,
}

/// How a round ended.
enum Outcome {
    Uploaded(u64),
    /// Nothing new to upload (the stream did not grow, or the bucket holds one as new).
    Unchanged,
    /// A purge made the state void: it is gone; the next round reads the whole stream.
    Discarded(&'static str),
    /// The lease was lost during the round: nothing uploaded.
    LeaseLost,
}

impl LiveSnapshots {
    /// The follower of a cluster node (`None` outside a cluster).
    pub fn new(config: &ServerConfig) -> Option<Self> {
        let stream = config.jetstream()?.clone();
        let scratch = config.data_dir.join(SCRATCH_DIR);
        let mut scratch_config = config.clone();
        scratch_config.data_dir = scratch.clone();
        // The start-up import and webhook delivery are the node's, not the follower's; and a
        // snapshot is the whole pipeline's state, whatever partitions the node owns.
        scratch_config.orders = None;
        scratch_config.webhooks = Vec::new();
        if let Some(stream) = scratch_config.log.jetstream.as_mut() {
            stream.own_partitions = None;
        }
        Some(Self {
            shared: Arc::new(Shared {
                scratch,
                generation: AtomicU64::new(0),
                owed: AtomicBool::new(false),
                round: tokio::sync::Mutex::new(()),
            }),
            config: scratch_config,
            interval: Duration::from_secs(config.snapshots.live_interval_s),
            records: config.snapshots.live_records,
            stream,
            lease: None,
        })
    }

    /// What a purge must call: it drops the scratch state.
    pub fn purge_target(&self) -> Arc<dyn crate::store::PurgeTarget> {
        Arc::new(FollowerPurge(self.shared.clone()))
    }

    /// Rounds run while `held` says this node holds the `snapshots` lease, until `release`
    /// (the node stops).
    pub fn competing(mut self, held: watch::Receiver<bool>, release: CancellationToken) -> Self {
        self.lease = Some((held, release));
        self
    }

    /// Starts the follower on its own thread (with its own runtime); `purges` follows purge
    /// records in its stores.
    pub fn spawn(self, purges: Arc<dyn ScratchPurges>) -> Result<()> {
        let Some((held, release)) = self.lease.clone() else {
            bail!("the live snapshot follower competes for no lease");
        };
        std::thread::Builder::new()
            .name("snapshot-follower".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("snapshot-follower-rt")
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(
                        self.follow(held, release, purges)
                            .instrument(tracing::info_span!("snapshot_follower")),
                    ),
                    Err(e) => {
                        FAILED.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "live snapshots off: cannot start the follower's runtime");
                    }
                }
            })
            .map(drop)
            .context("starting the live snapshot follower's thread")
    }

    async fn follow(
        self,
        mut held: watch::Receiver<bool>,
        release: CancellationToken,
        purges: Arc<dyn ScratchPurges>,
    ) {
        let mut stream: Option<JetStreamLog> = None;
        // The stream's end the scratch state was last brought to, and when the next round is due.
        let mut done_to = 0u64;
        let mut due_at = Instant::now();
        // A snapshot uploaded that a purge made void, when deleting it failed.
        let mut to_delete: Option<u64> = None;
        let mut holding = false;
        // Just taken: the first round is an interval away (a node's start-up may have just
        // uploaded one, and a round may read the whole stream), counting from the bucket's
        // newest snapshot.
        let mut taken = false;
        loop {
            if !*held.borrow() {
                if holding {
                    tracing::info!(
                        "snapshots lease lost: no live snapshots here until it is held again"
                    );
                    holding = false;
                }
                tokio::select! {
                    _ = release.cancelled() => return,
                    changed = held.wait_for(|held| *held) => if changed.is_err() { return },
                }
                continue;
            }
            if release.is_cancelled() {
                return;
            }
            if !holding {
                tracing::info!(
                    interval_s = self.interval.as_secs(),
                    "snapshots lease held: taking live snapshots"
                );
                holding = true;
                taken = true;
            }
            let log = match &stream {
                Some(log) => log,
                None => match JetStreamLog::open(self.stream.clone()).await {
                    Ok(log) => stream.insert(log),
                    Err(e) => {
                        FAILED.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "live snapshot: cannot open the stream");
                        self.pause(&release, &mut held, RETRY).await;
                        continue;
                    }
                },
            };
            if let Some(record) = to_delete {
                match delete(log, record).await {
                    Ok(()) => to_delete = None,
                    Err(e) => {
                        tracing::error!(record, error = %e, "live snapshot: cannot delete a snapshot a purge made void; tried again")
                    }
                }
            }
            let end = match log.next_record().await {
                Ok(end) => end,
                Err(e) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "live snapshot: cannot read the stream's end");
                    stream = None;
                    self.pause(&release, &mut held, RETRY).await;
                    continue;
                }
            };
            if taken {
                taken = false;
                done_to = newest(log).await.unwrap_or(0);
                due_at = Instant::now() + self.interval;
            }
            let grown = end.saturating_sub(done_to);
            let due = grown > 0
                && (Instant::now() >= due_at || (self.records > 0 && grown >= self.records));
            if !due {
                self.pause(&release, &mut held, POLL.min(self.interval))
                    .await;
                continue;
            }
            let started = Instant::now();
            let outcome = self.round(log, &held, &purges).await;
            match outcome {
                Ok((outcome, read_to, read)) => {
                    ROUND_MS.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    ROUND_RECORDS.store(read, Ordering::Relaxed);
                    match outcome {
                        Outcome::Uploaded(record) => {
                            UPLOADED.fetch_add(1, Ordering::Relaxed);
                            NEWEST.store(record, Ordering::Relaxed);
                            done_to = read_to;
                            due_at = Instant::now() + self.interval;
                            tracing::info!(
                                record,
                                read,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "live snapshot uploaded to the cluster"
                            );
                        }
                        Outcome::Unchanged => {
                            UNCHANGED.fetch_add(1, Ordering::Relaxed);
                            done_to = read_to;
                            due_at = Instant::now() + self.interval;
                            tracing::debug!(
                                record = read_to,
                                "live snapshot: the cluster holds one as new"
                            );
                        }
                        Outcome::Discarded(why) => {
                            // Again at once, from the stream's first record.
                            DISCARDED.fetch_add(1, Ordering::Relaxed);
                            done_to = 0;
                            due_at = Instant::now();
                            tracing::info!(
                                why,
                                "live snapshot state dropped for a purge; reading the stream again"
                            );
                        }
                        Outcome::LeaseLost => {
                            done_to = read_to;
                            tracing::info!("live snapshot not uploaded: the snapshots lease was lost meanwhile");
                        }
                    }
                }
                Err(e) => {
                    FAILED.fetch_add(1, Ordering::Relaxed);
                    due_at = Instant::now() + RETRY.min(self.interval);
                    tracing::error!(
                        error = format!("{e:#}"),
                        "live snapshot round failed; the node serves on"
                    );
                    if let Some(VoidUpload(record)) = e.downcast_ref::<VoidUpload>() {
                        to_delete = Some(*record);
                    }
                }
            }
        }
    }

    /// Sleeps `wait`, or less when the node stops or the lease changes hands.
    async fn pause(
        &self,
        release: &CancellationToken,
        held: &mut watch::Receiver<bool>,
        wait: Duration,
    ) {
        tokio::select! {
            _ = release.cancelled() => {}
            _ = held.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    /// One round: the scratch directory brought to the stream's end, packed, uploaded.
    /// Returns the outcome, the stream's end it read to, and how many records it read.
    async fn round(
        &self,
        log: &JetStreamLog,
        held: &watch::Receiver<bool>,
        purges: &Arc<dyn ScratchPurges>,
    ) -> Result<(Outcome, u64, u64)> {
        let _round = self.shared.round.lock().await;
        let generation = self.shared.generation.load(Ordering::SeqCst);
        let purged_since = || self.shared.generation.load(Ordering::SeqCst) != generation;
        let drop_state = || -> Result<()> {
            self.shared.owed.store(true, Ordering::SeqCst);
            remove_dir(&self.shared.scratch).with_context(|| {
                format!("removing {} after a purge", self.shared.scratch.display())
            })?;
            self.shared.owed.store(false, Ordering::SeqCst);
            Ok(())
        };
        if self.shared.owed.load(Ordering::SeqCst) {
            drop_state()?;
        }
        let topology = Topology::open(&self.config, Mode::Snapshot)
            .context("opening the follower's scratch data directory")?
            .with_scratch_purges(purges.clone());
        let Packed {
            from,
            end,
            package,
            purge_records,
        } = match topology.start(&self.config).await? {
            Start::Packed(packed) => packed,
            Start::Serving(_) | Start::Rebuilt(_) | Start::CaughtUp(_) => {
                bail!("the follower's start did not stop")
            }
        };
        let read = end - from;
        // State restored from before a purge record may hold what it purged.
        if from > 0 && purge_records.iter().any(|r| *r >= from) {
            drop_state()?;
            return Ok((
                Outcome::Discarded("a purge record after its checkpoint"),
                end,
                read,
            ));
        }
        if purged_since() {
            drop_state()?;
            return Ok((
                Outcome::Discarded("a purge ran during the round"),
                end,
                read,
            ));
        }
        let Some((record, bytes)) = package else {
            return Ok((Outcome::Unchanged, end, read));
        };
        if !*held.borrow() {
            return Ok((Outcome::LeaseLost, end, read));
        }
        let uploaded = tokio::time::timeout(
            BUCKET_TIMEOUT,
            super::snapshot_join::upload(log, record, bytes),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the upload timed out (it may have landed)"))
        .and_then(|r| r)
        .with_context(|| format!("uploading the snapshot at record {record}"));
        let uploaded = match uploaded {
            Ok(uploaded) => uploaded,
            // It may be in the bucket: checked for purges like an upload.
            Err(e) => {
                if purged_since() || purge_after(log, record).await.unwrap_or(true) {
                    drop_state()?;
                    return Err(e.context(VoidUpload(record)));
                }
                return Err(e);
            }
        };
        if !uploaded {
            return Ok((Outcome::Unchanged, end, read));
        }
        // A purge that began before this check may not have seen the upload: the snapshot
        // (state read before its record) is deleted here. One that begins after it deletes
        // the bucket's snapshots itself.
        let void = match purge_after(log, record).await {
            Ok(found) => found || purged_since(),
            Err(e) => {
                tracing::error!(record, error = format!("{e:#}"), "live snapshot: cannot check the stream for a purge after the upload; the snapshot is deleted");
                true
            }
        };
        if void {
            drop_state()?;
            if let Err(e) = delete(log, record).await {
                return Err(e.context(VoidUpload(record)));
            }
            return Ok((Outcome::Discarded("a purge after the upload"), 0, read));
        }
        Ok((Outcome::Uploaded(record), end, read))
    }
}

/// A snapshot uploaded (or possibly uploaded) that a purge made void: to delete.
#[derive(Debug, thiserror::Error)]
#[error("the snapshot at record {0} is void (a purge): to delete")]
struct VoidUpload(u64);

/// Whether the stream holds a purge record at or after `record`.
async fn purge_after(log: &JetStreamLog, record: u64) -> Result<bool> {
    let end = log
        .next_record()
        .await
        .context("reading the stream's end")?;
    if end <= record {
        return Ok(false);
    }
    let mut records = Box::pin(
        log.read_until(record, end)
            .await
            .context("reading the stream after the snapshot")?,
    );
    while let Some(item) = records.next().await {
        if let (_, LogEntry::Control { control, .. }) = item.context("reading the stream")? {
            if matches!(control.change, Change::Purge { .. }) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The record of the bucket's newest snapshot, if any.
async fn newest(log: &JetStreamLog) -> Option<u64> {
    let request = async {
        let store = SnapshotStore::open(log.context(), log.config()).await?;
        store.records().await
    };
    match tokio::time::timeout(BUCKET_TIMEOUT, request).await {
        Ok(Ok(records)) => records.first().copied(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "live snapshot: cannot list the bucket");
            None
        }
        Err(_) => None,
    }
}

/// Deletes the bucket's snapshot at `record`.
async fn delete(log: &JetStreamLog, record: u64) -> Result<()> {
    let request = async {
        let store = SnapshotStore::open(log.context(), log.config()).await?;
        store.delete(record).await
    };
    tokio::time::timeout(BUCKET_TIMEOUT, request)
        .await
        .map_err(|_| anyhow::anyhow!("the snapshot bucket did not answer"))?
        .with_context(|| format!("deleting the snapshot at record {record}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(scratch: PathBuf) -> Shared {
        Shared {
            scratch,
            generation: AtomicU64::new(0),
            owed: AtomicBool::new(false),
            round: tokio::sync::Mutex::new(()),
        }
    }

    #[test]
    fn a_purge_removes_the_idle_state_and_leaves_a_running_round_to_drop_it() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join(SCRATCH_DIR);
        std::fs::create_dir_all(scratch.join("trails")).unwrap();
        std::fs::write(scratch.join("metadata.sqlite3"), b"state").unwrap();
        let shared = shared(scratch.clone());
        // Idle: removed now.
        assert_eq!(shared.purged().unwrap(), 1);
        assert!(!scratch.exists());
        assert!(!shared.owed.load(Ordering::SeqCst));
        assert_eq!(shared.purged().unwrap(), 0, "nothing left to remove");
        // A round running: the generation moves and the removal is owed to it.
        std::fs::create_dir_all(&scratch).unwrap();
        let round = shared.round.try_lock().unwrap();
        let before = shared.generation.load(Ordering::SeqCst);
        assert_eq!(shared.purged().unwrap(), 0);
        assert!(scratch.exists());
        assert!(shared.owed.load(Ordering::SeqCst));
        assert_ne!(shared.generation.load(Ordering::SeqCst), before);
        drop(round);
    }
}
