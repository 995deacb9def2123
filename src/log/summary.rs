//! `tagstream inspect`'s view of a log directory: segments, record and reading counts by kind,
//! tags and their last stored seq, damaged ranges skipped (records lost) and any torn tail.
//! Read-only: nothing is truncated or copied.

use super::error::LogResult;
use super::reader::LogReader;
use crate::model::ReadingKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentSummary {
    pub name: String,
    pub bytes: u64,
    /// Complete, valid records read from it.
    pub records: u64,
}

/// Readings per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadingCounts {
    pub gps: u64,
    pub tac: u64,
    pub rf: u64,
    pub event: u64,
}

impl ReadingCounts {
    pub fn total(&self) -> u64 {
        self.gps + self.tac + self.rf + self.event
    }

    fn add(&mut self, kind: ReadingKind) {
        match kind {
            ReadingKind::Gps => self.gps += 1,
            ReadingKind::Tac => self.tac += 1,
            ReadingKind::Rf => self.rf += 1,
            ReadingKind::Event => self.event += 1,
        }
    }
}

/// A torn tail found by [`summarize`] (left in place: only a writer's recovery cuts it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TornTailSummary {
    pub segment: String,
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

/// A damaged range inside a segment found by [`summarize`]: skipped, the records after it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamageSummary {
    pub segment: String,
    /// Byte range `start..end` holding no valid record.
    pub start: u64,
    pub end: u64,
    /// Record numbers `first_record..first_record + records_lost` are lost.
    pub first_record: u64,
    pub records_lost: u64,
    pub reason: String,
}

/// Statistics of a log directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    pub segments: Vec<SegmentSummary>,
    pub total_bytes: u64,
    pub records: u64,
    /// Of `records`: control records (changes to people, activations and orders).
    pub control_records: u64,
    pub readings: ReadingCounts,
    pub distinct_tags: usize,
    /// Highest stored batch seq per tag, sorted by tag.
    pub last_seq_by_tag: BTreeMap<String, u64>,
    /// Event time range of the readings, if there are any.
    pub first_reading_ms: Option<i64>,
    pub last_reading_ms: Option<i64>,
    pub torn_tail: Option<TornTailSummary>,
    /// Damaged ranges inside segments (empty for an undamaged log).
    pub damage: Vec<DamageSummary>,
    /// Records lost in them.
    pub records_lost: u64,
}

impl LogSummary {
    /// Counts one record (the embedded log's or a stream's).
    pub fn note(&mut self, entry: &crate::model::LogEntry) {
        self.records += 1;
        let crate::model::LogEntry::Batch(batch) = entry else {
            self.control_records += 1;
            return;
        };
        for reading in &batch.readings {
            self.readings.add(reading.kind());
            self.first_reading_ms = Some(
                self.first_reading_ms
                    .map_or(reading.t_ms, |t| t.min(reading.t_ms)),
            );
            self.last_reading_ms = Some(
                self.last_reading_ms
                    .map_or(reading.t_ms, |t| t.max(reading.t_ms)),
            );
        }
        let last = self
            .last_seq_by_tag
            .entry(batch.tag.clone())
            .or_insert(batch.seq);
        *last = (*last).max(batch.seq);
        self.distinct_tags = self.last_seq_by_tag.len();
    }
}

/// Reads the whole log in `dir` and summarizes it. Damage inside segments is reported in
/// [`LogSummary::damage`]; only a damaged sealed-segment header or a numbering gap is an error.
pub fn summarize(dir: &Path) -> LogResult<LogSummary> {
    let mut reader = LogReader::open(dir)?;
    let mut summary = LogSummary::default();
    for item in reader.by_ref() {
        let (_, entry) = item?;
        summary.note(&entry);
    }
    for (segment, records) in reader.segments().iter().zip(reader.records_per_segment()) {
        let bytes = fs::metadata(&segment.path)
            .map_err(|e| super::LogError::io("reading segment metadata", &segment.path, e))?
            .len();
        summary.total_bytes += bytes;
        summary.segments.push(SegmentSummary {
            name: segment.name(),
            bytes,
            records: *records,
        });
    }
    summary.damage = reader
        .damage()
        .iter()
        .map(|d| DamageSummary {
            segment: d.segment.name(),
            start: d.start,
            end: d.end,
            first_record: d.first_record,
            records_lost: d.records_lost,
            reason: d.kind.to_string(),
        })
        .collect();
    summary.records_lost = reader.records_lost();
    summary.torn_tail = reader.torn_tail().map(|tail| TornTailSummary {
        segment: tail.segment.name(),
        offset: tail.offset,
        bytes: tail.bytes(),
        reason: tail.kind.to_string(),
    });
    Ok(summary)
}
