//! Drives partitions from batches: inline on the caller's thread (replay, tests) or as one tokio
//! task per partition (live). Both go through [`Dispatcher::dispatch`], so they see the same inputs.

use super::dispatcher::Dispatcher;
use super::partition::{Partition, PartitionInput, PartitionStats};
use super::rule::RuleFactory;
use super::sink::{Output, Sink, VecSink};
use super::{ActivationDirectory, DispatchStats, PipelineConfig};
use crate::model::{Batch, TimeMs};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Partitions run on the caller's thread, one input at a time: the reference behaviour.
pub struct InlineDriver {
    dispatcher: Dispatcher,
    partitions: Vec<Partition>,
}

impl InlineDriver {
    pub fn new(
        directory: Arc<ActivationDirectory>,
        config: PipelineConfig,
        factory: Arc<dyn RuleFactory>,
        partitions: usize,
        sink: &mut dyn Sink,
    ) -> Self {
        let partitions: Vec<Partition> = (0..partitions.max(1))
            .map(|_| Partition::new(config, factory.clone()))
            .collect();
        let mut driver = Self {
            dispatcher: Dispatcher::new(directory, partitions.len(), config.max_future_ms),
            partitions,
        };
        let parts = &mut driver.partitions;
        driver
            .dispatcher
            .register_all(|p, input| parts[p].handle(input, sink));
        driver
    }

    pub fn feed(&mut self, batch: &Arc<Batch>, sink: &mut dyn Sink) {
        let parts = &mut self.partitions;
        self.dispatcher
            .dispatch(batch, |p, input| parts[p].handle(input, sink));
    }

    pub fn dispatch_stats(&self) -> DispatchStats {
        self.dispatcher.stats()
    }

    pub fn partition_stats(&self) -> Vec<PartitionStats> {
        self.partitions.iter().map(Partition::stats).collect()
    }
}

/// Outputs of one partition step, with the arrival time of the batch that caused each.
pub type OutputBatch = Vec<(Output, Option<TimeMs>)>;

/// Handle to the live pipeline: send committed batches (in log order) to `input`.
pub struct LiveDriver {
    pub input: mpsc::Sender<Vec<Arc<Batch>>>,
}

impl LiveDriver {
    /// Spawns the dispatcher task and one task per partition. Outputs go to `outputs`.
    pub fn spawn(
        directory: Arc<ActivationDirectory>,
        config: PipelineConfig,
        factory: Arc<dyn RuleFactory>,
        partitions: usize,
        outputs: mpsc::Sender<OutputBatch>,
    ) -> Self {
        let partitions = partitions.max(1);
        let mut senders = Vec::with_capacity(partitions);
        for _ in 0..partitions {
            let (tx, mut rx) = mpsc::channel::<Vec<PartitionInput>>(64);
            senders.push(tx);
            let mut partition = Partition::new(config, factory.clone());
            let outputs = outputs.clone();
            tokio::spawn(async move {
                while let Some(inputs) = rx.recv().await {
                    let mut sink = VecSink::default();
                    for input in inputs {
                        partition.handle(input, &mut sink);
                    }
                    if !sink.outputs.is_empty() && outputs.send(sink.outputs).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (input, mut batches) = mpsc::channel::<Vec<Arc<Batch>>>(64);
        let mut dispatcher = Dispatcher::new(directory, partitions, config.max_future_ms);
        tokio::spawn(async move {
            let mut pending: Vec<Vec<PartitionInput>> = vec![Vec::new(); partitions];
            dispatcher.register_all(|p, input| pending[p].push(input));
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
                for batch in &group {
                    dispatcher.dispatch(batch, |p, input| pending[p].push(input));
                }
            }
        });
        Self { input }
    }
}
