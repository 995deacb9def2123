//! A partition: the state of many activations, owned by exactly one task (or, in replay, by the
//! replay loop). No locks: everything an activation's rules touch lives here.
//!
//! Inputs arrive in log order: slices of a batch for one activation, and clock advances. Each
//! activation's readings pass through its reorder buffer, then through its rules; activations
//! with something to do at a future event time sit in a deadline heap, so a clock advance costs
//! only the activations that are due, not every activation.

use super::reorder::{Admission, ReorderBuffer};
use super::rule::{ActivationInfo, Rule, RuleContext, RuleFactory};
use super::sink::Sink;
use super::PipelineConfig;
use crate::model::{Batch, Reading, TimeMs};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

/// Readings for one activation out of one batch: the whole batch (the common case, no copy)
/// or the part of it that fell inside this activation.
#[derive(Debug, Clone)]
pub enum ReadingSlice {
    Whole(Arc<Batch>),
    Part(Vec<Reading>),
}

impl ReadingSlice {
    pub fn readings(&self) -> &[Reading] {
        match self {
            ReadingSlice::Whole(batch) => &batch.readings,
            ReadingSlice::Part(readings) => readings,
        }
    }
}

/// What a partition is told, in log order.
#[derive(Debug, Clone)]
pub enum PartitionInput {
    Readings {
        activation: Arc<ActivationInfo>,
        readings: ReadingSlice,
        arrival_ms: Option<TimeMs>,
        /// The event-time clock once this batch is counted: when, in event time, the tag was
        /// last heard from (a tag uploading an old backlog is in contact now, not back then).
        contact_ms: TimeMs,
    },
    /// The event-time clock (greatest event time in the log so far) advanced.
    Clock(TimeMs),
    /// Start watching an activation before any of its readings arrive.
    Register(Arc<ActivationInfo>),
}

struct ActivationState {
    info: Arc<ActivationInfo>,
    buffer: ReorderBuffer,
    rules: Vec<Box<dyn Rule>>,
    /// The deadline currently in the heap for this activation (entries that differ are stale).
    scheduled_ms: Option<TimeMs>,
}

/// Counters for `/metrics` and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartitionStats {
    pub readings: u64,
    pub late_readings: u64,
    pub activations: u64,
}

/// The per-partition state machine.
pub struct Partition {
    config: PipelineConfig,
    factory: Arc<dyn RuleFactory>,
    slots: Vec<ActivationState>,
    slot_by_id: HashMap<String, usize>,
    deadlines: BinaryHeap<Reverse<(TimeMs, usize)>>,
    clock_ms: TimeMs,
    stats: PartitionStats,
}

impl Partition {
    pub fn new(config: PipelineConfig, factory: Arc<dyn RuleFactory>) -> Self {
        Self {
            config,
            factory,
            slots: Vec::new(),
            slot_by_id: HashMap::new(),
            deadlines: BinaryHeap::new(),
            clock_ms: TimeMs::MIN,
            stats: PartitionStats::default(),
        }
    }

    pub fn stats(&self) -> PartitionStats {
        self.stats
    }

    pub fn handle(&mut self, input: PartitionInput, sink: &mut dyn Sink) {
        match input {
            PartitionInput::Readings {
                activation,
                readings,
                arrival_ms,
                contact_ms,
            } => self.on_readings(
                activation,
                readings.readings(),
                arrival_ms,
                contact_ms,
                sink,
            ),
            PartitionInput::Clock(clock_ms) => self.on_clock(clock_ms, sink),
            PartitionInput::Register(info) => {
                let slot = self.slot_for(&info);
                self.reschedule(slot);
            }
        }
    }

    fn slot_for(&mut self, info: &Arc<ActivationInfo>) -> usize {
        if let Some(&slot) = self.slot_by_id.get(&info.id) {
            return slot;
        }
        let slot = self.slots.len();
        self.slots.push(ActivationState {
            info: info.clone(),
            buffer: ReorderBuffer::default(),
            rules: self.factory.rules_for(info),
            scheduled_ms: None,
        });
        self.slot_by_id.insert(info.id.clone(), slot);
        self.stats.activations += 1;
        slot
    }

    fn on_readings(
        &mut self,
        info: Arc<ActivationInfo>,
        readings: &[Reading],
        arrival_ms: Option<TimeMs>,
        contact_ms: TimeMs,
        sink: &mut dyn Sink,
    ) {
        let slot = self.slot_for(&info);
        let state = &mut self.slots[slot];
        self.stats.readings += readings.len() as u64;
        for reading in readings {
            if state.buffer.admit(*reading) == Admission::Late {
                self.stats.late_readings += 1;
                let mut ctx = RuleContext::new(&state.info, sink, arrival_ms);
                for rule in &mut state.rules {
                    rule.on_reading(&mut ctx, reading, true);
                }
            }
        }
        if let Some(max_seen) = state.buffer.max_seen_ms() {
            release(state, max_seen - self.config.reorder_ms, arrival_ms, sink);
        }
        let mut ctx = RuleContext::new(&state.info, sink, arrival_ms);
        for rule in &mut state.rules {
            rule.on_contact(&mut ctx, contact_ms);
        }
        // The activation's own readings may have passed deadlines the global clock has too.
        if state
            .rules
            .iter()
            .any(|r| r.next_deadline().is_some_and(|d| d <= self.clock_ms))
        {
            fire_due(
                state,
                self.clock_ms,
                self.config.reorder_ms,
                arrival_ms,
                sink,
            );
        }
        self.reschedule(slot);
    }

    fn on_clock(&mut self, clock_ms: TimeMs, sink: &mut dyn Sink) {
        if clock_ms <= self.clock_ms {
            return;
        }
        self.clock_ms = clock_ms;
        while let Some(&Reverse((due_ms, slot))) = self.deadlines.peek() {
            if due_ms > clock_ms {
                break;
            }
            self.deadlines.pop();
            if self.slots[slot].scheduled_ms != Some(due_ms) {
                continue; // stale entry
            }
            self.slots[slot].scheduled_ms = None;
            fire_due(
                &mut self.slots[slot],
                clock_ms,
                self.config.reorder_ms,
                None,
                sink,
            );
            self.reschedule(slot);
        }
    }

    fn reschedule(&mut self, slot: usize) {
        let state = &mut self.slots[slot];
        let flush = state
            .buffer
            .oldest_pending_ms()
            .map(|t| t + self.config.reorder_ms);
        let rules = state.rules.iter().filter_map(|r| r.next_deadline()).min();
        let next = match (flush, rules) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != state.scheduled_ms {
            state.scheduled_ms = next;
            if let Some(due) = next {
                self.deadlines.push(Reverse((due, slot)));
            }
        }
    }
}

/// Releases buffered readings up to `up_to_ms` through the rules, in event-time order.
fn release(
    state: &mut ActivationState,
    up_to_ms: TimeMs,
    arrival_ms: Option<TimeMs>,
    sink: &mut dyn Sink,
) {
    let ActivationState {
        info,
        buffer,
        rules,
        ..
    } = state;
    let mut ctx = RuleContext::new(info, sink, arrival_ms);
    buffer.release(up_to_ms, |reading| {
        for rule in rules.iter_mut() {
            rule.on_reading(&mut ctx, &reading, false);
        }
    });
}

/// The clock reached `clock_ms`: flush what the reorder window lets go, then run due rules.
fn fire_due(
    state: &mut ActivationState,
    clock_ms: TimeMs,
    reorder_ms: TimeMs,
    arrival_ms: Option<TimeMs>,
    sink: &mut dyn Sink,
) {
    release(state, clock_ms - reorder_ms, arrival_ms, sink);
    let mut ctx = RuleContext::new(&state.info, sink, arrival_ms);
    for rule in &mut state.rules {
        if rule.next_deadline().is_some_and(|d| d <= clock_ms) {
            rule.on_clock(&mut ctx, clock_ms);
        }
    }
}
