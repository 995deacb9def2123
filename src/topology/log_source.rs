//! Where the topology's durable log is, behind one interface: the embedded segment log in the
//! data directory (recovered at open, appended by the group committer), or a NATS JetStream
//! stream shared by the nodes of a cluster (`cluster::jetstream`; appended through the remote
//! committer handle, followed by this node's ordered reader). Either way the start-up replay
//! reads the stored records from the first, and the live stages get the committed groups, in
//! log order, from the record after them.

use crate::cluster::jetstream::{JetStreamError, JetStreamLog};
use crate::config::ServerConfig;
use crate::log::{
    CommitConfig, CommitHandle, DedupState, GroupCommitter, LogConfig, LogReader, LogWriter,
    RecoveryReport,
};
use crate::model::LogEntry;
use anyhow::{Context, Result};
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// In a data directory whose log is a JetStream stream: the stream's name and servers.
pub const STREAM_MARKER: &str = "log-stream.json";

/// Committed groups the stream's reader gathers at most into one (as the committer's groups).
const STREAM_GROUP_MAX: usize = 512;

/// The stored records, in log order, as the start-up replay reads them.
pub type StoredRecords = Box<dyn Iterator<Item = Result<(u64, LogEntry)>> + Send>;

/// The durable log, opened.
pub enum LogSource {
    Embedded {
        dir: PathBuf,
        writer: LogWriter,
        recovery: RecoveryReport,
        /// The group committer's tunables (`[log] commit_delay_us`).
        commit: CommitConfig,
    },
    Stream {
        log: JetStreamLog,
        next_record: u64,
        /// Tags' positions as read by the start-up replay (for the committer handle).
        positions: Arc<Mutex<DedupState>>,
    },
}

impl LogSource {
    /// Opens the log `config` names (recovering the embedded one).
    pub async fn open(config: &ServerConfig) -> Result<Self> {
        match config.jetstream() {
            None => {
                let dir = config.data_dir.join("log");
                let (writer, recovery) = LogWriter::open(
                    &dir,
                    LogConfig {
                        segment_max_bytes: config.segment_bytes,
                        ..LogConfig::default()
                    },
                )
                .with_context(|| format!("opening the durable log in {}", dir.display()))?;
                tracing::info!(?recovery, "log recovered");
                Ok(LogSource::Embedded {
                    dir,
                    writer,
                    recovery,
                    commit: CommitConfig {
                        max_delay: std::time::Duration::from_micros(config.log.commit_delay_us),
                        ..CommitConfig::default()
                    },
                })
            }
            Some(jetstream) => {
                // Says, to the offline commands, that this data directory's log is a stream.
                let marker = config.data_dir.join(STREAM_MARKER);
                let text = serde_json::json!({"stream": jetstream.stream, "urls": jetstream.urls});
                std::fs::write(&marker, format!("{text}\n"))
                    .with_context(|| format!("writing {}", marker.display()))?;
                let log = JetStreamLog::open(jetstream.clone())
                    .await
                    .context("opening the log's JetStream stream")?;
                let next_record = log
                    .next_record()
                    .await
                    .context("reading the stream's last sequence")?;
                tracing::info!(stream = %jetstream.stream, next_record, "log stream opened");
                Ok(LogSource::Stream {
                    log,
                    next_record,
                    positions: Arc::default(),
                })
            }
        }
    }

    /// The stream, when the log is one.
    pub fn stream(&self) -> Option<&JetStreamLog> {
        match self {
            LogSource::Embedded { .. } => None,
            LogSource::Stream { log, .. } => Some(log),
        }
    }

    /// The record the next append gets: everything below it is stored.
    pub fn next_record(&self) -> u64 {
        match self {
            LogSource::Embedded { writer, .. } => writer.next_record(),
            LogSource::Stream { next_record, .. } => *next_record,
        }
    }

    /// (damaged ranges, records lost) the embedded log's recovery found (none for a stream).
    pub fn damage(&self) -> (u64, u64) {
        match self {
            LogSource::Embedded { recovery, .. } => {
                (recovery.damage.len() as u64, recovery.records_lost)
            }
            LogSource::Stream { .. } => (0, 0),
        }
    }

    /// The embedded log's directory (none for a stream).
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            LogSource::Embedded { dir, .. } => Some(dir),
            LogSource::Stream { .. } => None,
        }
    }

    /// Why records before `record` are not as they were stored, if the embedded log's
    /// recovery found damage there (a node checkpoint past such damage is not used: a replay
    /// would skip the damaged records).
    pub fn damaged_before(&self, record: u64) -> Option<String> {
        match self {
            LogSource::Embedded { recovery, .. } => recovery
                .damage
                .iter()
                .find(|d| d.first_record < record)
                .map(|d| {
                    format!(
                        "the log is damaged at record {} ({})",
                        d.first_record, d.segment
                    )
                }),
            LogSource::Stream { .. } => None,
        }
    }

    /// Stream: the tags' positions as the records before a node checkpoint left them (the
    /// start-up replay then reads only the records after it).
    pub fn seed_positions(&self, state: DedupState) {
        if let LogSource::Stream { positions, .. } = self {
            *positions.lock().unwrap_or_else(|e| e.into_inner()) = state;
        }
    }

    /// Stream: the tags' positions as read so far (empty for the embedded log, whose recovery
    /// knows them).
    pub fn positions(&self) -> DedupState {
        match self {
            LogSource::Embedded { .. } => DedupState::default(),
            LogSource::Stream { positions, .. } => {
                positions.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    /// The records stored at open, in log order, read on the calling (blocking) thread; a
    /// stream is read through `runtime`.
    pub fn stored_records(&self, runtime: tokio::runtime::Handle) -> Result<StoredRecords> {
        self.stored_records_from(runtime, 0)
    }

    /// [`Self::stored_records`] from record `from` on (a node checkpoint's record).
    pub fn stored_records_from(
        &self,
        runtime: tokio::runtime::Handle,
        from: u64,
    ) -> Result<StoredRecords> {
        match self {
            LogSource::Embedded { dir, .. } => {
                let reader = LogReader::open_from(dir, from)
                    .with_context(|| format!("reading log {}", dir.display()))?;
                // The reader starts at the segment holding `from`.
                Ok(Box::new(
                    reader
                        .map(|item| item.context("reading a stored record"))
                        .filter(move |item| !matches!(item, Ok((record, _)) if *record < from)),
                ))
            }
            LogSource::Stream {
                log,
                next_record,
                positions,
            } => {
                let end = *next_record;
                let mut stream = Box::pin(
                    runtime
                        .block_on(log.read_until(from, end))
                        .context("reading the log stream")?,
                );
                let positions = positions.clone();
                let mut next = from;
                Ok(Box::new(std::iter::from_fn(move || {
                    if next >= end {
                        return None;
                    }
                    let item = runtime.block_on(stream.next())?;
                    Some(
                        item.context("reading the log stream")
                            .map(|(record, entry)| {
                                next = record + 1;
                                if let LogEntry::Batch(b) = &entry {
                                    positions
                                        .lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .note(&b.tag, b.epoch, b.seq);
                                }
                                (record, entry)
                            }),
                    )
                })))
            }
        }
    }

    /// Starts appending: the embedded log's group committer, or the stream's remote handle and
    /// this node's reader of the stream from `next_record()` on. Committed groups go to
    /// `committed_tx`, in log order, until the handle is closed.
    pub fn start(self, committed_tx: mpsc::Sender<Vec<LogEntry>>) -> Result<CommitHandle> {
        match self {
            LogSource::Embedded {
                writer,
                recovery,
                commit,
                ..
            } => GroupCommitter::spawn_with_config(
                writer,
                DedupState::from(&recovery),
                committed_tx,
                commit,
            )
            .context("starting the group committer"),
            LogSource::Stream {
                log,
                next_record,
                positions,
            } => {
                let dedup = positions.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let commit = CommitHandle::remote(Arc::new(log.clone()), dedup);
                tokio::spawn(follow_stream(
                    log,
                    next_record,
                    commit.clone(),
                    committed_tx,
                ));
                Ok(commit)
            }
        }
    }
}

/// This node's reader of the stream: every record from `from_record` on, in order, gathered
/// into groups for the forwarder, each batch noted on the committer handle (a tag's position).
/// A read that fails (a NATS server lost, a consumer gone) is opened again from the next record
/// after a pause; a record out of sequence or one that fails its checksum stops the node's
/// intake loudly (renumbering or skipping would make this node's stores differ from the
/// others'). Ends when the handle is closed or the forwarder is gone.
async fn follow_stream(
    log: JetStreamLog,
    from_record: u64,
    commit: CommitHandle,
    committed_tx: mpsc::Sender<Vec<LogEntry>>,
) {
    let closed = commit.closed();
    let mut expected = from_record;
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let mut records = match log.read_from(expected).await {
            Ok(stream) => Box::pin(stream),
            Err(e) => {
                tracing::warn!(error = %e, record = expected, "cannot read the log stream; retrying");
                tokio::select! {
                    _ = closed.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
        };
        let stop = read_groups(
            &log,
            &mut records,
            &mut expected,
            &commit,
            &committed_tx,
            &closed,
        )
        .await;
        match stop {
            Stop::Done => return,
            Stop::Reopen(e) => {
                tracing::warn!(error = %e, record = expected, "reading the log stream failed; reading on from there");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// What the reader does with the position it was handed.
#[derive(Debug, PartialEq)]
enum Step {
    /// The one due: apply it.
    Apply,
    /// One already applied: the consumer was sent back (async-nats re-creates an ordered
    /// consumer that had delivered nothing yet from the stream's start, after its server
    /// died). Read on from the next record with a consumer of our own.
    Reopen(String),
    /// One past the next: records are missing. Applying it would renumber every record after
    /// it for this node's stores, so the node stops.
    Gap(String),
}

fn next_step(record: u64, expected: u64) -> Step {
    match record.cmp(&expected) {
        std::cmp::Ordering::Equal => Step::Apply,
        std::cmp::Ordering::Less => Step::Reopen(format!(
            "the stream reader went back to record {record} (record {expected} was due)"
        )),
        std::cmp::Ordering::Greater => Step::Gap(format!(
            "the log stream gave record {record} where record {expected} was due: this node \
             cannot apply the log past the gap"
        )),
    }
}

/// Why [`read_groups`] returned.
enum Stop {
    /// Closed, the forwarder gone, or a record this node must not apply: stop for good.
    Done,
    /// The read failed: open it again from the next record.
    Reopen(String),
}

/// How long the reader waits for a record before asking the stream whether it is behind (an
/// ordered consumer whose server died can stall without an error until its pull expires).
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

async fn read_groups(
    log: &JetStreamLog,
    records: &mut std::pin::Pin<
        Box<impl futures::Stream<Item = Result<(u64, LogEntry), JetStreamError>>>,
    >,
    expected: &mut u64,
    commit: &CommitHandle,
    committed_tx: &mpsc::Sender<Vec<LogEntry>>,
    closed: &tokio_util::sync::CancellationToken,
) -> Stop {
    loop {
        let mut item = tokio::select! {
            _ = closed.cancelled() => return Stop::Done,
            item = tokio::time::timeout(STALL_CHECK, records.next()) => match item {
                Ok(item) => item,
                // Nothing for a while: fine if nothing was stored, a stall if something was.
                Err(_) => match log.next_record().await {
                    Ok(end) if end > *expected => {
                        return Stop::Reopen(format!(
                            "no record for {} ms while the stream holds up to record {}",
                            STALL_CHECK.as_millis(),
                            end - 1
                        ))
                    }
                    Ok(_) => continue,
                    Err(e) => return Stop::Reopen(e.to_string()),
                },
            },
        };
        let mut group = Vec::new();
        let stop = loop {
            match item {
                None => break Some(Stop::Reopen("the consumer ended".into())),
                Some(Err(JetStreamError::Damaged {
                    sequence,
                    subject,
                    message,
                })) => {
                    tracing::error!(sequence, %subject, %message,
                        "a record of the log stream is damaged: this node applies nothing new");
                    commit.poison(format!(
                        "stream sequence {sequence} on {subject} is damaged ({message}): this \
                         node cannot apply the log past it"
                    ));
                    break Some(Stop::Done);
                }
                Some(Err(e)) => break Some(Stop::Reopen(e.to_string())),
                Some(Ok((record, entry))) => {
                    match next_step(record, *expected) {
                        Step::Apply => {}
                        Step::Reopen(why) => break Some(Stop::Reopen(why)),
                        Step::Gap(why) => {
                            tracing::error!(
                                record,
                                expected = *expected,
                                "the log stream skipped records: this node applies nothing new"
                            );
                            commit.poison(why);
                            break Some(Stop::Done);
                        }
                    }
                    *expected = record + 1;
                    if let LogEntry::Batch(batch) = &entry {
                        commit.note_consumed(batch);
                    }
                    group.push(entry);
                }
            }
            if group.len() >= STREAM_GROUP_MAX {
                break None;
            }
            // More already here joins the group; otherwise hand it on now.
            match futures::FutureExt::now_or_never(records.next()) {
                Some(next) => item = next,
                None => break None,
            }
        };
        // What was read before a stop is whole and in order: it is applied either way.
        if !group.is_empty() && committed_tx.send(group).await.is_err() {
            return Stop::Done;
        }
        if let Some(stop) = stop {
            return stop;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewound_reader_reads_on_and_only_a_gap_stops_the_node() {
        assert_eq!(next_step(1338, 1338), Step::Apply);
        // Seen after a NATS server's death: record 0 handed again where 1338 was due.
        assert!(matches!(next_step(0, 1338), Step::Reopen(_)));
        assert!(matches!(next_step(1337, 1338), Step::Reopen(_)));
        assert!(matches!(next_step(1339, 1338), Step::Gap(_)));
    }
}
