//! The output side of the pipeline: every rule output goes through one [`Sink`] interface.
//! Alerts and sober days now; trails and hits plug in here as further [`Output`] variants.

use crate::model::{Alert, SoberDay, TimeMs};

/// One output of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A new alert or a new state of an existing one (same id): sinks upsert by id.
    Alert(Alert),
    /// A new or changed classification of one day of an alcohol order: sinks upsert by
    /// (activation, order, date).
    SoberDay(SoberDay),
    /// Retention purged the activation: sinks drop every output of it they hold.
    Purged { activation: String },
}

/// Receives pipeline outputs. `cause_arrival_ms` is when the batch that caused the output reached
/// the server (for latency measurement only; never part of an output).
pub trait Sink {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>);
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
