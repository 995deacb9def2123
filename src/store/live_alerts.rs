//! The live alert store: the alert book behind the API, fed by the pipeline's outputs, and the
//! ingest→alert latency histogram (wall clock from a batch's arrival to its alert being stored).

use super::alert_book::{AlertBook, Change};
use super::alert_store::{AlertEvent, AlertStore};
use super::sober_day_book::SoberDayBook;
use crate::model::{Alert, SoberDay};
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::Output;
use hdrhistogram::Histogram;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub struct LiveAlerts {
    book: Mutex<AlertBook>,
    /// Durable store and event stream; `None` only in tests without a data directory.
    store: Option<AlertStore>,
    events: tokio::sync::broadcast::Sender<AlertEvent>,
    /// Sober days from the same outputs (alcohol orders).
    sober_days: Mutex<SoberDayBook>,
    /// Microseconds from batch arrival to the alert change being stored.
    latency_us: Mutex<Histogram<u64>>,
    /// Arrival → the change is in the in-memory book, before the store commit (diagnostic: what
    /// the durable alert store adds to the latency).
    to_book_us: Mutex<Histogram<u64>>,
    pub changes: AtomicU64,
    /// Only batches that arrived at or after this wall time are measured.
    measure_since_ms: i64,
    /// Activations purged by retention: outputs the pipeline still emits for them are dropped.
    forgotten: Mutex<HashSet<String>>,
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
            store: None,
            events: tokio::sync::broadcast::channel(4096).0,
            sober_days: Mutex::new(SoberDayBook::default()),
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ),
            to_book_us: Mutex::new(
                Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ),
            changes: AtomicU64::new(0),
            measure_since_ms: 0,
            forgotten: Mutex::new(HashSet::new()),
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
    pub fn new(store: AlertStore, measure_since_ms: i64) -> Self {
        Self {
            measure_since_ms,
            store: Some(store),
            ..Self::default()
        }
    }

    pub fn store(&self) -> Option<&AlertStore> {
        self.store.as_ref()
    }

    /// Live alert events (after they are stored); subscribe before reading the backlog.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    /// Publishes an event produced outside the pipeline (a review action).
    pub fn publish(&self, event: AlertEvent) {
        let _ = self.events.send(event);
    }

    /// Applies pipeline outputs as they come, until the pipeline ends.
    pub async fn run(&self, mut outputs: mpsc::Receiver<OutputBatch>) {
        while let Some(mut batch) = outputs.recv().await {
            // Whatever else is already waiting goes into the same store transaction: under load
            // one commit then covers many partition steps.
            while batch.len() < 4096 {
                match outputs.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.apply(batch);
        }
    }

    /// Applies outputs: the in-memory book, then the durable store (which numbers the changes for
    /// live delivery), recording ingest→alert latency for batches that arrived while running.
    pub fn apply(&self, batch: OutputBatch) {
        let mut changed: Vec<(Alert, Option<i64>)> = Vec::new();
        {
            let forgotten = self.forgotten.lock().unwrap_or_else(|p| p.into_inner());
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            for (output, cause_arrival_ms) in batch {
                let activation = match &output {
                    Output::Alert(alert) => &alert.activation,
                    Output::SoberDay(day) => &day.activation,
                };
                if forgotten.contains(activation) {
                    continue;
                }
                let alert = match output {
                    Output::Alert(alert) => alert,
                    Output::SoberDay(day) => {
                        self.sober_days
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .upsert(day);
                        continue;
                    }
                };
                if book.upsert(alert.clone()) != Change::Unchanged {
                    changed.push((alert, cause_arrival_ms));
                }
            }
        }
        if changed.is_empty() {
            return;
        }
        self.record(&self.to_book_us, &changed);
        if let Some(store) = &self.store {
            let alerts: Vec<Alert> = changed.iter().map(|(a, _)| a.clone()).collect();
            match store.apply(&alerts) {
                Ok(events) => {
                    for event in events {
                        let _ = self.events.send(event);
                    }
                }
                // The log still holds the readings: the next start re-derives these alerts.
                Err(e) => tracing::error!(error = %e, "alert store write failed"),
            }
        }
        self.changes
            .fetch_add(changed.len() as u64, Ordering::Relaxed);
        self.record(&self.latency_us, &changed);
    }

    /// Records arrival → now for the changes caused by batches that arrived while running.
    fn record(&self, histogram: &Mutex<Histogram<u64>>, changed: &[(Alert, Option<i64>)]) {
        let now = now_us();
        let mut hist = histogram.lock().unwrap_or_else(|p| p.into_inner());
        for (_, cause) in changed {
            if let Some(arrival_ms) = cause.filter(|a| *a >= self.measure_since_ms) {
                let us = (now - arrival_ms * 1000).max(1) as u64;
                let _ = hist.record(us.min(60_000_000));
            }
        }
    }

    /// Drops an activation purged by retention from the alert book and the sober days, and
    /// ignores whatever the pipeline still emits for it (its rule state lives until the next
    /// start, which no longer knows the activation). The durable alert store is purged
    /// separately. Returns (alerts, sober days) dropped.
    pub fn forget_activation(&self, activation: &str) -> (u64, u64) {
        self.forgotten
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(activation.to_string());
        let alerts = self
            .book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_activation(activation);
        let days = self
            .sober_days
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_activation(activation);
        (alerts as u64, days as u64)
    }

    /// Every sober day in output order (activation, order, date).
    pub fn sober_days(&self) -> Vec<SoberDay> {
        self.sober_days
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sorted()
    }

    pub fn sorted(&self) -> Vec<Alert> {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).sorted()
    }

    pub fn count(&self) -> usize {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn latency(&self) -> LatencySummary {
        summary(&self.latency_us)
    }

    /// Arrival → in the in-memory book (before the alert store commit).
    pub fn latency_to_book(&self) -> LatencySummary {
        summary(&self.to_book_us)
    }

    pub fn reset_latency(&self) {
        for h in [&self.latency_us, &self.to_book_us] {
            h.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
    }
}

fn summary(histogram: &Mutex<Histogram<u64>>) -> LatencySummary {
    let h = histogram.lock().unwrap_or_else(|p| p.into_inner());
    LatencySummary {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}
