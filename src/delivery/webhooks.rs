//! Webhooks: every alert event is POSTed to each configured endpoint, in order, at least once.
//!
//! Each endpoint has its own delivery thread and a durable cursor (the last event number it
//! acknowledged with a 2xx) in the alert store, so a failed or slow endpoint never loses an
//! event, never holds up another endpoint, and never blocks ingest: delivery only reads the
//! store. Failures back off exponentially up to a ceiling. Receivers de-duplicate on the event
//! number (`X-Tagstream-Event`) or the alert's stable id.

use crate::alerts::alert_store::AlertStore;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://…` endpoint (plain HTTP; put TLS in front with a proxy).
    pub url: String,
    /// Events per POST (a JSON array).
    #[serde(default = "default_batch")]
    pub batch: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_batch() -> u32 {
    100
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// Delivery progress, for tests and metrics.
#[derive(Debug, Default)]
pub struct WebhookHealth {
    pub failing: AtomicBool,
}

/// Starts one delivery thread per endpoint; they run until the process ends.
pub fn spawn_webhooks(store: AlertStore, hooks: &[WebhookConfig]) -> Vec<Arc<WebhookHealth>> {
    hooks
        .iter()
        .cloned()
        .map(|hook| {
            let health = Arc::new(WebhookHealth::default());
            let h = health.clone();
            let store = store.clone();
            std::thread::Builder::new()
                .name("webhook".into())
                .spawn(move || deliver_forever(store, hook, h))
                .map_err(|e| tracing::error!(error = %e, "cannot start a webhook thread"))
                .ok();
            health
        })
        .collect()
}

fn deliver_forever(store: AlertStore, hook: WebhookConfig, health: Arc<WebhookHealth>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(hook.timeout_ms))
        .build();
    let mut backoff_ms = 100u64;
    loop {
        let cursor = match store.delivery_cursor(&hook.url) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook cursor");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // A read error is not "nothing to deliver": say so, and try again (the cursor has not
        // moved, so nothing is skipped).
        let events = match store.events_after(cursor, hook.batch.max(1)) {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(error = %e, url = %hook.url, "reading alert events to deliver failed; will retry");
                health.failing.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if events.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let last = events.last().map(|e| e.seq).unwrap_or(cursor);
        let body = format!(
            "[{}]",
            events
                .iter()
                .map(|e| format!(
                    "{{\"event\":{},\"kind\":\"{}\",\"alert\":{}}}",
                    e.seq, e.kind, e.body
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let result = agent
            .post(&hook.url)
            .set("Content-Type", "application/json")
            .set("X-Tagstream-Event", &last.to_string())
            .send_string(&body);
        match result {
            Ok(resp) if (200..300).contains(&resp.status()) => {
                if let Err(e) = store.set_delivery_cursor(&hook.url, last) {
                    tracing::error!(error = %e, "webhook cursor update");
                }
                health.failing.store(false, Ordering::Relaxed);
                backoff_ms = 100;
            }
            other => {
                let why = match other {
                    Ok(resp) => format!("status {}", resp.status()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(url = %hook.url, %why, backoff_ms, "webhook delivery failed; will retry");
                health.failing.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(hook.max_backoff_ms.max(100));
            }
        }
    }
}
