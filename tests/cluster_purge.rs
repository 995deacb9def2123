//! Retention in cluster mode (issue 15, item 5): a purge removes exactly the purged
//! activation's records from the shared stream — not the tag's whole subject: the tag was
//! handed on to a later wearer, whose readings stay — and its people, orders and control records;
//! every node's stores follow the purge record, a node that was down during the purge follows it
//! when it starts again, and a node joining afterwards builds the same state from the stream. Only
//! the node holding the retention lease purges. The subject access export reads the stream from
//! any node.

mod common;

use common::nats::{open_stream_when_ready, replay_stream, start_nats};
use common::{call, monitored_days, Server, TagClient, ADMIN_TOKEN};
use futures::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::LogEntry;

const DAY_MS: i64 = 86_400_000;
/// T1 is worn by P1 (activation A1) for three days, then by P3 (A3).
const FROM: &str = "2026-03-02T00:00:00Z";
const HANDED_ON: &str = "2026-03-05T00:00:00Z";
/// One wearer's three days: TAC, fixes and a strap opened and closed.
const PER_WEARER: usize = 3 * 48 + 3 * 24 * 6 + 2;
/// What the subject access export lists as readings (positions are in the trails).
const NOT_POSITIONS: usize = 3 * 48 + 2;

fn node_config(dir: &Path, name: &str, url: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [\"{url}\"]\nreplicas = 1\n\
         partitions = 16\nnode_id = \"{name}\"\nlease_ttl_ms = 1500\n\n\
         [retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start_node(dir: &Path, name: &str, url: &str, orders: Option<&Path>) -> Server {
    let config = node_config(dir, name, url);
    Server::start(
        &dir.join(name),
        orders,
        &["--config", config.to_str().unwrap()],
    )
}

fn api(server: &Server, method: &str, path: &str) -> (u16, String) {
    call(
        server,
        method,
        path,
        Some(ADMIN_TOKEN),
        Some("cluster retention test"),
        None,
    )
}

fn json_of((status, body): (u16, String), want: u16) -> Value {
    assert_eq!(status, want, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Polls `check` on `server` for up to 30 s; the last answer.
fn wait_until(server: &Server, what: &str, check: impl Fn(&Server) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check(server) {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alerts_export(server: &Server) -> String {
    api(server, "GET", "/v1/alerts/export").1
}

fn holds_retention_lease(server: &Server) -> bool {
    server
        .get("/metrics")
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == "tagstream_lease_retention_held 1")
}

/// Readings (not positions) a subject access export of `person` lists.
fn exported_readings(server: &Server, person: &str) -> usize {
    let export = json_of(
        api(server, "GET", &format!("/v1/admin/people/{person}/export")),
        200,
    );
    export["readings"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_removes_one_wearers_records_from_the_stream_and_every_node_follows() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    let probe = node_config(dir.path(), "probe", &nats.url);
    let stream = open_stream_when_ready(&probe).await;

    // "Now" is 40 days from the wall clock: A1 (ended in March) is past 30 days of retention; A3
    // ends 20 days from the wall clock, so it ended only 20 days before that "now".
    let wall_ms = tagstream::retention::purge::wall_clock_ms();
    let now = format_time(wall_ms + 40 * DAY_MS);
    let orders = dir.path().join("orders.json");
    std::fs::write(
        &orders,
        json!({
            "people": [{"id": "P1", "name": "Long Gone", "date_of_birth": "1980-01-01"},
                       {"id": "P3", "name": "Next Wearer"}],
            "activations": [
                {"id": "A1", "person": "P1", "tag": "T1", "from": FROM, "to": HANDED_ON},
                {"id": "A3", "person": "P3", "tag": "T1", "from": HANDED_ON,
                 "to": format_time(wall_ms + 20 * DAY_MS)}],
            "orders": [
                {"id": "O1", "person": "P1", "from": "2026-03-02", "to": "2026-03-04",
                 "conditions": [{"type": "alcohol", "mode": "abstinence"}]},
                {"id": "O3", "person": "P3", "from": "2026-03-05",
                 "conditions": [{"type": "alcohol", "mode": "abstinence"}]}]
        })
        .to_string(),
    )
    .unwrap();
    let mut a = start_node(dir.path(), "node-a", &nats.url, Some(&orders));
    let mut b = start_node(dir.path(), "node-b", &nats.url, None);
    let mut c = start_node(dir.path(), "node-c", &nats.url, None);

    // Six days of T1 in 20-reading batches: one batch holds both wearers' readings.
    let handed_on_ms = parse_time(HANDED_ON).unwrap();
    let mut readings = monitored_days(parse_time(FROM).unwrap(), 3, 514_500_000);
    readings.extend(monitored_days(handed_on_ms, 3, 514_600_000));
    let mut tag = TagClient::connect(&a.ingest_addr, "T1").await;
    for (i, chunk) in readings.chunks(20).enumerate() {
        tag.send_acked(i as u64 + 1, chunk.to_vec()).await;
    }
    let before = a.settled_alerts();
    assert!(
        before.contains("\"A1\"") && before.contains("\"A3\""),
        "{before}"
    );
    for node in [&b, &c] {
        wait_until(node, "the same alerts on every node", |n| {
            alerts_export(n) == alerts_export(&a)
        });
    }
    // The subject access export reads the stream, from any node.
    assert_eq!(exported_readings(&c, "P1"), NOT_POSITIONS);
    assert_eq!(exported_readings(&b, "P3"), NOT_POSITIONS);

    // Node C is down while the purge runs.
    c.kill9();
    let holder = loop {
        match (holds_retention_lease(&a), holds_retention_lease(&b)) {
            (true, _) => break &a,
            (_, true) => break &b,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let other = if std::ptr::eq(holder, &a) { &b } else { &a };
    let run = format!("/v1/admin/retention/run?now={now}");
    let refused = json_of(api(other, "POST", &run), 409);
    assert_eq!(refused["error"], "not_lease_holder", "{refused}");
    let report = json_of(api(holder, "POST", &run), 200);
    assert_eq!(report["activations"], json!(["A1"]), "{report:#}");
    assert_eq!(report["people"], json!(["P1"]));
    assert_eq!(report["counts"]["log_readings"], PER_WEARER);
    assert!(report["log"]["controls_redacted"].as_u64().unwrap() >= 3);

    // The stream: A1's readings gone, A3's all there (the shared batch kept in part), the
    // person's control records erased, every record number still there, the purge a record.
    let end = stream.next_record().await.unwrap();
    let mut records = Box::pin(stream.read_until(0, end).await.unwrap());
    let (mut next, mut kept, mut redacted) = (0, 0, 0);
    let mut last = None;
    while let Some(item) = records.next().await {
        let (record, entry) = item.unwrap();
        assert_eq!(record, next, "record numbers run on");
        next += 1;
        match &entry {
            LogEntry::Batch(batch) => {
                for r in &batch.readings {
                    assert!(r.t_ms >= handed_on_ms, "an A1 reading is left: {r:?}");
                    kept += 1;
                }
            }
            LogEntry::Control { control, .. } => {
                let text = serde_json::to_string(&**control).unwrap();
                assert!(
                    !text.contains("Long Gone") && !text.contains("1980-01-01"),
                    "a control record still names the purged person: {text}"
                );
                redacted += usize::from(control.change.op() == "redacted");
                last = Some(control.change.op());
            }
        }
    }
    assert_eq!(next, end);
    assert_eq!(kept, PER_WEARER, "every reading of the next wearer is kept");
    assert!(redacted >= 3, "{redacted} control records redacted");
    assert_eq!(last, Some("purge"));
    let described = stream.describe().await.unwrap();
    assert!(
        described.messages < end,
        "the originals are deleted from the stream: {} messages for {end} records",
        described.messages
    );

    // Every node's stores: the holder's at once, the other's when it applies the record, node
    // C's when it starts again, and a node that joins now never holds any of it.
    let mut c = start_node(dir.path(), "node-c", &nats.url, None);
    let d = start_node(dir.path(), "node-d", &nats.url, None);
    for node in [&a, &b, &c, &d] {
        wait_until(node, "P1 gone", |n| api(n, "GET", "/v1/people/P1").0 == 404);
        wait_until(node, "A1's alerts gone", |n| {
            let export = alerts_export(n);
            !export.contains("\"A1\"") && export.contains("\"A3\"")
        });
        let trail = format!(
            "/v1/activations/A1/trail?from={FROM}&to={}",
            format_time(handed_on_ms)
        );
        assert_eq!(api(node, "GET", &trail).0, 404);
        assert_eq!(
            api(node, "GET", "/v1/admin/people/P1/export").0,
            404,
            "nothing left to export"
        );
        let metrics = node.get("/metrics").unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.trim() == "tagstream_purge_records_waiting 0"),
            "{metrics}"
        );
    }
    assert_eq!(exported_readings(&d, "P3"), NOT_POSITIONS);

    // The same state everywhere, and the same as a replay of the stream.
    let settled = a.settled_alerts();
    for node in [&b, &c, &d] {
        wait_until(node, "every node equal", |n| alerts_export(n) == settled);
    }
    let (replayed, _) = replay_stream(&probe, &dir.path().join("replay"));
    // Node C held P1 when it started again, before it followed the purge: it must not have
    // written P1 back to the stream (as a start-up migration of what its database holds).
    let end = stream.next_record().await.unwrap();
    let mut records = Box::pin(stream.read_until(0, end).await.unwrap());
    while let Some(item) = records.next().await {
        if let (_, LogEntry::Control { control, .. }) = item.unwrap() {
            let text = serde_json::to_string(&*control).unwrap();
            assert!(!text.contains("Long Gone"), "P1 written back: {text}");
        }
    }
    assert_eq!(settled, replayed, "nodes equal to a replay of the stream");

    // A reading for A1's period arrives late, and the node that joined after the purge (it never
    // held A1: its records were erased) is the one left to purge. When A3 is due, that purge
    // removes the late reading too: the purge record told node D A1's window.
    for node in [&mut a, &mut b, &mut c] {
        node.terminate();
    }
    wait_until(
        &d,
        "node D holds the retention lease",
        holds_retention_lease,
    );
    let mut late = TagClient::connect(&d.ingest_addr, "T1").await;
    let next_seq = late.last_seq + 1;
    let mut reading = readings[0];
    reading.t_ms = handed_on_ms - 60_000;
    late.send_acked(next_seq, vec![reading]).await;
    let later = format!(
        "/v1/admin/retention/run?now={}",
        format_time(wall_ms + 70 * DAY_MS)
    );
    let report = json_of(api(&d, "POST", &later), 200);
    assert_eq!(report["activations"], json!(["A3"]), "{report:#}");
    assert_eq!(report["counts"]["log_readings"], PER_WEARER + 1);
    let end = stream.next_record().await.unwrap();
    let mut records = Box::pin(stream.read_until(0, end).await.unwrap());
    while let Some(item) = records.next().await {
        match item.unwrap() {
            (_, LogEntry::Batch(batch)) => assert!(batch.readings.is_empty(), "{batch:?}"),
            (_, LogEntry::Control { .. }) => {}
        }
    }
}
