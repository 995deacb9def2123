//! The pipeline's live gauges: its event-time clock and the counts of readings it held, dropped
//! or could not assign. Written by the dispatcher and the partitions, read by `/metrics` (through
//! the watchdog's `SystemHealth`); kept here so that `metrics` never imports `pipeline`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live view of the pipeline's clock and flags for `/metrics` (written by the dispatcher and the
/// partitions, read by the API; relaxed atomics, for monitoring only).
#[derive(Debug, Default)]
pub struct PipelineGauges {
    pub clock_ms: AtomicI64,
    pub clock_ahead_readings: AtomicU64,
    pub too_old_readings: AtomicU64,
    pub before_activation_readings: AtomicU64,
    pub unassigned_readings: AtomicU64,
    pub held_dropped_readings: AtomicU64,
    pub released_readings: AtomicU64,
}

impl PipelineGauges {
    /// Writes the clock's metrics into `/metrics`.
    pub fn write_metrics(&self, e: &mut super::exposition::Exposition) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        e.gauge(
            "tagstream_event_clock_seconds",
            "The pipeline's event-time clock (seconds since 1970), a trimmed maximum over live tags.",
            self.clock_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        e.counter(
            "tagstream_clock_ahead_readings_total",
            "Readings too far ahead of the event-time clock or of their arrival, held from the rules.",
            get(&self.clock_ahead_readings),
        );
        e.counter(
            "tagstream_too_old_readings_total",
            "Readings older than the late-data horizon, stored but not fed to the rules.",
            get(&self.too_old_readings),
        );
        e.counter(
            "tagstream_before_activation_readings_total",
            "Readings dated before their tag's activation, stored but not fed to the rules.",
            get(&self.before_activation_readings),
        );
        e.counter(
            "tagstream_unassigned_readings_total",
            "Readings whose tag had no activation covering their time.",
            get(&self.unassigned_readings),
        );
        e.counter(
            "tagstream_clock_ahead_dropped_readings_total",
            "Clock-ahead readings beyond the per-activation hold limit, not fed to the rules.",
            get(&self.held_dropped_readings),
        );
        e.counter(
            "tagstream_clock_ahead_released_readings_total",
            "Held clock-ahead readings fed to the rules once the clock caught up.",
            get(&self.released_readings),
        );
    }
}
