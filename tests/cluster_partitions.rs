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

/// Asserts that `node` started from a checkpoint (not the stream's first record) and serves
/// `alerts`.
fn continued_from_a_checkpoint(node: &Server, alerts: &str, why: &str) {
    assert!(
        metric(node, "tagstream_startup_checkpoint_record") > 0.0,
        "{why}"
    );
    assert_eq!(wait_for(node, "/v1/alerts/export", alerts), alerts, "{why}");
}

/// Asserts that every node serves `alerts` and `hits` as its exports (waiting up to 20 s each).
fn serve_the_same(nodes: &[(&str, &Server)], alerts: &str, hits: &str) {
    for (name, node) in nodes {
        let got = wait_for(node, "/v1/alerts/export", alerts);
        assert_eq!(got, alerts, "node {name} alerts");
        assert_eq!(
            wait_for(node, "/v1/hits/export", hits),
            hits,
            "node {name} hits"
        );
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

/// The simulated population both tests upload (40 tags, 3 days): its directory, its batches in
/// order and its crime batch files.
fn population(dir: &Path) -> (PathBuf, Vec<tagstream::model::Batch>, Vec<PathBuf>) {
    let sim = common::generate_sim(dir, 40, 3, 11);
    let batches = common::read_batches_jsonl(&sim.join("readings.jsonl"));
    let mut crimes: Vec<PathBuf> = std::fs::read_dir(sim.join("crimes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crimes.sort();
    (sim, batches, crimes)
}

/// A one-server cluster of 16 partitions with a clock each.
async fn sixteen_clocks(
    dir: &Path,
) -> (
    common::nats::Nats,
    PathBuf,
    tagstream::cluster::jetstream::JetStreamLog,
) {
    common::nats::one_server_cluster(dir, "[pipeline]\nclock_partitions = 16\n\n", "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processing_nodes_owning_half_the_partitions_each_serve_what_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, batches, crimes) = population(dir.path());
    // One clock per partition: the rules of a partition depend on it alone.
    let (_nats, config, _stream) = sixteen_clocks(dir.path()).await;
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
    serve_the_same(&[("A", &a), ("B", &b)], &alerts, &hits);
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
    // Hits too: each node matched its own partitions' activations and published their hits;
    // each stored the other's from the stream.
    let hits_of = |node: &Server| {
        (
            metric(node, "tagstream_hits_published_total"),
            metric(node, "tagstream_hits_materialised_total"),
        )
    };
    let ((a_published, a_stored), (b_published, b_stored)) = (hits_of(&a), hits_of(&b));
    assert!(
        a_published > 0.0 && b_published > 0.0 && a_stored > 0.0 && b_stored > 0.0,
        "hits published by A {a_published}, B {b_published}; stored from the stream by A \
         {a_stored}, B {b_stored}"
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
    assert_eq!(
        metric(&b, "tagstream_hits_published_total"),
        0.0,
        "the stream held B's hits as they stand: none published again"
    );

    // A node owning no partitions runs no rules and matches no hits: it serves what the
    // processing nodes published.
    let c_cfg = owning(&config, "c", "none");
    let c = start("node-c", &c_cfg, None);
    assert_eq!(wait_for(&c, "/v1/alerts/export", &alerts), alerts, "node C");
    assert_eq!(wait_for(&c, "/v1/hits/export", &hits), hits, "node C");
    assert_eq!(metric(&c, "tagstream_outputs_published_total"), 0.0);
    assert_eq!(metric(&c, "tagstream_hits_published_total"), 0.0);
    // The hub confirms a hit through C: the decision reaches every node through the log, whoever
    // found the hit.
    let id = serde_json::from_str::<serde_json::Value>(hits.lines().next().unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = serde_json::json!({"decision": "confirm", "reason": "seen on CCTV"});
    let path = format!("/v1/hits/{id}/review");
    let (status, answer) = common::call(
        &c,
        "POST",
        &path,
        Some(common::ADMIN_TOKEN),
        None,
        Some(body),
    );
    assert_eq!(status, 200, "{answer}");
    for (name, node) in [("A", &a), ("B", &b), ("C", &c)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, hit) = common::call(
                node,
                "GET",
                &format!("/v1/hits/{id}"),
                Some(common::ADMIN_TOKEN),
                Some("test"),
                None,
            );
            if hit.contains("\"confirmed\"") {
                break;
            }
            assert!(Instant::now() < deadline, "node {name}: {hit}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drop(c);

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

/// A processing node's restarts continue from its checkpoint, and a processing node joining on
/// an empty data directory continues from a full node's snapshot (its own partitions taken
/// from the whole pipeline's state): both number their outputs on from where the checkpoint
/// counted, so the outputs they publish after it reach every book, and every node serves
/// what replay gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_nodes_continue_from_checkpoints_and_number_their_outputs_on() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, batches, crimes) = population(dir.path());
    let thirds: Vec<&[tagstream::model::Batch]> = batches.chunks(batches.len() / 3 + 1).collect();
    let (_nats, config, _stream) = sixteen_clocks(dir.path()).await;
    let (a_cfg, b_cfg) = (owning(&config, "a", "0-7"), owning(&config, "b", "8-15"));
    let start = |name: &str, cfg: &Path, orders: Option<&Path>| {
        Server::start(
            &dir.path().join(name),
            orders,
            &["--config", cfg.to_str().unwrap()],
        )
    };
    let mut a = start("node-a", &a_cfg, Some(&sim.join("orders.json")));
    let mut b = start("node-b", &b_cfg, None);
    let send = |part: &'static [tagstream::model::Batch], to: String| async move {
        send_in_order(part, |_| to.clone()).await;
    };
    // (The batches outlive the test's tasks.)
    let thirds: Vec<&'static [tagstream::model::Batch]> = thirds
        .into_iter()
        .map(|t| &*Box::leak(t.to_vec().into_boxed_slice()))
        .collect();

    send(thirds[0], a.ingest_addr.clone()).await;
    import_crimes(&a, &crimes[0]);
    let first = a.settled_alerts();
    assert_eq!(wait_for(&b, "/v1/alerts/export", &first), first);
    // B restarts twice: the first reads on from its first start's checkpoint and takes one at
    // the stream's end; the second continues from that one, reading nothing.
    for _ in 0..2 {
        b.kill9();
        drop(b);
        b = start("node-b", &b_cfg, None);
        assert_eq!(wait_for(&b, "/v1/alerts/export", &first), first);
    }
    assert!(metric(&b, "tagstream_startup_checkpoint_record") > 0.0);
    assert_eq!(metric(&b, "tagstream_startup_records_replayed"), 0.0);
    assert_eq!(metric(&b, "tagstream_outputs_published_total"), 0.0);

    // The second third: B's new outputs are numbered on from its checkpoint's count.
    send(thirds[1], b.ingest_addr.clone()).await;
    import_crimes(&b, &crimes[1]);
    assert!(metric(&b, "tagstream_outputs_published_total") > 0.0);

    // A full node starts (and uploads its snapshot); A dies and E takes its partitions on an
    // empty data directory, from that snapshot.
    let full = start("node-d", &config, None);
    let second = full.settled_alerts();
    assert_eq!(wait_for(&b, "/v1/alerts/export", &second), second);
    a.kill9();
    drop(a);
    let e = start("node-e", &owning(&config, "e", "0-7"), None);
    continued_from_a_checkpoint(&e, &second, "E joined from the full node's snapshot");
    assert_eq!(metric(&e, "tagstream_outputs_published_total"), 0.0);
    // B's share grows to 4-15 (4-7 shared with E for a while, as in a handover): its own
    // checkpoint (8-15) does not cover it, so it continues from the cluster's snapshot. (An
    // orderly stop, as a share change makes: the trail store is then as far as the stream.)
    let (status, _) = b.terminate();
    assert!(status.success());
    drop(b);
    let b = start("node-b", &owning(&config, "b2", "4-15"), None);
    continued_from_a_checkpoint(&b, &second, "B continued from the cluster's snapshot");

    send(thirds[2], e.ingest_addr.clone()).await;
    assert!(metric(&e, "tagstream_outputs_published_total") > 0.0);
    let (alerts, hits) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    serve_the_same(&[("B", &b), ("D", &full), ("E", &e)], &alerts, &hits);
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

/// A gauge of `server`'s `/metrics`, `None` while it does not answer (restarting).
fn gauge(server: &Server, name: &str) -> Option<f64> {
    let text = server.get("/metrics").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (60 s at most) until `nodes` report `members` processing nodes and own every one of
/// the 16 partitions between them, each some.
fn wait_for_shares(nodes: &[&Server], members: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owned: Vec<Option<f64>> = nodes
            .iter()
            .map(|n| gauge(n, "tagstream_owned_partitions"))
            .collect();
        let seen: Vec<Option<f64>> = nodes
            .iter()
            .map(|n| gauge(n, "tagstream_processing_members"))
            .collect();
        let settled = seen.iter().all(|m| *m == Some(members))
            && owned.iter().all(|o| o.is_some_and(|o| o > 0.0))
            && owned.iter().flatten().sum::<f64>() == 16.0;
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shares not settled in 60 s: owned {owned:?}, members seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `own_partitions = "auto"`: three nodes share the partitions by membership; when one dies,
/// the two others take its partitions over (each restarts in place for its new share) and the
/// alerts of every partition keep coming: both serve what replay gives for the whole stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_processing_node_dies_the_others_take_its_partitions_over() {
    let dir = tempfile::tempdir().unwrap();
    let sim = common::generate_sim(dir.path(), 40, 3, 23);
    let batches = common::read_batches_jsonl(&sim.join("readings.jsonl"));
    let (_nats, config, _stream) = common::nats::one_server_cluster(
        dir.path(),
        "[pipeline]\nclock_partitions = 16\n\n",
        "own_partitions = \"auto\"\nlease_ttl_ms = 1500\n",
    )
    .await;
    let base = std::fs::read_to_string(&config).unwrap();
    let start = |name: &str, orders: Option<&Path>| {
        let cfg = dir.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, format!("{base}node_id = \"{name}\"\n")).unwrap();
        // Fixed ports: a restart in place listens where the node did.
        let port = || format!("127.0.0.1:{}", common::nats::free_port());
        Server::start_at(
            &dir.path().join(name),
            orders,
            &port(),
            &port(),
            &["--config", cfg.to_str().unwrap()],
        )
    };
    let a = start("a", Some(&sim.join("orders.json")));
    let b = start("b", None);
    let mut c = start("c", None);
    wait_for_shares(&[&a, &b, &c], 3.0);

    let half = batches.len() / 2;
    let addrs = [
        a.ingest_addr.clone(),
        b.ingest_addr.clone(),
        c.ingest_addr.clone(),
    ];
    let route = |n: usize| {
        let addrs = addrs[..n].to_vec();
        move |tag: &str| addrs[tag.bytes().map(usize::from).sum::<usize>() % n].clone()
    };
    send_in_order(&batches[..half], route(3)).await;

    // Node C dies: A and B take its partitions (each restarts for its new share).
    let owned = |n: &Server| gauge(n, "tagstream_owned_partitions").unwrap_or(0.0);
    let before = (owned(&a), owned(&b));
    assert!(before.0 + before.1 < 16.0, "C owned some: {before:?}");
    let died = Instant::now();
    c.kill9();
    wait_for_shares(&[&a, &b], 2.0);
    let after = (owned(&a), owned(&b));
    assert!(
        after.0 >= before.0 && after.1 >= before.1,
        "{before:?} -> {after:?}"
    );
    eprintln!(
        "C's partitions taken over {:.1} s after its death: A {} -> {}, B {} -> {}",
        died.elapsed().as_secs_f64(),
        before.0,
        after.0,
        before.1,
        after.1
    );
    send_in_order(&batches[half..], route(2)).await;

    let (alerts, _) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    assert!(alerts.lines().count() >= 10, "{alerts}");
    for (name, node) in [("A", &a), ("B", &b)] {
        assert_eq!(
            wait_for(node, "/v1/alerts/export", &alerts),
            alerts,
            "node {name}: every partition's alerts, C's included"
        );
    }
}
