//! The hit rule and matcher on hand-built trails: walk-pasts between sparse fixes, the radius and
//! window edges, certain vs possible, weaker LBS evidence, sequence labels, and live matching
//! (positions in any order, late data) agreeing with retrospective matching.

use tagstream::crime::matcher::{HitChange, HitMatcher, MemoryTrails};
use tagstream::model::{
    Certainty, CrimeVersion, Hit, Position, PositionSource, Reading, ReadingBody,
};
use tagstream::rules::geodesy::M_PER_DEG_LAT;
use tagstream::rules::hits::{evaluate, HitsConfig};

const CRIME: (f64, f64) = (51.4545, -2.5879);
const T0: i64 = 1_780_000_000_000; // crime window opens
const MIN: i64 = 60_000;

fn crime(version: u32, from_ms: i64, to_ms: i64) -> CrimeVersion {
    CrimeVersion {
        force: "AvonSomerset".into(),
        batch_id: "AVS20260601".into(),
        crime_ref: "AVS/1".into(),
        version,
        crime_type: "BIAD".into(),
        crime_type_description: "Burglary in a dwelling".into(),
        from_ms,
        to_ms,
        lat: CRIME.0,
        lon: CRIME.1,
        radius_m: 100.0,
        other_info: String::new(),
    }
}

/// A fix `east_m`/`north_m` metres from the crime.
fn fix(t_ms: i64, east_m: f64, north_m: f64, precision_m: f64, source: PositionSource) -> Reading {
    let lat = CRIME.0 + north_m / M_PER_DEG_LAT;
    let lon = CRIME.1 + east_m / (M_PER_DEG_LAT * CRIME.0.to_radians().cos());
    Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Position(Position {
            lat_e7: (lat * 1e7).round() as i32,
            lon_e7: (lon * 1e7).round() as i32,
            precision_cm: (precision_m * 100.0) as u32,
            source,
            speed_ckmh: Some(500),
            heading_cdeg: Some(9000),
            satellites: None,
        }),
    }
}

fn gps(t_ms: i64, east_m: f64, north_m: f64) -> Reading {
    fix(t_ms, east_m, north_m, 5.0, PositionSource::Gps)
}

fn hit(positions: &[Reading]) -> Option<Hit> {
    evaluate(
        &crime(1, T0, T0 + 60 * MIN),
        "A1",
        "P1",
        positions,
        &HitsConfig::default(),
    )
}

#[test]
fn a_walk_past_between_two_sparse_fixes_outside_the_vicinity_is_a_hit() {
    // 2 minutes apart, 300 m either side, passing 40 m north of the crime.
    let trail = [
        gps(T0 + 10 * MIN, -300.0, 40.0),
        gps(T0 + 12 * MIN, 300.0, 40.0),
    ];
    for r in &trail {
        let ReadingBody::Position(p) = r.body else {
            unreachable!()
        };
        assert!(p.lat() > 0.0);
    }
    let h = hit(&trail).expect("the path between the fixes passes within 40 m");
    // No fix was inside: the straight line between them is an assumption.
    assert_eq!(h.certainty, Certainty::Possible);
    assert!((h.closest_m - 40.0).abs() <= 0.2, "{}", h.closest_m);
    assert_eq!(h.closest_t, T0 + 11 * MIN);
    // |x| ≤ 91.65 m of 600 m in 120 s
    assert_eq!(h.inside_s, 37);
    assert!(!h.weaker_evidence);
    assert!(h.positions.iter().all(|p| p.distance_m > 300.0));
    assert_eq!(h.positions.len(), 2);
}

#[test]
fn fixes_too_far_apart_are_not_joined() {
    let trail = [
        gps(T0 + 10 * MIN, -300.0, 40.0),
        gps(T0 + 26 * MIN, 300.0, 40.0),
    ];
    assert!(
        hit(&trail).is_none(),
        "16 minutes apart: a signal loss, not a walk"
    );
}

#[test]
fn just_outside_the_radius_is_not_a_hit() {
    // precise fixes passing 106 m away: 106 − 5 > 100
    let trail = [
        gps(T0 + 10 * MIN, -300.0, 106.0),
        gps(T0 + 12 * MIN, 300.0, 106.0),
    ];
    assert!(hit(&trail).is_none());
    // 104 m away with 5 m precision: the circle overlaps, so possible, never certain
    let trail = [
        gps(T0 + 10 * MIN, -300.0, 104.0),
        gps(T0 + 12 * MIN, 300.0, 104.0),
    ];
    let h = hit(&trail).expect("overlapping confidence circle");
    assert_eq!(h.certainty, Certainty::Possible);
}

#[test]
fn just_outside_the_window_is_not_a_hit() {
    // standing at the crime scene from 5 to 1 minute before the window opens
    let trail: Vec<Reading> = (1..=5).rev().map(|m| gps(T0 - m * MIN, 0.0, 0.0)).collect();
    assert!(hit(&trail).is_none());
    // and after it closed
    let trail: Vec<Reading> = (1..=5)
        .map(|m| gps(T0 + 60 * MIN + m * MIN, 0.0, 0.0))
        .collect();
    assert!(hit(&trail).is_none());
    // arriving a minute before the window closes is a hit
    let trail = [gps(T0 + 59 * MIN, 0.0, 0.0)];
    assert!(hit(&trail).is_some());
}

#[test]
fn walking_in_as_the_window_opens_counts_only_the_part_inside_it() {
    // from 500 m west at T0 − 2 min to the crime at T0 + 2 min: the window clips the segment
    let trail = [gps(T0 - 2 * MIN, -500.0, 0.0), gps(T0 + 2 * MIN, 0.0, 0.0)];
    let h = hit(&trail).expect("inside by the end");
    assert_eq!(h.closest_m, 0.0);
    // the last 100 m of 500 m over 4 minutes: 48 s
    assert_eq!(h.inside_s, 48);
    assert!(!h.positions[0].in_window && h.positions[1].in_window);
}

#[test]
fn precision_decides_certain_or_possible() {
    let at = |p: f64| [fix(T0 + 5 * MIN, 80.0, 0.0, p, PositionSource::Gps)];
    assert_eq!(hit(&at(15.0)).unwrap().certainty, Certainty::Certain);
    assert_eq!(hit(&at(30.0)).unwrap().certainty, Certainty::Possible);
    // 150 m away with a 60 m circle still overlaps; with 40 m it does not
    let far = |p: f64| [fix(T0 + 5 * MIN, 150.0, 0.0, p, PositionSource::Gps)];
    assert_eq!(hit(&far(60.0)).unwrap().certainty, Certainty::Possible);
    assert!(hit(&far(40.0)).is_none());
    // a circle wider than the maximum precision never makes a hit
    assert!(hit(&[fix(T0 + 5 * MIN, 0.0, 0.0, 800.0, PositionSource::Lbs)]).is_none());
}

#[test]
fn an_outlier_fix_at_the_scene_makes_a_hit_possible_not_certain() {
    // Standing 300 m away, one fix jumps to the crime scene for a minute and back.
    let mut trail: Vec<Reading> = (0..10).map(|m| gps(T0 + m * MIN, 300.0, 0.0)).collect();
    trail[5] = gps(T0 + 5 * MIN, 10.0, 0.0);
    assert_eq!(hit(&trail).unwrap().certainty, Certainty::Possible);
    // Walking there and staying is certain.
    let walk: Vec<Reading> = (0..10)
        .map(|m| gps(T0 + m * MIN, 300.0 - 35.0 * m as f64, 0.0))
        .collect();
    assert_eq!(hit(&walk).unwrap().certainty, Certainty::Certain);
}

#[test]
fn lbs_and_wifi_fixes_are_marked_weaker_evidence() {
    let lbs = [fix(T0 + 5 * MIN, 50.0, 0.0, 200.0, PositionSource::Lbs)];
    let h = hit(&lbs).expect("an LBS circle covering the crime");
    assert!(h.weaker_evidence);
    assert_eq!(h.certainty, Certainty::Possible);
    let wifi = [fix(T0 + 5 * MIN, 20.0, 0.0, 30.0, PositionSource::Wifi)];
    assert!(hit(&wifi).unwrap().weaker_evidence);
    // one GPS fix inside makes the same hit strong
    let mixed = [lbs[0], gps(T0 + 6 * MIN, 10.0, 0.0)];
    assert!(!hit(&mixed).unwrap().weaker_evidence);
}

#[test]
fn evidence_carries_labels_with_a_new_letter_after_a_gap() {
    let trail = [
        gps(T0 - 20 * MIN, 900.0, 0.0),
        gps(T0 - 19 * MIN, 800.0, 0.0),
        gps(T0 + 5 * MIN, 50.0, 0.0),
        gps(T0 + 6 * MIN, 40.0, 0.0),
        gps(T0 + 7 * MIN, 30.0, 0.0),
        gps(T0 + 3 * 60 * MIN, 30.0, 0.0), // beyond the evidence margin
    ];
    let h = hit(&trail).unwrap();
    let labels: Vec<&str> = h.positions.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["A1", "A2", "B1", "B2", "B3"]);
    assert_eq!(h.positions[2].speed_kmh, Some(5.0));
    assert_eq!(h.positions[2].heading_deg, Some(90.0));
    assert_eq!(h.algorithm.name, "hits/3");
    assert_eq!(h.algorithm.radius_m, 100.0);
}

/// A day of a walker who passes the crime mid-morning, fixes a minute apart.
fn walker_day() -> Vec<Reading> {
    (0..240)
        .map(|m| {
            let east = -1200.0 + 10.0 * m as f64;
            gps(T0 - 60 * MIN + m * MIN, east, 30.0 + (m % 7) as f64)
        })
        .collect()
}

fn final_hits(changes: Vec<HitChange>, into: &mut std::collections::BTreeMap<String, Hit>) {
    for c in changes {
        match c {
            HitChange::Upsert(h) => {
                into.insert(h.id.clone(), *h);
            }
            HitChange::Withdraw { id, .. } => {
                into.remove(&id);
            }
        }
    }
}

#[test]
fn live_matching_in_any_arrival_order_equals_retrospective_matching() {
    let config = HitsConfig::default();
    let crimes = vec![
        crime(1, T0, T0 + 60 * MIN),
        crime(2, T0 + 3 * 60 * MIN, T0 + 4 * 60 * MIN),
    ];
    let day = walker_day();

    // Retrospective: every position stored, then the batch.
    let mut all = MemoryTrails::new(config.max_gap_s * 1000);
    for r in &day {
        all.push("A1", *r);
    }
    all.seal();
    let mut retro = HitMatcher::new(config);
    retro.set_person("A1", "P1");
    let slots = retro.add_crimes(crimes.clone());
    let mut expected = Default::default();
    final_hits(retro.match_crimes(&all, &slots).unwrap(), &mut expected);
    assert_eq!(expected.len(), 1, "the walker passes the first crime only");

    // Live: crimes first, then positions in uploads of 10, the middle hour arriving last (a
    // signal loss, uploaded late).
    let mut live = HitMatcher::new(config);
    live.set_person("A1", "P1");
    live.add_crimes(crimes);
    let mut stored = MemoryTrails::new(config.max_gap_s * 1000);
    let mut got = Default::default();
    let (early, rest): (Vec<&Reading>, Vec<&Reading>) = day
        .iter()
        .partition(|r| r.t_ms < T0 || r.t_ms >= T0 + 60 * MIN);
    for upload in early.chunks(10).chain(rest.chunks(10)) {
        let upload: Vec<Reading> = upload.iter().map(|r| **r).collect();
        for r in &upload {
            stored.push("A1", *r);
        }
        stored.seal();
        final_hits(live.on_positions(&stored, "A1", &upload).unwrap(), &mut got);
    }
    assert_eq!(got, expected);
}

#[test]
fn a_late_fix_between_two_fixes_can_withdraw_a_hit() {
    let config = HitsConfig::default();
    let mut m = HitMatcher::new(config);
    m.add_crimes([crime(1, T0, T0 + 60 * MIN)]);
    let mut stored = MemoryTrails::new(config.max_gap_s * 1000);
    let first = [
        gps(T0 + 10 * MIN, -300.0, 40.0),
        gps(T0 + 14 * MIN, 300.0, 40.0),
    ];
    for r in first {
        stored.push("A1", r);
    }
    stored.seal();
    let changes = m.on_positions(&stored, "A1", &first).unwrap();
    assert!(matches!(&changes[..], [HitChange::Upsert(_)]));
    // The tag's buffered fix arrives: it went round, 2 km north, in between.
    let late = [gps(T0 + 12 * MIN, 0.0, 2000.0)];
    stored.push("A1", late[0]);
    stored.seal();
    let changes = m.on_positions(&stored, "A1", &late).unwrap();
    assert!(
        matches!(&changes[..], [HitChange::Withdraw { .. }]),
        "{changes:?}"
    );
}
