//! Per-activation reorder buffer: holds readings until the activation's watermark lets them go,
//! then releases them in event-time order.
//!
//! The watermark is `max event time seen − reorder_ms`. A reading older than what was already
//! released is *late*: it is not buffered but handed on at once, flagged, so rules still see it.

use crate::model::{Reading, TimeMs};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Readings waiting for the watermark, ordered by (event time, arrival order).
#[derive(Debug, Default)]
pub struct ReorderBuffer {
    pending: BinaryHeap<Reverse<(TimeMs, u64, ReadingKey)>>,
    arrivals: u64,
    max_seen_ms: Option<TimeMs>,
    released_ms: Option<TimeMs>,
}

/// Heap entries carry the reading by value; the wrapper gives it a total order (by nothing:
/// ties are broken by arrival number before this is compared).
#[derive(Debug, Clone, Copy)]
struct ReadingKey(Reading);

impl PartialEq for ReadingKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ReadingKey {}
impl PartialOrd for ReadingKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ReadingKey {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Where a reading went on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Buffered,
    /// Older than what was already released: process now, marked late.
    Late,
}

impl ReorderBuffer {
    /// The event time up to which readings have been released (the activation's watermark).
    pub fn released_ms(&self) -> Option<TimeMs> {
        self.released_ms
    }

    pub fn max_seen_ms(&self) -> Option<TimeMs> {
        self.max_seen_ms
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Event time of the oldest held reading.
    pub fn oldest_pending_ms(&self) -> Option<TimeMs> {
        self.pending.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn admit(&mut self, reading: Reading) -> Admission {
        if self.released_ms.is_some_and(|w| reading.t_ms < w) {
            return Admission::Late;
        }
        self.max_seen_ms = Some(
            self.max_seen_ms
                .map_or(reading.t_ms, |m| m.max(reading.t_ms)),
        );
        self.arrivals += 1;
        self.pending
            .push(Reverse((reading.t_ms, self.arrivals, ReadingKey(reading))));
        Admission::Buffered
    }

    /// Releases, oldest first, every held reading with event time `<= up_to_ms`.
    pub fn release(&mut self, up_to_ms: TimeMs, mut each: impl FnMut(Reading)) {
        while let Some(Reverse((t, _, _))) = self.pending.peek() {
            if *t > up_to_ms {
                break;
            }
            let Some(Reverse((t, _, ReadingKey(r)))) = self.pending.pop() else {
                break;
            };
            self.released_ms = Some(self.released_ms.map_or(t, |w| w.max(t)));
            each(r);
        }
    }
}

/// A [`ReorderBuffer`] in a snapshot: pending readings in release order (event time, then
/// arrival).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ReorderState {
    pending: Vec<(TimeMs, u64, super::snapshot::ReadingRepr)>,
    arrivals: u64,
    max_seen_ms: Option<TimeMs>,
    released_ms: Option<TimeMs>,
}

impl ReorderBuffer {
    pub fn save(&self) -> ReorderState {
        use super::snapshot::Snap;
        let mut pending: Vec<_> = self
            .pending
            .iter()
            .map(|Reverse((t_ms, arrival, ReadingKey(r)))| (*t_ms, *arrival, r.to_repr()))
            .collect();
        pending.sort_by_key(|(t_ms, arrival, _)| (*t_ms, *arrival));
        ReorderState {
            pending,
            arrivals: self.arrivals,
            max_seen_ms: self.max_seen_ms,
            released_ms: self.released_ms,
        }
    }

    pub fn restore(state: ReorderState) -> Self {
        use super::snapshot::Snap;
        Self {
            pending: state
                .pending
                .into_iter()
                .map(|(t_ms, arrival, r)| {
                    Reverse((t_ms, arrival, ReadingKey(Reading::from_repr(r))))
                })
                .collect(),
            arrivals: state.arrivals,
            max_seen_ms: state.max_seen_ms,
            released_ms: state.released_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceEvent, ReadingBody};

    fn ev(t_ms: TimeMs) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Event(DeviceEvent::Charging),
        }
    }

    #[test]
    fn releases_in_event_time_order_and_flags_older_readings_late() {
        let mut buf = ReorderBuffer::default();
        for t in [30, 10, 20] {
            assert_eq!(buf.admit(ev(t)), Admission::Buffered);
        }
        let mut out = vec![];
        buf.release(25, |r| out.push(r.t_ms));
        assert_eq!(out, vec![10, 20]);
        assert_eq!(buf.admit(ev(15)), Admission::Late);
        assert_eq!(buf.admit(ev(20)), Admission::Buffered);
        buf.release(100, |r| out.push(r.t_ms));
        assert_eq!(out, vec![10, 20, 20, 30]);
    }
}
