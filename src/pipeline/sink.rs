//! The output side of the pipeline: everything the pipeline hands on goes through one [`Sink`]
//! interface. The rules' outputs (alerts, sober days, purges) come from the partitions; what
//! the dispatcher resolved (each log record's readings, filed under the activation covering
//! them; each change to a person's activations) comes from the dispatcher, so the activation a
//! reading belongs to is looked up once, there, and trails, the TAC index and hits take that
//! answer instead of resolving it again. Each store implements [`Sink`] and takes the variants
//! it holds; [`Fanout`] hands one stream to several.

use super::partition::ReadingSlice;
use super::rule::ActivationInfo;
use crate::model::{Alert, BatchSeq, ControlRecord, SoberDay, TimeMs};
use std::sync::Arc;

/// One output of the pipeline.
#[derive(Debug, Clone)]
pub enum Output {
    /// A new alert or a new state of an existing one (same id): sinks upsert by id.
    Alert(Alert),
    /// A new or changed classification of one day of an alcohol order: sinks upsert by
    /// (activation, order, date).
    SoberDay(SoberDay),
    /// Retention purged the activation: sinks drop every output of it they hold.
    Purged { activation: String },
    /// Readings of log record `record` that `activation` covers, as the dispatcher resolved
    /// them: every reading in its period whatever the event-time clock made of it (too old or
    /// ahead for the rules, still kept by the stores). Readings that arrived before any
    /// activation covered them come again under the control record that created it. The trail
    /// store keeps the positions, the TAC index the alcohol readings, and the hit matcher
    /// matches the positions once the trail store holds them.
    Readings {
        record: u64,
        /// The tag's batch the readings came in (`None`: readings held before any activation
        /// covered them, filed now from several batches).
        batch: Option<BatchSeq>,
        activation: Arc<ActivationInfo>,
        readings: ReadingSlice,
    },
    /// Control record `record` changed a person's people, activations or orders, and these are
    /// that person's activations afterwards, as `(activation, person)` (the hit matcher
    /// re-evaluates their hits).
    Activations {
        record: u64,
        control: Arc<ControlRecord>,
        activations: Vec<(String, String)>,
    },
}

impl Output {
    /// Whether a rule produced it (alerts, sober days, purges), as opposed to the dispatcher's
    /// resolution of the log (readings, activation changes).
    pub fn is_rule_output(&self) -> bool {
        matches!(
            self,
            Output::Alert(_) | Output::SoberDay(_) | Output::Purged { .. }
        )
    }
}

// Outputs compare by what they say; readings by their record, activation and values.
impl PartialEq for Output {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Output::Alert(a), Output::Alert(b)) => a == b,
            (Output::SoberDay(a), Output::SoberDay(b)) => a == b,
            (Output::Purged { activation: a }, Output::Purged { activation: b }) => a == b,
            (
                Output::Readings {
                    record: r1,
                    batch: b1,
                    activation: a1,
                    readings: x1,
                },
                Output::Readings {
                    record: r2,
                    batch: b2,
                    activation: a2,
                    readings: x2,
                },
            ) => r1 == r2 && b1 == b2 && a1.id == a2.id && x1.readings() == x2.readings(),
            (
                Output::Activations {
                    record: r1,
                    activations: a1,
                    ..
                },
                Output::Activations {
                    record: r2,
                    activations: a2,
                    ..
                },
            ) => r1 == r2 && a1 == a2,
            _ => false,
        }
    }
}

/// Where a rule output came from: the partition that produced it (its lane) and the log record
/// whose processing produced it (for a clock advance or a deadline: the record that advanced the
/// clock; for a re-evaluation: the control record). A partition takes its inputs in log order and
/// its outputs reach the alert book in order, so within one lane outputs come in non-decreasing
/// record order, the same on every node reading the same log (webhook delivery resumes on
/// another node from it: `delivery::webhooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Provenance {
    pub lane: u32,
    pub record: u64,
}

/// Receives pipeline outputs. `cause_arrival_ms` is when the batch that caused the output reached
/// the server (for latency measurement only; never part of an output).
pub trait Sink {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>);

    /// The outputs emitted from now on come from this partition's processing of this log
    /// record (see [`Provenance`]); a sink that does not keep provenance ignores it.
    fn outputs_from(&mut self, _provenance: Provenance) {}

    /// The end of one piece of input (a committed group live, the whole input offline): a
    /// sink that gathers outputs to hand them on together does so now.
    fn flush(&mut self) {}

    /// Every log record before `next_record` has been dispatched, whether or not it gave this
    /// sink anything: a sink that says how far along the log it is (the trail store's
    /// checkpoint) moves on past records that held nothing for it.
    fn passed(&mut self, _next_record: u64) {}
}

/// Collects outputs in order: replay, tests, and live shards (which forward the Vec).
#[derive(Default, Debug)]
pub struct VecSink {
    pub outputs: Vec<(Output, Option<TimeMs>)>,
}

impl Sink for VecSink {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        self.outputs.push((output, cause_arrival_ms));
    }
}

/// Hands every output to each of its sinks, in order.
#[derive(Default)]
pub struct Fanout<'a> {
    sinks: Vec<Box<dyn Sink + Send + 'a>>,
}

impl<'a> Fanout<'a> {
    pub fn new() -> Self {
        Self { sinks: Vec::new() }
    }

    pub fn with(mut self, sink: impl Sink + Send + 'a) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }
}

impl Sink for Fanout<'_> {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        if let Some((last, rest)) = self.sinks.split_last_mut() {
            for sink in rest {
                sink.emit(output.clone(), cause_arrival_ms);
            }
            last.emit(output, cause_arrival_ms);
        }
    }

    fn outputs_from(&mut self, provenance: Provenance) {
        for sink in &mut self.sinks {
            sink.outputs_from(provenance);
        }
    }

    fn flush(&mut self) {
        for sink in &mut self.sinks {
            sink.flush();
        }
    }

    fn passed(&mut self, next_record: u64) {
        for sink in &mut self.sinks {
            sink.passed(next_record);
        }
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        (**self).emit(output, cause_arrival_ms);
    }

    fn outputs_from(&mut self, provenance: Provenance) {
        (**self).outputs_from(provenance);
    }

    fn flush(&mut self) {
        (**self).flush();
    }
}
