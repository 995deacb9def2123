//! Criterion benchmarks of the OsmAnd request decoder: decoding realistic requests into readings,
//! reported as requests per second; each request's size is printed so that MB/s follows.
//!
//! Requests as the Traccar Client sends them: the Android app's query string (`id`, `timestamp`,
//! `lat`, `lon`, `speed`, `bearing`, `altitude`, `accuracy`, `batt`), the same as a form body,
//! one JSON location (the newer app's body, as in Traccar's test vectors), and a JSON batch of
//! 10 locations (the app uploading its buffer after being offline).
//!
//! Run: `cargo bench --bench osmand_decode -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tagstream::devices::osmand::{decode_request, Limits, MappingConfig};

const REQUESTS: usize = 100;

fn query(i: usize) -> String {
    format!(
        "/?id=48241179&timestamp={}&lat={:.7}&lon={:.7}&speed={:.1}&bearing={:.1}&altitude=35.7&accuracy={:.1}&batt={}",
        1_774_722_600 + i * 30,
        51.5074 + i as f64 * 1e-5,
        -0.1278 - i as f64 * 1e-5,
        (i % 20) as f64 * 0.7,
        (i * 37 % 360) as f64,
        3.0 + (i % 9) as f64,
        90 - i % 50
    )
}

fn json_location(i: usize) -> String {
    format!(
        r#"{{"event":"motionchange","is_moving":true,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e{:02}","timestamp":"2026-03-28T18:{:02}:{:02}.444Z","odometer":{},"coords":{{"latitude":{:.7},"longitude":{:.7},"accuracy":3.8,"speed":{:.2},"speed_accuracy":0.26,"heading":{},"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8}},"activity":{{"type":"walking","confidence":100}},"battery":{{"is_charging":false,"level":0.79}},"extras":{{}}}}"#,
        i % 100,
        i / 60 % 60,
        i % 60,
        i * 12,
        51.5074 + i as f64 * 1e-5,
        -0.1278 - i as f64 * 1e-5,
        (i % 20) as f64 * 0.3,
        i * 37 % 360
    )
}

fn json_body(first: usize, locations: usize) -> String {
    let location = if locations == 1 {
        json_location(first)
    } else {
        let all: Vec<String> = (first..first + locations).map(json_location).collect();
        format!("[{}]", all.join(","))
    };
    format!(r#"{{"location":{location},"device_id":"8737767034"}}"#)
}

/// One request as the listener hands it over: target, content type, body.
struct Request {
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

/// A named way of making the i-th request of a kind.
type RequestKind = (&'static str, fn(usize) -> Request);

fn bench_decode(c: &mut Criterion) {
    let limits = Limits::default();
    let mapping = MappingConfig::default();
    let kinds: [RequestKind; 4] = [
        ("query_get", |i| Request {
            target: query(i),
            content_type: None,
            body: Vec::new(),
        }),
        ("form_post", |i| Request {
            target: "/".into(),
            content_type: Some("application/x-www-form-urlencoded"),
            body: query(i).trim_start_matches("/?").as_bytes().to_vec(),
        }),
        ("json_one_location", |i| Request {
            target: "/".into(),
            content_type: Some("application/json"),
            body: json_body(i, 1).into_bytes(),
        }),
        ("json_10_locations", |i| Request {
            target: "/".into(),
            content_type: Some("application/json"),
            body: json_body(i * 10, 10).into_bytes(),
        }),
    ];
    let mut group = c.benchmark_group("osmand");
    for (name, make) in kinds {
        let requests: Vec<Request> = (0..REQUESTS).map(make).collect();
        let bytes: usize = requests.iter().map(|r| r.target.len() + r.body.len()).sum();
        eprintln!("{name}: {} bytes a request", bytes / REQUESTS);
        group.throughput(Throughput::Elements(REQUESTS as u64));
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| {
                let mut readings = 0;
                for r in &requests {
                    let method = if r.body.is_empty() { "GET" } else { "POST" };
                    let message = decode_request(
                        method,
                        black_box(&r.target),
                        r.content_type,
                        black_box(&r.body),
                        &limits,
                        &mapping,
                    )
                    .expect("realistic requests decode");
                    readings += message.readings.len();
                }
                readings
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
