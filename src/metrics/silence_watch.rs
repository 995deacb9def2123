//! The ingest-silence watchdog: when no batch at all has been committed for a while, that is a
//! fault of the system (network, listener, every tag's uplink), not of any person, so it is not
//! a rule and not in the deterministic alert stream. The server raises a *system alert* from its
//! own wall clock: listed at `GET /v1/system/alerts` (hub/admin), sent on the alert SSE stream as
//! the distinct event type `system_alert`, and exported as the `tagstream_ingest_silent` gauge.
//!
//! One tag going quiet is the `no_contact` rule's business; every tag going quiet stops the
//! event-time clock, so no rule can notice it — hence this watchdog.

use crate::model::time::{rfc3339_ms, rfc3339_ms_opt};
use crate::model::TimeMs;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// `[watchdog]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// No batch committed for this long (wall clock) raises "ingest silent" (0 = never).
    pub ingest_silent_ms: i64,
    /// How often the watchdog looks.
    pub check_every_ms: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            ingest_silent_ms: 15 * 60 * 1000,
            check_every_ms: 1000,
        }
    }
}

/// The type of the ingest-silence system alert.
pub const INGEST_SILENT: &str = "ingest_silent";
/// System alerts kept for `GET /v1/system/alerts` (oldest dropped first).
const KEPT: usize = 100;

/// One system alert. `end` is `None` while the condition lasts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemAlert {
    pub id: String,
    #[serde(rename = "type")]
    pub alert_type: &'static str,
    /// When the silence began (the last committed batch, or the server's start).
    #[serde(with = "rfc3339_ms")]
    pub start: TimeMs,
    #[serde(with = "rfc3339_ms_opt")]
    pub end: Option<TimeMs>,
    /// When the watchdog raised it.
    #[serde(with = "rfc3339_ms")]
    pub raised: TimeMs,
    pub message: String,
}

/// The watchdog's state, shared by the committed-batch forwarder, the watchdog task and the API.
pub struct SystemHealth {
    config: WatchdogConfig,
    /// Wall time of the last committed batch (or of the start).
    last_batch_ms: AtomicI64,
    /// Armed once there is something to watch: activations exist or a batch was committed.
    armed: AtomicBool,
    silent: AtomicBool,
    alerts: Mutex<Vec<SystemAlert>>,
    events: broadcast::Sender<SystemAlert>,
    /// The pipeline's clock and flag counters, for `/metrics`.
    pub pipeline: Arc<super::pipeline_gauges::PipelineGauges>,
}

impl SystemHealth {
    pub fn new(
        config: WatchdogConfig,
        started_ms: TimeMs,
        armed: bool,
        pipeline: Arc<super::pipeline_gauges::PipelineGauges>,
    ) -> Self {
        Self {
            config,
            last_batch_ms: AtomicI64::new(started_ms),
            armed: AtomicBool::new(armed),
            silent: AtomicBool::new(false),
            alerts: Mutex::new(Vec::new()),
            events: broadcast::channel(64).0,
            pipeline,
        }
    }

    /// Batches were committed at `now_ms`: ends an ingest-silent alert.
    pub fn batches_committed(&self, now_ms: TimeMs) {
        self.last_batch_ms.store(now_ms, Ordering::Relaxed);
        self.armed.store(true, Ordering::Relaxed);
        if self.silent.swap(false, Ordering::AcqRel) {
            self.update(|alerts| {
                let open = alerts
                    .iter_mut()
                    .rev()
                    .find(|a| a.alert_type == INGEST_SILENT && a.end.is_none())?;
                open.end = Some(now_ms);
                Some(open.clone())
            });
        }
    }

    /// One look at `now_ms`: raises the alert when the silence exceeds the limit.
    pub fn check(&self, now_ms: TimeMs) {
        let limit = self.config.ingest_silent_ms;
        if limit <= 0 || !self.armed.load(Ordering::Relaxed) || self.silent.load(Ordering::Acquire)
        {
            return;
        }
        let last = self.last_batch_ms.load(Ordering::Relaxed);
        if now_ms - last < limit || self.silent.swap(true, Ordering::AcqRel) {
            return;
        }
        self.update(|alerts| {
            let alert = SystemAlert {
                id: format!("sys-{INGEST_SILENT}-{last}"),
                alert_type: INGEST_SILENT,
                start: last,
                end: None,
                raised: now_ms,
                message: format!(
                    "no batch from any tag for {} s: check the ingest network and listener",
                    (now_ms - last) / 1000
                ),
            };
            alerts.push(alert.clone());
            Some(alert)
        });
        tracing::error!("ingest silent: no batch from any tag since {last} ms");
    }

    fn update(&self, change: impl FnOnce(&mut Vec<SystemAlert>) -> Option<SystemAlert>) {
        let changed = {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            let changed = change(&mut alerts);
            if alerts.len() > KEPT {
                let excess = alerts.len() - KEPT;
                alerts.drain(..excess);
            }
            changed
        };
        if let Some(alert) = changed {
            let _ = self.events.send(alert); // no subscriber is not an error
        }
    }

    /// Every kept system alert, oldest first.
    pub fn alerts(&self) -> Vec<SystemAlert> {
        self.alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Open system alerts now, and every later change.
    pub fn subscribe(&self) -> (Vec<SystemAlert>, broadcast::Receiver<SystemAlert>) {
        let rx = self.events.subscribe();
        let open = self
            .alerts()
            .into_iter()
            .filter(|a| a.end.is_none())
            .collect();
        (open, rx)
    }

    pub fn is_ingest_silent(&self) -> bool {
        self.silent.load(Ordering::Acquire)
    }

    /// Prometheus text lines: the silence gauge and the pipeline's clock gauges.
    /// Writes the watchdog's and the event-time clock's metrics into `/metrics`.
    pub fn write_metrics(&self, e: &mut super::exposition::Exposition) {
        e.gauge(
            "tagstream_ingest_silent",
            "1 while the ingest-silent system alert is open (no batch from any tag for too long).",
            f64::from(u8::from(self.is_ingest_silent())),
        );
        self.pipeline.write_metrics(e);
    }

    /// Runs the watchdog until the process ends (`now_ms` is the wall clock).
    pub fn spawn(self: &Arc<Self>, now_ms: fn() -> TimeMs) {
        let every = std::time::Duration::from_millis(self.config.check_every_ms.max(10));
        if self.config.ingest_silent_ms <= 0 {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                health.check(now_ms());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_opens_one_alert_and_the_next_batch_closes_it() {
        let config = WatchdogConfig {
            ingest_silent_ms: 1000,
            check_every_ms: 10,
        };
        let health = SystemHealth::new(config, 0, true, Default::default());
        let (_, mut rx) = health.subscribe();
        health.check(500);
        assert!(health.alerts().is_empty());
        health.check(1500);
        health.check(2500);
        assert_eq!(health.alerts().len(), 1);
        assert!(health.is_ingest_silent());
        health.batches_committed(3000);
        let alerts = health.alerts();
        assert_eq!(alerts[0].start, 0);
        assert_eq!(alerts[0].end, Some(3000));
        assert_eq!(rx.try_recv().unwrap().end, None);
        assert_eq!(rx.try_recv().unwrap().end, Some(3000));
        let mut e = crate::metrics::exposition::Exposition::default();
        health.write_metrics(&mut e);
        assert!(e.finish().contains("tagstream_ingest_silent 0\n"));
    }

    #[test]
    fn nothing_to_watch_raises_nothing() {
        let health = SystemHealth::new(WatchdogConfig::default(), 0, false, Default::default());
        health.check(24 * 3600 * 1000);
        assert!(health.alerts().is_empty());
    }
}
