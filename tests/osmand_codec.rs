//! Properties of the OsmAnd request decoder (`tagstream::devices::osmand`): whatever request
//! arrives, the decoder never panics and refuses with one of the statuses the listener knows;
//! what the simulator's encoder writes, the decoder reads back as the same reading; a decoded
//! request's readings are all on the globe.

use proptest::prelude::*;
use tagstream::devices::osmand::{
    decode_request, encode_query, Limits, MappingConfig, OsmandError, OsmandMessage,
};
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};

/// 256 cases a property, or `PROPTEST_CASES` for a long run (`with_cases` would ignore it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("APPLICATION/JSON; charset=utf-8"),
    Some("text/plain"),
];

fn decode(
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<OsmandMessage, OsmandError> {
    decode_request(
        method,
        target,
        content_type,
        body,
        &Limits::default(),
        &MappingConfig::default(),
    )
}

/// A decoded message's readings are within the model's ranges; a refusal names a status.
fn check_outcome(outcome: &Result<OsmandMessage, OsmandError>) {
    match outcome {
        Ok(message) => {
            assert!(!message.device_id.is_empty());
            for reading in &message.readings {
                if let ReadingBody::Position(p) = reading.body {
                    assert!(p.lat_e7.unsigned_abs() <= 900_000_000);
                    assert!(p.lon_e7.unsigned_abs() <= 1_800_000_000);
                    assert!((300..=50_000).contains(&p.precision_cm));
                    assert!(p.heading_cdeg.is_none_or(|h| h < 36_000));
                }
                assert!(reading.battery_pct.is_none_or(|pct| pct <= 100));
            }
        }
        Err(error) => assert!(
            matches!(error.status(), 400 | 405 | 413 | 414 | 415),
            "{error}"
        ),
    }
}

/// Parameter names the decoder maps, and some it does not.
const NAMES: [&str; 20] = [
    "id",
    "deviceid",
    "timestamp",
    "lat",
    "lon",
    "location",
    "speed",
    "bearing",
    "heading",
    "altitude",
    "accuracy",
    "hdop",
    "batt",
    "battery",
    "charge",
    "valid",
    "mock",
    "cell",
    "wifi",
    "%", // a bad escape as a name
];

/// Values that look like what apps send, and some that do not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-200.0f64..200.0).prop_map(|v| v.to_string()),
        (0u64..5_000_000_000_000).prop_map(|v| v.to_string()),
        Just("true".to_string()),
        Just("NaN".to_string()),
        Just("1e999".to_string()),
        Just("60.0,30.0".to_string()),
        Just("2016-01-27T18%3A55%3A47Z".to_string()),
        "[ -~]{0,12}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(&NAMES[..]), value()), 0..12).prop_map(|pairs| {
        let joined: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("/?{}", joined.join("&"))
    })
}

fn on_globe_position() -> impl Strategy<Value = Position> {
    (
        -900_000_000i32..=900_000_000,
        -1_800_000_000i32..=1_800_000_000,
        300u32..=50_000,
        prop::option::of(any::<u16>()),
        prop::option::of(0u16..36_000),
    )
        .prop_filter("0,0 is no fix", |(lat, lon, ..)| *lat != 0 || *lon != 0)
        .prop_map(
            |(lat_e7, lon_e7, precision_cm, speed_ckmh, heading_cdeg)| Position {
                lat_e7,
                lon_e7,
                precision_cm,
                source: PositionSource::Gps,
                speed_ckmh,
                heading_cdeg,
                satellites: None,
            },
        )
}

fn reading() -> impl Strategy<Value = Reading> {
    let body = prop_oneof![
        on_globe_position().prop_map(ReadingBody::Position),
        Just(ReadingBody::Event(DeviceEvent::Charging)),
    ];
    // Within the default time window, to the millisecond.
    (
        946_684_800_000i64..=4_102_444_800_000,
        prop::option::of(0u8..=100),
        body,
    )
        .prop_map(|(t_ms, battery_pct, body)| Reading {
            t_ms,
            battery_pct,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        target in ".{0,200}",
        body in prop::collection::vec(any::<u8>(), 0..600),
        content_type in 0usize..CONTENT_TYPES.len(),
        post in any::<bool>(),
    ) {
        let method = if post { "POST" } else { "GET" };
        check_outcome(&decode(method, &target, CONTENT_TYPES[content_type], &body));
    }

    #[test]
    fn arbitrary_queries_never_panic(target in query(), as_body in any::<bool>()) {
        check_outcome(&decode("GET", &target, None, b""));
        if as_body {
            let form = target.trim_start_matches("/?").as_bytes();
            check_outcome(&decode("POST", "/", CONTENT_TYPES[1], form));
        }
    }

    #[test]
    fn json_with_arbitrary_values_never_panics(
        lat in prop_oneof![any::<f64>().prop_map(|v| v.to_string()), Just("\"x\"".to_string()), Just("null".to_string())],
        speed in any::<f64>(),
        level in any::<f64>(),
        timestamp in prop_oneof![Just("2024-03-01T10:00:00Z".to_string()), "[0-9]{1,20}", ".{0,20}"],
        array in any::<bool>(),
    ) {
        let location = format!(
            r#"{{"timestamp":{ts},"coords":{{"latitude":{lat},"longitude":1.5,"speed":{speed:?},"heading":90}},"battery":{{"level":{level:?},"is_charging":true}}}}"#,
            ts = serde_json::Value::String(timestamp),
        );
        let location = if array { format!("[{location},{location}]") } else { location };
        let body = format!(r#"{{"device_id":"tag-1","location":{location}}}"#);
        check_outcome(&decode("POST", "/", CONTENT_TYPES[2], body.as_bytes()));
    }

    #[test]
    fn encoded_readings_decode_to_themselves(reading in reading(), id in "[A-Za-z0-9._:-]{1,64}") {
        let mapping = MappingConfig::default();
        let target = encode_query(&id, &reading, &mapping).expect("encodes");
        let message = decode("GET", &target, None, b"").expect("decodes");
        prop_assert_eq!(&message.device_id, &id);
        prop_assert_eq!(&message.readings, &vec![reading], "{}", target);
        prop_assert!(message.unmapped.is_empty());
        // The same parameters as a form body decode the same.
        let form = target.trim_start_matches("/?").as_bytes();
        let posted = decode("POST", "/", CONTENT_TYPES[1], form).expect("decodes");
        prop_assert_eq!(posted, message);
    }
}
