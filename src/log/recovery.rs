//! Recovery when a log is opened for writing: remove the temp files of an interrupted compaction,
//! scan every segment, verify every record, rebuild the per-tag dedup state from the intact
//! records, quarantine damaged segments, and cut a torn tail off the last segment so appending
//! can resume.
//!
//! Damage with an intact record after it (anywhere), or in a sealed segment (fdatasynced before
//! the next one was created, so not a crash artefact), is never cut: the segment's bytes are
//! copied to `quarantine/NAME.N` with a report `quarantine/NAME.N.json` (both durable) before
//! anything else happens, the damage is logged at error level and returned in the report, and
//! the segment is left as it is; readers skip the damaged range ([`super::resync`]). If the copy
//! cannot be written, recovery fails. Only a torn tail of the last segment (no complete valid
//! record after the damage: an incomplete final write) is truncated, and only after checking
//! that no valid record is cut with it.

use super::compact::remove_temp_files;
use super::error::{Corruption, LogError, LogResult};
use super::reader::{Damage, LogReader, TornTail};
use super::record::complete_frame_len;
use super::segment::{reinitialize_segment, sync_dir, truncate_segment, SegmentFile};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Subdirectory of the log directory holding copies of damaged segments and their reports.
pub const QUARANTINE_DIR: &str = "quarantine";

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Segment files in the log.
    pub segments: usize,
    /// Complete records kept.
    pub records: u64,
    /// Readings in the records kept.
    pub readings: u64,
    /// Bytes cut off the end of the last segment (0 if its tail was intact).
    pub truncated_bytes: u64,
    /// Complete, checksum-valid records found inside the bytes cut off: always 0, since a tail
    /// with a valid record in it is damage, not a torn tail (kept as a check and for reports).
    pub truncated_records: u64,
    /// Damaged ranges inside segments: skipped by every reader, the segments quarantined.
    pub damage: Vec<DamageReport>,
    /// Records lost in the damaged ranges.
    pub records_lost: u64,
    /// Where the cut was made and why, if a tail was cut.
    pub torn_tail: Option<TornTailReport>,
    /// Highest batch sequence number stored per tag in its current session epoch: the dedup
    /// state (with `epoch_by_tag`).
    pub last_seq_by_tag: HashMap<String, u64>,
    /// Current (highest stored) session epoch per tag; tags absent here are in epoch 0.
    pub epoch_by_tag: HashMap<String, u32>,
    /// Temp files of an interrupted compaction, removed (the segments they copied are intact).
    pub compaction_temp_files_removed: u64,
}

/// A torn tail, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTailReport {
    pub segment: String,
    pub offset: u64,
    pub reason: String,
    /// Where the segment was copied before the cut, when the tail began with a complete frame
    /// failing its checksum (possibly a stored record damaged in place, not a torn write).
    pub quarantine_file: Option<String>,
}

/// A damaged range, as reported (and stored in the quarantine report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageReport {
    pub segment: String,
    /// Byte range `start..end` of the segment holding no valid record.
    pub start: u64,
    pub end: u64,
    /// Record numbers `first_record..first_record + records_lost` were lost.
    pub first_record: u64,
    pub records_lost: u64,
    pub reason: String,
    /// The copy of the segment's bytes as found, relative to the log directory.
    pub quarantine_file: String,
}

/// `quarantine/NAME.N.json`: what was copied and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QuarantineRecord {
    segment: String,
    /// File name of the copy in the quarantine directory.
    copy: String,
    segment_len_bytes: u64,
    /// Length and CRC-32 of the segment's bytes up to the end of its last damaged range: the
    /// damage is already quarantined if a record with the same values exists (appends after it,
    /// or a restart, do not make another copy).
    damaged_prefix_bytes: u64,
    damaged_prefix_crc32: u32,
    damage: Vec<DamageReport>,
}

/// The state the writer resumes from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    /// The segment to append to (`None`: the log is new and has no segment yet).
    pub last_segment: Option<SegmentFile>,
    /// Number of the next record to append.
    pub next_record: u64,
}

/// Recovers the log in `dir` (created if missing), truncating a torn tail durably.
pub(crate) fn recover(dir: &Path) -> LogResult<Recovered> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| LogError::io("creating log directory", dir, e))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let mut report = RecoveryReport {
        compaction_temp_files_removed: remove_temp_files(dir)?,
        ..RecoveryReport::default()
    };
    let mut reader = LogReader::open(dir)?;
    for item in reader.by_ref() {
        let (_, entry) = item?;
        report.records += 1;
        let crate::model::LogEntry::Batch(batch) = entry else {
            continue;
        };
        let batch = std::sync::Arc::unwrap_or_clone(batch);
        report.readings += batch.readings.len() as u64;
        super::committer::note_durable(
            &mut report.last_seq_by_tag,
            &mut report.epoch_by_tag,
            batch.tag,
            batch.epoch,
            batch.seq,
        );
    }
    report.segments = reader.segments().len();
    // Quarantine first: the copy holds the segment's bytes before anything is changed. A torn
    // tail that starts with a complete frame failing its checksum may be an acknowledged record
    // damaged in place rather than an incomplete write: its bytes are kept aside too.
    let torn = reader.torn_tail().cloned();
    let mut to_quarantine = reader.damage().to_vec();
    let keep_torn = torn
        .as_ref()
        .filter(|t| matches!(t.kind, Corruption::Checksum { .. } | Corruption::Payload(_)));
    if let Some(t) = keep_torn {
        to_quarantine.push(Damage {
            segment: t.segment.clone(),
            start: t.offset,
            end: t.segment_len_bytes,
            first_record: reader.next_record(),
            records_lost: 0, // the number is reused by the next append
            kind: t.kind.clone(),
        });
    }
    let mut torn_quarantine_file = None;
    if !to_quarantine.is_empty() {
        let mut reports = quarantine(dir, &to_quarantine)?;
        if keep_torn.is_some() {
            torn_quarantine_file = reports.pop().map(|r| r.quarantine_file);
        }
        report.damage = reports;
        report.records_lost = reader.records_lost();
        for d in &report.damage {
            tracing::error!(
                segment = %d.segment,
                start = d.start,
                end = d.end,
                first_record = d.first_record,
                records_lost = d.records_lost,
                reason = %d.reason,
                quarantine_file = %d.quarantine_file,
                "log damage: records lost; the segment was copied to quarantine and the records after the damage are kept"
            );
        }
    }
    if let Some(tail) = torn {
        cut_torn_tail(&tail, &mut report)?;
        if let Some(t) = report.torn_tail.as_mut() {
            if let Some(copy) = &torn_quarantine_file {
                tracing::error!(
                    segment = %t.segment,
                    offset = t.offset,
                    reason = %t.reason,
                    quarantine_file = %copy,
                    "log recovery cut a last record that was complete but failed its checksum; the segment was copied to quarantine first"
                );
            }
            t.quarantine_file = torn_quarantine_file;
        }
    }
    Ok(Recovered {
        report,
        last_segment: reader.segments().last().cloned(),
        next_record: reader.next_record(),
    })
}

fn cut_torn_tail(tail: &TornTail, report: &mut RecoveryReport) -> LogResult<()> {
    let path = &tail.segment.path;
    match &tail.kind {
        Corruption::ShortHeader { .. } => reinitialize_segment(path)?,
        // A header of zeros is a segment whose creation never reached the disk.
        Corruption::BadHeader { found } if *found == [0; 8] => reinitialize_segment(path)?,
        Corruption::BadHeader { .. } => {
            return Err(LogError::Corrupt {
                path: path.clone(),
                offset: 0,
                kind: tail.kind.clone(),
            })
        }
        _ => {
            report.truncated_records = count_intact_frames(path, tail.offset)?;
            if report.truncated_records > 0 {
                // The reader only calls a tail torn when no valid record follows; never cut one.
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    offset: tail.offset,
                    kind: tail.kind.clone(),
                });
            }
            truncate_segment(path, tail.offset)?;
        }
    }
    report.truncated_bytes = tail.bytes();
    report.torn_tail = Some(TornTailReport {
        segment: tail.segment.name(),
        offset: tail.offset,
        reason: tail.kind.to_string(),
        quarantine_file: None,
    });
    tracing::warn!(
        segment = %path.display(),
        offset = tail.offset,
        truncated_bytes = report.truncated_bytes,
        truncated_records = report.truncated_records,
        reason = %tail.kind,
        "log recovery cut a torn tail"
    );
    Ok(())
}

/// Copies every damaged segment to the quarantine directory (unless that damage is already
/// there) with its report, durably; returns the damage as reported.
fn quarantine(dir: &Path, damage: &[Damage]) -> LogResult<Vec<DamageReport>> {
    let qdir = dir.join(QUARANTINE_DIR);
    if !qdir.is_dir() {
        fs::create_dir_all(&qdir)
            .map_err(|e| LogError::io("creating quarantine directory", &qdir, e))?;
        sync_dir(dir)?;
    }
    let mut reports = Vec::with_capacity(damage.len());
    let mut rest = damage;
    while let Some(first) = rest.first() {
        let count = rest
            .iter()
            .take_while(|d| d.segment == first.segment)
            .count();
        let (group, tail) = rest.split_at(count);
        rest = tail;
        let segment = &first.segment;
        let name = segment.name();
        let bytes = fs::read(&segment.path)
            .map_err(|e| LogError::io("reading damaged segment", &segment.path, e))?;
        let prefix_bytes = group
            .iter()
            .map(|d| d.end)
            .max()
            .unwrap_or(0)
            .min(bytes.len() as u64);
        let prefix_crc32 = crc32fast::hash(&bytes[..prefix_bytes as usize]);
        let mut group_reports: Vec<DamageReport> = group
            .iter()
            .map(|d| DamageReport {
                segment: name.clone(),
                start: d.start,
                end: d.end,
                first_record: d.first_record,
                records_lost: d.records_lost,
                reason: d.kind.to_string(),
                quarantine_file: String::new(),
            })
            .collect();
        let existing = find_quarantined(&qdir, &name, prefix_bytes, prefix_crc32)?;
        let copy = match existing {
            Some(copy) => copy,
            None => {
                let copy = format!("{name}.{}", next_copy_number(&qdir, &name)?);
                let copy_path = qdir.join(&copy);
                for r in &mut group_reports {
                    r.quarantine_file = format!("{QUARANTINE_DIR}/{copy}");
                }
                write_durably(&qdir, &copy_path, &bytes)?;
                let record = QuarantineRecord {
                    segment: name.clone(),
                    copy: copy.clone(),
                    segment_len_bytes: bytes.len() as u64,
                    damaged_prefix_bytes: prefix_bytes,
                    damaged_prefix_crc32: prefix_crc32,
                    damage: group_reports.clone(),
                };
                let json = serde_json::to_vec_pretty(&record)
                    .map_err(|e| LogError::io("writing quarantine report", &copy_path, e.into()))?;
                write_durably(&qdir, &qdir.join(format!("{copy}.json")), &json)?;
                sync_dir(&qdir)?;
                copy
            }
        };
        for r in &mut group_reports {
            r.quarantine_file = format!("{QUARANTINE_DIR}/{copy}");
        }
        reports.extend(group_reports);
    }
    Ok(reports)
}

/// The copy of segment `name` already made for the same damage, if any.
fn find_quarantined(
    qdir: &Path,
    name: &str,
    prefix_bytes: u64,
    prefix_crc32: u32,
) -> LogResult<Option<String>> {
    let entries =
        fs::read_dir(qdir).map_err(|e| LogError::io("listing quarantine directory", qdir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing quarantine directory", qdir, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !(file_name.starts_with(name) && file_name.ends_with(".json")) {
            continue;
        }
        let Ok(text) = fs::read(entry.path()) else {
            continue;
        };
        // An unreadable report proves nothing was quarantined: a new copy is made.
        let Ok(record) = serde_json::from_slice::<QuarantineRecord>(&text) else {
            continue;
        };
        if record.segment == name
            && record.damaged_prefix_bytes == prefix_bytes
            && record.damaged_prefix_crc32 == prefix_crc32
            && qdir.join(&record.copy).is_file()
        {
            return Ok(Some(record.copy));
        }
    }
    Ok(None)
}

/// One more than the highest `N` of the copies `name.N` in the quarantine directory.
fn next_copy_number(qdir: &Path, name: &str) -> LogResult<u64> {
    let entries =
        fs::read_dir(qdir).map_err(|e| LogError::io("listing quarantine directory", qdir, e))?;
    let mut highest = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing quarantine directory", qdir, e))?;
        let number = entry.file_name().to_str().and_then(|f| {
            f.strip_prefix(name)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<u64>().ok())
        });
        highest = highest.max(number.unwrap_or(0));
    }
    Ok(highest + 1)
}

/// Writes `bytes` to `path` via a temp file, fsynced, then renamed into place.
fn write_durably(qdir: &Path, path: &Path, bytes: &[u8]) -> LogResult<()> {
    let op = "writing the quarantine copy of a damaged segment";
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| LogError::io(op, &temp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io(op, &temp, e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| LogError::io(op, path, e))?;
    sync_dir(qdir)
}

/// Counts complete, checksum-valid frames anywhere in the segment from `offset` on.
fn count_intact_frames(path: &Path, offset: u64) -> LogResult<u64> {
    let mut tail = Vec::new();
    File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_to_end(&mut tail)
        })
        .map_err(|e| LogError::io("reading torn tail", path, e))?;
    let mut count = 0;
    let mut at = 0;
    while at < tail.len() {
        match complete_frame_len(&tail[at..]) {
            Some(len) => {
                count += 1;
                at += len;
            }
            None => at += 1,
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::super::segment::{list_segments, segment_file_name};
    use super::super::test_batches::batch;
    use super::super::writer::{LogConfig, LogWriter};
    use super::*;

    fn write_log(dir: &Path, records: u64, segment_max_bytes: u64) {
        let config = LogConfig {
            segment_max_bytes,
            ..LogConfig::default()
        };
        let (mut writer, _) = LogWriter::open(dir, config).unwrap();
        for seq in 1..=records {
            writer.append(&batch("tag-a", seq, 4)).unwrap();
        }
        writer.sync().unwrap();
    }

    #[test]
    fn a_torn_segment_header_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5, 600);
        let segments = list_segments(dir.path()).unwrap();
        let last = segments.last().unwrap();
        assert_eq!(last.first_record, 3);
        fs::write(&last.path, b"TGS").unwrap();
        let (mut writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.records, last.first_record);
        assert_eq!(report.truncated_bytes, 3);
        writer.append(&batch("tag-a", 99, 1)).unwrap();
        writer.sync().unwrap();
        let read: Vec<_> = LogReader::open(dir.path()).unwrap().collect();
        assert_eq!(read.len() as u64, last.first_record + 1);
    }

    #[test]
    fn a_foreign_header_on_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 1, 600);
        fs::write(dir.path().join(segment_file_name(0)), b"NOT A LOG SEGMENT").unwrap();
        let err = LogWriter::open(dir.path(), LogConfig::default()).unwrap_err();
        assert!(matches!(err, LogError::Corrupt { offset: 0, .. }), "{err}");
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn damage_inside_the_last_segment_is_quarantined_and_costs_only_the_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5, 1 << 20);
        let path = dir.path().join(segment_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let frame_len = (bytes.len() - 8) / 5;
        let second_record = 8 + frame_len;
        bytes[second_record + 20] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let (mut writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!((report.records, report.records_lost), (4, 1));
        assert_eq!(
            (report.truncated_bytes, report.torn_tail.clone()),
            (0, None)
        );
        assert_eq!(report.damage.len(), 1);
        let d = &report.damage[0];
        assert_eq!(
            (d.segment.as_str(), d.start, d.end, d.first_record),
            (
                "00000000000000000000.seg",
                second_record as u64,
                (second_record + frame_len) as u64,
                1
            )
        );
        assert!(d.reason.contains("checksum"), "{}", d.reason);
        assert_eq!(d.quarantine_file, "quarantine/00000000000000000000.seg.1");
        assert_eq!(
            fs::read(dir.path().join(&d.quarantine_file)).unwrap(),
            bytes
        );
        let record: QuarantineRecord = serde_json::from_slice(
            &fs::read(
                dir.path()
                    .join("quarantine/00000000000000000000.seg.1.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(record.damage, report.damage);
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "the segment is not modified"
        );
        // The dedup state counts only intact records (seq 2 is lost, 5 is the highest).
        assert_eq!(report.last_seq_by_tag.get("tag-a"), Some(&5));

        // Appending goes on after the damage; a restart finds the same damage, copies nothing new.
        assert_eq!(writer.append(&batch("tag-a", 6, 1)).unwrap(), 5);
        writer.sync().unwrap();
        drop(writer);
        let (_, again) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(again.damage, report.damage);
        assert_eq!(again.records, 5);
        assert_eq!(
            files_in(&dir.path().join(QUARANTINE_DIR)),
            vec![
                "00000000000000000000.seg.1",
                "00000000000000000000.seg.1.json"
            ]
        );
        let numbers: Vec<u64> = LogReader::open(dir.path())
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(numbers, vec![0, 2, 3, 4, 5]);
    }

    #[test]
    fn without_a_quarantine_copy_recovery_fails_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5, 1 << 20);
        let path = dir.path().join(segment_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        bytes[8 + 3] ^= 0x01; // the first record's length field
        bytes.truncate(bytes.len() - 7); // and a torn tail that would be cut
        fs::write(&path, &bytes).unwrap();
        // A file where the quarantine directory should be: the copy cannot be made.
        fs::write(dir.path().join(QUARANTINE_DIR), b"in the way").unwrap();
        let err = LogWriter::open(dir.path(), LogConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("quarantine"),
            "a clear error: {err}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "nothing cut, nothing changed"
        );
    }

    #[test]
    fn a_missing_segment_is_a_gap_error() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 8, 600);
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() >= 3);
        fs::remove_file(&segments[1].path).unwrap();
        let err = LogWriter::open(dir.path(), LogConfig::default()).unwrap_err();
        match err {
            LogError::SegmentGap {
                path,
                expected,
                found,
            } => {
                assert_eq!(path, segments[2].path);
                assert_eq!(
                    (expected, found),
                    (segments[1].first_record, segments[2].first_record)
                );
            }
            other => panic!("expected a gap, got {other}"),
        }
    }
}
