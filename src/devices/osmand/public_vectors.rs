//! The public test vectors of Traccar's `OsmAndProtocolDecoderTest` (query and JSON forms),
//! decoded as the listener would, every field checked against the request's text (the values
//! were worked out from the parameters, not read from this decoder's output).
//!
//! Where tagstream decides differently from Traccar, the test says so: requests without a time
//! are refused (Traccar stamps them with the arrival time), and a mocked location gives no
//! position (Traccar stores it, marked).

use super::*;
use crate::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};

pub(super) const JSON: Option<&str> = Some("application/json");

pub(super) const JSON_MOTIONCHANGE: &str = r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}"#;

const JSON_EXTRAS: &str = r#"{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,"device_double_test":1.345,"device_very_long_double_test":1763636.3442},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}"#;

const JSON_IOS_MOCK: &str = r#"{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},"device_id":"658765"}"#;

pub(super) const JSON_MOVING: &str = r#"{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"8737767034"}"#;

pub(super) fn get(target: &str) -> Result<OsmandMessage, OsmandError> {
    decode_request(
        "GET",
        target,
        None,
        b"",
        &Limits::default(),
        &MappingConfig::default(),
    )
}

pub(super) fn post_json(body: &str) -> Result<OsmandMessage, OsmandError> {
    decode_request(
        "POST",
        "/",
        JSON,
        body.as_bytes(),
        &Limits::default(),
        &MappingConfig::default(),
    )
}

fn gps(lat_e7: i32, lon_e7: i32, precision_cm: u32) -> Position {
    Position {
        lat_e7,
        lon_e7,
        precision_cm,
        source: PositionSource::Gps,
        speed_ckmh: None,
        heading_cdeg: None,
        satellites: None,
    }
}

fn position_reading(t_ms: i64, battery_pct: Option<u8>, position: Position) -> Reading {
    Reading {
        t_ms,
        battery_pct,
        body: ReadingBody::Position(position),
    }
}

/// Decodes `target` and checks it gives exactly one reading: the position `expected`.
fn one_position(
    target: &str,
    t_ms: i64,
    battery_pct: Option<u8>,
    expected: Position,
) -> OsmandMessage {
    let message = get(target).unwrap();
    assert_eq!(
        message.readings,
        [position_reading(t_ms, battery_pct, expected)],
        "{target}"
    );
    message
}

pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn cells_and_wifi_without_a_location_give_no_reading_and_stay_visible() {
    let message = get("/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70").unwrap();
    assert_eq!(message.device_id, "123456");
    assert_eq!(message.readings, vec![]);
    assert_eq!(
        message.unmapped,
        pairs(&[
            ("cell", "257,02,16,2224"),
            ("cell", "257,02,16,2223,-90"),
            ("wifi", "00-14-22-01-23-45,-80"),
            ("wifi", "00-1C-B3-09-85-15,-70"),
        ])
    );
}

#[test]
fn no_device_id_is_refused() {
    let error = get("/?timestamp=1377177267&lat=60.0&lon=30.0").unwrap_err();
    assert_eq!(error, OsmandError::MissingDeviceId);
    assert_eq!(error.status(), 400);
}

#[test]
fn iso_time_and_hdop() {
    let expected = Position {
        speed_ckmh: Some(0),
        ..gps(420_628_800, -882_341_200, 3_000) // HDOP 6 × 5 m
    };
    let message = one_position("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0", 1_453_920_947_000, None, expected);
    assert_eq!(message.device_id, "902064");
    assert_eq!(message.unmapped, pairs(&[("altitude", "224.0")]));
}

#[test]
fn milliseconds_time() {
    let message = get("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0").unwrap();
    assert_eq!(message.readings.len(), 1);
    assert_eq!(message.readings[0].t_ms, 1_442_068_686_579);
}

#[test]
fn space_separated_time_without_offset_is_utc_and_no_accuracy_gives_the_default() {
    let expected = Position {
        speed_ckmh: Some(0),
        ..gps(496_068_800, 61_578_800, 10_000)
    };
    let message = one_position("/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681", 1_401_873_011_000, None, expected);
    assert_eq!(message.device_id, "353861053849681");
    assert_eq!(message.unmapped, pairs(&[("altitude", "384.7")]));
}

#[test]
fn zero_bearing_is_north_and_zero_hdop_is_unknown() {
    let expected = Position {
        speed_ckmh: Some(0),
        heading_cdeg: Some(0),
        ..gps(600_000_000, 300_000_000, 10_000)
    };
    one_position("/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0", 1_377_177_267_000, None, expected);
}

#[test]
fn the_least_a_position_needs() {
    let expected = gps(600_000_000, 300_000_000, 10_000);
    let message = one_position(
        "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0",
        1_377_177_267_000,
        None,
        expected,
    );
    assert_eq!(message.unmapped, vec![]);
}

#[test]
fn requests_without_a_time_are_refused_where_traccar_uses_the_arrival_time() {
    for target in [
        "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456",
        "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87",
    ] {
        assert_eq!(get(target), Err(OsmandError::MissingTime), "{target}");
    }
    // With a time added, they decode (deviceid is id's alias; batt goes on the reading).
    let message = get("/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456&timestamp=1377177267").unwrap();
    assert_eq!(message.device_id, "123456");
    assert_eq!(
        message.unmapped,
        pairs(&[("vacc", "0"), ("hacc", "0"), ("altitude", "0")])
    );
    let expected = Position {
        speed_ckmh: Some(0),
        ..gps(416_666_670, -8_833_330, 10_000)
    };
    one_position("/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87&timestamp=1377177267", 1_377_177_267_000, Some(87), expected);
}

#[test]
fn location_pair() {
    let expected = gps(600_000_000, 300_000_000, 10_000);
    one_position(
        "/?id=123456&timestamp=1377177267&location=60.0,30.0",
        1_377_177_267_000,
        None,
        expected,
    );
}

#[test]
fn speed_in_knots_bearing_and_vehicle_parameters() {
    let expected = Position {
        speed_ckmh: Some(7_408), // 40 kn = 74.08 km/h
        heading_cdeg: Some(720), // 7.1989° rounded to hundredths
        ..gps(407_232_949, -740_061_409, 10_000)
    };
    let message = one_position("/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24", 1_504_763_810_000, None, expected);
    assert_eq!(
        message.unmapped,
        pairs(&[("ignition", "true"), ("rpm", "933"), ("fuel", "24")])
    );
}

/// What the Android Traccar Client's JSON motionchange (first two vectors) maps to.
fn android_motionchange_reading() -> Reading {
    let position = Position {
        speed_ckmh: Some(0),
        heading_cdeg: None,                      // -1: not known
        ..gps(374_219_983, -1_220_840_000, 811)  // accuracy 5 m × 1.621
    };
    position_reading(1_749_995_112_862, Some(100), position)
}

const MOTIONCHANGE_UNMAPPED: [(&str, &str); 6] = [
    (
        "location._",
        "&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&",
    ),
    ("location.activity.type", "still"),
    ("location.coords.altitude", "5"),
    ("location.event", "motionchange"),
    ("location.is_moving", "false"),
    ("location.odometer", "0"),
];

#[test]
fn json_motionchange_every_field() {
    let message = post_json(JSON_MOTIONCHANGE).unwrap();
    assert_eq!(message.device_id, "48241179");
    assert_eq!(message.readings, [android_motionchange_reading()]);
    assert_eq!(message.unmapped, pairs(&MOTIONCHANGE_UNMAPPED));
}

#[test]
fn json_extras_are_kept_by_path() {
    let message = post_json(JSON_EXTRAS).unwrap();
    assert_eq!(message.readings, [android_motionchange_reading()]);
    let mut expected = pairs(&MOTIONCHANGE_UNMAPPED);
    expected.extend(pairs(&[
        ("location.extras.device_bool_false_test", "false"),
        ("location.extras.device_bool_test", "true"),
        ("location.extras.device_double_test", "1.345"),
        ("location.extras.device_integer_test", "1"),
        ("location.extras.device_string_test", "long_device_id"),
        (
            "location.extras.device_very_long_double_test",
            "1763636.3442",
        ),
    ]));
    expected.sort();
    let mut unmapped = message.unmapped;
    unmapped.sort();
    assert_eq!(unmapped, expected);
}

#[test]
fn json_mocked_ios_location_gives_no_position_but_stays_visible() {
    let message = post_json(JSON_IOS_MOCK).unwrap();
    assert_eq!(message.device_id, "658765");
    assert_eq!(
        message.readings,
        vec![],
        "mocked: not evidence of where the phone is"
    );
    let unmapped: Vec<(&str, &str)> = message
        .unmapped
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(unmapped.contains(&("location.mock", "true")));
    assert!(unmapped.contains(&("location.coords.floor", "null")));
    assert!(unmapped.contains(&("location.uuid", "2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8")));
    assert!(unmapped.contains(&("location.activity.confidence", "100")));
    // Without the mock flag, the same location is a position: battery -1 is "not known".
    let unmocked = post_json(&JSON_IOS_MOCK.replace(r#""mock":true"#, r#""mock":false"#)).unwrap();
    let expected = gps(377_858_340, -1_224_064_170, 811);
    assert_eq!(
        unmocked.readings,
        [position_reading(1_746_763_890_579, None, expected)]
    );
}

#[test]
fn json_moving_every_field() {
    let message = post_json(JSON_MOVING).unwrap();
    assert_eq!(message.device_id, "8737767034");
    let expected = Position {
        speed_ckmh: Some(6_721),                // 18.67 m/s = 67.21 km/h
        heading_cdeg: Some(6_300),              // 63°
        ..gps(-61_148_096, 1_066_837_015, 616)  // 3.8 m × 1.621
    };
    assert_eq!(
        message.readings,
        [position_reading(1_626_854_794_444, Some(79), expected)]
    );
}

#[test]
fn json_charging_is_an_event_after_the_position() {
    let body = JSON_MOVING.replace(r#""is_charging":false"#, r#""is_charging":true"#);
    let message = post_json(&body).unwrap();
    assert_eq!(message.readings.len(), 2);
    assert_eq!(
        message.readings[1].body,
        ReadingBody::Event(DeviceEvent::Charging)
    );
    assert_eq!(message.readings[1].battery_pct, Some(79));
}

#[test]
fn json_location_array_gives_a_reading_each() {
    let location = |t: &str, lat: f64| {
        format!(
            r#"{{"timestamp":"{t}","coords":{{"latitude":{lat},"longitude":10.0,"accuracy":10}}}}"#
        )
    };
    let body = format!(
        r#"{{"device_id":"tag-7","location":[{},{}]}}"#,
        location("2024-03-01T10:00:00Z", 50.0),
        location("2024-03-01T10:00:30Z", 50.001)
    );
    let message = post_json(&body).unwrap();
    let t0 = 1_709_287_200_000;
    assert_eq!(
        message.readings,
        [
            position_reading(t0, None, gps(500_000_000, 100_000_000, 1_621)),
            position_reading(t0 + 30_000, None, gps(500_010_000, 100_000_000, 1_621)),
        ]
    );
}

#[test]
fn query_form_by_post_body_and_charge() {
    let message = decode_request(
        "POST",
        "/",
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        b"id=tag-1&timestamp=1700000000&lat=51.5&lon=-0.12&accuracy=12.5&batt=15&charge=true&mock=false",
        &Limits::default(),
        &MappingConfig::default(),
    )
    .unwrap();
    assert_eq!(message.device_id, "tag-1");
    assert_eq!(message.readings.len(), 2);
    assert_eq!(
        message.readings[0],
        position_reading(
            1_700_000_000_000,
            Some(15),
            gps(515_000_000, -1_200_000, 2_026)
        )
    );
    assert_eq!(
        message.readings[1].body,
        ReadingBody::Event(DeviceEvent::Charging)
    );
    assert_eq!(message.unmapped, pairs(&[("mock", "false")]));
}
