//! A partition: the state of many activations, owned by exactly one task (or, in replay, by the
//! replay loop). No locks: everything an activation's rules touch lives here.
//!
//! Inputs arrive in log order: slices of a batch for one activation, and clock advances. Each
//! activation's readings pass through its reorder buffer, then through its rules; activations
//! with something to do at a future event time sit in a deadline heap, so a clock advance costs
//! only the activations that are due, not every activation.
//!
//! Each activation keeps a tape of its inputs, encoded (bounded by
//! [`PipelineConfig::amend_horizon_ms`], [`PipelineConfig::amend_max_readings`] and
//! [`PipelineConfig::amend_max_bytes`]):
//! when a control record changes what its rules are made of (an order variation, a corrected
//! address, an activation ended), the dispatcher sends [`PartitionInput::Reconfigure`] and the
//! activation's new rules re-run the tape. Outputs that no longer hold are re-issued as
//! withdrawn (naming the change), new ones are marked as raised by it; see
//! [`super::amendment`].
//!
//! Readings the dispatcher flagged `clock_ahead` are not fed to the rules: the activation holds
//! them (at most `max_held_per_activation`) and releases them, as ordinary readings, once the
//! event-time clock is within `max_skew_ms` of them; meanwhile the activation has one open
//! `device_clock` alert, closed by the next batch whose readings are all within bound.

use super::amendment::{OutputMemory, Tape, TapeEntry, TapeInput, TapeLimits};
use super::clock::PipelineGauges;
use super::reorder::{Admission, ReorderBuffer};
use super::rule::{ActivationInfo, Rule, RuleContext, RuleSet};
use super::sink::{Sink, VecSink};
use super::PipelineConfig;
use crate::model::{alert_id, Alert, AlertType, Batch, Reading, TimeMs};
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
#[derive(Debug)]
pub enum PartitionInput {
    Readings {
        activation: Arc<ActivationInfo>,
        /// The readings fed to the rules.
        readings: ReadingSlice,
        /// Readings flagged `clock_ahead` that belong to this activation: held until the clock
        /// catches up.
        ahead: Vec<Reading>,
        /// How many readings of this batch were `clock_ahead` for this activation (including
        /// ones outside every activation, which cannot be held).
        ahead_count: u32,
        arrival_ms: Option<TimeMs>,
        /// The event-time clock once this batch is counted: when, in event time, the tag was
        /// last heard from (a tag uploading an old backlog is in contact now, not back then).
        /// `TimeMs::MIN` when nothing is known yet.
        contact_ms: TimeMs,
    },
    /// Clock partition `group`'s event-time clock (see [`super::clock`]) advanced: only its
    /// activations are told.
    Clock { group: usize, clock_ms: TimeMs },
    /// Start watching an activation, with its rules, before any of its readings arrive.
    Register {
        activation: Arc<ActivationInfo>,
        rules: RuleSet,
    },
    /// The activation was purged: its state leaves memory.
    Retire(String),
    /// What the activation's rules are made of changed (log record `record`): its new rules
    /// re-run its tape, and outputs that differ are re-issued (see [`super::amendment`]). Also
    /// registers an activation not seen before.
    Reconfigure {
        activation: Arc<ActivationInfo>,
        rules: RuleSet,
        record: u64,
        reason: Arc<str>,
    },
    /// No more input: each clock partition is complete through its event time here (`None`:
    /// it never had a clock; `replay --final`). Every activation releases its reorder buffer
    /// and each rule takes, deadline by deadline, every decision due by its
    /// [`Rule::final_horizon_ms`]; held `clock_ahead` readings stay held.
    Final(Arc<[Option<TimeMs>]>),
}

struct ActivationState {
    info: Arc<ActivationInfo>,
    /// The clock partition of the activation's tag: the clock it follows.
    group: usize,
    buffer: ReorderBuffer,
    rules: Vec<Box<dyn Rule>>,
    /// The deadline currently in the heap for this activation (entries that differ are stale).
    scheduled_ms: Option<TimeMs>,
    /// `clock_ahead` readings waiting for the clock, in arrival order.
    held: Vec<Reading>,
    /// The open `device_clock` alert, if any.
    device_clock: Option<Alert>,
    /// Inputs since the activation started (bounded), for re-evaluation after a change.
    tape: Tape,
}

impl ActivationState {
    fn new(
        info: Arc<ActivationInfo>,
        group: usize,
        rules: RuleSet,
        tape_limits: TapeLimits,
    ) -> Self {
        Self {
            info,
            group,
            buffer: ReorderBuffer::default(),
            rules: rules.into_rules(),
            scheduled_ms: None,
            held: Vec::new(),
            device_clock: None,
            tape: Tape::new(tape_limits),
        }
    }
}

/// Counters for `/metrics` and benchmarks.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PartitionStats {
    pub readings: u64,
    pub late_readings: u64,
    pub activations: u64,
    /// `clock_ahead` readings held now.
    pub held_readings: u64,
    /// `clock_ahead` readings released to the rules once the clock caught up.
    pub released_readings: u64,
    /// `clock_ahead` readings beyond the hold bound: left out of the rules (still in the log).
    pub held_dropped: u64,
    /// Re-evaluations after a change to an activation's orders or period.
    pub reconfigurations: u64,
}

/// The per-partition state machine.
pub struct Partition {
    config: PipelineConfig,
    /// Every output's last state, per activation, for re-evaluation after a change.
    memory: OutputMemory,
    slots: Vec<ActivationState>,
    slot_by_id: HashMap<String, usize>,
    /// Per clock partition: its clock and its activations' deadlines.
    groups: Vec<ClockGroup>,
    stats: PartitionStats,
    gauges: Option<Arc<PipelineGauges>>,
}

/// One clock partition's clock as this partition has been told it, and the deadline heap of
/// its activations here (so a clock advance costs only the activations due).
struct ClockGroup {
    clock_ms: TimeMs,
    deadlines: BinaryHeap<Reverse<(TimeMs, usize)>>,
}

impl ClockGroup {
    fn new() -> Self {
        Self {
            clock_ms: TimeMs::MIN,
            deadlines: BinaryHeap::new(),
        }
    }
}

/// Version of the device-clock check, recorded on its alerts.
pub const DEVICE_CLOCK_RULE_VERSION: &str = "clock/1";
/// At most this many readings are kept as a device-clock alert's evidence.
const DEVICE_CLOCK_EVIDENCE: usize = 16;

impl Partition {
    pub fn new(config: PipelineConfig) -> Self {
        Self {
            config,
            memory: OutputMemory::default(),
            slots: Vec::new(),
            slot_by_id: HashMap::new(),
            groups: (0..config.clock_partitions.max(1))
                .map(|_| ClockGroup::new())
                .collect(),
            stats: PartitionStats::default(),
            gauges: None,
        }
    }

    /// Reports held-reading counters into `gauges` (for `/metrics`).
    pub fn with_gauges(mut self, gauges: Arc<PipelineGauges>) -> Self {
        self.gauges = Some(gauges);
        self
    }

    pub fn stats(&self) -> PartitionStats {
        self.stats
    }

    pub fn handle(&mut self, input: PartitionInput, sink: &mut dyn Sink) {
        if let PartitionInput::Reconfigure {
            activation,
            rules,
            record,
            reason,
        } = input
        {
            // Remembers what it re-issues itself.
            return self.reconfigure(activation, rules, record, &reason, sink);
        }
        // Every output is remembered per activation on its way out (see `OutputMemory`).
        let mut memory = std::mem::take(&mut self.memory);
        self.handle_recorded(input, &mut memory.recorder(sink));
        self.memory = memory;
    }

    fn handle_recorded(&mut self, input: PartitionInput, sink: &mut dyn Sink) {
        match input {
            PartitionInput::Readings {
                activation,
                readings,
                ahead,
                ahead_count,
                arrival_ms,
                contact_ms,
            } => {
                let slot = self.slot_for(&activation);
                let clock_ms = self.clock_of(slot);
                self.slots[slot].tape.push(TapeInput::Readings {
                    clock_ms,
                    readings: readings.readings(),
                    ahead: &ahead,
                    ahead_count,
                    contact_ms,
                });
                self.on_readings(
                    activation,
                    readings.readings(),
                    Ahead {
                        readings: ahead,
                        count: ahead_count,
                    },
                    arrival_ms,
                    contact_ms,
                    sink,
                )
            }
            PartitionInput::Clock { group, clock_ms } => self.on_clock(group, clock_ms, sink),
            PartitionInput::Register { activation, rules } => {
                let slot = self.slot_with(&activation, rules);
                self.reschedule(slot);
            }
            PartitionInput::Retire(id) => self.retire(&id, sink),
            PartitionInput::Reconfigure { .. } => {
                unreachable!("handled in `handle` (it needs the output memory)")
            }
            PartitionInput::Final(ends_ms) => self.finish(&ends_ms, sink),
        }
    }

    /// The earliest pending deadline of clock partition `group`'s activations here (possibly a
    /// stale entry, which a clock advance to it simply discards).
    pub fn next_deadline_ms(&self, group: usize) -> Option<TimeMs> {
        let heap = &self.groups.get(group)?.deadlines;
        heap.peek().map(|Reverse((due_ms, _))| *due_ms)
    }

    /// The clock an activation's slot follows (its clock partition's).
    fn clock_of(&self, slot: usize) -> TimeMs {
        self.groups[self.slots[slot].group].clock_ms
    }

    /// The clock partition of an activation: its tag's.
    fn group_of(&self, info: &ActivationInfo) -> usize {
        super::dispatcher::clock_partition_of(&info.tag, self.groups.len())
    }

    /// See [`PartitionInput::Final`]. Each rule steps through its own deadlines (as if the clock
    /// had reached each in turn) up to its own horizon, so a rule that waits for late data
    /// settles what ended within the input while no-contact is not raised by the input ending.
    fn finish(&mut self, ends_ms: &[Option<TimeMs>], sink: &mut dyn Sink) {
        for slot in 0..self.slots.len() {
            let state = &mut self.slots[slot];
            // A clock partition that never had a clock has nothing to settle.
            let Some(end_ms) = ends_ms.get(state.group).copied().flatten() else {
                continue;
            };
            // Nothing can arrive to be put in order before the buffered readings.
            release(state, TimeMs::MAX, None, sink);
            let mut ctx = RuleContext::new(&state.info, sink, None);
            for rule in &mut state.rules {
                let horizon_ms = rule.final_horizon_ms(end_ms);
                while let Some(due_ms) = rule.next_deadline().filter(|d| *d <= horizon_ms) {
                    rule.on_clock(&mut ctx, due_ms);
                    // A rule that did nothing at its own deadline would loop for ever.
                    if rule.next_deadline().is_some_and(|d| d <= due_ms) {
                        tracing::warn!(
                            activation = %state.info.id,
                            rule = rule.name(),
                            due_ms,
                            "rule deadline did not advance when settling the input's end"
                        );
                        break;
                    }
                }
            }
            self.reschedule(slot);
        }
    }

    /// Drops a purged activation's state (its slot stays, empty, so slot numbers in the deadline
    /// heap stay valid; a stale deadline finds nothing to do).
    fn retire(&mut self, id: &str, sink: &mut dyn Sink) {
        let Some(slot) = self.slot_by_id.remove(id) else {
            return;
        };
        let state = &mut self.slots[slot];
        self.stats.held_readings -= state.held.len() as u64;
        state.rules = Vec::new();
        state.held = Vec::new();
        state.tape = Tape::default();
        state.buffer = ReorderBuffer::default();
        state.device_clock = None;
        state.scheduled_ms = None;
        self.memory.forget(id);
        self.stats.activations = self.stats.activations.saturating_sub(1);
        sink.emit(
            crate::pipeline::Output::Purged {
                activation: id.to_string(),
            },
            None,
        );
    }

    /// The slot of an activation, registered with `rules` if it is new.
    fn slot_with(&mut self, info: &Arc<ActivationInfo>, rules: RuleSet) -> usize {
        if let Some(&slot) = self.slot_by_id.get(&info.id) {
            return slot;
        }
        let slot = self.slots.len();
        let state = ActivationState::new(
            info.clone(),
            self.group_of(info),
            rules,
            self.config.tape_limits(),
        );
        self.slots.push(state);
        self.slot_by_id.insert(info.id.clone(), slot);
        self.stats.activations += 1;
        slot
    }

    /// The slot of an activation the dispatcher registered (an unregistered one, which the
    /// dispatcher never sends, would be watched by no rule).
    fn slot_for(&mut self, info: &Arc<ActivationInfo>) -> usize {
        self.slot_with(info, RuleSet::default())
    }

    /// Replaces an activation's rules and re-runs its tape through them (see the module doc).
    fn reconfigure(
        &mut self,
        info: Arc<ActivationInfo>,
        rules: RuleSet,
        record: u64,
        reason: &str,
        sink: &mut dyn Sink,
    ) {
        self.stats.reconfigurations += 1;
        let Some(&slot) = self.slot_by_id.get(&info.id) else {
            let slot = self.slot_with(&info, rules);
            self.reschedule(slot);
            return;
        };
        // A scratch partition of this one activation re-runs the tape with the new rules; its
        // state then replaces the old one.
        let tape = std::mem::take(&mut self.slots[slot].tape);
        let mut scratch = Partition::new(self.config);
        let mut fresh = VecSink::default();
        let scratch_slot = scratch.slot_with(&info, rules);
        let group = scratch.slots[scratch_slot].group;
        for entry in tape.entries() {
            // Only a damaged snapshot could hold unreadable bytes (restore decodes every tape).
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::error!(activation = %info.id, %error, "amendment tape unreadable: its re-run stops there");
                    break;
                }
            };
            match entry {
                TapeEntry::Readings {
                    clock_ms,
                    mut readings,
                    ahead,
                    ahead_count,
                    contact_ms,
                } => {
                    scratch.on_clock(group, clock_ms, &mut fresh);
                    readings.retain(|r| info.covers(r.t_ms));
                    scratch.on_readings(
                        info.clone(),
                        &readings,
                        Ahead {
                            readings: ahead,
                            count: ahead_count,
                        },
                        None,
                        contact_ms,
                        &mut fresh,
                    );
                }
                TapeEntry::Clock(clock_ms) => scratch.on_clock(group, clock_ms, &mut fresh),
            }
        }
        scratch.on_clock(group, self.clock_of(slot), &mut fresh);
        let mut state = scratch.slots.swap_remove(scratch_slot);
        state.tape = tape;
        state.info = info.clone();
        state.scheduled_ms = None;
        self.stats.held_readings -= self.slots[slot].held.len() as u64;
        self.stats.held_readings += state.held.len() as u64;
        self.slots[slot] = state;
        self.reschedule(slot);
        let outputs: Vec<_> = fresh.outputs.into_iter().map(|(o, _)| o).collect();
        self.memory.amend(
            &info.id,
            outputs,
            self.slots[slot].tape.complete_from_ms(),
            record,
            reason,
            sink,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_readings(
        &mut self,
        info: Arc<ActivationInfo>,
        readings: &[Reading],
        ahead: Ahead,
        arrival_ms: Option<TimeMs>,
        contact_ms: TimeMs,
        sink: &mut dyn Sink,
    ) {
        let slot = self.slot_for(&info);
        self.stats.readings += readings.len() as u64;
        if ahead.count > 0 {
            self.hold(slot, ahead.readings, contact_ms, arrival_ms, sink);
        } else if !readings.is_empty() {
            close_device_clock(&mut self.slots[slot], contact_ms, arrival_ms, sink);
        }
        self.stats.late_readings += admit(&mut self.slots[slot], readings, arrival_ms, sink);
        let state = &mut self.slots[slot];
        if let Some(max_seen) = state.buffer.max_seen_ms() {
            release(state, max_seen - self.config.reorder_ms, arrival_ms, sink);
        }
        if contact_ms > TimeMs::MIN {
            let mut ctx = RuleContext::new(&state.info, sink, arrival_ms);
            for rule in &mut state.rules {
                rule.on_contact(&mut ctx, contact_ms);
            }
        }
        // The activation's own readings may have passed deadlines its clock has too.
        let clock_ms = self.groups[state.group].clock_ms;
        if state
            .rules
            .iter()
            .any(|r| r.next_deadline().is_some_and(|d| d <= clock_ms))
            || held_due(state, self.config.max_skew_ms).is_some_and(|d| d <= clock_ms)
        {
            self.fire(slot, clock_ms, arrival_ms, sink);
        }
        self.reschedule(slot);
    }

    /// Holds `clock_ahead` readings (bounded) and opens the activation's `device_clock` alert.
    fn hold(
        &mut self,
        slot: usize,
        ahead: Vec<Reading>,
        contact_ms: TimeMs,
        arrival_ms: Option<TimeMs>,
        sink: &mut dyn Sink,
    ) {
        let state = &mut self.slots[slot];
        if state.device_clock.is_none() {
            let first_ms = ahead.first().map(|r| r.t_ms);
            let start = if contact_ms > TimeMs::MIN {
                contact_ms
            } else {
                first_ms.unwrap_or(state.info.from_ms)
            };
            let alert = Alert {
                id: alert_id(&state.info.id, AlertType::DeviceClock.as_str(), start),
                alert_type: AlertType::DeviceClock,
                code: None,
                activation: state.info.id.clone(),
                person: state.info.person.clone(),
                start,
                end: None,
                late: false,
                zone: None,
                confidence: None,
                rule: DEVICE_CLOCK_RULE_VERSION.to_string(),
                details: None,
                withdrawn: None,
                amended_by: None,
                evidence: ahead.iter().take(DEVICE_CLOCK_EVIDENCE).copied().collect(),
            };
            sink.emit(crate::pipeline::Output::Alert(alert.clone()), arrival_ms);
            state.device_clock = Some(alert);
        }
        let room = self
            .config
            .max_held_per_activation
            .saturating_sub(state.held.len());
        let dropped = ahead.len().saturating_sub(room) as u64;
        let kept = ahead.len() - dropped as usize;
        state.held.extend(ahead.into_iter().take(kept));
        self.stats.held_readings += kept as u64;
        if dropped > 0 {
            self.stats.held_dropped += dropped;
            if let Some(g) = &self.gauges {
                g.held_dropped_readings
                    .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The clock reached `clock_ms` for this activation: release held readings it caught up
    /// with, flush what the reorder window lets go, run due rules.
    fn fire(
        &mut self,
        slot: usize,
        clock_ms: TimeMs,
        arrival_ms: Option<TimeMs>,
        sink: &mut dyn Sink,
    ) {
        let state = &mut self.slots[slot];
        if held_due(state, self.config.max_skew_ms).is_some_and(|d| d <= clock_ms) {
            let limit_ms = clock_ms.saturating_add(self.config.max_skew_ms);
            let (mut due, rest): (Vec<Reading>, Vec<Reading>) =
                state.held.drain(..).partition(|r| r.t_ms <= limit_ms);
            state.held = rest;
            due.sort_by_key(|r| r.t_ms); // stable: arrival order among equal times
            let n = due.len() as u64;
            self.stats.held_readings -= n;
            self.stats.released_readings += n;
            if let Some(g) = &self.gauges {
                g.released_readings
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            self.stats.late_readings += admit(state, &due, arrival_ms, sink);
            if let Some(max_seen) = state.buffer.max_seen_ms() {
                release(state, max_seen - self.config.reorder_ms, arrival_ms, sink);
            }
        }
        fire_due(state, clock_ms, self.config.reorder_ms, arrival_ms, sink);
    }

    fn on_clock(&mut self, group: usize, clock_ms: TimeMs, sink: &mut dyn Sink) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if clock_ms <= g.clock_ms {
            return;
        }
        g.clock_ms = clock_ms;
        while let Some(&Reverse((due_ms, slot))) = self.groups[group].deadlines.peek() {
            if due_ms > clock_ms {
                break;
            }
            self.groups[group].deadlines.pop();
            if self.slots[slot].scheduled_ms != Some(due_ms) {
                continue; // stale entry
            }
            self.slots[slot].scheduled_ms = None;
            self.slots[slot].tape.push(TapeInput::Clock(clock_ms));
            self.fire(slot, clock_ms, None, sink);
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
        let held = held_due(state, self.config.max_skew_ms);
        let next = [flush, rules, held].into_iter().flatten().min();
        if next != state.scheduled_ms {
            state.scheduled_ms = next;
            if let Some(due) = next {
                self.groups[state.group]
                    .deadlines
                    .push(Reverse((due, slot)));
            }
        }
    }
}

/// An activation's identity in a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct InfoState {
    id: String,
    person: String,
    tag: String,
    from_ms: TimeMs,
    to_ms: Option<TimeMs>,
}

impl InfoState {
    pub fn of(info: &ActivationInfo) -> Self {
        Self {
            id: info.id.clone(),
            person: info.person.clone(),
            tag: info.tag.clone(),
            from_ms: info.from_ms,
            to_ms: info.to_ms,
        }
    }

    pub fn into_info(self) -> ActivationInfo {
        ActivationInfo {
            id: self.id,
            person: self.person,
            tag: self.tag,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
        }
    }
}

/// One activation's slot in a snapshot: its rules as (name, saved state), rebuilt on restore.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SlotState {
    info: InfoState,
    buffer: super::reorder::ReorderState,
    rules: Vec<(String, super::snapshot::RuleState)>,
    scheduled_ms: Option<TimeMs>,
    #[serde(with = "super::snapshot::via")]
    held: Vec<Reading>,
    #[serde(with = "super::snapshot::via")]
    device_clock: Option<Alert>,
    tape: super::amendment::TapeState,
}

/// A [`Partition`] in a snapshot. The deadline heap is kept whole (stale entries included, in
/// order): which entries are stale decides how often a slot fires.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    memory: super::amendment::OutputMemoryState,
    slots: Vec<SlotState>,
    slot_by_id: Vec<(String, usize)>,
    /// Per clock partition: its clock and its deadline heap.
    groups: Vec<ClockGroupState>,
    stats: PartitionStats,
}

/// A [`ClockGroup`] in a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ClockGroupState {
    clock_ms: TimeMs,
    deadlines: Vec<(TimeMs, usize)>,
}

impl Partition {
    /// This partition's state (see [`super::snapshot`]).
    pub fn save(&self) -> Result<PartitionState, super::snapshot::SnapshotError> {
        let mut slots = Vec::with_capacity(self.slots.len());
        for state in &self.slots {
            let mut rules = Vec::with_capacity(state.rules.len());
            for rule in &state.rules {
                rules.push((rule.name().to_string(), rule.save_state()?));
            }
            slots.push(SlotState {
                info: InfoState::of(&state.info),
                buffer: state.buffer.save(),
                rules,
                scheduled_ms: state.scheduled_ms,
                held: state.held.clone(),
                device_clock: state.device_clock.clone(),
                tape: state.tape.save(),
            });
        }
        let mut slot_by_id: Vec<(String, usize)> = self
            .slot_by_id
            .iter()
            .map(|(id, slot)| (id.clone(), *slot))
            .collect();
        slot_by_id.sort();
        let groups = self
            .groups
            .iter()
            .map(|g| {
                let mut deadlines: Vec<(TimeMs, usize)> =
                    g.deadlines.iter().map(|Reverse(entry)| *entry).collect();
                deadlines.sort();
                ClockGroupState {
                    clock_ms: g.clock_ms,
                    deadlines,
                }
            })
            .collect();
        Ok(PartitionState {
            memory: self.memory.save()?,
            slots,
            slot_by_id,
            groups,
            stats: self.stats,
        })
    }

    /// A partition holding `state`, each activation's rules built by `rules_for` (the rule
    /// factory, as configured when the state was saved) and then loaded with their saved state.
    pub fn restore(
        config: PipelineConfig,
        state: PartitionState,
        rules_for: &dyn Fn(&ActivationInfo) -> Vec<Box<dyn Rule>>,
    ) -> Result<Self, super::snapshot::SnapshotError> {
        use super::snapshot::SnapshotError;
        let count = state.slots.len();
        let out_of_range = |what: &str, slot: usize| {
            SnapshotError::Decode(format!("{what} names slot {slot} of {count}"))
        };
        let mut slots = Vec::with_capacity(count);
        for saved in state.slots {
            let info = Arc::new(saved.info.into_info());
            // A slot with no rules (retired, or never registered) stays without.
            let mut rules = if saved.rules.is_empty() {
                Vec::new()
            } else {
                rules_for(&info)
            };
            let built: Vec<&str> = rules.iter().map(|r| r.name()).collect();
            let stored: Vec<&str> = saved.rules.iter().map(|(n, _)| n.as_str()).collect();
            if built != stored {
                return Err(SnapshotError::Mismatch(format!(
                    "activation '{}': the factory builds rules {built:?}, the snapshot holds {stored:?}",
                    info.id
                )));
            }
            for (rule, (_, saved_state)) in rules.iter_mut().zip(&saved.rules) {
                rule.load_state(saved_state)?;
            }
            let group = super::dispatcher::clock_partition_of(
                &info.tag,
                config.clock_partitions.max(1) as usize,
            );
            let tape = Tape::restore(saved.tape)
                .map_err(|e| SnapshotError::Decode(format!("activation '{}': {e}", info.id)))?;
            slots.push(ActivationState {
                info,
                group,
                buffer: ReorderBuffer::restore(saved.buffer),
                rules,
                scheduled_ms: saved.scheduled_ms,
                held: saved.held,
                device_clock: saved.device_clock,
                tape,
            });
        }
        if let Some((_, slot)) = state.slot_by_id.iter().find(|(_, s)| *s >= count) {
            return Err(out_of_range("an activation id", *slot));
        }
        if state.groups.len() != config.clock_partitions.max(1) as usize {
            return Err(SnapshotError::Mismatch(format!(
                "the snapshot has {} clock partitions, {} configured",
                state.groups.len(),
                config.clock_partitions.max(1)
            )));
        }
        let deadlines = state.groups.iter().flat_map(|g| &g.deadlines);
        if let Some((_, slot)) = deadlines.clone().find(|(_, s)| *s >= count) {
            return Err(out_of_range("a deadline", *slot));
        }
        if let Some((group, (_, slot))) = state.groups.iter().enumerate().find_map(|(i, g)| {
            g.deadlines
                .iter()
                .find(|(_, s)| slots[*s].group != i)
                .map(|e| (i, e))
        }) {
            return Err(SnapshotError::Decode(format!(
                "a deadline of clock partition {group} names slot {slot} of another"
            )));
        }
        Ok(Self {
            config,
            memory: OutputMemory::restore(state.memory),
            slots,
            slot_by_id: state.slot_by_id.into_iter().collect(),
            groups: state
                .groups
                .into_iter()
                .map(|g| ClockGroup {
                    clock_ms: g.clock_ms,
                    deadlines: g.deadlines.into_iter().map(Reverse).collect(),
                })
                .collect(),
            stats: state.stats,
            gauges: None,
        })
    }
}

/// `clock_ahead` readings of one batch for one activation.
struct Ahead {
    readings: Vec<Reading>,
    count: u32,
}

/// The clock time at which the earliest held reading may be released.
fn held_due(state: &ActivationState, max_skew_ms: TimeMs) -> Option<TimeMs> {
    state
        .held
        .iter()
        .map(|r| r.t_ms.saturating_sub(max_skew_ms))
        .min()
}

/// Closes the open `device_clock` alert: the tag's readings are within bound again.
fn close_device_clock(
    state: &mut ActivationState,
    contact_ms: TimeMs,
    arrival_ms: Option<TimeMs>,
    sink: &mut dyn Sink,
) {
    if let Some(mut alert) = state.device_clock.take() {
        alert.end = Some(contact_ms.max(alert.start));
        sink.emit(crate::pipeline::Output::Alert(alert), arrival_ms);
    }
}

/// Puts readings into the activation's reorder buffer; ones older than its watermark go to the
/// rules at once, marked late. Returns how many were late.
fn admit(
    state: &mut ActivationState,
    readings: &[Reading],
    arrival_ms: Option<TimeMs>,
    sink: &mut dyn Sink,
) -> u64 {
    let mut late = 0;
    for reading in readings {
        if state.buffer.admit(*reading) == Admission::Late {
            late += 1;
            let mut ctx = RuleContext::new(&state.info, sink, arrival_ms);
            for rule in &mut state.rules {
                rule.on_reading(&mut ctx, reading, true);
            }
        }
    }
    late
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
