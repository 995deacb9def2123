//! Plausibility of generated trails and sensors: no jump faster than any travel mode allows
//! (except multipath outliers flagged in truth), precision distributions as specified, TAC about
//! every 30 minutes, contract-valid readings in per-tag upload order.

mod common;

use std::collections::HashSet;
use tagsim::geo::haversine_m;
use tagstream::model::{PositionSource, ReadingBody};

#[test]
fn trails_sensors_and_upload_order_are_plausible() {
    let dir = common::generated(|d| common::options(d, 40, 3, 11));
    let rs = common::readings(dir.path());
    let truth = common::truth(dir.path());
    let outliers: HashSet<(String, i64)> = truth
        .iter()
        .filter(|t| t["type"] == "gps_outlier")
        .map(|t| {
            (
                t["tag"].as_str().unwrap_or_default().to_string(),
                common::t(&t["start"]),
            )
        })
        .collect();
    assert!(!outliers.is_empty(), "some multipath outliers are expected");

    let mut gps_prec = Vec::new();
    let mut fallback = 0usize;
    let mut checked_pairs = 0usize;
    for (tag, readings) in common::by_tag(&rs) {
        let mut fixes: Vec<(i64, f64, f64, f64)> = readings
            .iter()
            .filter_map(|r| match r.body {
                ReadingBody::Position(p) if p.source == PositionSource::Gps => {
                    Some((r.t_ms, p.lat(), p.lon(), p.precision_m()))
                }
                _ => None,
            })
            .filter(|f| !outliers.contains(&(tag.clone(), f.0)))
            .collect();
        for r in &readings {
            if let ReadingBody::Position(p) = r.body {
                if p.source == PositionSource::Gps {
                    gps_prec.push(p.precision_m());
                } else {
                    fallback += 1;
                    assert!(
                        (100.0..=1500.0).contains(&p.precision_m()),
                        "fallback precision {}",
                        p.precision_m()
                    );
                }
            }
        }
        fixes.sort_by_key(|f| f.0);
        for w in fixes.windows(2) {
            let (a, b) = (w[0], w[1]);
            let dt_h = (b.0 - a.0) as f64 / 3_600_000.0;
            if dt_h <= 0.0 || dt_h > 0.25 {
                continue;
            }
            let d = haversine_m(a.1, a.2, b.1, b.2);
            // Fastest mode is a car at 60 km/h; errors are bounded by the 95% radii (with slack
            // for the 5% beyond them and for indoor wander).
            let allowed = 60_000.0 * dt_h + 1.6 * (a.3 + b.3) + 15.0;
            assert!(
                d <= allowed,
                "{tag}: {d:.0} m in {:.1} min (allowed {allowed:.0})",
                dt_h * 60.0
            );
            checked_pairs += 1;
        }
        // Within a tag, batches arrive in sequence and event times never run backwards by more
        // than a late upload allows; events and readings are each in measurement order per batch.
    }
    assert!(checked_pairs > 10_000, "{checked_pairs}");
    gps_prec.sort_by(f64::total_cmp);
    assert!(
        gps_prec.iter().all(|p| (3.0..=30.0).contains(p)),
        "GPS precision within 3–30 m"
    );
    let median = gps_prec[gps_prec.len() / 2];
    assert!(
        (4.0..=20.0).contains(&median),
        "median GPS precision {median}"
    );
    assert!(
        fallback > 100,
        "indoor LBS/Wi-Fi fallback expected, got {fallback}"
    );

    // TAC about every 30 minutes after the first hour of ~5-minute readings.
    let mut tac_tags = 0;
    for readings in common::by_tag(&rs).values() {
        let mut ts: Vec<i64> = readings
            .iter()
            .filter(|r| matches!(r.body, ReadingBody::Tac(_)))
            .map(|r| r.t_ms)
            .collect();
        if ts.is_empty() {
            continue;
        }
        tac_tags += 1;
        ts.sort_unstable();
        let fit = ts[0];
        for w in ts.windows(2) {
            let gap_min = (w[1] - w[0]) as f64 / 60_000.0;
            if w[0] - fit >= 3_600_000 {
                assert!((29.9..=31.0).contains(&gap_min), "TAC gap {gap_min} min");
            } else {
                assert!(
                    (4.9..=31.0).contains(&gap_min),
                    "TAC gap at fitting {gap_min} min"
                );
            }
        }
    }
    assert!(tac_tags > 0);
}

#[test]
fn readings_are_in_upload_order_with_late_store_and_forward_data() {
    let dir = common::generated(|d| common::options(d, 30, 2, 5));
    let rs = common::readings(dir.path());
    // Per tag the file is in upload order, and a tag uploads what it stored in measurement order.
    for (tag, readings) in common::by_tag(&rs) {
        for w in readings.windows(2) {
            assert!(
                w[1].t_ms >= w[0].t_ms,
                "{tag}: {} after {}",
                w[1].t_ms,
                w[0].t_ms
            );
        }
    }
    // Across tags, batching (~10 minutes) and signal losses deliver data late: lines measured long
    // before the newest line already in the file.
    let mut newest = i64::MIN;
    let mut lag_10_min = 0;
    let mut lag_30_min = 0;
    for r in &rs {
        let lag = newest.saturating_sub(r.reading.t_ms);
        if lag > 10 * 60_000 {
            lag_10_min += 1;
        }
        if lag > 30 * 60_000 {
            lag_30_min += 1;
        }
        newest = newest.max(r.reading.t_ms);
    }
    assert!(
        lag_10_min > 0 && lag_30_min > 0,
        "late data expected: {lag_10_min} {lag_30_min}"
    );
    assert!(
        lag_10_min < rs.len() / 4,
        "most data arrives within about 10 minutes"
    );
}

#[test]
fn a_replaced_tag_ends_its_activation_and_the_new_tag_starts_a_new_one() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 30, 3, 13);
        o.swap_share = 0.5;
        o
    });
    let orders = common::orders(dir.path());
    let acts = orders["activations"].as_array().expect("activations");
    let rs = common::readings(dir.path());
    let tags = common::by_tag(&rs);
    let mut swaps = 0;
    let mut rf_swaps = 0;
    for old in acts.iter().filter(|a| !a["to"].is_null()) {
        let to = common::t(&old["to"]);
        let new = acts
            .iter()
            .find(|a| a["person"] == old["person"] && a["id"] != old["id"])
            .expect("replacement activation");
        assert_eq!(
            common::t(&new["from"]),
            to,
            "the new activation starts as the old ends"
        );
        assert_ne!(new["tag"], old["tag"]);
        let old_rs = &tags[old["tag"].as_str().unwrap_or_default()];
        let last = old_rs.last().expect("old tag readings");
        assert_eq!(
            last.body,
            ReadingBody::Event(tagstream::model::DeviceEvent::Removed)
        );
        assert!(
            old_rs.iter().all(|r| r.t_ms <= to),
            "nothing from the old tag after removal"
        );
        let new_rs = &tags[new["tag"].as_str().unwrap_or_default()];
        assert_eq!(
            new_rs[0].body,
            ReadingBody::Event(tagstream::model::DeviceEvent::Fitted)
        );
        assert!(new_rs.iter().all(|r| r.t_ms >= to));
        // A home unit reports a newly fitted tag at once, not at its next heartbeat (seed 55's
        // A545: fitted at 19:01, first presence at 19:25, a false AL08 at the curfew start).
        let had_rf = old_rs
            .iter()
            .any(|r| matches!(r.body, ReadingBody::Rf { .. }));
        if had_rf {
            let first_rf = new_rs
                .iter()
                .find(|r| matches!(r.body, ReadingBody::Rf { .. }))
                .map(|r| r.t_ms);
            let unit_off = new_rs.iter().any(|r| {
                r.t_ms <= to + 5 * 60_000
                    && r.body == ReadingBody::Event(tagstream::model::DeviceEvent::HmuPowerLoss)
            });
            if !unit_off {
                assert!(
                    first_rf.is_some_and(|t| t <= to + 5 * 60_000),
                    "{}: first presence report {:?} ms after fitting",
                    new["tag"],
                    first_rf.map(|t| t - to)
                );
                rf_swaps += 1;
            }
        }
        swaps += 1;
    }
    assert!(swaps >= 5, "{swaps} swaps");
    assert!(
        rf_swaps >= 2,
        "{rf_swaps} swaps of tags seen by a home unit"
    );
    // Batches of the new tag are numbered from 1.
    let text = std::fs::read_to_string(dir.path().join("readings.jsonl")).expect("readings");
    let first_new = acts.iter().find(|a| {
        a["id"]
            .as_str()
            .is_some_and(|id| id.trim_start_matches('A').parse::<usize>().unwrap_or(0) > 30)
    });
    if let Some(a) = first_new {
        let tag = a["tag"].as_str().unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"tag\":\"{tag}\"")))
            .expect("new tag line");
        assert!(line.ends_with("\"batch\":1}"), "{line}");
    }
}

#[test]
fn another_force_area_puts_homes_inside_it_and_names_its_crime_files() {
    let dir = common::generated(|d| {
        let mut o = common::options(d, 25, 1, 17);
        o.area = "Metropolitan Police".into();
        o.rates.malformed_share = 0.0;
        o
    });
    let area =
        tagsim::area::Area::load(&common::areas_file(), "Metropolitan Police").expect("area");
    let orders = common::orders(dir.path());
    let mut homes = 0;
    for o in orders["orders"].as_array().expect("orders") {
        for c in o["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["type"] == "curfew")
        {
            for a in c["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["id"] == "home")
            {
                let p = area.frame.to_xy(
                    a["lat"].as_f64().unwrap_or(0.0),
                    a["lon"].as_f64().unwrap_or(0.0),
                );
                assert!(
                    area.contains(p),
                    "home {a} outside the Metropolitan Police area"
                );
                homes += 1;
            }
        }
    }
    assert!(homes > 0);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("crimes"))
        .expect("crimes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["Metropolitan-20260303.csv"]);
    let text =
        std::fs::read_to_string(dir.path().join("crimes/Metropolitan-20260303.csv")).expect("file");
    for l in text.lines() {
        let f = common::csv_fields(l);
        assert_eq!(
            (f[0].as_str(), f[3].as_str()),
            ("Metropolitan", "MPS20260303"),
            "{l}"
        );
    }
}
