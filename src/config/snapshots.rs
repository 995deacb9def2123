//! `[snapshots]`: whether a node starts from its checkpoint (the state at the end of its last
//! start-up replay) and replays only the log after it, and (cluster mode) how often the holder
//! of the `snapshots` lease takes a snapshot of the live cluster. Plain data;
//! `topology::checkpoint` and `topology::snapshot_follower` apply it.

use serde::{Deserialize, Serialize};

/// Node checkpoint settings (`[snapshots]` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// Write a checkpoint at the end of each start-up replay and start from it next time
    /// (default on). Off: every start replays the whole log, and no checkpoint is written.
    pub enabled: bool,
    /// Cluster mode: the node holding the `snapshots` lease follows the stream into a scratch
    /// data directory and uploads a snapshot of it at most this often, in seconds (default
    /// 3600; 0: no live snapshots, the bucket moves only when a node starts).
    pub live_interval_s: u64,
    /// Cluster mode: a live snapshot is also taken once the stream has grown by this many
    /// records since the last one, before the interval is up (default 1 000 000; 0: by time
    /// only).
    pub live_records: u64,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            live_interval_s: 3600,
            live_records: 1_000_000,
        }
    }
}
