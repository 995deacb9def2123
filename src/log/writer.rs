//! The single writer of a log directory: recovery on open, buffered appends, `sync` (write out +
//! `fdatasync`), and rolling to a new segment past the configured size.
//!
//! Nothing appended is durable until [`LogWriter::sync`] returns `Ok`. After any I/O failure the
//! writer is poisoned: what reached the disk is unknown, so it refuses all further work and the
//! log must be reopened (which recovers to the last complete record).

use super::error::{LogError, LogResult};
use super::record::{batch_frame_len, encode_batch_frame, encode_control_frame};
use super::recovery::{recover, RecoveryReport};
use super::segment::{create_segment, SegmentFile};
use crate::model::{Batch, ControlRecord};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default size past which a new segment is started.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Default amount of appended data buffered before it is written out (not synced).
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 1024 * 1024;

/// Tunables of a [`LogWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment holding at least one record is sealed before a record would take it past this.
    pub segment_max_bytes: u64,
    /// Appended bytes kept in memory before being written to the file (a sync writes them anyway).
    pub write_buffer_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
        }
    }
}

/// Appends batches to a log directory. One writer per directory.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    config: LogConfig,
    file: File,
    segment_path: PathBuf,
    segment_first_record: u64,
    /// Segment length including bytes still in `buffer`.
    segment_len_bytes: u64,
    buffer: Vec<u8>,
    next_record: u64,
    durable_records: u64,
    syncs: u64,
    poisoned: Option<String>,
}

impl LogWriter {
    /// Opens (creating if needed) the log in `dir`, recovering it first (see [`RecoveryReport`]).
    /// Every record recovered is durable when this returns, even one a killed process had
    /// written but not yet synced.
    pub fn open(dir: &Path, config: LogConfig) -> LogResult<(LogWriter, RecoveryReport)> {
        let recovered = recover(dir)?;
        let (file, segment) = match recovered.last_segment {
            Some(segment) => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&segment.path)
                    .map_err(|e| LogError::io("opening segment for append", &segment.path, e))?;
                file.seek(SeekFrom::End(0))
                    .map_err(|e| LogError::io("seeking to end of segment", &segment.path, e))?;
                // A process killed before its sync leaves records in the page cache only; make
                // them durable before they are reported as stored (a tag told its last seq is
                // stored drops its copies).
                file.sync_data()
                    .map_err(|e| LogError::io("fdatasync", &segment.path, e))?;
                (file, segment)
            }
            None => {
                let (file, path) = create_segment(dir, recovered.next_record)?;
                let segment = SegmentFile {
                    first_record: recovered.next_record,
                    path,
                };
                (file, segment)
            }
        };
        let segment_len_bytes = file
            .metadata()
            .map_err(|e| LogError::io("reading segment metadata", &segment.path, e))?
            .len();
        let writer = LogWriter {
            dir: dir.to_owned(),
            config,
            file,
            segment_path: segment.path,
            segment_first_record: segment.first_record,
            segment_len_bytes,
            buffer: Vec::new(),
            next_record: recovered.next_record,
            durable_records: recovered.next_record,
            syncs: 0,
            poisoned: None,
        };
        Ok((writer, recovered.report))
    }

    /// Appends a batch (buffered, not yet durable); returns its record number.
    pub fn append(&mut self, batch: &Batch) -> LogResult<u64> {
        self.check_poisoned()?;
        let frame_len = batch_frame_len(batch)?;
        self.append_frame(frame_len, |buffer| {
            encode_batch_frame(batch, buffer).map(|_| ())
        })
    }

    /// Appends a control record (buffered, not yet durable); returns its record number.
    pub fn append_control(&mut self, control: &ControlRecord) -> LogResult<u64> {
        self.check_poisoned()?;
        let mut frame = Vec::new();
        let frame_len = encode_control_frame(control, &mut frame)?;
        self.append_frame(frame_len, |buffer| {
            buffer.extend_from_slice(&frame);
            Ok(())
        })
    }

    /// Appends a frame of `frame_len` bytes written by `encode` (rolling to a new segment first
    /// if it would not fit); returns its record number.
    fn append_frame(
        &mut self,
        frame_len: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> LogResult<()>,
    ) -> LogResult<u64> {
        let frame_len = frame_len as u64;
        let segment_has_records = self.next_record > self.segment_first_record;
        if segment_has_records && self.segment_len_bytes + frame_len > self.config.segment_max_bytes
        {
            self.roll()?;
        }
        encode(&mut self.buffer)?;
        self.segment_len_bytes += frame_len;
        let record = self.next_record;
        self.next_record += 1;
        if self.buffer.len() >= self.config.write_buffer_bytes {
            self.write_buffer()?;
        }
        Ok(record)
    }

    /// Makes every appended record durable: writes the buffer out and `fdatasync`s the segment.
    pub fn sync(&mut self) -> LogResult<()> {
        self.check_poisoned()?;
        self.write_buffer()?;
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison(LogError::io("fdatasync", &self.segment_path, e)));
        }
        self.syncs += 1;
        self.durable_records = self.next_record;
        Ok(())
    }

    /// Number the next appended record gets.
    pub fn next_record(&self) -> u64 {
        self.next_record
    }

    /// Records `0..durable_records()` are durable (synced, or found by recovery).
    pub fn durable_records(&self) -> u64 {
        self.durable_records
    }

    /// `fdatasync` calls made by [`LogWriter::sync`] since open (segment rolls add their own).
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment being appended to.
    pub fn segment_path(&self) -> &Path {
        &self.segment_path
    }

    /// The error that poisoned the writer, if one did.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Seals the segment being appended to, if it holds any record, and starts the next one;
    /// returns the first record number of the segment now being appended to. Every record below
    /// it is in a sealed segment that this writer never touches again (what compaction needs).
    pub fn seal(&mut self) -> LogResult<u64> {
        if self.next_record > self.segment_first_record {
            self.roll()?;
        } else {
            self.sync()?;
        }
        Ok(self.segment_first_record)
    }

    /// Seals the current segment (durably) and starts the next one.
    fn roll(&mut self) -> LogResult<()> {
        self.sync()?;
        match create_segment(&self.dir, self.next_record) {
            Ok((file, path)) => {
                self.file = file;
                self.segment_path = path;
                self.segment_first_record = self.next_record;
                self.segment_len_bytes = super::segment::SEGMENT_HEADER_LEN;
                Ok(())
            }
            Err(e) => Err(self.poison(e)),
        }
    }

    fn write_buffer(&mut self) -> LogResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buffer) {
            return Err(self.poison(LogError::io("writing segment", &self.segment_path, e)));
        }
        self.buffer.clear();
        Ok(())
    }

    fn check_poisoned(&self) -> LogResult<()> {
        match &self.poisoned {
            Some(reason) => Err(LogError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: LogError) -> LogError {
        self.poisoned = Some(error.to_string());
        error
    }
}

impl Drop for LogWriter {
    /// Hands buffered records to the OS (best effort, not synced: they were never acknowledged).
    fn drop(&mut self) {
        if self.poisoned.is_none() && !self.buffer.is_empty() {
            let _ = self.file.write_all(&self.buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::LogReader;
    use super::super::segment::list_segments;
    use super::super::test_batches::batch;
    use super::*;

    fn read_all(dir: &Path) -> Vec<(u64, Batch)> {
        LogReader::open(dir)
            .unwrap()
            .batches()
            .collect::<LogResult<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn appended_batches_read_back_identically_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(report.records, 0);
        let batches: Vec<Batch> = (1..=20).map(|seq| batch("t1", seq, seq as usize)).collect();
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(writer.append(b).unwrap(), i as u64);
        }
        writer.sync().unwrap();
        assert_eq!(writer.durable_records(), 20);
        drop(writer);

        let (mut writer, report) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!((report.records, report.segments), (20, 1));
        assert_eq!(report.readings, (1..=20).sum::<u64>());
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(report.last_seq_by_tag.get("t1"), Some(&20));
        assert_eq!(writer.append(&batch("t2", 1, 3)).unwrap(), 20);
        writer.sync().unwrap();
        drop(writer);

        let read = read_all(dir.path());
        assert_eq!(read.len(), 21);
        for (i, (record, b)) in read.iter().enumerate() {
            assert_eq!(*record, i as u64);
            let expected = batches.get(i).cloned().unwrap_or_else(|| batch("t2", 1, 3));
            assert_eq!(*b, expected);
        }
    }

    #[test]
    fn rolls_segments_past_the_size_limit_and_names_them_by_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_max_bytes: 2_000,
            ..LogConfig::default()
        };
        let (mut writer, _) = LogWriter::open(dir.path(), config.clone()).unwrap();
        // Each frame is 8 + 24 + 2 + 10 * 32 = 354 bytes: five fit after the 8-byte header.
        for seq in 1..=12 {
            writer.append(&batch("ab", seq, 10)).unwrap();
        }
        writer.sync().unwrap();
        drop(writer);
        let names: Vec<String> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(
            names,
            [
                "00000000000000000000.seg",
                "00000000000000000005.seg",
                "00000000000000000010.seg"
            ]
        );
        for segment in list_segments(dir.path()).unwrap() {
            assert!(std::fs::metadata(&segment.path).unwrap().len() <= 2_000);
        }
        let read = read_all(dir.path());
        let seqs: Vec<u64> = read.iter().map(|(_, b)| b.seq).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());

        // A record larger than a segment still gets stored, alone in its segment.
        let (mut writer, report) = LogWriter::open(dir.path(), config).unwrap();
        assert_eq!(report.segments, 3);
        assert_eq!(writer.append(&batch("ab", 13, 100)).unwrap(), 12);
        assert_eq!(writer.append(&batch("ab", 14, 1)).unwrap(), 13);
        writer.sync().unwrap();
        drop(writer);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 5);
        assert_eq!(read_all(dir.path()).len(), 14);
    }

    #[test]
    fn unsynced_appends_are_not_counted_durable_and_oversized_batches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
        writer.append(&batch("t", 1, 1)).unwrap();
        assert_eq!((writer.next_record(), writer.durable_records()), (1, 0));
        let mut bad = batch("t", 2, 1);
        bad.tag = "x".repeat(300);
        assert!(matches!(
            writer.append(&bad),
            Err(LogError::BadTag { len_bytes: 300 })
        ));
        assert!(writer.poisoned().is_none());
        writer.sync().unwrap();
        assert_eq!((writer.durable_records(), writer.syncs()), (1, 1));
    }
}
