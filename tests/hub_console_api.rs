//! What the web console reads beyond the queue's events (issue 17): the alert stream opened on
//! the alerts as they stand (`?snapshot=true`, the console's first load) agrees with a replay of
//! every event and resumes after it.

mod common;

use common::{add_user, call, fixture, read_sse_at, stream_health_fixture, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
