//! The JSON form (`application/json`, the Traccar Client since version 9, which sends what the
//! Transistorsoft background-geolocation library records) → the device id, its reports, and
//! the values kept but not mapped.
//!
//! ```json
//! {"device_id": "48241179",
//!  "location": {"timestamp": "2025-06-15T13:45:12.862Z",
//!               "coords": {"latitude": 37.42, "longitude": -122.08, "accuracy": 5,
//!                          "speed": 0, "heading": -1, "altitude": 5},
//!               "is_moving": false, "odometer": 0, "event": "motionchange",
//!               "battery": {"level": 1, "is_charging": false},
//!               "activity": {"type": "still"}, "extras": {}}}
//! ```
//!
//! Mapped: `device_id`; for each location `timestamp` (as the query form's), `coords.latitude`
//! and `coords.longitude` (degrees; both required when `coords` is sent), `coords.accuracy`
//! (metres, 68%), `coords.speed` (m/s; negative: not known), `coords.heading` (degrees; negative:
//! not known), `battery.level` (0–1; negative: not known), `battery.is_charging`, `mock`.
//! `location` may also be an array of such objects (the library's batch upload), 1 to
//! `max_locations` of them. Every other value is kept in the unmapped list under its JSON path
//! (`location.activity.type`, `location[1].extras.trip`), arrays as compact JSON text. A
//! mapped value of the wrong type is refused; `null` counts as not sent. `mock` is also kept
//! in the unmapped list, as it can make the position be left out. Keys come in key order.
//!
//! Nesting is checked before parsing (`max_json_depth`), so a hostile body is refused by a
//! byte scan before any value is built. A key repeated within one object keeps its last value
//! (serde_json's behaviour); the query form, whose duplicates are common, refuses them instead.

use super::device_id::check_device_id;
use super::error::OsmandError;
use super::fields::{self, CKMH_PER_MPS};
use super::limits::Limits;
use super::report::Report;
use super::time::parse_timestamp;
use serde_json::{Map, Value};

/// What a JSON-form request decodes to.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonReports {
    pub device_id: String,
    pub reports: Vec<Report>,
    pub unmapped: Vec<(String, String)>,
}

/// Decodes a JSON body.
pub fn decode_json(body: &[u8], limits: &Limits) -> Result<JsonReports, OsmandError> {
    check_depth(body, limits.max_json_depth)?;
    let root: Value = serde_json::from_slice(body).map_err(|e| OsmandError::BadJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let root = as_object(&root, "(root)")?;
    let mut unmapped = Vec::new();
    let device_id = match root.get("device_id") {
        None | Some(Value::Null) => return Err(OsmandError::MissingDeviceId),
        Some(Value::String(id)) => id.as_str(),
        Some(other) => return Err(wrong_type("device_id", "a string", other)),
    };
    check_device_id(device_id, limits.max_device_id_chars)?;
    let locations: Vec<(String, &Value)> = match root.get("location") {
        None | Some(Value::Null) => {
            return Err(OsmandError::MissingJsonField {
                path: "location".into(),
            })
        }
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > limits.max_locations {
                return Err(OsmandError::LocationCount {
                    count: items.len(),
                    max_locations: limits.max_locations,
                });
            }
            let paths = (0..items.len()).map(|i| format!("location[{i}]"));
            paths.zip(items).collect()
        }
        Some(one) => vec![("location".to_string(), one)],
    };
    for (key, value) in root {
        if key != "device_id" && key != "location" {
            flatten(key.clone(), value, &mut unmapped);
        }
    }
    let reports = locations
        .into_iter()
        .map(|(path, location)| report_of(&path, location, limits, &mut unmapped))
        .collect::<Result<_, _>>()?;
    Ok(JsonReports {
        device_id: device_id.to_string(),
        reports,
        unmapped,
    })
}

/// One location object at `path` → a report; what it does not map goes to `unmapped`.
fn report_of(
    path: &str,
    location: &Value,
    limits: &Limits,
    unmapped: &mut Vec<(String, String)>,
) -> Result<Report, OsmandError> {
    let location = as_object(location, path)?;
    let time_path = format!("{path}.timestamp");
    let t_ms = match location.get("timestamp") {
        None | Some(Value::Null) => return Err(OsmandError::MissingTime),
        Some(Value::String(text)) => parse_timestamp(&time_path, text, limits)?,
        Some(other) => return Err(wrong_type(&time_path, "a string", other)),
    };
    let mut report = Report::at(t_ms);
    for (key, value) in location {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "timestamp" => {}
            "coords" if !value.is_null() => {
                decode_coords(&at, as_object(value, &at)?, &mut report, unmapped)?
            }
            "battery" if !value.is_null() => {
                decode_battery(&at, as_object(value, &at)?, &mut report, unmapped)?
            }
            "mock" => {
                report.mock = boolean(value, &at)?.unwrap_or(false);
                // It can make the position be left out: it stays visible.
                flatten(at, value, unmapped);
            }
            _ => flatten(at, value, unmapped),
        }
    }
    Ok(report)
}

fn decode_coords(
    path: &str,
    coords: &Map<String, Value>,
    report: &mut Report,
    unmapped: &mut Vec<(String, String)>,
) -> Result<(), OsmandError> {
    let required = |key: &str| {
        let at = format!("{path}.{key}");
        number(coords.get(key), &at)?
            .map(|deg| (at.clone(), deg))
            .ok_or(OsmandError::MissingJsonField { path: at })
    };
    let (lat_path, lat) = required("latitude")?;
    let (lon_path, lon) = required("longitude")?;
    report.lat_lon_e7 = Some((
        fields::latitude_e7(&lat_path, lat)?,
        fields::longitude_e7(&lon_path, lon)?,
    ));
    for (key, value) in coords {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "latitude" | "longitude" => {}
            "accuracy" => report.accuracy_m = number(Some(value), &at)?,
            "speed" => {
                report.speed_ckmh =
                    number(Some(value), &at)?.and_then(|mps| fields::speed_ckmh(mps, CKMH_PER_MPS))
            }
            "heading" => {
                report.heading_cdeg = match number(Some(value), &at)? {
                    Some(deg) => fields::heading_cdeg(&at, deg)?,
                    None => None,
                }
            }
            _ => flatten(at, value, unmapped),
        }
    }
    Ok(())
}

fn decode_battery(
    path: &str,
    battery: &Map<String, Value>,
    report: &mut Report,
    unmapped: &mut Vec<(String, String)>,
) -> Result<(), OsmandError> {
    for (key, value) in battery {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "level" => {
                report.battery_pct = match number(Some(value), &at)? {
                    Some(level) => fields::battery_pct(&at, level * 100.0)?,
                    None => None,
                }
            }
            "is_charging" => report.charging = boolean(value, &at)?.unwrap_or(false),
            _ => flatten(at, value, unmapped),
        }
    }
    Ok(())
}

/// A number, or `None` for absent or `null`.
fn number(value: Option<&Value>, path: &str) -> Result<Option<f64>, OsmandError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        // serde_json refuses numbers that overflow f64, so this is finite.
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(wrong_type(path, "a number", other)),
    }
}

fn boolean(value: &Value, path: &str) -> Result<Option<bool>, OsmandError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(wrong_type(path, "true or false", other)),
    }
}

fn as_object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, OsmandError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "an object", value))
}

fn wrong_type(path: &str, expected: &'static str, found: &Value) -> OsmandError {
    OsmandError::WrongJsonType {
        path: path.to_string(),
        expected,
        found: match found {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        },
    }
}

/// Keeps a value not mapped: objects key by key under their path, scalars as text (strings
/// unquoted), arrays as compact JSON text.
fn flatten(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(format!("{path}.{key}"), inner, out);
            }
        }
        Value::String(text) => out.push((path, text.clone())),
        other => out.push((path, other.to_string())),
    }
}

/// Refuses nesting deeper than `max_depth` by a scan of the bytes (strings and their escapes
/// skipped), before serde_json builds anything.
fn check_depth(body: &[u8], max_depth: usize) -> Result<(), OsmandError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &byte) in body.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(OsmandError::JsonTooDeep { max_depth, offset });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_counted_outside_strings() {
        assert_eq!(check_depth(br#"{"a":[{"b":"[[[[[["}]}"#, 3), Ok(()));
        assert_eq!(
            check_depth(br#"{"a":[{"b":[1]}]}"#, 3),
            Err(OsmandError::JsonTooDeep {
                max_depth: 3,
                offset: 11
            })
        );
        assert_eq!(check_depth(br#"{"a":"\"{{{{"}"#, 1), Ok(()));
    }

    #[test]
    fn unmapped_values_are_flattened_under_their_paths() {
        let mut out = Vec::new();
        let value: Value =
            serde_json::from_str(r#"{"a":{"b":1,"c":"x","d":[1,2],"e":null,"f":true}}"#).unwrap();
        flatten("location.extras".into(), &value, &mut out);
        let pairs: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("location.extras.a.b", "1"),
                ("location.extras.a.c", "x"),
                ("location.extras.a.d", "[1,2]"),
                ("location.extras.a.e", "null"),
                ("location.extras.a.f", "true"),
            ]
        );
    }
}
