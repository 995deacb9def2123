//! A curfew condition compiled once per order: its addresses, its weekly slots and its dates,
//! and the lazy expansion of those into concrete UTC windows for one activation.
//!
//! Windows belong to the local date they start on: an order monitors, in full, every window that
//! starts on a local date from its `from` to its `to` date inclusive (so the last evening's
//! overnight window runs to its morning end). Of those, an activation watches the windows that
//! start while it is live, each cut short at the activation's end if that comes first.
//!
//! The EMAC **release-day curfew** (17:00–00:00 for at most 48 hours after release) needs no
//! extension of the orders contract: it is an order of its own whose dates are the release day and
//! the day after, with a curfew condition whose timetable is `17:00`–`00:00` on every day.

use super::super::geodesy::LocalProjection;
use super::super::local_time::{local_date, Interval, LocalTimeError, SlotCalendar, WeeklySlot};
use crate::model::{CurfewCondition, Order, TimeMs};
use chrono::{Duration, NaiveDate};

/// Why a curfew condition cannot be monitored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CurfewPlanError {
    #[error("order '{order}' curfew: {source}")]
    Time {
        order: String,
        #[source]
        source: LocalTimeError,
    },
    #[error("order '{order}' curfew: timetable[{entry}] names unknown address '{address}'")]
    UnknownAddress {
        order: String,
        entry: usize,
        address: String,
    },
    #[error("order '{order}' curfew: {message}")]
    Invalid { order: String, message: String },
}

/// One curfew address.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanAddress {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    /// The metric plane around the address that distances are measured in.
    pub projection: LocalProjection,
    /// Marked `hmu` in the orders: the home monitoring unit is installed here.
    pub hmu: bool,
    /// RF presence counts for windows at this address: it is at a place with a home monitoring
    /// unit, or no curfew address of the person is marked `hmu` (RF then counts everywhere).
    pub rf_counts: bool,
    /// An RF "in range" reading places the person away from this address: RF does not count here
    /// and the address does not overlap any unit's address, so being in range of a unit means
    /// being somewhere else.
    pub rf_in_range_is_away: bool,
}

/// Where the person's home monitoring units are: the addresses marked `hmu` in any of their
/// curfews, as `(lat, lon, radius_m)`.
fn units_of<'a>(addresses: impl Iterator<Item = &'a PlanAddress>) -> Vec<(f64, f64, f64)> {
    addresses
        .filter(|a| a.hmu)
        .map(|a| (a.lat, a.lon, a.radius_m))
        .collect()
}

/// Sets `rf_counts` and `rf_in_range_is_away` of `address` given the person's units (see
/// `docs/rules.md`, "Presence"). An address is at a unit when either circle holds the other's
/// centre (the same place written twice, e.g. by a release-day order); it is apart from a unit
/// when the circles do not meet.
fn judge_address(address: &mut PlanAddress, units: &[(f64, f64, f64)]) {
    if units.is_empty() {
        address.rf_counts = true;
        address.rf_in_range_is_away = false;
        return;
    }
    let distance_m = |&(lat, lon, _): &(f64, f64, f64)| {
        let (x, y) = address.projection.to_xy(lat, lon);
        (x * x + y * y).sqrt()
    };
    address.rf_counts = address.hmu
        || units
            .iter()
            .any(|u| distance_m(u) <= address.radius_m.max(u.2));
    address.rf_in_range_is_away =
        !address.rf_counts && units.iter().all(|u| distance_m(u) > address.radius_m + u.2);
}

/// Applies what every curfew of one person says about the home monitoring unit to all of them:
/// a unit marked in one order also decides where RF counts in the person's other orders.
pub fn apply_person_units(plans: &mut [CurfewPlan]) {
    let units = units_of(plans.iter().flat_map(|p| p.addresses.iter()));
    for plan in plans {
        for address in &mut plan.addresses {
            judge_address(address, &units);
        }
    }
}

/// A compiled curfew condition, shared by every activation of the person.
#[derive(Debug, Clone, PartialEq)]
pub struct CurfewPlan {
    pub order_id: String,
    /// Index of the condition within the order (part of alert ids).
    pub condition_index: usize,
    pub grace_ms: TimeMs,
    pub addresses: Vec<PlanAddress>,
    pub slots: Vec<WeeklySlot>,
    pub from_date: NaiveDate,
    pub to_date: Option<NaiveDate>,
}

impl CurfewPlan {
    pub fn compile(
        order: &Order,
        condition_index: usize,
        curfew: &CurfewCondition,
    ) -> Result<Self, CurfewPlanError> {
        let invalid = |message: String| CurfewPlanError::Invalid {
            order: order.id.clone(),
            message,
        };
        if curfew.addresses.is_empty() || curfew.addresses.len() > 3 {
            return Err(invalid("a curfew needs 1 to 3 addresses".into()));
        }
        let mut addresses = Vec::with_capacity(curfew.addresses.len());
        for a in &curfew.addresses {
            if !(a.radius_m > 0.0 && a.lat.is_finite() && a.lon.is_finite()) {
                return Err(invalid(format!(
                    "address '{}' needs a position and a positive radius_m",
                    a.id
                )));
            }
            addresses.push(PlanAddress {
                id: a.id.clone(),
                lat: a.lat,
                lon: a.lon,
                radius_m: a.radius_m,
                projection: LocalProjection::new(a.lat, a.lon),
                hmu: a.hmu,
                rf_counts: true,
                rf_in_range_is_away: false,
            });
        }
        let marked: Vec<&str> = addresses
            .iter()
            .filter(|a| a.hmu)
            .map(|a| a.id.as_str())
            .collect();
        if marked.len() > 1 {
            return Err(invalid(format!(
                "addresses '{}' are all marked hmu: at most one has the home monitoring unit",
                marked.join("', '")
            )));
        }
        // On its own the condition knows only its own unit; `apply_person_units` widens this to
        // the person's other orders.
        let units = units_of(addresses.iter());
        for address in &mut addresses {
            judge_address(address, &units);
        }
        let mut slots = Vec::with_capacity(curfew.timetable.len());
        for (i, entry) in curfew.timetable.iter().enumerate() {
            let address = addresses
                .iter()
                .position(|a| a.id == entry.address)
                .ok_or_else(|| CurfewPlanError::UnknownAddress {
                    order: order.id.clone(),
                    entry: i,
                    address: entry.address.clone(),
                })?;
            let slot = WeeklySlot::parse(
                &entry.days,
                &entry.start,
                &entry.end,
                address,
                &format!("timetable[{i}]"),
            )
            .map_err(|source| CurfewPlanError::Time {
                order: order.id.clone(),
                source,
            })?;
            slots.push(slot);
        }
        if slots.is_empty() {
            return Err(invalid(
                "a curfew needs at least one timetable entry".into(),
            ));
        }
        Ok(Self {
            order_id: order.id.clone(),
            condition_index,
            grace_ms: curfew.grace_min as TimeMs * 60_000,
            addresses,
            slots,
            from_date: order.from,
            to_date: order.to,
        })
    }

    /// The windows one activation watches, in start order.
    pub fn windows_for(
        &self,
        activation_from_ms: TimeMs,
        activation_to_ms: Option<TimeMs>,
    ) -> ActivationWindows {
        // A window starting on the day before the activation's first local date may still be
        // running, but only windows starting while the activation is live are watched.
        let first = self
            .from_date
            .max(local_date(activation_from_ms) - Duration::days(1));
        ActivationWindows {
            calendar: SlotCalendar::new(self.slots.clone(), first, self.to_date),
            from_ms: activation_from_ms,
            to_ms: activation_to_ms,
        }
    }
}

/// The windows of one plan for one activation, produced lazily.
#[derive(Debug, Clone)]
pub struct ActivationWindows {
    calendar: SlotCalendar,
    from_ms: TimeMs,
    to_ms: Option<TimeMs>,
}

/// Where an [`ActivationWindows`] stands (its plan and period are configuration), so that a
/// restored rule resumes producing windows exactly where the saved one was.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WindowsCursor {
    next_date: NaiveDate,
    pending: Vec<Interval>,
}

impl ActivationWindows {
    pub fn cursor(&self) -> WindowsCursor {
        let (next_date, pending) = self.calendar.position();
        WindowsCursor { next_date, pending }
    }

    /// Resumes at `cursor`, taken from the windows of the same plan and activation.
    pub fn resume(&mut self, cursor: WindowsCursor) {
        self.calendar.resume_at(cursor.next_date, cursor.pending);
    }
}

impl Iterator for ActivationWindows {
    type Item = Interval;

    fn next(&mut self) -> Option<Interval> {
        loop {
            let mut w = self.calendar.next_interval()?;
            if self.to_ms.is_some_and(|to| w.start_ms >= to) {
                return None;
            }
            if w.start_ms < self.from_ms {
                continue;
            }
            if let Some(to) = self.to_ms {
                w.end_ms = w.end_ms.min(to);
            }
            return Some(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CurfewAddress, Day, TimetableEntry};

    /// A one-entry curfew order with addresses `(id, lat, lon, radius_m, hmu)`.
    fn plan(
        id: &str,
        addresses: &[(&str, f64, f64, f64, bool)],
    ) -> Result<CurfewPlan, CurfewPlanError> {
        let curfew = CurfewCondition {
            grace_min: 0,
            addresses: addresses
                .iter()
                .map(|&(id, lat, lon, radius_m, hmu)| CurfewAddress {
                    id: id.into(),
                    lat,
                    lon,
                    radius_m,
                    hmu,
                })
                .collect(),
            timetable: vec![TimetableEntry {
                days: vec![Day::Mon],
                start: "19:00".into(),
                end: "07:00".into(),
                address: addresses[0].0.into(),
            }],
        };
        let order = Order {
            id: id.into(),
            person: "P1".into(),
            from: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
            to: None,
            conditions: Vec::new(),
        };
        CurfewPlan::compile(&order, 0, &curfew)
    }

    fn judged(p: &CurfewPlan) -> Vec<(bool, bool)> {
        p.addresses
            .iter()
            .map(|a| (a.rf_counts, a.rf_in_range_is_away))
            .collect()
    }

    const HOME: (f64, f64) = (51.4545, -2.5879);
    /// About 3.5 km from home.
    const PARTNER: (f64, f64) = (51.4800, -2.6200);
    /// About 56 m north of home: its 50 m circle overlaps home's without holding its centre.
    const NEXT_DOOR: (f64, f64) = (51.4550, -2.5879);

    #[test]
    fn rf_counts_at_the_unit_and_in_range_is_absence_only_where_circles_do_not_meet() {
        let p = plan(
            "O1",
            &[
                ("home", HOME.0, HOME.1, 50.0, true),
                ("partner", PARTNER.0, PARTNER.1, 60.0, false),
                ("next", NEXT_DOOR.0, NEXT_DOOR.1, 50.0, false),
            ],
        )
        .expect("plan");
        assert_eq!(judged(&p), [(true, false), (false, true), (false, false)]);
        // Nothing marked: RF counts everywhere, as before the addition.
        let legacy = plan(
            "O2",
            &[
                ("home", HOME.0, HOME.1, 50.0, false),
                ("partner", PARTNER.0, PARTNER.1, 60.0, false),
            ],
        )
        .expect("plan");
        assert_eq!(judged(&legacy), [(true, false), (true, false)]);
    }

    #[test]
    fn a_unit_marked_in_one_order_decides_for_the_persons_other_orders() {
        let marked = plan("O1", &[("home", HOME.0, HOME.1, 50.0, true)]).expect("plan");
        let elsewhere = plan("O2", &[("p", PARTNER.0, PARTNER.1, 60.0, false)]).expect("plan");
        let same_home = plan("O3", &[("h", HOME.0 + 0.0002, HOME.1, 75.0, false)]).expect("plan");
        assert_eq!(judged(&elsewhere), [(true, false)], "alone: as before");
        let mut plans = vec![marked, elsewhere, same_home];
        apply_person_units(&mut plans);
        let all: Vec<_> = plans.iter().map(judged).collect();
        assert_eq!(all, [[(true, false)], [(false, true)], [(true, false)]]);
    }

    #[test]
    fn two_units_in_one_curfew_are_refused() {
        let err = plan(
            "O9",
            &[
                ("home", HOME.0, HOME.1, 50.0, true),
                ("partner", PARTNER.0, PARTNER.1, 60.0, true),
            ],
        )
        .expect_err("two units");
        assert_eq!(
            err.to_string(),
            "order 'O9' curfew: addresses 'home', 'partner' are all marked hmu: at most one has the home monitoring unit"
        );
    }
}
