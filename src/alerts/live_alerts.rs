//! The live alert book: the alerts behind the API, fed by the pipeline's outputs; it numbers
//! every change and publishes it to the live stream (SSE) at once, and hands it to the alert
//! writer to be stored behind ([`super::alert_writer`]). It also keeps the ingest→alert latency
//! histogram (wall clock from a batch's arrival to its alert change being published).
//!
//! Every event keeps its provenance (the pipeline partition, or lane, and the log record that
//! produced it), which is the same on every node of a cluster while event numbers are not
//! (webhook delivery moves between nodes by it: `delivery::webhooks`).
//!
//! Numbering: one lock covers taking a number and broadcasting the event, so the stream is in
//! number order. Numbers come from blocks reserved durably in the store; after a crash numbering
//! resumes above the block, so a number a client saw is never reused for another change.

use super::alert_book::{AlertBook, Change};
use super::alert_store::{
    fingerprint, AlertEvent, AlertStore, AlertStoreError, PendingEvent, Review, ReviewAction,
    StoredAlert,
};
use super::alert_writer::AlertWriter;
use super::sober_day_book::SoberDayBook;
use crate::metrics::stage_latency::now_us;
use crate::model::{Alert, SoberDay};
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::{Output, Provenance};
use hdrhistogram::Histogram;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Event numbers reserved per durable reservation (one small synchronous write per block).
pub const SEQ_BLOCK: i64 = 100_000;
/// How long an API read waits for published changes to be stored before reading anyway.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Event numbering and what the events carry besides the alert.
#[derive(Default)]
struct Numbering {
    next_seq: i64,
    reserved_through: i64,
    /// Fingerprint of each alert's last published (or stored) document: a re-derived alert
    /// equal to it is not a change.
    fingerprints: HashMap<String, u64>,
    /// Reviews of alerts someone acted on (events carry the alert with its review).
    reviews: HashMap<String, Review>,
}

/// First and longest pause between attempts to reserve a block of event numbers.
const RESERVE_RETRY_FIRST: Duration = Duration::from_millis(50);
const RESERVE_RETRY_MAX: Duration = Duration::from_secs(5);

impl Numbering {
    fn take_seq(&mut self, store: Option<&AlertStore>) -> i64 {
        self.take_seq_with(|through| match store {
            Some(store) => store.reserve_event_seqs(through),
            None => Ok(()),
        })
    }

    /// The next event number, reserving a new block durably first when the current one is used
    /// up. A number is never handed out unreserved: a failed reservation is retried with backoff
    /// (publication waits; every alert is re-derivable from the log, so waiting loses nothing),
    /// because a number a client saw must never be reused after a crash.
    fn take_seq_with<E: std::fmt::Display>(
        &mut self,
        mut reserve: impl FnMut(i64) -> Result<(), E>,
    ) -> i64 {
        if self.next_seq > self.reserved_through {
            let through = self.next_seq + SEQ_BLOCK - 1;
            let mut pause = RESERVE_RETRY_FIRST;
            while let Err(e) = reserve(through) {
                tracing::error!(error = %e, retry_in_ms = pause.as_millis() as u64,
                    "reserving alert event numbers failed; publication waits");
                std::thread::sleep(pause);
                pause = (pause * 2).min(RESERVE_RETRY_MAX);
            }
            self.reserved_through = through;
        }
        self.next_seq += 1;
        self.next_seq - 1
    }
}

pub struct LiveAlerts {
    book: Mutex<AlertBook>,
    /// Durable store and its writer; `None` only in tests without a data directory.
    store: Option<AlertStore>,
    writer: Option<AlertWriter>,
    numbering: Mutex<Numbering>,
    events: tokio::sync::broadcast::Sender<AlertEvent>,
    /// Sober days from the same outputs (alcohol orders).
    sober_days: Mutex<SoberDayBook>,
    /// Microseconds from batch arrival to the alert change being published.
    latency_us: Mutex<Histogram<u64>>,
    /// Arrival → the change is in the in-memory book (diagnostic: before numbering).
    to_book_us: Mutex<Histogram<u64>>,
    pub changes: AtomicU64,
    /// Only batches that arrived at or after this wall time are measured.
    measure_since_ms: i64,
    /// Activations purged by retention: outputs the pipeline still emits for them are dropped.
    forgotten: Mutex<HashSet<String>>,
    /// During the start-up replay: where each alert's latest state came from, for the events
    /// [`Self::finish_recovery`] publishes.
    recovered_origins: Mutex<HashMap<String, Provenance>>,
}

/// The alert book in the middle of the start-up replay (see [`LiveAlerts::recovered_state`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveredState {
    pub alerts: Vec<Alert>,
    pub sober_days: Vec<SoberDay>,
    pub origins: Vec<(String, Provenance)>,
}

/// An alert that changed, with the arrival time of the batch behind it and where it came from.
type Changed = (Alert, Option<i64>, Provenance);

/// Latency figures in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Sum of all measured latencies (from the histogram: each value to its 3 significant
    /// digits), for the Prometheus summary's `_sum`.
    pub sum_us: u64,
}

impl Default for LiveAlerts {
    fn default() -> Self {
        Self {
            book: Mutex::new(AlertBook::default()),
            store: None,
            writer: None,
            numbering: Mutex::new(Numbering {
                next_seq: 1,
                ..Numbering::default()
            }),
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
            recovered_origins: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveAlerts {
    /// Opens the live book over a store: numbering resumes above everything stored or reserved
    /// (a fresh block is reserved now), and the alert writer starts.
    pub fn new(store: AlertStore, measure_since_ms: i64) -> Result<Self, AlertStoreError> {
        let high_water = store.event_seq_high_water()?;
        let numbering = Numbering {
            next_seq: high_water + 1,
            reserved_through: high_water,
            fingerprints: store.document_fingerprints()?,
            reviews: store.reviews()?,
        };
        let writer = AlertWriter::spawn(store.clone(), high_water)
            .map_err(|e| AlertStoreError::Invalid(format!("cannot start the alert writer: {e}")))?;
        Ok(Self {
            measure_since_ms,
            store: Some(store),
            writer: Some(writer),
            numbering: Mutex::new(numbering),
            ..Self::default()
        })
    }

    pub fn store(&self) -> Option<&AlertStore> {
        self.store.as_ref()
    }

    /// Live alert events as they are published; subscribe before reading the stored backlog.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    /// The highest event number published so far.
    pub fn published_through(&self) -> i64 {
        lock(&self.numbering).next_seq - 1
    }

    /// Waits until every change published so far is in the store (bounded: after
    /// [`STORE_WAIT`] the caller reads what is there).
    pub async fn sync_store(&self) {
        if let Some(writer) = &self.writer {
            let through = self.published_through();
            let _ = tokio::time::timeout(STORE_WAIT, writer.wait_persisted(through)).await;
        }
    }

    /// [`Self::sync_store`] for a blocking thread.
    pub fn sync_store_blocking(&self) {
        if let Some(writer) = &self.writer {
            writer.wait_persisted_blocking(self.published_through());
        }
    }

    /// Applies pipeline outputs as they come, until the pipeline ends. Runs on its own thread:
    /// numbering and publishing must not wait behind async tasks, nor hold up their workers.
    pub fn run_blocking(&self, mut outputs: mpsc::Receiver<OutputBatch>) {
        while let Some(mut batch) = outputs.blocking_recv() {
            crate::metrics::stage_latency::record(
                crate::metrics::stage_latency::Stage::OutputsReceived,
                batch.iter().filter_map(|(_, a, _)| *a),
            );
            while batch.len() < 4096 {
                match outputs.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.apply(batch);
        }
    }

    /// Applies outputs: the in-memory book, then each real change is numbered, published and
    /// queued to be stored; records ingest→alert latency for batches that arrived while running.
    pub fn apply(&self, batch: OutputBatch) {
        let changed = self.update_book(batch);
        if changed.is_empty() {
            return;
        }
        self.record(&self.to_book_us, &changed);
        self.publish(&changed);
        self.record(&self.latency_us, &changed);
    }

    /// Applies outputs of the start-up replay of the log to the book only: the replay passes
    /// through every intermediate state of every alert, which are not news.
    /// [`Self::finish_recovery`] then publishes what differs from the store.
    pub fn apply_recovered(&self, batch: OutputBatch) {
        let changed = self.update_book(batch);
        let mut origins = lock(&self.recovered_origins);
        for (alert, _, origin) in changed {
            origins.insert(alert.id, origin);
        }
    }

    /// During the start-up replay (before [`Self::finish_recovery`]): the book, the sober days
    /// and where each alert's latest state came from, for a node checkpoint. Origins are sorted
    /// by alert id, so one state gives one sequence.
    pub fn recovered_state(&self) -> RecoveredState {
        let mut origins: Vec<(String, Provenance)> = lock(&self.recovered_origins)
            .iter()
            .map(|(id, origin)| (id.clone(), *origin))
            .collect();
        origins.sort_by(|a, b| a.0.cmp(&b.0));
        RecoveredState {
            alerts: self.sorted(),
            sober_days: self.sober_days(),
            origins,
        }
    }

    /// Starts the start-up replay from a node checkpoint's [`RecoveredState`] instead of from
    /// nothing (the replay then goes on from the checkpoint's record).
    pub fn restore_recovered(&self, state: RecoveredState) {
        {
            let mut book = lock(&self.book);
            for alert in state.alerts {
                book.upsert(alert);
            }
        }
        {
            let mut days = lock(&self.sober_days);
            for day in state.sober_days {
                days.upsert(day);
            }
        }
        lock(&self.recovered_origins).extend(state.origins);
    }

    /// Ends the start-up replay: every alert whose re-derived state differs from the stored
    /// one (or that the store lacks: published before a crash, never stored) is published now.
    /// They are published in the order of their provenance (record, then lane), so that within
    /// a lane events keep coming in record order across a restart.
    pub fn finish_recovery(&self) {
        let origins = std::mem::take(&mut *lock(&self.recovered_origins));
        let mut alerts: Vec<Changed> = self
            .sorted()
            .into_iter()
            .map(|a| {
                // Every alert in the book came through the replay; without an origin (none
                // known) it counts as coming from the first record, so a node taking webhook
                // delivery over sends it again rather than never.
                let origin = origins.get(&a.id).copied().unwrap_or_default();
                (a, None, origin)
            })
            .collect();
        alerts.sort_by_key(|(_, _, origin)| (origin.record, origin.lane));
        self.publish(&alerts);
    }

    /// Upserts outputs into the book (and sober days); returns the alerts that changed.
    fn update_book(&self, batch: OutputBatch) -> Vec<Changed> {
        let mut changed: Vec<Changed> = Vec::new();
        let forgotten = lock(&self.forgotten);
        let mut book = lock(&self.book);
        for (output, cause_arrival_ms, origin) in batch {
            let activation = match &output {
                Output::Alert(alert) => &alert.activation,
                Output::SoberDay(day) => &day.activation,
                // The purge itself removed what it held (`forget_activation`); at start-up
                // the purge record keeps the re-derived outputs of the activation out.
                Output::Purged { activation } => {
                    book.remove_activation(activation);
                    lock(&self.sober_days).remove_activation(activation);
                    continue;
                }
                // The stores' share of the log (trails, TAC, hits) is not the alert book's.
                Output::Readings { .. } | Output::Activations { .. } => continue,
            };
            if forgotten.contains(activation) {
                continue;
            }
            let alert = match output {
                Output::Alert(alert) => alert,
                Output::SoberDay(day) => {
                    lock(&self.sober_days).upsert(day);
                    continue;
                }
                Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {
                    continue
                }
            };
            if book.upsert(alert.clone()) != Change::Unchanged {
                changed.push((alert, cause_arrival_ms, origin));
            }
        }
        changed
    }

    /// Numbers, publishes and queues for storing each alert that differs from what was last
    /// published or stored.
    fn publish(&self, changed: &[Changed]) {
        let documents: Vec<String> = changed
            .iter()
            .map(|(alert, _, _)| serde_json::to_string(alert).unwrap_or_default())
            .collect();
        let mut published = 0u64;
        {
            let mut numbering = lock(&self.numbering);
            let mut pending = Vec::with_capacity(changed.len());
            for ((alert, _, origin), document) in changed.iter().zip(documents) {
                let print = fingerprint(&document);
                let kind = match numbering.fingerprints.insert(alert.id.clone(), print) {
                    // Re-derived at start-up exactly as stored: not a change.
                    Some(stored) if stored == print => continue,
                    Some(_) => "updated",
                    None => "raised",
                };
                let review = numbering
                    .reviews
                    .get(&alert.id)
                    .cloned()
                    .unwrap_or_else(Review::untouched);
                let body = match serde_json::to_value(alert)
                    .and_then(|alert| serde_json::to_string(&StoredAlert { alert, review }))
                {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(error = %e, alert = %alert.id, "cannot serialise alert event");
                        continue;
                    }
                };
                let seq = numbering.take_seq(self.store.as_ref());
                let event = AlertEvent {
                    seq,
                    alert_id: alert.id.clone(),
                    kind: kind.to_string(),
                    body,
                    origin: Some(*origin),
                };
                let _ = self.events.send(event.clone());
                published += 1;
                pending.push(PendingEvent {
                    event,
                    alert: alert.clone(),
                    document,
                });
            }
            // Queued in number order (the lock is held), so the store is written in that order.
            if let Some(writer) = &self.writer {
                writer.send(pending);
            }
        }
        self.changes.fetch_add(published, Ordering::Relaxed);
    }

    /// Applies a person's review action (log record `record`): durably stored (after every
    /// change published before it), numbered and published. Blocks: call from a blocking task.
    pub fn review(
        &self,
        alert_id: &str,
        user: &str,
        t_ms: i64,
        action: &ReviewAction,
        record: u64,
    ) -> Result<AlertEvent, AlertStoreError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| AlertStoreError::Invalid("no alert store configured".into()))?;
        let mut numbering = lock(&self.numbering);
        // The review reads and writes the stored alert: everything published before it first.
        if let Some(writer) = &self.writer {
            writer.wait_persisted_blocking(numbering.next_seq - 1);
        }
        let seq = numbering.take_seq(Some(store));
        let result = store.review(alert_id, user, t_ms, action, record, seq);
        // Stored, or (refused) a number used for nothing: either way nothing is pending below it.
        if let Some(writer) = &self.writer {
            writer.mark_persisted(seq);
        }
        let (event, review) = result?;
        numbering.reviews.insert(alert_id.to_string(), review);
        let _ = self.events.send(event.clone());
        Ok(event)
    }

    /// Records arrival → now for the changes caused by batches that arrived while running.
    fn record(&self, histogram: &Mutex<Histogram<u64>>, changed: &[Changed]) {
        let now = now_us();
        let mut hist = histogram.lock().unwrap_or_else(|p| p.into_inner());
        for (_, cause, _) in changed {
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
        // Changes already published for it must be stored before the store is purged, or
        // the writer would put them back afterwards.
        self.sync_store_blocking();
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

    /// Arrival → in the in-memory book (before numbering and publishing).
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
        sum_us: (h.mean() * h.len() as f64).round() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertType;

    fn tamper(id: &str, end: Option<i64>) -> Alert {
        Alert {
            id: id.to_string(),
            alert_type: AlertType::StrapTamper,
            code: None,
            activation: "A1".into(),
            person: "P1".into(),
            start: 1_774_915_200_000,
            end,
            late: false,
            zone: None,
            confidence: None,
            rule: "health/1".into(),
            details: None,
            withdrawn: None,
            amended_by: None,
            evidence: Vec::new(),
        }
    }

    fn outputs(alerts: &[Alert]) -> OutputBatch {
        alerts
            .iter()
            .map(|a| (Output::Alert(a.clone()), None, Provenance::default()))
            .collect()
    }

    #[test]
    fn changes_are_published_at_once_and_stored_behind_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let live = LiveAlerts::new(store.clone(), 0).unwrap();
        let mut events = live.subscribe();
        live.apply(outputs(&[tamper("a1", None), tamper("a2", None)]));
        live.apply(outputs(&[tamper("a1", Some(1_774_915_260_000))]));
        // Re-applying an alert as it is is not a change.
        live.apply(outputs(&[tamper("a2", None)]));
        let published: Vec<(i64, String, String)> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| (e.seq, e.alert_id, e.kind))
            .collect();
        let expected = vec![
            (1, "a1".to_string(), "raised".to_string()),
            (2, "a2".to_string(), "raised".to_string()),
            (3, "a1".to_string(), "updated".to_string()),
        ];
        assert_eq!(published, expected);
        live.sync_store_blocking();
        let stored: Vec<(i64, String, String)> = store
            .events_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.alert_id, e.kind))
            .collect();
        assert_eq!(stored, expected);
        let a1 = store.get("a1").unwrap().unwrap();
        assert_eq!(a1.alert["end"], "2026-03-31T00:01:00Z");
    }

    #[test]
    fn events_carry_their_provenance_and_a_restart_republishes_in_record_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let live = LiveAlerts::new(store.clone(), 0).unwrap();
        let from = |lane, record| Provenance { lane, record };
        // The start-up replay: a1 last changed at record 9 (lane 1), a2 at record 4 (lane 0),
        // a3 at record 7 (lane 0); output order is by id, not by record.
        live.apply_recovered(vec![
            (Output::Alert(tamper("a1", None)), None, from(1, 2)),
            (Output::Alert(tamper("a2", None)), None, from(0, 4)),
        ]);
        live.apply_recovered(vec![
            (Output::Alert(tamper("a3", None)), None, from(0, 7)),
            (
                Output::Alert(tamper("a1", Some(1_774_915_260_000))),
                None,
                from(1, 9),
            ),
        ]);
        let mut events = live.subscribe();
        live.finish_recovery();
        live.apply(vec![(Output::Alert(tamper("a4", None)), None, from(0, 12))]);
        let published: Vec<(String, Option<Provenance>)> =
            std::iter::from_fn(|| events.try_recv().ok())
                .map(|e| (e.alert_id, e.origin))
                .collect();
        assert_eq!(
            published,
            vec![
                ("a2".to_string(), Some(from(0, 4))),
                ("a3".to_string(), Some(from(0, 7))),
                ("a1".to_string(), Some(from(1, 9))),
                ("a4".to_string(), Some(from(0, 12))),
            ]
        );
        live.sync_store_blocking();
        let stored: Vec<Option<Provenance>> = store
            .events_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.origin)
            .collect();
        assert_eq!(
            stored,
            published.iter().map(|(_, o)| *o).collect::<Vec<_>>()
        );
        // A review is in the decision lane, at its control record.
        let action = ReviewAction::Acknowledge { notes: None };
        let reviewed = live.review("a1", "hana", 5, &action, 13).unwrap();
        assert_eq!(
            reviewed.origin,
            Some(from(crate::alerts::alert_store::DECISION_LANE, 13))
        );
    }

    #[test]
    fn a_failed_reservation_is_retried_and_no_number_is_handed_out_unreserved() {
        let mut numbering = Numbering {
            next_seq: 1,
            ..Numbering::default()
        };
        let mut attempts = Vec::new();
        let seq = numbering.take_seq_with(|through| {
            attempts.push(through);
            if attempts.len() < 3 {
                Err("disk full")
            } else {
                Ok(())
            }
        });
        assert_eq!(seq, 1);
        assert_eq!(
            attempts,
            vec![SEQ_BLOCK; 3],
            "retried until the block was durable"
        );
        assert_eq!(numbering.reserved_through, SEQ_BLOCK);
        // Within the block no reservation is needed; past it, a new one is made first.
        numbering.next_seq = SEQ_BLOCK + 1;
        let mut asked = None;
        let seq = numbering.take_seq_with(|through| {
            asked = Some(through);
            Ok::<(), &str>(())
        });
        assert_eq!((seq, asked), (SEQ_BLOCK + 1, Some(2 * SEQ_BLOCK)));
    }

    #[test]
    fn after_a_crash_numbers_resume_above_the_reserved_block_and_stored_alerts_are_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let live = LiveAlerts::new(AlertStore::open(dir.path()).unwrap(), 0).unwrap();
            live.apply(outputs(&[tamper("a1", None)]));
            live.sync_store_blocking();
        }
        // A number published but never stored (the process died first) is still reserved.
        let store = AlertStore::open(dir.path()).unwrap();
        assert_eq!(store.event_seq_high_water().unwrap(), SEQ_BLOCK);
        let live = LiveAlerts::new(store.clone(), 0).unwrap();
        let mut events = live.subscribe();
        // Start-up re-derives a1 exactly as stored: no event. a2 is new.
        live.apply(outputs(&[tamper("a1", None), tamper("a2", None)]));
        let published: Vec<(i64, String)> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| (e.seq, e.alert_id))
            .collect();
        assert_eq!(published, vec![(SEQ_BLOCK + 1, "a2".to_string())]);
    }

    #[test]
    fn a_review_is_stored_after_everything_published_before_it_and_later_events_carry_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let live = LiveAlerts::new(store.clone(), 0).unwrap();
        let mut events = live.subscribe();
        live.apply(outputs(&[tamper("a1", None)]));
        let action = ReviewAction::Acknowledge {
            notes: Some("calling".into()),
        };
        let reviewed = live.review("a1", "hana", 5, &action, 1).unwrap();
        assert_eq!((reviewed.seq, reviewed.kind.as_str()), (2, "reviewed"));
        // Refused (unknown alert): the number is used for nothing and nothing waits on it.
        assert!(live.review("nope", "hana", 6, &action, 2).is_err());
        live.apply(outputs(&[tamper("a1", Some(1_774_915_260_000))]));
        let last = std::iter::from_fn(|| events.try_recv().ok())
            .last()
            .unwrap();
        assert_eq!(last.seq, 4);
        let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
        assert_eq!(body["review"]["state"], "acknowledged");
        live.sync_store_blocking();
        let seqs: Vec<i64> = store
            .events_after(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 4]);
    }
}
