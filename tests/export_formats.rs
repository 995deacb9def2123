//! The exported geometries against their standards: GeoJSON per RFC 7946 (parsed by the `geojson`
//! crate, then checked for what a parser does not: positions per geometry, closed rings and
//! anticlockwise exterior rings), GPX 1.1 and KML 2.2 against their published XML schemas
//! (vendored in `fixtures/schemas/`, validated by `xmllint` from Debian's libxml2-utils, which
//! `scripts/test.sh` installs), for trails of 0, 1 and many positions, with and without gaps.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use tagstream::crime::evidence::{circle_ring, evidence_geojson};
use tagstream::model::{Hit, Position, PositionSource, Reading, ReadingBody};
use tagstream::trail::export::{to_geojson, to_gpx, to_kml};
use tagstream::trail::GapConfig;

/// A position `t_min` minutes in, a little further north-east each minute.
fn at(t_min: i64) -> Reading {
    Reading {
        t_ms: 1_700_000_000_000 + t_min * 60_000,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: 515_000_000 + (t_min as i32) * 1_000,
            lon_e7: -25_000_000 + (t_min as i32) * 1_500,
            precision_cm: 800,
            source: PositionSource::Gps,
            speed_ckmh: Some(420),
            heading_cdeg: Some(4_500),
            satellites: Some(8),
        }),
    }
}

fn trail(minutes: &[i64]) -> Vec<Reading> {
    minutes.iter().map(|&m| at(m)).collect()
}

/// The trails every check runs over: name, minutes, expected segments (positions in each).
fn cases() -> Vec<(&'static str, Vec<i64>, Vec<usize>)> {
    vec![
        ("empty", vec![], vec![]),
        ("one point", vec![0], vec![1]),
        ("two points", vec![0, 1], vec![2]),
        ("one segment", vec![0, 1, 2, 3], vec![4]),
        ("two segments", vec![0, 1, 2, 30, 31], vec![3, 2]),
        // A lone fix between two gaps, then a segment.
        (
            "lone fix between gaps",
            vec![0, 1, 20, 40, 41, 42],
            vec![2, 1, 3],
        ),
        ("lone fixes only", vec![0, 20, 40], vec![1, 1, 1]),
    ]
}

// ---- RFC 7946 checks ----

fn position_ok(p: &Value) -> Result<(), String> {
    let a = p.as_array().ok_or("a position is not an array")?;
    if !(2..=3).contains(&a.len()) {
        return Err(format!("a position has {} numbers", a.len()));
    }
    let lon = a[0].as_f64().ok_or("longitude not a number")?;
    let lat = a[1].as_f64().ok_or("latitude not a number")?;
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(format!(
            "position [{lon}, {lat}] out of range (lon, lat order?)"
        ));
    }
    Ok(())
}

fn positions(v: &Value, min: usize, what: &str) -> Result<Vec<[f64; 2]>, String> {
    let a = v
        .as_array()
        .ok_or(format!("{what}: coordinates not an array"))?;
    if a.len() < min {
        return Err(format!(
            "{what}: {} positions, RFC 7946 wants at least {min}",
            a.len()
        ));
    }
    a.iter()
        .map(|p| {
            position_ok(p)?;
            Ok([p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)])
        })
        .collect()
}

/// Twice the signed area (shoelace): positive for an anticlockwise ring in lon/lat.
fn signed_area2(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2)
        .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
        .sum()
}

fn polygon_ok(rings: &Value) -> Result<(), String> {
    let rings = rings.as_array().ok_or("polygon: not an array of rings")?;
    if rings.is_empty() {
        return Err("polygon without rings".into());
    }
    for (i, ring) in rings.iter().enumerate() {
        let r = positions(ring, 4, "linear ring")?;
        if r.first() != r.last() {
            return Err("linear ring not closed".into());
        }
        let area = signed_area2(&r);
        // RFC 7946 §3.1.6: exterior rings anticlockwise, holes clockwise.
        if i == 0 && area <= 0.0 {
            return Err(format!("exterior ring wound clockwise (area×2 {area:e})"));
        }
        if i > 0 && area >= 0.0 {
            return Err("hole wound anticlockwise".into());
        }
    }
    Ok(())
}

/// Checks one geometry per RFC 7946 §3.1.
fn geometry_ok(g: &Value) -> Result<(), String> {
    let c = &g["coordinates"];
    match g["type"].as_str() {
        Some("Point") => position_ok(c),
        Some("MultiPoint") => positions(c, 1, "MultiPoint").map(|_| ()),
        Some("LineString") => positions(c, 2, "LineString").map(|_| ()),
        Some("MultiLineString") => c
            .as_array()
            .ok_or("MultiLineString: not an array")?
            .iter()
            .try_for_each(|l| positions(l, 2, "MultiLineString member").map(|_| ())),
        Some("Polygon") => polygon_ok(c),
        Some("MultiPolygon") => c
            .as_array()
            .ok_or("MultiPolygon: not an array")?
            .iter()
            .try_for_each(polygon_ok),
        Some("GeometryCollection") => g["geometries"]
            .as_array()
            .ok_or("GeometryCollection without geometries")?
            .iter()
            .try_for_each(geometry_ok),
        other => Err(format!("unknown geometry type {other:?}")),
    }
}

/// Parses `doc` as GeoJSON with the `geojson` crate and checks every feature's geometry.
fn assert_rfc7946(doc: &Value, what: &str) {
    let text = doc.to_string();
    if let Err(e) = text.parse::<geojson::GeoJson>() {
        panic!("{what}: not GeoJSON: {e}");
    }
    assert_eq!(doc["type"], "FeatureCollection", "{what}");
    for f in doc["features"].as_array().expect("features") {
        assert_eq!(f["type"], "Feature", "{what}");
        let g = &f["geometry"];
        if g.is_null() {
            continue;
        }
        if let Err(e) = geometry_ok(g) {
            panic!("{what}: feature {}: {e}", f["properties"]);
        }
    }
}

fn track(doc: &Value) -> &Value {
    doc["features"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["properties"]["kind"] == "track"))
        .expect("a track feature")
}

/// The track geometry's segments as position counts (lines, then lone points).
fn geojson_segments(g: &Value) -> Vec<usize> {
    let n = |v: &Value| v.as_array().map_or(0, Vec::len);
    match g["type"].as_str() {
        None => vec![],
        Some("Point") => vec![1],
        Some("MultiPoint") => vec![1; n(&g["coordinates"])],
        Some("LineString") => vec![n(&g["coordinates"])],
        Some("MultiLineString") => g["coordinates"]
            .as_array()
            .map(|ls| ls.iter().map(n).collect())
            .unwrap_or_default(),
        Some("GeometryCollection") => g["geometries"]
            .as_array()
            .map(|gs| gs.iter().flat_map(geojson_segments).collect())
            .unwrap_or_default(),
        Some(other) => panic!("unexpected track geometry {other}"),
    }
}

/// Lines first (in order), then the lone points: how the exports group a track.
fn lines_then_points(segments: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = segments.iter().copied().filter(|&n| n > 1).collect();
    out.extend(segments.iter().copied().filter(|&n| n == 1));
    out
}

#[test]
fn geojson_track_geometry_fits_the_positions_and_gaps() {
    for (name, minutes, segments) in cases() {
        let doc = to_geojson(name, &trail(&minutes), &GapConfig::default());
        assert_rfc7946(&doc, name);
        let g = &track(&doc)["geometry"];
        let expected_type = match (segments.len(), segments.first()) {
            (0, _) => "null",
            (1, Some(1)) => "Point",
            (1, _) => "LineString",
            _ if segments.iter().all(|&n| n == 1) => "MultiPoint",
            _ if segments.iter().all(|&n| n > 1) => "MultiLineString",
            _ => "GeometryCollection",
        };
        assert_eq!(
            g["type"].as_str().unwrap_or("null"),
            expected_type,
            "{name}: {g}"
        );
        assert_eq!(geojson_segments(g), lines_then_points(&segments), "{name}");
        let points = doc["features"].as_array().map_or(0, |fs| {
            fs.iter()
                .filter(|f| f["properties"]["kind"] == "position")
                .count()
        });
        assert_eq!(
            points,
            minutes.len(),
            "{name}: a Point feature per position"
        );
    }
}

#[test]
fn evidence_polygons_are_anticlockwise_closed_rings() {
    for (lat, lon, r) in [
        (51.45, -2.58, 100.0),
        (-33.9, 151.2, 25.0),
        (0.0, 179.99, 500.0),
    ] {
        let ring = circle_ring(lat, lon, r);
        let ring_json = json!([ring]);
        polygon_ok(&ring_json).unwrap_or_else(|e| panic!("circle at {lat},{lon}: {e}"));
    }
    let hit: Hit = serde_json::from_value(json!({
        "id": "h1", "force": "avon-and-somerset", "batch_id": "b1", "crime_ref": "C1",
        "crime_version": 1, "activation": "A1", "person": "P1", "certainty": "certain",
        "closest_m": 12.5, "closest_t": "2024-03-01T10:05:00Z", "inside_s": 300,
        "positions": [
            {"label": "A1", "t": "2024-03-01T10:00:00Z", "lat": 51.45, "lon": -2.58,
             "precision_m": 8.0, "source": "gps", "speed_kmh": 4.0, "heading_deg": 90.0,
             "in_window": true, "distance_m": 12.5},
            {"label": "A2", "t": "2024-03-01T10:01:00Z", "lat": 51.4501, "lon": -2.5801,
             "precision_m": 30.0, "source": "gps", "speed_kmh": null, "heading_deg": null,
             "in_window": true, "distance_m": 20.0},
            {"label": "B1", "t": "2024-03-01T10:30:00Z", "lat": 51.46, "lon": -2.59,
             "precision_m": 50.0, "source": "lbs", "speed_kmh": null, "heading_deg": null,
             "in_window": false, "distance_m": 900.0}
        ],
        "algorithm": {"name": "hits/2", "radius_m": 100.0, "max_gap_s": 900, "margin_s": 1800,
                      "max_precision_m": 200.0, "label_gap_s": 300},
        "crime_type": "burglary", "crime_from": "2024-03-01T09:00:00Z",
        "crime_to": "2024-03-01T11:00:00Z", "crime_lat": 51.4501, "crime_lon": -2.5800,
        "radius_m": 100.0, "weaker_evidence": false
    }))
    .expect("a Hit built from its JSON form");
    let doc = evidence_geojson(&hit);
    assert_rfc7946(&doc, "evidence");
    let polygons = doc["features"].as_array().map_or(0, |fs| {
        fs.iter()
            .filter(|f| f["geometry"]["type"] == "Polygon")
            .count()
    });
    assert_eq!(
        polygons, 4,
        "the vicinity and a confidence circle per position"
    );
}

// ---- XML schemas ----

fn xmllint() -> &'static str {
    let ok = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "xmllint is needed to validate GPX and KML against their schemas: \
         apt-get install -y libxml2-utils (scripts/test.sh does)"
    );
    "xmllint"
}

/// Validates `doc` against the schema at `xsd` (relative to the repository).
fn assert_valid_xml(doc: &str, xsd: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.xml");
    std::fs::write(&file, doc).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join(xsd);
    let out = Command::new(xmllint())
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what} does not validate against {xsd}:\n{}\n{doc}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const GPX_XSD: &str = "fixtures/schemas/gpx-1.1/gpx.xsd";
const KML_XSD: &str = "fixtures/schemas/kml-2.2/ogckml22.xsd";

#[test]
fn the_schema_check_catches_an_invalid_document() {
    // The validator is real: an element GPX 1.1 does not have is refused.
    let bad = to_gpx("x", &trail(&[0, 1]), &GapConfig::default())
        .replace("<name>x</name>", "<title>x</title>");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.gpx");
    std::fs::write(&file, bad).unwrap();
    let out = Command::new(xmllint())
        .args(["--noout", "--nonet", "--schema"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(GPX_XSD))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn gpx_is_valid_gpx_1_1_with_a_segment_per_stretch() {
    for (name, minutes, segments) in cases() {
        let gpx = to_gpx(name, &trail(&minutes), &GapConfig::default());
        assert_valid_xml(&gpx, GPX_XSD, name);
        let doc = roxmltree::Document::parse(&gpx).unwrap();
        let got: Vec<usize> = doc
            .descendants()
            .filter(|n| n.has_tag_name("trkseg"))
            .map(|s| s.children().filter(|n| n.has_tag_name("trkpt")).count())
            .collect();
        assert_eq!(got, segments, "{name}: one trkseg per segment");
    }
}

#[test]
fn kml_is_valid_kml_2_2_with_geometry_fitting_the_positions() {
    for (name, minutes, segments) in cases() {
        let kml = to_kml(name, &trail(&minutes), &GapConfig::default());
        assert_valid_xml(&kml, KML_XSD, name);
        let doc = roxmltree::Document::parse(&kml).unwrap();
        let track = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("Placemark")
                    && n.children()
                        .any(|c| c.has_tag_name("name") && c.text() == Some("track"))
            })
            .expect("the track placemark");
        // Position counts of the track's LineStrings and Points, and where they sit.
        let mut got = Vec::new();
        for g in track.descendants() {
            if g.has_tag_name("LineString") || g.has_tag_name("Point") {
                let coords = g
                    .children()
                    .find(|c| c.has_tag_name("coordinates"))
                    .and_then(|c| c.text())
                    .unwrap_or("");
                let n = coords.split_whitespace().count();
                if g.has_tag_name("LineString") {
                    assert!(n >= 2, "{name}: a LineString of {n} positions");
                } else {
                    assert_eq!(n, 1, "{name}: a Point of {n} positions");
                }
                got.push(n);
            }
        }
        assert_eq!(got, lines_then_points(&segments), "{name}");
        let multi = track.descendants().any(|n| n.has_tag_name("MultiGeometry"));
        assert_eq!(
            multi,
            segments.len() > 1,
            "{name}: MultiGeometry iff several parts"
        );
    }
}
