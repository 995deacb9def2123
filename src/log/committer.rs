//! Group commit: one OS thread owns the [`LogWriter`], takes append requests from any number of
//! async tasks, and makes each group of them durable with a single `fdatasync` before answering.
//!
//! The thread blocks for a first request, drains whatever else is queued (up to
//! [`CommitConfig::max_group_bytes`]), appends it all, syncs once, completes every request, and
//! only then forwards the newly stored batches, in log order, to the pipeline with a blocking send
//! (a lagging pipeline therefore stalls the committer, whose bounded queue then slows ingest).
//!
//! Deduplication lives here, on the one thread that writes, so two concurrent resends of the same
//! batch cannot both be stored. Batches are numbered per (tag, session epoch): a batch whose
//! `seq` is not above the last stored `seq` of its tag in the tag's current epoch is a
//! [`AppendOutcome::Duplicate`], acknowledged without being written again (but only once the
//! copy it duplicates is durable); a batch of a higher epoch is new data whatever its `seq` (the
//! tag restarted its numbering) and makes that epoch current; a batch of a lower epoch is refused
//! with [`LogError::StaleEpoch`] and never acknowledged. The epoch is stored in each record, so
//! recovery rebuilds the same state ([`note_durable`]).
//!
//! A control record ([`CommitHandle::append_control`]) is committed in queue order like a batch,
//! with no deduplication (each is a distinct change), and forwarded in the same groups, so the
//! pipeline sees readings and changes in log order.
//!
//! A seal request ([`CommitHandle::seal_segment_blocking`]) is answered in queue order, between
//! appends: the segment being written is synced and a new one started, so that compaction (see
//! [`super::compact`]) can rewrite every segment before it without racing the writer.
//!
//! An I/O error fails the requests of the group it hit with that error (they are never
//! acknowledged) and poisons the committer: every later append gets [`LogError::Poisoned`].
//! Dropping every [`CommitHandle`] lets the thread finish the queued work and exit; it then drops
//! its `committed_tx`, so the pipeline sees the channel close.

use super::error::{LogError, LogResult};
use super::record::batch_frame_len;
use super::writer::LogWriter;
use crate::model::{Batch, ControlRecord, LogEntry};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Tunables of a [`GroupCommitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitConfig {
    /// Stop draining the queue into a group once it holds this many record bytes.
    pub max_group_bytes: usize,
    /// After draining the queue, wait this long once for more requests before committing.
    /// Zero (the default) commits as soon as the queue is drained.
    pub max_delay: Duration,
    /// Requests that may wait in the queue; senders wait beyond that (backpressure).
    pub queue_capacity: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            max_group_bytes: 16 * 1024 * 1024,
            max_delay: Duration::ZERO,
            queue_capacity: 4096,
        }
    }
}

/// How an append was acknowledged. Either way the batch is durable when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written as record number `record`.
    Stored { record: u64 },
    /// The tag's batch with this `seq` (or a later one) was already stored; not written again.
    Duplicate,
}

/// Counters of a committer since it was spawned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    /// Batches written.
    pub stored: u64,
    /// Readings in the batches written.
    pub readings_stored: u64,
    /// Appends acknowledged as duplicates.
    pub duplicates: u64,
    /// Groups committed (each answered by at most one sync).
    pub groups: u64,
    /// `fdatasync` calls by the writer (one per group that stored anything, plus segment rolls).
    pub syncs: u64,
    /// Record bytes written.
    pub bytes_written: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    readings_stored: AtomicU64,
    duplicates: AtomicU64,
    groups: AtomicU64,
    syncs: AtomicU64,
    bytes_written: AtomicU64,
}

/// The dedup state: per tag, the current session epoch and the last seq stored in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupState {
    /// Last stored seq per tag, in the tag's current epoch.
    pub last_seq_by_tag: HashMap<String, u64>,
    /// Current epoch per tag; absent = 0.
    pub epoch_by_tag: HashMap<String, u32>,
}

impl DedupState {
    /// `(current epoch, last seq in it)` of `tag`; `(0, 0)` for a tag never seen.
    pub fn position(&self, tag: &str) -> (u32, u64) {
        (
            self.epoch_by_tag.get(tag).copied().unwrap_or(0),
            self.last_seq_by_tag.get(tag).copied().unwrap_or(0),
        )
    }

    /// Folds one stored batch into the state, in log order (see [`note_durable`]).
    pub fn note(&mut self, tag: &str, epoch: u32, seq: u64) {
        note_durable(
            &mut self.last_seq_by_tag,
            &mut self.epoch_by_tag,
            tag.to_owned(),
            epoch,
            seq,
        );
    }
}

/// Only sequence numbers: every tag in epoch 0 (logs and tests that predate epochs).
impl From<HashMap<String, u64>> for DedupState {
    fn from(last_seq_by_tag: HashMap<String, u64>) -> Self {
        DedupState {
            last_seq_by_tag,
            epoch_by_tag: HashMap::new(),
        }
    }
}

impl From<&super::RecoveryReport> for DedupState {
    fn from(report: &super::RecoveryReport) -> Self {
        DedupState {
            last_seq_by_tag: report.last_seq_by_tag.clone(),
            epoch_by_tag: report.epoch_by_tag.clone(),
        }
    }
}

/// Folds one stored batch `(tag, epoch, seq)` into the dedup state, in log order: a higher epoch
/// replaces the tag's position, the same epoch keeps the highest seq, an older epoch (which the
/// committer never stores after a newer one) changes nothing. Used by the committer and by
/// recovery, so both agree.
pub fn note_durable(
    last_seq_by_tag: &mut HashMap<String, u64>,
    epoch_by_tag: &mut HashMap<String, u32>,
    tag: String,
    epoch: u32,
    seq: u64,
) {
    let current = epoch_by_tag.get(&tag).copied().unwrap_or(0);
    if epoch > current {
        epoch_by_tag.insert(tag.clone(), epoch);
        last_seq_by_tag.insert(tag, seq);
    } else if epoch == current {
        let last = last_seq_by_tag.entry(tag).or_insert(seq);
        *last = (*last).max(seq);
    }
}

/// State shared by the handles and the committer thread.
struct Shared {
    /// Durable dedup state (updated after each sync), for [`CommitHandle::last_seq`].
    durable: Mutex<DedupState>,
    poisoned: Mutex<Option<String>>,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn poisoned_error(&self) -> Option<LogError> {
        lock(&self.poisoned).clone().map(LogError::Poisoned)
    }
}

enum Request {
    Append {
        batch: Batch,
        reply: oneshot::Sender<LogResult<AppendOutcome>>,
    },
    /// Append a control record.
    Control {
        control: ControlRecord,
        reply: oneshot::Sender<LogResult<AppendOutcome>>,
    },
    /// Stop taking requests: those already queued are committed, then the committer ends
    /// (see [`CommitHandle::close`]). Never part of a group.
    Close,
    /// Seal the segment being appended to (see [`CommitHandle::seal_segment_blocking`]).
    Seal {
        reply: oneshot::Sender<LogResult<u64>>,
    },
}

/// Spawns the committer thread.
pub struct GroupCommitter;

impl GroupCommitter {
    /// Spawns the committer with the default [`CommitConfig`]. `dedup` is the dedup state,
    /// normally `DedupState::from(&recovery_report)` (a bare last-seq map means every tag is in
    /// epoch 0).
    pub fn spawn(
        writer: LogWriter,
        dedup: impl Into<DedupState>,
        committed_tx: mpsc::Sender<Vec<LogEntry>>,
    ) -> LogResult<CommitHandle> {
        Self::spawn_with_config(writer, dedup, committed_tx, CommitConfig::default())
    }

    /// Spawns the committer with explicit tunables.
    pub fn spawn_with_config(
        writer: LogWriter,
        dedup: impl Into<DedupState>,
        committed_tx: mpsc::Sender<Vec<LogEntry>>,
        config: CommitConfig,
    ) -> LogResult<CommitHandle> {
        let dedup = dedup.into();
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            durable: Mutex::new(dedup.clone()),
            poisoned: Mutex::new(None),
            counters: Counters::default(),
        });
        let thread = Committer {
            writer,
            rx,
            dedup,
            shared: Arc::clone(&shared),
            committed_tx,
            config,
            pipeline_gone: false,
        };
        let dir = thread.writer.dir().to_owned();
        std::thread::Builder::new()
            .name("log-committer".into())
            .spawn(move || thread.run())
            .map_err(|e| LogError::io("spawning committer thread for", dir, e))?;
        Ok(CommitHandle {
            tx,
            shared,
            remote: None,
        })
    }
}

/// A log kept outside this process (cluster mode: a JetStream stream, `cluster::jetstream`).
/// Appends go there and return once it holds them; what it stores comes back, in order, through
/// its reader, which notes each batch here ([`CommitHandle::note_consumed`]) so that a tag's
/// position (the hello's answer) follows the log as this node has read it.
pub trait RemoteLog: Send + Sync {
    fn append(&self, batch: Batch) -> futures::future::BoxFuture<'_, LogResult<AppendOutcome>>;
    fn append_control(
        &self,
        control: ControlRecord,
    ) -> futures::future::BoxFuture<'_, LogResult<u64>>;

    /// Every record the log holds now, in log order, ending there.
    fn stored_records(&self) -> futures::future::BoxFuture<'_, LogResult<RecordStream<'_>>>;

    /// Removes what `windows` covers from every record the log holds now (retention), keeping
    /// every record's number.
    fn compact<'a>(
        &'a self,
        windows: &'a super::TagWindows,
    ) -> futures::future::BoxFuture<'a, LogResult<super::CompactReport>>;
}

/// Records of a log kept elsewhere, in log order.
pub type RecordStream<'a> = futures::stream::BoxStream<'a, LogResult<(u64, LogEntry)>>;

/// The remote log behind a handle, and whether the handle's owner has closed it.
struct Remote {
    log: Arc<dyn RemoteLog>,
    closed: tokio_util::sync::CancellationToken,
}

/// A cheap, cloneable handle for submitting batches to the committer.
#[derive(Clone)]
pub struct CommitHandle {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    /// Cluster mode: the log is a stream elsewhere, no committer thread runs here.
    remote: Option<Arc<Remote>>,
}

impl CommitHandle {
    /// A handle over a log kept elsewhere (cluster mode), starting from the tags' positions in
    /// `dedup` (what this node has read of it).
    pub fn remote(log: Arc<dyn RemoteLog>, dedup: DedupState) -> Self {
        // No committer thread: requests to the local channel fail as `Closed`.
        let (tx, _) = mpsc::channel(1);
        CommitHandle {
            tx,
            shared: Arc::new(Shared {
                durable: Mutex::new(dedup),
                poisoned: Mutex::new(None),
                counters: Counters::default(),
            }),
            remote: Some(Arc::new(Remote {
                log,
                closed: tokio_util::sync::CancellationToken::new(),
            })),
        }
    }

    /// Whether the log is a stream (cluster mode) rather than the embedded committer.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Cluster mode: cancelled when the handle's owner closes the log (see [`Self::close`]);
    /// the stream's reader stops then. Never cancelled for the embedded log.
    pub fn closed(&self) -> tokio_util::sync::CancellationToken {
        match &self.remote {
            Some(remote) => remote.closed.clone(),
            None => tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Cluster mode: a batch read back from the log, in log order (a tag's position follows).
    pub fn note_consumed(&self, batch: &Batch) {
        lock(&self.shared.durable).note(&batch.tag, batch.epoch, batch.seq);
    }

    /// Submits a batch and waits until it is durable (or found to be a duplicate of a durable
    /// batch). Only an `Ok` may be acknowledged to the tag.
    pub async fn append(&self, batch: Batch) -> LogResult<AppendOutcome> {
        if let Some(remote) = &self.remote {
            return self.append_remote(remote, batch).await;
        }
        self.submit(|reply| Request::Append { batch, reply }).await
    }

    async fn append_remote(&self, remote: &Remote, batch: Batch) -> LogResult<AppendOutcome> {
        if let Some(error) = self.shared.poisoned_error() {
            return Err(error);
        }
        if remote.closed.is_cancelled() {
            return Err(LogError::Closed);
        }
        let (current_epoch, _) = self.position(&batch.tag);
        if batch.epoch < current_epoch {
            return Err(LogError::StaleEpoch {
                tag: batch.tag.clone(),
                epoch: batch.epoch,
                current_epoch,
            });
        }
        let readings = batch.readings.len() as u64;
        let outcome = remote.log.append(batch).await?;
        let counters = &self.shared.counters;
        match outcome {
            AppendOutcome::Stored { .. } => {
                counters.stored.fetch_add(1, Ordering::Relaxed);
                counters
                    .readings_stored
                    .fetch_add(readings, Ordering::Relaxed);
            }
            AppendOutcome::Duplicate => {
                counters.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(outcome)
    }

    /// Submits a control record and waits until it is durable; returns its record number.
    pub async fn append_control(&self, control: ControlRecord) -> LogResult<u64> {
        if let Some(remote) = &self.remote {
            if let Some(error) = self.shared.poisoned_error() {
                return Err(error);
            }
            if remote.closed.is_cancelled() {
                return Err(LogError::Closed);
            }
            return remote.log.append_control(control).await;
        }
        stored_record(
            self.submit(|reply| Request::Control { control, reply })
                .await?,
        )
    }

    /// Queues the request `make` builds around its reply channel and waits for the answer.
    async fn submit(
        &self,
        make: impl FnOnce(oneshot::Sender<LogResult<AppendOutcome>>) -> Request,
    ) -> LogResult<AppendOutcome> {
        if let Some(error) = self.shared.poisoned_error() {
            return Err(error);
        }
        let (reply, answer) = oneshot::channel();
        if self.tx.send(make(reply)).await.is_err() {
            return Err(self.stopped_error());
        }
        answer.await.unwrap_or_else(|_| Err(self.stopped_error()))
    }

    /// [`CommitHandle::append_control`] from a blocking thread (never an async worker).
    pub fn append_control_blocking(&self, control: ControlRecord) -> LogResult<u64> {
        if self.remote.is_some() {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                LogError::Unsupported("a blocking append outside the server's runtime".into())
            })?;
            return handle.block_on(self.append_control(control));
        }
        if let Some(error) = self.shared.poisoned_error() {
            return Err(error);
        }
        let (reply, answer) = oneshot::channel();
        if self
            .tx
            .blocking_send(Request::Control { control, reply })
            .is_err()
        {
            return Err(self.stopped_error());
        }
        stored_record(
            answer
                .blocking_recv()
                .unwrap_or_else(|_| Err(self.stopped_error()))?,
        )
    }

    /// Hands `each` every batch the log holds now, in log order, until it breaks: the embedded
    /// log's segments in `log_dir`, or the stream's records. Blocking, as
    /// [`Self::compact_blocking`].
    pub fn for_each_stored_batch_blocking(
        &self,
        log_dir: &std::path::Path,
        each: &mut dyn FnMut(&Batch) -> std::ops::ControlFlow<()>,
    ) -> LogResult<()> {
        let Some(remote) = &self.remote else {
            return super::reader::for_each_batch_in(log_dir, each);
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            LogError::Unsupported("reading the stream outside the server's runtime".into())
        })?;
        use futures::StreamExt;
        let mut records = handle.block_on(remote.log.stored_records())?;
        // One record at a time: `each` may block (a channel to an HTTP response), which it may
        // not do inside `block_on`.
        while let Some(item) = handle.block_on(records.next()) {
            if let (_, LogEntry::Batch(batch)) = item? {
                if each(&batch).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Removes what `windows` covers from the log (retention): the embedded log seals its
    /// segment and compacts every sealed one in `log_dir`; a stream compacts every record it
    /// holds. Blocking: call from a blocking thread (inside the server's runtime for a stream).
    pub fn compact_blocking(
        &self,
        log_dir: &std::path::Path,
        windows: &super::TagWindows,
    ) -> LogResult<super::CompactReport> {
        if let Some(remote) = &self.remote {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                LogError::Unsupported("compacting the stream outside the server's runtime".into())
            })?;
            return handle.block_on(remote.log.compact(windows));
        }
        let boundary = self.seal_segment_blocking()?;
        super::compact(log_dir, boundary, windows)
    }

    /// Seals the segment being appended to (after making every record queued before this call
    /// durable) and returns the first record number of the new one: every record below it is in
    /// a sealed segment the committer never writes again, which compaction may rewrite. Blocks
    /// the calling thread: call it from a blocking task, never from an async worker.
    pub fn seal_segment_blocking(&self) -> LogResult<u64> {
        if self.remote.is_some() {
            return Err(LogError::Unsupported(
                "sealing a segment: the log is a JetStream stream, which has none".into(),
            ));
        }
        if let Some(error) = self.shared.poisoned_error() {
            return Err(error);
        }
        let (reply, answer) = oneshot::channel();
        if self.tx.blocking_send(Request::Seal { reply }).is_err() {
            return Err(self.stopped_error());
        }
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(self.stopped_error()))
    }

    /// Stops the committer taking requests (shutdown): everything queued before this is
    /// committed and answered, later requests fail with `LogError::Closed`, and the committer
    /// then ends, closing its committed-groups channel, which drains the stages after it.
    pub async fn close(&self) {
        if let Some(remote) = &self.remote {
            remote.closed.cancel();
            return;
        }
        // Already stopped (poisoned, or closed before): nothing to do.
        let _ = self.tx.send(Request::Close).await;
    }

    /// The last durable `seq` stored for `tag` in its current epoch; 0 if none (tags number
    /// batches from 1).
    pub fn last_seq(&self, tag: &str) -> u64 {
        self.position(tag).1
    }

    /// `(current epoch, last durable seq in it)` of `tag`; `(0, 0)` for a tag never stored.
    pub fn position(&self, tag: &str) -> (u32, u64) {
        lock(&self.shared.durable).position(tag)
    }

    /// The last durable `seq` of `tag` in session epoch `epoch` (0 for an epoch newer than the
    /// tag's current one: nothing stored in it yet), or `Err(current epoch)` if `epoch` is older
    /// than the tag's current epoch.
    pub fn last_seq_in_epoch(&self, tag: &str, epoch: u32) -> Result<u64, u32> {
        let (current, last_seq) = self.position(tag);
        match epoch.cmp(&current) {
            std::cmp::Ordering::Less => Err(current),
            std::cmp::Ordering::Equal => Ok(last_seq),
            std::cmp::Ordering::Greater => Ok(0),
        }
    }

    /// Counters since the committer was spawned.
    pub fn stats(&self) -> CommitStats {
        let c = &self.shared.counters;
        CommitStats {
            stored: c.stored.load(Ordering::Relaxed),
            readings_stored: c.readings_stored.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
        }
    }

    /// Cluster mode: this node can no longer apply the log (its reader met a gap or a damaged
    /// record). Every later append is refused with `reason`, so tags and API callers go to a
    /// node that can, instead of being acknowledged by one whose answers no longer follow.
    pub fn poison(&self, reason: String) {
        lock(&self.shared.poisoned).get_or_insert(reason);
    }

    /// Whether an I/O error has stopped the committer.
    pub fn is_poisoned(&self) -> bool {
        lock(&self.shared.poisoned).is_some()
    }

    fn stopped_error(&self) -> LogError {
        self.shared.poisoned_error().unwrap_or(LogError::Closed)
    }
}

/// A control record is never a duplicate (it is not deduplicated): its record number.
fn stored_record(outcome: AppendOutcome) -> LogResult<u64> {
    match outcome {
        AppendOutcome::Stored { record } => Ok(record),
        AppendOutcome::Duplicate => Err(LogError::Closed),
    }
}

/// The committer thread's state.
struct Committer {
    writer: LogWriter,
    rx: mpsc::Receiver<Request>,
    /// Dedup state including records appended in the group being committed.
    dedup: DedupState,
    shared: Arc<Shared>,
    committed_tx: mpsc::Sender<Vec<LogEntry>>,
    config: CommitConfig,
    pipeline_gone: bool,
}

/// A request of the current group waiting for the group's sync, with its tentative answer.
struct Pending {
    reply: oneshot::Sender<LogResult<AppendOutcome>>,
    outcome: AppendOutcome,
}

impl Committer {
    fn run(mut self) {
        let mut group = Vec::new();
        while let Some(first) = self.rx.blocking_recv() {
            if matches!(first, Request::Close) {
                self.rx.close();
                continue;
            }
            let mut group_bytes = request_bytes(&first);
            group.push(first);
            self.drain(&mut group, &mut group_bytes);
            if !self.config.max_delay.is_zero() && group_bytes < self.config.max_group_bytes {
                std::thread::sleep(self.config.max_delay);
                self.drain(&mut group, &mut group_bytes);
            }
            if let Err(error) = self.commit(&mut group) {
                self.stop(error);
                return;
            }
        }
    }

    /// Moves queued requests into the group until it is full or the queue is empty.
    fn drain(&mut self, group: &mut Vec<Request>, group_bytes: &mut usize) {
        while *group_bytes < self.config.max_group_bytes {
            match self.rx.try_recv() {
                Ok(Request::Close) => self.rx.close(),
                Ok(request) => {
                    *group_bytes += request_bytes(&request);
                    group.push(request);
                }
                Err(_) => break,
            }
        }
    }

    /// Appends, syncs and answers one group. An `Err` has already been sent to every request of
    /// the group and means the writer is unusable.
    fn commit(&mut self, group: &mut Vec<Request>) -> LogResult<()> {
        crate::metrics::stage_latency::record(
            crate::metrics::stage_latency::Stage::Grouped,
            group.iter().filter_map(|r| match r {
                Request::Append { batch, .. } => Some(batch.arrival_ms),
                Request::Control { .. } | Request::Seal { .. } | Request::Close => None,
            }),
        );
        let mut pending: Vec<Pending> = Vec::with_capacity(group.len());
        let mut stored: Vec<LogEntry> = Vec::new();
        let mut bytes_written = 0u64;
        let mut requests = group.drain(..);
        while let Some(request) = requests.next() {
            let (batch, reply) = match request {
                Request::Append { batch, reply } => (batch, reply),
                Request::Control { control, reply } => {
                    match self.writer.append_control(&control) {
                        Ok(record) => {
                            pending.push(Pending {
                                reply,
                                outcome: AppendOutcome::Stored { record },
                            });
                            stored.push(LogEntry::Control {
                                record,
                                control: Arc::new(control),
                            });
                        }
                        Err(error) if self.writer.poisoned().is_none() => {
                            let _ = reply.send(Err(error));
                        }
                        Err(error) => {
                            let _ = reply.send(Err(error.clone()));
                            fail_all(pending, requests.filter_map(Request::into_waiting), &error);
                            return Err(error);
                        }
                    }
                    continue;
                }
                Request::Close => continue,
                Request::Seal { reply } => match self.writer.seal() {
                    Ok(boundary) => {
                        let _ = reply.send(Ok(boundary));
                        continue;
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error.clone()));
                        fail_all(pending, requests.filter_map(Request::into_waiting), &error);
                        return Err(error);
                    }
                },
            };
            let (current_epoch, last_seq) = self.dedup.position(&batch.tag);
            if batch.epoch < current_epoch {
                // Refused, nothing written, others unaffected; never acknowledged.
                let _ = reply.send(Err(LogError::StaleEpoch {
                    tag: batch.tag.clone(),
                    epoch: batch.epoch,
                    current_epoch,
                }));
                continue;
            }
            let duplicate = batch.epoch == current_epoch
                && self.dedup.last_seq_by_tag.contains_key(&batch.tag)
                && batch.seq <= last_seq;
            if duplicate {
                pending.push(Pending {
                    reply,
                    outcome: AppendOutcome::Duplicate,
                });
                continue;
            }
            match self.writer.append(&batch) {
                Ok(record) => {
                    bytes_written += batch_frame_len(&batch).map_or(0, |len| len as u64);
                    self.dedup.note(&batch.tag, batch.epoch, batch.seq);
                    pending.push(Pending {
                        reply,
                        outcome: AppendOutcome::Stored { record },
                    });
                    stored.push(LogEntry::Batch(Arc::new(batch)));
                }
                // A batch the log cannot hold: refused, nothing written, others unaffected.
                Err(error) if self.writer.poisoned().is_none() => {
                    let _ = reply.send(Err(error));
                }
                Err(error) => {
                    let _ = reply.send(Err(error.clone()));
                    fail_all(pending, requests.filter_map(Request::into_waiting), &error);
                    return Err(error);
                }
            }
        }
        drop(requests);
        if !stored.is_empty() {
            if let Err(error) = self.writer.sync() {
                fail_all(pending, std::iter::empty(), &error);
                return Err(error);
            }
            let syncs = self.writer.syncs();
            self.shared.counters.syncs.store(syncs, Ordering::Relaxed);
            let mut durable = lock(&self.shared.durable);
            for batch in stored.iter().filter_map(LogEntry::batch) {
                durable.note(&batch.tag, batch.epoch, batch.seq);
            }
        }
        self.count(&pending, &stored, bytes_written);
        crate::metrics::stage_latency::record(
            crate::metrics::stage_latency::Stage::Durable,
            stored
                .iter()
                .filter_map(LogEntry::batch)
                .map(|b| b.arrival_ms),
        );
        for p in pending {
            // A requester that stopped waiting is fine: its batch is durable all the same.
            let _ = p.reply.send(Ok(p.outcome));
        }
        if !stored.is_empty()
            && !self.pipeline_gone
            && self.committed_tx.blocking_send(stored).is_err()
        {
            self.pipeline_gone = true;
            tracing::warn!(
                "committed-batch receiver dropped; log keeps storing without forwarding"
            );
        }
        Ok(())
    }

    fn count(&self, pending: &[Pending], stored: &[LogEntry], bytes_written: u64) {
        let c = &self.shared.counters;
        let duplicates = pending
            .iter()
            .filter(|p| p.outcome == AppendOutcome::Duplicate)
            .count();
        let readings: usize = stored
            .iter()
            .filter_map(LogEntry::batch)
            .map(|b| b.readings.len())
            .sum();
        c.groups.fetch_add(1, Ordering::Relaxed);
        c.stored.fetch_add(stored.len() as u64, Ordering::Relaxed);
        c.readings_stored
            .fetch_add(readings as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(duplicates as u64, Ordering::Relaxed);
        c.bytes_written.fetch_add(bytes_written, Ordering::Relaxed);
    }

    /// Poisons the committer and refuses everything still queued.
    fn stop(mut self, error: LogError) {
        let reason = error.to_string();
        tracing::error!(error = %reason, "log committer stopped");
        *lock(&self.shared.poisoned) = Some(reason.clone());
        self.rx.close();
        let queued =
            std::iter::from_fn(|| self.rx.try_recv().ok()).filter_map(Request::into_waiting);
        fail_all(Vec::new(), queued, &LogError::Poisoned(reason));
    }
}

fn request_bytes(request: &Request) -> usize {
    match request {
        Request::Append { batch, .. } => batch_frame_len(batch).unwrap_or(0),
        Request::Control { .. } | Request::Seal { .. } | Request::Close => 0,
    }
}

/// A waiting request to fail with an error, whatever kind it is.
enum Waiting {
    Append(oneshot::Sender<LogResult<AppendOutcome>>),
    Seal(oneshot::Sender<LogResult<u64>>),
}

impl Request {
    fn into_waiting(self) -> Option<Waiting> {
        match self {
            Request::Append { reply, .. } | Request::Control { reply, .. } => {
                Some(Waiting::Append(reply))
            }
            Request::Seal { reply } => Some(Waiting::Seal(reply)),
            Request::Close => None,
        }
    }
}

fn fail_all(pending: Vec<Pending>, rest: impl Iterator<Item = Waiting>, error: &LogError) {
    let waiting = pending.into_iter().map(|p| Waiting::Append(p.reply));
    for w in waiting.chain(rest) {
        match w {
            Waiting::Append(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
            Waiting::Seal(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::LogReader;
    use super::super::segment::list_segments;
    use super::super::test_batches::batch;
    use super::super::writer::LogConfig;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_seal_request_starts_a_new_segment_after_what_was_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        let (committed_tx, mut committed_rx) = mpsc::channel(16);
        tokio::spawn(async move { while committed_rx.recv().await.is_some() {} });
        let handle = GroupCommitter::spawn(writer, report.last_seq_by_tag, committed_tx).unwrap();
        for seq in 1..=3 {
            handle.append(batch("t", seq, 2)).await.unwrap();
        }
        let sealer = handle.clone();
        let seal = move || sealer.seal_segment_blocking();
        let boundary = tokio::task::spawn_blocking(seal.clone()).await.unwrap();
        assert_eq!(boundary.unwrap(), 3);
        // Sealing an empty segment starts no other one.
        let again = tokio::task::spawn_blocking(seal).await.unwrap();
        assert_eq!(again.unwrap(), 3);
        assert_eq!(
            handle.append(batch("t", 4, 2)).await.unwrap(),
            AppendOutcome::Stored { record: 3 }
        );
        let names: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_record)
            .collect();
        assert_eq!(names, vec![0, 3]);
        assert_eq!(LogReader::open(dir.path()).unwrap().count(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dedupe_is_per_tag_and_epoch_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let in_epoch = |seq, epoch| {
            let mut b = batch("t", seq, 1);
            b.epoch = epoch;
            b
        };
        {
            let (writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
            let (committed_tx, mut committed_rx) = mpsc::channel(16);
            tokio::spawn(async move { while committed_rx.recv().await.is_some() {} });
            let handle = GroupCommitter::spawn(writer, &report, committed_tx).unwrap();
            for seq in 1..=3 {
                handle.append(in_epoch(seq, 0)).await.unwrap();
            }
            // A new epoch numbering from 1 again is new data.
            let outcome = handle.append(in_epoch(1, 2)).await.unwrap();
            assert!(matches!(outcome, AppendOutcome::Stored { .. }));
            assert_eq!(
                handle.append(in_epoch(1, 2)).await.unwrap(),
                AppendOutcome::Duplicate
            );
            assert!(matches!(
                handle.append(in_epoch(9, 1)).await,
                Err(LogError::StaleEpoch {
                    epoch: 1,
                    current_epoch: 2,
                    ..
                })
            ));
            assert_eq!(handle.position("t"), (2, 1));
            assert_eq!(handle.last_seq_in_epoch("t", 2), Ok(1));
            assert_eq!(handle.last_seq_in_epoch("t", 3), Ok(0));
            assert_eq!(handle.last_seq_in_epoch("t", 0), Err(2));
        }
        let (writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.epoch_by_tag.get("t"), Some(&2));
        assert_eq!(report.last_seq_by_tag.get("t"), Some(&1));
        let (committed_tx, mut committed_rx) = mpsc::channel(16);
        tokio::spawn(async move { while committed_rx.recv().await.is_some() {} });
        let handle = GroupCommitter::spawn(writer, &report, committed_tx).unwrap();
        assert_eq!(
            handle.append(in_epoch(1, 2)).await.unwrap(),
            AppendOutcome::Duplicate
        );
        assert!(matches!(
            handle.append(in_epoch(2, 2)).await.unwrap(),
            AppendOutcome::Stored { record: 4 }
        ));
        assert_eq!(LogReader::open(dir.path()).unwrap().count(), 5);
    }

    /// A stand-in for the stream: stores every append as the next record.
    struct CountingLog(std::sync::atomic::AtomicU64);

    impl RemoteLog for CountingLog {
        fn append(
            &self,
            _batch: Batch,
        ) -> futures::future::BoxFuture<'_, LogResult<AppendOutcome>> {
            let record = self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(AppendOutcome::Stored { record }) })
        }
        fn append_control(
            &self,
            _control: ControlRecord,
        ) -> futures::future::BoxFuture<'_, LogResult<u64>> {
            let record = self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move { Ok(record) })
        }
        fn compact<'a>(
            &'a self,
            _windows: &'a crate::log::TagWindows,
        ) -> futures::future::BoxFuture<'a, LogResult<crate::log::CompactReport>> {
            Box::pin(async { Err(LogError::Remote("not in this test".into())) })
        }
        fn stored_records(&self) -> futures::future::BoxFuture<'_, LogResult<RecordStream<'_>>> {
            Box::pin(async { Err(LogError::Remote("not in this test".into())) })
        }
    }

    #[tokio::test]
    async fn a_remote_handle_refuses_appends_once_its_node_cannot_apply_the_log() {
        let handle = CommitHandle::remote(
            Arc::new(CountingLog(AtomicU64::new(0))),
            DedupState::default(),
        );
        let batch = |seq| Batch {
            tag: "T1".into(),
            epoch: 0,
            seq,
            arrival_ms: 0,
            readings: Vec::new(),
        };
        assert_eq!(
            handle.append(batch(1)).await.unwrap(),
            AppendOutcome::Stored { record: 0 }
        );
        handle.poison("record 7 is damaged".into());
        match handle.append(batch(2)).await {
            Err(LogError::Poisoned(reason)) => assert!(reason.contains("record 7"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(handle.is_poisoned());
    }
}
