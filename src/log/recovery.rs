//! Recovery when a log is opened for writing: remove the temp files of an interrupted compaction,
//! scan every segment, verify every record, rebuild the per-tag dedup state, and cut a torn tail
//! off the last segment so appending can resume.
//!
//! Only the last segment can have a torn tail: a segment is fdatasynced before the next one is
//! created, so damage in a sealed segment is not a crash artefact and is a hard error.

use super::compact::remove_temp_files;
use super::error::{Corruption, LogError, LogResult};
use super::reader::{LogReader, TornTail};
use super::record::complete_frame_len;
use super::segment::{reinitialize_segment, sync_dir, truncate_segment, SegmentFile};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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
    /// Complete, checksum-valid records found inside the bytes cut off. A torn write leaves 0;
    /// more means records that were written after the damage point were dropped with it.
    pub truncated_records: u64,
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
        let (_, batch) = item?;
        report.records += 1;
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
    if let Some(tail) = reader.torn_tail().cloned() {
        cut_torn_tail(&tail, &mut report)?;
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
            truncate_segment(path, tail.offset)?;
        }
    }
    report.truncated_bytes = tail.bytes();
    report.torn_tail = Some(TornTailReport {
        segment: tail.segment.name(),
        offset: tail.offset,
        reason: tail.kind.to_string(),
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

    #[test]
    fn damage_inside_the_last_segment_drops_and_counts_the_intact_records_after_it() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 5, 1 << 20);
        let path = dir.path().join(segment_file_name(0));
        let mut bytes = fs::read(&path).unwrap();
        let frame_len = (bytes.len() - 8) / 5;
        let second_record = 8 + frame_len;
        bytes[second_record + 20] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (_, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(report.truncated_bytes, 4 * frame_len as u64);
        assert_eq!(report.truncated_records, 3);
        let tail = report.torn_tail.unwrap();
        assert_eq!(
            (tail.segment.as_str(), tail.offset),
            ("00000000000000000000.seg", second_record as u64)
        );
        assert!(tail.reason.contains("checksum"), "{}", tail.reason);
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
