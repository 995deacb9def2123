//! Criterion bench of applying a backdated order change (issue 14): one person with a curfew and
//! 7 days of GPS fixes (one a minute, 10,080 readings, uploaded 10 at a time) already through the
//! pipeline, then a variation effective from the first day arrives as a control record. The
//! activation's new rules re-run its tape and what differs is re-issued. Each iteration applies
//! one more variation (the curfew start alternates 20:00 / 19:00), so every one changes outputs.
//!
//! Beside it, the tape itself (`pipeline::amendment::Tape`): pushing the same week into a fresh
//! tape (encoding), pushing into a tape kept at a small byte budget (encoding plus dropping the
//! oldest, the steady state of a full tape), and decoding the week back (a re-run's read), each
//! per reading.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use tagstream::formats::orders_file::parse_orders;
use tagstream::model::{
    Batch, Change, ControlRecord, LogEntry, Order, Position, PositionSource, Reading, ReadingBody,
};
use tagstream::orders::OrderBook;
use tagstream::pipeline::amendment::{Tape, TapeInput, TapeLimits};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{PipelineConfig, VecSink};
use tagstream::rules::StandardRules;

/// Monday 2 March 2026, 00:00 UTC (GMT).
const T0_MS: i64 = 1_772_409_600_000;
const DAYS: i64 = 7;

fn order(start: &str) -> Order {
    serde_json::from_value(serde_json::json!({
        "id": "O1", "person": "P1", "from": "2026-03-01", "conditions": [{
            "type": "curfew",
            "addresses": [{"id": "home", "lat": 51.4545, "lon": -2.5879, "radius_m": 50}],
            "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                           "start": start, "end": "07:00", "address": "home"}]}]}))
    .expect("order")
}

/// A fix a minute for 7 days: home except 18:00–21:30 each evening, 2 km east.
fn readings() -> Vec<Reading> {
    (0..DAYS * 1440)
        .map(|m| {
            let t_ms = T0_MS + m * 60_000;
            let minute_of_day = m % 1440;
            let away = (18 * 60..21 * 60 + 30).contains(&minute_of_day);
            Reading {
                t_ms,
                battery_pct: Some(80),
                body: ReadingBody::Position(Position {
                    lat_e7: 514_545_000,
                    lon_e7: if away { -25_590_000 } else { -25_879_000 },
                    precision_cm: 500,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(0),
                    heading_cdeg: None,
                    satellites: Some(9),
                }),
            }
        })
        .collect()
}

fn backdated_change(c: &mut Criterion) {
    let doc = format!(
        r#"{{"people":[{{"id":"P1"}}],
          "activations":[{{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"}}],
          "orders":[{}]}}"#,
        serde_json::to_string(&order("19:00")).expect("json")
    );
    let orders = parse_orders(&doc).expect("orders").accepted;
    let config = PipelineConfig {
        no_contact_ms: 30 * 24 * 3600 * 1000,
        ..PipelineConfig::default()
    };
    let mut sink = VecSink::default();
    let factory = Box::new(StandardRules::new(config, Default::default(), &orders));
    let mut driver = InlineDriver::from_book(
        OrderBook::from_document(&orders),
        config,
        factory,
        1,
        &mut sink,
    );
    for (seq, chunk) in readings().chunks(10).enumerate() {
        let batch = Batch {
            tag: "T1".into(),
            epoch: 0,
            seq: seq as u64 + 1,
            arrival_ms: 0,
            readings: chunk.to_vec(),
        };
        driver.feed(&Arc::new(batch), &mut sink);
    }
    let mut record = 1_000_000u64;
    c.bench_function("backdated_change_7_days_one_person", |b| {
        b.iter(|| {
            record += 1;
            // The first iteration (an odd record) varies the 19:00 curfew to 20:00.
            let start = if record.is_multiple_of(2) {
                "19:00"
            } else {
                "20:00"
            };
            let control = ControlRecord {
                recorded: 0,
                actor: "bench".into(),
                effective: Some(T0_MS - 86_400_000),
                change: Change::PutOrder {
                    order: order(start),
                },
            };
            sink.outputs.clear();
            driver.feed_entry(
                &LogEntry::Control {
                    record,
                    control: Arc::new(control),
                },
                &mut sink,
            );
            assert!(!sink.outputs.is_empty(), "the change re-issued nothing");
        })
    });
}

/// The week's fixes as the partition pushes them: 10 a batch, the clock a minute behind.
fn week_inputs(readings: &[Reading]) -> Vec<TapeInput<'_>> {
    readings
        .chunks(10)
        .map(|chunk| TapeInput::Readings {
            clock_ms: chunk[0].t_ms - 60_000,
            readings: chunk,
            ahead: &[],
            ahead_count: 0,
            contact_ms: chunk[0].t_ms,
        })
        .collect()
}

fn tape_push_and_decode(c: &mut Criterion) {
    let readings = readings();
    let inputs = week_inputs(&readings);
    let default_limits = PipelineConfig::default().tape_limits();
    let mut group = c.benchmark_group("tape");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("push_week_into_fresh_tape", |b| {
        b.iter(|| {
            let mut tape = Tape::new(default_limits);
            for input in &inputs {
                tape.push(*input);
            }
            assert_eq!(tape.readings(), readings.len());
            tape
        })
    });
    // A tape that has to drop its oldest entries at almost every push.
    let mut full = Tape::new(TapeLimits {
        max_bytes: 16 * 1024,
        ..default_limits
    });
    group.bench_function("push_week_into_full_tape", |b| {
        b.iter(|| {
            for input in &inputs {
                full.push(*input);
            }
            assert!(full.bytes() <= 16 * 1024);
        })
    });
    let mut tape = Tape::new(default_limits);
    for input in &inputs {
        tape.push(*input);
    }
    eprintln!(
        "tape of the week: {} readings in {} bytes ({:.2} bytes a reading)",
        tape.readings(),
        tape.bytes(),
        tape.bytes() as f64 / tape.readings() as f64
    );
    group.bench_function("decode_week", |b| {
        b.iter(|| {
            let mut n = 0;
            for entry in tape.entries() {
                if let Ok(tagstream::pipeline::amendment::TapeEntry::Readings {
                    readings, ..
                }) = entry
                {
                    n += readings.len();
                }
            }
            assert_eq!(n, readings.len());
        })
    });
    group.finish();
}

criterion_group!(benches, backdated_change, tape_push_and_decode);
criterion_main!(benches);
