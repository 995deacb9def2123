//! Criterion bench of one pipeline step: a 500-reading batch dispatched to its activation's
//! partition, reordered and run through the rules (health and no-contact), with 10,000 activations
//! registered. Reports readings per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use tagstream::model::{Activation, Batch, Position, PositionSource, Reading, ReadingBody};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{ActivationDirectory, PipelineConfig, VecSink};
use tagstream::rules::StandardRules;

const T0_MS: i64 = 1_774_915_200_000;
const ACTIVATIONS: usize = 10_000;
const BATCH: usize = 500;

/// Batch `n` (of tag `tag`): 500 one-second fixes. Every tag uploads once per round of
/// `ACTIVATIONS` batches and all tags move on together, as a live population does (a batch
/// 500 minutes ahead of the rest would be held as clock-ahead, not evaluated).
fn batch(tag: usize, n: u64) -> Batch {
    let round = n as i64 / ACTIVATIONS as i64;
    let base = T0_MS + round * BATCH as i64 * 1_000;
    Batch {
        tag: format!("T{tag}"),
        epoch: 0,
        seq: n + 1,
        arrival_ms: 0,
        readings: (0..BATCH)
            .map(|k| Reading {
                t_ms: base + k as i64 * 1_000,
                battery_pct: Some(80),
                body: ReadingBody::Position(Position {
                    lat_e7: 514_500_000 + k as i32,
                    lon_e7: -25_900_000,
                    precision_cm: 800,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(400),
                    heading_cdeg: Some(9000),
                    satellites: Some(9),
                }),
            })
            .collect(),
    }
}

fn pipeline_step(c: &mut Criterion) {
    let activations: Vec<Activation> = (0..ACTIVATIONS)
        .map(|i| Activation {
            id: format!("A{i}"),
            person: format!("P{i}"),
            tag: format!("T{i}"),
            from: T0_MS,
            to: None,
        })
        .collect();
    let config = PipelineConfig::default();
    let directory = Arc::new(ActivationDirectory::new(&activations));
    let mut sink = VecSink::default();
    let mut driver = InlineDriver::new(
        directory,
        config,
        Box::new(StandardRules::new(
            config,
            Default::default(),
            &Default::default(),
        )),
        1,
        &mut sink,
    );
    let mut n = 0u64;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(
        "dispatch+reorder+rules, 500-reading batch, 10k activations",
        |b| {
            b.iter_batched(
                || {
                    n += 1;
                    Arc::new(batch((n as usize * 7919) % ACTIVATIONS, n))
                },
                |batch| {
                    driver.feed(&batch, &mut sink);
                    sink.outputs.clear();
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, pipeline_step);
criterion_main!(benches);
