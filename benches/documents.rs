//! Criterion benches of the documents people hand on (issue 18's targets, BENCHMARKS.md):
//! - `hit_pack_*`: one hit evidence pack (PDF, JSON, manifest) of a hit with 121 positions (a fix
//!   a minute over the crime's hour and its 30-minute margins), its map composited from the demo
//!   street archive's tiles (treated as real streets here, so the tile work is measured), and
//!   without streets.
//!
//! Run: `cargo bench --bench documents`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;
use tagstream::console::tiles::TileArchive;
use tagstream::crime::matcher::{HitChange, HitMatcher, MemoryTrails, Period};
use tagstream::documents::hit_pack::{hit_pack, HitPackInput, DEFAULT_DECLARATION};
use tagstream::documents::map_figure::TileSource;
use tagstream::model::{CrimeVersion, Hit, Person, Position, PositionSource, Reading, ReadingBody};
use tagstream::rules::geodesy::M_PER_DEG_LAT;
use tagstream::rules::hits::HitsConfig;
use tagstream::store::crime_store::{HitReview, HitState, StoredHit};

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

criterion_group!(benches, hit_pack_bench);
criterion_main!(benches);
