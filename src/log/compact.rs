//! Compaction: rewriting sealed segments without the readings of given tags in given event-time
//! windows. This is how retention removes an activation's readings from the durable log.
//!
//! What it guarantees:
//! - **Stable numbering.** Every record stays, in place, with its tag, seq and arrival time; only
//!   readings are removed. A record that loses all of them stays as an empty batch (a
//!   tombstone). The trail store's checkpoint (a record number) and the committer's dedup state
//!   (the highest seq stored per tag, rebuilt by recovery) both rely on this.
//! - **Crash safety.** A segment is rewritten into `NAME.seg.compact`, fsynced, read back and
//!   checked (same number of records, every checksum valid), renamed over the original, and the
//!   directory fsynced. A crash leaves either the old segment or the new one, never a mix; a
//!   leftover temp file is removed when the log is next opened for writing or compacted.
//! - **Sealed segments only.** Only segments wholly before `before_record` are considered (the
//!   boundary returned by sealing the writer's segment), and never the last segment of the
//!   directory, which a writer may be appending to. An acknowledged reading outside the windows
//!   is never at risk: a segment is replaced only by a verified copy holding all of its records.
//! - **Damage is carried over.** A segment with damaged ranges (see [`super::resync`]) is
//!   compacted from memory: its intact records as usual, each damaged range copied byte for byte
//!   (it cannot be decoded, so nothing in it can be removed; recovery quarantined the original),
//!   so readers skip the same damage, with the same record numbers, before and after.
//! - **Erasure.** The replaced segment's bytes are overwritten with zeros through a handle kept
//!   open across the rename (best effort: a copy-on-write filesystem, a flash translation layer
//!   or a backup may still hold the old blocks). A reader holding the old file open at that
//!   moment sees zeros and reports damage; retention serialises its own readers with compaction.

use super::error::{Corruption, LogError, LogResult};
use super::record::FRAME_HEADER_LEN;
use super::record::{decode_batch_payload, encode_batch_frame, encode_payload_frame};
use super::record::{
    decode_control_payload, encode_control_frame, is_control_payload, parse_batch_header,
};
use super::resync::{next_frame_start, scan, Span};
use super::segment::{list_segments, sync_dir, Frame, FrameReader, SegmentFile, SEGMENT_HEADER};
use crate::model::TimeMs;
use crate::model::{Change, ControlRecord, LogEntry};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Suffix of a segment being rewritten (`00000000000000000000.seg.compact`).
pub const COMPACT_SUFFIX: &str = ".seg.compact";
const ZEROS_BYTES: usize = 1 << 20;

/// The readings to remove: per tag, event-time windows `[from_ms, to_ms)` (an activation's);
/// and the purged people and activations whose control records are erased (rewritten as
/// `redacted` records, so record numbers are kept).
#[derive(Debug, Clone, Default)]
pub struct TagWindows {
    by_tag: HashMap<String, Vec<(TimeMs, TimeMs)>>,
    people: std::collections::HashSet<String>,
    activations: std::collections::HashSet<String>,
}

impl TagWindows {
    /// Adds the window `[from_ms, to_ms)` of `tag`.
    pub fn add(&mut self, tag: &str, from_ms: TimeMs, to_ms: TimeMs) {
        self.by_tag
            .entry(tag.to_owned())
            .or_default()
            .push((from_ms, to_ms));
    }

    /// Erases the control records about this (purged) person.
    pub fn add_person(&mut self, person: &str) {
        self.people.insert(person.to_owned());
    }

    /// Erases the control records about this (purged) activation.
    pub fn add_activation(&mut self, activation: &str) {
        self.activations.insert(activation.to_owned());
    }

    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty() && self.people.is_empty() && self.activations.is_empty()
    }

    /// The redacted copy of a control payload about a purged person or activation, if it is one.
    fn redact(&self, payload: &[u8]) -> Option<ControlRecord> {
        self.redact_control(&decode_control_payload(payload).ok()?)
    }

    /// What a record becomes once compacted, if it changes: a batch without the covered
    /// readings (an empty batch when none is left), or a control record about a purged person
    /// or activation redacted. With the number of readings removed. A log kept elsewhere (a
    /// stream) compacts record by record with this, the same rule as the segments here.
    pub fn compact_entry(&self, entry: &LogEntry) -> Option<(LogEntry, u64)> {
        match entry {
            LogEntry::Batch(batch) => {
                if !self.has_tag(&batch.tag) {
                    return None;
                }
                let mut kept = (**batch).clone();
                kept.readings.retain(|r| !self.covers(&batch.tag, r.t_ms));
                let removed = (batch.readings.len() - kept.readings.len()) as u64;
                (removed > 0).then(|| (LogEntry::Batch(std::sync::Arc::new(kept)), removed))
            }
            LogEntry::Control { record, control } => self.redact_control(control).map(|redacted| {
                let control = std::sync::Arc::new(redacted);
                let record = *record;
                (LogEntry::Control { record, control }, 0)
            }),
        }
    }

    /// The redacted copy of a control record about a purged person or activation, if it is one.
    fn redact_control(&self, control: &ControlRecord) -> Option<ControlRecord> {
        let about = match &control.change {
            Change::PutPerson { person } => self.people.contains(&person.id),
            Change::PutActivation { activation } => {
                self.people.contains(&activation.person)
                    || self.activations.contains(&activation.id)
            }
            Change::EndActivation { activation, .. } => self.activations.contains(activation),
            Change::PutOrder { order } => self.people.contains(&order.person),
            Change::AlertAction {
                person, activation, ..
            }
            | Change::HitReview {
                person, activation, ..
            } => self.people.contains(person) || self.activations.contains(activation),
            Change::Purge { .. }
            | Change::Redacted { .. }
            | Change::PutUser { .. }
            | Change::DisableUser { .. }
            | Change::RevokeTag { .. }
            | Change::RotateTag { .. }
            | Change::TagCredentialState { .. }
            | Change::BindDevice { .. }
            | Change::UnbindDevice { .. }
            | Change::CrimeBatch { .. } => false,
        };
        about.then(|| ControlRecord {
            recorded: control.recorded,
            actor: String::new(),
            effective: None,
            change: Change::Redacted {
                was: control.change.op().to_string(),
            },
        })
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.by_tag.contains_key(tag)
    }

    /// Whether a reading of `tag` at event time `t_ms` is to be removed.
    pub fn covers(&self, tag: &str, t_ms: TimeMs) -> bool {
        self.by_tag
            .get(tag)
            .is_some_and(|ws| ws.iter().any(|(from, to)| t_ms >= *from && t_ms < *to))
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Sealed segments read.
    pub segments_scanned: u64,
    /// Segments replaced by a rewritten copy.
    pub segments_rewritten: u64,
    pub records_scanned: u64,
    /// Records that lost every reading and were kept as empty batches.
    pub records_emptied: u64,
    pub readings_removed: u64,
    /// Control records about purged people or activations, erased (kept as `redacted`).
    pub controls_redacted: u64,
    /// Bytes of the sealed segments read.
    pub bytes_scanned: u64,
    /// Size of the rewritten segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Temp files of an interrupted compaction found and removed.
    pub temp_files_removed: u64,
    /// Sealed segments with damaged ranges (compacted around them, the ranges kept as they are).
    pub damaged_segments: u64,
    pub elapsed_ms: u64,
}

/// Removes the readings `windows` covers from every sealed segment of the log in `dir` that
/// lies wholly before record `before_record` (see the module documentation).
pub fn compact(dir: &Path, before_record: u64, windows: &TagWindows) -> LogResult<CompactReport> {
    let started = Instant::now();
    let mut report = CompactReport {
        temp_files_removed: remove_temp_files(dir)?,
        ..CompactReport::default()
    };
    let segments = list_segments(dir)?;
    for pair in segments.windows(2) {
        let (segment, next) = (&pair[0], &pair[1]);
        if next.first_record > before_record {
            break;
        }
        let Some(scan) = scan_segment(segment, windows)? else {
            compact_damaged(dir, segment, windows, &mut report)?;
            continue;
        };
        report.segments_scanned += 1;
        report.records_scanned += scan.records;
        report.bytes_scanned += scan.len_bytes;
        if scan.readings_removed == 0 && scan.controls_redacted == 0 {
            continue;
        }
        report.controls_redacted += scan.controls_redacted;
        let len_after = rewrite_segment(dir, segment, windows, scan.records)?;
        report.segments_rewritten += 1;
        report.readings_removed += scan.readings_removed;
        report.records_emptied += scan.records_emptied;
        report.bytes_before += scan.len_bytes;
        report.bytes_after += len_after;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Removes temp files an interrupted compaction left in `dir`; returns how many.
pub fn remove_temp_files(dir: &Path) -> LogResult<u64> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing log directory", dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing log directory", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(COMPACT_SUFFIX))
        {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| LogError::io("removing compaction temp file", &path, e))?;
            tracing::warn!(file = %path.display(), "removed the temp file of an interrupted log compaction");
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

struct Scan {
    records: u64,
    controls_redacted: u64,
    len_bytes: u64,
    readings_removed: u64,
    records_emptied: u64,
}

/// Opens a sealed segment for reading; damage in it is an error.
fn open_sealed(path: &Path) -> LogResult<FrameReader> {
    FrameReader::open(path)?.map_err(|kind| LogError::Corrupt {
        path: path.to_owned(),
        offset: 0,
        kind,
    })
}

/// The next frame of a sealed segment: `Some(payload)` in `buf`, `None` at its end.
fn next_sealed(reader: &mut FrameReader, path: &Path, buf: &mut Vec<u8>) -> LogResult<bool> {
    match reader.next_frame(buf)? {
        Frame::Record { .. } => Ok(true),
        Frame::End => Ok(false),
        Frame::Damaged { offset, kind } => Err(LogError::Corrupt {
            path: path.to_owned(),
            offset,
            kind,
        }),
    }
}

fn corrupt(path: &Path, kind: Corruption) -> LogError {
    LogError::Corrupt {
        path: path.to_owned(),
        offset: 0,
        kind,
    }
}

/// Counts what compaction would remove from a segment; only batches of a tag with windows are
/// decoded. `None`: the segment has damage inside (see [`compact_damaged`]).
fn scan_segment(segment: &SegmentFile, windows: &TagWindows) -> LogResult<Option<Scan>> {
    let path = &segment.path;
    let Ok(mut reader) = FrameReader::open(path)? else {
        return Ok(None);
    };
    let mut scan = Scan {
        records: 0,
        controls_redacted: 0,
        len_bytes: reader.len_bytes(),
        readings_removed: 0,
        records_emptied: 0,
    };
    let mut payload = Vec::new();
    loop {
        match reader.next_frame(&mut payload)? {
            Frame::Record { .. } => {}
            Frame::End => break,
            Frame::Damaged { .. } => return Ok(None),
        }
        scan.records += 1;
        // Control records hold no readings: carried over unchanged unless about a purged
        // person or activation.
        if is_control_payload(&payload) {
            if windows.redact(&payload).is_some() {
                scan.controls_redacted += 1;
            }
            continue;
        }
        let Ok(header) = parse_batch_header(&payload) else {
            return Ok(None);
        };
        if !windows.has_tag(header.tag) {
            continue;
        }
        let Ok(batch) = decode_batch_payload(&payload) else {
            return Ok(None);
        };
        let removed = batch
            .readings
            .iter()
            .filter(|r| windows.covers(&batch.tag, r.t_ms))
            .count();
        scan.readings_removed += removed as u64;
        if removed > 0 && removed == batch.readings.len() {
            scan.records_emptied += 1;
        }
    }
    Ok(Some(scan))
}

/// Compacts a sealed segment with damage inside from memory: intact records as usual, damaged
/// ranges copied as they are. Checked like any rewrite (same records, same damaged ranges).
fn compact_damaged(
    dir: &Path,
    segment: &SegmentFile,
    windows: &TagWindows,
    report: &mut CompactReport,
) -> LogResult<()> {
    let path = &segment.path;
    let bytes = fs::read(path).map_err(|e| LogError::io("reading segment", path, e))?;
    if !bytes.starts_with(&SEGMENT_HEADER)
        && next_frame_start(&bytes, SEGMENT_HEADER.len()).is_none()
    {
        // Not a log segment at all: the reader refuses it too; FrameReader says exactly why.
        open_sealed(path)?;
    }
    // A damaged header before intact records is replaced by a good one in the rewrite.
    let spans = scan(&bytes, SEGMENT_HEADER.len());
    let mut out = SEGMENT_HEADER.to_vec();
    let (mut records, mut damaged, mut removed_total, mut emptied) = (0u64, 0u64, 0u64, 0u64);
    for span in &spans {
        match *span {
            Span::Record { offset, len } => {
                records += 1;
                let (offset, len) = (offset as usize, len as usize);
                let frame = &bytes[offset..offset + len];
                let payload = &frame[FRAME_HEADER_LEN..];
                if is_control_payload(payload) {
                    match windows.redact(payload) {
                        Some(redacted) => {
                            encode_control_frame(&redacted, &mut out)?;
                        }
                        None => out.extend_from_slice(frame),
                    }
                    continue;
                }
                let mut batch = decode_batch_payload(payload).map_err(|e| LogError::Corrupt {
                    path: path.clone(),
                    offset: offset as u64,
                    kind: e.into(),
                })?;
                let before = batch.readings.len();
                if windows.has_tag(&batch.tag) {
                    batch
                        .readings
                        .retain(|r| !windows.covers(&batch.tag, r.t_ms));
                }
                let removed = before - batch.readings.len();
                if removed == 0 {
                    out.extend_from_slice(frame);
                    continue;
                }
                removed_total += removed as u64;
                if batch.readings.is_empty() {
                    emptied += 1;
                }
                encode_batch_frame(&batch, &mut out)?;
            }
            Span::Damaged { start, end, .. } => {
                damaged += 1;
                out.extend_from_slice(&bytes[start as usize..end as usize]);
            }
        }
    }
    report.segments_scanned += 1;
    report.damaged_segments += 1;
    report.records_scanned += records;
    report.bytes_scanned += bytes.len() as u64;
    tracing::warn!(
        segment = %path.display(),
        damaged_ranges = damaged,
        "compacting a segment with damaged ranges: they are kept as they are"
    );
    if removed_total == 0 {
        return Ok(());
    }
    let temp = temp_path(segment);
    let io = |op: &'static str| {
        let p = temp.clone();
        move |e| LogError::io(op, p, e)
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io("creating compaction temp file"))?;
    file.write_all(&out)
        .and_then(|()| file.sync_all())
        .map_err(io("writing compaction temp file"))?;
    drop(file);
    // Read the copy back: the same records and the same number of damaged ranges.
    let check = fs::read(&temp).map_err(io("checking compaction temp file"))?;
    let check_spans = scan(&check, SEGMENT_HEADER.len());
    let copied = check_spans
        .iter()
        .filter(|s| matches!(s, Span::Record { .. }))
        .count() as u64;
    let copied_damage = check_spans.len() as u64 - copied;
    if check != out || copied != records || copied_damage != damaged {
        return Err(LogError::io(
            "checking compaction temp file",
            &temp,
            std::io::Error::other(format!(
                "{copied} records and {copied_damage} damaged ranges written, \
                 {records} and {damaged} expected"
            )),
        ));
    }
    replace_segment(dir, path, &temp)?;
    report.segments_rewritten += 1;
    report.readings_removed += removed_total;
    report.records_emptied += emptied;
    report.bytes_before += bytes.len() as u64;
    report.bytes_after += out.len() as u64;
    Ok(())
}

fn temp_path(segment: &SegmentFile) -> PathBuf {
    segment
        .path
        .with_file_name(format!("{}.compact", segment.name()))
}

/// Rewrites one segment without the covered readings and swaps it in; returns its new length.
fn rewrite_segment(
    dir: &Path,
    segment: &SegmentFile,
    windows: &TagWindows,
    records: u64,
) -> LogResult<u64> {
    let path = &segment.path;
    let temp = temp_path(segment);
    let io = |op: &'static str, p: &Path| {
        let p = p.to_owned();
        move |e| LogError::io(op, p, e)
    };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::data_dir::FILE_MODE) // person data: owner-only whatever the umask
        .open(&temp)
        .map_err(io("creating compaction temp file", &temp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&SEGMENT_HEADER)
        .map_err(io("writing compaction temp file", &temp))?;
    let mut reader = open_sealed(path)?;
    let (mut payload, mut frame) = (Vec::new(), Vec::new());
    while next_sealed(&mut reader, path, &mut payload)? {
        frame.clear();
        if is_control_payload(&payload) {
            match windows.redact(&payload) {
                Some(redacted) => {
                    encode_control_frame(&redacted, &mut frame)?;
                }
                None => encode_payload_frame(&payload, &mut frame),
            }
            out.write_all(&frame)
                .map_err(io("writing compaction temp file", &temp))?;
            continue;
        }
        let header = parse_batch_header(&payload).map_err(|e| corrupt(path, e.into()))?;
        if windows.has_tag(header.tag) {
            let mut batch = decode_batch_payload(&payload).map_err(|e| corrupt(path, e.into()))?;
            batch
                .readings
                .retain(|r| !windows.covers(&batch.tag, r.t_ms));
            encode_batch_frame(&batch, &mut frame)?;
        } else {
            encode_payload_frame(&payload, &mut frame);
        }
        out.write_all(&frame)
            .map_err(io("writing compaction temp file", &temp))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| LogError::io("writing compaction temp file", &temp, e.into_error()))?;
    file.sync_all()
        .map_err(io("fsyncing compaction temp file", &temp))?;
    drop(file);

    // Read the copy back before it replaces anything: every record there, every checksum valid.
    let mut check = open_sealed(&temp)?;
    let mut copied = 0u64;
    while next_sealed(&mut check, &temp, &mut payload)? {
        copied += 1;
    }
    if copied != records {
        return Err(LogError::io(
            "checking compaction temp file",
            &temp,
            std::io::Error::other(format!("{copied} records written, {records} expected")),
        ));
    }
    let len_after = check.len_bytes();
    replace_segment(dir, path, &temp)?;
    Ok(len_after)
}

/// Renames the checked `temp` over the segment at `path`, durably, then erases the old bytes.
fn replace_segment(dir: &Path, path: &Path, temp: &Path) -> LogResult<()> {
    let io = |op: &'static str, p: &Path| {
        let p = p.to_owned();
        move |e| LogError::io(op, p, e)
    };
    // Keep the old file open across the rename so its bytes can be erased afterwards.
    let old = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("opening segment to erase it", path))?;
    let old_len = old
        .metadata()
        .map_err(io("reading segment metadata", path))?
        .len();
    fs::rename(temp, path).map_err(io("replacing segment with its compacted copy", path))?;
    sync_dir(dir)?;
    erase(old, old_len).map_err(io("erasing the replaced segment", path))
}

/// Overwrites a (now unlinked) file's bytes with zeros and syncs them.
fn erase(mut file: File, len_bytes: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZEROS_BYTES];
    let mut left = len_bytes;
    while left > 0 {
        let n = left.min(ZEROS_BYTES as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::super::reader::LogReader;
    use super::super::segment::segment_file_name;
    use super::super::test_batches::batch;
    use super::super::writer::{LogConfig, LogWriter};
    use super::*;
    use crate::model::Batch;

    /// Twelve records alternating tags a and b, 10 readings each, in segments of ~5 records.
    fn write_log(dir: &Path) -> LogWriter {
        let config = LogConfig {
            segment_max_bytes: 2_000,
            ..LogConfig::default()
        };
        let (mut writer, _) = LogWriter::open(dir, config).unwrap();
        for seq in 1..=12u64 {
            let tag = if seq % 2 == 1 { "aa" } else { "bb" };
            writer.append(&batch(tag, seq, 10)).unwrap();
        }
        writer.sync().unwrap();
        writer
    }

    fn read_all(dir: &Path) -> Vec<(u64, Batch)> {
        LogReader::open(dir)
            .unwrap()
            .batches()
            .collect::<LogResult<Vec<_>>>()
            .unwrap()
    }

    /// Tag `aa` from the start of seq 3's readings up to the middle of seq 5's.
    fn windows() -> TagWindows {
        let first = batch("aa", 3, 10).readings[0].t_ms;
        let mid = batch("aa", 5, 10).readings[5].t_ms;
        let mut w = TagWindows::default();
        w.add("aa", first, mid);
        w
    }

    #[test]
    fn removes_exactly_the_covered_readings_and_keeps_numbering_seqs_and_other_tags() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = write_log(dir.path());
        let before = read_all(dir.path());
        let boundary = writer.seal().unwrap();
        assert_eq!(boundary, 12);
        let report = compact(dir.path(), boundary, &windows()).unwrap();
        assert_eq!(report.readings_removed, 15, "{report:?}");
        assert_eq!(report.records_emptied, 1);
        assert_eq!(report.records_scanned, 12);
        assert!(report.segments_rewritten >= 1 && report.bytes_after < report.bytes_before);

        let after = read_all(dir.path());
        assert_eq!(after.len(), before.len());
        let w = windows();
        for ((n0, b0), (n1, b1)) in before.iter().zip(&after) {
            assert_eq!(
                (n0, &b0.tag, b0.seq, b0.arrival_ms),
                (n1, &b1.tag, b1.seq, b1.arrival_ms)
            );
            let kept: Vec<_> = b0
                .readings
                .iter()
                .filter(|r| !w.covers(&b0.tag, r.t_ms))
                .copied()
                .collect();
            assert_eq!(b1.readings, kept, "record {n0}");
        }
        assert!(after[2].1.readings.is_empty(), "seq 3 is a tombstone");
        assert_eq!(after[4].1.readings.len(), 5);

        // Idempotent; the writer keeps appending after its sealed segments were rewritten; the
        // dedup state recovery rebuilds is unchanged.
        let again = compact(dir.path(), boundary, &windows()).unwrap();
        assert_eq!((again.segments_rewritten, again.readings_removed), (0, 0));
        writer.append(&batch("aa", 13, 2)).unwrap();
        writer.sync().unwrap();
        drop(writer);
        let (_, recovered) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(recovered.records, 13);
        assert_eq!(recovered.last_seq_by_tag.get("aa"), Some(&13));
        assert_eq!(recovered.last_seq_by_tag.get("bb"), Some(&12));
    }

    #[test]
    fn never_touches_the_last_segment_or_segments_past_the_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let writer = write_log(dir.path());
        let segments = list_segments(dir.path()).unwrap();
        let last = segments.last().unwrap().clone();
        let last_bytes = fs::read(&last.path).unwrap();
        // Everything is covered, but with no seal the last segment is still being written.
        let mut all = TagWindows::default();
        all.add("aa", i64::MIN, i64::MAX);
        all.add("bb", i64::MIN, i64::MAX);
        let report = compact(dir.path(), u64::MAX, &all).unwrap();
        assert_eq!(report.segments_scanned as usize, segments.len() - 1);
        assert_eq!(fs::read(&last.path).unwrap(), last_bytes);
        // A boundary inside the first segment: nothing qualifies.
        let none = compact(dir.path(), segments[1].first_record - 1, &all).unwrap();
        assert_eq!(none.segments_scanned, 0);
        drop(writer);
    }

    #[test]
    fn an_interrupted_compaction_leaves_the_old_segment_and_its_temp_file_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let writer = write_log(dir.path());
        drop(writer);
        let before = read_all(dir.path());
        let first = dir.path().join(segment_file_name(0));
        let original = fs::read(&first).unwrap();
        // A crash mid-write leaves a partial temp file beside the untouched segment.
        let temp = dir.path().join(format!("{}.compact", segment_file_name(0)));
        fs::write(&temp, &original[..original.len() / 2]).unwrap();
        assert_eq!(read_all(dir.path()), before, "readers ignore the temp file");
        let (writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.compaction_temp_files_removed, 1);
        assert!(!temp.exists());
        assert_eq!(fs::read(&first).unwrap(), original);
        drop(writer);
        // And compaction itself cleans one up before it starts.
        fs::write(&temp, b"junk").unwrap();
        let report = compact(dir.path(), 0, &windows()).unwrap();
        assert_eq!(report.temp_files_removed, 1);
        assert!(!temp.exists());
    }

    /// Throughput (BENCHMARKS.md): `cargo test --lib log::compact -- --ignored --nocapture`.
    /// About 200 MB of log, 100 tags in 500-reading batches, default 64 MiB segments; one tag's
    /// readings are purged, so every sealed segment is read, rewritten, verified and erased.
    #[test]
    #[ignore]
    fn compaction_throughput() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        let tags: Vec<String> = (0..100).map(|i| format!("tag-{i:03}")).collect();
        let template = batch("x", 1, 500);
        for seq in 1..=125u64 {
            for tag in &tags {
                let mut b = template.clone();
                b.tag.clone_from(tag);
                b.seq = seq;
                writer.append(&b).unwrap();
            }
        }
        let boundary = writer.seal().unwrap();
        let mut w = TagWindows::default();
        w.add("tag-042", i64::MIN, i64::MAX);
        let report = compact(dir.path(), boundary, &w).unwrap();
        let mb = report.bytes_scanned as f64 / 1e6;
        println!(
            "compacted {mb:.0} MB in {} segments ({} rewritten, {} readings removed) in {} ms: {:.0} MB/s",
            report.segments_scanned,
            report.segments_rewritten,
            report.readings_removed,
            report.elapsed_ms,
            mb / (report.elapsed_ms.max(1) as f64 / 1000.0)
        );
        assert_eq!(report.readings_removed, 125 * 500);
    }

    #[test]
    fn damage_in_a_sealed_segment_is_carried_over_and_the_rest_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = write_log(dir.path());
        let boundary = writer.seal().unwrap();
        let before = read_all(dir.path());
        let first = dir.path().join(segment_file_name(0));
        let mut bytes = fs::read(&first).unwrap();
        let at = bytes.len() - 10; // inside the segment's last record
        bytes[at] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let damaged_before = read_all(dir.path());
        assert_eq!(damaged_before.len(), before.len() - 1);

        let w = windows();
        let covered: usize = damaged_before
            .iter()
            .map(|(_, b)| {
                b.readings
                    .iter()
                    .filter(|r| w.covers(&b.tag, r.t_ms))
                    .count()
            })
            .sum();
        let report = compact(dir.path(), boundary, &w).unwrap();
        assert_eq!(report.damaged_segments, 1, "{report:?}");
        assert_eq!(report.readings_removed, covered as u64, "{report:?}");
        assert!(report.segments_rewritten >= 1, "{report:?}");
        let after = read_all(dir.path());
        assert_eq!(after.len(), damaged_before.len());
        for ((n0, b0), (n1, b1)) in damaged_before.iter().zip(&after) {
            assert_eq!((n0, &b0.tag, b0.seq), (n1, &b1.tag, b1.seq));
            let kept: Vec<_> = b0
                .readings
                .iter()
                .filter(|r| !w.covers(&b0.tag, r.t_ms))
                .copied()
                .collect();
            assert_eq!(b1.readings, kept, "record {n0}");
        }
        // The damaged bytes are still there, skipped the same way.
        let mut reader = LogReader::open(dir.path()).unwrap();
        reader.by_ref().for_each(drop);
        assert_eq!(reader.damage().len(), 1);
        assert_eq!(reader.records_lost(), 1);
        let again = compact(dir.path(), boundary, &windows()).unwrap();
        assert_eq!((again.segments_rewritten, again.readings_removed), (0, 0));
    }

    #[test]
    fn a_damaged_header_before_intact_records_is_replaced_by_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = write_log(dir.path());
        let boundary = writer.seal().unwrap();
        let before = read_all(dir.path());
        let first = dir.path().join(segment_file_name(0));
        let mut bytes = fs::read(&first).unwrap();
        bytes[2] ^= 0x01;
        fs::write(&first, &bytes).unwrap();
        assert_eq!(read_all(dir.path()).len(), before.len(), "no record lost");
        let report = compact(dir.path(), boundary, &windows()).unwrap();
        assert!(report.readings_removed > 0, "{report:?}");
        assert!(fs::read(&first).unwrap().starts_with(&SEGMENT_HEADER));
        let mut reader = LogReader::open(dir.path()).unwrap();
        assert_eq!(reader.by_ref().count(), before.len());
        assert!(reader.damage().is_empty());
    }

    /// A hub decision about a purged person or activation is erased with them (its notes and
    /// reasons are about the person); one about anybody else is kept.
    #[test]
    fn decisions_about_purged_people_or_activations_are_redacted() {
        use crate::model::{Change, ControlRecord, HitDecision, ReviewAction};
        let payload = |change: Change| {
            let control = ControlRecord {
                recorded: 1,
                actor: "hana".into(),
                effective: None,
                change,
            };
            let mut frame = Vec::new();
            super::super::record::encode_control_frame(&control, &mut frame).unwrap();
            frame[FRAME_HEADER_LEN..].to_vec()
        };
        let action = |activation: &str, person: &str| {
            payload(Change::AlertAction {
                alert: "al-1".into(),
                activation: activation.into(),
                person: person.into(),
                review: ReviewAction::Acknowledge {
                    notes: Some("rang the wearer".into()),
                },
            })
        };
        let review = |activation: &str, person: &str| {
            payload(Change::HitReview {
                hit: "H1".into(),
                activation: activation.into(),
                person: person.into(),
                decision: HitDecision::Reject,
                reason: "at work".into(),
            })
        };
        let mut windows = TagWindows::default();
        windows.add_person("P1");
        windows.add_activation("A9");
        for purged in [action("A1", "P1"), review("A9", "P2"), review("A1", "P1")] {
            let redacted = windows.redact(&purged).expect("redacted");
            assert_eq!(redacted.actor, "");
            assert!(matches!(redacted.change, Change::Redacted { .. }));
        }
        assert!(windows.redact(&action("A2", "P2")).is_none());
        assert!(windows.redact(&review("A2", "P2")).is_none());
    }
}
