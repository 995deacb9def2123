//! Retention and subject access (domain page, section 6): records are kept only as long as
//! policy allows, then purged; a person's data can be exported whole.
//!
//! This module owns the retention policy ([`RetentionConfig`]: how long after an activation ends
//! its data is kept), the purge job ([`purge::Purger`]: what is deleted, in which order, and the
//! durable record of each run), the hook other stores plug into ([`PurgeTarget`]), the subject
//! access export ([`subject_access`]) and the offline commands over a stopped server's data
//! directory ([`offline`]). The stores do the deleting themselves: the log compacts
//! ([`crate::log::compact`]), the trail store deletes an activation, the alert store deletes
//! alerts with their reviews and events, the metadata database deletes records in one
//! transaction.

pub mod offline;
pub mod purge;
pub mod subject_access;

pub use purge::{LogSealer, PurgeCounts, PurgeReport, Purger, RetentionError};

use crate::model::{Order, TimeMs};
use crate::rules::local_time::local_midnight_ms;
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

/// Whether an order ended (at the end of its `to` date, UK local time) at or before `cutoff_ms`.
/// An open-ended order never has.
pub fn order_ended_by(order: &Order, cutoff_ms: TimeMs) -> bool {
    order
        .to
        .and_then(|to| to.succ_opt())
        .is_some_and(|next| local_midnight_ms(next) <= cutoff_ms)
}

/// The error a [`PurgeTarget`] reports: its own typed error, boxed.
pub type TargetError = Box<dyn std::error::Error + Send + Sync>;

/// A store holding data keyed by activation that retention must purge too — the hook for stores
/// added later (e.g. crime hits). The purge job calls every target for every activation it
/// purges, after the log and the built-in stores and before the activation's metadata is
/// deleted; an error stops the run before anything is recorded, and the next run repeats it.
pub trait PurgeTarget: Send + Sync {
    /// Key of this target's count in the purge report (e.g. `crime_hits`).
    fn name(&self) -> &'static str;
    /// Deletes, durably, everything held for `activation`; returns how many items were deleted.
    /// Must be idempotent: a run interrupted by a crash is repeated in full.
    fn purge_activation(&self, activation: &str) -> Result<u64, TargetError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn order(to: Option<&str>) -> Order {
        serde_json::from_value(serde_json::json!({
            "id": "O1", "person": "P1", "from": "2020-01-01", "to": to, "conditions": []
        }))
        .unwrap()
    }

    #[test]
    fn an_order_ends_at_the_end_of_its_last_day_in_uk_time() {
        // 2026-06-30 ends at 2026-07-01T00:00 BST = 2026-06-30T23:00Z.
        let end = local_midnight_ms(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(
            end,
            crate::model::time::parse_time("2026-06-30T23:00:00Z").unwrap()
        );
        assert!(order_ended_by(&order(Some("2026-06-30")), end));
        assert!(!order_ended_by(&order(Some("2026-06-30")), end - 1));
        assert!(!order_ended_by(&order(None), i64::MAX));
    }

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
