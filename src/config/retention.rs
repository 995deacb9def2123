//! `[retention]`: how long data is kept after an activation ends, and how often the purge runs.
//! Plain data; the purge job (`crate::retention`) applies it.

use crate::model::TimeMs;
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// Retention settings (`[retention]` in the server config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days an activation's data (positions, readings, alerts, sober days) is kept after the
    /// activation ends; a person, their orders and the audit records about them go once they
    /// have no activation left and every order ended this long ago. Default 2192 days (6 years):
    /// the period probation case records are commonly kept after supervision ends, and the
    /// limitation period for most civil claims (Limitation Act 1980), during which the record of
    /// what was monitored may be needed. The data controller's schedule decides the real value.
    pub days_after_end: u32,
    /// Hours between the server's scheduled purge runs (the first runs a minute after start);
    /// 0 turns the schedule off (runs then come only from the admin route or the CLI).
    pub run_every_hours: u32,
    /// Whether `POST /v1/admin/retention/run?now=…` may judge retention against a time other
    /// than the wall clock. Off by default: a purge cannot be undone, and a mistyped future
    /// `now` would purge early. Tests and rehearsals on copies of the data turn it on.
    pub allow_now_override: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days_after_end: 2192,
            run_every_hours: 24,
            allow_now_override: false,
        }
    }
}

impl RetentionConfig {
    /// Activations that ended at or before this instant are due at `now_ms`.
    pub fn cutoff_ms(&self, now_ms: TimeMs) -> TimeMs {
        now_ms.saturating_sub(i64::from(self.days_after_end) * DAY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_retention_period_before_now() {
        let c = RetentionConfig {
            days_after_end: 2,
            ..RetentionConfig::default()
        };
        assert_eq!(c.cutoff_ms(5 * DAY_MS), 3 * DAY_MS);
        assert_eq!(RetentionConfig::default().cutoff_ms(i64::MIN), i64::MIN);
    }
}
