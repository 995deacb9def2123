//! Criterion bench of pipeline snapshots (issue 15): a population of 500 tags over 7 days
//! (GPS tags with a curfew and an exclusion zone, a fix a minute; RF tags with a curfew, a
//! report every 5 minutes; alcohol tags, a sample every 30 minutes; every tag uploading every
//! 10 minutes) is fed through the pipeline once. Then: the snapshot's size, the time to take
//! it, the time to restore it, against the time to rebuild the same state by re-reading the log
//! from record 0 (what every start does today): from memory (the pipeline alone), and from a
//! durable log on disk (reading and decoding its records too).
//!
//! `SNAPSHOT_BENCH_TAGS` and `SNAPSHOT_BENCH_DAYS` change the population.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Instant;
use tagstream::formats::orders_file::parse_orders;
use tagstream::model::{
    Batch, LogEntry, OrdersFile, Position, PositionSource, Reading, ReadingBody, TacSample,
};
use tagstream::orders::OrderBook;
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{PipelineConfig, RuleFactory, Sink, VecSink};
use tagstream::rules::{RulesConfig, StandardRules};

/// Monday 2 March 2026, 00:00 UTC.
const T0_MS: i64 = 1_772_409_600_000;
const MIN: i64 = 60_000;
const PARTITIONS: usize = 4;

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Home of person `i`: spread over about 10 km around Bristol.
fn home(i: i64) -> (f64, f64) {
    (
        51.40 + (i % 25) as f64 * 0.004,
        -2.65 + (i / 25) as f64 * 0.006,
    )
}

fn orders(tags: i64) -> OrdersFile {
    let mut people = Vec::new();
    let mut activations = Vec::new();
    let mut orders = Vec::new();
    for i in 0..tags {
        let (lat, lon) = home(i);
        people.push(serde_json::json!({"id": format!("P{i}")}));
        activations.push(
            serde_json::json!({"id": format!("A{i}"), "person": format!("P{i}"),
            "tag": format!("T{i}"), "from": "2026-03-01T00:00:00Z"}),
        );
        let curfew = serde_json::json!({"type": "curfew", "grace_min": 5,
            "addresses": [{"id": "home", "lat": lat, "lon": lon, "radius_m": 60}],
            "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                           "start": "19:00", "end": "07:00", "address": "home"}]});
        let conditions = match i % 6 {
            0..=2 => vec![
                curfew,
                serde_json::json!({"type": "exclusion_zone", "id": format!("Z{i}"),
                    "geometry": {"type": "Point", "coordinates": [lon + 0.01, lat]},
                    "radius_m": 300}),
            ],
            3 | 4 => vec![curfew],
            _ => vec![serde_json::json!({"type": "alcohol", "mode": "abstinence"})],
        };
        orders.push(
            serde_json::json!({"id": format!("O{i}"), "person": format!("P{i}"),
            "from": "2026-03-01", "conditions": conditions}),
        );
    }
    let doc = serde_json::json!({"people": people, "activations": activations, "orders": orders});
    parse_orders(&doc.to_string()).expect("orders").accepted
}

/// Tag `i`'s readings in `[from, to)`: out 2 hours each evening from 18:00 + i minutes (so
/// some curfews are breached), GPS, RF or TAC by the person's kind.
fn readings(i: i64, from: i64, to: i64) -> Vec<Reading> {
    let (lat, lon) = home(i);
    let every = match i % 6 {
        0..=2 => MIN,
        3 | 4 => 5 * MIN,
        _ => 30 * MIN,
    };
    let first = from + (every - (from - T0_MS).rem_euclid(every)) % every;
    (0..)
        .map(|k| first + k * every)
        .take_while(|t| *t < to)
        .map(|t_ms| {
            let minute = (t_ms - T0_MS) / MIN % 1440;
            let out_from = 18 * 60 + (i * 7) % 90;
            let out = (out_from..out_from + 120).contains(&minute);
            let body = match i % 6 {
                0..=2 => ReadingBody::Position(Position {
                    lat_e7: ((lat + if out { 0.02 } else { 0.0 }) * 1e7) as i32,
                    lon_e7: (lon * 1e7) as i32,
                    precision_cm: 800,
                    source: PositionSource::Gps,
                    speed_ckmh: None,
                    heading_cdeg: None,
                    satellites: Some(8),
                }),
                3 | 4 => ReadingBody::Rf { in_range: !out },
                _ => ReadingBody::Tac(TacSample {
                    tac_ugdl: 0,
                    ir_uv: 1_000_000 + (t_ms / MIN % 7) as i32 * 5_000,
                    temp_mc: 33_000,
                }),
            };
            Reading {
                t_ms,
                battery_pct: Some(80),
                body,
            }
        })
        .collect()
}

fn log(tags: i64, days: i64) -> Vec<LogEntry> {
    let upload_ms = 10 * MIN;
    let mut entries = Vec::new();
    let mut slot = T0_MS;
    let mut seq = 0;
    while slot < T0_MS + days * 1440 * MIN {
        seq += 1;
        for i in 0..tags {
            let readings = readings(i, slot, slot + upload_ms);
            if readings.is_empty() {
                continue;
            }
            entries.push(LogEntry::Batch(Arc::new(Batch {
                tag: format!("T{i}"),
                seq,
                epoch: 0,
                arrival_ms: slot + upload_ms + (i % 60) * 1_000,
                readings,
            })));
        }
        slot += upload_ms;
    }
    entries
}

fn factory(orders: &OrdersFile, config: PipelineConfig) -> Box<dyn RuleFactory> {
    Box::new(StandardRules::new(config, RulesConfig::default(), orders))
}

/// A sink that only counts (outputs are not what is measured).
#[derive(Default)]
struct Count(u64);

impl Sink for Count {
    fn emit(&mut self, _: tagstream::pipeline::Output, _: Option<i64>) {
        self.0 += 1;
    }
}

fn replay(orders: &OrdersFile, config: PipelineConfig, log: &[LogEntry]) -> InlineDriver {
    let mut sink = Count::default();
    let mut driver = InlineDriver::from_book(
        OrderBook::from_document(orders),
        config,
        factory(orders, config),
        PARTITIONS,
        &mut VecSink::default(),
    );
    for (record, entry) in log.iter().enumerate() {
        driver.feed_record(record as u64, entry, &mut sink);
    }
    driver
}

fn snapshot(c: &mut Criterion) {
    let tags = env_or("SNAPSHOT_BENCH_TAGS", 500);
    let days = env_or("SNAPSHOT_BENCH_DAYS", 7);
    let config = PipelineConfig::default();
    let orders = orders(tags);
    let log = log(tags, days);
    let readings: usize = log
        .iter()
        .filter_map(LogEntry::batch)
        .map(|b| b.readings.len())
        .sum();
    let started = Instant::now();
    let driver = replay(&orders, config, &log);
    let replay_s = started.elapsed().as_secs_f64();
    let bytes = driver.snapshot().expect("snapshot");
    eprintln!(
        "snapshot bench: {tags} tags, {days} days, {} records, {readings} readings; \
         one replay from record 0 took {replay_s:.2} s; snapshot {} bytes ({:.1} MiB, \
         {:.1} bytes a reading)",
        log.len(),
        bytes.len(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        bytes.len() as f64 / readings as f64,
    );

    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.bench_function("take", |b| {
        b.iter(|| driver.snapshot().expect("snapshot").len())
    });
    group.bench_function("restore", |b| {
        b.iter(|| {
            InlineDriver::restore(&bytes, config, factory(&orders, config), PARTITIONS)
                .expect("restore")
                .dispatch_stats()
                .batches
        })
    });
    group.bench_function("replay_from_record_0", |b| {
        b.iter(|| replay(&orders, config, &log).dispatch_stats().batches)
    });
    // The same records in a durable log on disk, read back and replayed.
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut writer, _) =
        tagstream::log::writer::LogWriter::open(dir.path(), Default::default()).expect("log");
    for entry in &log {
        if let Some(batch) = entry.batch() {
            writer.append(batch).expect("append");
        }
    }
    writer.sync().expect("sync");
    drop(writer);
    group.bench_function("read_log_and_replay_from_record_0", |b| {
        b.iter(|| {
            let mut sink = Count::default();
            let mut driver = InlineDriver::from_book(
                OrderBook::from_document(&orders),
                config,
                factory(&orders, config),
                PARTITIONS,
                &mut VecSink::default(),
            );
            let reader = tagstream::log::reader::LogReader::open(dir.path()).expect("reader");
            for item in reader {
                let (record, entry) = item.expect("record");
                driver.feed_record(record, &entry, &mut sink);
            }
            driver.dispatch_stats().batches
        })
    });
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
