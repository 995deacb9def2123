//! Readings as JSON Lines (contract section 8), read into batches.
//!
//! A line may carry an optional `batch` number (the tag's upload sequence, as tagstream exports
//! it); lines without one are grouped as a tag would upload them: each run of consecutive lines
//! from the same tag is one batch. Batch boundaries matter because the pipeline orders readings
//! within a batch and treats older readings in a later batch as late.
//!
//! A line may also carry `arrival` (RFC 3339): when the server received its batch, which the
//! event-time clock uses (`docs/rules.md`, "The event-time clock"), so a recording with arrival
//! times replays the clock as the live server computed it. A line whose `arrival` differs from
//! its batch's starts a new batch; a line without one belongs to the batch it continues.
//!
//! A line `{"record":N,"control":{…}}` is a control record (a change to people, activations or
//! orders, `docs/formats.md`, "Control records"), applied where it stands among the readings;
//! `record` is its log record number (which withdrawals name), optional.

use super::LineError;
use crate::model::time::{format_time, parse_time};
use crate::model::{parse_reading_line, Batch, ControlRecord, LogEntry, TaggedReading, TimeMs};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;

/// Reads a readings file, calling `on_batch` for each batch in file order (control lines are
/// skipped). Bad lines are returned (with their line numbers); good lines are never dropped
/// because of them.
pub fn read_batches(
    input: impl BufRead,
    mut on_batch: impl FnMut(Batch),
) -> std::io::Result<Vec<LineError>> {
    read_entries(input, |entry| {
        if let LogEntry::Batch(batch) = entry {
            on_batch(Arc::unwrap_or_clone(batch));
        }
    })
}

/// A control line.
#[derive(serde::Deserialize)]
struct ControlLine {
    record: Option<u64>,
    control: ControlRecord,
}

/// Reads a readings file, calling `on_entry` for each batch and control record in file order.
pub fn read_entries(
    input: impl BufRead,
    mut on_entry: impl FnMut(LogEntry),
) -> std::io::Result<Vec<LineError>> {
    let mut errors = Vec::new();
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut current: Option<(Batch, Option<u64>)> = None;
    // The record number a control line without one gets: its place among the entries.
    let mut entries = 0u64;
    let flush = |current: &mut Option<(Batch, Option<u64>)>, entries: &mut u64| {
        current.take().map(|(batch, _)| {
            *entries += 1;
            LogEntry::Batch(Arc::new(batch))
        })
    };
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.contains("\"control\"") {
            match serde_json::from_str::<ControlLine>(&line) {
                Ok(ControlLine { record, control }) => {
                    if let Some(batch) = flush(&mut current, &mut entries) {
                        on_entry(batch);
                    }
                    let record = record.unwrap_or(entries);
                    entries = record + 1;
                    on_entry(LogEntry::Control {
                        record,
                        control: Arc::new(control),
                    });
                }
                Err(e) => errors.push(LineError {
                    line: line_no,
                    record: None,
                    message: format!("control record: {e}"),
                }),
            }
            continue;
        }
        let (TaggedReading { tag, reading }, batch_no, arrival_ms) =
            match parse_line_with_batch(&line) {
                Ok(parsed) => parsed,
                Err(message) => {
                    errors.push(LineError {
                        line: line_no,
                        record: None,
                        message,
                    });
                    continue;
                }
            };
        let continues = current.as_ref().is_some_and(|(b, n)| {
            b.tag == tag && *n == batch_no && arrival_ms.is_none_or(|a| a == b.arrival_ms)
        });
        if !continues {
            if let Some(batch) = flush(&mut current, &mut entries) {
                on_entry(batch);
            }
            let counter = next_seq.entry(tag.clone()).or_insert(0);
            let seq = match batch_no {
                Some(n) => n,
                None => *counter + 1,
            };
            *counter = (*counter).max(seq);
            current = Some((
                Batch {
                    tag,
                    epoch: 0,
                    seq,
                    arrival_ms: arrival_ms.unwrap_or(0),
                    readings: Vec::new(),
                },
                batch_no,
            ));
        }
        if let Some((batch, _)) = current.as_mut() {
            batch.readings.push(reading);
        }
    }
    if let Some(batch) = flush(&mut current, &mut entries) {
        on_entry(batch);
    }
    Ok(errors)
}

/// Writes one control record as a control line (`record` is its log record number).
pub fn write_control(
    out: &mut impl Write,
    record: u64,
    control: &ControlRecord,
) -> std::io::Result<()> {
    let json = serde_json::to_string(control).map_err(std::io::Error::other)?;
    writeln!(out, "{{\"record\":{record},\"control\":{json}}}")
}

/// A line's reading, its `batch` number and its batch's `arrival` (ms), if given.
fn parse_line_with_batch(
    line: &str,
) -> Result<(TaggedReading, Option<u64>, Option<TimeMs>), String> {
    let tagged = parse_reading_line(line)?;
    #[derive(serde::Deserialize)]
    struct BatchFields<'a> {
        batch: Option<u64>,
        #[serde(borrow)]
        arrival: Option<std::borrow::Cow<'a, str>>,
    }
    let fields =
        serde_json::from_str::<BatchFields>(line).map_err(|e| format!("'batch'/'arrival': {e}"))?;
    let arrival_ms = match fields.arrival {
        // The pipeline reads an arrival of 0 or less as "unknown".
        Some(text) => match parse_time(&text) {
            Ok(ms) if ms > 0 => Some(ms),
            Ok(_) => return Err(format!("'arrival': {text} is not after 1970")),
            Err(e) => return Err(format!("'arrival': {e}")),
        },
        None => None,
    };
    Ok((tagged, fields.batch, arrival_ms))
}

/// Writes one batch as JSON Lines, each line carrying, after the contract fields, the batch's
/// arrival time (when known) and its number.
pub fn write_batch(out: &mut impl Write, batch: &Batch) -> std::io::Result<()> {
    let arrival = if batch.arrival_ms > 0 {
        format!(",\"arrival\":\"{}\"", format_time(batch.arrival_ms))
    } else {
        String::new()
    };
    for reading in &batch.readings {
        let tagged = TaggedReading {
            tag: batch.tag.clone(),
            reading: *reading,
        };
        let mut line = serde_json::to_string(&tagged).map_err(std::io::Error::other)?;
        line.pop(); // the closing brace; the batch fields go last
        writeln!(out, "{line}{arrival},\"batch\":{}}}", batch.seq)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_runs_by_tag_and_reports_bad_lines_with_numbers() {
        let text = r#"{"kind":"gps","tag":"T1","t":"2026-03-28T18:30:00Z","lat":51.4545,"lon":-2.5879,"precision_m":8,"source":"gps"}
{"kind":"event","tag":"T1","t":"2026-03-28T18:31:00Z","event":"strap_open"}
{"kind":"tac","tag":"T2","t":"2026-03-28T18:30:00Z","tac_gdl":0.021,"ir_v":1.12,"temp_c":33.4}
not json
{"kind":"gps","tag":"T1","t":"2026-03-28T18:32:00Z","lat":95.0,"lon":0,"precision_m":8}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:33:00Z","in_range":true}
"#;
        let mut batches = vec![];
        let errors = read_batches(text.as_bytes(), |b| batches.push(b)).unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 4);
        assert_eq!(errors[1].line, 5);
        assert!(errors[1].message.contains("lat"), "{}", errors[1].message);
        let shape: Vec<(String, u64, usize)> = batches
            .iter()
            .map(|b| (b.tag.clone(), b.seq, b.readings.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("T1".into(), 1, 2),
                ("T2".into(), 1, 1),
                ("T1".into(), 2, 1)
            ]
        );
    }

    #[test]
    fn arrival_times_are_read_per_batch_and_a_changed_one_starts_a_new_batch() {
        let text = r#"{"kind":"rf","tag":"T1","t":"2026-03-28T18:30:00Z","in_range":true,"arrival":"2026-03-28T18:31:00.250Z","batch":1}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:30:30Z","in_range":true,"batch":1}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:40:00Z","in_range":true,"arrival":"2026-03-28T18:41:00Z"}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:40:30Z","in_range":true,"arrival":"2026-03-28T18:41:00Z"}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:50:00Z","in_range":true,"arrival":"2026-03-28T18:51:00Z"}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:55:00Z","in_range":true,"arrival":"yesterday"}
{"kind":"rf","tag":"T1","t":"2026-03-28T18:56:00Z","in_range":true,"arrival":"1969-12-31T00:00:00Z"}
{"kind":"rf","tag":"T2","t":"2026-03-28T18:50:00Z","in_range":true}
"#;
        let mut batches = vec![];
        let errors = read_batches(text.as_bytes(), |b| batches.push(b)).unwrap();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![6, 7], "{errors:?}");
        assert!(errors[0].message.contains("'arrival'"), "{errors:?}");
        assert!(errors[1].message.contains("after 1970"), "{errors:?}");
        let at = |s: &str| parse_time(s).unwrap();
        let shape: Vec<(String, u64, usize, TimeMs)> = batches
            .iter()
            .map(|b| (b.tag.clone(), b.seq, b.readings.len(), b.arrival_ms))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("T1".into(), 1, 2, at("2026-03-28T18:31:00.250Z")),
                ("T1".into(), 2, 2, at("2026-03-28T18:41:00Z")),
                ("T1".into(), 3, 1, at("2026-03-28T18:51:00Z")),
                ("T2".into(), 1, 1, 0),
            ]
        );
        // Written back, each line carries its batch's arrival, and reads back the same.
        let mut out = Vec::new();
        for b in &batches {
            write_batch(&mut out, b).unwrap();
        }
        let written = String::from_utf8(out.clone()).unwrap();
        assert!(
            written
                .lines()
                .next()
                .unwrap()
                .ends_with(r#""in_range":true,"arrival":"2026-03-28T18:31:00.250Z","batch":1}"#),
            "{written}"
        );
        assert!(written
            .lines()
            .last()
            .unwrap()
            .ends_with(r#""in_range":true,"batch":1}"#));
        let mut again = vec![];
        read_batches(out.as_slice(), |b| again.push(b)).unwrap();
        assert_eq!(again, batches);
    }

    #[test]
    fn written_batches_read_back_identically() {
        let text = r#"{"kind":"gps","tag":"T1","t":"2026-03-28T18:30:00Z","lat":51.4545,"lon":-2.5879,"precision_m":8.5,"source":"lbs","speed_kmh":4.1,"heading_deg":90,"satellites":7,"battery_pct":80}
{"kind":"tac","tag":"T1","t":"2026-03-28T18:30:00.250Z","tac_gdl":0.021,"ir_v":1.12,"temp_c":33.4}
"#;
        let mut batches = vec![];
        read_batches(text.as_bytes(), |b| batches.push(b)).unwrap();
        let mut out = Vec::new();
        write_batch(&mut out, &batches[0]).unwrap();
        let mut again = vec![];
        read_batches(out.as_slice(), |b| again.push(b)).unwrap();
        assert_eq!(again, batches);
        let first = String::from_utf8(out).unwrap();
        assert!(first.starts_with(r#"{"kind":"gps","tag":"T1","t":"2026-03-28T18:30:00Z","lat":51.4545,"lon":-2.5879,"precision_m":8.5"#), "{first}");
    }
}
