//! The monitored population: who they are, which tag they wear, where they live, the places they
//! go (work, shops, friends, a pub, a gym, town, a partner's address) and their weekly routine
//! (work days and hours, how they travel, how sociable they are, when they charge the tag).
//!
//! Identities (names, NOMIS ids, PNC references, addresses) are synthetic. Each person gets one
//! tag and one activation; the device kind decides what the tag measures.

use crate::area::Area;
use crate::clock::{local_date, local_to_utc_ms, DAY_MS};
use crate::geo::Xy;
use crate::orders::{build_orders, SimRules};
use crate::rng::{stream, Rng};
use chrono::NaiveDate;
use tagstream::model::{Activation, Order, Person, TimeMs};

/// What the tag measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// GPS location tag (positions, events; RF presence too when a home unit is installed).
    Gps,
    /// RF curfew tag with a home monitoring unit (presence, events).
    Rf,
    /// Transdermal alcohol tag (TAC every 30 minutes, events).
    Alcohol,
}

/// The kind of a place a person goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceKind {
    Home,
    Partner,
    Work,
    Shop,
    Friend,
    Pub,
    Gym,
    Town,
    /// Somewhere outside the person's inclusion zone.
    Far,
    /// A point inside an exclusion zone (only visited as a violation).
    ZonePoint,
}

/// A place: where it is and whether a tag there is indoors (GPS mostly lost).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Place {
    pub kind: PlaceKind,
    pub pos: Xy,
    pub indoor: bool,
}

/// Population mix and sizes.
#[derive(Clone, Debug)]
pub struct PopulationOptions {
    pub tags: usize,
    pub days: u32,
    pub start_ms: TimeMs,
    /// Share of GPS tags; `rf_share` RF tags; the rest alcohol tags.
    pub gps_share: f64,
    pub rf_share: f64,
    /// Share of activations that start during the run (a release) rather than before it.
    pub new_release_share: f64,
    /// Share of people whose tag is replaced during the run (a new tag and a new activation).
    pub swap_share: f64,
    /// Share of GPS wearers with a home monitoring unit and a one-address curfew whose curfew is
    /// two addresses instead, with the unit at one of them (`orders::build_orders`).
    pub hmu_split_share: f64,
}

/// One simulated person with their tag, activation, orders and routine.
#[derive(Clone, Debug)]
pub struct Profile {
    pub idx: usize,
    pub person: Person,
    pub tag: String,
    pub activation: Activation,
    /// A replacement tag fitted during the run: the first activation ends when this one starts.
    pub replacement: Option<Activation>,
    pub device: DeviceKind,
    /// `places[0]` is home.
    pub places: Vec<Place>,
    pub work: Option<usize>,
    /// Bit 0 = Monday.
    pub work_days: u8,
    pub work_start_min: i64,
    pub work_end_min: i64,
    pub partner: Option<usize>,
    pub far: Option<usize>,
    pub has_car: bool,
    pub has_bike: bool,
    pub walk_kmh: f64,
    /// Probability of an evening outing on a free evening.
    pub social: f64,
    /// Usual local minute the tag is put on charge at home.
    pub charge_min: i64,
    /// A home monitoring unit is installed: at the curfew address marked `hmu` when one is, else
    /// at every curfew address.
    pub hmu: bool,
    pub orders: Vec<Order>,
    pub rules: SimRules,
}

impl Profile {
    /// The activation in force at `t_ms`.
    pub fn activation_at(&self, t_ms: TimeMs) -> &Activation {
        match &self.replacement {
            Some(r) if t_ms >= r.from => r,
            _ => &self.activation,
        }
    }
    pub fn home(&self) -> Xy {
        self.places[0].pos
    }
    /// Indices of places of the given kind.
    pub fn places_of(&self, kind: PlaceKind) -> Vec<usize> {
        (0..self.places.len())
            .filter(|i| self.places[*i].kind == kind)
            .collect()
    }
}

const FIRST: [&str; 32] = [
    "Jack", "Liam", "Connor", "Kyle", "Dean", "Lee", "Craig", "Ryan", "Jamie", "Darren", "Wayne",
    "Scott", "Aaron", "Callum", "Tyler", "Mohammed", "Adam", "Daniel", "Nathan", "Shane", "Jordan",
    "Reece", "Luke", "Paul", "Sarah", "Emma", "Kelly", "Laura", "Chloe", "Gemma", "Stacey", "Amy",
];
const LAST: [&str; 32] = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Rodriguez",
    "Cox",
    "Alexander",
];
const STREETS: [&str; 24] = [
    "Gloucester Road",
    "Stapleton Road",
    "Church Road",
    "Coronation Road",
    "Wells Road",
    "Fishponds Road",
    "Filton Avenue",
    "Whiteladies Road",
    "North Street",
    "East Street",
    "Victoria Street",
    "Mina Road",
    "Ashley Road",
    "Cheltenham Road",
    "Bath Road",
    "High Street",
    "Station Road",
    "Park Street",
    "Queens Road",
    "Mill Lane",
    "Kingsway",
    "Hill Street",
    "Grove Road",
    "Manor Road",
];
const MANAGERS: [&str; 8] = [
    "J. Okafor",
    "R. Hughes",
    "S. Begum",
    "M. Kowalski",
    "T. Bennett",
    "A. Richards",
    "L. Fraser",
    "D. Moreno",
];

fn letter(rng: &mut Rng) -> char {
    (b'A' + rng.index(26) as u8) as char
}

fn identity(idx: usize, seed: u64, town: &str) -> Person {
    let mut rng = Rng::derive(seed, &[stream::IDENTITY, idx as u64]);
    let name = format!("{} {}", rng.pick(&FIRST), rng.pick(&LAST));
    let dob = NaiveDate::from_ymd_opt(1960 + rng.int(0, 46) as i32, 1, 1)
        .map(|d| d + chrono::Duration::days(rng.int(0, 364)));
    Person {
        id: format!("P{}", idx + 1),
        name,
        date_of_birth: dob,
        nomis_id: Some(format!(
            "{}{:04}{}{}",
            letter(&mut rng),
            rng.int(0, 9999),
            letter(&mut rng),
            letter(&mut rng)
        )),
        pnc_ref: Some(format!(
            "{:02}/{:07}{}",
            rng.int(0, 25),
            rng.int(0, 9_999_999),
            letter(&mut rng)
        )),
        address: Some(format!(
            "{} {}, {}",
            rng.int(1, 220),
            rng.pick(&STREETS),
            town
        )),
        offender_manager: Some(rng.pick(&MANAGERS).to_string()),
        restricted: rng.chance(0.02),
    }
}

/// Builds the whole population for a run.
pub fn generate(area: &Area, opts: &PopulationOptions, seed: u64) -> Vec<Profile> {
    (0..opts.tags)
        .map(|idx| generate_one(area, opts, seed, idx))
        .collect()
}

fn generate_one(area: &Area, opts: &PopulationOptions, seed: u64, idx: usize) -> Profile {
    let mut rng = Rng::derive(seed, &[stream::POPULATION, idx as u64]);
    let town = if area.name == crate::area::DEFAULT_AREA {
        "Bristol"
    } else {
        area.name.as_str()
    };
    let person = identity(idx, seed, town);
    let u = rng.f64();
    let device = if u < opts.gps_share {
        DeviceKind::Gps
    } else if u < opts.gps_share + opts.rf_share {
        DeviceKind::Rf
    } else {
        DeviceKind::Alcohol
    };
    let home = area.sample_near(&mut rng, Xy::default(), area.spread_m);
    let near = |rng: &mut Rng, median_m: f64| {
        let r = rng.lognormal(median_m, 0.6).clamp(150.0, 6.0 * median_m);
        area.sample_ring(rng, home, r * 0.8, r * 1.2)
    };
    let mut places = vec![Place {
        kind: PlaceKind::Home,
        pos: home,
        indoor: true,
    }];
    let mut add = |kind, pos, indoor| {
        places.push(Place { kind, pos, indoor });
        places.len() - 1
    };
    let employed = rng.chance(0.55);
    let work = employed.then(|| {
        let pos = near(&mut rng, 3000.0);
        add(PlaceKind::Work, pos, true)
    });
    for _ in 0..rng.int(1, 2) {
        let pos = near(&mut rng, 700.0);
        add(PlaceKind::Shop, pos, true);
    }
    for _ in 0..rng.int(1, 3) {
        let pos = near(&mut rng, 2000.0);
        add(PlaceKind::Friend, pos, true);
    }
    let pub_pos = near(&mut rng, 600.0);
    add(PlaceKind::Pub, pub_pos, true);
    if rng.chance(0.3) {
        let pos = near(&mut rng, 1500.0);
        add(PlaceKind::Gym, pos, true);
    }
    let town_pos = area.sample_near(&mut rng, Xy::default(), area.spread_m * 0.1);
    add(PlaceKind::Town, town_pos, false);
    let partner = rng.chance(0.25).then(|| {
        let pos = near(&mut rng, 2500.0);
        add(PlaceKind::Partner, pos, true)
    });
    let work_days = if rng.chance(0.8) {
        0b0001_1111
    } else {
        0b0111_1100
    };
    let work_start_min = 7 * 60 + rng.int(30, 150);
    let work_end_min = work_start_min + rng.int(7 * 60, 9 * 60);
    let has_car = rng.chance(0.35);
    let has_bike = rng.chance(0.25);

    let start_day = local_date(opts.start_ms);
    let activation_from = if opts.days >= 3 && rng.chance(opts.new_release_share) {
        let day = start_day + chrono::Duration::days(rng.int(1, opts.days as i64 - 2));
        local_to_utc_ms(day, rng.int(10 * 60, 14 * 60))
    } else {
        opts.start_ms
    };
    let activation = Activation {
        id: format!("A{}", idx + 1),
        person: person.id.clone(),
        tag: tag_id(idx),
        from: activation_from,
        to: None,
    };
    let released_in_run = activation_from > opts.start_ms;
    let mut profile = Profile {
        idx,
        tag: activation.tag.clone(),
        person,
        activation,
        replacement: None,
        device,
        places,
        work,
        work_days,
        work_start_min,
        work_end_min,
        partner,
        far: None,
        has_car,
        has_bike,
        walk_kmh: rng.range(4.2, 5.6),
        social: rng.range(0.1, 0.5),
        charge_min: rng.int(19 * 60, 22 * 60 + 30),
        hmu: false,
        orders: Vec::new(),
        rules: SimRules::default(),
    };
    let mut orng = Rng::derive(seed, &[stream::ORDERS, idx as u64]);
    let mut srng = Rng::derive(seed, &[stream::HMU_SPLIT, idx as u64]);
    let (orders, rules, hmu, far) = build_orders(
        &profile,
        area,
        released_in_run,
        &mut orng,
        &mut srng,
        opts.hmu_split_share,
    );
    profile.orders = orders;
    profile.rules = rules;
    profile.hmu = hmu;
    if let Some(far_pos) = far {
        profile.places.push(Place {
            kind: PlaceKind::Far,
            pos: far_pos,
            indoor: true,
        });
        profile.far = Some(profile.places.len() - 1);
    }
    // A device swap: the old tag is removed and a new one fitted, under a new activation.
    let end_ms = opts.start_ms + opts.days as i64 * crate::clock::DAY_MS;
    if opts.days >= 2 && rng.chance(opts.swap_share) {
        let at = rng.int(
            profile.activation.from + 6 * 3_600_000,
            end_ms - 6 * 3_600_000,
        ) / 60_000
            * 60_000;
        if at > profile.activation.from {
            profile.activation.to = Some(at);
            profile.replacement = Some(Activation {
                id: format!("A{}", opts.tags + idx + 1),
                person: profile.person.id.clone(),
                tag: tag_id(opts.tags + idx),
                from: at,
                to: None,
            });
        }
    }
    profile
}

/// The tag id of the tag with index `idx` (0-based).
pub fn tag_id(idx: usize) -> String {
    format!("T{:06}", idx + 1)
}

/// Milliseconds in `days` days (helper for run lengths).
pub fn days_ms(days: u32) -> i64 {
    days as i64 * DAY_MS
}
