//! Partitioned processing's joints (cluster mode with `[log.jetstream] own_partitions`): this
//! node's rule outputs go to the outputs stream (`cluster::outputs`) and its alert book is fed
//! from that stream, every partition's, instead of from its own pipeline.
//!
//! - [`PublishedOutput`]: what a message holds (the output in its exact snapshot form, its
//!   activation's ordinal, its provenance), framed with a checksum.
//! - [`Ordinals`] numbers each activation's rule outputs; [`Applied`] is what this node's book
//!   took from the stream (per activation the highest ordinal), so a re-derived output is
//!   published and applied once.
//! - At start: [`recover`] reads the stream into the book (as recovered, not news), the start-up
//!   replay's outputs are published past what the stream holds ([`publish_startup`]), and read
//!   back. Live: [`spawn_publisher`] and [`spawn_materialiser`].

use crate::alerts::LiveAlerts;
use crate::cluster::outputs::{OutMessage, OutputsStream};
use crate::model::{Alert, SoberDay, TimeMs};
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::{Output, Provenance};
use anyhow::{Context, Result};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One rule output as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedOutput {
    pub activation: String,
    /// The n-th rule output of `activation` (from 1).
    pub ordinal: u64,
    /// Where it came from (the same on every node: lane and log record).
    pub lane: u32,
    pub record: u64,
    /// Arrival time of the batch behind it (latency is measured from it).
    pub arrival_ms: Option<TimeMs>,
    pub output: RuleOutput,
}

/// What a rule said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleOutput {
    Alert(#[serde(with = "crate::pipeline::snapshot::via")] Alert),
    SoberDay(SoberDay),
    Purged,
}

impl PublishedOutput {
    /// The published form of a rule output (`None` for the stores' outputs, which every node
    /// derives itself).
    pub fn of(
        output: &Output,
        ordinal: u64,
        arrival_ms: Option<TimeMs>,
        from: Provenance,
    ) -> Option<Self> {
        let (activation, output) = match output {
            Output::Alert(a) => (a.activation.clone(), RuleOutput::Alert(a.clone())),
            Output::SoberDay(d) => (d.activation.clone(), RuleOutput::SoberDay(d.clone())),
            Output::Purged { activation } => (activation.clone(), RuleOutput::Purged),
            Output::Readings { .. } | Output::Activations { .. } => return None,
        };
        Some(Self {
            activation,
            ordinal,
            lane: from.lane,
            record: from.record,
            arrival_ms,
            output,
        })
    }

    /// Back to a pipeline output, with its arrival time and provenance.
    pub fn into_output(self) -> (Output, Option<TimeMs>, Provenance) {
        let output = match self.output {
            RuleOutput::Alert(a) => Output::Alert(a),
            RuleOutput::SoberDay(d) => Output::SoberDay(d),
            RuleOutput::Purged => Output::Purged {
                activation: self.activation,
            },
        };
        let from = Provenance {
            lane: self.lane,
            record: self.record,
        };
        (output, self.arrival_ms, from)
    }

    /// The stream message (framed as pipeline snapshots are: magic, version, CRC-32, CBOR).
    pub fn to_message(&self) -> Result<OutMessage> {
        Ok(OutMessage {
            activation: self.activation.clone(),
            ordinal: self.ordinal,
            purged: matches!(self.output, RuleOutput::Purged),
            payload: crate::pipeline::snapshot::encode(self)
                .with_context(|| format!("encoding output {}#{}", self.activation, self.ordinal))?,
        })
    }

    /// A message's output; a damaged one is refused with the reason.
    pub fn from_payload(payload: &[u8]) -> Result<Self, crate::pipeline::snapshot::SnapshotError> {
        crate::pipeline::snapshot::decode(payload)
    }
}

/// The activation whose rule output `output` is (`None`: a store's output).
fn activation_of(output: &Output) -> Option<&str> {
    match output {
        Output::Alert(a) => Some(&a.activation),
        Output::SoberDay(d) => Some(&d.activation),
        Output::Purged { activation } => Some(activation),
        Output::Readings { .. } | Output::Activations { .. } => None,
    }
}

/// Each activation's rule outputs counted as the pipeline emits them: the ordinal of each.
#[derive(Default)]
pub struct Ordinals(HashMap<String, u64>);

impl Ordinals {
    /// Numbers `batch`'s rule outputs in order (stores' outputs are left out).
    pub fn number(&mut self, batch: OutputBatch) -> Vec<PublishedOutput> {
        batch
            .into_iter()
            .filter_map(|(output, arrival_ms, from)| {
                let activation = activation_of(&output)?;
                let n = self.0.entry(activation.to_string()).or_default();
                *n += 1;
                PublishedOutput::of(&output, *n, arrival_ms, from)
            })
            .collect()
    }
}

/// What this node's alert book took from the outputs stream.
#[derive(Debug, Default)]
pub struct Applied {
    /// Per activation, the highest ordinal applied.
    highest: HashMap<String, u64>,
    /// The sequence to read next.
    pub next_sequence: u64,
    pub applied: u64,
    pub skipped: u64,
}

impl Applied {
    /// Whether `output` is news (past the activation's highest ordinal); counts it in if so.
    fn admit(&mut self, output: &PublishedOutput) -> bool {
        let highest = self.highest.entry(output.activation.clone()).or_default();
        if output.ordinal <= *highest {
            self.skipped += 1;
            return false;
        }
        *highest = output.ordinal;
        self.applied += 1;
        true
    }

    fn held(&self, activation: &str) -> u64 {
        self.highest.get(activation).copied().unwrap_or(0)
    }
}

/// Outputs read, published, refused: for `/metrics`.
#[derive(Default)]
pub struct LinkCounters {
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    pub applied: AtomicU64,
    pub read_failures: AtomicU64,
}

pub static COUNTERS: LinkCounters = LinkCounters {
    published: AtomicU64::new(0),
    publish_failures: AtomicU64::new(0),
    applied: AtomicU64::new(0),
    read_failures: AtomicU64::new(0),
};

/// The counters in the exposition format.
pub fn write_metrics(e: &mut crate::metrics::exposition::Exposition) {
    let c = &COUNTERS;
    e.counter(
        "tagstream_outputs_published_total",
        "Rule outputs this node published to the cluster's outputs stream.",
        c.published.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_outputs_publish_failures_total",
        "Attempts to publish rule outputs that failed (retried).",
        c.publish_failures.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_outputs_applied_total",
        "Rule outputs from the outputs stream applied to this node's alert book.",
        c.applied.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_outputs_read_failures_total",
        "Reads of the outputs stream that failed (retried).",
        c.read_failures.load(Ordering::Relaxed),
    );
}

/// Reads the outputs stream from `applied.next_sequence` to its end into the alert book as
/// recovered (the start-up's view of what every node published).
pub async fn recover(
    stream: &OutputsStream,
    alerts: &LiveAlerts,
    applied: &mut Applied,
) -> Result<()> {
    let end = stream.next_sequence().await?;
    let mut messages = Box::pin(stream.read(applied.next_sequence, Some(end)).await?);
    let mut batch: OutputBatch = Vec::new();
    while let Some(item) = messages.next().await {
        let (sequence, payload) = item?;
        let output = PublishedOutput::from_payload(&payload)
            .with_context(|| format!("outputs stream message {sequence} is damaged"))?;
        applied.next_sequence = sequence + 1;
        if applied.admit(&output) {
            COUNTERS.applied.fetch_add(1, Ordering::Relaxed);
            batch.push(output.into_output());
        }
        if batch.len() >= 4096 {
            alerts.apply_recovered(std::mem::take(&mut batch));
        }
    }
    alerts.apply_recovered(batch);
    Ok(())
}

/// Publishes the start-up replay's rule outputs past what the stream holds for each
/// activation. Nothing of an activation purged within the replay is published again (the
/// stream's copies were deleted by the purge), only its purge. Returns how many were published.
pub async fn publish_startup(
    stream: &OutputsStream,
    outputs: OutputBatch,
    ordinals: &mut Ordinals,
    applied: &Applied,
) -> Result<usize> {
    let numbered = ordinals.number(outputs);
    let purged: HashSet<&str> = numbered
        .iter()
        .filter(|o| o.output == RuleOutput::Purged)
        .map(|o| o.activation.as_str())
        .collect();
    let messages = numbered
        .iter()
        .filter(|o| o.ordinal > applied.held(&o.activation))
        .filter(|o| o.output == RuleOutput::Purged || !purged.contains(o.activation.as_str()))
        .map(PublishedOutput::to_message)
        .collect::<Result<Vec<_>>>()?;
    stream.publish_all(&messages).await?;
    COUNTERS
        .published
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    Ok(messages.len())
}

/// First and longest pause between attempts to publish or to read again.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Live: numbers the pipeline's rule outputs and publishes them in order. A failed publish is
/// retried (the same messages: their ids make a partial success harmless) until it succeeds
/// or the node stops; nothing is skipped, so each activation's ordinals stay in order.
pub fn spawn_publisher(
    stream: OutputsStream,
    mut outputs: mpsc::Receiver<OutputBatch>,
    mut ordinals: Ordinals,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(mut batch) = outputs.recv().await {
            while batch.len() < 4096 {
                match outputs.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let messages: Vec<OutMessage> = match ordinals
                .number(batch)
                .iter()
                .map(PublishedOutput::to_message)
                .collect::<Result<_>>()
            {
                Ok(messages) => messages,
                Err(e) => {
                    // An output that cannot be encoded is a bug. Nothing after it is published
                    // (skipping it would leave a gap no restart fills: readers and the next
                    // start go by the highest ordinal); the next start re-derives and publishes
                    // from it.
                    tracing::error!(error = %e, "rule outputs cannot be encoded: this node publishes no more until it restarts");
                    COUNTERS.publish_failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let mut pause = RETRY_FIRST;
            loop {
                match stream.publish_all(&messages).await {
                    Ok(()) => {
                        COUNTERS
                            .published
                            .fetch_add(messages.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        COUNTERS.publish_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, retry_ms = pause.as_millis() as u64, "rule outputs not published yet");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    })
}

/// Live: follows the outputs stream from `applied.next_sequence` into the alert book's input
/// (`book`), each output once. A read that fails is opened again where it stopped; a damaged
/// message stops the materialiser (as a damaged record stops a node's reader), said loudly.
pub fn spawn_materialiser(
    stream: OutputsStream,
    mut applied: Applied,
    book: mpsc::Sender<OutputBatch>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = RETRY_FIRST;
        loop {
            let read = stream.read(applied.next_sequence, None).await;
            let mut messages = match read {
                Ok(messages) => Box::pin(messages),
                Err(e) => {
                    COUNTERS.read_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "outputs stream not readable yet");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                    continue;
                }
            };
            pause = RETRY_FIRST;
            loop {
                let item = tokio::select! {
                    _ = stop.cancelled() => return,
                    item = messages.next() => item,
                };
                let Some(item) = item else { break };
                let (sequence, payload) = match item {
                    Ok(read) => read,
                    Err(e) => {
                        COUNTERS.read_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "outputs stream read failed; reading again");
                        break;
                    }
                };
                let output = match PublishedOutput::from_payload(&payload) {
                    Ok(output) => output,
                    Err(e) => {
                        tracing::error!(sequence, error = %e, "outputs stream message damaged: this node's alert book stops here");
                        COUNTERS.read_failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                applied.next_sequence = sequence + 1;
                if applied.admit(&output) {
                    COUNTERS.applied.fetch_add(1, Ordering::Relaxed);
                    if book.send(vec![output.into_output()]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// The purge target that deletes a purged activation's outputs from the outputs stream.
pub struct OutputsPurge {
    stream: OutputsStream,
    runtime: tokio::runtime::Handle,
}

impl OutputsPurge {
    /// On the runtime whose handle the (blocking) purge job uses.
    pub fn new(stream: OutputsStream) -> Self {
        Self {
            stream,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl crate::store::PurgeTarget for OutputsPurge {
    fn name(&self) -> &'static str {
        "cluster_outputs"
    }

    fn purge_activation(&self, activation: &str) -> Result<u64, crate::store::TargetError> {
        // Called from blocking threads and from the runtime's own (purge records followed at
        // start): the request runs on a thread of its own, waited for.
        let purged = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // The timer is made inside the runtime (it needs its reactor).
                    self.runtime.block_on(async {
                        tokio::time::timeout(
                            Duration::from_secs(30),
                            self.stream.purge_activation(activation),
                        )
                        .await
                    })
                })
                .join()
        })
        .map_err(|_| "the outputs stream purge panicked")?
        .map_err(|_| "the outputs stream did not answer within 30 s")?
        .map_err(|e| e.to_string())?;
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertType, Position, PositionSource, Reading, ReadingBody};

    fn alert(activation: &str, start: TimeMs) -> Alert {
        Alert {
            id: crate::model::alert_id(activation, "AL08", start),
            alert_type: AlertType::CurfewViolation,
            code: Some("AL08".into()),
            activation: activation.into(),
            person: "P1".into(),
            start,
            end: Some(start + 100_333),
            late: true,
            zone: None,
            confidence: None,
            rule: "curfew/5".into(),
            details: None,
            withdrawn: None,
            amended_by: Some(17),
            evidence: vec![Reading {
                t_ms: start,
                battery_pct: Some(80),
                body: ReadingBody::Position(Position {
                    lat_e7: 514_545_123,
                    lon_e7: -25_879_456,
                    precision_cm: 1234,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(3),
                    heading_cdeg: Some(27_000),
                    satellites: Some(7),
                }),
            }],
        }
    }

    #[test]
    fn an_output_survives_its_published_form_exactly_and_damage_is_refused() {
        let alert = alert("A1", 1_772_409_600_123);
        let from = Provenance {
            lane: 1,
            record: 42,
        };
        let published = PublishedOutput::of(
            &Output::Alert(alert.clone()),
            3,
            Some(1_772_409_800_000),
            from,
        )
        .expect("a rule output");
        let message = published.to_message().expect("encode");
        assert_eq!((message.activation.as_str(), message.ordinal), ("A1", 3));
        assert!(!message.purged);
        let back = PublishedOutput::from_payload(&message.payload).expect("decode");
        assert_eq!(back, published);
        let (output, arrival, again_from) = back.into_output();
        let Output::Alert(again) = output else {
            panic!("an alert")
        };
        // The JSON form drops evidence; the published form keeps it exactly.
        assert_eq!(again.evidence, alert.evidence);
        assert_eq!(again, alert);
        assert_eq!((arrival, again_from), (Some(1_772_409_800_000), from));
        let mut damaged = message.payload.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(PublishedOutput::from_payload(&damaged).is_err());
    }

    #[test]
    fn ordinals_count_per_activation_and_a_re_derived_output_is_applied_once() {
        let from = Provenance::default();
        let batch = |alerts: &[(&str, TimeMs)]| -> OutputBatch {
            alerts
                .iter()
                .map(|(a, t)| (Output::Alert(alert(a, *t)), None, from))
                .collect()
        };
        let mut ordinals = Ordinals::default();
        let first = ordinals.number(batch(&[("A1", 1), ("A2", 1), ("A1", 2)]));
        let numbered: Vec<(&str, u64)> = first
            .iter()
            .map(|o| (o.activation.as_str(), o.ordinal))
            .collect();
        assert_eq!(numbered, vec![("A1", 1), ("A2", 1), ("A1", 2)]);
        // A node re-deriving the same outputs (a restart) numbers them the same.
        let mut again = Ordinals::default();
        assert_eq!(
            again.number(batch(&[("A1", 1), ("A2", 1), ("A1", 2)])),
            first
        );
        let mut applied = Applied::default();
        for o in &first {
            assert!(applied.admit(o));
        }
        for o in &first {
            assert!(!applied.admit(o), "{o:?} applied twice");
        }
        let next = ordinals.number(batch(&[("A1", 3)]));
        assert!(applied.admit(&next[0]));
        assert_eq!((applied.applied, applied.skipped), (4, 3));
    }
}
