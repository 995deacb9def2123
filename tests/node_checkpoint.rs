//! Node checkpoints (issue 15, item 2): a server writes a checkpoint of its start-up state and
//! the next start restores it and replays only the log after it. The views served after such
//! a start — alert and hit exports, sober days, the TAC chart, each person's change history,
//! the committed counters — are byte-identical to those of a server that replayed the whole
//! log (checkpoints off) and to `tagstream replay`; a damaged checkpoint is set aside and the
//! whole log replayed; a purge removes the checkpoint.
//!
//! Needs the `tagsim` binary (built by `cargo test --workspace` and by `scripts/test.sh`).

mod common;

use common::{Server, ADMIN_TOKEN};
use std::path::{Path, PathBuf};
use std::process::Command;
use tagstream::model::Batch;

/// A small simulated population (curfew, zone and alcohol wearers, crime batches).
fn generate(dir: &Path) -> PathBuf {
    common::generate_sim(dir, 30, 3, 7)
}

fn sim_batches(sim: &Path) -> Vec<Batch> {
    common::read_batches_jsonl(&sim.join("readings.jsonl"))
}

fn no_checkpoints(dir: &Path) -> PathBuf {
    let path = dir.join("no-checkpoints.toml");
    std::fs::write(&path, "[snapshots]\nenabled = false\n").unwrap();
    path
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `tagstream replay` of a (stopped) data directory: (alerts, hits).
fn replay(data: &Path, out: &Path) -> (String, String) {
    let alerts = common::replay_into(&[std::ffi::OsStr::new("--readings"), data.as_os_str()], out);
    (
        alerts,
        std::fs::read_to_string(out.join("hits.jsonl")).unwrap(),
    )
}

/// A restarted node continues from its checkpoint (reading only the log after it) and serves
/// what a node that replayed the whole log serves, and what replay computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_the_checkpoint_serves_what_a_full_replay_serves() {
    let dir = tempfile::tempdir().unwrap();
    let sim = generate(dir.path());
    let batches = sim_batches(&sim);
    let crimes = common::crime_files(&sim);
    let third = batches.len() / 3;
    let data = dir.path().join("data");

    // First run: orders imported, a third of the readings and a crime batch.
    let mut s1 = Server::start(&data, Some(&sim.join("orders.json")), &[]);
    common::send_to(&s1, &batches[..third]).await;
    common::import_crimes(&s1, &crimes[0]);
    s1.terminate();
    // Second run: its start writes the checkpoint over the first run's records; then more.
    let mut s2 = Server::start(&data, None, &[]);
    assert!(data.join("node.checkpoint").exists());
    common::send_to(&s2, &batches[third..2 * third]).await;
    common::import_crimes(&s2, &crimes[1]);
    s2.terminate();
    let full = dir.path().join("full");
    copy_dir(&data, &full);

    // Third run: from the checkpoint, only the second run's records replayed.
    let s3 = Server::start(&data, None, &[]);
    let at = common::metric(&s3, "tagstream_startup_checkpoint_record");
    let replayed = common::metric(&s3, "tagstream_startup_records_replayed");
    assert!(at > 0.0, "the start restored the checkpoint (record {at})");
    let restored = common::node_views(&s3, &sim);

    // The same log, checkpoints off: the whole log replayed.
    let mut whole = Server::start(
        &full,
        None,
        &["--config", no_checkpoints(dir.path()).to_str().unwrap()],
    );
    assert_eq!(
        common::metric(&whole, "tagstream_startup_checkpoint_record"),
        -1.0,
        "checkpoints off"
    );
    let total = common::metric(&whole, "tagstream_startup_records_replayed");
    assert_eq!(
        at + replayed,
        total,
        "the restored start read only the records after the checkpoint ({replayed} of {total})"
    );
    let replayed_all = common::node_views(&whole, &sim);
    let lines = |key: &str| restored[key].trim_start_matches("200 ").lines().count();
    assert!(
        lines("/v1/alerts/export") >= 5,
        "the simulation raised alerts"
    );
    assert!(lines("/v1/hits/export") >= 1, "the crime batches gave hits");
    assert_eq!(
        common::differing(&restored, &replayed_all),
        Vec::<String>::new(),
        "views after a start from the checkpoint differ from a full replay's"
    );
    whole.terminate();
    let (alerts, hits) = replay(&full, &dir.path().join("replay-full"));
    assert_eq!(restored["/v1/alerts/export"], format!("200 {alerts}"));
    assert_eq!(restored["/v1/hits/export"], format!("200 {hits}"));

    // Live on from the restored state, then a restart from the checkpoint the third run wrote.
    common::send_to(&s3, &batches[2 * third..]).await;
    let live = s3.settled_alerts();
    let mut s3 = s3;
    s3.terminate();
    let mut s4 = Server::start(&data, None, &[]);
    assert!(
        common::metric(&s4, "tagstream_startup_checkpoint_record") >= total,
        "the fourth start restored the checkpoint the third wrote"
    );
    let fourth = common::node_views(&s4, &sim);
    assert_eq!(fourth["/v1/alerts/export"], format!("200 {live}"));
    s4.terminate();
    let (alerts, hits) = replay(&data, &dir.path().join("replay-end"));
    assert_eq!(fourth["/v1/alerts/export"], format!("200 {alerts}"));
    assert_eq!(fourth["/v1/hits/export"], format!("200 {hits}"));

    // A damaged checkpoint is set aside and the whole log replayed, to the same views.
    let path = data.join("node.checkpoint");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let s5 = Server::start(&data, None, &[]);
    assert_eq!(
        common::metric(&s5, "tagstream_startup_checkpoint_record"),
        -1.0
    );
    assert!(data.join("node.checkpoint.rejected").exists());
    assert_eq!(
        common::differing(&common::node_views(&s5, &sim), &fourth),
        Vec::<String>::new(),
        "views after a fallback to the full replay"
    );
}

/// Whether `needle` occurs in `haystack`.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A purge leaves no checkpoint holding what it removed: the one taken before it is deleted,
/// the next start replays the (purged) log and writes one without the purged person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_removes_the_checkpoint_and_the_next_one_holds_nothing_purged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tagstream.toml");
    std::fs::write(
        &config,
        "[retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n",
    )
    .unwrap();
    let cfg = ["--config", config.to_str().unwrap()];
    let (orders, now) = common::purge_orders(dir.path());
    let mut s1 = Server::start(&data, Some(&orders), &cfg);
    common::send_three_days(&s1).await;
    s1.terminate();

    // The start writes a checkpoint over the records: P1 is in it.
    let s2 = Server::start(&data, None, &cfg);
    let path = data.join("node.checkpoint");
    let before = std::fs::read(&path).unwrap();
    assert!(holds(&before, "Long Gone") && holds(&before, "Still Here"));

    let (status, body) = common::call(
        &s2,
        "POST",
        &format!("/v1/admin/retention/run?now={now}"),
        Some(ADMIN_TOKEN),
        Some("checkpoint test"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        report["activations"],
        serde_json::json!(["A1"]),
        "{report:#}"
    );
    assert!(!path.exists(), "the purge removed the checkpoint");
    let mut s2 = s2;
    s2.terminate();

    // The pre-purge checkpoint put back (a restored backup): the log before it was compacted
    // since, so it is not used, and not kept. The start replays the purged log and writes a
    // checkpoint without P1.
    std::fs::write(&path, &before).unwrap();
    let s3 = Server::start(&data, None, &cfg);
    assert_eq!(
        common::metric(&s3, "tagstream_startup_checkpoint_record"),
        -1.0
    );
    assert!(!data.join("node.checkpoint.rejected").exists());
    let after = std::fs::read(&path).unwrap();
    assert!(holds(&after, "Still Here"), "the new checkpoint holds P2");
    assert!(
        !holds(&after, "Long Gone") && !holds(&after, "1980-01-01"),
        "the new checkpoint holds nothing of P1"
    );
}

/// Cluster mode: a node restarted on its own data directory restores its checkpoint and reads
/// only the stream after it, and serves what a node that read the whole stream serves and what
/// `replay --stream` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_restarts_from_its_checkpoint_and_reads_only_the_stream_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = generate(dir.path());
    let batches = sim_batches(&sim);
    let crimes = common::crime_files(&sim);
    let third = batches.len() / 3;
    let (_nats, config, _stream) = common::nats::one_server_cluster(dir.path(), "", "").await;
    let cfg = ["--config", config.to_str().unwrap()];
    let (a, b) = (dir.path().join("node-a"), dir.path().join("node-b"));

    let mut a1 = Server::start(&a, Some(&sim.join("orders.json")), &cfg);
    common::send_to(&a1, &batches[..third]).await;
    common::import_crimes(&a1, &crimes[0]);
    a1.terminate();
    let mut a2 = Server::start(&a, None, &cfg);
    common::send_to(&a2, &batches[third..2 * third]).await;
    common::import_crimes(&a2, &crimes[1]);
    a2.terminate();

    // Node A again, from the checkpoint its second start wrote; node B on an empty directory.
    let a3 = Server::start(&a, None, &cfg);
    let at = common::metric(&a3, "tagstream_startup_checkpoint_record");
    let replayed = common::metric(&a3, "tagstream_startup_records_replayed");
    // Node B reads the whole stream (checkpoints off: it would start from A's snapshot).
    let whole = dir.path().join("whole.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&whole, format!("{text}\n[snapshots]\nenabled = false\n")).unwrap();
    let mut b1 = Server::start(&b, None, &["--config", whole.to_str().unwrap()]);
    assert_eq!(
        common::metric(&b1, "tagstream_startup_checkpoint_record"),
        -1.0
    );
    let total = common::metric(&b1, "tagstream_startup_records_replayed");
    assert!(at > 0.0, "node A restored its checkpoint");
    assert_eq!(at + replayed, total, "node A read only the stream after it");
    let (from_a, from_b) = (common::node_views(&a3, &sim), common::node_views(&b1, &sim));
    assert_eq!(common::differing(&from_a, &from_b), Vec::<String>::new());
    let (alerts, hits) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    assert_eq!(from_a["/v1/alerts/export"], format!("200 {alerts}"));
    assert_eq!(from_a["/v1/hits/export"], format!("200 {hits}"));
    assert!(alerts.lines().count() >= 5 && !hits.is_empty());
    b1.terminate();
}

/// Cluster mode: a node's start uploads its checkpoint and a copy of its stores to the stream's
/// snapshot bucket; a node started on an empty data directory unpacks it, reads only the stream
/// after it, and serves what the other node serves and what `replay --stream` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_on_an_empty_directory_starts_from_the_clusters_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = generate(dir.path());
    let batches = sim_batches(&sim);
    let crimes = common::crime_files(&sim);
    let two_thirds = 2 * batches.len() / 3;
    let (_nats, config, stream) = common::nats::one_server_cluster(dir.path(), "", "").await;
    let cfg = ["--config", config.to_str().unwrap()];
    let (a, b) = (dir.path().join("node-a"), dir.path().join("node-b"));

    let mut a1 = Server::start(&a, Some(&sim.join("orders.json")), &cfg);
    common::send_to(&a1, &batches[..two_thirds]).await;
    common::import_crimes(&a1, &crimes[0]);
    a1.terminate();
    // Node A's next start uploads its snapshot; then the stream grows.
    let a2 = Server::start(&a, None, &cfg);
    let bucket =
        tagstream::cluster::snapshot_store::SnapshotStore::open(stream.context(), stream.config())
            .await
            .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let uploaded = loop {
        if let Some(record) = bucket.records().await.unwrap().first().filter(|r| **r > 0) {
            break *record;
        }
        assert!(std::time::Instant::now() < deadline, "no snapshot uploaded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(uploaded > 0);
    common::send_to(&a2, &batches[two_thirds..]).await;
    common::import_crimes(&a2, &crimes[1]);

    // Node B joins on an empty data directory.
    let b1 = Server::start(&b, None, &cfg);
    assert_eq!(
        common::metric(&b1, "tagstream_startup_checkpoint_record"),
        uploaded as f64,
        "node B started from the cluster's snapshot"
    );
    let replayed = common::metric(&b1, "tagstream_startup_records_replayed");
    let total = stream.next_record().await.unwrap() as f64;
    assert_eq!(
        uploaded as f64 + replayed,
        total,
        "node B read only the stream after the snapshot"
    );
    let (alerts, hits) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    assert!(alerts.lines().count() >= 5 && !hits.is_empty());
    let want = format!("200 {alerts}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (from_a, from_b) = loop {
        let (from_a, from_b) = (common::node_views(&a2, &sim), common::node_views(&b1, &sim));
        let settled = from_a["/v1/alerts/export"] == want && from_b["/v1/alerts/export"] == want;
        if settled || std::time::Instant::now() > deadline {
            break (from_a, from_b);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(from_b["/v1/alerts/export"], want);
    assert_eq!(from_b["/v1/hits/export"], format!("200 {hits}"));
    assert_eq!(common::differing(&from_a, &from_b), Vec::<String>::new());
}

/// Cluster mode: a purge deletes the snapshots in the stream's bucket (each was taken before it
/// and holds the purged person); the next upload holds nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_deletes_the_clusters_snapshots_and_the_next_one_holds_nothing_purged() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, config, stream) = common::nats::one_server_cluster(
        dir.path(),
        "[retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n\n",
        "lease_ttl_ms = 1000\n",
    )
    .await;
    let bucket =
        tagstream::cluster::snapshot_store::SnapshotStore::open(stream.context(), stream.config())
            .await
            .unwrap();
    let cfg = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("node-a");
    let (orders, now) = common::purge_orders(dir.path());
    let mut a1 = Server::start(&data, Some(&orders), &cfg);
    common::send_three_days(&a1).await;
    a1.terminate();
    let a2 = Server::start(&data, None, &cfg);
    let newest = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(r) = bucket.records().await.unwrap().first().filter(|r| **r > 0) {
                return *r;
            }
            assert!(std::time::Instant::now() < deadline, "no snapshot uploaded");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let before = bucket.get(newest().await).await.unwrap();
    assert!(holds(&before, "Long Gone") && holds(&before, "Still Here"));

    // The purge (on the retention lease's holder, this node once it has taken it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let (status, body) = common::call(
            &a2,
            "POST",
            &format!("/v1/admin/retention/run?now={now}"),
            Some(ADMIN_TOKEN),
            Some("checkpoint test"),
            None,
        );
        if status == 200 {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        report["activations"],
        serde_json::json!(["A1"]),
        "{report:#}"
    );
    assert_eq!(bucket.records().await.unwrap(), Vec::<u64>::new());
    let mut a2 = a2;
    a2.terminate();
    let _a3 = Server::start(&data, None, &cfg);
    let after = bucket.get(newest().await).await.unwrap();
    assert!(holds(&after, "Still Here"), "the new snapshot holds P2");
    assert!(
        !holds(&after, "Long Gone") && !holds(&after, "1980-01-01"),
        "the new snapshot holds nothing of P1"
    );
}
