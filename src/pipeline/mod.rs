//! The pipeline: log order in, rule outputs out.
//!
//! `dispatcher` turns batches (in log order) into per-partition inputs; each `partition` owns the
//! state of its activations (one owner, no locks), reorders readings by event time (`reorder`)
//! and runs the `rule`s; outputs go through one `sink` interface. `driver` runs partitions
//! inline (replay) or as tasks (live) — the same code either way.

pub mod directory;
pub mod dispatcher;
pub mod driver;
pub mod partition;
pub mod reorder;
pub mod rule;
pub mod sink;

use crate::model::TimeMs;
use serde::{Deserialize, Serialize};

pub use directory::ActivationDirectory;
pub use dispatcher::{DispatchStats, Dispatcher};
pub use partition::{Partition, PartitionInput, ReadingSlice};
pub use rule::{ActivationInfo, Rule, RuleContext, RuleFactory};
pub use sink::{Output, Sink, VecSink};

/// Pipeline settings that change outputs. Part of every alert's provenance via the rule version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// How long (event time) an activation's readings are held to be put in order before rules
    /// see them. 0 = a batch is ordered within itself and anything older than what was already
    /// evaluated is processed as late. Larger values trade alert latency for fewer late outputs.
    pub reorder_ms: TimeMs,
    /// No reading from a live activation for this long (event time) raises `no_contact`.
    pub no_contact_ms: TimeMs,
    /// A reading more than this far ahead of its batch's arrival does not move the clock
    /// (protects every activation's deadlines from one tag with a wrong clock).
    pub max_future_ms: TimeMs,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            reorder_ms: 0,
            no_contact_ms: 60 * 60 * 1000,
            max_future_ms: 24 * 60 * 60 * 1000,
        }
    }
}
