//! Where ingest latency goes: per-stage wall time from a batch's arrival to the moment it passes
//! each stage of the live path (durable, handed to the pipeline, rules run, alert book, stored).
//! A diagnostic beside the ingest→alert histogram: it says which stage a slow tail comes from.
//! Process-wide because the stages live in different modules and threads; recording is a
//! short mutex hold per batch, far off the per-reading cost.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point on the live path a batch passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The committer took the batch into a group.
    Grouped,
    /// `fdatasync` done, before the ack is sent.
    Durable,
    /// Received by the pipeline's dispatcher.
    Dispatched,
    /// A partition ran the batch's readings through the rules.
    RulesRun,
    /// The rule outputs reached the alert book's task.
    OutputsReceived,
}

const STAGES: [(Stage, &str); 5] = [
    (Stage::Grouped, "grouped"),
    (Stage::Durable, "durable"),
    (Stage::Dispatched, "dispatched"),
    (Stage::RulesRun, "rules_run"),
    (Stage::OutputsReceived, "outputs_received"),
];

fn histograms() -> &'static [Mutex<Histogram<u64>>; 5] {
    static H: OnceLock<[Mutex<Histogram<u64>>; 5]> = OnceLock::new();
    H.get_or_init(|| {
        std::array::from_fn(|_| {
            Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"))
        })
    })
}

fn index(stage: Stage) -> usize {
    STAGES.iter().position(|(s, _)| *s == stage).unwrap_or(0)
}

/// Microseconds since the epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Records that batches which arrived at `arrival_ms` passed `stage` now. Arrival 0 (replayed
/// or recovered input) is not measured.
pub fn record(stage: Stage, arrival_ms: impl IntoIterator<Item = i64>) {
    let now = now_us();
    let mut h = histograms()[index(stage)]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for a in arrival_ms.into_iter().filter(|a| *a > 0) {
        let _ = h.record(((now - a * 1000).max(1) as u64).min(60_000_000));
    }
}

/// p50 / p99 / max of one stage, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

pub fn summary() -> Vec<StageSummary> {
    STAGES
        .iter()
        .map(|(stage, name)| {
            let h = histograms()[index(*stage)]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            StageSummary {
                stage: name,
                count: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            }
        })
        .collect()
}

pub fn reset() {
    for h in histograms() {
        h.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}
