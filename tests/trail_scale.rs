//! Scale test of the trail store (ignored by default; run in release):
//!
//! ```text
//! cargo test --release --test trail_scale -- --ignored --nocapture trail_scale
//! ```
//!
//! Builds `TRAIL_SCALE_ACTIVATIONS` (default 10,000) activations × `TRAIL_SCALE_DAYS` (default
//! 30) days at one fix a minute (about 1% of minutes missing; 1% of uploads arrive an hour
//! late), uploaded every 10 minutes per activation, checkpointed (sealed, written, fsynced)
//! every simulated hour. Then reopens the store and measures bytes per position on disk, the
//! open time, the latency of 1,000 random 48-hour reads and of 1,000 random 200 m × 2 h
//! candidate queries. `TRAIL_SCALE_DIR` chooses where the store is built (default: a temporary
//! directory, removed afterwards).

#[path = "support/trail_synth.rs"]
mod trail_synth;

use hdrhistogram::Histogram;
use std::time::Instant;
use tagstream::model::Reading;
use tagstream::store::trails::{QueryBox, TrailConfig, TrailStore};
use trail_synth::{activation_name, Rng, Walker, DAY_MS, START_MS};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

#[test]
#[ignore = "builds a large store; run explicitly in release"]
fn trail_scale() {
    let activations = env_u64("TRAIL_SCALE_ACTIVATIONS", 10_000);
    let days = env_u64("TRAIL_SCALE_DAYS", 30) as i64;
    let temp = tempfile::Builder::new()
        .prefix("trail-scale")
        .tempdir()
        .expect("temp dir");
    let dir = std::env::var("TRAIL_SCALE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let config = TrailConfig::default();
    let (store, _) = TrailStore::open(&dir, config).expect("open");

    let mut walkers: Vec<Walker> = (0..activations).map(Walker::new).collect();
    let names: Vec<String> = (0..activations).map(activation_name).collect();
    let mut rng = Rng::new(42);
    let mut late: Vec<(u64, i64, Vec<Reading>)> = Vec::new();
    let mut record = 0u64;
    let (mut appended, mut append_ns, mut checkpoint_ns) = (0u64, 0u128, 0u128);
    let build = Instant::now();
    let uploads = days * 144;
    for upload in 0..uploads {
        let m0 = upload * 10;
        let mut batch: Vec<(u64, Vec<Reading>)> = Vec::with_capacity(walkers.len());
        for (i, w) in walkers.iter_mut().enumerate() {
            let readings: Vec<Reading> = (m0..m0 + 10).filter_map(|m| w.fix(m)).collect();
            if rng.below(100) == 0 {
                late.push((i as u64, upload + 6, readings));
            } else {
                batch.push((i as u64, readings));
            }
        }
        late.retain(|(i, due, readings)| {
            if *due <= upload {
                batch.push((*i, readings.clone()));
                false
            } else {
                true
            }
        });
        let t = Instant::now();
        for (i, readings) in &batch {
            store
                .append(&names[*i as usize], record, readings)
                .expect("append");
            record += 1;
            appended += readings.len() as u64;
        }
        append_ns += t.elapsed().as_nanos();
        if upload % 6 == 5 {
            let t = Instant::now();
            store.checkpoint(record).expect("checkpoint");
            checkpoint_ns += t.elapsed().as_nanos();
        }
        if upload % (144 * 5) == 0 {
            eprintln!(
                "day {} of {days}: {} positions, {:.0} s",
                upload / 144,
                appended,
                build.elapsed().as_secs_f64()
            );
        }
    }
    let t = Instant::now();
    store.flush(record).expect("flush");
    checkpoint_ns += t.elapsed().as_nanos();
    let build_s = build.elapsed().as_secs_f64();
    let stats = store.stats();
    drop(store);

    let t = Instant::now();
    let (store, cp) = TrailStore::open(&dir, config).expect("reopen");
    let open_s = t.elapsed().as_secs_f64();
    assert_eq!(cp, record);
    assert_eq!(store.stats().positions, appended);

    // 1,000 random 48-hour reads.
    let span_ms = days * DAY_MS;
    let mut reads = Histogram::<u64>::new(3).expect("histogram");
    let mut read_positions = 0u64;
    for _ in 0..1000 {
        let a = &names[rng.below(activations) as usize];
        let from = START_MS + rng.below((span_ms - 2 * DAY_MS).max(1) as u64) as i64;
        let t = Instant::now();
        let got = store.positions(a, from, from + 2 * DAY_MS).expect("read");
        reads
            .record(t.elapsed().as_micros() as u64)
            .expect("record");
        read_positions += got.len() as u64;
        assert!(got.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    }
    // 1,000 random candidate queries: 200 m box around a random activation's position, 2 hours.
    let mut queries = Histogram::<u64>::new(3).expect("histogram");
    let mut found = 0usize;
    for _ in 0..1000 {
        let a = &names[rng.below(activations) as usize];
        let from = START_MS + rng.below((span_ms - DAY_MS).max(1) as u64) as i64;
        let Some(p) = store
            .positions(a, from, from + 3_600_000)
            .expect("read")
            .first()
            .copied()
        else {
            continue;
        };
        let tagstream::model::ReadingBody::Position(pos) = p.body else {
            continue;
        };
        let q = QueryBox {
            min_lon: pos.lon() - 0.0015,
            min_lat: pos.lat() - 0.0009,
            max_lon: pos.lon() + 0.0015,
            max_lat: pos.lat() + 0.0009,
            from_ms: p.t_ms - 3_600_000,
            to_ms: p.t_ms + 3_600_000,
        };
        let t = Instant::now();
        let c = store.candidates(&q);
        queries
            .record(t.elapsed().as_micros() as u64)
            .expect("record");
        assert!(c.iter().any(|c| &c.activation == a));
        found += c.len();
    }

    let disk = {
        let mut total = 0u64;
        for e in std::fs::read_dir(&dir).expect("list") {
            total += e.expect("entry").metadata().expect("stat").len();
        }
        total
    };
    println!("trail_scale: {activations} activations x {days} days");
    println!("  positions stored        {appended}");
    println!("  blocks                  {}", stats.blocks);
    println!(
        "  bytes on disk           {disk} (manifest {})",
        stats.manifest_bytes
    );
    println!(
        "  bytes per position      {:.3}",
        disk as f64 / appended as f64
    );
    println!("  build                   {build_s:.1} s ({:.0} positions/s overall, including generation)", appended as f64 / build_s);
    println!(
        "  append calls            {:.0} positions/s",
        appended as f64 / (append_ns as f64 / 1e9)
    );
    println!(
        "  append + checkpoints    {:.0} positions/s",
        appended as f64 / ((append_ns + checkpoint_ns) as f64 / 1e9)
    );
    println!("  reopen                  {open_s:.2} s");
    println!(
        "  48 h reads (1,000)      {} ({} positions/read avg)",
        summary(&reads),
        read_positions / 1000
    );
    println!(
        "  candidates (1,000)      {} ({:.1} activations/query avg)",
        summary(&queries),
        found as f64 / 1000.0
    );
    assert!(disk as f64 / appended as f64 <= 16.0);
}
