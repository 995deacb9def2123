//! The simulator against the real server: `tagsim stream` keeps uploading through a kill -9 and
//! restart of `tagstream serve`, resends what was not acknowledged, and in the end the server's
//! log holds every reading the simulated tags produced, each exactly once.
//!
//! Needs the `tagsim` binary (built by `cargo test --workspace` and by `scripts/test.sh`).

mod common;

use common::{bin, Server};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tagsim_stream_survives_a_server_kill_9_without_losing_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let options = ["--tags", "12", "--days", "1", "--seed", "5"];
    let sim = common::generate_sim_with(dir.path(), &options);
    let expected_readings = std::fs::read_to_string(sim.join("readings.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(expected_readings > 1000);

    let data = dir.path().join("data");
    let (ingest_port, http_port) = (free_port(), free_port());
    let (ingest, http) = (
        format!("127.0.0.1:{ingest_port}"),
        format!("127.0.0.1:{http_port}"),
    );
    let orders = sim.join("orders.json");
    let start_server = |orders: Option<&Path>| {
        // The port may take a moment to be free again after a kill.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s =
                std::panic::catch_unwind(|| Server::start_at(&data, orders, &ingest, &http, &[]));
            match s {
                Ok(server) => return server,
                Err(e) if Instant::now() > deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    let mut server = start_server(Some(&orders));

    // One simulated day in about four seconds, so the kill lands mid-stream.
    let connect = format!("127.0.0.1:{ingest_port}");
    let stream = common::spawn_tagsim_stream(&options, &connect, "20000");
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    std::thread::sleep(Duration::from_millis(700));
    let restarted = start_server(None);

    let output = stream.wait_with_output().unwrap();
    let summary = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "tagsim stream failed: {summary}");
    let line = summary
        .lines()
        .rev()
        .find(|l| l.contains("acknowledged of"))
        .unwrap_or_else(|| panic!("no summary: {summary}"));
    let counts: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_start_matches('(').parse().ok())
        .collect();
    assert!(
        counts.len() >= 3 && counts[0] == counts[2],
        "every generated batch acknowledged: {line}"
    );
    let count_of = |what: &str| -> u64 {
        line.split([',', ';'])
            .find(|part| part.trim().ends_with(what))
            .and_then(|part| part.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count_of("dropped") + count_of("failed connects") > 0,
        "the kill must land mid-stream: {line}"
    );
    drop(restarted);

    let inspect = Command::new(bin())
        .args(["inspect", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let r = &v["log"]["readings"];
    let stored: u64 = ["gps", "tac", "rf", "event"]
        .iter()
        .map(|k| r[k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        stored, expected_readings,
        "the log holds every reading exactly once ({line})"
    );
}
