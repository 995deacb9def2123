//! `GET /v1/people/{id}` at national scale: 100,000 people, 100,000 activations and 100,000
//! orders (each with a curfew) in the metadata database.
//!
//! 1. Criterion, in process, the metadata reads of the handler, before and after issue 14 item
//!    9: `orders_document_scan` (the old path: the person, then the whole orders document
//!    decoded and searched linearly) against `indexed` (the person, then
//!    `Metadata::person_records`: two index lookups).
//! 2. hdrhistogram of the same two paths, per read (the indexed one over 10,000 random people,
//!    the old one over a few, it is slow).
//! 3. The durable audit record alone (what every person read writes before it answers).
//! 4. End to end: the real `tagstream serve` binary on loopback over the same database, N
//!    sequential `GET /v1/people/{id}` on one keep-alive connection, latency per request
//!    (includes the audit record, written with `synchronous = FULL`, i.e. an fsync).
//!
//! Run: `cargo bench --bench person_queries` (all three), or with `PERSON_BENCH=e2e` only the
//! audit and end-to-end parts; `PERSON_BENCH_REQUESTS` sets N (default 2,000).

use criterion::Criterion;
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tagstream::formats::orders_file::OrdersFile;
use tagstream::model::{Activation, Order, Person};
use tagstream::store::metadata::{Metadata, NewAuditEntry};

const PEOPLE: usize = 100_000;
const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const ADMIN_TOKEN: &str = "person-bench-admin-token";
const TAG_KEY: &str = "person-bench-tag-key-0123456789abcdef";

/// Deterministic pseudo-random numbers.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn person_id(i: usize) -> String {
    format!("P{i:06}")
}

/// One person, one activation and one curfew order each; every tenth person restricted.
fn orders() -> OrdersFile {
    let mut doc = OrdersFile {
        people: Vec::with_capacity(PEOPLE),
        activations: Vec::with_capacity(PEOPLE),
        orders: Vec::with_capacity(PEOPLE),
    };
    for i in 0..PEOPLE {
        let id = person_id(i);
        doc.people.push(
            serde_json::from_value::<Person>(serde_json::json!({
                "id": id, "name": format!("Person {i}"), "date_of_birth": "1990-01-01",
                "nomis_id": format!("A{i:06}BC"), "pnc_ref": format!("26/{i:06}X"),
                "address": format!("{i} High Street, Anytown"),
                "offender_manager": format!("OM {}", i % 997), "restricted": i % 10 == 0
            }))
            .expect("a person"),
        );
        doc.activations.push(Activation {
            id: format!("A{i:06}"),
            person: id.clone(),
            tag: format!("T{i:06}"),
            from: T0_MS + (i as i64) * 1_000,
            to: None,
        });
        let lat = 51.0 + (i % 1000) as f64 * 1e-3;
        doc.orders.push(
            serde_json::from_value::<Order>(serde_json::json!({
                "id": format!("O{i:06}"), "person": id, "from": "2026-01-01", "to": "2027-01-01",
                "conditions": [{"type": "curfew", "grace_min": 5,
                  "addresses": [{"id": "home", "lat": lat, "lon": -2.5, "radius_m": 50}],
                  "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                                 "start": "19:00", "end": "07:00", "address": "home"}]}]
            }))
            .expect("an order"),
        );
    }
    doc
}

/// What the handler read before: the person, then the whole document searched for their
/// activations and orders.
fn old_path(m: &Metadata, id: &str) -> (Person, Vec<Activation>, Vec<Order>) {
    let person = m.person(id).expect("read").expect("exists");
    let doc = m.orders_document().expect("document");
    let activations = doc
        .activations
        .into_iter()
        .filter(|a| a.person == id)
        .collect();
    let orders = doc.orders.into_iter().filter(|o| o.person == id).collect();
    (person, activations, orders)
}

/// What the handler reads now.
fn new_path(m: &Metadata, id: &str) -> (Person, Vec<Activation>, Vec<Order>) {
    let person = m.person(id).expect("read").expect("exists");
    let r = m.person_records(id).expect("records");
    (person, r.activations, r.orders)
}

fn summary(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms p99.9={:.3} ms max={:.3} ms",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1e3,
        h.value_at_quantile(0.90) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn in_process(m: &Metadata) {
    // Same answers both ways, on a person with records and a restricted one.
    for id in [person_id(1), person_id(50_000)] {
        assert_eq!(old_path(m, &id), new_path(m, &id), "{id}");
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut group = c.benchmark_group("get_person_metadata_100k");
    let mut rng = Lcg(11);
    group.bench_function("orders_document_scan", |b| {
        b.iter(|| old_path(m, &person_id(rng.below(PEOPLE))))
    });
    group.sample_size(100);
    group.bench_function("indexed", |b| {
        b.iter(|| new_path(m, &person_id(rng.below(PEOPLE))))
    });
    group.finish();

    let mut h = histogram();
    for _ in 0..10_000 {
        let id = person_id(rng.below(PEOPLE));
        let t = Instant::now();
        std::hint::black_box(new_path(m, &id));
        h.record(t.elapsed().as_micros() as u64).expect("in range");
    }
    summary("in-process indexed (person + person_records)", &h);
    let mut h = histogram();
    for _ in 0..10 {
        let id = person_id(rng.below(PEOPLE));
        let t = Instant::now();
        std::hint::black_box(old_path(m, &id));
        h.record(t.elapsed().as_micros() as u64).expect("in range");
    }
    summary("in-process orders_document_scan", &h);
}

/// The durable audit record every person read writes before answering (`synchronous = FULL`:
/// an fsync of the WAL per record), alone: the floor under the end-to-end latency.
fn audit_alone(m: &Metadata, records: usize) {
    let mut h = histogram();
    let mut rng = Lcg(3);
    for _ in 0..records {
        let entry = NewAuditEntry {
            t_ms: T0_MS,
            user_name: "bench".into(),
            role: "admin".into(),
            action: "person.read".into(),
            person: Some(person_id(rng.below(PEOPLE))),
            from_ms: None,
            to_ms: None,
            format: None,
            purpose: Some("benchmark".into()),
            detail: None,
        };
        let t = Instant::now();
        m.audit(&entry).expect("audit");
        h.record(t.elapsed().as_micros() as u64).expect("in range");
    }
    summary("in-process audit record alone (fsync)", &h);
}

fn end_to_end(data_dir: &Path, requests: usize) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_tagstream"))
        .args([
            "serve",
            "--ingest-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("TAGSTREAM_TAG_KEY", TAG_KEY)
        .env("TAGSTREAM_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tagstream serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let listening: serde_json::Value = serde_json::from_str(&line).expect("listening JSON");
    let http = listening["http_addr"]
        .as_str()
        .expect("http_addr")
        .to_string();
    let agent = ureq::AgentBuilder::new().build();
    let get = |id: &str| {
        let response = agent
            .get(&format!("http://{http}/v1/people/{id}"))
            .set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .set("X-Purpose", "benchmark")
            .call()
            .expect("200");
        let text = response.into_string().expect("a body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(body["activations"].as_array().map(Vec::len), Some(1));
    };
    let mut rng = Lcg(5);
    // Warm-up: a fortieth of the run, at most 50 (a slow path is measured over few requests).
    for _ in 0..(requests / 40).clamp(1, 50) {
        get(&person_id(rng.below(PEOPLE)));
    }
    let mut h = histogram();
    let started = Instant::now();
    for _ in 0..requests {
        let id = person_id(rng.below(PEOPLE));
        let t = Instant::now();
        get(&id);
        h.record(t.elapsed().as_micros() as u64).expect("in range");
    }
    let seconds = started.elapsed().as_secs_f64();
    summary("end-to-end GET /v1/people/{id}", &h);
    println!(
        "end-to-end: {requests} requests in {seconds:.1} s ({:.0}/s, one connection)",
        requests as f64 / seconds
    );
    // The server is our child: stopped by its handle.
    let _ = server.kill();
    let _ = server.wait();
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let t = Instant::now();
    {
        let m = Metadata::open(&data_dir).expect("metadata");
        m.import_orders(&orders()).expect("import");
        println!(
            "{PEOPLE} people, activations and orders stored in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        if std::env::var("PERSON_BENCH").as_deref() != Ok("e2e") {
            in_process(&m);
        }
    }
    let requests = std::env::var("PERSON_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    audit_alone(&Metadata::open(&data_dir).expect("metadata"), requests);
    end_to_end(&data_dir, requests);
}
