//! Trail exports: GeoJSON (RFC 7946), GPX 1.1, KML 2.2 and CSV.
//!
//! Every format carries, per position: a sequence number, a sequence label (A1, A2…; a new
//! letter after a gap), event time (RFC 3339 UTC), latitude and longitude (7 decimals),
//! precision in metres, source, speed (km/h), heading (degrees) and whether the gap before it
//! is missing data. GPX and KML carry the fields GPX/KML have no element for as extensions /
//! extended data.
//!
//! The track is split at each gap into segments (a gap is missing data, not a path), and its
//! geometry is valid for any number of positions: none → no geometry (GeoJSON `null`, KML a
//! Placemark without one, GPX a track without segments); one position → a Point; one segment →
//! a LineString; several → a MultiLineString (KML MultiGeometry, GPX one `trkseg` each). A
//! segment of a single fix cannot be a line (RFC 7946 wants two positions or more): it is kept as
//! a point beside the lines (GeoJSON GeometryCollection, KML MultiGeometry).

use super::gaps::{gap_flags, sequence_labels, GapConfig};
use super::{fixes, Fix};
use crate::model::time::format_time;
use crate::model::Reading;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Namespace of the GPX extension elements.
pub const GPX_EXTENSIONS_NS: &str = "urn:tagstream:gpx:1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    GeoJson,
    Gpx,
    Kml,
    Csv,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "geojson" | "json" => Some(Self::GeoJson),
            "gpx" => Some(Self::Gpx),
            "kml" => Some(Self::Kml),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::GeoJson => "application/geo+json",
            Self::Gpx => "application/gpx+xml",
            Self::Kml => "application/vnd.google-earth.kml+xml",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::GeoJson => "geojson",
            Self::Gpx => "gpx",
            Self::Kml => "kml",
            Self::Csv => "csv",
        }
    }

    /// Serialises `readings` (sorted by time) in this format; `name` titles the track.
    pub fn render(self, name: &str, readings: &[Reading], gaps: &GapConfig) -> String {
        match self {
            Self::GeoJson => to_geojson(name, readings, gaps).to_string(),
            Self::Gpx => to_gpx(name, readings, gaps),
            Self::Kml => to_kml(name, readings, gaps),
            Self::Csv => to_csv(readings, gaps),
        }
    }
}

/// One row of any export.
struct Row<'a> {
    seq: usize,
    label: String,
    gap_before: bool,
    fix: Fix<'a>,
}

fn rows<'a>(readings: &'a [Reading], gaps: &GapConfig) -> Vec<Row<'a>> {
    let flags = gap_flags(readings, gaps);
    let labels = sequence_labels(readings, gaps);
    fixes(readings)
        .into_iter()
        .zip(flags)
        .zip(labels)
        .enumerate()
        .map(|(i, ((fix, gap_before), label))| Row {
            seq: i + 1,
            label,
            gap_before,
            fix,
        })
        .collect()
}

/// The rows split at each gap: every segment non-empty, in order.
fn segments<'r, 'a>(rows: &'r [Row<'a>]) -> Vec<&'r [Row<'a>]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..rows.len() {
        if rows[i].gap_before {
            out.push(&rows[start..i]);
            start = i;
        }
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// The track's shape: lines of two positions or more, and the lone fixes between gaps.
struct TrackShape<'r, 'a> {
    lines: Vec<&'r [Row<'a>]>,
    points: Vec<&'r Row<'a>>,
}

fn track_shape<'r, 'a>(rows: &'r [Row<'a>]) -> TrackShape<'r, 'a> {
    let (mut lines, mut points) = (Vec::new(), Vec::new());
    for seg in segments(rows) {
        match seg {
            [one] => points.push(one),
            many => lines.push(many),
        }
    }
    TrackShape { lines, points }
}

fn position(r: &Row<'_>) -> Value {
    json!([round7(r.fix.pos.lon()), round7(r.fix.pos.lat())])
}

/// The RFC 7946 geometry of the track, `Value::Null` when it has no positions.
fn track_geometry(rows: &[Row<'_>]) -> Value {
    let shape = track_shape(rows);
    let line = |seg: &[Row<'_>]| Value::Array(seg.iter().map(position).collect());
    let lines = match shape.lines.as_slice() {
        [] => None,
        [one] => Some(json!({"type": "LineString", "coordinates": line(one)})),
        many => Some(json!({
            "type": "MultiLineString",
            "coordinates": many.iter().map(|s| line(s)).collect::<Vec<_>>(),
        })),
    };
    let points = match shape.points.as_slice() {
        [] => None,
        [one] => Some(json!({"type": "Point", "coordinates": position(one)})),
        many => Some(json!({
            "type": "MultiPoint",
            "coordinates": many.iter().map(|r| position(r)).collect::<Vec<_>>(),
        })),
    };
    match (lines, points) {
        (None, None) => Value::Null,
        (Some(g), None) | (None, Some(g)) => g,
        (Some(l), Some(p)) => json!({"type": "GeometryCollection", "geometries": [l, p]}),
    }
}

fn coord(v: f64) -> String {
    format!("{v:.7}")
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A GeoJSON FeatureCollection: the track feature (geometry by the number of positions and
/// gaps, see the module doc; `null` when there are none), then a Point per position.
pub fn to_geojson(name: &str, readings: &[Reading], gaps: &GapConfig) -> Value {
    let rows = rows(readings, gaps);
    let mut features = vec![json!({
        "type": "Feature",
        "geometry": track_geometry(&rows),
        "properties": {
            "kind": "track",
            "name": name,
            "positions": rows.len(),
            "segments": segments(&rows).len(),
            "from": rows.first().map(|r| format_time(r.fix.t_ms)),
            "to": rows.last().map(|r| format_time(r.fix.t_ms)),
        },
    })];
    for r in &rows {
        let p = r.fix.pos;
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round7(p.lon()), round7(p.lat())]},
            "properties": {
                "kind": "position",
                "seq": r.seq,
                "label": r.label,
                "t": format_time(r.fix.t_ms),
                "precision_m": round2(p.precision_m()),
                "source": p.source.as_str(),
                "speed_kmh": p.speed_kmh().map(round2),
                "heading_deg": p.heading_deg().map(round2),
                "satellites": p.satellites,
                "battery_pct": r.fix.battery_pct,
                "gap_before": r.gap_before,
            },
        }));
    }
    json!({"type": "FeatureCollection", "name": name, "features": features})
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// Escapes text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// GPX 1.1: one track, one `trkseg` per segment (a new one after each gap; none when there are
/// no positions); precision, source, speed, heading, label and gap flag as extensions.
pub fn to_gpx(name: &str, readings: &[Reading], gaps: &GapConfig) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<gpx version=\"1.1\" creator=\"tagstream\" xmlns=\"http://www.topografix.com/GPX/1/1\" xmlns:ts=\"{GPX_EXTENSIONS_NS}\">"
    );
    let _ = writeln!(s, "  <trk>\n    <name>{}</name>", xml_escape(name));
    let rows = rows(readings, gaps);
    for seg in segments(&rows) {
        s.push_str("    <trkseg>\n");
        for r in seg {
            gpx_point(&mut s, r);
        }
        s.push_str("    </trkseg>\n");
    }
    s.push_str("  </trk>\n</gpx>\n");
    s
}

/// One `trkpt`, fields GPX has no element for as `ts:` extensions.
fn gpx_point(s: &mut String, r: &Row<'_>) {
    use std::fmt::Write;
    let p = r.fix.pos;
    let _ = write!(
        s,
        "      <trkpt lat=\"{}\" lon=\"{}\"><time>{}</time>",
        coord(p.lat()),
        coord(p.lon()),
        format_time(r.fix.t_ms)
    );
    if let Some(sat) = p.satellites {
        let _ = write!(s, "<sat>{sat}</sat>");
    }
    let _ = write!(
        s,
        "<extensions><ts:seq>{}</ts:seq><ts:label>{}</ts:label><ts:precision_m>{:.2}</ts:precision_m><ts:source>{}</ts:source>",
        r.seq,
        r.label,
        p.precision_m(),
        p.source.as_str()
    );
    if let Some(v) = p.speed_kmh() {
        let _ = write!(s, "<ts:speed_kmh>{v:.2}</ts:speed_kmh>");
    }
    if let Some(v) = p.heading_deg() {
        let _ = write!(s, "<ts:heading_deg>{v:.2}</ts:heading_deg>");
    }
    if let Some(v) = r.fix.battery_pct {
        let _ = write!(s, "<ts:battery_pct>{v}</ts:battery_pct>");
    }
    let _ = writeln!(
        s,
        "<ts:gap_before>{}</ts:gap_before></extensions></trkpt>",
        r.gap_before
    );
}

/// KML 2.2: a Placemark for the track (geometry by the number of positions and gaps, see the
/// module doc; none when there are no positions), then a Placemark per position with its time
/// stamp and the fields as ExtendedData.
pub fn to_kml(name: &str, readings: &[Reading], gaps: &GapConfig) -> String {
    use std::fmt::Write;
    let rows = rows(readings, gaps);
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<kml xmlns=\"http://www.opengis.net/kml/2.2\">\n<Document>\n");
    let _ = writeln!(s, "<name>{}</name>", xml_escape(name));
    s.push_str("<Placemark><name>track</name>");
    let shape = track_shape(&rows);
    let parts = shape.lines.len() + shape.points.len();
    if parts > 1 {
        s.push_str("<MultiGeometry>");
    }
    for seg in &shape.lines {
        s.push_str("<LineString><tessellate>1</tessellate><coordinates>");
        for (i, r) in seg.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{},{},0", coord(r.fix.pos.lon()), coord(r.fix.pos.lat()));
        }
        s.push_str("</coordinates></LineString>");
    }
    for r in &shape.points {
        let _ = write!(
            s,
            "<Point><coordinates>{},{},0</coordinates></Point>",
            coord(r.fix.pos.lon()),
            coord(r.fix.pos.lat())
        );
    }
    if parts > 1 {
        s.push_str("</MultiGeometry>");
    }
    s.push_str("</Placemark>\n");
    for r in &rows {
        let p = r.fix.pos;
        let _ = write!(
            s,
            "<Placemark><name>{}</name><TimeStamp><when>{}</when></TimeStamp><ExtendedData>",
            r.label,
            format_time(r.fix.t_ms)
        );
        let mut data = |k: &str, v: String| {
            let _ = write!(
                s,
                "<Data name=\"{k}\"><value>{}</value></Data>",
                xml_escape(&v)
            );
        };
        data("seq", r.seq.to_string());
        data("precision_m", format!("{:.2}", p.precision_m()));
        data("source", p.source.as_str().to_string());
        data(
            "speed_kmh",
            p.speed_kmh().map(|v| format!("{v:.2}")).unwrap_or_default(),
        );
        data(
            "heading_deg",
            p.heading_deg()
                .map(|v| format!("{v:.2}"))
                .unwrap_or_default(),
        );
        data("gap_before", r.gap_before.to_string());
        let _ = writeln!(
            s,
            "</ExtendedData><Point><coordinates>{},{},0</coordinates></Point></Placemark>",
            coord(p.lon()),
            coord(p.lat())
        );
    }
    s.push_str("</Document>\n</kml>\n");
    s
}

/// The CSV header.
pub const CSV_HEADER: [&str; 12] = [
    "seq",
    "label",
    "time",
    "lat",
    "lon",
    "precision_m",
    "source",
    "speed_kmh",
    "heading_deg",
    "satellites",
    "battery_pct",
    "gap_before",
];

/// CSV with a header row; absent values are empty fields; cells spreadsheet-safe.
pub fn to_csv(readings: &[Reading], gaps: &GapConfig) -> String {
    let mut w = crate::formats::csv_safe::SafeCsvWriter::new();
    let opt = |v: Option<String>| v.unwrap_or_default();
    // Writing to a Vec cannot fail; a failure would only drop rows, never panic.
    let _ = w.write_record(CSV_HEADER);
    for r in rows(readings, gaps) {
        let p = r.fix.pos;
        let _ = w.write_record([
            r.seq.to_string(),
            r.label,
            format_time(r.fix.t_ms),
            coord(p.lat()),
            coord(p.lon()),
            format!("{:.2}", p.precision_m()),
            p.source.as_str().to_string(),
            opt(p.speed_kmh().map(|v| format!("{v:.2}"))),
            opt(p.heading_deg().map(|v| format!("{v:.2}"))),
            opt(p.satellites.map(|v| v.to_string())),
            opt(r.fix.battery_pct.map(|v| v.to_string())),
            r.gap_before.to_string(),
        ]);
    }
    w.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource, ReadingBody};

    fn trail() -> Vec<Reading> {
        [
            (0, 515_000_000, None),
            (60_000, 515_001_000, Some(350)),
            (700_000, 515_002_000, Some(0)),
        ]
        .into_iter()
        .map(|(t_ms, lat_e7, speed)| Reading {
            t_ms,
            battery_pct: Some(77),
            body: ReadingBody::Position(Position {
                lat_e7,
                lon_e7: -1_234_567,
                precision_cm: 750,
                source: if t_ms == 0 {
                    PositionSource::Lbs
                } else {
                    PositionSource::Gps
                },
                speed_ckmh: speed,
                heading_cdeg: Some(18_050),
                satellites: Some(7),
            }),
        })
        .collect()
    }

    #[test]
    fn geojson_parses_with_a_geojson_parser() {
        let text = to_geojson("A & B", &trail(), &GapConfig::default()).to_string();
        let gj: geojson::GeoJson = text.parse().unwrap();
        let geojson::GeoJson::FeatureCollection(fc) = gj else {
            panic!("not a feature collection")
        };
        assert_eq!(fc.features.len(), 4);
        let last = &fc.features[3];
        assert_eq!(last.property("gap_before"), Some(&json!(true)));
        assert_eq!(last.property("label"), Some(&json!("B1")));
        assert_eq!(fc.features[1].property("source"), Some(&json!("lbs")));
        assert_eq!(fc.features[2].property("speed_kmh"), Some(&json!(3.5)));
    }

    #[test]
    fn gpx_and_kml_are_well_formed_xml() {
        let gpx = to_gpx("A & <B>", &trail(), &GapConfig::default());
        let doc = roxmltree::Document::parse(&gpx).unwrap();
        let segs = doc
            .descendants()
            .filter(|n| n.has_tag_name("trkseg"))
            .count();
        assert_eq!(segs, 2);
        let pts: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("trkpt"))
            .collect();
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[0].attribute("lat"), Some("51.5000000"));
        let kml = to_kml("A & <B>", &trail(), &GapConfig::default());
        let doc = roxmltree::Document::parse(&kml).unwrap();
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("Placemark"))
                .count(),
            4
        );
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_position() {
        let text = to_csv(&trail(), &GapConfig::default());
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_HEADER);
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][7], "");
        assert_eq!(&rows[2][11], "true");
    }
}
