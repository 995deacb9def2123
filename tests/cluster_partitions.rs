//! Partitioned processing (issue 15 item 4): two nodes on one stream, each running the rules of
//! half the partitions (`[log.jetstream] own_partitions`, a clock per partition) and publishing
//! their outputs to the outputs stream, which both materialise. Both serve every partition's
//! alerts and hits, byte-identical to each other and to `tagstream replay --stream`; each
//! published only its own partitions' outputs; a processing node killed and restarted
//! re-derives its outputs and publishes none twice.
//!
//! Needs the `tagsim` binary (built by `cargo test --workspace` and by `scripts/test.sh`).

mod common;

use common::{bin, import_crimes, metric, send_in_order, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until `server`'s `path` answers `want` (20 s at most); returns what it answered.
fn wait_for(server: &Server, path: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = server.get(path).unwrap();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A node config owning `partitions` (of 16), beside the stream's config `base`.
fn owning(base: &Path, name: &str, partitions: &str) -> PathBuf {
    let text = std::fs::read_to_string(base).unwrap();
    let path = base.with_file_name(format!("{name}.toml"));
    // The base file ends in its [log.jetstream] table.
    std::fs::write(&path, format!("{text}own_partitions = \"{partitions}\"\n")).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processing_nodes_owning_half_the_partitions_each_serve_what_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let sim = common::generate_sim(dir.path(), 40, 3, 11);
    let batches = common::read_batches_jsonl(&sim.join("readings.jsonl"));
    let mut crimes: Vec<PathBuf> = std::fs::read_dir(sim.join("crimes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crimes.sort();
    // One clock per partition: the rules of a partition depend on it alone.
    let (_nats, config, _stream) =
        common::nats::one_server_cluster(dir.path(), "[pipeline]\nclock_partitions = 16\n\n", "")
            .await;
    let (a_cfg, b_cfg) = (owning(&config, "a", "0-7"), owning(&config, "b", "8-15"));
    let orders = sim.join("orders.json");
    let start = |name: &str, cfg: &Path, orders: Option<&Path>| {
        Server::start(
            &dir.path().join(name),
            orders,
            &["--config", cfg.to_str().unwrap()],
        )
    };
    let a = start("node-a", &a_cfg, Some(&orders));
    let mut b = start("node-b", &b_cfg, None);

    // Tags upload to either node, whatever their partition (any node accepts any tag).
    let (to_a, to_b) = (a.ingest_addr.clone(), b.ingest_addr.clone());
    send_in_order(&batches, |tag| {
        match tag.bytes().map(u32::from).sum::<u32>() % 2 {
            0 => to_a.clone(),
            _ => to_b.clone(),
        }
    })
    .await;
    import_crimes(&a, &crimes[0]);
    import_crimes(&b, &crimes[1]);

    let (alerts, hits) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    assert!(alerts.lines().count() >= 10, "{alerts}");
    assert!(!hits.is_empty());
    for (name, node) in [("A", &a), ("B", &b)] {
        assert_eq!(
            wait_for(node, "/v1/alerts/export", &alerts),
            alerts,
            "node {name} alerts"
        );
        assert_eq!(
            wait_for(node, "/v1/hits/export", &hits),
            hits,
            "node {name} hits"
        );
    }
    // Each node ran the rules of its own partitions: both published, together every output
    // the stream holds, each once.
    let (published_a, published_b) = (
        metric(&a, "tagstream_outputs_published_total"),
        metric(&b, "tagstream_outputs_published_total"),
    );
    assert!(
        published_a > 0.0 && published_b > 0.0,
        "{published_a} {published_b}"
    );
    let applied = metric(&a, "tagstream_outputs_applied_total");
    assert_eq!(applied, metric(&b, "tagstream_outputs_applied_total"));
    assert_eq!(
        published_a + published_b,
        applied,
        "each output published once"
    );

    // Node B dies hard and comes back: it re-derives its partitions' outputs from the stream,
    // finds them all published, and serves the same.
    b.kill9();
    drop(b);
    let b = start("node-b", &b_cfg, None);
    assert_eq!(
        wait_for(&b, "/v1/alerts/export", &alerts),
        alerts,
        "node B after kill -9"
    );
    assert_eq!(wait_for(&b, "/v1/hits/export", &hits), hits);
    assert_eq!(metric(&b, "tagstream_outputs_published_total"), 0.0);

    // A node owning partitions needs a clock per partition: refused with the reason.
    let wrong = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(&a_cfg)
        .unwrap()
        .replace("clock_partitions = 16", "clock_partitions = 1");
    std::fs::write(&wrong, text).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("node-c"))
        .args(["--config", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("own_partitions") && stderr.contains("clock per partition"),
        "{stderr}"
    );
}

/// Every output the outputs stream holds, per activation: (alerts and sober days, purges).
async fn outputs_held(config: &Path) -> std::collections::BTreeMap<String, (usize, usize)> {
    use futures::StreamExt;
    use tagstream::topology::outputs_link::{PublishedOutput, RuleOutput};
    let stream = common::nats::open_stream_when_ready(config).await;
    let out = tagstream::cluster::outputs::OutputsStream::open(stream.context(), stream.config())
        .await
        .unwrap();
    let end = out.next_sequence().await.unwrap();
    let mut held = std::collections::BTreeMap::new();
    let mut read = Box::pin(out.read(1, Some(end)).await.unwrap());
    while let Some(item) = read.next().await {
        let (_, payload) = item.unwrap();
        let output = PublishedOutput::from_payload(&payload).unwrap();
        let entry: &mut (usize, usize) = held.entry(output.activation.clone()).or_default();
        match output.output {
            RuleOutput::Purged => entry.1 += 1,
            _ => entry.0 += 1,
        }
    }
    held
}

/// A purge on a cluster of processing nodes removes the activation's outputs from the outputs
/// stream and from every node's alert book, and the node owning its partition does not publish
/// them again when it re-derives its outputs after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_removes_the_activations_outputs_from_the_outputs_stream() {
    use serde_json::json;
    use tagstream::model::time::{format_time, parse_time};
    const DAY_MS: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let retention = "[retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n\n[pipeline]\nclock_partitions = 16\n\n";
    let (_nats, config, _stream) =
        common::nats::one_server_cluster(dir.path(), retention, "lease_ttl_ms = 1500\n").await;
    // T1 (partition 7: node A's) is worn by P1 (A1, ended in March: purgeable), then by P3
    // (A3, ends 20 days from now); T2 by P2 (A2).
    assert_eq!(tagstream::model::tag_partition::partition_of("T1", 16), 7);
    let wall_ms = tagstream::retention::purge::wall_clock_ms();
    let orders = dir.path().join("orders.json");
    let (from, handed_on) = ("2026-03-02T00:00:00Z", "2026-03-05T00:00:00Z");
    let until = format_time(wall_ms + 20 * DAY_MS);
    std::fs::write(
        &orders,
        json!({
            "people": [{"id": "P1"}, {"id": "P2"}, {"id": "P3"}],
            "activations": [
                {"id": "A1", "person": "P1", "tag": "T1", "from": from, "to": handed_on},
                {"id": "A3", "person": "P3", "tag": "T1", "from": handed_on, "to": until},
                {"id": "A2", "person": "P2", "tag": "T2", "from": from, "to": until}],
            "orders": []
        })
        .to_string(),
    )
    .unwrap();
    let (a_cfg, b_cfg) = (owning(&config, "a", "0-7"), owning(&config, "b", "8-15"));
    let start = |name: &str, cfg: &Path, orders: Option<&Path>| {
        Server::start(
            &dir.path().join(name),
            orders,
            &["--config", cfg.to_str().unwrap()],
        )
    };
    let mut a = start("node-a", &a_cfg, Some(&orders));
    let b = start("node-b", &b_cfg, None);
    let handed_on_ms = parse_time(handed_on).unwrap();
    let mut t1 = common::monitored_days(parse_time(from).unwrap(), 3, 514_500_000);
    t1.extend(common::monitored_days(handed_on_ms, 3, 514_600_000));
    let t2 = common::monitored_days(parse_time(from).unwrap(), 6, 514_700_000);
    for (tag, readings, node) in [("T1", &t1, &b), ("T2", &t2, &a)] {
        let mut client = common::TagClient::connect(&node.ingest_addr, tag).await;
        for (i, chunk) in readings.chunks(20).enumerate() {
            client.send_acked(i as u64 + 1, chunk.to_vec()).await;
        }
    }
    let before = a.settled_alerts();
    for id in ["\"A1\"", "\"A2\"", "\"A3\""] {
        assert!(before.contains(id), "{id} in {before}");
    }
    assert_eq!(wait_for(&b, "/v1/alerts/export", &before), before);
    let held = outputs_held(&config).await;
    assert!(held["A1"].0 > 0, "{held:?}");

    let holder = loop {
        let holds = |n: &Server| {
            n.get("/metrics")
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == "tagstream_lease_retention_held 1")
        };
        match (holds(&a), holds(&b)) {
            (true, _) => break &a,
            (_, true) => break &b,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let now = format_time(wall_ms + 40 * DAY_MS);
    let (status, report) = common::call(
        holder,
        "POST",
        &format!("/v1/admin/retention/run?now={now}"),
        Some(common::ADMIN_TOKEN),
        Some("partitioned purge test"),
        None,
    );
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("\"A1\""), "{report}");

    // Every node's book drops A1; A2 and A3 stay.
    let after: String = before
        .lines()
        .filter(|l| !l.contains("\"A1\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(after.contains("\"A2\"") && after.contains("\"A3\""));
    for node in [&a, &b] {
        assert_eq!(wait_for(node, "/v1/alerts/export", &after), after);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let held = outputs_held(&config).await;
        if held.get("A1").is_some_and(|h| h.0 == 0) || Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(held["A1"].0, 0, "A1's outputs left in the stream: {held:?}");
    assert!(
        held["A1"].1 >= 1,
        "the purge itself is there for late readers"
    );
    assert!(held["A2"].0 > 0 && held["A3"].0 > 0);

    // Node A owns T1's partition: restarted, it re-derives from the (compacted) stream and
    // publishes nothing of A1 again.
    a.kill9();
    drop(a);
    let a = start("node-a", &a_cfg, None);
    assert_eq!(wait_for(&a, "/v1/alerts/export", &after), after);
    assert_eq!(outputs_held(&config).await["A1"].0, 0);
}
