//! Retention and subject access (domain page, section 6): records are kept only as long as
//! policy allows, then purged; a person's data can be exported whole.
//!
//! This module applies the retention policy ([`crate::config::RetentionConfig`]: how long after
//! an activation ends its data is kept) in the purge job ([`purge::Purger`]: what is deleted, in
//! which order, and the durable record of each run; [`schedule`]: when it runs), and owns the subject access export
//! ([`subject_access`]) and the offline commands over a stopped server's data directory
//! ([`offline`]). The stores do the deleting themselves: the log compacts
//! ([`crate::log::compact`]), the trail store deletes an activation, the alert store deletes
//! alerts with their reviews and events, the metadata database deletes records in one
//! transaction. Stores the job does not know by name plug in through
//! [`crate::store::PurgeTarget`], which lives with the stores (retention imports store, never
//! the reverse).

pub mod offline;
pub mod purge;
pub mod schedule;
pub mod subject_access;

pub use purge::{PurgeCounts, PurgeLog, PurgeReport, Purger, RetentionError};

use crate::model::{Order, TimeMs};
use crate::rules::local_time::local_midnight_ms;

/// Whether an order ended (at the end of its `to` date, UK local time) at or before `cutoff_ms`.
/// An open-ended order never has.
pub fn order_ended_by(order: &Order, cutoff_ms: TimeMs) -> bool {
    order
        .to
        .and_then(|to| to.succ_opt())
        .is_some_and(|next| local_midnight_ms(next) <= cutoff_ms)
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
}
