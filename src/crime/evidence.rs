//! What a hit is shown and disclosed as: the GeoJSON evidence file of one hit (crime point,
//! vicinity circle, positions with their confidence circles and sequence labels, the track) and
//! the hub's 18-column CSV of a batch's hits.

use crate::formats::csv_safe::SafeCsvWriter;
use crate::model::time::format_time;
use crate::model::{Hit, Person, PositionSource, TimeMs};
use crate::rules::geodesy::M_PER_DEG_LAT;
use serde_json::{json, Value};

/// Vertices of a drawn circle (a 64-gon is within 0.12% of the radius).
const CIRCLE_VERTICES: usize = 64;

/// A circle of `radius_m` around a point as a closed GeoJSON ring of `[lon, lat]`, wound
/// anticlockwise (from east through north), as RFC 7946 §3.1.6 wants of an exterior ring.
pub fn circle_ring(lat: f64, lon: f64, radius_m: f64) -> Vec<[f64; 2]> {
    let m_per_deg_lon = M_PER_DEG_LAT * lat.to_radians().cos().max(1e-6);
    let mut ring: Vec<[f64; 2]> = (0..CIRCLE_VERTICES)
        .map(|i| {
            let a = i as f64 / CIRCLE_VERTICES as f64 * std::f64::consts::TAU;
            [
                round7(lon + radius_m * a.cos() / m_per_deg_lon),
                round7(lat + radius_m * a.sin() / M_PER_DEG_LAT),
            ]
        })
        .collect();
    ring.push(ring[0]);
    ring
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// The evidence file of one hit.
pub fn evidence_geojson(hit: &Hit) -> Value {
    let mut features = vec![
        json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [hit.crime_lon, hit.crime_lat]},
            "properties": {
                "kind": "crime", "hit": hit.id, "force": hit.force, "batch_id": hit.batch_id,
                "crime_ref": hit.crime_ref, "crime_version": hit.crime_version,
                "crime_type": hit.crime_type, "from": format_time(hit.crime_from),
                "to": format_time(hit.crime_to),
            }
        }),
        json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [circle_ring(hit.crime_lat, hit.crime_lon, hit.radius_m)]},
            "properties": {"kind": "vicinity", "radius_m": hit.radius_m}
        }),
    ];
    for p in &hit.positions {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [circle_ring(p.lat, p.lon, p.precision_m)]},
            "properties": {"kind": "confidence", "label": p.label, "precision_m": p.precision_m}
        }));
    }
    // One track per sequence letter: a new letter means a gap, not a path.
    let mut track: Vec<[f64; 2]> = Vec::new();
    let mut letter = String::new();
    let flush = |track: &mut Vec<[f64; 2]>, letter: &str, features: &mut Vec<Value>| {
        if track.len() >= 2 {
            features.push(json!({
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": track},
                "properties": {"kind": "track", "sequence": letter}
            }));
        }
        track.clear();
    };
    for p in &hit.positions {
        let this: String = p
            .label
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if this != letter {
            flush(&mut track, &letter, &mut features);
            letter = this;
        }
        track.push([p.lon, p.lat]);
    }
    flush(&mut track, &letter, &mut features);
    for p in &hit.positions {
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
            "properties": {
                "kind": "position", "label": p.label, "t": format_time(p.t),
                "precision_m": p.precision_m, "source": p.source,
                "weaker": p.source != PositionSource::Gps,
                "speed_kmh": p.speed_kmh, "heading_deg": p.heading_deg,
                "in_window": p.in_window, "distance_m": p.distance_m,
            }
        }));
    }
    json!({
        "type": "FeatureCollection",
        "properties": {
            "hit": hit.id, "certainty": hit.certainty, "weaker_evidence": hit.weaker_evidence,
            "closest_m": hit.closest_m, "closest_t": format_time(hit.closest_t),
            "inside_s": hit.inside_s, "algorithm": hit.algorithm,
        },
        "features": features,
    })
}

/// The hub's hit export columns, in order.
pub const HIT_CSV_COLUMNS: [&str; 18] = [
    "POLICE FORCE",
    "BATCH ID",
    "CRIME REF",
    "CRIME TYPE",
    "FROM DATE/TIME",
    "TO DATE/TIME",
    "CRIME LATITUDE",
    "CRIME LONGITUDE",
    "OTHER INFO",
    "DEVICE ID",
    "DEVICE NAME",
    "SUBJECT IDENTIFIER",
    "OFFENDER NAME",
    "NOMIS ID",
    "PNC REF",
    "OFFENDER ADDRESS",
    "OFFENDER DATE OF BIRTH",
    "OFFENDER MANAGER",
];

/// One hit with what the export needs besides it.
pub struct HitRow<'a> {
    pub hit: &'a Hit,
    /// The crime's free text.
    pub other_info: &'a str,
    /// The tag of the activation.
    pub device_id: &'a str,
    pub person: Option<&'a Person>,
}

/// Dates as the police batch sends them: `yyyyMMddHHmmss`, UTC.
fn compact_time(t_ms: TimeMs) -> String {
    chrono::DateTime::from_timestamp_millis(t_ms)
        .map(|d| d.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_default()
}

/// The 18-column CSV (with a header row) of the given hits; every cell spreadsheet-safe (crime
/// free text and person fields come from outside).
pub fn hits_csv(rows: &[HitRow]) -> Result<String, csv::Error> {
    let mut w = SafeCsvWriter::new();
    w.write_record(HIT_CSV_COLUMNS)?;
    for r in rows {
        let h = r.hit;
        let p = r.person;
        let text = |v: Option<&String>| v.cloned().unwrap_or_default();
        w.write_record([
            h.force.clone(),
            h.batch_id.clone(),
            h.crime_ref.clone(),
            h.crime_type.clone(),
            compact_time(h.crime_from),
            compact_time(h.crime_to),
            format!("{:.6}", h.crime_lat),
            format!("{:.6}", h.crime_lon),
            r.other_info.to_string(),
            r.device_id.to_string(),
            format!("{} (activation {})", r.device_id, h.activation),
            h.person.clone(),
            p.map(|p| p.name.clone()).unwrap_or_default(),
            text(p.and_then(|p| p.nomis_id.as_ref())),
            text(p.and_then(|p| p.pnc_ref.as_ref())),
            text(p.and_then(|p| p.address.as_ref())),
            p.and_then(|p| p.date_of_birth)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            text(p.and_then(|p| p.offender_manager.as_ref())),
        ])?;
    }
    w.finish()
}
