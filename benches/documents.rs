//! Criterion benches of the documents people hand on (issue 18's targets, BENCHMARKS.md): how
//! long one takes to build, end to end from the stores' records to the PDF, JSON and manifest
//! bytes.
//!
//! `sober_day_report`: a 120-day alcohol order of one wearer (the AAMR's longest), a TAC
//! reading every 30 minutes (5,760 readings) with a drinking evening every week and an
//! obstruction every month, classified by the real `AlcoholRule` (untimed setup); timed: the
//! report's inputs gathered from the day records, alerts and TAC index
//! (`SoberDaySources::gather`) and the report built (`sober_day_report`: calendar, ~20 event
//! charts, layout, PDF). Target: ≤ 500 ms.
//!
//! `cargo bench --bench documents -- sober_day_report`
//!
//! - `hit_pack_*`: one hit evidence pack (PDF, JSON, manifest) of a hit with 121 positions (a fix
//!   a minute over the crime's hour and its 30-minute margins), its map composited from the demo
//!   street archive's tiles (treated as real streets here, so the tile work is measured), and
//!   without streets.
//!
//! Run: `cargo bench --bench documents` (or `-- sober_day_report`, `-- hit_pack`).

#[path = "../tests/support/tac_synth.rs"]
mod tac_synth;

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use tac_synth::{tac_stream, TacPlan};
use tagstream::alerts::{AlertBook, SoberDayBook};
use tagstream::documents::breach_report::{breach_report, BreachCondition, BreachReportInput};
use tagstream::documents::sober_day_report::sober_day_report;
use tagstream::documents::sources::{SoberDayRequest, SoberDaySources};
use tagstream::model::{
    Activation, AlcoholCondition, AlcoholMode, Condition, Order, Person, TimeMs,
};
use tagstream::pipeline::{ActivationInfo, Output, Rule, RuleContext, Sink};
use tagstream::rules::alcohol::{AlcoholConfig, AlcoholRule, Thresholds};
use tagstream::store::metadata::Metadata;
use tagstream::store::tac_book::TacBook;

use std::path::Path;
use tagstream::console::tiles::TileArchive;
use tagstream::crime::matcher::{HitChange, HitMatcher, MemoryTrails, Period};
use tagstream::documents::hit_pack::{hit_pack, HitPackInput, DEFAULT_DECLARATION};
use tagstream::documents::map_figure::TileSource;
use tagstream::model::{
    Alert, CrimeVersion, CurfewCondition, Hit, Position, PositionSource, Reading, ReadingBody,
};
use tagstream::rules::geodesy::M_PER_DEG_LAT;
use tagstream::rules::hits::HitsConfig;
use tagstream::store::crime_store::{HitReview, HitState, StoredHit};

const T0_MS: TimeMs = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const DAYS: usize = 120;

/// The rule's outputs as the live book holds them.
#[derive(Default)]
struct Books {
    alerts: AlertBook,
    days: SoberDayBook,
}

impl Sink for Books {
    fn emit(&mut self, output: Output, _cause: Option<TimeMs>) {
        match output {
            Output::Alert(a) => {
                self.alerts.upsert(a);
            }
            Output::SoberDay(d) => {
                self.days.upsert(d);
            }
            _ => {}
        }
    }
}

fn sober_day_report_bench(c: &mut Criterion) {
    // One more day of readings than the order, so its last day settles.
    let readings = tac_stream(T0_MS, &TacPlan::periodic(DAYS + 2, 7, 30));
    let order = Order {
        id: "O1".into(),
        person: "P1".into(),
        from: "2026-01-01".parse().unwrap(),
        to: Some("2026-04-30".parse().unwrap()),
        conditions: vec![Condition::Alcohol(AlcoholCondition {
            mode: AlcoholMode::Abstinence,
            requirement: None,
        })],
    };
    let activation = ActivationInfo {
        id: "A1".into(),
        person: "P1".into(),
        tag: "T1".into(),
        from_ms: T0_MS,
        to_ms: None,
    };
    let th = Arc::new(Thresholds::new(&AlcoholConfig::default()));
    let mut rule =
        AlcoholRule::new(th, &activation, &[Arc::new(order.clone())], 0).expect("an alcohol order");
    let mut books = Books::default();
    {
        let mut ctx = RuleContext::new(&activation, &mut books, None);
        for (i, r) in readings.iter().enumerate() {
            rule.on_reading(&mut ctx, r, false);
            if i % 4 == 3 {
                rule.on_contact(&mut ctx, r.t_ms);
            }
        }
    }
    let (days, alerts) = (books.days.sorted(), books.alerts.sorted());
    let tac = TacBook::default();
    tac.add("A1", &readings);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let metadata = Metadata::open(dir.path()).expect("metadata");
    let person = Person {
        id: "P1".into(),
        name: "Bench Wearer".into(),
        date_of_birth: None,
        nomis_id: None,
        pnc_ref: None,
        address: None,
        offender_manager: None,
        restricted: false,
    };
    metadata.upsert_person(&person).expect("person");
    metadata
        .upsert_activation(&Activation {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from: T0_MS,
            to: None,
        })
        .expect("activation");
    metadata.upsert_order(&order).expect("order");
    let request = SoberDayRequest::default();
    let build = || {
        let sources = SoberDaySources::gather(
            &metadata,
            person.clone(),
            &request,
            days.clone(),
            alerts.clone(),
            &tac,
        )
        .expect("sources");
        sober_day_report(&sources.input()).expect("report")
    };
    let sample = build();
    let report: serde_json::Value = serde_json::from_slice(&sample.json).expect("JSON");
    assert_eq!(
        report["calendar"].as_array().map(Vec::len),
        Some(DAYS),
        "a {DAYS}-day period"
    );
    eprintln!(
        "sober_day_report: {} day records, {} events, {} TAC readings drawn, PDF {} bytes",
        report["days"].as_array().map_or(0, Vec::len),
        report["events"].as_array().map_or(0, Vec::len),
        sample.manifest.inputs["tac_readings"]["readings"],
        sample.pdf.len()
    );
    let mut group = c.benchmark_group("documents");
    group.sample_size(10);
    group.bench_function("sober_day_report_120_days", |b| b.iter(build));
    group.finish();
}

const CRIME: (f64, f64) = (51.4545, -2.5879);
const T0: i64 = 1_780_000_000_000;
const MIN: i64 = 60_000;

/// The demo archive's tiles, drawn as if they were real streets (a deployment's national
/// archive): documents never draw a synthetic archive, so this is the cost a real one adds.
struct AsReal(TileArchive);

impl TileSource for AsReal {
    fn tile_png(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>, String> {
        self.0.tile_png(z, x, y)
    }
    fn zoom_range(&self) -> (u8, u8) {
        self.0.zoom_range()
    }
    fn synthetic(&self) -> bool {
        false
    }
    fn attribution(&self) -> Option<String> {
        Some("bench".into())
    }
}

/// A person walking past the crime, a fix a minute from 30 minutes before its hour to 30
/// after: 121 positions of evidence.
fn hit() -> Hit {
    let mut trails = MemoryTrails::new(HitsConfig::default().max_gap_s * 1000);
    for i in -30..=90 {
        let east_m = -900.0 + 15.0 * (i + 30) as f64;
        let lat = CRIME.0 + 40.0 / M_PER_DEG_LAT;
        let lon = CRIME.1 + east_m / (M_PER_DEG_LAT * CRIME.0.to_radians().cos());
        trails.push(
            "A1",
            Reading {
                t_ms: T0 + i * MIN,
                battery_pct: None,
                body: ReadingBody::Position(Position {
                    lat_e7: (lat * 1e7).round() as i32,
                    lon_e7: (lon * 1e7).round() as i32,
                    precision_cm: if i % 10 == 0 { 30_000 } else { 800 },
                    source: if i % 10 == 0 {
                        PositionSource::Lbs
                    } else {
                        PositionSource::Gps
                    },
                    speed_ckmh: Some(90),
                    heading_cdeg: Some(9000),
                    satellites: Some(8),
                }),
            },
        );
    }
    trails.seal();
    let mut matcher = HitMatcher::new(HitsConfig::default());
    matcher.set_activation(
        "A1",
        "P1",
        Period {
            from_ms: T0 - 24 * 60 * MIN,
            to_ms: None,
        },
    );
    let slot = matcher.add_crimes([CrimeVersion {
        force: "AvonSomerset".into(),
        batch_id: "AVS20260601".into(),
        crime_ref: "AVS/1".into(),
        version: 1,
        crime_type: "BIAD".into(),
        crime_type_description: "Burglary in a dwelling".into(),
        from_ms: T0,
        to_ms: T0 + 60 * MIN,
        lat: CRIME.0,
        lon: CRIME.1,
        radius_m: 100.0,
        other_info: "Rear door forced".into(),
    }])[0];
    match matcher
        .match_crimes(&trails, &[slot])
        .expect("matches")
        .into_iter()
        .next()
    {
        Some(HitChange::Upsert(hit)) => *hit,
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn hit_pack_bench(c: &mut Criterion) {
    let stored = StoredHit {
        hit: hit(),
        review: HitReview {
            state: HitState::Confirmed,
            by: Some("hub1".into()),
            at: Some(T0 + 600 * MIN),
            reason: Some("Route matches the door camera".into()),
            changed_after_review: false,
        },
        withdrawn: None,
    };
    let person = Person {
        id: "P1".into(),
        name: "Alex Example".into(),
        date_of_birth: None,
        nomis_id: Some("A1234BC".into()),
        pnc_ref: Some("12/345678A".into()),
        address: Some("1 Example Street, Bristol".into()),
        offender_manager: Some("Olu Manager".into()),
        restricted: false,
    };
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basemap/demo-streets.mbtiles");
    let tiles = AsReal(TileArchive::open(&archive).expect("the demo archive opens"));
    let input = |tiles: Option<&'static dyn TileSource>| HitPackInput {
        stored: &stored,
        other_info: "Rear door forced",
        device_id: "T1",
        person: Some(&person),
        position_batches: &[],
        declaration: DEFAULT_DECLARATION,
        tiles,
    };
    let tiles: &'static AsReal = Box::leak(Box::new(tiles));
    let with_streets = hit_pack(&input(Some(tiles))).expect("builds");
    eprintln!(
        "hit pack: {} positions, PDF {} bytes, JSON {} bytes",
        stored.hit.positions.len(),
        with_streets.pdf.len(),
        with_streets.json.len()
    );
    let mut group = c.benchmark_group("documents");
    group.sample_size(20);
    group.bench_function("hit_pack_with_street_tiles", |b| {
        b.iter(|| hit_pack(&input(Some(tiles))).expect("builds"))
    });
    group.bench_function("hit_pack_without_streets", |b| {
        b.iter(|| hit_pack(&input(None)).expect("builds"))
    });
    group.finish();
}

/// A curfew breach: 19:00–07:00 at home, away from 19:00 to 21:30 (a fix a minute from 18:00 to
/// 22:30, walking out and back), with its review history: 271 positions drawn over street tiles.
fn breach_report_bench(c: &mut Criterion) {
    let home: (f64, f64) = (51.4545, -2.5879);
    let start = T0 + 60 * MIN;
    let positions: Vec<Reading> = (0..=270)
        .map(|i| {
            let away_m = if !(60..=210).contains(&i) {
                10.0
            } else {
                1_500.0 - (i as f64 - 135.0).abs() * 15.0
            };
            let lat = home.0 + away_m / M_PER_DEG_LAT;
            Reading {
                t_ms: T0 + i * MIN,
                battery_pct: Some(80),
                body: ReadingBody::Position(Position {
                    lat_e7: (lat * 1e7).round() as i32,
                    lon_e7: (home.1 * 1e7).round() as i32,
                    precision_cm: 900,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(450),
                    heading_cdeg: Some(0),
                    satellites: Some(8),
                }),
            }
        })
        .collect();
    let alert: Alert = serde_json::from_value(serde_json::json!({
        "id": "al-bench", "type": "curfew_violation", "code": "AL08", "activation": "A1",
        "person": "P1", "start": "2026-05-28T21:33:20Z", "end": "2026-05-29T00:03:20Z",
        "late": false, "confidence": "confirmed", "rule": "curfew/5"
    }))
    .expect("alert");
    let curfew: CurfewCondition = serde_json::from_value(serde_json::json!({
        "addresses": [{"id": "home", "lat": home.0, "lon": home.1, "radius_m": 50}],
        "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "19:00", "end": "07:00", "address": "home"}]
    }))
    .expect("curfew");
    let condition = BreachCondition::Curfew {
        order: "O1".into(),
        curfew,
    };
    let person: Person = serde_json::from_value(serde_json::json!({
        "id": "P1", "name": "Alex Example", "address": "1 Example Street, Bristol",
        "offender_manager": "Olu Manager"
    }))
    .expect("person");
    let review = serde_json::json!({"state": "resolved", "outcome": "breach", "by": "hub1"});
    let history = vec![
        serde_json::json!({"action": "acknowledge", "by": "hub1", "at": "2026-05-28T21:40:00Z"}),
        serde_json::json!({"action": "resolve", "by": "hub1", "at": "2026-05-29T00:10:00Z", "outcome": "breach", "note": "Called the person; returned home 00:03"}),
    ];
    let evidence = [positions[60], positions[210]];
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basemap/demo-streets.mbtiles");
    let tiles: &'static AsReal = Box::leak(Box::new(AsReal(
        TileArchive::open(&archive).expect("the demo archive opens"),
    )));
    let input = BreachReportInput {
        alert: &alert,
        evidence: &evidence,
        review: &review,
        history: &history,
        person: &person,
        condition: &condition,
        condition_version: None,
        positions: &positions,
        position_batches: &[],
        window_from_ms: start - 60 * MIN,
        window_to_ms: T0 + 270 * MIN,
        tiles: Some(tiles),
    };
    let sample = breach_report(&input).expect("builds");
    eprintln!(
        "breach report: {} positions, PDF {} bytes, JSON {} bytes",
        positions.len(),
        sample.pdf.len(),
        sample.json.len()
    );
    let mut group = c.benchmark_group("documents");
    group.sample_size(20);
    group.bench_function("breach_report_with_street_tiles", |b| {
        b.iter(|| breach_report(&input).expect("builds"))
    });
    group.finish();
}

criterion_group!(
    benches,
    sober_day_report_bench,
    hit_pack_bench,
    breach_report_bench
);
criterion_main!(benches);
