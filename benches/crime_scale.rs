//! Retrospective crime matching at scale: a 10,000-crime batch against 30 days of trails of
//! 2,000 activations at one fix a minute (about 86 million positions) in the trail store, timed
//! end to end (trail index query per crime, block reads, the hit rule). Also dumps the same
//! positions and crimes as CSV for the PostGIS comparison (`benches/postgis/run.sh`).
//!
//! `cargo bench --bench crime_scale` (release). Settings by environment:
//! `CRIME_SCALE_ACTIVATIONS` (2000), `CRIME_SCALE_DAYS` (30), `CRIME_SCALE_CRIMES` (10000),
//! `CRIME_SCALE_DIR` (target/crime-scale; the built store is reused when its parameters match),
//! `CRIME_SCALE_DUMP=1` to write `positions.csv` and `crimes.csv` there.

#[path = "../tests/support/trail_synth.rs"]
mod trail_synth;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use tagstream::crime::matcher::{crime_query, HitChange, HitMatcher};
use tagstream::model::{CrimeVersion, Reading, ReadingBody};
use tagstream::rules::hits::HitsConfig;
use tagstream::store::trails::{TrailConfig, TrailStore};
use trail_synth::{activation_name, Rng, Walker, DAY_MS, MIN_MS, START_MS};

/// User + system CPU time of this process so far, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let activations = env_u64("CRIME_SCALE_ACTIVATIONS", 2000);
    let days = env_u64("CRIME_SCALE_DAYS", 30) as i64;
    let n_crimes = env_u64("CRIME_SCALE_CRIMES", 10_000);
    let dir = std::env::var("CRIME_SCALE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/crime-scale"));
    let dump = std::env::var("CRIME_SCALE_DUMP").is_ok_and(|v| v == "1");
    let params = format!("{activations} activations x {days} days\n");
    let marker = dir.join("params.txt");
    let names: Vec<String> = (0..activations).map(activation_name).collect();
    let config = TrailConfig {
        fsync: false,
        ..TrailConfig::default()
    };

    let reuse = std::fs::read_to_string(&marker).is_ok_and(|p| p == params);
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create bench dir");
    }
    let (store, _) = TrailStore::open(&dir.join("trails"), config).expect("open trail store");
    if !reuse {
        let started = Instant::now();
        let mut walkers: Vec<Walker> = (0..activations).map(Walker::new).collect();
        let mut record = 0u64;
        let mut positions = 0u64;
        let mut csv = dump.then(|| {
            std::io::BufWriter::with_capacity(
                1 << 22,
                std::fs::File::create(dir.join("positions.csv")).expect("positions.csv"),
            )
        });
        for hour in 0..days * 24 {
            for (i, w) in walkers.iter_mut().enumerate() {
                let readings: Vec<Reading> = (hour * 60..hour * 60 + 60)
                    .filter_map(|m| w.fix(m))
                    .collect();
                if let Some(out) = csv.as_mut() {
                    for r in &readings {
                        if let ReadingBody::Position(p) = &r.body {
                            writeln!(out, "{},{},{},{}", names[i], r.t_ms, p.lon(), p.lat())
                                .expect("write csv");
                        }
                    }
                }
                positions += readings.len() as u64;
                store.append(&names[i], record, &readings).expect("append");
                record += 1;
            }
            store.checkpoint(record).expect("checkpoint");
            if hour % (24 * 5) == 23 {
                eprintln!(
                    "built day {}: {positions} positions, {:.0} s",
                    hour / 24 + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        store.flush(record).expect("flush");
        std::fs::write(&marker, &params).expect("marker");
        eprintln!(
            "built {positions} positions in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let stats = store.stats();

    // Crimes: half placed where a wearer was (their fix at a random minute, nudged up to 60 m),
    // half anywhere in the area; windows of 30 minutes to 6 hours.
    let mut rng = Rng::new(2026);
    let mut crimes = Vec::with_capacity(n_crimes as usize);
    for i in 0..n_crimes {
        let from_ms = START_MS + rng.below((days * DAY_MS - 7 * 3_600_000) as u64) as i64;
        let to_ms = from_ms + (30 + rng.below(330) as i64) * MIN_MS;
        let (lat, lon) = if i % 2 == 0 {
            let a = &names[rng.below(activations) as usize];
            let at = from_ms + rng.below((to_ms - from_ms) as u64) as i64;
            match store
                .positions(a, at, at + 10 * MIN_MS)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|r| r.body)
            {
                Some(ReadingBody::Position(p)) => {
                    (p.lat() + rng.unit() * 0.0005, p.lon() + rng.unit() * 0.0008)
                }
                _ => (51.5, -2.6),
            }
        } else {
            (
                51.3 + 0.4 * (rng.unit() + 1.0) / 2.0,
                -2.9 + 0.6 * (rng.unit() + 1.0) / 2.0,
            )
        };
        crimes.push(CrimeVersion {
            force: "AvonSomerset".into(),
            batch_id: "AVS20260401".into(),
            crime_ref: format!("AVS/{i}"),
            version: 1,
            crime_type: "BIAD".into(),
            crime_type_description: "Burglary in a dwelling".into(),
            from_ms,
            to_ms,
            lat,
            lon,
            radius_m: 100.0,
            other_info: String::new(),
        });
    }
    if dump {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.join("crimes.csv")).expect("crimes"));
        for c in &crimes {
            writeln!(
                out,
                "{},{},{},{},{},{}",
                c.crime_ref, c.from_ms, c.to_ms, c.lon, c.lat, c.radius_m
            )
            .expect("write crimes");
        }
    }

    let hits_config = HitsConfig::default();
    // How selective the trail index is: candidate (crime, activation) pairs and their cost alone.
    let started = Instant::now();
    let mut candidate_pairs = 0usize;
    for c in &crimes {
        candidate_pairs += store.candidates(&crime_query(c, &hits_config)).len();
    }
    let candidates_s = started.elapsed().as_secs_f64();
    let mut runs = Vec::new();
    let mut cpu_runs = Vec::new();
    let mut last_hits = 0;
    for _ in 0..3 {
        let mut matcher = HitMatcher::new(hits_config);
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let slots = matcher.add_crimes(crimes.clone());
        let changes = matcher.match_crimes(&store, &slots).expect("match");
        runs.push(started.elapsed().as_secs_f64());
        cpu_runs.push(cpu_seconds() - cpu_before);
        last_hits = changes
            .iter()
            .filter(|c| matches!(c, HitChange::Upsert(_)))
            .count();
    }
    runs.sort_by(f64::total_cmp);
    cpu_runs.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "bench": "crime_scale",
            "activations": activations,
            "days": days,
            "positions": stats.positions,
            "crimes": n_crimes,
            "hits": last_hits,
            "candidate_pairs": candidate_pairs,
            "candidate_query_s": candidates_s,
            "retrospective_s_runs": runs,
            "retrospective_s_median": runs[runs.len() / 2],
            "crimes_per_s": n_crimes as f64 / runs[runs.len() / 2],
            // CPU seconds (user + system, all threads) per run: what the run costs whatever else
            // the machine is doing; on 2 idle cores the wall time approaches half of it.
            "retrospective_cpu_s_runs": cpu_runs,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
}
