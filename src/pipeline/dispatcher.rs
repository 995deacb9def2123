//! The dispatcher: the single point where log order becomes partition inputs.
//!
//! For each batch, in log order, it asks the event-time clock ([`EventClock`]) what each reading
//! is (fed to the rules, `clock_ahead`, too old), resolves every reading to its activation, hands
//! each activation's readings to that activation's partition, and then tells every partition when
//! the clock advanced. Live and replay both drive partitions through this one function, so both
//! see exactly the same input sequence; the clock is computed here, from the log alone, so it
//! does not depend on how many partitions there are.

use super::clock::{EventClock, PipelineGauges, Verdict};
use super::directory::ActivationDirectory;
use super::partition::{PartitionInput, ReadingSlice};
use super::rule::ActivationInfo;
use super::PipelineConfig;
use crate::model::{Batch, Reading, TimeMs};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Counters for `/metrics`, `inspect` and replay summaries.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct DispatchStats {
    pub batches: u64,
    pub readings: u64,
    /// Readings whose tag had no activation covering their event time (and not before its first).
    pub unassigned: u64,
    /// Readings dated before their tag's first activation: stored, not fed to rules.
    pub before_activation: u64,
    /// Readings flagged `clock_ahead` (too far ahead of the clock or of their arrival): held out
    /// of the rules until the clock catches up.
    pub clock_ahead: u64,
    /// Of `clock_ahead`: more than `max_future_ms` ahead of their batch's arrival.
    pub future_readings: u64,
    /// Readings older than the clock minus `late_horizon_ms`: stored, not fed to rules.
    pub too_old: u64,
    /// The event-time clock (`null` before any reading).
    pub clock_ms: Option<TimeMs>,
}

pub struct Dispatcher {
    directory: Arc<ActivationDirectory>,
    partitions: usize,
    clock: EventClock,
    verdicts: Vec<Verdict>,
    stats: DispatchStats,
    gauges: Arc<PipelineGauges>,
}

/// One activation's share of a batch that is not handed over whole.
struct Group {
    activation: Arc<ActivationInfo>,
    admitted: Vec<Reading>,
    ahead: Vec<Reading>,
    ahead_count: u32,
}

impl Dispatcher {
    pub fn new(
        directory: Arc<ActivationDirectory>,
        partitions: usize,
        config: PipelineConfig,
    ) -> Self {
        Self {
            directory,
            partitions: partitions.max(1),
            clock: EventClock::new(config),
            verdicts: Vec::new(),
            stats: DispatchStats::default(),
            gauges: Arc::new(PipelineGauges::default()),
        }
    }

    pub fn stats(&self) -> DispatchStats {
        DispatchStats {
            clock_ms: self.clock.clock_ms(),
            ..self.stats
        }
    }

    /// The gauges this dispatcher (and the partitions given them) keep up to date.
    pub fn gauges(&self) -> Arc<PipelineGauges> {
        self.gauges.clone()
    }

    /// The event-time clock (`TimeMs::MIN` before any reading).
    pub fn clock_ms(&self) -> TimeMs {
        self.clock.clock_ms().unwrap_or(TimeMs::MIN)
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
        let outcome = self.clock.observe(batch, &mut self.verdicts);
        self.stats.clock_ahead += u64::from(outcome.ahead);
        self.stats.future_readings += u64::from(outcome.ahead_of_arrival);
        self.stats.too_old += u64::from(outcome.too_old);
        let contact_ms = outcome.contact_ms.unwrap_or(TimeMs::MIN);
        let all_admitted = outcome.ahead == 0 && outcome.too_old == 0;

        // Common case: everything admitted and one activation covers the whole batch, handed
        // over without copying.
        let single = if all_admitted {
            batch
                .readings
                .first()
                .and_then(|r| self.directory.resolve(&batch.tag, r.t_ms))
                .filter(|a| batch.readings.iter().all(|r| a.covers(r.t_ms)))
                .cloned()
        } else {
            None
        };
        if let Some(activation) = single {
            deliver(
                self.partition_of(&activation.id),
                PartitionInput::Readings {
                    activation,
                    readings: ReadingSlice::Whole(batch.clone()),
                    ahead: Vec::new(),
                    ahead_count: 0,
                    arrival_ms,
                    contact_ms,
                },
            );
        } else {
            let mut groups: Vec<Group> = Vec::new();
            for (r, verdict) in batch.readings.iter().zip(&self.verdicts) {
                let resolved = self.directory.resolve(&batch.tag, r.t_ms);
                let owner = match (verdict, resolved) {
                    (Verdict::TooOld, _) => continue,
                    (_, Some(a)) => a,
                    // An ahead reading outside every activation still tells the activation the
                    // tag is in now that its clock is wrong.
                    (Verdict::Ahead, None) => {
                        self.stats.unassigned += 1;
                        match self.directory.resolve(&batch.tag, contact_ms) {
                            Some(a) => a,
                            None => continue,
                        }
                    }
                    (Verdict::Admit, None) => {
                        if self
                            .directory
                            .first_from_ms(&batch.tag)
                            .is_some_and(|from| r.t_ms < from)
                        {
                            self.stats.before_activation += 1;
                        } else {
                            self.stats.unassigned += 1;
                        }
                        continue;
                    }
                };
                let i = match groups
                    .iter()
                    .position(|g| Arc::ptr_eq(&g.activation, owner))
                {
                    Some(i) => i,
                    None => {
                        groups.push(Group {
                            activation: owner.clone(),
                            admitted: Vec::new(),
                            ahead: Vec::new(),
                            ahead_count: 0,
                        });
                        groups.len() - 1
                    }
                };
                let group = &mut groups[i];
                match verdict {
                    Verdict::Admit => group.admitted.push(*r),
                    _ => {
                        group.ahead_count += 1;
                        if resolved.is_some() {
                            group.ahead.push(*r);
                        }
                    }
                }
            }
            // A batch of only too-old readings still tells the activation the tag is in contact.
            if groups.is_empty() && outcome.too_old > 0 {
                if let Some(a) = self.directory.resolve(&batch.tag, contact_ms) {
                    groups.push(Group {
                        activation: a.clone(),
                        admitted: Vec::new(),
                        ahead: Vec::new(),
                        ahead_count: 0,
                    });
                }
            }
            for g in groups {
                deliver(
                    self.partition_of(&g.activation.id),
                    PartitionInput::Readings {
                        activation: g.activation,
                        readings: ReadingSlice::Part(g.admitted),
                        ahead: g.ahead,
                        ahead_count: g.ahead_count,
                        arrival_ms,
                        contact_ms,
                    },
                );
            }
        }

        if let Some(clock_ms) = outcome.advanced_to_ms {
            for p in 0..self.partitions {
                deliver(p, PartitionInput::Clock(clock_ms));
            }
        }
        self.publish();
    }

    /// The input has ended: brings the clock up to date with the last batch (it is otherwise
    /// recomputed on a cadence) and tells every partition if that advanced it.
    pub fn catch_up(&mut self, mut deliver: impl FnMut(usize, PartitionInput)) {
        if let Some(clock_ms) = self.clock.catch_up() {
            for p in 0..self.partitions {
                deliver(p, PartitionInput::Clock(clock_ms));
            }
        }
        self.publish();
    }

    /// Advances the clock to `t_ms` with no reading behind it (`replay --until`), telling every
    /// partition as a live advance does. Does nothing if the clock is already there.
    pub fn advance_clock(&mut self, t_ms: TimeMs, mut deliver: impl FnMut(usize, PartitionInput)) {
        if self.clock.advance_to(t_ms) {
            for p in 0..self.partitions {
                deliver(p, PartitionInput::Clock(t_ms));
            }
        }
        self.publish();
    }

    /// The input is complete through the clock (`replay --final`): tells every partition to
    /// take every decision the input allows (see [`PartitionInput::Final`]). Returns the clock
    /// used, `None` when no reading ever set one.
    pub fn finish(&mut self, mut deliver: impl FnMut(usize, PartitionInput)) -> Option<TimeMs> {
        self.catch_up(&mut deliver);
        let end_ms = self.clock.clock_ms()?;
        for p in 0..self.partitions {
            deliver(p, PartitionInput::Final(end_ms));
        }
        Some(end_ms)
    }

    fn publish(&self) {
        let g = &self.gauges;
        let s = &self.stats;
        g.clock_ms.store(self.clock_ms().max(0), Ordering::Relaxed);
        g.clock_ahead_readings
            .store(s.clock_ahead, Ordering::Relaxed);
        g.too_old_readings.store(s.too_old, Ordering::Relaxed);
        g.before_activation_readings
            .store(s.before_activation, Ordering::Relaxed);
        g.unassigned_readings.store(s.unassigned, Ordering::Relaxed);
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
