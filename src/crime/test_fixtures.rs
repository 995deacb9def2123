//! Test fixtures shared by the crime modules' unit tests: one crime in central Bristol and GPS
//! fixes placed relative to it.

use crate::model::{CrimeVersion, Position, PositionSource, Reading, ReadingBody};
use crate::rules::geodesy::M_PER_DEG_LAT;

pub const CRIME: (f64, f64) = (51.4545, -2.5879);
pub const T0: i64 = 1_780_000_000_000;
pub const MIN: i64 = 60_000;

/// Burglary AVS/1, version 1: an hour from `T0`, 100 m radius.
pub fn crime() -> CrimeVersion {
    CrimeVersion {
        force: "AvonSomerset".into(),
        batch_id: "AVS20260601".into(),
        crime_ref: "AVS/1".into(),
        version: 1,
        crime_type: "BIAD".into(),
        crime_type_description: "Burglary in a dwelling".into(),
        from_ms: T0,
        to_ms: T0 + 60 * MIN,
        lat: CRIME.0,
        lon: CRIME.1,
        radius_m: 100.0,
        other_info: String::new(),
    }
}

/// A GPS fix `east_m`/`north_m` metres from the crime.
pub fn gps(t_ms: i64, east_m: f64, north_m: f64) -> Reading {
    let lat = CRIME.0 + north_m / M_PER_DEG_LAT;
    let lon = CRIME.1 + east_m / (M_PER_DEG_LAT * CRIME.0.to_radians().cos());
    Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Position(Position {
            lat_e7: (lat * 1e7).round() as i32,
            lon_e7: (lon * 1e7).round() as i32,
            precision_cm: 500,
            source: PositionSource::Gps,
            speed_ckmh: Some(500),
            heading_cdeg: Some(9000),
            satellites: None,
        }),
    }
}

/// A hit of [`crime`] on activation A1 (person P1): a walk past the crime, 12 fixes a minute
/// apart from 5 minutes into the window, one of them a cell fix.
pub fn sample_hit() -> crate::model::Hit {
    use crate::crime::matcher::{HitChange, HitMatcher, MemoryTrails, Period};
    use crate::rules::hits::HitsConfig;
    let mut trails = MemoryTrails::new(HitsConfig::default().max_gap_s * 1000);
    for i in 0..12 {
        let mut r = gps(T0 + (5 + i) * MIN, -330.0 + 60.0 * i as f64, 30.0);
        if i == 3 {
            if let ReadingBody::Position(p) = &mut r.body {
                p.source = PositionSource::Lbs;
                p.precision_cm = 40_000;
            }
        }
        trails.push("A1", r);
    }
    trails.seal();
    let mut m = HitMatcher::new(HitsConfig::default());
    m.set_activation(
        "A1",
        "P1",
        Period {
            from_ms: T0 - 24 * 60 * MIN,
            to_ms: None,
        },
    );
    let slot = m.add_crimes([crime()])[0];
    let changes = m.match_crimes(&trails, &[slot]).expect("matches");
    match changes.into_iter().next() {
        Some(HitChange::Upsert(hit)) => *hit,
        other => panic!("the walk past the crime makes a hit, got {other:?}"),
    }
}
