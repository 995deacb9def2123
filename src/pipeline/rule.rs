//! The rule interface: one small trait every rule (health, curfew, zones, hits, alcohol) implements.
//!
//! A rule instance belongs to one activation and sees that activation's readings in event-time
//! order plus the advancing event-time clock. Rules are pure functions of those inputs: they never
//! read the wall clock, so live processing and replay give identical outputs.

use super::sink::{Output, Sink};
use super::snapshot::{RuleState, RuleStateError};
use crate::model::{Alert, Reading, SoberDay, TimeMs};

pub use crate::model::ActivationInfo;

/// Context passed to a rule on every call: the activation and where outputs go.
pub struct RuleContext<'a> {
    pub activation: &'a ActivationInfo,
    sink: &'a mut dyn Sink,
    cause_arrival_ms: Option<TimeMs>,
}

impl<'a> RuleContext<'a> {
    pub fn new(
        activation: &'a ActivationInfo,
        sink: &'a mut dyn Sink,
        cause_arrival_ms: Option<TimeMs>,
    ) -> Self {
        Self {
            activation,
            sink,
            cause_arrival_ms,
        }
    }

    /// Emits a new alert, or a new state of an alert already emitted (same id).
    pub fn emit_alert(&mut self, alert: Alert) {
        self.sink.emit(Output::Alert(alert), self.cause_arrival_ms);
    }

    /// Emits a day's classification, or a new one for a day already emitted (same key).
    pub fn emit_sober_day(&mut self, day: SoberDay) {
        self.sink.emit(Output::SoberDay(day), self.cause_arrival_ms);
    }
}

/// A per-activation rule state machine.
pub trait Rule: Send {
    /// Short stable name: part of alert ids and of the `rule` field.
    fn name(&self) -> &'static str;

    /// One reading of this activation. `late` is true when the reading arrived after the
    /// activation's watermark had passed its event time (its window was already evaluated).
    fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool);

    /// The tag was heard from (a batch arrived) when the event-time clock stood at `contact_ms`.
    fn on_contact(&mut self, _ctx: &mut RuleContext<'_>, _contact_ms: TimeMs) {}

    /// The event-time clock reached `clock_ms`, at or past [`Rule::next_deadline`].
    fn on_clock(&mut self, _ctx: &mut RuleContext<'_>, _clock_ms: TimeMs) {}

    /// The earliest event time at which `on_clock` has something to do, if any.
    fn next_deadline(&self) -> Option<TimeMs> {
        None
    }

    /// How far this rule's clock may go when the input is known to be complete through
    /// `input_end_ms` (`tagstream replay --final`). A rule that waits a grace time after a window
    /// or day ends (for late data) adds that grace: no more data will come, so every window that
    /// ended within the input can be decided, and none that did not. The default, the input's end
    /// itself, suits rules about elapsed time (no contact): the input ending is not the tag going
    /// quiet.
    fn final_horizon_ms(&self, input_end_ms: TimeMs) -> TimeMs {
        input_end_ms
    }

    /// Everything in this rule that depends on the inputs it has seen (not what it was built
    /// from: restore rebuilds the rule from the factory first), for a pipeline snapshot
    /// (`super::snapshot`). Required, so no rule can be left out of snapshots.
    fn save_state(&self) -> Result<RuleState, RuleStateError>;

    /// Loads what [`Rule::save_state`] saved into a rule just built from the same configuration.
    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError>;
}

/// Builds the rules that watch one activation (from its person's orders and the configuration).
pub trait RuleFactory: Send + Sync {
    fn rules_for(&self, activation: &ActivationInfo) -> Vec<Box<dyn Rule>>;

    /// A person's orders changed (each version cut to the days it is in effect): what their
    /// activations' rules are built from from now on.
    fn set_orders_of(&mut self, person: &str, orders: &[crate::model::Order]);

    /// Conditions that could not be compiled into rules (so are not monitored), for reports.
    fn unmonitored_conditions(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The rules of one activation, built by the dispatcher and handed to the partition that owns
/// the activation.
#[derive(Default)]
pub struct RuleSet(Vec<Box<dyn Rule>>);

impl RuleSet {
    pub fn new(rules: Vec<Box<dyn Rule>>) -> Self {
        Self(rules)
    }

    pub fn into_rules(self) -> Vec<Box<dyn Rule>> {
        self.0
    }
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|r| r.name()).collect();
        f.debug_tuple("RuleSet").field(&names).finish()
    }
}
