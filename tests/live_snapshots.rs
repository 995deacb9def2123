//! Snapshots taken on a live cluster (issue 15, item 2): the node holding the `snapshots` lease
//! follows the stream into a scratch directory and uploads a snapshot of it every
//! `[snapshots] live_interval_s`, so the bucket's newest snapshot moves without a node restart;
//! a node joining on an empty data directory starts from it and serves what the others serve
//! and what `replay --stream` computes; only the lease holder produces; a purge leaves nothing
//! from before it in the bucket or in the follower's scratch state.
//!
//! Needs the `tagsim` binary (built by `cargo test --workspace` and by `scripts/test.sh`).

mod common;

use common::{Server, ADMIN_TOKEN};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tagstream::cluster::snapshot_store::SnapshotStore;

/// Live snapshots every second (the test's population is small).
const LIVE: &str = "[snapshots]\nlive_interval_s = 1\nlive_records = 0\n\n";

/// A small simulated population (curfew, zone and alcohol wearers, crime batches).
fn generate(dir: &Path) -> PathBuf {
    common::generate_sim(dir, 30, 3, 7)
}

const UPLOADED: &str = "tagstream_live_snapshots_total{outcome=\"uploaded\"}";

/// Waits until the bucket's newest snapshot is at least `record`; returns it.
async fn newest_at_least(bucket: &SnapshotStore, record: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(newest) = bucket.records().await.unwrap().first() {
            if *newest >= record {
                return *newest;
            }
        }
        assert!(Instant::now() < deadline, "{what}: no snapshot at {record}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node running without a restart uploads snapshots of the live cluster as the stream grows;
/// a node joining on an empty data directory starts from the newest and serves what the first
/// node serves and what `replay --stream` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_moves_the_clusters_snapshot_and_a_joining_node_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = generate(dir.path());
    let batches = common::read_batches_jsonl(&sim.join("readings.jsonl"));
    let crimes = common::crime_files(&sim);
    let half = batches.len() / 2;
    let (_nats, config, stream, bucket) = live_cluster(dir.path(), "").await;
    let cfg = ["--config", config.to_str().unwrap()];
    let (a, b) = (dir.path().join("node-a"), dir.path().join("node-b"));

    // Node A starts once, on the empty stream (its start-up has nothing to upload), and runs.
    let a1 = Server::start(&a, Some(&sim.join("orders.json")), &cfg);
    let started_at = common::metric(&a1, "tagstream_startup_records_replayed");
    assert_eq!(started_at, 0.0);
    common::send_to(&a1, &batches[..half]).await;
    common::import_crimes(&a1, &crimes[0]);
    let end = stream.next_record().await.unwrap();
    let first = newest_at_least(&bucket, end, "after the first half").await;
    common::send_to(&a1, &batches[half..]).await;
    common::import_crimes(&a1, &crimes[1]);
    let end = stream.next_record().await.unwrap();
    let live = newest_at_least(&bucket, end, "after the second half").await;
    assert!(live > first && first > 0, "{first} {live}");
    assert_eq!(common::metric(&a1, "tagstream_lease_snapshots_held"), 1.0);
    assert!(common::metric(&a1, UPLOADED) >= 2.0);
    assert_eq!(
        common::metric(&a1, "tagstream_live_snapshot_record"),
        live as f64
    );
    assert_eq!(
        common::metric(&a1, "tagstream_startup_checkpoint_record"),
        -1.0,
        "node A never restarted"
    );
    // The scratch state is the node's own, owner-only.
    use std::os::unix::fs::PermissionsExt;
    let scratch = a.join("snapshot-follower");
    let mode = std::fs::metadata(&scratch).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let mode = std::fs::metadata(scratch.join("node.checkpoint"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    // Node B joins on an empty data directory, from the live snapshot.
    let b1 = Server::start(&b, None, &cfg);
    let at = common::metric(&b1, "tagstream_startup_checkpoint_record");
    assert!(
        at >= live as f64,
        "node B started from {at}, the live snapshot is {live}"
    );
    let replayed = common::metric(&b1, "tagstream_startup_records_replayed");
    let total = stream.next_record().await.unwrap() as f64;
    assert_eq!(at + replayed, total, "node B read only the stream after it");

    let (alerts, hits) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    assert!(alerts.lines().count() >= 5 && !hits.is_empty());
    let want = format!("200 {alerts}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (from_a, from_b) = loop {
        let (from_a, from_b) = (common::node_views(&a1, &sim), common::node_views(&b1, &sim));
        let settled = from_a["/v1/alerts/export"] == want && from_b["/v1/alerts/export"] == want;
        if settled || Instant::now() > deadline {
            break (from_a, from_b);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(from_b["/v1/alerts/export"], want);
    assert_eq!(from_b["/v1/hits/export"], format!("200 {hits}"));
    assert_eq!(from_a["/v1/hits/export"], format!("200 {hits}"));
    assert_eq!(common::differing(&from_a, &from_b), Vec::<String>::new());
}

/// Two nodes, one producer: the holder of the `snapshots` lease; when it dies, the other takes
/// the lease and moves the snapshot on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_snapshots_lease_holder_produces_and_another_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let sim = generate(dir.path());
    let batches = common::read_batches_jsonl(&sim.join("readings.jsonl"));
    let third = batches.len() / 3;
    let (_nats, config, stream, bucket) = live_cluster(dir.path(), "").await;
    let cfg = ["--config", config.to_str().unwrap()];
    let (a, b) = (dir.path().join("node-a"), dir.path().join("node-b"));
    let mut na = Server::start(&a, Some(&sim.join("orders.json")), &cfg);
    let nb = Server::start(&b, None, &cfg);
    common::send_to(&na, &batches[..third]).await;
    common::send_to(&nb, &batches[third..2 * third]).await;
    let end = stream.next_record().await.unwrap();
    newest_at_least(&bucket, end, "two nodes").await;
    // A few more rounds' time: the other node still produces nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = [&na, &nb].map(|n| common::metric(n, "tagstream_lease_snapshots_held"));
    let uploaded = [&na, &nb].map(|n| common::metric(n, UPLOADED));
    assert_eq!(held.iter().sum::<f64>(), 1.0, "{held:?}");
    let (holder, other) = if held[0] == 1.0 { (0, 1) } else { (1, 0) };
    assert!(uploaded[holder] >= 1.0, "{uploaded:?}");
    assert_eq!(uploaded[other], 0.0, "{uploaded:?}");
    let dirs = [&a, &b];
    assert!(
        !dirs[other].join("snapshot-follower").exists(),
        "the other node keeps no follower state"
    );

    // The holder dies; the survivor takes the lease and moves the snapshot past the new end.
    let (mut holder_server, survivor) = if holder == 0 { (na, nb) } else { (nb, na) };
    holder_server.kill9();
    common::send_to(&survivor, &batches[2 * third..]).await;
    let end = stream.next_record().await.unwrap();
    let newest = newest_at_least(&bucket, end, "after the failover").await;
    assert_eq!(
        common::metric(&survivor, "tagstream_lease_snapshots_held"),
        1.0
    );
    // The gauge is set once the upload has returned: a moment after the bucket holds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::metric(&survivor, "tagstream_live_snapshot_record") != newest as f64
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(common::metric(&survivor, UPLOADED) >= 1.0);
    assert_eq!(
        common::metric(&survivor, "tagstream_live_snapshot_record"),
        newest as f64
    );
    na = survivor;
    na.terminate();
}

/// Whether `needle` occurs in `haystack`.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(any_file_holds(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|bytes| holds(&bytes, needle)) {
            found.push(path);
        }
    }
    found
}

/// A one-server cluster with live snapshots every second (after `extra` configuration):
/// (server, node config, stream, snapshot bucket).
async fn live_cluster(
    dir: &Path,
    extra: &str,
) -> (
    common::nats::Nats,
    PathBuf,
    tagstream::cluster::jetstream::JetStreamLog,
    SnapshotStore,
) {
    let (nats, config, stream) =
        common::nats::one_server_cluster(dir, &format!("{LIVE}{extra}"), "lease_ttl_ms = 1000\n")
            .await;
    let bucket = SnapshotStore::open(stream.context(), stream.config())
        .await
        .unwrap();
    (nats, config, stream, bucket)
}

/// [`live_cluster`] with retention that purges 30 days after an activation's end (`now`
/// overridable).
async fn purge_cluster(
    dir: &Path,
) -> (
    common::nats::Nats,
    PathBuf,
    tagstream::cluster::jetstream::JetStreamLog,
    SnapshotStore,
) {
    live_cluster(
        dir,
        "[retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n\n",
    )
    .await
}

/// Runs retention at `now` on `server` (retried while it is not yet the lease holder) and
/// checks that it purged A1 alone.
async fn run_purge_of_a1(server: &Server, now: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = common::call(
            server,
            "POST",
            &format!("/v1/admin/retention/run?now={now}"),
            Some(ADMIN_TOKEN),
            Some("live snapshot test"),
            None,
        );
        if status == 200 {
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                report["activations"],
                serde_json::json!(["A1"]),
                "{report:#}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A purge on a live cluster: the live snapshot taken before it (holding the purged person) is
/// deleted, the follower's scratch state is dropped at once, and the next live snapshot, taken
/// after the purge record without a restart, holds nothing of the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_leaves_nothing_from_before_it_in_the_bucket_or_the_followers_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, config, stream, bucket) = purge_cluster(dir.path()).await;
    let cfg = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("node-a");
    let scratch = data.join("snapshot-follower");
    let (orders, now) = common::purge_orders(dir.path());
    let a1 = Server::start(&data, Some(&orders), &cfg);
    common::send_three_days(&a1).await;
    let end = stream.next_record().await.unwrap();
    let before = newest_at_least(&bucket, end, "before the purge").await;
    let packed = bucket.get(before).await.unwrap();
    assert!(holds(&packed, "Long Gone") && holds(&packed, "Still Here"));
    assert!(!any_file_holds(&scratch, "Long Gone").is_empty());

    run_purge_of_a1(&a1, &now).await;
    // At once: nothing in the bucket or the follower's state from before the purge.
    for record in bucket.records().await.unwrap() {
        assert!(
            record > before,
            "snapshot {record} from before the purge kept"
        );
    }
    let left = any_file_holds(&scratch, "Long Gone");
    assert!(left.is_empty(), "the follower's state kept {left:?}");

    // The next live snapshot is taken after the purge record, without a restart, and holds
    // nothing of P1.
    let end = stream.next_record().await.unwrap();
    let after = newest_at_least(&bucket, end, "after the purge").await;
    assert!(after > before);
    let packed = bucket.get(after).await.unwrap();
    assert!(holds(&packed, "Still Here"), "the new snapshot holds P2");
    assert!(
        !holds(&packed, "Long Gone") && !holds(&packed, "1980-01-01"),
        "the new snapshot holds nothing of P1"
    );
    for record in bucket.records().await.unwrap() {
        assert!(
            record > before,
            "snapshot {record} from before the purge kept"
        );
    }
    assert_eq!(
        common::metric(&a1, "tagstream_startup_checkpoint_record"),
        -1.0
    );

    // A node joining from it starts at its record and, following the purge record, finds
    // nothing to purge: the snapshot stays for the next node to join from.
    let b1 = Server::start(&dir.path().join("node-b"), None, &cfg);
    assert_eq!(
        common::metric(&b1, "tagstream_startup_checkpoint_record"),
        after as f64
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(common::metric(&b1, "tagstream_purge_records_waiting"), 0.0);
    assert_eq!(bucket.records().await.unwrap().first(), Some(&after));
}

/// A purge while the stream grows and rounds run back to back (each may be reading, packing or
/// uploading when the purge runs): once the follower has caught up after it, no snapshot in the
/// bucket and nothing in the follower's state holds the purged person, and a node joining from
/// the newest serves what `replay --stream` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_while_the_stream_grows_leaves_no_snapshot_holding_what_it_purged() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, config, stream, bucket) = purge_cluster(dir.path()).await;
    let cfg = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("node-a");
    let (orders, now) = common::purge_orders(dir.path());
    let a1 = Server::start(&data, Some(&orders), &cfg);
    common::send_three_days(&a1).await;
    let end = stream.next_record().await.unwrap();
    let before = newest_at_least(&bucket, end, "before the purge").await;
    assert!(holds(&bucket.get(before).await.unwrap(), "Long Gone"));

    // T2 goes on sending (three more days, a batch every 30 ms) while the purge runs.
    let addr = a1.ingest_addr.clone();
    let sender = tokio::spawn(async move {
        let from_ms = tagstream::model::time::parse_time("2026-03-05T00:00:00Z").unwrap();
        let mut t2 = common::TagClient::connect(&addr, "T2").await;
        let later = common::monitored_days(from_ms, 3, 514_600_000);
        for (i, chunk) in later.chunks(3).enumerate() {
            t2.send_acked(10_000 + i as u64, chunk.to_vec()).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run_purge_of_a1(&a1, &now).await;
    assert!(!sender.is_finished(), "the stream grew while the purge ran");
    sender.await.unwrap();

    let end = stream.next_record().await.unwrap();
    let after = newest_at_least(&bucket, end, "after the purge").await;
    let records = bucket.records().await.unwrap();
    assert!(!records.contains(&before), "{records:?}");
    for record in records {
        let packed = bucket.get(record).await.unwrap();
        assert!(holds(&packed, "Still Here"), "snapshot {record} holds P2");
        assert!(
            !holds(&packed, "Long Gone") && !holds(&packed, "1980-01-01"),
            "snapshot {record} holds P1"
        );
    }
    let left = any_file_holds(&data.join("snapshot-follower"), "Long Gone");
    assert!(left.is_empty(), "the follower's state kept {left:?}");

    let b1 = Server::start(&dir.path().join("node-b"), None, &cfg);
    assert!(common::metric(&b1, "tagstream_startup_checkpoint_record") >= after as f64);
    let (alerts, _) = common::nats::replay_stream(&config, &dir.path().join("replay"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = common::call(
            &b1,
            "GET",
            "/v1/alerts/export",
            Some(ADMIN_TOKEN),
            Some("t"),
            None,
        );
        if got.1 == alerts || Instant::now() > deadline {
            assert_eq!(got, (200, alerts));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
