//! `[snapshots]`: whether a node starts from its checkpoint (the state at the end of its last
//! start-up replay) and replays only the log after it. Plain data; `topology::checkpoint`
//! applies it.

use serde::{Deserialize, Serialize};

/// Node checkpoint settings (`[snapshots]` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotsConfig {
    /// Write a checkpoint at the end of each start-up replay and start from it next time
    /// (default on). Off: every start replays the whole log, and no checkpoint is written.
    pub enabled: bool,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}
