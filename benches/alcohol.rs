//! Criterion bench of alcohol classification on one core: TAC readings per second through
//! (1) the analyzer alone (spike filter, rate curve, baselines, excursions, tamper) and
//! (2) the whole `AlcoholRule` (plus alerts, day coverage, settling days, state snapshots),
//! over a generated half-hourly stream of one wearer, at the device's resolution (0.001 g/dL,
//! 1 mV): sober days with sensor noise, an evening
//! of drinking every week, a hand-gel spike every eleven days, an obstruction every month.
//!
//! Two clocks: `*_wall` is criterion's usual wall time; `*_cpu` times the bench thread's own
//! CPU time (Linux `/proc/thread-self/schedstat`), i.e. readings per second *of one core*,
//! which stays meaningful on a machine shared with other jobs. Off Linux both are wall time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagstream::model::{
    AlcoholCondition, AlcoholMode, Condition, Order, Reading, ReadingBody, TacSample, TimeMs,
};
use tagstream::pipeline::{ActivationInfo, Output, Rule, RuleContext, Sink};
use tagstream::rules::alcohol::{AlcoholConfig, AlcoholRule, TacAnalyzer, TacPoint, Thresholds};

const T0_MS: TimeMs = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const STEP_MS: TimeMs = 30 * 60_000;
const READINGS: usize = 48 * 365 * 2;

/// Deterministic pseudo-random numbers in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn stream() -> Vec<Reading> {
    let mut rng = Lcg(7);
    (0..READINGS)
        .map(|i| {
            let t_ms = T0_MS + i as i64 * STEP_MS;
            let day = i / 48;
            let half_hour = (i % 48) as f64 / 2.0;
            let mut tac = rng.next() * 0.004;
            let mut ir = 1.0 + (rng.next() - 0.5) * 0.1;
            let temp = 33.0 + (rng.next() - 0.5) * 2.0;
            if day % 7 == 3 && half_hour >= 20.0 {
                tac += 0.08 * ((half_hour - 20.0) / 2.0).min(1.0);
            }
            if day % 7 == 4 && half_hour < 8.0 {
                tac += 0.08 * (1.0 - half_hour / 8.0);
            }
            if day % 11 == 5 && i % 48 == 24 {
                tac += 0.05;
            }
            if day % 30 == 10 && (10.0..14.0).contains(&half_hour) {
                ir += 0.7;
            }
            // At the device's resolution (three decimals, as in the real exports).
            Reading {
                t_ms,
                battery_pct: None,
                body: ReadingBody::Tac(TacSample {
                    tac_ugdl: (tac * 1e3).round() as i32 * 1000,
                    ir_uv: (ir * 1e3).round() as i32 * 1000,
                    temp_mc: (temp * 1e3).round() as i32,
                }),
            }
        })
        .collect()
}

/// CPU time this thread has run, if the platform tells.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Times `iters` runs of `routine` (each given fresh state from `setup`, untimed) by wall or
/// thread CPU time.
fn timed<S, O>(iters: u64, cpu: bool, setup: impl Fn() -> S, routine: impl Fn(S) -> O) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = setup();
        let (wall, cpu0) = (Instant::now(), thread_cpu_ns());
        let out = routine(state);
        total += match (cpu, cpu0, thread_cpu_ns()) {
            (true, Some(a), Some(b)) => Duration::from_nanos(b - a),
            _ => wall.elapsed(),
        };
        drop(criterion::black_box(out));
    }
    total
}

/// Drops outputs, counting them.
#[derive(Default)]
struct Count(u64);
impl Sink for Count {
    fn emit(&mut self, _output: Output, _cause: Option<TimeMs>) {
        self.0 += 1;
    }
}

fn alcohol(c: &mut Criterion) {
    let readings = stream();
    let config = AlcoholConfig {
        abstinence_max_days: None,
        ..AlcoholConfig::default()
    };
    let th = Arc::new(Thresholds::new(&config));
    let points: Vec<TacPoint> = readings
        .iter()
        .filter_map(|r| match r.body {
            ReadingBody::Tac(sample) => Some(TacPoint {
                t_ms: r.t_ms,
                sample,
                battery_pct: None,
            }),
            _ => None,
        })
        .collect();
    let activation = ActivationInfo {
        id: "A1".into(),
        person: "P1".into(),
        tag: "T1".into(),
        from_ms: T0_MS,
        to_ms: None,
    };
    let orders = vec![Arc::new(Order {
        id: "O1".into(),
        person: "P1".into(),
        from: "2026-01-01".parse().unwrap(),
        to: None,
        conditions: vec![Condition::Alcohol(AlcoholCondition {
            mode: AlcoholMode::Abstinence,
        })],
    })];

    let mut group = c.benchmark_group("alcohol");
    group.throughput(Throughput::Elements(READINGS as u64));
    group.sample_size(20);
    let analyze = |mut analyzer: TacAnalyzer| {
        let mut findings = Vec::new();
        for p in &points {
            analyzer.push(&th, *p, &mut findings);
            findings.clear();
        }
        analyzer
    };
    let classify = |mut rule: AlcoholRule| {
        let mut sink = Count::default();
        let mut ctx = RuleContext::new(&activation, &mut sink, None);
        for (i, r) in readings.iter().enumerate() {
            rule.on_reading(&mut ctx, r, false);
            // An upload of four readings: the clock moves with it.
            if i % 4 == 3 {
                rule.on_contact(&mut ctx, r.t_ms);
            }
        }
        (rule, sink.0)
    };
    let new_rule = || AlcoholRule::new(th.clone(), &activation, &orders, 0).unwrap();
    for (name, cpu) in [("wall", false), ("cpu", true)] {
        group.bench_function(format!("analyzer_{name}"), |b| {
            b.iter_custom(|iters| timed(iters, cpu, || TacAnalyzer::new(&th), analyze))
        });
        group.bench_function(format!("rule_{name}"), |b| {
            b.iter_custom(|iters| timed(iters, cpu, new_rule, classify))
        });
    }
    group.finish();
}

criterion_group!(benches, alcohol);
criterion_main!(benches);
