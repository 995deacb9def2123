//! Drives partitions from batches: inline on the caller's thread (replay, tests) or as one tokio
//! task per partition on the pipeline's own runtime (live). Both go through
//! [`Dispatcher::dispatch`], so they see the same inputs.

use super::dispatcher::Dispatcher;
use super::partition::{Partition, PartitionInput, PartitionStats};
use super::rule::ActivationInfo;
use super::rule::RuleFactory;
use super::sink::{Output, Provenance, Sink, VecSink};
use super::snapshot::SnapshotError;
use super::{ActivationDirectory, DispatchStats, PipelineConfig};
use crate::model::{Activation, LogEntry, TimeMs};
use crate::orders::OrderBook;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Partitions run on the caller's thread, one input at a time: the reference behaviour.
pub struct InlineDriver {
    dispatcher: Dispatcher,
    partitions: Vec<Partition>,
    /// Recorded in snapshots, so that a restore with another configuration is refused.
    config: PipelineConfig,
}

/// Everything a snapshot holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct PipelineState {
    config: PipelineConfig,
    dispatcher: super::dispatcher::DispatcherState,
    partitions: Vec<super::partition::PartitionState>,
}

impl InlineDriver {
    /// A driver over a fixed set of activations (`factory` holding their orders); control
    /// records fed later change them as usual.
    pub fn new(
        directory: Arc<ActivationDirectory>,
        config: PipelineConfig,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
        sink: &mut dyn Sink,
    ) -> Self {
        let activations: Vec<Activation> = directory
            .all()
            .iter()
            .map(|a| Activation {
                id: a.id.clone(),
                person: a.person.clone(),
                tag: a.tag.clone(),
                from: a.from_ms,
                to: a.to_ms,
            })
            .collect();
        let book = OrderBook::from_activations(&activations);
        Self::from_book(book, config, factory, partitions, sink)
    }

    /// A driver starting from `book` (empty for a log that carries its control records), whose
    /// rules `factory` builds (already holding `book`'s orders).
    pub fn from_book(
        book: OrderBook,
        config: PipelineConfig,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
        sink: &mut dyn Sink,
    ) -> Self {
        let count = partitions.max(1);
        let dispatcher = Dispatcher::new(book, factory, count, config);
        let partitions: Vec<Partition> = (0..count)
            .map(|_| Partition::new(config).with_gauges(dispatcher.gauges()))
            .collect();
        let mut driver = Self {
            dispatcher,
            partitions,
            config,
        };
        let parts = &mut driver.partitions;
        driver
            .dispatcher
            .register_all(|p, input| parts[p].handle(input, sink));
        driver
    }

    /// The whole state of the pipeline between two records, as bytes (see
    /// [`super::snapshot`]): [`Self::restore`] with the same configuration continues from it
    /// exactly as this driver would. The same state always gives the same bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let partitions = self
            .partitions
            .iter()
            .map(Partition::save)
            .collect::<Result<Vec<_>, _>>()?;
        super::snapshot::encode(&PipelineState {
            config: self.config,
            dispatcher: self.dispatcher.save(),
            partitions,
        })
    }

    /// A driver continuing from `bytes` (written by [`Self::snapshot`]), given the
    /// configuration the saved driver was built with: the same pipeline configuration and
    /// partition count, and `factory` built from the same inputs as it was (holding the
    /// starting orders; the orders control records set since come from the snapshot).
    pub fn restore(
        bytes: &[u8],
        config: PipelineConfig,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
    ) -> Result<Self, SnapshotError> {
        let state: PipelineState = super::snapshot::decode(bytes)?;
        if state.config != config {
            return Err(SnapshotError::Mismatch(
                "the pipeline configuration differs from the snapshot's".into(),
            ));
        }
        if state.partitions.len() != partitions.max(1) {
            return Err(SnapshotError::Mismatch(format!(
                "the snapshot has {} partitions, {} asked for",
                state.partitions.len(),
                partitions.max(1)
            )));
        }
        let dispatcher = Dispatcher::restore(state.dispatcher, factory, partitions, config)?;
        let gauges = dispatcher.gauges();
        let rules_for = |a: &ActivationInfo| dispatcher.rules_for(a);
        let partitions = state
            .partitions
            .into_iter()
            .map(|p| {
                Partition::restore(config, p, &rules_for).map(|p| p.with_gauges(gauges.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The held-reading counters count since the start, as the saved driver's did.
        let stats: Vec<PartitionStats> = partitions.iter().map(Partition::stats).collect();
        gauges.held_dropped_readings.store(
            stats.iter().map(|s| s.held_dropped).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
        gauges.released_readings.store(
            stats.iter().map(|s| s.released_readings).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Self {
            dispatcher,
            partitions,
            config,
        })
    }

    /// Feeds one batch (tests, benches).
    pub fn feed(&mut self, batch: &Arc<crate::model::Batch>, sink: &mut dyn Sink) {
        self.feed_entry(&LogEntry::Batch(batch.clone()), sink);
    }

    /// Feeds one log entry: a batch or a control record. The rules' outputs and the stores'
    /// (readings by activation, activation changes) both go to `sink`.
    pub fn feed_entry(&mut self, entry: &LogEntry, sink: &mut dyn Sink) {
        let parts = &mut self.partitions;
        let record = self.dispatcher.record_of(entry);
        let stored = self.dispatcher.dispatch(entry, |p, input| {
            handle_from(parts, record, &mut *sink, p, input)
        });
        for output in stored {
            sink.emit(output, None);
        }
    }

    /// From now on only `owned`'s tags reach the rules (a processing node's partitions); the
    /// stores' outputs still cover every reading. Call before feeding anything.
    pub fn own_partitions(
        &mut self,
        owned: crate::model::tag_partition::PartitionSet,
    ) -> Result<(), super::dispatcher::OwnedWithoutClocks> {
        self.dispatcher.own(owned)
    }

    /// [`Self::own_partitions`] for a driver restored from a snapshot taken where more
    /// partitions' rules ran (a full node's checkpoint, the cluster's snapshot): the other
    /// partitions' activations leave memory, saying nothing (their owners speak for them), so
    /// nothing of theirs is ever emitted here; the owned partitions go on exactly as they were.
    pub fn own_restored_partitions(
        &mut self,
        owned: crate::model::tag_partition::PartitionSet,
    ) -> Result<(), super::dispatcher::OwnedWithoutClocks> {
        self.dispatcher.own(owned)?;
        let others: Vec<String> = self
            .dispatcher
            .directory()
            .all()
            .iter()
            .filter(|a| !self.dispatcher.owns_tag(&a.tag))
            .map(|a| a.id.clone())
            .collect();
        let mut silent = VecSink::default();
        for id in others {
            let p = self.dispatcher.partition_of(&id);
            self.partitions[p].handle(PartitionInput::Retire(id), &mut silent);
        }
        Ok(())
    }

    /// A batch this driver does not process (another partition's) still takes its log record
    /// number, so the records after it are numbered as a full reading numbers them.
    pub fn skip_record(&mut self) {
        let next = self.dispatcher.next_record();
        self.dispatcher.set_next_record(next + 1);
    }

    /// [`Self::feed_entry`] for an entry whose log record number the reader knows (a data
    /// directory's log, where damage may leave gaps in the numbering).
    pub fn feed_record(&mut self, record: u64, entry: &LogEntry, sink: &mut dyn Sink) {
        self.dispatcher.set_next_record(record);
        self.feed_entry(entry, sink);
    }

    /// Conditions that could not be compiled into rules (not monitored), as of now.
    pub fn unmonitored_conditions(&self) -> Vec<String> {
        self.dispatcher.unmonitored_conditions()
    }

    /// People, activations and orders as of the entries fed so far.
    pub fn book(&self) -> &OrderBook {
        self.dispatcher.book()
    }

    /// The activations as of the entries fed so far.
    pub fn directory(&self) -> &Arc<ActivationDirectory> {
        self.dispatcher.directory()
    }

    /// After the input (`replay --until`): advances the event-time clock to `t_ms` through the
    /// dispatcher, as live advances do, stopping at every pending deadline on the way so each
    /// rule sees the clock reach its deadlines in turn. Refuses a `t_ms` before the clock the
    /// input reached.
    pub fn advance_clock_to(
        &mut self,
        t_ms: TimeMs,
        sink: &mut dyn Sink,
    ) -> Result<(), ClockBehind> {
        let parts = &mut self.partitions;
        let record = self.dispatcher.next_record().saturating_sub(1);
        self.dispatcher
            .catch_up(|p, input| handle_from(parts, record, &mut *sink, p, input));
        let clock_ms = self.dispatcher.clock_ms();
        if t_ms < clock_ms {
            return Err(ClockBehind { t_ms, clock_ms });
        }
        // Each clock partition steps through its own deadlines (they follow only its clock).
        for group in 0..self.dispatcher.clock_partitions() {
            loop {
                let clock_ms = self.dispatcher.clock_of(group);
                let next = self
                    .partitions
                    .iter()
                    .filter_map(|p| p.next_deadline_ms(group))
                    .min();
                // Strictly forward each step (an entry at or before the clock is stale or due
                // now), so the loop ends.
                let step_ms = match next {
                    Some(due_ms) if due_ms < t_ms => due_ms.max(clock_ms.saturating_add(1)),
                    _ => t_ms,
                };
                let parts = &mut self.partitions;
                self.dispatcher.advance_clock(group, step_ms, |p, input| {
                    handle_from(parts, record, &mut *sink, p, input)
                });
                if step_ms >= t_ms {
                    break;
                }
            }
        }
        Ok(())
    }

    /// After the input (`replay --final`): the input is complete through the clock it reached;
    /// every rule takes the decisions that allows (see [`PartitionInput::Final`]). Returns that
    /// clock (`None` if no reading ever set one: nothing to settle).
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Option<TimeMs> {
        let parts = &mut self.partitions;
        let record = self.dispatcher.next_record().saturating_sub(1);
        self.dispatcher
            .finish(|p, input| handle_from(parts, record, &mut *sink, p, input))
    }

    pub fn dispatch_stats(&self) -> DispatchStats {
        self.dispatcher.stats()
    }

    /// Live clock and flag counters (kept up to date after [`InlineDriver::into_live`] too).
    pub fn gauges(&self) -> Arc<super::PipelineGauges> {
        self.dispatcher.gauges()
    }

    pub fn partition_stats(&self) -> Vec<PartitionStats> {
        self.partitions.iter().map(Partition::stats).collect()
    }

    /// Hands the state over to live tasks (after the start-up replay of the log): the rules'
    /// outputs go to `outputs`, the stores' to `stores` (on the dispatcher's task, flushed after
    /// each committed group), and the next batch is log record `next_record`.
    pub fn into_live(
        mut self,
        outputs: mpsc::Sender<OutputBatch>,
        stores: Box<dyn Sink + Send>,
        next_record: u64,
    ) -> std::io::Result<LiveDriver> {
        self.dispatcher.set_next_record(next_record);
        LiveDriver::spawn_from(self.dispatcher, self.partitions, outputs, stores)
    }
}

/// Hands `input` to partition `p`; its outputs are marked as coming from lane `p` and log
/// record `record` (the provenance the alert events keep).
fn handle_from(
    parts: &mut [Partition],
    record: u64,
    sink: &mut dyn Sink,
    p: usize,
    input: PartitionInput,
) {
    sink.outputs_from(Provenance {
        lane: p as u32,
        record,
    });
    parts[p].handle(input, sink)
}

/// `replay --until` named a time before the event-time clock the input had already reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "--until {} is before the event-time clock the input reached ({}): the clock never goes back",
    crate::model::time::format_time(*t_ms),
    crate::model::time::format_time(*clock_ms)
)]
pub struct ClockBehind {
    pub t_ms: TimeMs,
    pub clock_ms: TimeMs,
}

/// Outputs of one partition step, with the arrival time of the batch that caused each and where
/// each came from.
pub type OutputBatch = Vec<(Output, Option<TimeMs>, Provenance)>;

/// Handle to the live pipeline: send committed log entries (in log order) to `input`.
pub struct LiveDriver {
    pub input: mpsc::Sender<Vec<LogEntry>>,
}

impl LiveDriver {
    /// Spawns the dispatcher task and one task per partition. Rule outputs go to `outputs`,
    /// the stores' outputs to `stores`.
    pub fn spawn(
        directory: Arc<ActivationDirectory>,
        config: PipelineConfig,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
        outputs: mpsc::Sender<OutputBatch>,
        stores: Box<dyn Sink + Send>,
    ) -> std::io::Result<Self> {
        let mut registration = VecSink::default();
        InlineDriver::new(directory, config, factory, partitions, &mut registration)
            .into_live(outputs, stores, 0)
    }

    /// Runs partitions (with whatever state they already hold) as tasks fed by `dispatcher`, on
    /// the pipeline's own runtime: its threads (at most one per partition and per core) are
    /// scheduled by the OS beside the tag connections' workers, where as tasks among thousands
    /// of connection tasks every hop of a batch through the pipeline queued behind them (the
    /// `dispatched` stage's p99 at 256 k readings/s from 15,000 tags was hundreds of ms). The
    /// runtime lives on a thread of its own until the committed-groups channel closes and every
    /// partition has finished.
    fn spawn_from(
        dispatcher: Dispatcher,
        partitions: Vec<Partition>,
        outputs: mpsc::Sender<OutputBatch>,
        stores: Box<dyn Sink + Send>,
    ) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(partitions.len().clamp(1, cores))
            .thread_name("pipeline")
            .enable_all()
            .build()?;
        let (input, batches) = mpsc::channel::<Vec<LogEntry>>(64);
        let run = {
            let _entered = runtime.enter();
            Self::spawn_tasks(dispatcher, partitions, outputs, stores, batches)
        };
        std::thread::Builder::new()
            .name("pipeline-runtime".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for task in run {
                        // A task that panicked has already been reported by the panic hook;
                        // the others still finish their inputs.
                        let _ = task.await;
                    }
                })
            })?;
        Ok(Self { input })
    }

    /// Spawns the dispatcher and partition tasks on the current runtime; returns their handles.
    fn spawn_tasks(
        mut dispatcher: Dispatcher,
        partitions: Vec<Partition>,
        outputs: mpsc::Sender<OutputBatch>,
        mut stores: Box<dyn Sink + Send>,
        mut batches: mpsc::Receiver<Vec<LogEntry>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let count = partitions.len();
        let mut tasks = Vec::with_capacity(count + 1);
        let mut senders = Vec::with_capacity(count);
        for (lane, mut partition) in partitions.into_iter().enumerate() {
            let (tx, mut rx) = mpsc::channel::<Vec<(u64, PartitionInput)>>(64);
            senders.push(tx);
            let outputs = outputs.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(inputs) = rx.recv().await {
                    let mut sink = VecSink::default();
                    let mut batch: OutputBatch = Vec::new();
                    let mut arrivals = Vec::new();
                    for (record, input) in inputs {
                        if let PartitionInput::Readings {
                            arrival_ms: Some(a),
                            ..
                        } = &input
                        {
                            arrivals.push(*a);
                        }
                        partition.handle(input, &mut sink);
                        let provenance = Provenance {
                            lane: lane as u32,
                            record,
                        };
                        batch.extend(
                            sink.outputs
                                .drain(..)
                                .map(|(output, arrival)| (output, arrival, provenance)),
                        );
                    }
                    crate::metrics::stage_latency::record(
                        crate::metrics::stage_latency::Stage::RulesRun,
                        arrivals,
                    );
                    if !batch.is_empty() && outputs.send(batch).await.is_err() {
                        break;
                    }
                }
            }));
        }
        tasks.push(tokio::spawn(async move {
            let mut pending: Vec<Vec<(u64, PartitionInput)>> =
                (0..count).map(|_| Vec::new()).collect();
            loop {
                for (p, inputs) in pending.iter_mut().enumerate() {
                    if !inputs.is_empty() && senders[p].send(std::mem::take(inputs)).await.is_err()
                    {
                        return;
                    }
                }
                let Some(group) = batches.recv().await else {
                    stores.flush();
                    return;
                };
                let mut stored = Vec::new();
                for entry in &group {
                    let record = dispatcher.record_of(entry);
                    stored.extend(
                        dispatcher.dispatch(entry, |p, input| pending[p].push((record, input))),
                    );
                }
                // On the runtime: a store's sink that must wait (a trail store behind) does so
                // through `block_in_place`, only when it has to.
                for output in stored {
                    stores.emit(output, None);
                }
                stores.passed(dispatcher.next_record());
                stores.flush();
                crate::metrics::stage_latency::record(
                    crate::metrics::stage_latency::Stage::Dispatched,
                    group.iter().filter_map(|e| e.batch()).map(|b| b.arrival_ms),
                );
            }
        }));
        tasks
    }
}
