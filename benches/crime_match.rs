//! Live crime matching cost per position: each new position (with the path from the previous
//! fix) against an R-tree of 100,000 indexed crimes spread over 30 days of a city region, the
//! hit rule run on every pair the index cannot rule out. Positions come from the synthetic
//! trails of the trail store benchmark, one upload an hour per activation.
//!
//! `cargo bench --bench crime_match`

#[path = "../tests/support/trail_synth.rs"]
mod trail_synth;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use tagstream::crime::matcher::{HitMatcher, MemoryTrails};
use tagstream::model::{CrimeVersion, Reading};
use tagstream::rules::hits::HitsConfig;
use trail_synth::{activation_name, Rng, Walker, DAY_MS, MIN_MS, START_MS};

const CRIMES: u64 = 100_000;
const ACTIVATIONS: u64 = 2_000;
const DAYS: i64 = 30;

fn crimes() -> Vec<CrimeVersion> {
    let mut rng = Rng::new(99);
    (0..CRIMES)
        .map(|i| {
            let from_ms = START_MS + rng.below((DAYS * DAY_MS) as u64) as i64;
            CrimeVersion {
                force: "AvonSomerset".into(),
                batch_id: "AVS20260401".into(),
                crime_ref: format!("AVS/{i}"),
                version: 1,
                crime_type: "TFMV".into(),
                crime_type_description: "Theft from a motor vehicle".into(),
                from_ms,
                to_ms: from_ms + (30 + rng.below(330) as i64) * MIN_MS,
                lat: 51.3 + 0.4 * (rng.unit() + 1.0) / 2.0,
                lon: -2.9 + 0.6 * (rng.unit() + 1.0) / 2.0,
                radius_m: 100.0,
                other_info: String::new(),
            }
        })
        .collect()
}

fn bench_live(c: &mut Criterion) {
    let config = HitsConfig::default();
    // Two days of uploads (an hour of fixes per activation each), stored up front so the rule
    // can read them back; fed to the matcher in time order.
    let mut walkers: Vec<Walker> = (0..ACTIVATIONS).map(Walker::new).collect();
    let names: Vec<String> = (0..ACTIVATIONS).map(activation_name).collect();
    let mut uploads: Vec<(usize, Vec<Reading>)> = Vec::new();
    let mut trails = MemoryTrails::new(config.max_gap_s * 1000);
    for hour in 0..48 {
        for (i, w) in walkers.iter_mut().enumerate() {
            let fixes: Vec<Reading> = (hour * 60..hour * 60 + 60)
                .filter_map(|m| w.fix(m))
                .collect();
            for r in &fixes {
                trails.push(&names[i], *r);
            }
            uploads.push((i, fixes));
        }
    }
    trails.seal();
    let positions: u64 = uploads.iter().map(|(_, r)| r.len() as u64).sum();
    let per_upload = positions as f64 / uploads.len() as f64;

    let mut group = c.benchmark_group("crime_match");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(per_upload.round() as u64));
    let mut matcher = HitMatcher::new(config);
    matcher.add_crimes(crimes());
    let mut next = 0usize;
    let mut hits = 0usize;
    group.bench_function("live_upload_of_an_hour_100k_crimes", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                if next == uploads.len() {
                    // Start the stream again with a fresh matcher (outside the timing is not
                    // possible here; it is rare and cheap compared with the run).
                    matcher = HitMatcher::new(config);
                    matcher.add_crimes(crimes());
                    next = 0;
                }
                let (i, fixes) = &uploads[next];
                hits += matcher
                    .on_positions(&trails, &names[*i], fixes)
                    .expect("match")
                    .len();
                next += 1;
            }
            started.elapsed()
        })
    });
    group.finish();
    eprintln!("crime_match: {positions} positions in the stream, {hits} hit changes seen");
}

criterion_group!(benches, bench_live);
criterion_main!(benches);
