//! Hostile and damaged requests: each refused with the error (and HTTP status) the listener
//! answers with, and nothing decoded from it.

use super::public_vectors::{get, post_json, JSON, JSON_MOTIONCHANGE, JSON_MOVING};
use super::*;
use crate::model::ReadingBody;

const BASE: &str = "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0";

fn get_with(extra: &str) -> Result<OsmandMessage, OsmandError> {
    get(&format!("{BASE}&{extra}"))
}

fn status_of(result: Result<OsmandMessage, OsmandError>) -> u16 {
    result.expect_err("refused").status()
}

#[test]
fn bad_numbers_nan_and_infinity_are_refused() {
    for (param, value) in [
        ("speed", "fast"),
        ("speed", "NaN"),
        ("bearing", "inf"),
        ("accuracy", "-Infinity"),
        ("hdop", "1e999"),
        ("batt", "0x50"),
    ] {
        assert_eq!(
            get_with(&format!("{param}={value}")),
            Err(OsmandError::BadNumber {
                param: param.into(),
                value: value.into()
            })
        );
    }
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&lat=NaN&lon=30"),
        Err(OsmandError::BadNumber { .. })
    ));
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&location=60.0;30.0"),
        Err(OsmandError::BadLocationPair { .. })
    ));
}

#[test]
fn huge_and_impossible_values_are_refused_or_left_out() {
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&lat=90.5&lon=30"),
        Err(OsmandError::OutOfRange { .. })
    ));
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&lat=60&lon=1e300"),
        Err(OsmandError::OutOfRange { .. })
    ));
    assert!(matches!(
        get_with("batt=101"),
        Err(OsmandError::OutOfRange { .. })
    ));
    assert!(matches!(
        get_with("bearing=720"),
        Err(OsmandError::OutOfRange { .. })
    ));
    assert!(matches!(
        get("/?id=1&timestamp=99999999999999999999&lat=60&lon=30"),
        Err(OsmandError::BadTimestamp { .. })
    ));
    assert!(matches!(
        get("/?id=1&timestamp=9999999999999&lat=60&lon=30"),
        Err(OsmandError::TimeOutOfRange { .. })
    ));
    // Possible but not representable: left out, the position kept.
    let message = get_with("speed=1e300&accuracy=1e300").unwrap();
    let ReadingBody::Position(p) = message.readings[0].body else {
        panic!("position")
    };
    assert_eq!(p.speed_ckmh, None);
    assert_eq!(p.precision_cm, 50_000);
}

#[test]
fn the_app_saying_the_fix_is_invalid_leaves_the_position_out() {
    for extra in ["valid=false", "valid=0", "mock=true", "accuracy=-1"] {
        let message = get_with(extra).unwrap();
        assert_eq!(message.readings, vec![], "{extra}");
    }
    assert_eq!(get_with("valid=true").unwrap().readings.len(), 1);
    assert!(matches!(
        get_with("valid=yes"),
        Err(OsmandError::BadBool { .. })
    ));
    assert!(get("/?id=1&timestamp=1377177267&lat=0&lon=0")
        .unwrap()
        .readings
        .is_empty());
}

#[test]
fn duplicates_and_aliases_of_mapped_parameters_are_refused() {
    let dup = |param: &str, alias: &str| {
        Err(OsmandError::DuplicateParameter {
            param: param.into(),
            alias: alias.into(),
        })
    };
    assert_eq!(get_with("lat=61.0"), dup("lat", "lat"));
    assert_eq!(get_with("deviceid=999"), dup("deviceid", "id"));
    assert_eq!(get_with("location=1,2"), dup("lat", "location"));
    assert_eq!(get_with("batt=5&battery=6"), dup("battery", "batt"));
    assert_eq!(get_with("heading=5&bearing=6"), dup("bearing", "heading"));
    // A form body repeating a query parameter is a duplicate too.
    let both = decode_request(
        "POST",
        BASE,
        Some("application/x-www-form-urlencoded"),
        b"timestamp=1377177268",
        &Limits::default(),
        &MappingConfig::default(),
    );
    assert_eq!(both, dup("timestamp", "timestamp"));
    // Unmapped ones may repeat; empty mapped ones count as not sent.
    assert_eq!(get_with("fuel=1&fuel=2").unwrap().unmapped.len(), 2);
    assert_eq!(get_with("speed=&speed=").unwrap().readings.len(), 1);
}

#[test]
fn missing_id_time_and_half_a_location_are_refused() {
    assert_eq!(get("/"), Err(OsmandError::MissingDeviceId));
    assert_eq!(
        get("/?id=&timestamp=1377177267"),
        Err(OsmandError::MissingDeviceId)
    );
    assert_eq!(get("/?id=1"), Err(OsmandError::MissingTime));
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&lat=60"),
        Err(OsmandError::IncompleteLocation { missing: "lon", .. })
    ));
    assert!(matches!(
        get("/?id=1&timestamp=1377177267&lon=60"),
        Err(OsmandError::IncompleteLocation { missing: "lat", .. })
    ));
    assert!(matches!(
        get("/?id=a%20b&timestamp=1377177267"),
        Err(OsmandError::DeviceIdCharacter { ch: ' ', .. })
    ));
    assert!(matches!(
        get(&format!("/?id={}&timestamp=1377177267", "9".repeat(65))),
        Err(OsmandError::DeviceIdTooLong { .. })
    ));
}

#[test]
fn bad_percent_encoding_is_refused() {
    for target in [
        "/?id=1%2&timestamp=1",
        "/?id=1&timestamp=%ZZ",
        "/?i%d=1",
        "/?id=%80",
    ] {
        let error = get(target).unwrap_err();
        assert!(
            matches!(
                error,
                OsmandError::BadPercentEncoding { .. } | OsmandError::NotUtf8 { .. }
            ),
            "{target}: {error}"
        );
        assert_eq!(error.status(), 400);
    }
}

#[test]
fn sizes_counts_methods_and_content_types_get_their_statuses() {
    let limits = Limits::default();
    let mapping = MappingConfig::default();
    let huge_body = vec![b'a'; limits.max_body_bytes + 1];
    let too_large = decode_request("POST", "/", JSON, &huge_body, &limits, &mapping);
    assert_eq!(
        too_large,
        Err(OsmandError::BodyTooLarge {
            len_bytes: limits.max_body_bytes + 1,
            max_bytes: limits.max_body_bytes
        })
    );
    assert_eq!(status_of(too_large), 413);
    let long_query = format!("{BASE}&x={}", "y".repeat(limits.max_query_bytes));
    assert_eq!(status_of(get(&long_query)), 414);
    let many: String = (0..limits.max_params).map(|i| format!("&p{i}=1")).collect();
    assert_eq!(
        get_with(&many),
        Err(OsmandError::TooManyParameters {
            max_params: limits.max_params
        })
    );
    let unknown_type = decode_request("POST", "/", Some("text/xml"), b"<a/>", &limits, &mapping);
    assert_eq!(status_of(unknown_type), 415);
    let no_type = decode_request("POST", "/", None, b"id=1", &limits, &mapping);
    assert_eq!(status_of(no_type), 415);
    let put = decode_request("PUT", BASE, None, b"", &limits, &mapping);
    assert_eq!(status_of(put), 405);
    // An empty body's type does not matter.
    let empty = decode_request("POST", BASE, Some("text/plain"), b"", &limits, &mapping);
    assert_eq!(empty.unwrap().readings.len(), 1);
    // The media type is case-insensitive and its parameters ignored.
    let json = decode_request(
        "POST",
        "/?extra=1",
        Some("Application/JSON; charset=utf-8"),
        JSON_MOTIONCHANGE.as_bytes(),
        &limits,
        &mapping,
    )
    .unwrap();
    assert_eq!(json.unmapped[0], ("?extra".to_string(), "1".to_string()));
}

#[test]
fn broken_and_deep_json_is_refused_with_where() {
    assert!(matches!(
        post_json(r#"{"device_id":"1","location":{"timestamp":"#),
        Err(OsmandError::BadJson { line: 1, .. })
    ));
    assert!(matches!(
        post_json("{\n\"device_id\": 1e999}"),
        Err(OsmandError::BadJson { line: 2, .. })
    ));
    assert!(matches!(
        post_json("\u{feff}{}"),
        Err(OsmandError::BadJson { .. })
    ));
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    assert_eq!(
        post_json(&deep),
        Err(OsmandError::JsonTooDeep {
            max_depth: 16,
            offset: 16
        })
    );
    let deep_extras = JSON_MOVING.replace(
        r#""extras":{}"#,
        &format!(r#""extras":{}1{}"#, "[".repeat(20), "]".repeat(20)),
    );
    assert!(matches!(
        post_json(&deep_extras),
        Err(OsmandError::JsonTooDeep { .. })
    ));
}

#[test]
fn json_of_the_wrong_shape_is_refused_with_its_path() {
    let wrong = |path: &str, expected: &'static str, found: &'static str| {
        Err(OsmandError::WrongJsonType {
            path: path.into(),
            expected,
            found,
        })
    };
    assert_eq!(post_json("[]"), wrong("(root)", "an object", "an array"));
    assert_eq!(
        post_json(r#"{"device_id":42,"location":{}}"#),
        wrong("device_id", "a string", "a number")
    );
    assert_eq!(
        post_json(r#"{"location":{}}"#),
        Err(OsmandError::MissingDeviceId)
    );
    assert_eq!(
        post_json(r#"{"device_id":"1"}"#),
        Err(OsmandError::MissingJsonField {
            path: "location".into()
        })
    );
    assert_eq!(
        post_json(r#"{"device_id":"1","location":{"coords":{}}}"#),
        Err(OsmandError::MissingTime)
    );
    assert_eq!(
        post_json(&JSON_MOVING.replace("\"latitude\":-6.1148096,", "")),
        Err(OsmandError::MissingJsonField {
            path: "location.coords.latitude".into()
        })
    );
    assert_eq!(
        post_json(&JSON_MOVING.replace("\"latitude\":-6.1148096", "\"latitude\":\"-6.11\"")),
        wrong("location.coords.latitude", "a number", "a string")
    );
    assert!(matches!(
        post_json(&JSON_MOVING.replace("\"latitude\":-6.1148096", "\"latitude\":-96.1")),
        Err(OsmandError::OutOfRange { param, .. }) if param == "location.coords.latitude"
    ));
    assert_eq!(
        post_json(&JSON_MOVING.replace("\"level\":0.79", "\"level\":\"high\"")),
        wrong("location.battery.level", "a number", "a string")
    );
    assert!(matches!(
        post_json(&JSON_MOVING.replace("\"level\":0.79", "\"level\":1.5")),
        Err(OsmandError::OutOfRange { .. })
    ));
    assert_eq!(
        post_json(&JSON_MOVING.replace("2021-07-21T08:06:34.444Z", "1999-12-31T23:59:59Z")),
        Err(OsmandError::TimeOutOfRange {
            param: "location.timestamp".into(),
            t_ms: 946_684_799_000,
            min_t_ms: 946_684_800_000,
            max_t_ms: 4_102_444_800_000
        })
    );
    assert_eq!(
        post_json(r#"{"device_id":"1","location":[]}"#),
        Err(OsmandError::LocationCount {
            count: 0,
            max_locations: 100
        })
    );
    // One bad location of an array refuses the whole request.
    let good = r#"{"timestamp":"2024-03-01T10:00:00Z","coords":{"latitude":1,"longitude":2}}"#;
    let body = format!(r#"{{"device_id":"1","location":[{good},{{"timestamp":7}}]}}"#);
    assert_eq!(
        post_json(&body),
        wrong("location[1].timestamp", "a string", "a number")
    );
}
