//! Drives partitions from batches: inline on the caller's thread (replay, tests) or as one tokio
//! task per partition (live). Both go through [`Dispatcher::dispatch`], so they see the same inputs.

use super::dispatcher::Dispatcher;
use super::partition::{Partition, PartitionInput, PartitionStats};
use super::rule::RuleFactory;
use super::sink::{Output, Sink, VecSink};
use super::{ActivationDirectory, DispatchStats, PipelineConfig};
use crate::model::{Activation, LogEntry, TimeMs};
use crate::orders::OrderBook;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Partitions run on the caller's thread, one input at a time: the reference behaviour.
pub struct InlineDriver {
    dispatcher: Dispatcher,
    partitions: Vec<Partition>,
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
        };
        let parts = &mut driver.partitions;
        driver
            .dispatcher
            .register_all(|p, input| parts[p].handle(input, sink));
        driver
    }

    /// Feeds one batch (tests, benches).
    pub fn feed(&mut self, batch: &Arc<crate::model::Batch>, sink: &mut dyn Sink) {
        self.feed_entry(&LogEntry::Batch(batch.clone()), sink);
    }

    /// Feeds one log entry: a batch or a control record.
    pub fn feed_entry(&mut self, entry: &LogEntry, sink: &mut dyn Sink) {
        let parts = &mut self.partitions;
        self.dispatcher
            .dispatch(entry, |p, input| parts[p].handle(input, sink));
    }

    /// People, activations and orders as of the entries fed so far.
    pub fn book(&self) -> &OrderBook {
        self.dispatcher.book()
    }

    /// The activations as of the entries fed so far.
    pub fn directory(&self) -> &Arc<ActivationDirectory> {
        self.dispatcher.directory()
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

    /// Hands the state over to live tasks (after the start-up replay of the log).
    pub fn into_live(self, outputs: mpsc::Sender<OutputBatch>) -> LiveDriver {
        LiveDriver::spawn_from(self.dispatcher, self.partitions, outputs)
    }
}

/// Outputs of one partition step, with the arrival time of the batch that caused each.
pub type OutputBatch = Vec<(Output, Option<TimeMs>)>;

/// Handle to the live pipeline: send committed log entries (in log order) to `input`.
pub struct LiveDriver {
    pub input: mpsc::Sender<Vec<LogEntry>>,
}

impl LiveDriver {
    /// Spawns the dispatcher task and one task per partition. Outputs go to `outputs`.
    pub fn spawn(
        directory: Arc<ActivationDirectory>,
        config: PipelineConfig,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
        outputs: mpsc::Sender<OutputBatch>,
    ) -> Self {
        let mut registration = VecSink::default();
        InlineDriver::new(directory, config, factory, partitions, &mut registration)
            .into_live(outputs)
    }

    /// Runs partitions (with whatever state they already hold) as tasks fed by `dispatcher`.
    fn spawn_from(
        mut dispatcher: Dispatcher,
        partitions: Vec<Partition>,
        outputs: mpsc::Sender<OutputBatch>,
    ) -> Self {
        let count = partitions.len();
        let mut senders = Vec::with_capacity(count);
        for mut partition in partitions {
            let (tx, mut rx) = mpsc::channel::<Vec<PartitionInput>>(64);
            senders.push(tx);
            let outputs = outputs.clone();
            tokio::spawn(async move {
                while let Some(inputs) = rx.recv().await {
                    let mut sink = VecSink::default();
                    let mut arrivals = Vec::new();
                    for input in inputs {
                        if let PartitionInput::Readings {
                            arrival_ms: Some(a),
                            ..
                        } = &input
                        {
                            arrivals.push(*a);
                        }
                        partition.handle(input, &mut sink);
                    }
                    crate::metrics::stage_latency::record(
                        crate::metrics::stage_latency::Stage::RulesRun,
                        arrivals,
                    );
                    if !sink.outputs.is_empty() && outputs.send(sink.outputs).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (input, mut batches) = mpsc::channel::<Vec<LogEntry>>(64);
        tokio::spawn(async move {
            let mut pending: Vec<Vec<PartitionInput>> = (0..count).map(|_| Vec::new()).collect();
            loop {
                for (p, inputs) in pending.iter_mut().enumerate() {
                    if !inputs.is_empty() && senders[p].send(std::mem::take(inputs)).await.is_err()
                    {
                        return;
                    }
                }
                let Some(group) = batches.recv().await else {
                    return;
                };
                for entry in &group {
                    dispatcher.dispatch(entry, |p, input| pending[p].push(input));
                }
                crate::metrics::stage_latency::record(
                    crate::metrics::stage_latency::Stage::Dispatched,
                    group.iter().filter_map(|e| e.batch()).map(|b| b.arrival_ms),
                );
            }
        });
        Self { input }
    }
}
