//! Reading a log directory back in log order: every segment, every record, each checked and
//! decoded to a [`Batch`] with its global record number. Used by replay, inspect and recovery.
//!
//! Damage inside a segment does not end the log: the reader resynchronises at the next complete
//! record with a valid checksum ([`super::resync`]), skips exactly the damaged bytes, reports them
//! through [`LogReader::damage`] and goes on. The damaged range keeps its place in the record
//! numbering (one record per range in the last segment; in a sealed segment, as many as the next
//! segment's name says are missing), so every later record keeps its number.
//!
//! Only damage with no valid record after it in the last segment is a torn tail (what a crash
//! mid-write leaves): the reader stops there without an error and reports it through
//! [`LogReader::torn_tail`]. A damaged segment header followed by intact records is a damaged
//! range of its own (no record lost); with no valid record after it, it is a torn tail in the
//! last segment (a crash while it was being created) and an error (naming file and offset) in a
//! sealed one.

use super::error::{Corruption, LogError, LogResult};
use super::record::{decode_payload, is_control_payload, FRAME_HEADER_LEN};
use super::resync::{next_frame_start, scan, Span};
use super::segment::{list_segments, Frame, FrameReader, SegmentFile, SEGMENT_HEADER_LEN};
use crate::model::{Batch, LogEntry};
use std::collections::VecDeque;
use std::fs;
use std::path::Path;

/// Where the readable log ends before the end of the last segment, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: SegmentFile,
    /// Offset of the first byte that is not part of a valid record (0: the header is damaged).
    pub offset: u64,
    /// The segment's length in bytes when the damage was found.
    pub segment_len_bytes: u64,
    pub kind: Corruption,
}

impl TornTail {
    /// Bytes from the damage to the end of the segment.
    pub fn bytes(&self) -> u64 {
        self.segment_len_bytes.saturating_sub(self.offset)
    }
}

/// A damaged byte range inside a segment, skipped by the reader: the records after it were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: SegmentFile,
    /// Byte range `start..end` of the segment that holds no valid record.
    pub start: u64,
    pub end: u64,
    /// Number of the first record lost here; `records_lost` numbers from it are skipped.
    pub first_record: u64,
    pub records_lost: u64,
    /// Why the frame at `start` is not valid.
    pub kind: Corruption,
}

impl Damage {
    /// Length of the damaged range in bytes.
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// What is left to read of a segment that has been resynchronised after damage.
enum Step {
    Record { offset: u64, len: u64 },
    Damage(Damage),
    Torn { offset: u64, kind: Corruption },
}

/// The segment being read: frame by frame from the file until the first damage, then from its
/// bytes in memory, already split into records and damaged ranges.
enum Current {
    Streaming(FrameReader),
    Resynced {
        bytes: Vec<u8>,
        steps: VecDeque<Step>,
    },
}

/// Iterates `(record number, batch)` over a log directory in log order.
pub struct LogReader {
    segments: Vec<SegmentFile>,
    /// Index in `segments` of the segment being read (or to be opened next).
    index: usize,
    current: Option<Current>,
    next_record: u64,
    payload: Vec<u8>,
    torn_tail: Option<TornTail>,
    damage: Vec<Damage>,
    /// Records read from each segment so far, in segment order.
    records_per_segment: Vec<u64>,
    done: bool,
    /// Batches are counted and skipped without being decoded ([`LogReader::controls_only`]).
    controls_only: bool,
}

impl LogReader {
    /// Lists the segments of `dir`; records are read lazily as the iterator advances.
    pub fn open(dir: &Path) -> LogResult<LogReader> {
        let segments = list_segments(dir)?;
        let next_record = segments.first().map_or(0, |s| s.first_record);
        let records_per_segment = vec![0; segments.len()];
        Ok(LogReader {
            segments,
            index: 0,
            current: None,
            next_record,
            payload: Vec::new(),
            torn_tail: None,
            damage: Vec::new(),
            records_per_segment,
            done: false,
            controls_only: false,
        })
    }

    /// Like [`LogReader::open`], but skips the segments that hold only records before
    /// `from_record` (the reader still starts at the beginning of the segment holding it).
    pub fn open_from(dir: &Path, from_record: u64) -> LogResult<LogReader> {
        let mut reader = Self::open(dir)?;
        let skip = reader
            .segments
            .windows(2)
            .take_while(|w| w[1].first_record <= from_record)
            .count();
        reader.segments.drain(..skip);
        reader.records_per_segment.drain(..skip);
        reader.next_record = reader.segments.first().map_or(0, |s| s.first_record);
        Ok(reader)
    }

    /// The segment files, in log order, as listed when the reader was opened.
    pub fn segments(&self) -> &[SegmentFile] {
        &self.segments
    }

    /// Records read so far from each segment (parallel to [`LogReader::segments`]).
    pub fn records_per_segment(&self) -> &[u64] {
        &self.records_per_segment
    }

    /// The number the next record read (or appended) gets.
    pub fn next_record(&self) -> u64 {
        self.next_record
    }

    /// The torn tail the reader stopped at, once it has stopped there.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The damaged ranges skipped so far, in log order.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Records lost in the damaged ranges skipped so far.
    pub fn records_lost(&self) -> u64 {
        self.damage.iter().map(|d| d.records_lost).sum()
    }

    fn step(&mut self) -> LogResult<Option<(u64, LogEntry)>> {
        loop {
            let Some(segment) = self.segments.get(self.index) else {
                return Ok(None);
            };
            let current = match &mut self.current {
                Some(current) => current,
                None => {
                    if segment.first_record != self.next_record {
                        return Err(LogError::SegmentGap {
                            path: segment.path.clone(),
                            expected: self.next_record,
                            found: segment.first_record,
                        });
                    }
                    match FrameReader::open(&segment.path)? {
                        Ok(reader) => self.current.insert(Current::Streaming(reader)),
                        Err(kind) => {
                            // A damaged header before intact records (a flipped bit, a zeroed
                            // sector) costs only the header: never the records after it.
                            if matches!(kind, Corruption::BadHeader { .. })
                                && self.resync_after_header(&kind)?
                            {
                                continue;
                            }
                            return self.damaged_header(kind).map(|()| None);
                        }
                    }
                }
            };
            match current {
                Current::Streaming(reader) => match reader.next_frame(&mut self.payload)? {
                    // Checksummed; the readings of a batch are not decoded when not wanted.
                    Frame::Record { .. }
                        if self.controls_only && !is_control_payload(&self.payload) =>
                    {
                        self.next_record += 1;
                        self.records_per_segment[self.index] += 1;
                    }
                    Frame::Record { offset, .. } => {
                        match decode_payload(&self.payload, self.next_record) {
                            Ok(entry) => return Ok(Some(self.take(entry))),
                            Err(_) => self.resync(offset)?,
                        }
                    }
                    Frame::End => self.next_segment(),
                    Frame::Damaged { offset, .. } => self.resync(offset)?,
                },
                Current::Resynced { bytes, steps } => match steps.pop_front() {
                    None => self.next_segment(),
                    Some(Step::Record { offset, len }) => {
                        let payload =
                            &bytes[(offset as usize + FRAME_HEADER_LEN)..(offset + len) as usize];
                        // `scan` decoded it already; a failure here would be a bug, not damage.
                        let entry = decode_payload(payload, self.next_record).map_err(|e| {
                            LogError::Corrupt {
                                path: segment.path.clone(),
                                offset,
                                kind: e.into(),
                            }
                        })?;
                        return Ok(Some(self.take(entry)));
                    }
                    Some(Step::Damage(mut damage)) => {
                        damage.first_record = self.next_record;
                        self.next_record += damage.records_lost;
                        self.damage.push(damage);
                    }
                    Some(Step::Torn { offset, kind }) => {
                        let segment_len_bytes = bytes.len() as u64;
                        self.torn_tail = Some(TornTail {
                            segment: segment.clone(),
                            offset,
                            segment_len_bytes,
                            kind,
                        });
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn take(&mut self, entry: LogEntry) -> (u64, LogEntry) {
        let record = self.next_record;
        self.next_record += 1;
        self.records_per_segment[self.index] += 1;
        (record, entry)
    }

    /// Control records only: the tags' batches are read and checksummed but not decoded, so a
    /// scan for the changes in a long log costs little more than reading it.
    pub fn controls_only(mut self) -> Self {
        self.controls_only = true;
        self
    }

    /// The tags' batches only, skipping control records (for readers of readings: trails,
    /// subject access, dedup state).
    pub fn batches(self) -> Batches {
        Batches { reader: self }
    }

    fn next_segment(&mut self) {
        self.current = None;
        self.index += 1;
    }

    /// The current segment failed to verify at `offset`: reads it into memory and splits the rest
    /// into records and damaged ranges, giving each damaged range its share of record numbers.
    fn resync(&mut self, offset: u64) -> LogResult<()> {
        let segment = &self.segments[self.index];
        let len_bytes = match &self.current {
            Some(Current::Streaming(reader)) => reader.len_bytes(),
            _ => u64::MAX,
        };
        let mut bytes = fs::read(&segment.path)
            .map_err(|e| LogError::io("reading segment", &segment.path, e))?;
        // Bytes appended since the segment was opened are not read (as when streaming).
        bytes.truncate(usize::try_from(len_bytes).unwrap_or(usize::MAX));
        self.resync_bytes(bytes, offset, None)
    }

    /// The current segment's header is not a log header: if a valid record follows it, the
    /// header is a damaged range of its own (no record lost) and the segment is read on;
    /// returns whether it was.
    fn resync_after_header(&mut self, kind: &Corruption) -> LogResult<bool> {
        let segment = &self.segments[self.index];
        let bytes = fs::read(&segment.path)
            .map_err(|e| LogError::io("reading segment", &segment.path, e))?;
        let header_len = SEGMENT_HEADER_LEN as usize;
        if bytes.len() < header_len || next_frame_start(&bytes, header_len).is_none() {
            return Ok(false);
        }
        self.resync_bytes(bytes, SEGMENT_HEADER_LEN, Some(kind.clone()))?;
        Ok(true)
    }

    fn resync_bytes(
        &mut self,
        bytes: Vec<u8>,
        offset: u64,
        header_damage: Option<Corruption>,
    ) -> LogResult<()> {
        let segment = &self.segments[self.index];
        let spans = scan(&bytes, offset as usize);
        let is_last = self.index + 1 == self.segments.len();
        let intact = self.records_per_segment[self.index]
            + spans
                .iter()
                .filter(|s| matches!(s, Span::Record { .. }))
                .count() as u64;
        // A sealed segment's record count is known from the next segment's name: the damaged
        // ranges hold the difference (one each while it lasts, the rest in the last range). In
        // the last segment each mid-segment range counts as one record.
        let mut unassigned = match self.segments.get(self.index + 1) {
            Some(next) => {
                let expected = next.first_record - segment.first_record;
                Some(
                    expected
                        .checked_sub(intact)
                        .ok_or_else(|| LogError::SegmentGap {
                            path: next.path.clone(),
                            expected: segment.first_record + intact,
                            found: next.first_record,
                        })?,
                )
            }
            None => None,
        };
        let damaged_ranges = spans
            .iter()
            .filter(|s| matches!(s, Span::Damaged { .. }))
            .count();
        let mut steps = VecDeque::with_capacity(spans.len() + 1);
        if let Some(kind) = header_damage {
            steps.push_back(Step::Damage(Damage {
                segment: segment.clone(),
                start: 0,
                end: SEGMENT_HEADER_LEN,
                first_record: 0,
                records_lost: 0,
                kind,
            }));
        }
        let mut damaged_seen = 0;
        for span in spans {
            match span {
                Span::Record { offset, len } => steps.push_back(Step::Record { offset, len }),
                Span::Damaged {
                    start,
                    kind,
                    reaches_end: true,
                    ..
                } if is_last => steps.push_back(Step::Torn {
                    offset: start,
                    kind,
                }),
                Span::Damaged {
                    start, end, kind, ..
                } => {
                    damaged_seen += 1;
                    let records_lost = match &mut unassigned {
                        None => 1,
                        Some(left) if damaged_seen == damaged_ranges => std::mem::take(left),
                        Some(left) => {
                            let share = (*left).min(1);
                            *left -= share;
                            share
                        }
                    };
                    steps.push_back(Step::Damage(Damage {
                        segment: segment.clone(),
                        start,
                        end,
                        first_record: 0, // numbered when reached
                        records_lost,
                        kind,
                    }));
                }
            }
        }
        self.current = Some(Current::Resynced { bytes, steps });
        Ok(())
    }

    /// The current segment's header is damaged: a torn tail if it is the last segment (a crash
    /// while it was being created), else an error.
    fn damaged_header(&mut self, kind: Corruption) -> LogResult<()> {
        let segment = self.segments[self.index].clone();
        if self.index + 1 < self.segments.len() {
            return Err(LogError::Corrupt {
                path: segment.path,
                offset: 0,
                kind,
            });
        }
        let segment_len_bytes = fs::metadata(&segment.path)
            .map_err(|e| LogError::io("reading segment metadata", &segment.path, e))?
            .len();
        self.torn_tail = Some(TornTail {
            segment,
            offset: 0,
            segment_len_bytes,
            kind,
        });
        Ok(())
    }
}

/// [`LogReader::batches`]: `(record number, batch)` in log order, control records skipped.
pub struct Batches {
    reader: LogReader,
}

impl Batches {
    /// The reader underneath (for its damage and torn-tail reports once iterated).
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }
}

impl Iterator for Batches {
    type Item = LogResult<(u64, Batch)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next()? {
                Ok((record, LogEntry::Batch(batch))) => {
                    let batch = std::sync::Arc::try_unwrap(batch).unwrap_or_else(|b| (*b).clone());
                    return Some(Ok((record, batch)));
                }
                Ok((_, LogEntry::Control { .. })) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Iterator for LogReader {
    type Item = LogResult<(u64, LogEntry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Hands `each` every batch of the log in `dir`, in log order, until it breaks (nothing when
/// there is no log there).
pub fn for_each_batch_in(
    dir: &std::path::Path,
    each: &mut dyn FnMut(&crate::model::Batch) -> std::ops::ControlFlow<()>,
) -> LogResult<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for item in LogReader::open(dir)?.batches() {
        let (_, batch) = item?;
        if each(&batch).is_break() {
            break;
        }
    }
    Ok(())
}
