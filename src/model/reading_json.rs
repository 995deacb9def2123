//! The JSON form of a reading (section 8 of the domain page): one object per reading, used by the
//! readings JSON Lines file and by the evidence attached to alerts.

use super::time::{format_time, parse_time};
use super::TimeMs;
use super::{
    to_fixed, DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample, TagId,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;

/// A reading with the tag it came from, serialised as one contract JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedReading {
    pub tag: TagId,
    pub reading: Reading,
}

/// Serialises a reading's fields after an optional tag, in a fixed order.
fn write_fields<M: SerializeMap>(
    map: &mut M,
    tag: Option<&str>,
    r: &Reading,
) -> Result<(), M::Error> {
    map.serialize_entry("kind", r.kind().as_str())?;
    if let Some(tag) = tag {
        map.serialize_entry("tag", tag)?;
    }
    if super::time::RFC3339_WRITABLE_MS.contains(&r.t_ms) {
        map.serialize_entry("t", &format_time(r.t_ms))?;
    } else {
        // A time RFC 3339 cannot write (a tag's wild clock): kept as sent, never invalid text.
        map.serialize_entry("t", &())?;
        map.serialize_entry("t_ms", &r.t_ms)?;
    }
    match &r.body {
        ReadingBody::Position(p) => {
            map.serialize_entry("lat", &p.lat())?;
            map.serialize_entry("lon", &p.lon())?;
            map.serialize_entry("precision_m", &p.precision_m())?;
            map.serialize_entry("source", p.source.as_str())?;
            if let Some(v) = p.speed_kmh() {
                map.serialize_entry("speed_kmh", &v)?;
            }
            if let Some(v) = p.heading_deg() {
                map.serialize_entry("heading_deg", &v)?;
            }
            if let Some(v) = p.satellites {
                map.serialize_entry("satellites", &v)?;
            }
        }
        ReadingBody::Tac(s) => {
            map.serialize_entry("tac_gdl", &s.tac_gdl())?;
            map.serialize_entry("ir_v", &s.ir_v())?;
            map.serialize_entry("temp_c", &s.temp_c())?;
        }
        ReadingBody::Rf { in_range } => map.serialize_entry("in_range", in_range)?,
        ReadingBody::Event(e) => map.serialize_entry("event", e.as_str())?,
    }
    if let Some(b) = r.battery_pct {
        map.serialize_entry("battery_pct", &b)?;
    }
    Ok(())
}

impl Serialize for TaggedReading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        write_fields(&mut map, Some(&self.tag), &self.reading)?;
        map.end()
    }
}

impl Serialize for Reading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        write_fields(&mut map, None, self)?;
        map.end()
    }
}

/// Every field any reading kind may carry; which are required depends on `kind`.
#[derive(Deserialize)]
struct RawReading {
    kind: String,
    tag: Option<String>,
    t: Option<String>,
    /// Only with `"t": null`: a time RFC 3339 cannot write, as the tag sent it.
    t_ms: Option<TimeMs>,
    lat: Option<f64>,
    lon: Option<f64>,
    precision_m: Option<f64>,
    source: Option<String>,
    speed_kmh: Option<f64>,
    heading_deg: Option<f64>,
    satellites: Option<u8>,
    battery_pct: Option<u8>,
    tac_gdl: Option<f64>,
    ir_v: Option<f64>,
    temp_c: Option<f64>,
    in_range: Option<bool>,
    event: Option<String>,
}

fn need<T>(value: Option<T>, field: &str, kind: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a '{kind}' reading needs field '{field}'"))
}

fn fixed_i32(value: f64, scale: f64, min: f64, max: f64, field: &str) -> Result<i32, String> {
    to_fixed(value, scale, min, max)
        .map(|v| v as i32)
        .ok_or_else(|| format!("'{field}' {value} is out of range {min}..{max}"))
}

fn optional_u16(
    value: Option<f64>,
    scale: f64,
    max: f64,
    field: &str,
) -> Result<Option<u16>, String> {
    value
        .map(|v| {
            to_fixed(v, scale, 0.0, max)
                .map(|x| x as u16)
                .ok_or_else(|| format!("'{field}' {v} is out of range 0..{max}"))
        })
        .transpose()
}

/// Parses one contract JSON line into a tagged reading, or says what is wrong with it.
pub fn parse_reading_line(line: &str) -> Result<TaggedReading, String> {
    let raw: RawReading = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let kind = raw.kind.as_str();
    let tag = need(raw.tag, "tag", kind)?;
    if tag.is_empty() || tag.len() > 64 {
        return Err("'tag' must be 1 to 64 bytes".into());
    }
    let t_ms = match (raw.t, raw.t_ms) {
        (Some(t), _) => parse_time(&t)?,
        (None, Some(t_ms)) if !super::time::RFC3339_WRITABLE_MS.contains(&t_ms) => t_ms,
        (None, Some(_)) => {
            return Err("'t_ms' is only for times RFC 3339 cannot write; use 't'".into())
        }
        (None, None) => need(None, "t", kind)?,
    };
    if let Some(b) = raw.battery_pct {
        if b > 100 {
            return Err(format!("'battery_pct' {b} is out of range 0..100"));
        }
    }
    let body = match kind {
        "gps" => {
            let source = match raw.source.as_deref().unwrap_or("gps") {
                "gps" => PositionSource::Gps,
                "lbs" => PositionSource::Lbs,
                "wifi" => PositionSource::Wifi,
                other => return Err(format!("'source' must be gps, lbs or wifi, not '{other}'")),
            };
            let precision = need(raw.precision_m, "precision_m", kind)?;
            ReadingBody::Position(Position {
                lat_e7: fixed_i32(need(raw.lat, "lat", kind)?, 1e7, -90.0, 90.0, "lat")?,
                lon_e7: fixed_i32(need(raw.lon, "lon", kind)?, 1e7, -180.0, 180.0, "lon")?,
                precision_cm: to_fixed(precision, 100.0, 0.0, 40_000_000.0)
                    .map(|v| v as u32)
                    .ok_or_else(|| {
                        format!("'precision_m' {precision} is out of range 0..400000")
                    })?,
                source,
                speed_ckmh: optional_u16(raw.speed_kmh, 100.0, 655.34, "speed_kmh")?,
                heading_cdeg: optional_u16(raw.heading_deg, 100.0, 359.99, "heading_deg")?,
                satellites: raw.satellites.filter(|s| *s != u8::MAX),
            })
        }
        "tac" => ReadingBody::Tac(TacSample {
            tac_ugdl: fixed_i32(
                need(raw.tac_gdl, "tac_gdl", kind)?,
                1e6,
                -2.0,
                2.0,
                "tac_gdl",
            )?,
            ir_uv: fixed_i32(need(raw.ir_v, "ir_v", kind)?, 1e6, -100.0, 100.0, "ir_v")?,
            temp_mc: fixed_i32(
                need(raw.temp_c, "temp_c", kind)?,
                1e3,
                -100.0,
                100.0,
                "temp_c",
            )?,
        }),
        "rf" => ReadingBody::Rf {
            in_range: need(raw.in_range, "in_range", kind)?,
        },
        "event" => {
            let name = need(raw.event, "event", kind)?;
            let event = DeviceEvent::ALL
                .into_iter()
                .find(|e| e.as_str() == name)
                .ok_or_else(|| format!("unknown event '{name}'"))?;
            ReadingBody::Event(event)
        }
        other => {
            return Err(format!(
                "unknown kind '{other}' (expected gps, tac, rf or event)"
            ))
        }
    };
    Ok(TaggedReading {
        tag,
        reading: Reading {
            t_ms,
            battery_pct: raw.battery_pct,
            body,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_at(t_ms: TimeMs) -> TaggedReading {
        TaggedReading {
            tag: "T1".into(),
            reading: Reading {
                t_ms,
                battery_pct: Some(50),
                body: ReadingBody::Event(DeviceEvent::BatteryLow),
            },
        }
    }

    #[test]
    fn a_time_rfc_3339_cannot_write_is_null_with_the_value_as_sent_and_reads_back() {
        for t_ms in [TimeMs::MAX, TimeMs::MIN, 253_402_300_800_000] {
            let line = serde_json::to_string(&event_at(t_ms)).expect("json");
            assert!(!line.contains("invalid"), "{line}");
            assert!(line.contains("\"t\":null"), "{line}");
            assert_eq!(parse_reading_line(&line), Ok(event_at(t_ms)), "{line}");
        }
        let ordinary = serde_json::to_string(&event_at(1_774_692_000_000)).expect("json");
        assert!(
            ordinary.contains("\"t\":\"2026-03-28T10:00:00Z\""),
            "{ordinary}"
        );
        assert!(!ordinary.contains("t_ms"), "{ordinary}");
        assert!(parse_reading_line(
            r#"{"kind":"event","tag":"T1","t":null,"t_ms":0,"event":"charging"}"#
        )
        .is_err());
    }
}
