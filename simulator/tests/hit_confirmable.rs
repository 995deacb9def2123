//! Hit truth's `confirmable`: a true hit is confirmable exactly when the tag reported, during the
//! crime's window, a fix (not a simulated outlier) whose whole confidence circle lies inside the
//! 100 m vicinity — recomputed here from the readings and crime files as written, with tagstream's
//! own coordinate conversion and projection (as the hit rule measures).

mod common;

use std::collections::{HashMap, HashSet};
use tagstream::crime::coordinates::bng_to_wgs84;
use tagstream::model::ReadingBody;
use tagstream::rules::geodesy::LocalProjection;

/// A crime row as written: window and WGS84 location.
struct Row {
    from_ms: i64,
    to_ms: i64,
    lat: f64,
    lon: f64,
}

fn stamp_ms(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

/// Good rows of every crime file, by (batch id, crime reference).
fn crime_rows(dir: &std::path::Path) -> HashMap<(String, String), Row> {
    let mut rows = HashMap::new();
    for entry in std::fs::read_dir(dir.join("crimes")).expect("crimes dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("crime file");
        for line in text.lines() {
            let f = common::csv_fields(line);
            if f.len() != 13 {
                continue;
            }
            let (Some(from_ms), Some(to_ms)) = (stamp_ms(&f[5]), stamp_ms(&f[6])) else {
                continue;
            };
            let (lat, lon) = match (f[7].parse::<f64>(), f[8].parse::<f64>()) {
                (Ok(e), Ok(n)) if f[9].is_empty() && f[10].is_empty() => {
                    let Ok(ll) = bng_to_wgs84(e, n) else { continue };
                    (ll.lat, ll.lon)
                }
                _ => match (f[9].parse::<f64>(), f[10].parse::<f64>()) {
                    (Ok(la), Ok(lo)) if f[7].is_empty() && f[8].is_empty() => (la, lo),
                    _ => continue,
                },
            };
            rows.insert(
                (f[3].clone(), f[4].clone()),
                Row {
                    from_ms,
                    to_ms,
                    lat,
                    lon,
                },
            );
        }
    }
    rows
}

#[test]
fn a_hit_is_confirmable_exactly_when_a_reported_fix_lies_wholly_inside_the_vicinity() {
    let dir = common::generated(|out| common::options(out, 300, 5, 11));
    let truth = common::truth(dir.path());
    let by_tag = common::by_tag(&common::readings(dir.path()));
    let rows = crime_rows(dir.path());
    let outliers: HashSet<(String, i64)> = truth
        .iter()
        .filter(|t| t["type"] == "gps_outlier")
        .map(|t| {
            (
                t["tag"].as_str().unwrap_or("").to_string(),
                common::t(&t["start"]),
            )
        })
        .collect();
    let (mut confirmable, mut not) = (0, 0);
    for hit in truth.iter().filter(|t| t["type"] == "hit") {
        let key = (
            hit["batch_id"].as_str().expect("batch_id").to_string(),
            hit["crime_ref"].as_str().expect("crime_ref").to_string(),
        );
        let row = rows
            .get(&key)
            .unwrap_or_else(|| panic!("no crime row {key:?}"));
        let tag = hit["tag"].as_str().expect("tag");
        let around_crime = LocalProjection::new(row.lat, row.lon);
        let readings = by_tag.get(tag).map(Vec::as_slice).unwrap_or(&[]);
        let inside: Vec<i64> = readings
            .iter()
            .filter(|r| r.t_ms >= row.from_ms && r.t_ms <= row.to_ms)
            .filter(|r| !outliers.contains(&(tag.to_string(), r.t_ms)))
            .filter_map(|r| match &r.body {
                ReadingBody::Position(p) => {
                    let (x, y) = around_crime.to_xy(p.lat(), p.lon());
                    ((x * x + y * y).sqrt() + p.precision_m() <= 100.0).then_some(r.t_ms)
                }
                _ => None,
            })
            .collect();
        let expected = !inside.is_empty();
        let said = hit
            .get("confirmable")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        assert_eq!(
            said, expected,
            "{key:?} on {tag}: fixes inside at {inside:?}; {hit}"
        );
        if said {
            confirmable += 1;
        } else {
            not += 1;
        }
    }
    // Both kinds occur (walk-pasts seen only between fixes are common), so the check has teeth.
    assert!(
        confirmable > 0 && not > 0,
        "{confirmable} confirmable, {not} not"
    );
}
