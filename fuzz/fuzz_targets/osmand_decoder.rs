//! Fuzz target for the OsmAnd request decoder (`tagstream::devices::osmand::decode_request`):
//! an arbitrary request target and body, under each method and content type, must never panic;
//! a refused request must name an HTTP status of 400, 405, 413, 414 or 415; and every reading of
//! an accepted request must be on the globe and re-encode (`encode_query`) to a request that
//! decodes back to exactly that reading.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tagstream::devices::osmand::{decode_request, encode_query, Limits, MappingConfig};
use tagstream::model::ReadingBody;

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
];

fuzz_target!(|input: &[u8]| {
    // The first byte picks the method and content type; the rest is the request target, then
    // (after the first newline) the body.
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let (target, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(newline) => (&rest[..newline], &rest[newline + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return; // the listener's HTTP layer hands over a request target as text
    };
    let method = if control & 0x80 != 0 { "POST" } else { "GET" };
    let content_type = CONTENT_TYPES[usize::from(control & 3)];
    // Small limits, so that every limit is within the fuzzer's reach.
    let limits = Limits {
        max_query_bytes: 1024,
        max_body_bytes: 2048,
        max_params: 16,
        max_json_depth: 6,
        max_locations: 4,
        ..Limits::default()
    };
    let mapping = MappingConfig::default();
    let message = match decode_request(method, target, content_type, body, &limits, &mapping) {
        Ok(message) => message,
        Err(error) => {
            assert!(matches!(error.status(), 400 | 405 | 413 | 414 | 415), "{error}");
            let _ = error.to_string();
            return;
        }
    };
    for reading in &message.readings {
        if let ReadingBody::Position(p) = reading.body {
            assert!(p.lat_e7.unsigned_abs() <= 900_000_000, "{p:?}");
            assert!(p.lon_e7.unsigned_abs() <= 1_800_000_000, "{p:?}");
            assert!(p.heading_cdeg.is_none_or(|h| h < 36_000), "{p:?}");
        }
        assert!(reading.battery_pct.is_none_or(|pct| pct <= 100));
        let encoded = encode_query(&message.device_id, reading, &mapping)
            .expect("a decoded reading re-encodes");
        let again = decode_request("GET", &encoded, None, b"", &Limits::default(), &mapping)
            .expect("a re-encoded reading decodes");
        assert_eq!(again.device_id, message.device_id);
        assert_eq!(again.readings, [*reading], "{encoded}");
    }
});
