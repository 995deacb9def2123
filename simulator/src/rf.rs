//! The home monitoring unit (HMU), one at each curfew address: it reports whether the ankle tag
//! is in RF range of a unit, on every change and as a heartbeat every 30 minutes, and nothing
//! while its power is off (the power loss and restoration are reported as events). A flat tag is
//! out of range: the unit cannot tell a dead battery from an absent wearer, which is why the rules
//! must look at both.

use tagstream::model::{Reading, ReadingBody, TimeMs};

/// Heartbeat interval of the home unit.
pub const HEARTBEAT_MS: i64 = 30 * 60_000;

/// The HMU's reporting state.
#[derive(Clone, Debug, Default)]
pub struct Hmu {
    last: Option<bool>,
    next_heartbeat_ms: TimeMs,
}

impl Hmu {
    /// Observes the tag at `t_ms`; returns the reading to report, if any.
    pub fn observe(&mut self, t_ms: TimeMs, in_range: bool, powered: bool) -> Option<Reading> {
        if !powered {
            return None;
        }
        if self.last == Some(in_range) && t_ms < self.next_heartbeat_ms {
            return None;
        }
        self.last = Some(in_range);
        self.next_heartbeat_ms = t_ms + HEARTBEAT_MS;
        Some(Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Rf { in_range },
        })
    }
}
