//! Node checkpoints: everything a node's start-up builds in memory from the log's records
//! before record *k*, taken at the end of the start-up replay (where the pipeline runs inline,
//! so the cut is consistent), so that the next start restores it and replays only the records
//! from *k* on (issue 15, item 2; docs/snapshots.md, "Node checkpoints").
//!
//! What is in memory after a replay, and where each piece comes from on a restore:
//! - the pipeline ([`InlineDriver::snapshot`], exact: docs/snapshots.md);
//! - the alert and sober-day books with each alert's provenance ([`RecoveredState`]);
//! - the TAC index ([`TacState`]) and each activation's last contact ([`LastContactState`]);
//! - the change history's order book, every purge record, and the user and tag credential
//!   records (start-up looks for names among them) — [`ChangeHistory::resume`];
//! - the (batches, readings) counted, and in a cluster the tags' positions in the stream.
//!
//! The rest of what the replay produces goes to stores on disk (the trail store, the change
//! history and users in the metadata database, crime batches, the hub's decisions) and is
//! written before the checkpoint is, so those stores are at or past *k* whenever a checkpoint
//! exists; each store's mark is saved with it and a store found behind its mark (deleted,
//! restored from an older copy) makes the checkpoint unusable. Anything that does not fit —
//! another format version, a checksum that fails, another build or configuration, a record
//! past the log's end, log bytes before *k* that differ from when it was taken (damage,
//! compaction by a purge), a store behind — sets the checkpoint aside with the reason logged,
//! and the node replays the whole log: never a wrong state.
//!
//! File layout (`DATA/node.checkpoint`, written atomically, `0600`; `store::checkpoint_file`):
//! magic `TSNODECK`, version (u16 LE), record *k* (u64 LE), pipeline snapshot length (u64 LE),
//! node state length (u64 LE), CRC-32 of everything after the header (u32 LE); then the
//! pipeline snapshot (its own format) and the node state (CBOR).

use super::log_source::LogSource;
use super::outputs_link::Ordinals;
use super::startup::ChangeHistory;
use crate::alerts::live_alerts::RecoveredState;
use crate::alerts::LiveAlerts;
use crate::config::ServerConfig;
use crate::log::DedupState;
use crate::model::tag_partition::PartitionSet;
use crate::model::{ControlRecord, SoberDay};
use crate::orders::OrderBook;
use crate::pipeline::driver::InlineDriver;
use crate::pipeline::snapshot::{AlertRepr, Snap, SnapshotError};
use crate::pipeline::Provenance;
use crate::store::checkpoint_file::{self, CheckpointFileError};
use crate::store::last_contact::{LastContactBook, LastContactState};
use crate::store::tac_book::{TacBook, TacState};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"TSNODECK";
/// Version of the node checkpoint's layout (the pipeline snapshot inside has its own).
/// 2: each activation's rule outputs counted (ordinals) and the partitions whose rules ran.
/// 3: each activation's last contact.
pub const VERSION: u16 = 3;
/// Magic, version, record, pipeline length, state length, CRC-32.
const HEADER_LEN: usize = 8 + 2 + 8 + 8 + 8 + 4;

/// The record the last start restored a checkpoint at (`u64::MAX`: it replayed the whole log)
/// and how many records it replayed, for `/metrics`.
static RESTORED_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static REPLAYED: AtomicU64 = AtomicU64::new(0);

/// Writes the start-up gauges: where this process's start-up replay began and how much it read.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    let at = RESTORED_AT.load(Ordering::Relaxed);
    e.gauge(
        "tagstream_startup_checkpoint_record",
        "Log record the start-up restored the node checkpoint at (-1: no checkpoint, the whole log was replayed).",
        if at == u64::MAX { -1.0 } else { at as f64 },
    );
    e.gauge(
        "tagstream_startup_records_replayed",
        "Log records the start-up replay read (after the checkpoint, or the whole log).",
        REPLAYED.load(Ordering::Relaxed) as f64,
    );
}

/// Notes where the start-up replay began and how many records it read.
pub fn note_startup(restored_at: Option<u64>, replayed: u64) {
    RESTORED_AT.store(restored_at.unwrap_or(u64::MAX), Ordering::Relaxed);
    REPLAYED.store(replayed, Ordering::Relaxed);
}

/// Why a checkpoint could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    File(#[from] CheckpointFileError),
    #[error("not a node checkpoint (bad magic bytes)")]
    BadMagic,
    #[error("node checkpoint version {found}, this build reads version {expected}")]
    UnsupportedVersion { found: u16, expected: u16 },
    #[error("node checkpoint of {found} bytes where its header says {expected}")]
    Length { expected: u64, found: u64 },
    #[error("node checkpoint damaged: checksum {found:08x}, header says {expected:08x}")]
    Checksum { expected: u32, found: u32 },
    #[error("cannot encode the node checkpoint: {0}")]
    Encode(String),
    #[error("cannot decode the node checkpoint: {0}")]
    Decode(String),
    /// It is whole but does not fit this node now (configuration, log end, stores).
    #[error("{0}")]
    Mismatch(String),
    /// The log's records before it are not those it was taken over: compacted by a purge (so
    /// it may hold what the purge removed), damaged or replaced.
    #[error("{0}")]
    LogChanged(String),
    #[error("pipeline snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Each store's mark of how far along the log it is: a checkpoint is used only over stores at
/// least as far along as when it was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMarks {
    pub users_applied_below: u64,
    pub changes_recorded_below: u64,
    pub crimes_applied_below: u64,
    pub crime_decisions_below: u64,
    pub alert_decisions_below: u64,
}

impl StoreMarks {
    /// The marks as the stores hold them now.
    pub fn read(
        metadata: &crate::store::metadata::Metadata,
        crimes: &crate::store::crime_store::CrimeStore,
        alerts: &crate::alerts::alert_store::AlertStore,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            users_applied_below: metadata.users_applied_below()?,
            changes_recorded_below: metadata.changes_recorded_below()?,
            crimes_applied_below: crimes.crimes_applied_below()?,
            crime_decisions_below: crimes.decisions_applied_below()?,
            alert_decisions_below: alerts.decisions_applied_below()?,
        })
    }

    /// The first store that is behind `saved`, if any.
    fn behind(&self, saved: &StoreMarks) -> Option<String> {
        let pairs = [
            ("users", self.users_applied_below, saved.users_applied_below),
            (
                "change history",
                self.changes_recorded_below,
                saved.changes_recorded_below,
            ),
            (
                "crime batches",
                self.crimes_applied_below,
                saved.crimes_applied_below,
            ),
            (
                "hit decisions",
                self.crime_decisions_below,
                saved.crime_decisions_below,
            ),
            (
                "alert decisions",
                self.alert_decisions_below,
                saved.alert_decisions_below,
            ),
        ];
        pairs
            .iter()
            .find(|(_, now, then)| now < then)
            .map(|(name, now, then)| {
                format!(
                    "the {name} store is behind the checkpoint (at record {now}, it was at {then})"
                )
            })
    }
}

/// One log segment's bytes before the checkpoint's record, as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SegmentMark {
    first_record: u64,
    len_bytes: u64,
    crc: u32,
}

/// Everything but the pipeline (CBOR).
#[derive(Serialize, Deserialize)]
struct NodeState {
    record: u64,
    /// The build and configuration the state was computed under: another of either may
    /// compute other outputs from the same records.
    build: String,
    config: String,
    /// The embedded log's segments up to the record (empty for a stream).
    segments: Vec<SegmentMark>,
    counted: (u64, u64),
    alerts: Vec<AlertRepr>,
    sober_days: Vec<SoberDay>,
    /// (alert id, lane, record).
    origins: Vec<(String, u32, u64)>,
    tac: TacState,
    last_contact: LastContactState,
    book: OrderBook,
    purge_records: Vec<(u64, ControlRecord)>,
    credential_records: Vec<(u64, ControlRecord)>,
    /// Stream: (tag, epoch, last seq) of every tag seen.
    positions: Vec<(String, u32, u64)>,
    marks: StoreMarks,
    /// Each activation's rule outputs so far (the outputs stream's ordinals).
    ordinals: Vec<(String, u64)>,
    /// The clock partitions whose rules ran (a processing node's share); `None`: all.
    computed: Option<Vec<u32>>,
}

/// What the build and configuration give a checkpoint to compare with.
fn fingerprint(config: &ServerConfig) -> (String, String) {
    let build = format!("tagstream {}", env!("CARGO_PKG_VERSION"));
    let config = serde_json::json!({
        "partitions": config.partitions,
        "pipeline": config.pipeline,
        "rules": config.rules,
    })
    .to_string();
    (build, config)
}

/// The state at the end of a start-up replay, in memory until the stores are past it.
pub struct Cut {
    pipeline: Vec<u8>,
    state: NodeState,
}

impl Cut {
    /// Takes the state after the records before `record` were fed: the driver (inline), the
    /// alert book before [`LiveAlerts::finish_recovery`], the TAC index, the history before
    /// its records are taken out.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        config: &ServerConfig,
        record: u64,
        driver: &InlineDriver,
        alerts: &LiveAlerts,
        tac: &TacBook,
        last_contact: &LastContactBook,
        history: &ChangeHistory,
        counted: (u64, u64),
        log: &LogSource,
        ordinals: &Ordinals,
        computed: Option<&PartitionSet>,
    ) -> Result<Cut, CheckpointError> {
        let pipeline = driver.snapshot()?;
        let (build, config) = fingerprint(config);
        let segments = match log.dir() {
            Some(dir) => segment_marks(dir, record, None)?,
            None => Vec::new(),
        };
        let recovered = alerts.recovered_state();
        let (book, purges, credentials) = history.checkpoint_parts();
        let positions = log.positions();
        let mut positions: Vec<(String, u32, u64)> = positions
            .last_seq_by_tag
            .iter()
            .map(|(tag, seq)| (tag.clone(), positions.position(tag).0, *seq))
            .collect();
        positions.sort();
        let unshared = |records: &[(u64, Arc<ControlRecord>)]| {
            records
                .iter()
                .map(|(r, c)| (*r, (**c).clone()))
                .collect::<Vec<_>>()
        };
        let state = NodeState {
            record,
            build,
            config,
            segments,
            counted,
            alerts: recovered.alerts.iter().map(Snap::to_repr).collect(),
            sober_days: recovered.sober_days,
            origins: recovered
                .origins
                .into_iter()
                .map(|(id, o)| (id, o.lane, o.record))
                .collect(),
            tac: tac.save(),
            last_contact: last_contact.save(),
            book: book.clone(),
            purge_records: unshared(purges),
            credential_records: unshared(&credentials),
            positions,
            marks: StoreMarks::default(),
            ordinals: ordinals.to_vec(),
            computed: computed.map(|c| c.members().collect()),
        };
        Ok(Cut { pipeline, state })
    }

    /// The record the cut was taken at.
    pub fn record(&self) -> u64 {
        self.state.record
    }

    /// Writes the checkpoint into `data_dir`, with the stores' marks as they are now (every
    /// store past the cut's record). Returns the bytes written.
    pub fn write(mut self, data_dir: &Path, marks: StoreMarks) -> Result<u64, CheckpointError> {
        self.state.marks = marks;
        let mut state = Vec::new();
        ciborium::into_writer(&self.state, &mut state)
            .map_err(|e| CheckpointError::Encode(e.to_string()))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.pipeline);
        crc.update(&state);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.state.record.to_le_bytes());
        header.extend_from_slice(&(self.pipeline.len() as u64).to_le_bytes());
        header.extend_from_slice(&(state.len() as u64).to_le_bytes());
        header.extend_from_slice(&crc.finalize().to_le_bytes());
        Ok(checkpoint_file::write(
            data_dir,
            &[&header, &self.pipeline, &state],
        )?)
    }
}

/// The log's segments holding records before `record` (their bytes up to each one's length
/// now, or, checking, up to `lengths`' length for the same segment).
fn segment_marks(
    dir: &Path,
    record: u64,
    lengths: Option<&[SegmentMark]>,
) -> Result<Vec<SegmentMark>, CheckpointError> {
    let reader = crate::log::LogReader::open(dir)
        .map_err(|e| CheckpointError::Mismatch(format!("cannot list the log's segments: {e}")))?;
    let mut marks = Vec::new();
    for segment in reader.segments() {
        if segment.first_record >= record {
            break;
        }
        let len_bytes = match lengths {
            Some(saved) => match saved
                .iter()
                .find(|m| m.first_record == segment.first_record)
            {
                Some(m) => m.len_bytes,
                None => break,
            },
            None => std::fs::metadata(&segment.path)
                .map_err(|e| CheckpointError::Mismatch(format!("{}: {e}", segment.path.display())))?
                .len(),
        };
        let file = std::fs::File::open(&segment.path)
            .map_err(|e| CheckpointError::Mismatch(format!("{}: {e}", segment.path.display())))?;
        let mut crc = crc32fast::Hasher::new();
        let mut taken = file.take(len_bytes);
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = taken.read(&mut buf).map_err(|e| {
                CheckpointError::Mismatch(format!("{}: {e}", segment.path.display()))
            })?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
            read += n as u64;
        }
        marks.push(SegmentMark {
            first_record: segment.first_record,
            len_bytes: read,
            crc: crc.finalize(),
        });
    }
    Ok(marks)
}

/// A checkpoint restored: the start-up replay goes on from `record`.
pub struct Resume {
    pub record: u64,
    pub driver: InlineDriver,
    pub alerts: RecoveredState,
    pub tac: TacState,
    pub last_contact: LastContactState,
    pub history: ChangeHistory,
    /// (batches, readings) in the records before `record`.
    pub counted: (u64, u64),
    /// Stream: the tags' positions after the records before `record`.
    pub positions: DedupState,
    /// Each activation's rule outputs in the records before `record`.
    pub ordinals: Ordinals,
}

/// What a checkpoint is checked against.
pub struct Here<'a> {
    pub config: &'a ServerConfig,
    pub log: &'a LogSource,
    /// The record the next append gets: the log's end.
    pub next_log_record: u64,
    /// The trail store's checkpoint: it holds every position before it.
    pub trails_from: u64,
    pub marks: StoreMarks,
    /// The crime store's mark (the history keeps the crime batches from it on).
    pub crime_batches_from: u64,
    /// The partitions this node runs the rules of (`None`: all): a checkpoint taken where
    /// the rules of some of them did not run cannot be continued from.
    pub owned: Option<&'a PartitionSet>,
}

/// The checkpoint in `here.config.data_dir`, restored, if there is one and it fits; one that
/// does not fit is set aside with the reason logged (`None`: replay the whole log).
pub fn load(here: &Here<'_>) -> Option<Resume> {
    let data_dir = &here.config.data_dir;
    let bytes = match checkpoint_file::read(data_dir) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "node checkpoint unreadable; replaying the whole log");
            return None;
        }
    };
    match restore(&bytes, here) {
        Ok(resume) => Some(resume),
        // Over a log that changed before it (a purge's compaction among the causes) it may
        // hold what was purged: removed. Otherwise kept aside for a look.
        Err(e @ CheckpointError::LogChanged(_)) => {
            tracing::warn!(reason = %e, "node checkpoint not used (removed); replaying the whole log");
            if let Err(e) = checkpoint_file::discard(data_dir) {
                tracing::error!(error = %e, "cannot remove the node checkpoint");
            }
            None
        }
        Err(e) => {
            tracing::warn!(reason = %e, "node checkpoint not used (set aside as {}); replaying the whole log",
                checkpoint_file::REJECTED_NAME);
            if let Err(e) = checkpoint_file::set_aside(data_dir) {
                tracing::error!(error = %e, "cannot set the node checkpoint aside");
            }
            None
        }
    }
}

/// The record a checkpoint was taken at and whether its rules ran for every partition of
/// `owned` (checked whole: header, checksum, state); an error says why it cannot be read.
pub fn covers(bytes: &[u8], owned: &PartitionSet) -> Result<(u64, bool), CheckpointError> {
    let (_, state) = split(bytes)?;
    let state: NodeState =
        ciborium::from_reader(state).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    let covered = match &state.computed {
        None => true,
        Some(computed) => owned.members().all(|p| computed.contains(&p)),
    };
    Ok((state.record, covered))
}

/// Checks `bytes` against this node and restores them.
fn restore(bytes: &[u8], here: &Here<'_>) -> Result<Resume, CheckpointError> {
    let (pipeline, state) = split(bytes)?;
    let state: NodeState =
        ciborium::from_reader(state).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    let (build, config) = fingerprint(here.config);
    if state.build != build {
        return Err(CheckpointError::Mismatch(format!(
            "written by {}, this is {build}",
            state.build
        )));
    }
    if state.config != config {
        return Err(CheckpointError::Mismatch(
            "the pipeline, rules or partitions configuration differs from the checkpoint's".into(),
        ));
    }
    let k = state.record;
    if k > here.next_log_record {
        return Err(CheckpointError::Mismatch(format!(
            "taken at record {k}, past the log's end (record {})",
            here.next_log_record
        )));
    }
    if let Some(why) = here.log.damaged_before(k) {
        return Err(CheckpointError::LogChanged(why));
    }
    if let Some(dir) = here.log.dir() {
        let now = segment_marks(dir, k, Some(&state.segments))?;
        if now != state.segments {
            return Err(CheckpointError::LogChanged(format!(
                "the log's records before {k} are not those the checkpoint was taken over \
                 (compacted by a purge, damaged or replaced)"
            )));
        }
    }
    if here.trails_from < k {
        return Err(CheckpointError::Mismatch(format!(
            "the trail store holds positions only up to record {}, the checkpoint is at {k}",
            here.trails_from
        )));
    }
    if let Some(why) = here.marks.behind(&state.marks) {
        return Err(CheckpointError::Mismatch(why));
    }
    if let Some(computed) = &state.computed {
        let missing: Vec<u32> = match here.owned {
            None => (0..here.config.pipeline.clock_partitions.max(1))
                .filter(|p| !computed.contains(p))
                .collect(),
            Some(owned) => owned.members().filter(|p| !computed.contains(p)).collect(),
        };
        if let Some(first) = missing.first() {
            return Err(CheckpointError::Mismatch(format!(
                "taken on a node that ran the rules of other partitions ({} of this node's not \
                 among them, partition {first} the first)",
                missing.len()
            )));
        }
    }
    let driver = super::inline::PipelineDesc {
        start: &crate::model::OrdersFile::default(),
        pipeline: here.config.pipeline,
        rules: here.config.rules.clone(),
        partitions: here.config.partitions,
    }
    .restore(pipeline)?;
    let shared = |records: Vec<(u64, ControlRecord)>| {
        records
            .into_iter()
            .map(|(r, c)| (r, Arc::new(c)))
            .collect::<Vec<_>>()
    };
    let mut positions = DedupState::default();
    for (tag, epoch, seq) in &state.positions {
        positions.note(tag, *epoch, *seq);
    }
    Ok(Resume {
        record: k,
        driver,
        alerts: RecoveredState {
            alerts: state
                .alerts
                .into_iter()
                .map(crate::model::Alert::from_repr)
                .collect(),
            sober_days: state.sober_days,
            origins: state
                .origins
                .into_iter()
                .map(|(id, lane, record)| (id, Provenance { lane, record }))
                .collect(),
        },
        tac: state.tac,
        last_contact: state.last_contact,
        history: ChangeHistory::resume(
            state.book,
            shared(state.purge_records),
            shared(state.credential_records),
            here.crime_batches_from,
        ),
        counted: state.counted,
        positions,
        ordinals: Ordinals::from_vec(state.ordinals),
    })
}

/// The header checked; (pipeline snapshot, node state).
fn split(bytes: &[u8]) -> Result<(&[u8], &[u8]), CheckpointError> {
    let found = bytes.len() as u64;
    let header = bytes.get(..HEADER_LEN).ok_or(CheckpointError::Length {
        expected: HEADER_LEN as u64,
        found,
    })?;
    if &header[..8] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            found: version,
            expected: VERSION,
        });
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (pipeline_len, state_len) = (u64_at(18), u64_at(26));
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[34..38]);
    let expected_crc = u32::from_le_bytes(crc);
    let expected = (HEADER_LEN as u64)
        .checked_add(pipeline_len)
        .and_then(|n| n.checked_add(state_len))
        .unwrap_or(u64::MAX);
    if expected != found {
        return Err(CheckpointError::Length { expected, found });
    }
    let body = &bytes[HEADER_LEN..];
    let found_crc = crc32fast::hash(body);
    if found_crc != expected_crc {
        return Err(CheckpointError::Checksum {
            expected: expected_crc,
            found: found_crc,
        });
    }
    Ok(body.split_at(pipeline_len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(pipeline: &[u8], state: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(pipeline);
        crc.update(state);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&7u64.to_le_bytes());
        out.extend_from_slice(&(pipeline.len() as u64).to_le_bytes());
        out.extend_from_slice(&(state.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(pipeline);
        out.extend_from_slice(state);
        out
    }

    #[test]
    fn the_header_refuses_other_files_versions_lengths_and_flipped_bits() {
        let good = framed(b"pipe", b"state");
        let (p, s) = split(&good).unwrap();
        assert_eq!((p, s), (&b"pipe"[..], &b"state"[..]));
        assert!(matches!(
            split(b"short"),
            Err(CheckpointError::Length { .. })
        ));
        let mut magic = good.clone();
        magic[0] ^= 1;
        assert!(matches!(split(&magic), Err(CheckpointError::BadMagic)));
        let mut version = good.clone();
        version[8] = 9;
        assert!(matches!(
            split(&version),
            Err(CheckpointError::UnsupportedVersion { found: 9, .. })
        ));
        assert!(matches!(
            split(&good[..good.len() - 1]),
            Err(CheckpointError::Length { .. })
        ));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(matches!(
            split(&flipped),
            Err(CheckpointError::Checksum { .. })
        ));
    }

    #[test]
    fn a_store_behind_its_mark_is_named() {
        let saved = StoreMarks {
            crimes_applied_below: 10,
            ..StoreMarks::default()
        };
        let mut now = saved;
        assert_eq!(now.behind(&saved), None);
        now.users_applied_below = 99;
        assert_eq!(now.behind(&saved), None);
        now.crimes_applied_below = 0;
        assert!(now.behind(&saved).unwrap().contains("crime batches"));
    }
}
