//! What the web console reads beyond the queue's events (issue 17): the alert stream opened on
//! the alerts as they stand (`?snapshot=true`, the console's first load) agrees with a replay of
//! every event and resumes after it; and a person's last contact (the newest reading of any
//! kind from any of their tags) is served, the same after a restart from the log and after one
//! from the node checkpoint.

mod common;

use common::{
    add_user, call, fixture, fixture_batches, metric, read_sse_at, stream_health_fixture, Server,
    TagClient,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tagstream::model::{Reading, ReadingBody};

const WHY: Option<&str> = Some("hub queue");

/// A call as the hub that must succeed: its JSON answer.
fn act(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(server, method, path, Some(token), WHY, body);
    assert_eq!(status, 200, "{method} {path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

/// Every alert's state after the events (the last body per alert), in the order first raised.
fn replayed(events: &[(i64, String, String)]) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for (_, kind, data) in events {
        assert_ne!(kind, "snapshot", "a replay is events only");
        let alert: Value = serde_json::from_str(data).unwrap();
        let id = alert["id"].as_str().unwrap().to_string();
        if !last.contains_key(&id) {
            order.push(id.clone());
        }
        last.insert(id, alert);
    }
    order
        .into_iter()
        .map(|id| last.remove(&id).unwrap())
        .collect()
}

fn snapshot(server: &Server, hub: &str) -> (i64, Vec<Value>, Vec<(i64, String, String)>) {
    let events = read_sse_at(
        &server.http_addr,
        hub,
        "/v1/alerts/stream?snapshot=true",
        None,
        usize::MAX,
    );
    let (id, kind, data) = events.first().expect("a snapshot event").clone();
    assert_eq!(kind, "snapshot");
    (
        id,
        serde_json::from_str(&data).unwrap(),
        events[1..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_stream_opens_on_the_alerts_as_they_stand_and_resumes_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    stream_health_fixture(&server).await;
    let _ = server.settled_alerts();

    // Reviewed once, so that an alert has more than one event.
    let list = act(&server, &hub, "GET", "/v1/alerts", None);
    let list = list.as_array().unwrap();
    let first = list.last().unwrap()["id"].as_str().unwrap().to_string();
    act(
        &server,
        &hub,
        "POST",
        &format!("/v1/alerts/{first}/acknowledge"),
        Some(json!({"notes": "seen"})),
    );

    let history = read_sse_at(
        &server.http_addr,
        &hub,
        "/v1/alerts/stream",
        None,
        usize::MAX,
    );
    assert!(
        history.len() > list.len(),
        "more events than alerts: {}",
        history.len()
    );
    let (through, alerts, after) = snapshot(&server, &hub);
    assert_eq!(
        through,
        history.last().unwrap().0,
        "the newest event it holds"
    );
    assert_eq!(
        alerts,
        replayed(&history),
        "the same as replaying every event"
    );
    assert!(after.is_empty(), "nothing after it yet: {after:?}");
    assert!(alerts
        .iter()
        .any(|a| a["review"]["state"] == "acknowledged"));

    // A change after the snapshot arrives after it; resuming after its id skips the snapshot.
    act(
        &server,
        &hub,
        "POST",
        &format!("/v1/alerts/{first}/resolve"),
        Some(json!({"outcome": "false_alarm"})),
    );
    let resumed = read_sse_at(
        &server.http_addr,
        &hub,
        "/v1/alerts/stream?snapshot=true",
        Some(through),
        usize::MAX,
    );
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].1, "reviewed");
    let (through_now, alerts_now, _) = snapshot(&server, &hub);
    assert_eq!(through_now, resumed[0].0);
    let resolved = alerts_now
        .iter()
        .find(|a| a["id"] == first.as_str())
        .unwrap();
    assert_eq!(resolved["review"]["state"], "resolved");
}

/// (last_contact, data_until) of P1 and P2.
fn contacts(server: &Server, token: &str) -> Vec<(Value, Value)> {
    ["P1", "P2"]
        .iter()
        .map(|id| {
            let p = act(server, token, "GET", &format!("/v1/people/{id}"), None);
            (p["last_contact"].clone(), p["data_until"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_contact_is_the_newest_reading_of_any_kind_live_and_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let orders = fixture("orders.json");
    let mut server = Server::start(&data, Some(&orders), &[]);
    stream_health_fixture(&server).await;

    // T1 (P1's tag) last sent a position at 01:59; an RF presence reading at 02:40, no
    // position, is its last contact, beyond its data (positions and TAC).
    let t1_seq = fixture_batches()
        .iter()
        .filter(|b| b.tag == "T1")
        .map(|b| b.seq)
        .max()
        .unwrap();
    let rf_at = tagstream::model::time::parse_time("2026-03-28T02:40:00Z").unwrap();
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(
        t1_seq + 1,
        vec![Reading {
            t_ms: rf_at,
            battery_pct: Some(80),
            body: ReadingBody::Rf { in_range: true },
        }],
    )
    .await;
    let expected = vec![
        (json!("2026-03-28T02:40:00Z"), json!("2026-03-28T01:59:00Z")),
        // P2's newest reading is a position at 02:11.
        (json!("2026-03-28T02:11:00Z"), json!("2026-03-28T02:11:00Z")),
    ];
    let mut live = contacts(&server, &hub);
    for _ in 0..100 {
        if live == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        live = contacts(&server, &hub);
    }
    assert_eq!(live, expected, "live");

    // From the log, then from the node checkpoint that start took at the log's end.
    server.terminate();
    let mut server = Server::start(&data, Some(&orders), &[]);
    assert_eq!(contacts(&server, &hub), expected, "rebuilt from the log");
    server.terminate();
    let server = Server::start(&data, Some(&orders), &[]);
    assert!(
        metric(&server, "tagstream_startup_checkpoint_record") > 0.0,
        "restored from the node checkpoint"
    );
    assert_eq!(contacts(&server, &hub), expected, "from the checkpoint");
}
