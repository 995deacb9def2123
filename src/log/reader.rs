//! Reading a log directory back in log order: every segment, every record, each checked and
//! decoded to a [`Batch`] with its global record number. Used by replay, inspect and recovery.
//!
//! Damage in the last segment is a torn tail (what a crash mid-write leaves): the reader stops
//! there without an error and reports it through [`LogReader::torn_tail`]. Damage in an earlier,
//! sealed segment is an error naming the file and offset, after which the reader yields nothing.

use super::error::{Corruption, LogError, LogResult};
use super::record::decode_batch_payload;
use super::segment::{list_segments, Frame, FrameReader, SegmentFile};
use crate::model::Batch;
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

/// Iterates `(record number, batch)` over a log directory in log order.
pub struct LogReader {
    segments: Vec<SegmentFile>,
    /// Index in `segments` of the segment being read (or to be opened next).
    index: usize,
    current: Option<FrameReader>,
    next_record: u64,
    payload: Vec<u8>,
    torn_tail: Option<TornTail>,
    /// Records read from each segment so far, in segment order.
    records_per_segment: Vec<u64>,
    done: bool,
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
            records_per_segment,
            done: false,
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

    fn step(&mut self) -> LogResult<Option<(u64, Batch)>> {
        loop {
            let Some(segment) = self.segments.get(self.index) else {
                return Ok(None);
            };
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    if segment.first_record != self.next_record {
                        return Err(LogError::SegmentGap {
                            path: segment.path.clone(),
                            expected: self.next_record,
                            found: segment.first_record,
                        });
                    }
                    match FrameReader::open(&segment.path)? {
                        Ok(reader) => self.current.insert(reader),
                        Err(kind) => return self.damaged(0, kind).map(|()| None),
                    }
                }
            };
            match reader.next_frame(&mut self.payload)? {
                Frame::Record { offset, .. } => match decode_batch_payload(&self.payload) {
                    Ok(batch) => {
                        let record = self.next_record;
                        self.next_record += 1;
                        self.records_per_segment[self.index] += 1;
                        return Ok(Some((record, batch)));
                    }
                    Err(e) => return self.damaged(offset, Corruption::Payload(e)).map(|()| None),
                },
                Frame::End => {
                    self.current = None;
                    self.index += 1;
                }
                Frame::Damaged { offset, kind } => {
                    return self.damaged(offset, kind).map(|()| None)
                }
            }
        }
    }

    /// Damage at `offset` of the current segment: a torn tail if it is the last, else an error.
    fn damaged(&mut self, offset: u64, kind: Corruption) -> LogResult<()> {
        let segment = self.segments[self.index].clone();
        if self.index + 1 < self.segments.len() {
            return Err(LogError::Corrupt {
                path: segment.path,
                offset,
                kind,
            });
        }
        let segment_len_bytes = match &self.current {
            Some(reader) => reader.len_bytes(),
            None => fs::metadata(&segment.path)
                .map_err(|e| LogError::io("reading segment metadata", &segment.path, e))?
                .len(),
        };
        self.torn_tail = Some(TornTail {
            segment,
            offset,
            segment_len_bytes,
            kind,
        });
        Ok(())
    }
}

impl Iterator for LogReader {
    type Item = LogResult<(u64, Batch)>;

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
