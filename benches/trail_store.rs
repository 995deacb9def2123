//! Trail store append rate: positions per second through `append_from_batch` (the live feed's
//! path, each position with its batch) alone, and with the hourly checkpoint that seals, writes
//! and fsyncs the blocks; and the block decode crime matching reads with (an hour of one
//! activation's fixes, six batches, the batch column checked and skipped).
//!
//! `cargo bench --bench trail_store`

#[path = "../tests/support/trail_synth.rs"]
mod trail_synth;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tagstream::model::{BatchSeq, Reading};
use tagstream::store::trails::codec::{decode_block, encode_block_with_batches};
use tagstream::store::trails::{TrailConfig, TrailStore};
use trail_synth::{activation_name, Walker};

const ACTIVATIONS: u64 = 1_000;
const BATCH: i64 = 10;

/// One simulated hour: per activation, six uploads of ten fixes.
fn hour(walkers: &mut [Walker], hour_index: i64) -> Vec<(String, Vec<Reading>)> {
    let mut out = Vec::new();
    for upload in 0..(60 / BATCH) {
        for (i, w) in walkers.iter_mut().enumerate() {
            let m0 = hour_index * 60 + upload * BATCH;
            let readings: Vec<Reading> = (m0..m0 + BATCH).filter_map(|m| w.fix(m)).collect();
            out.push((activation_name(i as u64), readings));
        }
    }
    out
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("trail_store");
    group.sample_size(20);
    let mut walkers: Vec<Walker> = (0..ACTIVATIONS).map(Walker::new).collect();
    // A pool of pre-generated hours, replayed with shifted times.
    let pool: Vec<Vec<(String, Vec<Reading>)>> = (0..24).map(|h| hour(&mut walkers, h)).collect();
    let per_hour: u64 = pool[0].iter().map(|(_, r)| r.len() as u64).sum();
    group.throughput(Throughput::Elements(per_hour));

    for (name, seal) in [
        ("append_hour_1000_activations", false),
        ("append_and_checkpoint_hour_1000_activations", true),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = TrailStore::open(dir.path(), TrailConfig::default()).expect("open");
        let mut hour_index = 0i64;
        let mut record = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let shift = hour_index * 3_600_000;
                    hour_index += 1;
                    pool[(hour_index % 24) as usize]
                        .iter()
                        .map(|(a, rs)| {
                            (
                                a.clone(),
                                rs.iter()
                                    .map(|r| Reading {
                                        t_ms: r.t_ms + shift - (hour_index % 24) * 3_600_000,
                                        ..*r
                                    })
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .collect::<Vec<_>>()
                },
                |batches| {
                    for (a, rs) in &batches {
                        let batch = BatchSeq {
                            epoch: 0,
                            seq: record,
                        };
                        store
                            .append_from_batch(a, record, Some(batch), rs)
                            .expect("append");
                        record += 1;
                    }
                    if seal {
                        store.checkpoint(record).expect("checkpoint");
                    }
                },
                BatchSize::PerIteration,
            )
        });
        if !seal {
            // Keep memory bounded between benchmarks.
            store.flush(record).expect("flush");
        }
        let s = store.stats();
        eprintln!("{name}: {s:?}");
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("trail_store");
    let mut walkers = [Walker::new(0)];
    let readings: Vec<Reading> = hour(&mut walkers, 0)
        .into_iter()
        .flat_map(|(_, rs)| rs)
        .collect();
    let batches: Vec<Option<BatchSeq>> = (0..readings.len())
        .map(|i| {
            Some(BatchSeq {
                epoch: 0,
                seq: (i as i64 / BATCH) as u64,
            })
        })
        .collect();
    let mut block = Vec::new();
    encode_block_with_batches(&readings, &batches, &mut block);
    eprintln!("an hour of {} fixes: {} bytes", readings.len(), block.len());
    group.throughput(Throughput::Elements(readings.len() as u64));
    let mut out = Vec::with_capacity(readings.len());
    group.bench_function("decode_block_hour_of_fixes", |b| {
        b.iter(|| {
            out.clear();
            decode_block(&block, &mut out).expect("decodes");
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_decode);
criterion_main!(benches);
