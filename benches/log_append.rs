//! Append throughput of the durable log: 500-reading batches appended and made durable with one
//! `sync` per group of 1, 16 or 64 batches (what group commit buys), plus the raw latency of one
//! small write + `fdatasync` on the disk the temp dir lives on.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::Write;
use tagstream::log::{LogConfig, LogWriter};
use tagstream::model::{Batch, Position, PositionSource, Reading, ReadingBody};

const READINGS_PER_BATCH: usize = 500;

fn gps_batch(seq: u64) -> Batch {
    let readings = (0..READINGS_PER_BATCH)
        .map(|i| Reading {
            t_ms: 1_774_722_600_000 + i as i64 * 1000,
            battery_pct: Some(80),
            body: ReadingBody::Position(Position {
                lat_e7: 514_545_000 + i as i32,
                lon_e7: -25_879_000,
                precision_cm: 800,
                source: PositionSource::Gps,
                speed_ckmh: Some(410),
                heading_cdeg: Some(9000),
                satellites: Some(9),
            }),
        })
        .collect();
    Batch {
        tag: "bench-tag-0001".into(),
        epoch: 0,
        seq,
        arrival_ms: 1_774_722_700_000,
        readings,
    }
}

fn append_and_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append");
    let batch = gps_batch(1);
    for batches_per_sync in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(
            (batches_per_sync * READINGS_PER_BATCH) as u64,
        ));
        group.bench_function(
            BenchmarkId::new("batches_per_sync", batches_per_sync),
            |b| {
                let dir = tempfile::tempdir().expect("temp dir");
                let (mut writer, _) =
                    LogWriter::open(dir.path(), LogConfig::default()).expect("open");
                b.iter(|| {
                    for _ in 0..batches_per_sync {
                        writer.append(&batch).expect("append");
                    }
                    writer.sync().expect("sync");
                });
            },
        );
    }
    group.finish();
}

fn raw_fdatasync(c: &mut Criterion) {
    let mut group = c.benchmark_group("fdatasync");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("probe")).expect("create");
    let page = [0x5Au8; 4096];
    group.bench_function("append_4KiB_then_fdatasync", |b| {
        b.iter(|| {
            file.write_all(&page).expect("write");
            file.sync_data().expect("fdatasync");
        });
    });
    group.finish();
}

criterion_group!(benches, append_and_sync, raw_fdatasync);
criterion_main!(benches);
