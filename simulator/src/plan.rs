//! Turning a person's weekly routine, orders and today's behaviour decisions into a trajectory for
//! one planning cycle: local noon to the next local noon, so that an overnight curfew window lies
//! wholly inside one cycle.
//!
//! A cycle: the afternoon (work until it ends, errands, injected zone breaches), the evening (home
//! before curfew, or a pub/friend outing when free; curfew breaches are injected here), the night,
//! and the morning (to work for the start of the shift, or an errand). Every departure is
//! constrained by the curfew deadline unless a breach was decided, so breaches happen at the
//! configured rates and not by accident; truth is nevertheless derived from the trajectory itself
//! (`truth`), so anything that does happen is recorded.

use crate::behaviour::Rates;
use crate::clock::{local_to_utc_ms, weekday_index, MINUTE_MS};
use crate::geo::Xy;
use crate::movement::{choose_mode, Kinematics, Mode, Trip};
use crate::orders::{SimZone, Window};
use crate::population::{PlaceKind, Profile};
use crate::rng::Rng;
use chrono::NaiveDate;
use tagstream::model::TimeMs;

/// A piece of a trajectory.
#[derive(Clone, Debug)]
pub enum Seg {
    /// At a place (or a point) over `[t0_ms, t1_ms)`.
    Stay {
        place: Option<usize>,
        pos: Xy,
        indoor: bool,
        t0_ms: TimeMs,
        t1_ms: TimeMs,
    },
    Move(Trip),
}

impl Seg {
    pub fn t0_ms(&self) -> TimeMs {
        match self {
            Seg::Stay { t0_ms, .. } => *t0_ms,
            Seg::Move(t) => t.start_ms(),
        }
    }
    pub fn t1_ms(&self) -> TimeMs {
        match self {
            Seg::Stay { t1_ms, .. } => *t1_ms,
            Seg::Move(t) => t.end_ms(),
        }
    }
}

/// A behaviour the planner deliberately injected, for labelling truth.
#[derive(Clone, Debug)]
pub struct Injected {
    pub label: &'static str,
    pub t0_ms: TimeMs,
    pub t1_ms: TimeMs,
    pub zone: Option<String>,
}

/// One cycle's trajectory.
#[derive(Clone, Debug)]
pub struct Plan {
    pub date: NaiveDate,
    pub segs: Vec<Seg>,
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
    pub injected: Vec<Injected>,
    /// Whether violations could be injected (false for the warm-up cycle and near the run's end).
    pub violations_allowed: bool,
    cursor: usize,
}

/// Where the person is at an instant.
#[derive(Clone, Copy, Debug)]
pub struct Where {
    pub kin: Kinematics,
    pub indoor: bool,
    pub place: Option<usize>,
    pub mode: Option<Mode>,
}

impl Plan {
    /// The place the cycle ends at.
    pub fn end_place(&self) -> (Option<usize>, Xy) {
        match self.segs.last() {
            Some(Seg::Stay { place, pos, .. }) => (*place, *pos),
            Some(Seg::Move(t)) => (None, *t.pts.last().unwrap_or(&Xy::default())),
            None => (Some(0), Xy::default()),
        }
    }

    /// Where the person is at `t_ms` (which should lie in the plan); cheap for increasing times.
    pub fn at(&mut self, t_ms: TimeMs) -> Where {
        if self.cursor >= self.segs.len() || self.segs[self.cursor].t0_ms() > t_ms {
            self.cursor = 0;
        }
        while self.cursor + 1 < self.segs.len() && self.segs[self.cursor].t1_ms() <= t_ms {
            self.cursor += 1;
        }
        self.where_in(self.cursor, t_ms)
    }

    /// Stateless lookup.
    pub fn at_stateless(&self, t_ms: TimeMs) -> Where {
        let i = self
            .segs
            .partition_point(|s| s.t1_ms() <= t_ms)
            .min(self.segs.len().saturating_sub(1));
        self.where_in(i, t_ms)
    }

    fn where_in(&self, i: usize, t_ms: TimeMs) -> Where {
        match &self.segs[i] {
            Seg::Stay {
                place, pos, indoor, ..
            } => Where {
                kin: Kinematics {
                    pos: *pos,
                    speed_kmh: 0.0,
                    heading_deg: None,
                },
                indoor: *indoor,
                place: *place,
                mode: None,
            },
            Seg::Move(trip) => Where {
                kin: trip.at(t_ms),
                indoor: false,
                place: None,
                mode: Some(trip.mode),
            },
        }
    }
}

enum Depart {
    At(TimeMs),
    ArriveBy(TimeMs),
}

struct Builder<'a> {
    p: &'a Profile,
    rng: &'a mut Rng,
    discs: Vec<(Xy, f64)>,
    segs: Vec<Seg>,
    place: Option<usize>,
    pos: Xy,
    indoor: bool,
    stay_from: TimeMs,
}

/// Exclusion zones as (centre, radius enclosing the zone) for route avoidance.
fn exclusion_discs(p: &Profile) -> Vec<(Xy, f64)> {
    p.rules
        .zones
        .iter()
        .filter(|z| z.exclusion)
        .map(|z| {
            let c = z.shape.centre();
            let r = match &z.shape {
                crate::orders::Shape::Circle { radius_m, .. } => *radius_m,
                crate::orders::Shape::Polygon(poly) => poly.rings.first().map_or(0.0, |ring| {
                    ring.iter().map(|q| q.dist_m(c)).fold(0.0, f64::max)
                }),
            };
            (c, r + 30.0)
        })
        .collect()
}

/// Plans a trip; a routine trip (no forced waypoint) is re-drawn up to four times to keep clear of
/// the person's exclusion zones, as people who know their zones do. Deterministic in `rng`.
#[allow(clippy::too_many_arguments)]
fn plan_trip(
    rng: &mut Rng,
    discs: &[(Xy, f64)],
    mode: Mode,
    a: Xy,
    b: Xy,
    via: Option<Xy>,
    t0_ms: TimeMs,
    walk_kmh: f64,
) -> Trip {
    let mut trip = Trip::plan(rng, mode, a, b, via, t0_ms, walk_kmh);
    if via.is_some()
        || discs
            .iter()
            .any(|(c, r)| c.dist_m(b) <= *r || c.dist_m(a) <= *r)
    {
        return trip;
    }
    let crosses = |t: &Trip| {
        discs.iter().any(|(c, r)| {
            t.pts
                .windows(2)
                .any(|w| crate::geo::seg_dist_m(*c, w[0], w[1]).0 <= *r)
        })
    };
    for _ in 0..4 {
        if !crosses(&trip) {
            break;
        }
        trip = Trip::plan(rng, mode, a, b, None, t0_ms, walk_kmh);
    }
    trip
}

impl Builder<'_> {
    fn trip_duration(&mut self, to: Xy, mode: Mode, via: Option<Xy>) -> TimeMs {
        let mut probe = self.rng.clone();
        plan_trip(
            &mut probe,
            &self.discs,
            mode,
            self.pos,
            to,
            via,
            0,
            self.p.walk_kmh,
        )
        .duration_ms()
    }

    fn mode_to(&mut self, to: Xy) -> Mode {
        let d = self.pos.dist_m(to);
        choose_mode(self.rng, d, self.p.has_car, self.p.has_bike)
    }

    /// Travels to a destination; returns the arrival time.
    fn go(
        &mut self,
        place: Option<usize>,
        to: Xy,
        indoor: bool,
        depart: Depart,
        via: Option<Xy>,
        mode: Option<Mode>,
    ) -> TimeMs {
        let mode = mode.unwrap_or_else(|| self.mode_to(to));
        let earliest = self.stay_from + MINUTE_MS;
        let dep = match depart {
            Depart::At(t) => t.max(earliest),
            Depart::ArriveBy(t) => {
                let d = self.trip_duration(to, mode, via);
                (t - d).max(earliest)
            }
        };
        let trip = plan_trip(
            self.rng,
            &self.discs,
            mode,
            self.pos,
            to,
            via,
            dep,
            self.p.walk_kmh,
        );
        let arrive = trip.end_ms();
        self.segs.push(Seg::Stay {
            place: self.place,
            pos: self.pos,
            indoor: self.indoor,
            t0_ms: self.stay_from,
            t1_ms: dep,
        });
        self.segs.push(Seg::Move(trip));
        self.place = place;
        self.pos = to;
        self.indoor = indoor;
        self.stay_from = arrive;
        arrive
    }

    fn go_place(&mut self, idx: usize, depart: Depart) -> TimeMs {
        let pl = self.p.places[idx];
        self.go(Some(idx), pl.pos, pl.indoor, depart, None, None)
    }

    /// Worst-case travel time from `a` to `b` (a slow walk or bus), for deadline checks.
    fn slow_travel_ms(&self, a: Xy, b: Xy) -> TimeMs {
        let d = a.dist_m(b) * 1.4;
        let walk = d / (self.p.walk_kmh / 3.6);
        let bus = 480.0 + d / (12.0 / 3.6);
        let best = if d < 2500.0 { walk } else { bus.min(walk) };
        (best * 1000.0) as i64 + 5 * MINUTE_MS
    }
}

/// Inputs that do not change within a run.
pub struct PlanContext<'a> {
    pub rates: &'a Rates,
    /// Violations are injected only in cycles that end by this instant.
    pub violations_until_ms: TimeMs,
}

fn pick_kind(p: &Profile, rng: &mut Rng, kinds: &[PlaceKind]) -> Option<usize> {
    let cands: Vec<usize> = (0..p.places.len())
        .filter(|i| kinds.contains(&p.places[*i].kind))
        .collect();
    (!cands.is_empty()).then(|| cands[rng.index(cands.len())])
}

/// Plans the cycle of local date `date` (noon to next noon), starting at `start` at `start_ms`.
pub fn plan_cycle(
    p: &Profile,
    ctx: &PlanContext,
    rng: &mut Rng,
    date: NaiveDate,
    start: (Option<usize>, Xy),
    start_ms: TimeMs,
    allow: bool,
) -> Plan {
    let lt = |m: i64| local_to_utc_ms(date, m);
    let noon_next = lt(36 * 60);
    let allow = allow && noon_next <= ctx.violations_until_ms;
    let rates = ctx.rates;
    let wd = weekday_index(date);
    let wd_next = (wd + 1) % 7;
    let works = |d: usize| p.work.is_some() && p.work_days & (1 << d) != 0;
    let start_indoor = start.0.is_some_and(|i| p.places[i].indoor);
    let mut b = Builder {
        p,
        rng,
        discs: exclusion_discs(p),
        segs: Vec::new(),
        place: start.0,
        pos: start.1,
        indoor: start_indoor,
        stay_from: start_ms,
    };
    let mut injected = Vec::new();
    let windows: Vec<Window> = p.rules.windows_starting(date);
    let w = windows.first().cloned();
    let home_idx = w.as_ref().map_or(0, |w| w.place);
    let home_pos = p.places[home_idx].pos;
    // Latest time to be back home tonight when compliant.
    let deadline = match &w {
        Some(w) => w.start_ms - b.rng.int(5, 45) * MINUTE_MS,
        None => lt(23 * 60 + 30),
    };

    // Curfew behaviour for tonight.
    #[derive(PartialEq)]
    enum Night {
        Normal,
        Late(i64),
        WithinGrace(i64),
        Absent,
        LeaveDuring,
        OutAtEnd,
    }
    let mut night = Night::Normal;
    if let (Some(w), true) = (&w, allow) {
        let u = b.rng.f64();
        let mut acc = 0.0;
        let grace = w.grace_min as i64;
        for (rate, choice) in [
            (rates.scaled(rates.whole_night_absence), 0),
            (rates.scaled(rates.late_return), 1),
            (rates.scaled(rates.within_grace), 2),
            (rates.scaled(rates.leave_during_curfew), 3),
            (rates.scaled(rates.out_at_end), 4),
        ] {
            acc += rate;
            if u < acc {
                night = match choice {
                    0 => Night::Absent,
                    1 => Night::Late((grace + b.rng.int(10, 120)) * MINUTE_MS),
                    2 if grace >= 5 => Night::WithinGrace(b.rng.int(30, (grace - 2) * 60) * 1000),
                    2 => Night::Normal,
                    3 => Night::LeaveDuring,
                    _ => Night::OutAtEnd,
                };
                break;
            }
        }
    }

    // Where a late or absent night is spent (chosen now: it may start straight from work).
    let outing = match night {
        Night::Late(_) | Night::WithinGrace(_) => {
            pick_kind(p, b.rng, &[PlaceKind::Pub, PlaceKind::Friend])
        }
        Night::Absent => pick_kind(p, b.rng, &[PlaceKind::Friend, PlaceKind::Pub]),
        _ => None,
    };
    let mut from_work_to_outing = false;
    // Afternoon: leave work, errands, injected zone breaches.
    if b.place.is_some() && b.place == p.work {
        let end = lt(p.work_end_min);
        let back = b.slow_travel_ms(b.pos, home_pos);
        if let Some(dest) = outing {
            b.go_place(dest, Depart::At(end));
            from_work_to_outing = true;
        } else if end + back > deadline && night == Night::Normal {
            b.go_place(home_idx, Depart::ArriveBy(deadline));
        } else {
            b.go_place(0, Depart::At(end));
            if home_idx != 0 {
                b.stay_from += 30 * MINUTE_MS;
            }
        }
    }
    // An errand: a place to visit, or an injected zone breach (point, label, zone id).
    type Errand = (Option<usize>, Option<(Xy, &'static str, String)>);
    let mut errands: Vec<Errand> = Vec::new();
    if allow && !from_work_to_outing {
        for z in &p.rules.zones {
            let (r_pass, r_dwell) = if z.exclusion {
                (
                    rates.scaled(rates.exclusion_pass),
                    rates.scaled(rates.exclusion_dwell),
                )
            } else {
                (0.0, 0.0)
            };
            let u = b.rng.f64();
            if u < r_pass {
                errands.push((
                    None,
                    Some((zone_point(z, b.rng), "exclusion_pass_through", z.id.clone())),
                ));
            } else if u < r_pass + r_dwell {
                errands.push((
                    None,
                    Some((zone_point(z, b.rng), "exclusion_dwell", z.id.clone())),
                ));
            }
            if !z.exclusion && p.far.is_some() && b.rng.chance(rates.scaled(rates.inclusion_exit)) {
                errands.push((p.far, None));
            }
        }
    }
    if b.rng.chance(0.5) && !from_work_to_outing {
        errands.push((pick_kind(p, b.rng, &[PlaceKind::Shop]), None));
    }
    if b.rng.chance(0.25) && !from_work_to_outing {
        errands.push((
            pick_kind(
                p,
                b.rng,
                &[PlaceKind::Friend, PlaceKind::Gym, PlaceKind::Town],
            ),
            None,
        ));
    }
    let afternoon_start = b.stay_from.max(lt(12 * 60 + 30));
    let mut t = afternoon_start + b.rng.int(0, 90) * MINUTE_MS;
    for (place, special) in errands {
        match special {
            Some((pt, label, zone_id)) => {
                let z = p.rules.zones.iter().find(|z| z.id == zone_id);
                // Scheduled zones are breached only while they apply.
                let Some(z) = z else { continue };
                let Some(when) =
                    first_active(z, t.max(b.stay_from + MINUTE_MS), deadline - 90 * MINUTE_MS)
                else {
                    continue;
                };
                if label == "exclusion_pass_through" {
                    // Walk through the zone to a point on its far side, then carry on.
                    let c = z.shape.centre();
                    let r = z.shape.radius_m().max(100.0);
                    let dir = (c.x_m - b.pos.x_m).atan2(c.y_m - b.pos.y_m);
                    let beyond = c.add((r + 250.0) * dir.sin(), (r + 250.0) * dir.cos());
                    let leg_start = c.add(-(r + 250.0) * dir.sin(), -(r + 250.0) * dir.cos());
                    let a0 = b.go(None, leg_start, false, Depart::At(when), None, None);
                    let a1 = b.go(
                        None,
                        beyond,
                        false,
                        Depart::At(a0 + MINUTE_MS),
                        Some(c),
                        Some(Mode::Walk),
                    );
                    injected.push(Injected {
                        label,
                        t0_ms: a0,
                        t1_ms: a1,
                        zone: Some(z.id.clone()),
                    });
                    t = a1 + b.rng.int(1, 10) * MINUTE_MS;
                } else {
                    let arrive = b.go(None, pt, false, Depart::At(when), None, None);
                    let stay = b.rng.int(10, 45) * MINUTE_MS;
                    injected.push(Injected {
                        label,
                        t0_ms: arrive,
                        t1_ms: arrive + stay,
                        zone: Some(z.id.clone()),
                    });
                    t = arrive + stay;
                }
            }
            None => {
                let Some(idx) = place else { continue };
                let stay = if p.places[idx].kind == PlaceKind::Shop {
                    b.rng.int(15, 60)
                } else {
                    b.rng.int(45, 150)
                } * MINUTE_MS;
                let dep = t.max(b.stay_from + MINUTE_MS);
                let to = p.places[idx].pos;
                let back = b.slow_travel_ms(b.pos, to) + b.slow_travel_ms(to, home_pos);
                if dep + back + stay > deadline {
                    continue;
                }
                let arrive = b.go_place(idx, Depart::At(dep));
                if Some(idx) == p.far {
                    injected.push(Injected {
                        label: "inclusion_exit",
                        t0_ms: arrive,
                        t1_ms: arrive + stay,
                        zone: None,
                    });
                }
                t = arrive + stay;
            }
        }
    }

    // Evening.
    match (&w, &night) {
        (Some(w), Night::Absent) => {
            let dest = outing.unwrap_or(0);
            if b.place != Some(dest) {
                b.go_place(dest, Depart::At(t.max(w.start_ms - 150 * MINUTE_MS)));
            }
            let leave = w.end_ms + b.rng.int(30, 150) * MINUTE_MS;
            injected.push(Injected {
                label: "whole_night_absence",
                t0_ms: w.start_ms,
                t1_ms: w.end_ms,
                zone: None,
            });
            if works(wd_next) {
                if let Some(work) = p.work {
                    b.go_place(work, Depart::At(leave));
                }
            } else {
                b.go_place(home_idx, Depart::At(leave));
            }
        }
        (Some(w), Night::Late(late_ms) | Night::WithinGrace(late_ms)) => {
            let dest = outing.unwrap_or(0);
            if b.place != Some(dest) {
                b.go_place(dest, Depart::At(t.max(w.start_ms - 240 * MINUTE_MS)));
            }
            let arrive_at = w.start_ms + late_ms;
            let arrived = b.go_place(home_idx, Depart::ArriveBy(arrive_at));
            let label = if matches!(night, Night::Late(_)) {
                "late_return"
            } else {
                "within_grace"
            };
            injected.push(Injected {
                label,
                t0_ms: w.start_ms,
                t1_ms: arrived,
                zone: None,
            });
        }
        (Some(_), _) => {
            if b.place != Some(home_idx) {
                // Leave in time to be in before the window opens.
                let dep = t.max(b.stay_from);
                if dep + b.slow_travel_ms(b.pos, home_pos) > deadline {
                    b.go_place(home_idx, Depart::ArriveBy(deadline));
                } else {
                    b.go_place(home_idx, Depart::At(dep));
                }
            }
        }
        (None, _) => {
            let out = b.rng.chance(p.social);
            if out {
                if let Some(dest) = pick_kind(p, b.rng, &[PlaceKind::Pub, PlaceKind::Friend]) {
                    let go_at = t.max(lt(19 * 60 + b.rng.int(0, 120)));
                    b.go_place(dest, Depart::At(go_at));
                    let leave = lt(22 * 60 + b.rng.int(0, 150));
                    let sleep_at = match p.partner {
                        Some(pp) if b.rng.chance(0.3) => pp,
                        _ => 0,
                    };
                    b.go_place(sleep_at, Depart::At(leave));
                }
            }
            if b.place != Some(0) && (b.place.is_none() || b.place != p.partner) {
                b.go_place(0, Depart::At(t.max(b.stay_from)));
            }
        }
    }

    // Night breaches.
    if let Some(w) = &w {
        match night {
            Night::LeaveDuring => {
                let latest = (w.end_ms - 150 * MINUTE_MS).max(w.start_ms + 60 * MINUTE_MS);
                let when = b
                    .rng
                    .int(w.start_ms + 45 * MINUTE_MS, latest)
                    .max(b.stay_from + 5 * MINUTE_MS);
                if let Some(dest) = pick_kind(
                    p,
                    b.rng,
                    &[PlaceKind::Friend, PlaceKind::Shop, PlaceKind::Pub],
                ) {
                    let from_home = b.stay_from;
                    let arrive = b.go_place(dest, Depart::At(when));
                    let stay = b.rng.int(20, 120) * MINUTE_MS;
                    let back = b.go_place(home_idx, Depart::At(arrive + stay));
                    let _ = from_home;
                    if back < w.end_ms {
                        injected.push(Injected {
                            label: "leave_during_curfew",
                            t0_ms: when,
                            t1_ms: back,
                            zone: None,
                        });
                    }
                }
            }
            Night::OutAtEnd => {
                let when = w.end_ms - b.rng.int(20, 90) * MINUTE_MS;
                let dest = if works(wd_next) {
                    p.work
                } else {
                    pick_kind(
                        p,
                        b.rng,
                        &[PlaceKind::Shop, PlaceKind::Friend, PlaceKind::Town],
                    )
                };
                if let Some(dest) = dest {
                    b.go_place(dest, Depart::At(when.max(b.stay_from + MINUTE_MS)));
                    injected.push(Injected {
                        label: "out_at_end",
                        t0_ms: when,
                        t1_ms: w.end_ms,
                        zone: None,
                    });
                    if Some(dest) != p.work {
                        // Back only after the window has closed: this is out at the end, not a
                        // trip out and back during it.
                        let stay = b.rng.int(30, 90) * MINUTE_MS;
                        let back = (b.stay_from + stay).max(w.end_ms + 10 * MINUTE_MS);
                        b.go_place(home_idx, Depart::At(back));
                    }
                }
            }
            _ => {}
        }
    }

    // Morning of the next day.
    // Free to leave once the last of tonight's windows has closed.
    let last_end = windows.iter().map(|w| w.end_ms).max();
    let earliest = match last_end {
        Some(end) => end + b.rng.int(5, 45) * MINUTE_MS,
        None => lt(24 * 60 + 6 * 60 + 30),
    };
    if b.place != p.work {
        if works(wd_next) {
            if let Some(work) = p.work {
                let target = lt(24 * 60 + p.work_start_min);
                let by = target.max(earliest + b.slow_travel_ms(b.pos, p.places[work].pos));
                b.go_place(work, Depart::ArriveBy(by));
            }
        } else if b.rng.chance(0.45) {
            if let Some(dest) = pick_kind(
                p,
                b.rng,
                &[PlaceKind::Shop, PlaceKind::Town, PlaceKind::Friend],
            ) {
                let dep = lt(24 * 60 + 9 * 60 + 30 + b.rng.int(0, 60)).max(earliest);
                let arrive = b.go_place(dest, Depart::At(dep));
                let back_to = b.place.map(|_| home_idx).unwrap_or(home_idx);
                let stay = b.rng.int(20, 60) * MINUTE_MS;
                b.go_place(back_to, Depart::At(arrive + stay));
            }
        }
    }

    // Close the last stay at the cycle end (or just after it, if the day overran).
    let end_ms = noon_next.max(b.stay_from + MINUTE_MS);
    b.segs.push(Seg::Stay {
        place: b.place,
        pos: b.pos,
        indoor: b.indoor,
        t0_ms: b.stay_from,
        t1_ms: end_ms,
    });
    let segs: Vec<Seg> = b
        .segs
        .into_iter()
        .filter(|s| s.t1_ms() > s.t0_ms() || matches!(s, Seg::Move(_)))
        .collect();
    Plan {
        date,
        segs,
        start_ms,
        end_ms,
        injected,
        violations_allowed: allow,
        cursor: 0,
    }
}

/// A random point well inside a zone.
fn zone_point(z: &SimZone, rng: &mut Rng) -> Xy {
    let c = z.shape.centre();
    let r = z.shape.radius_m() * 0.4;
    for _ in 0..32 {
        let p = c.add(rng.gauss(0.0, r / 2.0), rng.gauss(0.0, r / 2.0));
        if z.shape.contains(p) {
            return p;
        }
    }
    c
}

/// The first minute in `[from, to)` when the zone applies (checked every 15 minutes).
fn first_active(z: &SimZone, from: TimeMs, to: TimeMs) -> Option<TimeMs> {
    let mut t = from;
    while t < to {
        if z.active(t) && z.active(t + 60 * MINUTE_MS) {
            return Some(t);
        }
        t += 15 * MINUTE_MS;
    }
    None
}
