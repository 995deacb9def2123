//! Scale test of the trail store (ignored by default; run in release):
//!
//! ```text
//! cargo test --release --test trail_scale -- --ignored --nocapture trail_scale
//! ```
//!
//! Builds `TRAIL_SCALE_ACTIVATIONS` (default 10,000) activations × `TRAIL_SCALE_DAYS` (default
//! 30) days at one fix a minute (about 1% of minutes missing; 1% of uploads arrive an hour
//! late), uploaded every 10 minutes per activation, checkpointed (sealed, written, fsynced)
//! every simulated hour. While it builds, a second thread reads random 48-hour trails of the
//! days already written (API readers against the one writer). Then it reopens the store and
//! measures bytes per position on disk, the open time, 1,000 random 48-hour reads (then the same
//! reads again, warm) and 1,000 random 200 m × 2 h candidate queries.
//!
//! `TRAIL_SCALE_DIR` chooses where the store is built (default: a temporary directory, removed
//! afterwards); with `TRAIL_SCALE_REUSE=1` an existing store there is measured without
//! rebuilding.

#[path = "support/trail_synth.rs"]
mod trail_synth;

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagstream::model::{Reading, ReadingBody};
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

struct Build {
    positions: u64,
    records: u64,
    seconds: f64,
    append_ns: u128,
    checkpoint_ns: u128,
    live_reads: Histogram<u64>,
}

fn build(store: &TrailStore, names: &[String], days: i64) -> Build {
    let mut walkers: Vec<Walker> = (0..names.len() as u64).map(Walker::new).collect();
    let mut rng = Rng::new(42);
    let mut late: Vec<(usize, i64, Vec<Reading>)> = Vec::new();
    let (mut record, mut positions, mut append_ns, mut checkpoint_ns) = (0u64, 0u64, 0u128, 0u128);
    let written_until = Arc::new(AtomicI64::new(START_MS));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, names) = (store.clone(), names.to_vec());
        let (written_until, stop) = (written_until.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(7);
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            while !stop.load(Ordering::Relaxed) {
                let until = written_until.load(Ordering::Relaxed);
                if until < START_MS + 2 * DAY_MS {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let a = &names[rng.below(names.len() as u64) as usize];
                let from =
                    START_MS + rng.below((until - START_MS - 2 * DAY_MS).max(1) as u64) as i64;
                let t = Instant::now();
                let got = store.positions(a, from, from + 2 * DAY_MS).expect("read");
                h.record(t.elapsed().as_micros() as u64).expect("record");
                assert!(got.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
                std::thread::sleep(Duration::from_millis(5));
            }
            h
        })
    };
    let start = Instant::now();
    for upload in 0..days * 144 {
        let m0 = upload * 10;
        let mut batch: Vec<(usize, Vec<Reading>)> = Vec::with_capacity(walkers.len());
        for (i, w) in walkers.iter_mut().enumerate() {
            let readings: Vec<Reading> = (m0..m0 + 10).filter_map(|m| w.fix(m)).collect();
            if rng.below(100) == 0 {
                late.push((i, upload + 6, readings));
            } else {
                batch.push((i, readings));
            }
        }
        late.retain(|(i, due, readings)| {
            let release = *due <= upload;
            if release {
                batch.push((*i, readings.clone()));
            }
            !release
        });
        let t = Instant::now();
        for (i, readings) in &batch {
            store.append(&names[*i], record, readings).expect("append");
            record += 1;
            positions += readings.len() as u64;
        }
        append_ns += t.elapsed().as_nanos();
        if upload % 6 == 5 {
            let t = Instant::now();
            store.checkpoint(record).expect("checkpoint");
            checkpoint_ns += t.elapsed().as_nanos();
            written_until.store(START_MS + (upload + 1) * 600_000, Ordering::Relaxed);
        }
        if upload % (144 * 5) == 0 {
            eprintln!(
                "day {}: {positions} positions, {:.0} s",
                upload / 144,
                start.elapsed().as_secs_f64()
            );
        }
    }
    // Uploads still held back arrive at the end.
    for (i, _, readings) in late {
        store.append(&names[i], record, &readings).expect("append");
        record += 1;
        positions += readings.len() as u64;
    }
    let t = Instant::now();
    store.flush(record).expect("flush");
    checkpoint_ns += t.elapsed().as_nanos();
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let live_reads = reader.join().expect("reader thread");
    Build {
        positions,
        records: record,
        seconds,
        append_ns,
        checkpoint_ns,
        live_reads,
    }
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
    let reuse = std::env::var("TRAIL_SCALE_REUSE").is_ok_and(|v| v == "1");
    let config = TrailConfig::default();
    let names: Vec<String> = (0..activations).map(activation_name).collect();

    let (store, existing) = TrailStore::open(&dir, config).expect("open");
    let built = if reuse && existing > 0 {
        None
    } else {
        Some(build(&store, &names, days))
    };
    drop(store);

    let t = Instant::now();
    let (store, cp) = TrailStore::open(&dir, config).expect("reopen");
    let open_s = t.elapsed().as_secs_f64();
    let stats = store.stats();
    if let Some(b) = &built {
        assert_eq!(cp, b.records);
        assert_eq!(stats.positions, b.positions);
    }

    // 1,000 random 48-hour reads, then the same 1,000 again (now in the page cache).
    let mut rng = Rng::new(1234);
    let span_ms = days * DAY_MS;
    let picks: Vec<(usize, i64)> = (0..1000)
        .map(|_| {
            let a = rng.below(activations) as usize;
            (
                a,
                START_MS + rng.below((span_ms - 2 * DAY_MS).max(1) as u64) as i64,
            )
        })
        .collect();
    let mut reads = Histogram::<u64>::new(3).expect("histogram");
    let mut warm = Histogram::<u64>::new(3).expect("histogram");
    let mut read_positions = 0u64;
    for pass in 0..2 {
        for (a, from) in &picks {
            let t = Instant::now();
            let got = store
                .positions(&names[*a], *from, from + 2 * DAY_MS)
                .expect("read");
            let us = t.elapsed().as_micros() as u64;
            assert!(got.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
            if pass == 0 {
                reads.record(us).expect("record");
                read_positions += got.len() as u64;
            } else {
                warm.record(us).expect("record");
            }
        }
    }
    // 1,000 candidate queries: a 200 m box around a random activation's fix, ±1 hour.
    let mut queries = Histogram::<u64>::new(3).expect("histogram");
    let mut found = 0usize;
    for _ in 0..1000 {
        let a = &names[rng.below(activations) as usize];
        let from = START_MS + rng.below((span_ms - DAY_MS).max(1) as u64) as i64;
        let first = store
            .positions(a, from, from + 3_600_000)
            .expect("read")
            .first()
            .copied();
        let Some(p) = first else { continue };
        let ReadingBody::Position(pos) = p.body else {
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

    let mut disk = 0u64;
    for e in std::fs::read_dir(&dir).expect("list") {
        disk += e.expect("entry").metadata().expect("stat").len();
    }
    let positions = stats.positions;
    println!("trail_scale: {activations} activations x {days} days");
    println!("  positions stored        {positions}");
    println!("  blocks                  {}", stats.blocks);
    println!(
        "  bytes on disk           {disk} (manifest {})",
        stats.manifest_bytes
    );
    println!(
        "  bytes per position      {:.3}",
        disk as f64 / positions as f64
    );
    if let Some(b) = &built {
        let secs = |ns: u128| ns as f64 / 1e9;
        println!(
            "  build                   {:.1} s, {:.0} positions/s including generation",
            b.seconds,
            b.positions as f64 / b.seconds
        );
        println!(
            "  append calls            {:.0} positions/s",
            b.positions as f64 / secs(b.append_ns)
        );
        println!(
            "  append + checkpoints    {:.0} positions/s",
            b.positions as f64 / secs(b.append_ns + b.checkpoint_ns)
        );
        println!(
            "  48 h reads during build {} ({} reads)",
            summary(&b.live_reads),
            b.live_reads.len()
        );
    }
    println!("  reopen                  {open_s:.2} s");
    println!(
        "  48 h reads (1,000)      {} ({} positions/read avg)",
        summary(&reads),
        read_positions / 1000
    );
    println!("  same reads again (warm) {}", summary(&warm));
    println!(
        "  candidates (1,000)      {} ({:.1} activations/query avg)",
        summary(&queries),
        found as f64 / 1000.0
    );
    assert!(disk as f64 / positions as f64 <= 16.0);
}
