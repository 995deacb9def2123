//! Orders and their conditions for each simulated person, in the orders-file contract, plus the
//! compiled form the simulator uses to plan behaviour and derive truth (windows as UTC instants,
//! zones as local-frame shapes built from the very coordinates written to `orders.json`).
//!
//! Curfews: overnight 19:00–07:00 (and 20:00–06:00, 21:00–06:00), weekday-only, two addresses
//! (home Mon–Thu, partner Fri–Sun, no address marked `hmu`: a unit at each), two addresses with the
//! home monitoring unit at one of them (`hmu`, GPS wearers only), and the EMAC release-day curfew 17:00–00:00 for the first two
//! days after a release. Exclusion zones are polygons or point+radius, some with schedules, placed
//! near a person's routine so breaches can happen. Inclusion zones surround the routine. Every GPS
//! order carries `trail`; alcohol orders are abstinence for 120 days.

use crate::area::Area;
use crate::clock::{day_mask, local_date, local_minutes, local_to_utc_ms, weekday_index};
use crate::geo::{Polygon, Xy};
use crate::population::{DeviceKind, PlaceKind, Profile};
use crate::rng::Rng;
use chrono::NaiveDate;
use serde_json::json;
use tagstream::model::{
    AlcoholCondition, AlcoholMode, Condition, CurfewAddress, CurfewCondition, Day, Order,
    ScheduleEntry, TimeMs, TimetableEntry, ZoneCondition,
};

const ALL_DAYS: [Day; 7] = [
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];
const WEEKDAYS: [Day; 5] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];

/// A curfew address resolved to a place of the person.
#[derive(Clone, Debug)]
pub struct SimAddress {
    pub id: String,
    pub place: usize,
    pub radius_m: f64,
    /// Marked `hmu`: the person's home monitoring unit is here (and nowhere else).
    pub hmu: bool,
}

/// One timetable entry: days mask (bit 0 Monday), local start/end minutes, address index.
#[derive(Clone, Debug)]
pub struct SimEntry {
    pub days: u8,
    pub start_min: i64,
    pub end_min: i64,
    pub address: usize,
}

/// A compiled curfew condition.
#[derive(Clone, Debug)]
pub struct SimCurfew {
    pub order_id: String,
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub grace_min: u32,
    pub addresses: Vec<SimAddress>,
    pub entries: Vec<SimEntry>,
}

/// One curfew window instance, in UTC.
#[derive(Clone, Debug)]
pub struct Window {
    pub start_ms: TimeMs,
    pub end_ms: TimeMs,
    pub place: usize,
    pub radius_m: f64,
    pub grace_min: u32,
    pub order_id: String,
    pub address_id: String,
}

/// A zone shape in the local frame.
#[derive(Clone, Debug)]
pub enum Shape {
    Polygon(Polygon),
    Circle { centre: Xy, radius_m: f64 },
}

impl Shape {
    pub fn contains(&self, p: Xy) -> bool {
        match self {
            Shape::Polygon(poly) => poly.contains(p),
            Shape::Circle { centre, radius_m } => centre.dist_m(p) <= *radius_m,
        }
    }
    /// Distance from `p` to the shape's boundary.
    pub fn boundary_dist_m(&self, p: Xy) -> f64 {
        match self {
            Shape::Polygon(poly) => poly.boundary_dist_m(p),
            Shape::Circle { centre, radius_m } => (centre.dist_m(p) - radius_m).abs(),
        }
    }
    pub fn centre(&self) -> Xy {
        match self {
            Shape::Circle { centre, .. } => *centre,
            Shape::Polygon(poly) => {
                let ring = poly.rings.first().map(|r| r.as_slice()).unwrap_or(&[]);
                let n = ring.len().max(1) as f64;
                let (sx, sy) = ring
                    .iter()
                    .fold((0.0, 0.0), |(a, b), p| (a + p.x_m, b + p.y_m));
                Xy::new(sx / n, sy / n)
            }
        }
    }
    /// Rough radius (for placing points inside).
    pub fn radius_m(&self) -> f64 {
        match self {
            Shape::Circle { radius_m, .. } => *radius_m,
            Shape::Polygon(poly) => {
                let c = self.centre();
                poly.rings
                    .first()
                    .map(|r| r.iter().map(|p| p.dist_m(c)).fold(f64::MAX, f64::min))
                    .unwrap_or(0.0)
            }
        }
    }
}

/// A compiled zone condition.
#[derive(Clone, Debug)]
pub struct SimZone {
    pub id: String,
    pub exclusion: bool,
    pub shape: Shape,
    /// (days mask, start minute, end minute) in local time; empty means always.
    pub schedule: Vec<(u8, i64, i64)>,
}

impl SimZone {
    /// Whether a wearer at `pos` at `t_ms` is in breach (inside an exclusion zone, outside an
    /// inclusion zone, while it applies).
    pub fn breached_at(&self, pos: Xy, t_ms: TimeMs) -> bool {
        self.shape.contains(pos) == self.exclusion && self.active(t_ms)
    }
    /// Whether a fix at `centre` with a confidence circle of `radius_m` lies wholly on the
    /// breaching side (the zones rule's "violating" fix).
    pub fn circle_breaches(&self, centre: Xy, radius_m: f64, t_ms: TimeMs) -> bool {
        self.breached_at(centre, t_ms) && self.shape.boundary_dist_m(centre) >= radius_m
    }
    /// Whether the zone applies at `t_ms`.
    pub fn active(&self, t_ms: TimeMs) -> bool {
        if self.schedule.is_empty() {
            return true;
        }
        let date = local_date(t_ms);
        let m = local_minutes(t_ms);
        let wd = weekday_index(date);
        let prev = (wd + 6) % 7;
        self.schedule.iter().any(|&(days, s, e)| {
            if e > s {
                days & (1 << wd) != 0 && m >= s && m < e
            } else {
                (days & (1 << wd) != 0 && m >= s) || (days & (1 << prev) != 0 && m < e)
            }
        })
    }
}

/// Everything the simulator needs to know about a person's orders.
#[derive(Clone, Debug, Default)]
pub struct SimRules {
    pub curfews: Vec<SimCurfew>,
    pub zones: Vec<SimZone>,
    pub alcohol: bool,
}

impl SimRules {
    /// Curfew windows that start on local date `date`, earliest first.
    pub fn windows_starting(&self, date: NaiveDate) -> Vec<Window> {
        let wd = weekday_index(date);
        let mut out = Vec::new();
        for c in &self.curfews {
            if date < c.from || c.to.is_some_and(|to| date > to) {
                continue;
            }
            for e in &c.entries {
                if e.days & (1 << wd) == 0 {
                    continue;
                }
                let end_min = if e.end_min > e.start_min {
                    e.end_min
                } else {
                    e.end_min + 24 * 60
                };
                let addr = &c.addresses[e.address];
                out.push(Window {
                    start_ms: local_to_utc_ms(date, e.start_min),
                    end_ms: local_to_utc_ms(date, end_min),
                    place: addr.place,
                    radius_m: addr.radius_m,
                    grace_min: c.grace_min,
                    order_id: c.order_id.clone(),
                    address_id: addr.id.clone(),
                });
            }
        }
        out.sort_by_key(|w| w.start_ms);
        out
    }
}

fn hhmm(min: i64) -> String {
    format!("{:02}:{:02}", (min / 60) % 25, min % 60)
}

/// Rounds a local point to the 1e-6 degree grid the orders file uses; returns the point back in
/// the local frame and the `[lon, lat]` pair.
fn snap(area: &Area, p: Xy) -> (Xy, [f64; 2]) {
    let (lat, lon) = area.frame.to_latlon(p);
    let (lat, lon) = ((lat * 1e6).round() / 1e6, (lon * 1e6).round() / 1e6);
    (area.frame.to_xy(lat, lon), [lon, lat])
}

fn polygon_zone(
    area: &Area,
    centre: Xy,
    r_m: f64,
    n: usize,
    rng: &mut Rng,
) -> (Shape, serde_json::Value) {
    let mut ring = Vec::with_capacity(n + 1);
    let mut coords = Vec::with_capacity(n + 1);
    for k in 0..n {
        let a = (k as f64 + rng.range(-0.3, 0.3)) / n as f64 * std::f64::consts::TAU;
        let r = r_m * rng.range(0.8, 1.15);
        let (p, c) = snap(area, centre.add(r * a.sin(), r * a.cos()));
        ring.push(p);
        coords.push(json!(c));
    }
    ring.push(ring[0]);
    coords.push(coords[0].clone());
    (
        Shape::Polygon(Polygon { rings: vec![ring] }),
        json!({"type": "Polygon", "coordinates": [coords]}),
    )
}

/// A two-address curfew in both forms.
struct SplitCurfew {
    condition: CurfewCondition,
    addresses: Vec<SimAddress>,
    entries: Vec<SimEntry>,
}

/// The two-address curfew with the home monitoring unit at one address (an `hmu` contract
/// addition): home Sunday to Thursday nights 19:00–07:00, a second address (the partner's, or a
/// friend's or relative's) Friday and Saturday nights 20:00–08:00; the unit at home three times in
/// four, else at the second address. The other address is monitored by the tag's GPS alone.
fn split_with_hmu(
    p: &Profile,
    area: &Area,
    grace_min: u32,
    radius_m: f64,
    rng: &mut Rng,
) -> Option<SplitCurfew> {
    let friends: Vec<usize> = (0..p.places.len())
        .filter(|&i| p.places[i].kind == PlaceKind::Friend)
        .collect();
    let (second, second_id) = match p.partner {
        Some(partner) => (partner, "partner"),
        None if !friends.is_empty() => (friends[rng.index(friends.len())], "second"),
        None => return None,
    };
    let unit_at_home = rng.chance(0.75);
    let address = |place: usize, id: &str, hmu: bool| {
        let (lat, lon) = area.frame.to_latlon(p.places[place].pos);
        (
            CurfewAddress {
                id: id.into(),
                lat: (lat * 1e6).round() / 1e6,
                lon: (lon * 1e6).round() / 1e6,
                radius_m,
                hmu,
            },
            SimAddress {
                id: id.into(),
                place,
                radius_m,
                hmu,
            },
        )
    };
    let (home_c, home_s) = address(0, "home", unit_at_home);
    let (second_c, second_s) = address(second, second_id, !unit_at_home);
    let a = [Day::Sun, Day::Mon, Day::Tue, Day::Wed, Day::Thu];
    let b = [Day::Fri, Day::Sat];
    Some(SplitCurfew {
        condition: CurfewCondition {
            grace_min,
            addresses: vec![home_c, second_c],
            timetable: vec![
                TimetableEntry {
                    days: a.to_vec(),
                    start: hhmm(19 * 60),
                    end: hhmm(7 * 60),
                    address: "home".into(),
                },
                TimetableEntry {
                    days: b.to_vec(),
                    start: hhmm(20 * 60),
                    end: hhmm(8 * 60),
                    address: second_id.into(),
                },
            ],
        },
        addresses: vec![home_s, second_s],
        entries: vec![
            SimEntry {
                days: day_mask(&a),
                start_min: 19 * 60,
                end_min: 7 * 60,
                address: 0,
            },
            SimEntry {
                days: day_mask(&b),
                start_min: 20 * 60,
                end_min: 8 * 60,
                address: 1,
            },
        ],
    })
}

/// Builds a person's orders; returns them with the compiled rules, whether a home monitoring unit is
/// installed, and a "far" place outside the inclusion zone (if the person has one). `split` (its
/// own stream) decides, with `split_share`, whether a GPS wearer with a unit and a one-address
/// curfew gets the two-address curfew with the unit at one address instead.
pub fn build_orders(
    p: &Profile,
    area: &Area,
    released_in_run: bool,
    rng: &mut Rng,
    split: &mut Rng,
    split_share: f64,
) -> (Vec<Order>, SimRules, bool, Option<Xy>) {
    let n = p.idx + 1;
    let act_date = local_date(p.activation.from);
    let from = if released_in_run {
        act_date
    } else {
        act_date - chrono::Duration::days(rng.int(1, 90))
    };
    let mut rules = SimRules::default();
    let mut conditions = Vec::new();
    let mut orders = Vec::new();
    let order_id = format!("O{n}");
    let mut hmu = false;
    let mut far = None;

    let wants_curfew = match p.device {
        DeviceKind::Rf => true,
        DeviceKind::Gps => rng.chance(0.45),
        DeviceKind::Alcohol => false,
    };
    if wants_curfew {
        let grace_min = *rng.pick(&[0u32, 5, 5, 10, 15]);
        let radius_m = if p.device == DeviceKind::Rf {
            100.0
        } else {
            *rng.pick(&[50.0, 75.0, 100.0])
        };
        let (hlat, hlon) = area.frame.to_latlon(p.places[0].pos);
        let mut addresses = vec![CurfewAddress {
            id: "home".into(),
            lat: (hlat * 1e6).round() / 1e6,
            lon: (hlon * 1e6).round() / 1e6,
            radius_m,
            hmu: false,
        }];
        let mut sim_addresses = vec![SimAddress {
            id: "home".into(),
            place: 0,
            radius_m,
            hmu: false,
        }];
        let u = rng.f64();
        let (timetable, entries): (Vec<TimetableEntry>, Vec<SimEntry>) =
            if let (Some(partner), true) = (p.partner, u < 0.5 && !released_in_run) {
                let (plat, plon) = area.frame.to_latlon(p.places[partner].pos);
                addresses.push(CurfewAddress {
                    id: "partner".into(),
                    lat: (plat * 1e6).round() / 1e6,
                    lon: (plon * 1e6).round() / 1e6,
                    radius_m,
                    hmu: false,
                });
                sim_addresses.push(SimAddress {
                    id: "partner".into(),
                    place: partner,
                    radius_m,
                    hmu: false,
                });
                let a = [Day::Mon, Day::Tue, Day::Wed, Day::Thu];
                let b = [Day::Fri, Day::Sat, Day::Sun];
                (
                    vec![
                        TimetableEntry {
                            days: a.to_vec(),
                            start: hhmm(19 * 60),
                            end: hhmm(7 * 60),
                            address: "home".into(),
                        },
                        TimetableEntry {
                            days: b.to_vec(),
                            start: hhmm(20 * 60),
                            end: hhmm(8 * 60),
                            address: "partner".into(),
                        },
                    ],
                    vec![
                        SimEntry {
                            days: day_mask(&a),
                            start_min: 19 * 60,
                            end_min: 7 * 60,
                            address: 0,
                        },
                        SimEntry {
                            days: day_mask(&b),
                            start_min: 20 * 60,
                            end_min: 8 * 60,
                            address: 1,
                        },
                    ],
                )
            } else {
                let v = rng.f64();
                let (days, s, e): (&[Day], i64, i64) = if v < 0.55 {
                    (&ALL_DAYS, 19 * 60, 7 * 60)
                } else if v < 0.7 {
                    (&ALL_DAYS, 20 * 60, 6 * 60)
                } else if v < 0.85 {
                    (&WEEKDAYS, 19 * 60, 7 * 60)
                } else {
                    (&ALL_DAYS, 21 * 60, 6 * 60)
                };
                (
                    vec![TimetableEntry {
                        days: days.to_vec(),
                        start: hhmm(s),
                        end: hhmm(e),
                        address: "home".into(),
                    }],
                    vec![SimEntry {
                        days: day_mask(days),
                        start_min: s,
                        end_min: e,
                        address: 0,
                    }],
                )
            };
        conditions.push(Condition::Curfew(CurfewCondition {
            grace_min,
            addresses: addresses.clone(),
            timetable,
        }));
        rules.curfews.push(SimCurfew {
            order_id: order_id.clone(),
            from,
            to: None,
            grace_min,
            addresses: sim_addresses.clone(),
            entries,
        });
        hmu = p.device == DeviceKind::Rf || rng.chance(0.5);
        // Drawn after every draw of the orders stream, from a stream of its own: whoever does not
        // get the two-address kind keeps exactly the orders (and days) they had before it existed.
        let eligible = hmu
            && p.device == DeviceKind::Gps
            && !released_in_run
            && sim_addresses.len() == 1
            && split.chance(split_share);
        if eligible {
            if let Some(curfew) = split_with_hmu(p, area, grace_min, radius_m, split) {
                conditions[0] = Condition::Curfew(curfew.condition);
                rules.curfews[0].addresses = curfew.addresses;
                rules.curfews[0].entries = curfew.entries;
            }
        }
    }

    if p.device == DeviceKind::Gps {
        if rng.chance(0.5) {
            for z in 0..rng.int(1, 2) {
                let id = format!("Z{n}-{}", z + 1);
                let r_m = rng.range(150.0, 450.0);
                // Near one of the person's places, but containing none of them.
                let mut centre = Xy::default();
                for attempt in 0..40 {
                    let anchor = p.places[rng.index(p.places.len())].pos;
                    let c = if attempt < 30 {
                        area.sample_ring(rng, anchor, r_m + 300.0, r_m + 1200.0)
                    } else {
                        area.sample_ring(rng, p.home(), 3000.0, 6000.0)
                    };
                    centre = c;
                    if p.places
                        .iter()
                        .all(|pl| pl.pos.dist_m(c) > r_m * 1.2 + 150.0)
                    {
                        break;
                    }
                }
                let schedule = if rng.chance(0.25) {
                    if rng.chance(0.5) {
                        vec![(vec![Day::Sat, Day::Sun], 10 * 60, 18 * 60)]
                    } else {
                        vec![(vec![Day::Fri, Day::Sat], 20 * 60, 4 * 60)]
                    }
                } else {
                    Vec::new()
                };
                let (shape, geometry, radius_m) = if rng.chance(0.5) {
                    let (c, pair) = snap(area, centre);
                    let r = r_m.round();
                    (
                        Shape::Circle {
                            centre: c,
                            radius_m: r,
                        },
                        json!({"type": "Point", "coordinates": pair}),
                        Some(r),
                    )
                } else {
                    let (s, g) = polygon_zone(area, centre, r_m, rng.int(6, 9) as usize, rng);
                    (s, g, None)
                };
                let name = if radius_m.is_some() {
                    "Victim's address area"
                } else {
                    "Exclusion area"
                };
                conditions.push(Condition::ExclusionZone(ZoneCondition {
                    id: id.clone(),
                    name: name.to_string(),
                    geometry,
                    radius_m,
                    schedule: (!schedule.is_empty()).then(|| {
                        schedule
                            .iter()
                            .map(|(d, s, e)| ScheduleEntry {
                                days: d.clone(),
                                start: hhmm(*s),
                                end: hhmm(*e),
                            })
                            .collect()
                    }),
                }));
                rules.zones.push(SimZone {
                    id,
                    exclusion: true,
                    shape,
                    schedule: schedule
                        .iter()
                        .map(|(d, s, e)| (day_mask(d), *s, *e))
                        .collect(),
                });
            }
        }
        if rng.chance(0.12) {
            let home = p.home();
            let reach = p
                .places
                .iter()
                .map(|pl| pl.pos.dist_m(home))
                .fold(0.0, f64::max);
            // Vertices at 0.8–1.15 of the radius and chords between them: every routine place
            // stays at least ~600 m inside.
            let r_m = (reach + 600.0) / 0.75;
            let (shape, geometry) = polygon_zone(area, home, r_m, 10, rng);
            let id = format!("Z{n}-in");
            far = Some(area.sample_ring(rng, home, r_m * 1.3 + 1000.0, r_m * 1.8 + 2000.0));
            conditions.push(Condition::InclusionZone(ZoneCondition {
                id: id.clone(),
                name: "Permitted area".into(),
                geometry,
                radius_m: None,
                schedule: None,
            }));
            rules.zones.push(SimZone {
                id,
                exclusion: false,
                shape,
                schedule: Vec::new(),
            });
        }
        conditions.push(Condition::Trail);
    }

    let mut to = from + chrono::Duration::days(rng.int(180, 365));
    if p.device == DeviceKind::Alcohol {
        conditions.push(Condition::Alcohol(AlcoholCondition {
            mode: AlcoholMode::Abstinence,
            requirement: None,
        }));
        rules.alcohol = true;
        to = from + chrono::Duration::days(119);
    }
    orders.push(Order {
        id: order_id,
        person: p.person.id.clone(),
        from,
        to: Some(to),
        conditions,
    });

    // EMAC release-day curfew: 17:00–00:00 for the first 48 hours after release.
    if released_in_run && p.device == DeviceKind::Gps {
        let rid = format!("O{n}R");
        let (hlat, hlon) = area.frame.to_latlon(p.places[0].pos);
        let address = CurfewAddress {
            id: "home".into(),
            lat: (hlat * 1e6).round() / 1e6,
            lon: (hlon * 1e6).round() / 1e6,
            radius_m: 75.0,
            hmu: false,
        };
        orders.push(Order {
            id: rid.clone(),
            person: p.person.id.clone(),
            from: act_date,
            to: Some(act_date + chrono::Duration::days(1)),
            conditions: vec![Condition::Curfew(CurfewCondition {
                grace_min: 0,
                addresses: vec![address],
                timetable: vec![TimetableEntry {
                    days: ALL_DAYS.to_vec(),
                    start: "17:00".into(),
                    end: "00:00".into(),
                    address: "home".into(),
                }],
            })],
        });
        rules.curfews.push(SimCurfew {
            order_id: rid,
            from: act_date,
            to: Some(act_date + chrono::Duration::days(1)),
            grace_min: 0,
            addresses: vec![SimAddress {
                id: "home".into(),
                place: 0,
                radius_m: 75.0,
                hmu: false,
            }],
            entries: vec![SimEntry {
                days: 0x7F,
                start_min: 17 * 60,
                end_min: 0,
                address: 0,
            }],
        });
    }
    let _ = PlaceKind::Home;
    (orders, rules, hmu, far)
}
