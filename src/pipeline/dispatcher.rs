//! The dispatcher: the single point where log order becomes partition inputs.
//!
//! For each batch, in log order, it asks the event-time clock ([`EventClock`]) what each reading
//! is (fed to the rules, `clock_ahead`, too old), resolves every reading to its activation, hands
//! each activation's readings to that activation's partition, and then tells every partition when
//! the clock advanced. Control records (changes to people, activations and orders) are applied
//! here at their log position: the dispatcher owns the [`OrderBook`], the activation directory and
//! the rule factory, so it rebuilds the directory and hands every affected activation its new
//! rules ([`PartitionInput::Reconfigure`]). Readings of a tag no activation covers are kept
//! (bounded) so that an activation created later for their period still sees them.
//!
//! The activation each reading belongs to is resolved here once: besides the partitions'
//! inputs, each dispatch returns the stores' share of the record as [`Output`]s (every
//! reading filed under the activation covering it, and each change to a person's activations),
//! for trails, the TAC index and hits. Live and
//! replay both drive partitions through this one function, so both
//! see exactly the same input sequence; the clock is computed here, from the log alone, so it
//! does not depend on how many partitions there are.

use super::clock::{EventClock, PipelineGauges, Verdict};
use super::partition::{PartitionInput, ReadingSlice};
use super::rule::{ActivationInfo, RuleFactory, RuleSet};
use super::sink::Output;
use super::PipelineConfig;
use crate::model::tag_partition::PartitionSet;
use crate::model::ActivationDirectory;
use crate::model::{Batch, BatchSeq, ControlRecord, LogEntry, Reading, TimeMs};
use crate::orders::OrderBook;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Counters for `/metrics`, `inspect` and replay summaries.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
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
    /// Control records applied, and refused (each refusal is deterministic: the same record is
    /// refused by live serving, replay and rebuild).
    pub controls_applied: u64,
    pub controls_refused: u64,
}

/// Readings of one tag that no activation covered when they arrived, kept for an activation
/// created later (at most this many per tag, the oldest dropped first).
const MAX_UNASSIGNED_PER_TAG: usize = 20_000;

pub struct Dispatcher {
    directory: Arc<ActivationDirectory>,
    book: OrderBook,
    factory: Box<dyn RuleFactory>,
    /// Per tag: readings no activation covered, with the contact time of their batch.
    unassigned: HashMap<String, VecDeque<(Reading, TimeMs)>>,
    partitions: usize,
    /// One event-time clock per clock partition (`PipelineConfig::clock_partitions`; one by
    /// default): a batch moves only its tag's.
    clocks: Vec<EventClock>,
    verdicts: Vec<Verdict>,
    stats: DispatchStats,
    gauges: Arc<PipelineGauges>,
    /// The log record the next batch is (control records carry theirs).
    next_record: u64,
    /// Per person, the orders control records last gave the factory: a snapshot's restore
    /// gives them to a factory built from the starting configuration again.
    orders_set: std::collections::BTreeMap<String, Vec<crate::model::Order>>,
    /// A processing node's share (`None`: every partition): only these clock partitions' tags
    /// reach the rules; every reading is still filed for the stores.
    owned: Option<PartitionSet>,
}

/// An ownership that cannot apply: partitions of another count than the clocks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("owned partitions are {named} partitions' worth, but there are {clocks} clock partitions ([pipeline] clock_partitions): a node owning some partitions needs a clock per partition")]
pub struct OwnedWithoutClocks {
    pub named: u32,
    pub clocks: usize,
}

/// One activation's share of a batch that is not handed over whole.
struct Group {
    activation: Arc<ActivationInfo>,
    admitted: Vec<Reading>,
    ahead: Vec<Reading>,
    ahead_count: u32,
}

impl Dispatcher {
    /// A dispatcher whose people, activations and orders start as `book` (empty for a log that
    /// carries its own control records) and whose rules `factory` builds (already holding
    /// `book`'s orders).
    pub fn new(
        book: OrderBook,
        factory: Box<dyn RuleFactory>,
        partitions: usize,
        config: PipelineConfig,
    ) -> Self {
        let activations: Vec<_> = book.activations().cloned().collect();
        Self {
            directory: Arc::new(ActivationDirectory::new(&activations)),
            book,
            factory,
            unassigned: HashMap::new(),
            partitions: partitions.max(1),
            clocks: (0..config.clock_partitions.max(1))
                .map(|_| EventClock::new(config))
                .collect(),
            verdicts: Vec::new(),
            stats: DispatchStats::default(),
            gauges: Arc::new(PipelineGauges::default()),
            next_record: 0,
            orders_set: Default::default(),
            owned: None,
        }
    }

    /// From now on only the tags of `owned` reach the rules (a processing node's partitions);
    /// the stores still get every reading. Set before anything is dispatched.
    pub fn own(&mut self, owned: PartitionSet) -> Result<(), OwnedWithoutClocks> {
        if owned.count() as usize != self.clocks.len() {
            return Err(OwnedWithoutClocks {
                named: owned.count(),
                clocks: self.clocks.len(),
            });
        }
        self.owned = Some(owned);
        Ok(())
    }

    /// Whether `tag`'s readings reach this dispatcher's rules.
    pub fn owns_tag(&self, tag: &str) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|o| o.contains(self.clock_partition_of(tag) as u32))
    }

    pub fn stats(&self) -> DispatchStats {
        DispatchStats {
            clock_ms: self.newest_clock_ms(),
            ..self.stats
        }
    }

    /// The gauges this dispatcher (and the partitions given them) keep up to date.
    pub fn gauges(&self) -> Arc<PipelineGauges> {
        self.gauges.clone()
    }

    /// The event-time clock (`TimeMs::MIN` before any reading); with several clock partitions,
    /// the furthest of their clocks.
    pub fn clock_ms(&self) -> TimeMs {
        self.newest_clock_ms().unwrap_or(TimeMs::MIN)
    }

    fn newest_clock_ms(&self) -> Option<TimeMs> {
        self.clocks.iter().filter_map(EventClock::clock_ms).max()
    }

    /// How many clock partitions there are.
    pub fn clock_partitions(&self) -> usize {
        self.clocks.len()
    }

    /// The clock partition `tag` is in (0 with one clock).
    pub fn clock_partition_of(&self, tag: &str) -> usize {
        clock_partition_of(tag, self.clocks.len())
    }

    /// Clock partition `group`'s clock (`TimeMs::MIN` before any of its readings).
    pub fn clock_of(&self, group: usize) -> TimeMs {
        self.clocks
            .get(group)
            .and_then(EventClock::clock_ms)
            .unwrap_or(TimeMs::MIN)
    }

    /// Which partition owns an activation (stable for a given partition count).
    pub fn partition_of(&self, activation_id: &str) -> usize {
        let mut h = DefaultHasher::new();
        activation_id.hash(&mut h);
        (h.finish() % self.partitions as u64) as usize
    }

    /// The activations as of the records dispatched so far.
    pub fn directory(&self) -> &Arc<ActivationDirectory> {
        &self.directory
    }

    /// Conditions the rule factory could not compile (not monitored).
    pub fn unmonitored_conditions(&self) -> Vec<String> {
        self.factory.unmonitored_conditions()
    }

    /// People, activations and orders as of the records dispatched so far.
    pub fn book(&self) -> &OrderBook {
        &self.book
    }

    /// The log record the next batch dispatched is (a reader that knows it says so; live, the
    /// committer's numbering continues from the log's next record).
    pub fn set_next_record(&mut self, record: u64) {
        self.next_record = record;
    }

    /// The log record `entry` is when dispatched next (a batch takes the next number; a control
    /// record carries its own).
    pub fn record_of(&self, entry: &LogEntry) -> u64 {
        match entry {
            LogEntry::Batch(_) => self.next_record,
            LogEntry::Control { record, .. } => *record,
        }
    }

    /// The log record the next batch dispatched is.
    pub fn next_record(&self) -> u64 {
        self.next_record
    }

    /// Routes one log entry; `deliver(partition, input)` is called in the order inputs must be
    /// applied. Returns the stores' outputs for it (see the module doc), in order.
    #[must_use = "the stores' outputs (readings by activation) are returned, not sent"]
    pub fn dispatch(
        &mut self,
        entry: &LogEntry,
        deliver: impl FnMut(usize, PartitionInput),
    ) -> Vec<Output> {
        let mut outputs = Vec::new();
        match entry {
            LogEntry::Batch(batch) => {
                let record = self.next_record;
                self.dispatch_batch(record, batch, deliver, &mut outputs);
                self.next_record = record + 1;
            }
            LogEntry::Control { record, control } => {
                self.apply_control(*record, control, deliver, &mut outputs);
                self.next_record = record + 1;
            }
        }
        outputs
    }

    /// Applies a control record at its log position (see the module doc).
    fn apply_control(
        &mut self,
        record: u64,
        control: &Arc<ControlRecord>,
        mut deliver: impl FnMut(usize, PartitionInput),
        outputs: &mut Vec<Output>,
    ) {
        // The hub's decisions and users change stores beside the pipeline, never the rules.
        if !control.change.reaches_rules() {
            return;
        }
        // What the person's rules are made of before the change: a change that leaves it as it
        // was (a name, a note) re-evaluates nothing.
        let before = self.book.person_of(&control.change).map(|p| {
            let orders = self.book.rule_orders_of(&p);
            let activations: Vec<crate::model::Activation> =
                self.book.activations_of(&p).into_iter().cloned().collect();
            (orders, activations)
        });
        let applied = match self.book.apply(record, control) {
            Ok(applied) => applied,
            Err(e) => {
                self.stats.controls_refused += 1;
                tracing::debug!(record, error = %e, "control record refused");
                return;
            }
        };
        self.stats.controls_applied += 1;
        if applied.activations_changed {
            update_directory(
                Arc::make_mut(&mut self.directory),
                &self.book,
                control,
                &applied,
            );
        }
        for id in &applied.retired {
            deliver(self.partition_of(id), PartitionInput::Retire(id.clone()));
        }
        for person in &applied.people_removed {
            self.factory.set_orders_of(person, &[]);
            self.orders_set.insert(person.clone(), Vec::new());
        }
        let Some(person) = applied.person else {
            return;
        };
        outputs.push(Output::Activations {
            record,
            control: control.clone(),
            activations: self
                .book
                .activations_of(&person)
                .into_iter()
                .map(|a| (a.id.clone(), a.person.clone()))
                .collect(),
        });
        let orders = self.book.rule_orders_of(&person);
        let activations_before = match before {
            Some((orders_before, activations_before)) if orders_before == orders => {
                activations_before
            }
            _ => {
                self.factory.set_orders_of(&person, &orders);
                self.orders_set.insert(person.clone(), orders.clone());
                Vec::new()
            }
        };
        let reason: Arc<str> = describe(control).into();
        let affected: Vec<Arc<ActivationInfo>> = self
            .book
            .activations_of(&person)
            .into_iter()
            // Unchanged orders and an unchanged activation: nothing to re-evaluate.
            .filter(|a| !activations_before.contains(a))
            .filter_map(|a| self.directory.get(&a.id).cloned())
            .collect();
        for activation in affected {
            let partition = self.partition_of(&activation.id);
            if !self.owns_tag(&activation.tag) {
                // Another node's: its readings kept so far are the stores' now.
                self.deliver_unassigned(record, &activation, None, &mut deliver, outputs);
                continue;
            }
            let rules = RuleSet::new(self.factory.rules_for(&activation));
            deliver(
                partition,
                PartitionInput::Reconfigure {
                    activation: activation.clone(),
                    rules,
                    record,
                    reason: reason.clone(),
                },
            );
            // Readings that arrived before the activation covered them.
            self.deliver_unassigned(record, &activation, Some(partition), &mut deliver, outputs);
        }
    }

    /// Hands an activation the kept readings of its tag that it covers, as one late input (to
    /// the stores only when `partition` is `None`: another node runs its rules).
    fn deliver_unassigned(
        &mut self,
        record: u64,
        activation: &Arc<ActivationInfo>,
        partition: Option<usize>,
        deliver: &mut impl FnMut(usize, PartitionInput),
        outputs: &mut Vec<Output>,
    ) {
        let Some(kept) = self.unassigned.get_mut(&activation.tag) else {
            return;
        };
        let (mine, rest): (VecDeque<_>, VecDeque<_>) =
            kept.drain(..).partition(|(r, _)| activation.covers(r.t_ms));
        *kept = rest;
        if mine.is_empty() {
            return;
        }
        let contact_ms = mine.iter().map(|(_, c)| *c).max().unwrap_or(TimeMs::MIN);
        let mut readings: Vec<Reading> = mine.into_iter().map(|(r, _)| r).collect();
        readings.sort_by_key(|r| r.t_ms);
        // The stores file them now, under the record that made them this activation's.
        outputs.push(Output::Readings {
            record,
            batch: None,
            activation: activation.clone(),
            readings: ReadingSlice::Part(readings.clone()),
        });
        let Some(partition) = partition else {
            return;
        };
        deliver(
            partition,
            PartitionInput::Readings {
                activation: activation.clone(),
                readings: ReadingSlice::Part(readings),
                ahead: Vec::new(),
                ahead_count: 0,
                arrival_ms: None,
                contact_ms,
            },
        );
    }

    fn keep_unassigned(&mut self, tag: &str, reading: Reading, contact_ms: TimeMs) {
        let kept = self.unassigned.entry(tag.to_string()).or_default();
        if kept.len() >= MAX_UNASSIGNED_PER_TAG {
            kept.pop_front();
        }
        kept.push_back((reading, contact_ms));
    }

    /// Routes one batch (log record `record`).
    fn dispatch_batch(
        &mut self,
        record: u64,
        batch: &Arc<Batch>,
        mut deliver: impl FnMut(usize, PartitionInput),
        outputs: &mut Vec<Output>,
    ) {
        if !self.owns_tag(&batch.tag) {
            return self.file_only(record, batch, outputs);
        }
        self.stats.batches += 1;
        self.stats.readings += batch.readings.len() as u64;
        let arrival_ms = (batch.arrival_ms > 0).then_some(batch.arrival_ms);
        let group = self.clock_partition_of(&batch.tag);
        let outcome = self.clocks[group].observe(batch, &mut self.verdicts);
        self.stats.clock_ahead += u64::from(outcome.ahead);
        self.stats.future_readings += u64::from(outcome.ahead_of_arrival);
        self.stats.too_old += u64::from(outcome.too_old);
        let contact_ms = outcome.contact_ms.unwrap_or(TimeMs::MIN);
        let all_admitted = outcome.ahead == 0 && outcome.too_old == 0;

        // Common case: one activation covers the whole batch. The stores take it without
        // copying, and so do the rules when the clock admitted every reading.
        let single = batch
            .readings
            .first()
            .and_then(|r| self.directory.resolve(&batch.tag, r.t_ms))
            .filter(|a| batch.readings.iter().all(|r| a.covers(r.t_ms)))
            .cloned();
        if let Some(activation) = &single {
            outputs.push(Output::Readings {
                record,
                batch: Some(batch.batch_seq()),
                activation: activation.clone(),
                readings: ReadingSlice::Whole(batch.clone()),
            });
        }
        if let (true, Some(activation)) = (all_admitted, single) {
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
            let filed_whole = !outputs.is_empty();
            let mut groups: Vec<Group> = Vec::new();
            let mut unassigned = Vec::new();
            // Each reading's activation, for the stores: every reading, whatever its verdict.
            let mut filed: Vec<(Arc<ActivationInfo>, Vec<Reading>)> = Vec::new();
            for (r, verdict) in batch.readings.iter().zip(&self.verdicts) {
                let resolved = self.directory.resolve(&batch.tag, r.t_ms);
                if let (false, Some(a)) = (filed_whole, resolved) {
                    file_under(&mut filed, a, *r);
                }
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
                        unassigned.push(*r);
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
            outputs.extend(filed_outputs(record, batch.batch_seq(), filed));
            for r in unassigned {
                self.keep_unassigned(&batch.tag, r, contact_ms);
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
                deliver(p, PartitionInput::Clock { group, clock_ms });
            }
        }
        self.publish();
    }

    /// Another node's batch: every reading filed under its activation for the stores (those
    /// no activation covers kept for one created later), nothing for the rules.
    fn file_only(&mut self, record: u64, batch: &Arc<Batch>, outputs: &mut Vec<Output>) {
        let mut filed: Vec<(Arc<ActivationInfo>, Vec<Reading>)> = Vec::new();
        for r in &batch.readings {
            match self.directory.resolve(&batch.tag, r.t_ms) {
                Some(a) => file_under(&mut filed, a, *r),
                // Contact time matters only to the rules, which never see these.
                None => self.keep_unassigned(&batch.tag, *r, TimeMs::MIN),
            }
        }
        outputs.extend(filed_outputs(record, batch.batch_seq(), filed));
    }

    /// The input has ended: brings the clock up to date with the last batch (it is otherwise
    /// recomputed on a cadence) and tells every partition if that advanced it.
    pub fn catch_up(&mut self, mut deliver: impl FnMut(usize, PartitionInput)) {
        for group in 0..self.clocks.len() {
            if let Some(clock_ms) = self.clocks[group].catch_up() {
                for p in 0..self.partitions {
                    deliver(p, PartitionInput::Clock { group, clock_ms });
                }
            }
        }
        self.publish();
    }

    /// Advances clock partition `group`'s clock to `t_ms` with no reading behind it (`replay
    /// --until`), telling every partition as a live advance does. Does nothing if the clock is
    /// already there.
    pub fn advance_clock(
        &mut self,
        group: usize,
        t_ms: TimeMs,
        mut deliver: impl FnMut(usize, PartitionInput),
    ) {
        if self
            .clocks
            .get_mut(group)
            .is_some_and(|c| c.advance_to(t_ms))
        {
            for p in 0..self.partitions {
                deliver(
                    p,
                    PartitionInput::Clock {
                        group,
                        clock_ms: t_ms,
                    },
                );
            }
        }
        self.publish();
    }

    /// The input is complete through the clock (`replay --final`): tells every partition to
    /// take every decision the input allows (see [`PartitionInput::Final`]), each clock
    /// partition up to its own clock. Returns the furthest clock used, `None` when no reading
    /// ever set one.
    pub fn finish(&mut self, mut deliver: impl FnMut(usize, PartitionInput)) -> Option<TimeMs> {
        self.catch_up(&mut deliver);
        let ends: Arc<[Option<TimeMs>]> = self.clocks.iter().map(EventClock::clock_ms).collect();
        let end_ms = ends.iter().flatten().copied().max()?;
        for p in 0..self.partitions {
            deliver(p, PartitionInput::Final(ends.clone()));
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
        for a in self
            .directory
            .all()
            .iter()
            .filter(|a| self.owns_tag(&a.tag))
        {
            deliver(
                self.partition_of(&a.id),
                PartitionInput::Register {
                    activation: a.clone(),
                    rules: RuleSet::new(self.factory.rules_for(a)),
                },
            );
        }
    }
}

/// A [`Dispatcher`] in a snapshot (see [`super::snapshot`]): the directory is rebuilt from the
/// book, the factory from its configuration plus `orders_set`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct DispatcherState {
    book: OrderBook,
    orders_set: Vec<(String, Vec<crate::model::Order>)>,
    unassigned: Vec<(String, Vec<(super::snapshot::ReadingRepr, TimeMs)>)>,
    partitions: usize,
    clocks: Vec<super::clock::EventClockState>,
    stats: DispatchStats,
    next_record: u64,
}

impl Dispatcher {
    pub fn save(&self) -> DispatcherState {
        use super::snapshot::Snap;
        let mut unassigned: Vec<_> = self
            .unassigned
            .iter()
            .map(|(tag, kept)| {
                let kept = kept.iter().map(|(r, c)| (r.to_repr(), *c)).collect();
                (tag.clone(), kept)
            })
            .collect();
        unassigned.sort_by(|a, b| a.0.cmp(&b.0));
        DispatcherState {
            book: self.book.clone(),
            orders_set: self
                .orders_set
                .iter()
                .map(|(p, o)| (p.clone(), o.clone()))
                .collect(),
            unassigned,
            partitions: self.partitions,
            clocks: self.clocks.iter().map(EventClock::save).collect(),
            stats: self.stats,
            next_record: self.next_record,
        }
    }

    /// The dispatcher of `state`, with `factory` built as the saved one was at the start (the
    /// orders control records gave it since are given again).
    pub fn restore(
        state: DispatcherState,
        mut factory: Box<dyn RuleFactory>,
        partitions: usize,
        config: PipelineConfig,
    ) -> Result<Self, super::snapshot::SnapshotError> {
        use super::snapshot::{Snap, SnapshotError};
        if state.partitions != partitions.max(1) {
            return Err(SnapshotError::Mismatch(format!(
                "the snapshot has {} partitions, {} asked for",
                state.partitions,
                partitions.max(1)
            )));
        }
        for (person, orders) in &state.orders_set {
            factory.set_orders_of(person, orders);
        }
        let mut dispatcher = Self::new(state.book, factory, partitions, config);
        dispatcher.orders_set = state.orders_set.into_iter().collect();
        dispatcher.unassigned = state
            .unassigned
            .into_iter()
            .map(|(tag, kept)| {
                let kept = kept
                    .into_iter()
                    .map(|(r, c)| (Reading::from_repr(r), c))
                    .collect();
                (tag, kept)
            })
            .collect();
        if state.clocks.len() != dispatcher.clocks.len() {
            return Err(SnapshotError::Mismatch(format!(
                "the snapshot has {} clock partitions, {} configured",
                state.clocks.len(),
                dispatcher.clocks.len()
            )));
        }
        dispatcher.clocks = state
            .clocks
            .into_iter()
            .map(|c| EventClock::restore(config, c))
            .collect();
        dispatcher.stats = state.stats;
        dispatcher.next_record = state.next_record;
        dispatcher.publish();
        Ok(dispatcher)
    }

    /// The rules the factory builds for an activation (a restored partition's).
    pub fn rules_for(&self, activation: &ActivationInfo) -> Vec<Box<dyn super::Rule>> {
        self.factory.rules_for(activation)
    }
}

/// Brings `directory` in line with `book` after `control` changed activations: only the
/// activations it names (a purge: the ones it retired).
pub fn update_directory(
    directory: &mut ActivationDirectory,
    book: &OrderBook,
    control: &ControlRecord,
    applied: &crate::orders::Applied,
) {
    for id in &applied.retired {
        directory.remove(id);
    }
    let changed = match &control.change {
        crate::model::Change::PutActivation { activation } => Some(activation.id.as_str()),
        crate::model::Change::EndActivation { activation, .. } => Some(activation.as_str()),
        _ => None,
    };
    if let Some(a) = changed.and_then(|id| book.activation(id)) {
        directory.upsert(a);
    }
}

/// Adds `reading` to what is filed under `activation` (batches are short: a linear search).
fn file_under(
    filed: &mut Vec<(Arc<ActivationInfo>, Vec<Reading>)>,
    activation: &Arc<ActivationInfo>,
    reading: Reading,
) {
    match filed.iter_mut().find(|(f, _)| Arc::ptr_eq(f, activation)) {
        Some((_, list)) => list.push(reading),
        None => filed.push((activation.clone(), vec![reading])),
    }
}

/// The stores' outputs for readings of log record `record` filed by activation.
fn filed_outputs(
    record: u64,
    batch: BatchSeq,
    filed: Vec<(Arc<ActivationInfo>, Vec<Reading>)>,
) -> impl Iterator<Item = Output> {
    filed
        .into_iter()
        .map(move |(activation, readings)| Output::Readings {
            record,
            batch: Some(batch),
            activation,
            readings: ReadingSlice::Part(readings),
        })
}

/// The clock partition of `tag` among `clocks` (0 with one: no hash on the common path).
pub fn clock_partition_of(tag: &str, clocks: usize) -> usize {
    if clocks <= 1 {
        return 0;
    }
    crate::model::tag_partition::partition_of(tag, clocks as u32) as usize
}

/// What a change was, for the withdrawals it causes.
fn describe(control: &ControlRecord) -> String {
    let subject = control.change.subject();
    let what = match &control.change {
        crate::model::Change::EndActivation { to, .. } => {
            format!(
                "{subject} ended at {}",
                crate::model::time::format_time(*to)
            )
        }
        _ => format!("{subject} changed"),
    };
    match control.effective {
        Some(t) => format!("{what}, effective {}", crate::model::time::format_time(t)),
        None => what,
    }
}
