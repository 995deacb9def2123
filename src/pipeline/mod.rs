//! The pipeline: log order in, rule outputs out.
//!
//! `dispatcher` turns batches (in log order) into per-partition inputs; each `partition` owns the
//! state of its activations (one owner, no locks), reorders readings by event time (`reorder`)
//! and runs the `rule`s; outputs go through one `sink` interface. `driver` runs partitions
//! inline (replay) or as tasks (live) — the same code either way. `clock` is the event-time
//! clock that drives deadlines (no contact, curfew settling, day settling) and decides which
//! readings are too far ahead of it (or too old) to be fed to the rules.

pub mod amendment;
pub mod clock;
pub mod dispatcher;
pub mod driver;
pub mod partition;
pub mod reorder;
pub mod rule;
pub mod sink;
pub mod snapshot;

use crate::model::TimeMs;
use serde::{Deserialize, Serialize};

/// The activation directory is a model type (`model::directory`); re-exported where the
/// pipeline's users have always found it.
pub use crate::model::directory::{shared_directory, ActivationDirectory, SharedDirectory};
pub use clock::{EventClock, PipelineGauges};
pub use dispatcher::{DispatchStats, Dispatcher};
pub use partition::{Partition, PartitionInput, ReadingSlice};
pub use rule::{ActivationInfo, Rule, RuleContext, RuleFactory, RuleSet};
pub use sink::{Fanout, Output, Provenance, Sink, VecSink};

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
    /// A reading more than this far ahead of its batch's arrival (the server's own clock, recorded
    /// in the log) is `clock_ahead`: stored, not fed to the rules until the clock catches up.
    pub max_future_ms: TimeMs,
    /// The event-time clock is the greatest latest event time of the live tags once the top
    /// `max(1, clock_trim · live tags)` are set aside (see `docs/rules.md`, "The event-time
    /// clock"): no single tag can move it.
    pub clock_trim: f64,
    /// How many event-time clocks there are: 1 (the default) is one clock over every tag; more
    /// gives each partition of tags (`model::tag_partition`, the stream's partitions in a
    /// cluster) its own clock computed from that partition's readings alone, so that a node
    /// reading only some partitions gives exactly the outputs a full replay gives for them
    /// (`docs/rules.md`, "Clock partitions").
    pub clock_partitions: u32,
    /// A tag is live while a batch of it arrived within this long of the newest arrival in the
    /// log (when arrival times are unknown: while its latest event time is within this of the
    /// clock).
    pub live_window_ms: TimeMs,
    /// Once the clock is established, a reading more than this far ahead of both the clock
    /// (aged by the recorded arrival time since it last advanced) and its tag's own latest
    /// admitted reading is `clock_ahead`.
    pub max_skew_ms: TimeMs,
    /// The skew bound applies only while at least this many tags are live (with fewer, no
    /// quantile can tell a wrong tag from a right one; the arrival bound still applies).
    pub min_clock_tags: usize,
    /// A reading older than the clock minus this is stored and counted but not fed to the rules.
    pub late_horizon_ms: TimeMs,
    /// At most this many `clock_ahead` readings are held per activation for when the clock
    /// catches up; beyond, they are counted and left out of the rules (they stay in the log).
    pub max_held_per_activation: usize,
    /// Each activation keeps its inputs (up to this many readings, the oldest dropped first) so
    /// that a change to its orders or period can re-evaluate them; outputs older than what is
    /// kept are left as they are.
    pub amend_max_readings: usize,
    /// ... and only the inputs within this much event time of its newest reading: the horizon
    /// a backdated change can reach back (default 7 days).
    pub amend_horizon_ms: TimeMs,
    /// ... and at most this many bytes of them (encoded, clock entries included, counted by
    /// 4 KiB blocks), the oldest dropped first: what bounds an activation's memory whatever its
    /// tag sends. A typical week (a GPS fix a minute, each uploaded on its own, with TAC, RF and
    /// device readings; `amendment::tests::a_week_of_one_minute_fixes_fits_in_the_default_budget`)
    /// encodes to 172 KB, 16.5 bytes a reading, so the default 256 KiB keeps it whole with a
    /// third to spare. 15,000 activations hold at most 15,000 × 256 KiB = 3.7 GiB of tapes, a
    /// fleet of such typical tags 15,000 × 172 KB = 2.4 GiB.
    pub amend_max_bytes: usize,
}

impl PipelineConfig {
    /// What each activation's amendment tape keeps.
    pub fn tape_limits(&self) -> amendment::TapeLimits {
        amendment::TapeLimits {
            max_readings: self.amend_max_readings,
            max_bytes: self.amend_max_bytes,
            horizon_ms: self.amend_horizon_ms,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            reorder_ms: 0,
            no_contact_ms: 60 * 60 * 1000,
            max_future_ms: 24 * 60 * 60 * 1000,
            clock_trim: 0.05,
            clock_partitions: 1,
            live_window_ms: 2 * 60 * 60 * 1000,
            max_skew_ms: 2 * 60 * 60 * 1000,
            amend_max_readings: 50_000,
            amend_horizon_ms: 7 * 24 * 60 * 60 * 1000,
            amend_max_bytes: 256 * 1024,
            min_clock_tags: 3,
            late_horizon_ms: 30 * 24 * 60 * 60 * 1000,
            max_held_per_activation: 1024,
        }
    }
}
