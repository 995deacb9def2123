//! The hub's decisions enter the durable log (issue 14): an alert action is a control record,
//! applied to the alert store at its log position and answered once applied. So the alert store
//! is a view of the log: after a kill -9, with the alert store deleted outright, the restart
//! brings every review back (state, outcome, notes, who and when, the history) and a resolved
//! alert stays closed.

mod common;

use common::{add_user, call, fixture, stream_health_fixture, Server};
use serde_json::{json, Value};

const WHY: Option<&str> = Some("hub queue");

fn alert(server: &Server, token: &str, id: &str) -> Value {
    let (status, body) = call(
        server,
        "GET",
        &format!("/v1/alerts/{id}"),
        Some(token),
        WHY,
        None,
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn act(server: &Server, token: &str, id: &str, action: &str, body: Value) -> (u16, String) {
    call(
        server,
        "POST",
        &format!("/v1/alerts/{id}/{action}"),
        Some(token),
        WHY,
        Some(body),
    )
}

/// The `op` of every control record in a data directory's log, in log order.
fn control_ops(data: &std::path::Path) -> Vec<String> {
    tagstream::log::LogReader::open(&data.join("log"))
        .unwrap()
        .filter_map(|item| match item.unwrap().1 {
            tagstream::model::LogEntry::Control { control, .. } => {
                Some(control.change.op().to_string())
            }
            tagstream::model::LogEntry::Batch(_) => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_actions_are_log_records_and_survive_losing_the_alert_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let mut server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    stream_health_fixture(&server).await;
    let _ = server.settled_alerts();
    let (_, list) = call(
        &server,
        "GET",
        "/v1/alerts?type=strap_tamper",
        Some(&hub),
        WHY,
        None,
    );
    let list: Vec<Value> = serde_json::from_str(&list).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();

    let (status, body) = act(&server, &hub, &id, "assign", json!({"assignee": " "}));
    assert_eq!(
        status, 400,
        "an empty assignee is refused before the log: {body}"
    );
    assert_eq!(
        act(&server, &hub, "no-such-alert", "acknowledge", json!({})).0,
        404
    );
    let ops_before = control_ops(&data);
    assert!(
        !ops_before.iter().any(|op| op == "alert_action"),
        "refused before the log: {ops_before:?}"
    );

    let (status, body) = act(
        &server,
        &hub,
        &id,
        "acknowledge",
        json!({"notes": "calling"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = act(
        &server,
        &hub,
        &id,
        "resolve",
        json!({"outcome": "reasonable_excuse", "notes": "strap caught on bed frame"}),
    );
    assert_eq!(status, 200, "{body}");
    let answered: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answered["review"]["state"], "resolved");
    let live = alert(&server, &hub, &id);
    assert_eq!(live["alert"]["review"], answered["review"]);
    assert_eq!(live["history"].as_array().unwrap().len(), 2);
    assert_eq!(act(&server, &hub, &id, "acknowledge", json!({})).0, 409);

    // Each accepted action is a control record in the durable log, after the readings.
    server.kill9();
    let ops = control_ops(&data);
    assert_eq!(
        ops.iter().filter(|op| *op == "alert_action").count(),
        2,
        "{ops:?}"
    );

    // The alert store is a view: delete it, restart, and every review comes back from the log.
    for name in ["alerts.sqlite3", "alerts.sqlite3-wal", "alerts.sqlite3-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let server = Server::start(&data, None, &[]);
    let _ = server.settled_alerts();
    let rebuilt = alert(&server, &hub, &id);
    assert_eq!(rebuilt["alert"]["review"], live["alert"]["review"]);
    assert_eq!(rebuilt["history"], live["history"]);
    assert_eq!(
        act(&server, &hub, &id, "acknowledge", json!({})).0,
        409,
        "still resolved after the rebuild"
    );
    let (_, resolved) = call(
        &server,
        "GET",
        "/v1/alerts/count?state=resolved",
        Some(&hub),
        WHY,
        None,
    );
    assert!(resolved.contains("\"total\":1"), "{resolved}");
}
