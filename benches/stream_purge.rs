//! Retention on a cluster's stream, measured: a stream of `--records` batches (10 readings each,
//! round-robin over `--tags` tags) on `--replicas` NATS servers; then one tag's activation is
//! purged (`JetStreamLog::compact`: every record read, each of that tag's replaced in the object
//! store and its message deleted). Reported: the time to read the whole stream before the purge,
//! the purge (records scanned per second, time per replaced record), and the time to read the
//! whole stream after it (the replaced records read from their replacements).
//!
//! Run: `cargo bench --bench stream_purge -- [--records N] [--tags T] [--replicas R]`

#[path = "support/nats.rs"]
mod nats;

use futures::StreamExt;
use std::time::Instant;
use tagstream::cluster::jetstream::JetStreamLog;
use tagstream::log::TagWindows;
use tagstream::model::{Batch, Reading, ReadingBody};

const T0_MS: i64 = 1_780_000_000_000;

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
        }
    }
}

fn batch(tag: usize, seq: u64) -> Batch {
    let t_ms = T0_MS + seq as i64 * 600_000;
    Batch {
        tag: format!("T{tag}"),
        epoch: 0,
        seq,
        arrival_ms: t_ms + 600_000,
        readings: (0..10)
            .map(|k| Reading {
                t_ms: t_ms + k * 60_000,
                battery_pct: Some(80),
                body: ReadingBody::Rf {
                    in_range: k % 2 == 0,
                },
            })
            .collect(),
    }
}

/// Reads every record now in the stream; returns (records, readings, seconds).
async fn read_all(log: &JetStreamLog) -> anyhow::Result<(u64, u64, f64)> {
    let started = Instant::now();
    let end = log.next_record().await?;
    let mut records = Box::pin(log.read_until(0, end).await?);
    let (mut count, mut readings) = (0u64, 0u64);
    while let Some(item) = records.next().await {
        let (_, entry) = item?;
        count += 1;
        readings += entry.batch().map_or(0, |b| b.readings.len() as u64);
    }
    Ok((count, readings, started.elapsed().as_secs_f64()))
}

fn main() -> anyhow::Result<()> {
    let records = arg("--records", 200_000)?;
    let tags = arg("--tags", 1_000)?.max(1);
    let replicas = arg("--replicas", 3)?;
    let dir = tempfile::tempdir()?;
    let (_servers, config_path) = nats::start_jetstream(dir.path(), replicas, false)?;
    let config: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(&config_path)?)?;
    let jetstream = config
        .jetstream()
        .ok_or_else(|| anyhow::anyhow!("no [log.jetstream] in {}", config_path.display()))?
        .clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let log = JetStreamLog::open(jetstream).await?;
        let started = Instant::now();
        let appends = futures::stream::iter(0..records).map(|i| {
            let log = log.clone();
            async move { log.append(&batch(i % tags, (i / tags) as u64 + 1)).await }
        });
        let mut appends = appends.buffer_unordered(256);
        while let Some(appended) = appends.next().await {
            appended?;
        }
        let append_s = started.elapsed().as_secs_f64();

        let before = read_all(&log).await?;
        // Tag T0's whole activation.
        let mut windows = TagWindows::default();
        windows.add("T0", i64::MIN, i64::MAX);
        let report = log.compact(&windows).await?;
        let after = read_all(&log).await?;
        let replaced = report.records_emptied.max(1);
        let purge_s = report.elapsed_ms as f64 / 1000.0;
        let summary = serde_json::json!({
            "records": records,
            "tags": tags,
            "replicas": replicas,
            "append_s": append_s,
            "read_before": {"records": before.0, "readings": before.1, "seconds": before.2,
                            "records_per_s": before.0 as f64 / before.2},
            "purge": {"records_scanned": report.records_scanned,
                      "records_replaced": report.records_emptied,
                      "readings_removed": report.readings_removed,
                      "seconds": purge_s,
                      "records_scanned_per_s": report.records_scanned as f64 / purge_s.max(1e-9),
                      "ms_per_replaced_record_over_a_plain_read":
                          ((purge_s - before.2) * 1000.0 / replaced as f64).max(0.0)},
            "read_after": {"records": after.0, "readings": after.1, "seconds": after.2,
                           "records_per_s": after.0 as f64 / after.2},
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        anyhow::ensure!(
            after.0 == before.0,
            "records lost: {} → {}",
            before.0,
            after.0
        );
        anyhow::ensure!(
            after.1 + report.readings_removed == before.1,
            "readings: {} before, {} after, {} removed",
            before.1,
            after.1,
            report.readings_removed
        );
        Ok(())
    })
}
