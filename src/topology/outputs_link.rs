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
//! - Hits: the node owning an activation matches its hits (`crime::service::HitSplit`) and
//!   publishes each hit's standing ([`spawn_hit_publisher`]); every node stores the others'
//!   (`HitService::materialise`). At start the stream's latest standings are stored first, the
//!   start-up match runs, and the node's own hits that differ from the stream's are published
//!   ([`standings_to_publish`]), so a hit changed just before a crash is published after it.

use crate::alerts::LiveAlerts;
use crate::cluster::outputs::{OutMessage, OutputsStream};
use crate::crime::service::HitService;
use crate::model::{Alert, HitStanding, SoberDay, TimeMs};
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
    /// A hit's standing (found by the node owning its activation).
    Hit(HitStanding),
}

/// What a message gives its reader.
pub enum Received {
    /// A rule output for the alert book, with its arrival time and provenance.
    Rule(Output, Option<TimeMs>, Provenance),
    /// A hit as it stands, for the crime store.
    Hit(HitStanding),
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

    /// The published form of a hit's standing, the `n`-th its publisher sent.
    pub fn hit(standing: HitStanding, n: u64) -> Self {
        Self {
            activation: standing.hit.activation.clone(),
            ordinal: n,
            lane: 0,
            record: 0,
            arrival_ms: None,
            output: RuleOutput::Hit(standing),
        }
    }

    /// Back to a pipeline output, with its arrival time and provenance, or a hit's standing.
    pub fn received(self) -> Received {
        let output = match self.output {
            RuleOutput::Alert(a) => Output::Alert(a),
            RuleOutput::SoberDay(d) => Output::SoberDay(d),
            RuleOutput::Purged => Output::Purged {
                activation: self.activation,
            },
            RuleOutput::Hit(standing) => return Received::Hit(standing),
        };
        let from = Provenance {
            lane: self.lane,
            record: self.record,
        };
        Received::Rule(output, self.arrival_ms, from)
    }

    /// The stream message (framed as pipeline snapshots are: magic, version, CRC-32, CBOR).
    pub fn to_message(&self) -> Result<OutMessage> {
        Ok(OutMessage {
            activation: self.activation.clone(),
            ordinal: self.ordinal,
            purged: matches!(self.output, RuleOutput::Purged),
            hit: match &self.output {
                RuleOutput::Hit(standing) => Some(standing.hit.id.clone()),
                _ => None,
            },
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
    /// Counts `batch`'s rule outputs, as [`Self::number`] would, without numbering them (a node
    /// whose book takes its own pipeline's outputs keeps the count for its checkpoint).
    pub fn count(&mut self, batch: &OutputBatch) {
        for (output, _, _) in batch {
            if let Some(activation) = activation_of(output) {
                match self.0.get_mut(activation) {
                    Some(n) => *n += 1,
                    None => {
                        self.0.insert(activation.to_string(), 1);
                    }
                }
            }
        }
    }

    /// Each activation's count, by activation (a checkpoint's).
    pub fn to_vec(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.0.iter().map(|(a, n)| (a.clone(), *n)).collect();
        all.sort();
        all
    }

    pub fn from_vec(counts: Vec<(String, u64)>) -> Self {
        Self(counts.into_iter().collect())
    }

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
    /// Hits as the stream last gave them, per hit id (read at start: [`recover`]).
    pub hits: HashMap<String, HitStanding>,
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
        if let RuleOutput::Hit(standing) = &output.output {
            applied
                .hits
                .insert(standing.hit.id.clone(), standing.clone());
            continue;
        }
        if applied.admit(&output) {
            COUNTERS.applied.fetch_add(1, Ordering::Relaxed);
            if let Received::Rule(output, arrival_ms, from) = output.received() {
                batch.push((output, arrival_ms, from));
            }
        }
        if batch.len() >= 4096 {
            alerts.apply_recovered(std::mem::take(&mut batch));
        }
    }
    alerts.apply_recovered(batch);
    Ok(())
}

/// Publishes the start-up replay's rule outputs (`numbered` by [`Ordinals::number`]) past what
/// the stream holds for each activation. Nothing of an activation purged within the replay is
/// published again (the stream's copies were deleted by the purge), only its purge. Returns
/// how many were published.
pub async fn publish_startup(
    stream: &OutputsStream,
    numbered: Vec<PublishedOutput>,
    applied: &Applied,
) -> Result<usize> {
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
            if !publish_until_done(&stream, &messages, &stop).await {
                return;
            }
            COUNTERS
                .published
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
        }
    })
}

/// Publishes `messages`, again after each failure (the same messages: their ids make a partial
/// success harmless), until the stream holds them all (`true`) or the node stops (`false`).
async fn publish_until_done(
    stream: &OutputsStream,
    messages: &[OutMessage],
    stop: &CancellationToken,
) -> bool {
    let mut pause = RETRY_FIRST;
    loop {
        match stream.publish_all(messages).await {
            Ok(()) => return true,
            Err(e) => {
                COUNTERS.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_ms = pause.as_millis() as u64, "outputs not published yet");
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// This node's hits (its own activations', as its store holds them) that the stream does not
/// hold as they stand: what the start publishes. `stream` is [`Applied::hits`].
pub fn standings_to_publish(
    own: Vec<HitStanding>,
    stream: &HashMap<String, HitStanding>,
) -> Vec<HitStanding> {
    own.into_iter()
        .filter(|s| stream.get(&s.hit.id) != Some(s))
        .collect()
}

/// Publishes `standings` at start (before the live hit publisher); how many.
pub async fn publish_hits_at_start(
    stream: &OutputsStream,
    standings: Vec<HitStanding>,
    count: &mut HitCount,
) -> Result<usize> {
    let messages = count.messages(standings)?;
    stream.publish_all(&messages).await?;
    Ok(messages.len())
}

/// Numbers a publisher's hit messages: from a start of its own (the wall clock at start, in
/// nanoseconds), so no two publishers' ids meet within the duplicate window.
pub struct HitCount(u64);

impl HitCount {
    pub fn new() -> Self {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(ns)
    }

    fn messages(&mut self, standings: Vec<HitStanding>) -> Result<Vec<OutMessage>> {
        standings
            .into_iter()
            .map(|standing| {
                self.0 += 1;
                PublishedOutput::hit(standing, self.0).to_message()
            })
            .collect()
    }
}

impl Default for HitCount {
    fn default() -> Self {
        Self::new()
    }
}

/// Live: publishes the standing of each hit this node's matcher changes, in order. A standing
/// that cannot be encoded is a bug: said loudly, the publisher stops (the next start publishes
/// what differs from the stream).
pub fn spawn_hit_publisher(
    stream: OutputsStream,
    mut standings: tokio::sync::mpsc::UnboundedReceiver<HitStanding>,
    mut count: HitCount,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(first) = standings.recv().await {
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match standings.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let messages = match count.messages(batch) {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::error!(error = %e, "a hit cannot be encoded: this node publishes no more hits until it restarts");
                    COUNTERS.publish_failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            if !publish_until_done(&stream, &messages, &stop).await {
                return;
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
    hits: HitService,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    applied.hits.clear();
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
                if let RuleOutput::Hit(standing) = output.output {
                    hits.materialise(vec![standing]);
                    continue;
                }
                if applied.admit(&output) {
                    COUNTERS.applied.fetch_add(1, Ordering::Relaxed);
                    if let Received::Rule(output, arrival_ms, from) = output.received() {
                        if book.send(vec![(output, arrival_ms, from)]).await.is_err() {
                            return;
                        }
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
        let Received::Rule(output, arrival, again_from) = back.received() else {
            panic!("a rule output")
        };
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

    fn standing(id: &str, activation: &str, closest_m: f64) -> HitStanding {
        let json = serde_json::json!({
            "id": id, "force": "Kent", "batch_id": "K1", "crime_ref": "C1", "crime_version": 1,
            "activation": activation, "person": "P1", "certainty": "certain",
            "closest_m": closest_m, "closest_t": "2026-03-02T10:00:00.000Z", "inside_s": 60,
            "positions": [], "algorithm": {"name": "hits/2", "radius_m": 100.0, "max_gap_s": 600,
            "margin_s": 1800, "max_precision_m": 500.0, "label_gap_s": 600},
            "crime_type": "BIAD", "crime_from": "2026-03-02T09:00:00.000Z",
            "crime_to": "2026-03-02T11:00:00.000Z", "crime_lat": 51.2, "crime_lon": 0.5,
            "radius_m": 100.0, "weaker_evidence": false
        });
        HitStanding {
            hit: serde_json::from_value(json).unwrap(),
            withdrawn: None,
        }
    }

    #[test]
    fn a_hit_standing_survives_its_message_and_only_what_the_stream_lacks_is_published() {
        let h1 = standing("H1", "A1", 12.3);
        let mut count = HitCount(41);
        let messages = count.messages(vec![h1.clone()]).unwrap();
        assert_eq!(messages[0].hit.as_deref(), Some("H1"));
        assert_eq!(
            (messages[0].activation.as_str(), messages[0].ordinal),
            ("A1", 42)
        );
        let back = PublishedOutput::from_payload(&messages[0].payload).unwrap();
        let Received::Hit(again) = back.received() else {
            panic!("a hit")
        };
        assert_eq!(again, h1);

        let mut stream = HashMap::new();
        stream.insert("H1".to_string(), h1.clone());
        stream.insert("H2".to_string(), standing("H2", "A2", 5.0));
        let mut withdrawn = standing("H2", "A2", 5.0);
        withdrawn.withdrawn = Some(crate::model::Withdrawal {
            change: Some(7),
            reason: "ended".into(),
        });
        let missing = standing("H3", "A1", 1.0);
        let own = vec![h1, withdrawn.clone(), missing.clone()];
        assert_eq!(standings_to_publish(own, &stream), vec![withdrawn, missing]);
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
