//! Cluster mode (issue 15): two tagstream nodes on one JetStream stream. Each node accepts tags
//! and serves the API; every node materialises the same state from the stream, so both give the
//! same alerts, equal to `tagstream replay` of the same readings and of the stream itself; a
//! batch re-sent to the other node is stored once; a node killed with SIGKILL and restarted
//! catches up from the stream.

mod common;

use common::nats::{start_cluster, start_nats};
use common::{fixture, fixture_batches, Server, TagClient};
use std::path::Path;
use std::time::{Duration, Instant};

/// A node's config file: the log on the stream at `url` (one NATS server: one replica).
fn node_config(dir: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [\"{url}\"]\nreplicas = 1\npartitions = 16\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start_node(dir: &Path, name: &str, url: &str, orders: bool) -> Server {
    let config = node_config(dir, name, url);
    let config = config.to_str().unwrap();
    let orders_file = fixture("orders.json");
    let orders = orders.then_some(orders_file.as_path());
    Server::start(&dir.join(name), orders, &["--config", config])
}

/// Waits until JetStream answers and the stream is made, as a node would find it: a node
/// refuses to start without its log.
async fn wait_for_stream(dir: &Path, url: &str) {
    let probe: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(node_config(dir, "probe", url)).unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) =
        tagstream::cluster::jetstream::JetStreamLog::open(probe.jetstream().unwrap().clone()).await
    {
        assert!(Instant::now() < deadline, "no stream in 15 s: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `server` lists `want` (alerts export), or gives up after 20 s.
fn wait_for_export(server: &Server, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = server.settled_alerts();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_stream_serve_the_same_alerts_as_replay() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    // The first node imports the orders through the stream; the second finds them there.
    let a = start_node(dir.path(), "node-a", &nats.url, true);
    let mut b = start_node(dir.path(), "node-b", &nats.url, true);

    // T1 uploads to node A, T2 to node B, one batch at a time in the file's order.
    let mut clients: std::collections::HashMap<String, TagClient> = Default::default();
    for batch in fixture_batches() {
        if !clients.contains_key(&batch.tag) {
            let node = if batch.tag == "T1" { &a } else { &b };
            let client = TagClient::connect(&node.ingest_addr, &batch.tag).await;
            clients.insert(batch.tag.clone(), client);
        }
        let client = clients.get_mut(&batch.tag).unwrap();
        client.send_acked(batch.seq, batch.readings).await;
    }
    let replayed = common::replay_alerts(
        &fixture("orders.json"),
        &fixture("readings.jsonl"),
        &dir.path().join("replay"),
    );
    assert!(!replayed.is_empty());
    assert_eq!(wait_for_export(&a, &replayed), replayed, "node A");
    assert_eq!(wait_for_export(&b, &replayed), replayed, "node B");
    // The log is the stream: no node keeps one of its own, and the stream holds every batch
    // (after the orders the first node imported).
    for node in ["node-a", "node-b"] {
        assert!(
            !dir.path().join(node).join("log").exists(),
            "{node} has a local log"
        );
    }
    let stream = tagstream::cluster::jetstream::JetStreamLog::open(
        toml::from_str::<tagstream::config::ServerConfig>(
            &std::fs::read_to_string(node_config(dir.path(), "probe", &nats.url)).unwrap(),
        )
        .unwrap()
        .jetstream()
        .unwrap()
        .clone(),
    )
    .await
    .unwrap();
    let stored = stream.next_record().await.unwrap();
    let batches = fixture_batches().len() as u64;
    assert!(
        stored > batches,
        "{stored} records for {batches} batches and the orders"
    );

    // T1's first batch again, to the other node (a failover after a lost ack): acknowledged,
    // stored once.
    let first = fixture_batches()
        .into_iter()
        .find(|b| b.tag == "T1")
        .unwrap();
    let mut again = TagClient::connect(&b.ingest_addr, "T1").await;
    assert!(again.last_seq >= first.seq, "node B knows T1's position");
    again.send_acked(first.seq, first.readings).await;
    let metrics = b.get("/metrics").unwrap();
    let committed = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("tagstream_committed_batches_total"))
            .map(str::to_string)
    };
    assert_eq!(committed(&metrics), committed(&a.get("/metrics").unwrap()));
    assert_eq!(
        stream.next_record().await.unwrap(),
        stored,
        "the re-sent batch was stored"
    );

    // Node B dies hard and comes back: it reads on from the stream to the same state.
    b.kill9();
    drop(b);
    let b = start_node(dir.path(), "node-b", &nats.url, false);
    assert_eq!(
        wait_for_export(&b, &replayed),
        replayed,
        "node B after kill -9"
    );
}

/// Sends one batch as a tag does across failures: (re)connect, ask the node what it has stored,
/// send if it lacks the batch, and try again after an error, until `seq` is acknowledged.
async fn send_until_acked(addr: &str, batch: &tagstream::model::Batch) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "{} #{} not acknowledged in 30 s",
            batch.tag,
            batch.seq
        );
        let Ok(mut client) = TagClient::connect_in_epoch(addr, &batch.tag, 0).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if client.last_seq >= batch.seq {
            return;
        }
        client.send(batch.seq, batch.readings.clone()).await;
        match client.next_frame().await {
            Some(tagstream::wire::Frame::Ack { seq }) if seq == batch.seq => return,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_three_nats_servers_keeps_serving_when_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = start_cluster(dir.path(), 3);
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref().unwrap().url))
        .collect();
    let config_path = dir.path().join("node.toml");
    std::fs::write(
        &config_path,
        format!(
            "[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [{}]\nreplicas = 3\nretain_server_order = true\n",
            urls.join(", ")
        ),
    )
    .unwrap();
    let config: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let jetstream = config.jetstream().unwrap().clone();
    // The stream is made once the three servers have elected a leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match tagstream::cluster::jetstream::JetStreamLog::open(jetstream.clone()).await {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => panic!("no stream in 30 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let node = Server::start(
        &dir.path().join("node"),
        Some(&fixture("orders.json")),
        &["--config", config_path.to_str().unwrap()],
    );
    let batches = fixture_batches();
    let half = batches.len() / 2;
    for batch in &batches[..half] {
        send_until_acked(&node.ingest_addr, batch).await;
    }
    // The server the node is connected to (the first listed; it keeps the order) dies hard;
    // the node's client moves to another and two of three servers keep the quorum.
    drop(servers[0].take());
    for batch in &batches[half..] {
        send_until_acked(&node.ingest_addr, batch).await;
    }
    let replayed = common::replay_alerts(
        &fixture("orders.json"),
        &fixture("readings.jsonl"),
        &dir.path().join("replay"),
    );
    assert_eq!(wait_for_export(&node, &replayed), replayed);
    // Every acknowledged batch is in the stream exactly once. (Right after the kill the stream's
    // leader may be moving: asking is retried for a while.)
    use futures::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (end, reader) = loop {
        let asked = async {
            Ok::<_, String>((
                stream.next_record().await.map_err(|e| e.to_string())?,
                stream.read_from(0).await.map_err(|e| e.to_string())?,
            ))
        };
        match asked.await {
            Ok(answer) => break answer,
            Err(e) if Instant::now() > deadline => panic!("reading the stream: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut records = Box::pin(reader);
    let mut stored = Vec::new();
    while let Some(item) = records.next().await {
        let (record, entry) = item.unwrap();
        if let tagstream::model::LogEntry::Batch(b) = entry {
            stored.push((b.tag.clone(), b.seq));
        }
        if record + 1 >= end {
            break;
        }
    }
    let mut sent: Vec<(String, u64)> = batches.iter().map(|b| (b.tag.clone(), b.seq)).collect();
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);

    // The offline user command would write a local log no node reads: refused, saying why.
    let mut node = node;
    node.kill9();
    let out = std::process::Command::new(common::bin())
        .args([
            "users",
            "add",
            "--name",
            "late",
            "--role",
            "hub",
            "--data-dir",
        ])
        .arg(dir.path().join("node"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "users add succeeded: {}; files: {:?}",
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_dir(dir.path().join("node"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(stderr.contains("JetStream stream"), "{stderr}");
    assert!(!dir.path().join("node").join("log").exists());
}

/// A control record larger than one NATS message (1 MiB by default; crime batches can be tens of
/// MiB) goes into the stream in parts: the node that wrote it applies it live, and a node that
/// starts later reads it whole from the stream at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_a_nats_message_reaches_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    // The fixture's orders plus a person whose record is 1.5 MiB.
    let mut orders: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("orders.json")).unwrap()).unwrap();
    let address = "A".repeat(3 << 19);
    orders["people"]
        .as_array_mut()
        .expect("people")
        .push(serde_json::json!({"id": "P-big", "name": "Big Record", "address": address}));
    let orders_file = dir.path().join("orders-big.json");
    std::fs::write(&orders_file, orders.to_string()).unwrap();
    let start = |name: &str| {
        let config = node_config(dir.path(), name, &nats.url);
        Server::start(
            &dir.path().join(name),
            Some(&orders_file),
            &["--config", config.to_str().unwrap()],
        )
    };
    let address_of = |node: &Server| -> usize {
        let body = node.get("/v1/people/P-big").expect("GET the large person");
        let person: serde_json::Value = serde_json::from_str(&body).unwrap();
        person["person"]["address"].as_str().map_or(0, str::len)
    };

    let a = start("node-a");
    assert_eq!(address_of(&a), address.len(), "the writing node applied it");
    let b = start("node-b");
    assert_eq!(
        address_of(&b),
        address.len(),
        "the later node read it at start-up"
    );
    assert_eq!(a.settled_alerts(), b.settled_alerts());
}

/// `tagstream rebuild` on a cluster node (stopped) builds its stores again from the stream: the
/// same alerts, people and change history as before, the old stores set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_rebuilds_its_stores_from_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    let mut node = start_node(dir.path(), "node-a", &nats.url, true);
    for batch in fixture_batches() {
        send_until_acked(&node.ingest_addr, &batch).await;
    }
    let alerts = node.settled_alerts();
    assert!(!alerts.is_empty());
    let person = node.get("/v1/people/P1").expect("person");
    let history = node.get("/v1/people/P1/history").expect("history");
    node.terminate();

    let config = node_config(dir.path(), "node-a", &nats.url);
    let report = common::rebuild_with(
        &dir.path().join("node-a"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(Path::new(report["old_stores"].as_str().unwrap()).is_dir());

    let node = start_node(dir.path(), "node-a", &nats.url, false);
    assert_eq!(
        wait_for_export(&node, &alerts),
        alerts,
        "rebuilt alerts differ"
    );
    assert_eq!(node.get("/v1/people/P1").expect("person"), person);
    assert_eq!(node.get("/v1/people/P1/history").expect("history"), history);
}

/// A tag's credentials are log records: revoked through one node, the tag is refused by the
/// other (hello and live session); rotated through that other, the new secret works on the
/// first and the old one nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_revoked_through_one_node_is_refused_by_every_node() {
    use tagstream::wire::{tag_secret_at, ErrorCode, Frame};
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    let a = start_node(dir.path(), "node-a", &nats.url, true);
    let b = start_node(dir.path(), "node-b", &nats.url, true);
    let key = common::TAG_KEY.as_bytes();
    let old = tag_secret_at(key, "T1", 0);
    let mut live_on_b = TagClient::connect_with_secret(&b.ingest_addr, "T1", &old)
        .await
        .expect("T1 accepted by node B");

    let (status, body) = common::call(
        &a,
        "POST",
        "/v1/tags/T1/revoke",
        Some(common::ADMIN_TOKEN),
        Some("tag reported lost"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // Node B refuses it once it has applied the record (it follows the stream).
    let refused_code = |answer: Result<TagClient, Frame>| match answer {
        Ok(_) => None,
        Err(Frame::Error { code, .. }) => Some(code),
        Err(other) => panic!("{other:?}"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = TagClient::connect_with_secret(&b.ingest_addr, "T1", &old).await;
        match refused_code(answer) {
            Some(code) => {
                assert_eq!(code, ErrorCode::TagRevoked);
                break;
            }
            None => assert!(
                Instant::now() < deadline,
                "node B still accepts T1 after 5 s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The session B accepted before the revocation ends at its next batch.
    let batch = fixture_batches().into_iter().next().expect("a batch");
    live_on_b.send(1, batch.readings).await;
    assert!(
        matches!(
            live_on_b.next_frame().await,
            Some(Frame::Error {
                code: ErrorCode::TagRevoked,
                ..
            })
        ),
        "the live session on node B is refused"
    );

    let (status, body) = common::call(
        &b,
        "POST",
        "/v1/tags/T1/credentials/rotate",
        Some(common::ADMIN_TOKEN),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let rotated: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rotated["generation"], 1, "{body}");
    let new = rotated["secret"].as_str().expect("secret").to_string();
    assert_eq!(new, tag_secret_at(key, "T1", 1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TagClient::connect_with_secret(&a.ingest_addr, "T1", &new)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "node A refuses the new secret after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in [&a, &b] {
        let answer = TagClient::connect_with_secret(&node.ingest_addr, "T1", &old).await;
        assert_eq!(refused_code(answer), Some(ErrorCode::AuthFailed));
    }
}

/// `tagstream inspect --config F` summarises the stream a node runs on: the records and
/// readings it holds, the people its control records leave, and a damaged message (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_the_stream_and_reports_a_damaged_message() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    let node = start_node(dir.path(), "node-a", &nats.url, true);
    let batches = fixture_batches();
    for batch in &batches {
        send_until_acked(&node.ingest_addr, batch).await;
    }
    let readings: usize = batches.iter().map(|b| b.readings.len()).sum();
    let config = node_config(dir.path(), "inspect", &nats.url);
    let inspect = || {
        std::process::Command::new(common::bin())
            .args(["inspect", "--config"])
            .arg(&config)
            .output()
            .expect("run tagstream inspect")
    };
    let out = inspect();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["stream"]["replicas"], 1, "{summary}");
    let messages = summary["stream"]["messages"].as_u64().unwrap();
    let records = summary["log"]["records"].as_u64().unwrap();
    assert_eq!(records, messages, "no parts here: {summary}");
    let batch_records = records - summary["log"]["control_records"].as_u64().unwrap();
    assert_eq!(batch_records, batches.len() as u64, "{summary}");
    let counted = &summary["log"]["readings"];
    let total: u64 = ["gps", "tac", "rf", "event"]
        .iter()
        .map(|k| counted[k].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, readings as u64, "{summary}");
    assert!(summary["people"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["damaged"], serde_json::json!([]));

    // A message that is not a frame (written past tagstream): reported with its sequence.
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();
    let ack = async_nats::jetstream::new(client)
        .publish("ts.ctl", "not a frame".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let out = inspect();
    assert!(!out.status.success(), "damage must fail the command");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["damaged"][0]["sequence"], ack.sequence, "{summary}");
    assert_eq!(summary["damaged"][0]["subject"], "ts.ctl", "{summary}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged message"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A crime batch uploaded through one node is matched against the trails by every node when it
/// reads the record: the other node's hits are the same at once, not after its next restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crime_batch_uploaded_through_one_node_gives_the_same_hits_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    wait_for_stream(dir.path(), &nats.url).await;
    let a = start_node(dir.path(), "node-a", &nats.url, true);
    let b = start_node(dir.path(), "node-b", &nats.url, true);
    for batch in fixture_batches() {
        send_until_acked(&a.ingest_addr, &batch).await;
    }
    let (status, body) = common::call(
        &a,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(serde_json::json!({"name": "hana", "role": "hub"})),
    );
    assert_eq!(status, 201, "{body}");
    let hub: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hub = hub["token"].as_str().expect("a token").to_string();
    // A theft where T1 was, while it was there (its first fix: 2026-03-28 00:00Z).
    let csv = "AvonSomerset,TFP,Theft from the person,AVS20260328,AVS/26/000101,\
               20260327235500,20260328000500,,,51.4545,-2.5879,WGS84,\"bag snatched\"\n";
    let upload = ureq::post(&format!("http://{}/v1/crimes/batches", a.http_addr))
        .set("Authorization", &format!("Bearer {hub}"))
        .set("Content-Type", "text/csv")
        .query("filename", "AVS20260328.csv")
        .send_string(csv);
    let report = match upload {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!("upload: {e}"),
    };
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["matching"]["hits"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    let hits = |node: &Server| {
        common::call(
            node,
            "GET",
            "/v1/hits/export",
            Some(&hub),
            Some("crime hit review"),
            None,
        )
    };
    let (status, on_a) = hits(&a);
    assert_eq!(status, 200, "{on_a}");
    assert!(!on_a.trim().is_empty(), "node A has the hit: {report}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, on_b) = hits(&b);
        if on_b == on_a {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node B's hits differ after 5 s:\nA: {on_a}\nB: {on_b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
