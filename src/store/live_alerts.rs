//! The live alert store: the alert book behind the API, fed by the pipeline's outputs, and the
//! ingest→alert latency histogram (wall clock from a batch's arrival to its alert being stored).
//! Sober days from the same outputs are kept beside it in a sober-day book.

use super::alert_book::{AlertBook, Change};
use super::sober_day_book::SoberDayBook;
use crate::model::{Alert, SoberDay};
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::Output;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub struct LiveAlerts {
    book: Mutex<AlertBook>,
    sober_days: Mutex<SoberDayBook>,
    /// Microseconds from batch arrival to the alert change being stored.
    latency_us: Mutex<Histogram<u64>>,
    pub changes: AtomicU64,
    /// Only batches that arrived at or after this wall time are measured.
    measure_since_ms: i64,
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Default for LiveAlerts {
    fn default() -> Self {
        Self {
            book: Mutex::new(AlertBook::default()),
            sober_days: Mutex::new(SoberDayBook::default()),
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")),
            changes: AtomicU64::new(0),
            measure_since_ms: 0,
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl LiveAlerts {
    pub fn measuring_since(measure_since_ms: i64) -> Self {
        Self {
            measure_since_ms,
            ..Self::default()
        }
    }

    /// Applies pipeline outputs as they come, until the pipeline ends.
    pub async fn run(&self, mut outputs: mpsc::Receiver<OutputBatch>) {
        while let Some(batch) = outputs.recv().await {
            self.apply(batch);
        }
    }

    /// Applies outputs, recording ingest→alert latency for batches that arrived while running.
    pub fn apply(&self, batch: OutputBatch) {
        let now = now_us();
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        for (output, cause_arrival_ms) in batch {
            let alert = match output {
                Output::Alert(alert) => alert,
                Output::SoberDay(day) => {
                    self.sober_days.lock().unwrap_or_else(|p| p.into_inner()).upsert(day);
                    continue;
                }
            };
            if book.upsert(alert) == Change::Unchanged {
                continue;
            }
            self.changes.fetch_add(1, Ordering::Relaxed);
            if let Some(arrival_ms) = cause_arrival_ms.filter(|a| *a >= self.measure_since_ms) {
                let us = (now - arrival_ms * 1000).max(1) as u64;
                let mut hist = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
                let _ = hist.record(us.min(60_000_000));
            }
        }
    }

    pub fn sorted(&self) -> Vec<Alert> {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).sorted()
    }

    /// Every sober day in output order (activation, order, date).
    pub fn sober_days(&self) -> Vec<SoberDay> {
        self.sober_days.lock().unwrap_or_else(|p| p.into_inner()).sorted()
    }

    pub fn count(&self) -> usize {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn latency(&self) -> LatencySummary {
        let h = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }

    pub fn reset_latency(&self) {
        self.latency_us.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}
