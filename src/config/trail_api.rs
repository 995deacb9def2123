//! `[trail_api]`: limits on trail requests. Plain data, read by the API's trail routes.

use serde::{Deserialize, Serialize};

/// Limits on trail requests (proportionate disclosure: only the period asked for, bounded).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrailApiConfig {
    pub max_period_days: i64,
    pub page_positions: usize,
}

impl Default for TrailApiConfig {
    fn default() -> Self {
        Self {
            max_period_days: 31,
            page_positions: 20_000,
        }
    }
}
