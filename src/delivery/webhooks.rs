//! Webhooks: every alert event is POSTed to each configured endpoint, in order, at least once.
//!
//! Each endpoint has its own delivery thread and a durable cursor (the last event number it
//! acknowledged with a 2xx) in the alert store, so a failed or slow endpoint never loses an
//! event, never holds up another endpoint, and never blocks ingest: delivery only reads the
//! store. Failures back off exponentially up to a ceiling. Receivers de-duplicate on the event
//! number (`X-Tagstream-Event`) or the alert's stable id; `X-Tagstream-Node` names the node
//! that posted.
//!
//! In a cluster ([`Delivery::Leased`]) only the holder of the `webhooks` lease
//! (`cluster::lease`) delivers, and it stops between two POSTs once the lease is lost. Event
//! numbers are each node's own, so progress is shared by provenance instead: after each POST the
//! holder stores, per endpoint, for every lane the record of the last event of that lane it
//! delivered ([`DeliveredThrough`]); a node taking the lease over sets its cursor before the
//! first of its own events at or after those records ([`AlertStore::resume_cursor`]), so it
//! re-sends at most the events of those records and skips none.

use crate::alerts::alert_store::{AlertEvent, AlertStore, AlertStoreError};
use crate::cluster::lease::{LeaseError, SharedProgress};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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

/// Where a cluster's delivery progress is shared (the key-value bucket; a map in tests).
pub trait ProgressStore: Send + Sync {
    fn load(&self, endpoint: &str) -> Result<Option<Vec<u8>>, LeaseError>;
    fn save(&self, endpoint: &str, value: Vec<u8>) -> Result<(), LeaseError>;
}

impl ProgressStore for SharedProgress {
    fn load(&self, endpoint: &str) -> Result<Option<Vec<u8>>, LeaseError> {
        self.load_blocking(endpoint)
    }
    fn save(&self, endpoint: &str, value: Vec<u8>) -> Result<(), LeaseError> {
        self.save_blocking(endpoint, value)
    }
}

/// Who delivers.
#[derive(Clone)]
pub enum Delivery {
    /// A single node: it always delivers, from its own cursor.
    Always { node: String },
    /// A node of a cluster: delivers while it holds the lease (`held`), resuming where the
    /// previous holder got to (`progress`); `partitions` is the pipeline's partition count
    /// (lanes mean the same on two nodes only when it is the same).
    Leased {
        node: String,
        held: watch::Receiver<bool>,
        progress: Arc<dyn ProgressStore>,
        partitions: u32,
    },
}

impl Delivery {
    fn node(&self) -> &str {
        match self {
            Delivery::Always { node } | Delivery::Leased { node, .. } => node,
        }
    }
}

/// What the holder stores per endpoint after each delivery: for each lane (pipeline partition,
/// or the hub's decisions) the log record of the last event of that lane it delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveredThrough {
    pub partitions: u32,
    pub frontier: BTreeMap<u32, u64>,
    /// Who delivered last (for operators).
    #[serde(default)]
    pub node: String,
}

impl DeliveredThrough {
    /// Moves the frontier past `events` (just delivered, in number order). Within a lane events
    /// come in record order, so the lane's last record is its greatest; never moved back (a new
    /// holder re-sends some events of lower records first).
    pub fn advance(&mut self, events: &[AlertEvent]) {
        for origin in events.iter().filter_map(|e| e.origin) {
            let through = self.frontier.entry(origin.lane).or_insert(origin.record);
            *through = (*through).max(origin.record);
        }
    }
}

/// Why a new holder could not work out where to resume.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Progress(#[from] LeaseError),
    #[error(transparent)]
    Store(#[from] AlertStoreError),
}

/// On taking the lease: reads where delivery to `url` got to, sets this node's cursor there and
/// returns the frontier to continue. Nothing stored, a value this build cannot read, or one
/// written with another partition count: from this node's first event (at least once still).
fn resume(
    store: &AlertStore,
    progress: &dyn ProgressStore,
    url: &str,
    partitions: u32,
    node: &str,
) -> Result<DeliveredThrough, ResumeError> {
    let stored = match progress.load(url)? {
        None => None,
        Some(bytes) => match serde_json::from_slice::<DeliveredThrough>(&bytes) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(url, error = %e, "unreadable webhook progress; delivering from this node's first event");
                None
            }
        },
    };
    let (cursor, frontier) = match stored {
        Some(d) if d.partitions == partitions => (store.resume_cursor(&d.frontier)?, d.frontier),
        Some(d) => {
            tracing::warn!(url, theirs = d.partitions, ours = partitions,
                "webhook progress was kept with another partition count; delivering from this node's first event");
            (0, BTreeMap::new())
        }
        None => (0, BTreeMap::new()),
    };
    store.set_delivery_cursor(url, cursor)?;
    tracing::info!(
        url,
        cursor,
        lanes = frontier.len(),
        "webhook delivery resumes on this node"
    );
    Ok(DeliveredThrough {
        partitions,
        frontier,
        node: node.to_string(),
    })
}

/// Starts one delivery thread per endpoint; they run until the process ends.
pub fn spawn_webhooks(
    store: AlertStore,
    hooks: &[WebhookConfig],
    delivery: Delivery,
) -> Vec<Arc<WebhookHealth>> {
    hooks
        .iter()
        .cloned()
        .map(|hook| {
            let health = Arc::new(WebhookHealth::default());
            let h = health.clone();
            let store = store.clone();
            let delivery = delivery.clone();
            std::thread::Builder::new()
                .name("webhook".into())
                .spawn(move || deliver_forever(store, hook, h, delivery))
                .map_err(|e| tracing::error!(error = %e, "cannot start a webhook thread"))
                .ok();
            health
        })
        .collect()
}

/// Whether this node may post now (in a cluster: holds the lease).
fn may_deliver(delivery: &Delivery) -> bool {
    match delivery {
        Delivery::Always { .. } => true,
        Delivery::Leased { held, .. } => *held.borrow(),
    }
}

fn deliver_forever(
    store: AlertStore,
    hook: WebhookConfig,
    health: Arc<WebhookHealth>,
    mut delivery: Delivery,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(hook.timeout_ms))
        .build();
    let node = delivery.node().to_string();
    let mut backoff_ms = 100u64;
    // In a cluster, while holding the lease: the progress this node continues.
    let mut shared: Option<DeliveredThrough> = None;
    loop {
        if let Delivery::Leased {
            held,
            progress,
            partitions,
            ..
        } = &mut delivery
        {
            if !*held.borrow_and_update() {
                shared = None;
                // Until this node holds the lease (the lease task ends only with the runtime).
                if futures::executor::block_on(held.changed()).is_err() {
                    return;
                }
                continue;
            }
            if shared.is_none() {
                match resume(&store, progress.as_ref(), &hook.url, *partitions, &node) {
                    Ok(through) => shared = Some(through),
                    Err(e) => {
                        tracing::error!(error = %e, url = %hook.url, "cannot resume webhook delivery; will retry");
                        health.failing.store(true, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
        }
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
        // The lease may have gone while the batch was read: not one more POST then.
        if !may_deliver(&delivery) {
            continue;
        }
        let result = agent
            .post(&hook.url)
            .set("Content-Type", "application/json")
            .set("X-Tagstream-Event", &last.to_string())
            .set("X-Tagstream-Node", &node)
            .send_string(&body);
        match result {
            Ok(resp) if (200..300).contains(&resp.status()) => {
                // A cursor not moved (here or in the bucket) only means events sent again.
                if let Err(e) = store.set_delivery_cursor(&hook.url, last) {
                    tracing::error!(error = %e, "webhook cursor update");
                }
                if let (Some(through), Delivery::Leased { progress, .. }) =
                    (shared.as_mut(), &delivery)
                {
                    through.advance(&events);
                    let saved = serde_json::to_vec(&*through)
                        .map_err(|e| e.to_string())
                        .and_then(|value| {
                            progress.save(&hook.url, value).map_err(|e| e.to_string())
                        });
                    if let Err(e) = saved {
                        tracing::warn!(error = %e, url = %hook.url, "storing webhook progress for the cluster failed; a node taking over re-sends more");
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert_store::PendingEvent;
    use crate::pipeline::Provenance;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemoryProgress(Mutex<BTreeMap<String, Vec<u8>>>);

    impl ProgressStore for MemoryProgress {
        fn load(&self, endpoint: &str) -> Result<Option<Vec<u8>>, LeaseError> {
            Ok(self.0.lock().unwrap().get(endpoint).cloned())
        }
        fn save(&self, endpoint: &str, value: Vec<u8>) -> Result<(), LeaseError> {
            self.0.lock().unwrap().insert(endpoint.into(), value);
            Ok(())
        }
    }

    fn event(seq: i64, lane: u32, record: u64) -> AlertEvent {
        AlertEvent {
            seq,
            alert_id: "a1".into(),
            kind: "updated".into(),
            body: "{}".into(),
            origin: Some(Provenance { lane, record }),
        }
    }

    #[test]
    fn the_frontier_moves_forward_per_lane_only() {
        let mut through = DeliveredThrough {
            partitions: 2,
            ..Default::default()
        };
        through.advance(&[event(1, 0, 10), event(2, 1, 11), event(3, 0, 12)]);
        assert_eq!(through.frontier, [(0, 12), (1, 11)].into_iter().collect());
        // A new holder re-sending older events does not move a lane back.
        through.advance(&[event(7, 0, 5), event(8, 1, 20)]);
        assert_eq!(through.frontier, [(0, 12), (1, 20)].into_iter().collect());
        let json = serde_json::to_vec(&through).unwrap();
        assert_eq!(
            serde_json::from_slice::<DeliveredThrough>(&json).unwrap(),
            through
        );
    }

    #[test]
    fn a_new_holder_resumes_from_the_shared_frontier_or_from_its_first_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let alert: crate::model::Alert = serde_json::from_value(serde_json::json!({
            "id": "a1", "type": "strap_tamper", "activation": "A1", "person": "P1",
            "start": "2026-03-31T00:00:00Z", "end": null, "late": false, "rule": "health/1",
        }))
        .unwrap();
        let events = [
            event(1, 0, 10),
            event(2, 1, 11),
            event(3, 0, 12),
            event(4, 1, 15),
        ];
        let pending: Vec<PendingEvent> = events
            .iter()
            .map(|e| PendingEvent {
                event: e.clone(),
                alert: alert.clone(),
                document: "{}".into(),
            })
            .collect();
        store.persist(&pending).unwrap();
        let url = "http://127.0.0.1:1/hook";
        let progress = MemoryProgress::default();
        // Nothing shared yet: from this node's first event.
        let through = resume(&store, &progress, url, 2, "n1").unwrap();
        assert_eq!(store.delivery_cursor(url).unwrap(), 0);
        assert!(through.frontier.is_empty());
        // Another node delivered lane 0 through record 12 and lane 1 through 11.
        let theirs = DeliveredThrough {
            partitions: 2,
            frontier: [(0, 12), (1, 11)].into_iter().collect(),
            node: "n0".into(),
        };
        progress
            .save(url, serde_json::to_vec(&theirs).unwrap())
            .unwrap();
        let through = resume(&store, &progress, url, 2, "n1").unwrap();
        assert_eq!(
            store.delivery_cursor(url).unwrap(),
            1,
            "lane 1's record 11 again"
        );
        assert_eq!(through.frontier, theirs.frontier);
        assert_eq!(through.node, "n1");
        // Kept with another partition count: lanes mean other things; from the first event.
        store.set_delivery_cursor(url, 4).unwrap();
        let through = resume(&store, &progress, url, 3, "n1").unwrap();
        assert_eq!(store.delivery_cursor(url).unwrap(), 0);
        assert!(through.frontier.is_empty());
    }
}
