//! Cluster mode (issue 15): two tagstream nodes on one JetStream stream. Each node accepts tags
//! and serves the API; every node materialises the same state from the stream, so both give the
//! same alerts, equal to `tagstream replay` of the same readings and of the stream itself; a
//! batch re-sent to the other node is stored once; a node killed with SIGKILL and restarted
//! catches up from the stream.

mod common;

use common::nats::start_nats;
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
