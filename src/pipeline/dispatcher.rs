//! The dispatcher: the single point where log order becomes partition inputs.
//!
//! For each batch, in log order, it resolves every reading to its activation, hands each
//! activation's readings to that activation's partition, and then advances the event-time clock
//! (the greatest event time in the log so far) on every partition. Live and replay both drive
//! partitions through this one function, so both see exactly the same input sequence.

use super::directory::ActivationDirectory;
use super::partition::{PartitionInput, ReadingSlice};
use super::rule::ActivationInfo;
use crate::model::{Batch, Reading, TimeMs};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// Counters for `/metrics` and `inspect`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DispatchStats {
    pub batches: u64,
    pub readings: u64,
    /// Readings whose tag had no activation covering their event time.
    pub unassigned: u64,
    /// Readings too far ahead of their arrival to move the clock.
    pub future_readings: u64,
}

pub struct Dispatcher {
    directory: Arc<ActivationDirectory>,
    partitions: usize,
    clock_ms: TimeMs,
    max_future_ms: TimeMs,
    stats: DispatchStats,
}

impl Dispatcher {
    pub fn new(
        directory: Arc<ActivationDirectory>,
        partitions: usize,
        max_future_ms: TimeMs,
    ) -> Self {
        Self {
            directory,
            partitions: partitions.max(1),
            clock_ms: TimeMs::MIN,
            max_future_ms,
            stats: DispatchStats::default(),
        }
    }

    pub fn stats(&self) -> DispatchStats {
        self.stats
    }

    pub fn clock_ms(&self) -> TimeMs {
        self.clock_ms
    }

    /// Which partition owns an activation (stable for a given partition count).
    pub fn partition_of(&self, activation_id: &str) -> usize {
        let mut h = DefaultHasher::new();
        activation_id.hash(&mut h);
        (h.finish() % self.partitions as u64) as usize
    }

    /// Routes one batch; `deliver(partition, input)` is called in the order inputs must be applied.
    pub fn dispatch(&mut self, batch: &Arc<Batch>, mut deliver: impl FnMut(usize, PartitionInput)) {
        self.stats.batches += 1;
        self.stats.readings += batch.readings.len() as u64;
        let arrival_ms = (batch.arrival_ms > 0).then_some(batch.arrival_ms);

        let mut batch_max_ms = self.clock_ms;
        for r in &batch.readings {
            if arrival_ms.is_some_and(|a| r.t_ms > a + self.max_future_ms) {
                self.stats.future_readings += 1;
            } else {
                batch_max_ms = batch_max_ms.max(r.t_ms);
            }
        }
        let contact_ms = batch_max_ms;

        // Common case: one activation covers the whole batch, handed over without copying.
        let first = batch
            .readings
            .first()
            .and_then(|r| self.directory.resolve(&batch.tag, r.t_ms))
            .cloned();
        let single = first
            .as_ref()
            .filter(|a| batch.readings.iter().all(|r| a.covers(r.t_ms)));
        if let Some(activation) = single {
            deliver(
                self.partition_of(&activation.id),
                PartitionInput::Readings {
                    activation: activation.clone(),
                    readings: ReadingSlice::Whole(batch.clone()),
                    arrival_ms,
                    contact_ms,
                },
            );
        } else {
            let mut groups: Vec<(Arc<ActivationInfo>, Vec<Reading>)> = Vec::new();
            for r in &batch.readings {
                match self.directory.resolve(&batch.tag, r.t_ms) {
                    Some(a) => match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, a)) {
                        Some((_, list)) => list.push(*r),
                        None => groups.push((a.clone(), vec![*r])),
                    },
                    None => self.stats.unassigned += 1,
                }
            }
            for (activation, readings) in groups {
                deliver(
                    self.partition_of(&activation.id),
                    PartitionInput::Readings {
                        activation,
                        readings: ReadingSlice::Part(readings),
                        arrival_ms,
                        contact_ms,
                    },
                );
            }
        }

        if contact_ms > self.clock_ms {
            self.clock_ms = contact_ms;
            for p in 0..self.partitions {
                deliver(p, PartitionInput::Clock(contact_ms));
            }
        }
    }

    /// Registers every known activation with its partition, so that activations that never
    /// report are still watched (no contact).
    pub fn register_all(&self, mut deliver: impl FnMut(usize, PartitionInput)) {
        for a in self.directory.all() {
            deliver(
                self.partition_of(&a.id),
                PartitionInput::Register(a.clone()),
            );
        }
    }
}
