//! The hub's decisions enter the durable log (issue 14): an alert action is a control record,
//! applied to the alert store at its log position and answered once applied. So the alert store
//! is a view of the log: after a kill -9, with the alert store deleted outright, the restart
//! brings every review back (state, outcome, notes, who and when, the history) and a resolved
//! alert stays closed; `tagstream rebuild` gives the same, keeps the audit trail and numbers
//! alert events above every number handed out before. Users are control records too, and the
//! users table a view.

mod common;

use common::{add_user, call, control_ops, fixture, read_sse, stream_health_fixture, Server};
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

    // `tagstream rebuild`: the same again, the audit trail kept, and alert event numbers carry
    // on above every number handed out before (no client sees one number for two changes).
    let audit = |server: &Server| -> Vec<Value> {
        let (status, body) = call(
            server,
            "GET",
            "/v1/audit?limit=1000",
            Some(common::ADMIN_TOKEN),
            None,
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let audit_before = audit(&server);
    let last_before = read_sse(&server.http_addr, &hub, None, usize::MAX)
        .last()
        .unwrap()
        .0;
    let (_, stream_before) = call(&server, "GET", "/v1/alerts/count", Some(&hub), WHY, None);
    let mut server = server;
    server.kill9();
    common::rebuild(&data);
    let server = Server::start(&data, None, &[]);
    let _ = server.settled_alerts();
    let again = alert(&server, &hub, &id);
    assert_eq!(again["alert"]["review"], live["alert"]["review"]);
    assert_eq!(again["history"], live["history"]);
    let (_, stream_after) = call(&server, "GET", "/v1/alerts/count", Some(&hub), WHY, None);
    assert_eq!(stream_after, stream_before);
    let audit_after = audit(&server);
    for entry in &audit_before {
        assert!(audit_after.contains(entry), "audit entry lost: {entry}");
    }
    let after = read_sse(&server.http_addr, &hub, None, usize::MAX);
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|e| e.0 > last_before),
        "event numbers after the rebuild start above {last_before}: {:?}",
        after.first()
    );
}

/// Users are control records too: made offline by `tagstream users add` (into the log, under the
/// data directory's lock) or through `POST /v1/users`; the users table is a view, rebuilt from
/// the log after it is lost; a users table written before users were log records is migrated
/// into the log once.
/// `tagstream users disable`.
fn disable_offline(data: &std::path::Path, name: &str) -> std::process::Output {
    std::process::Command::new(common::bin())
        .args(["users", "disable", "--data-dir"])
        .arg(data)
        .args(["--name", name])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_log_records_and_the_users_table_is_a_view() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let practitioner = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    assert_eq!(
        control_ops(&data),
        vec!["put_user", "put_user"],
        "users add writes the log"
    );
    let mut server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    stream_health_fixture(&server).await;

    // While the server runs, the offline command is refused and points at the API.
    let out = disable_offline(&data, "pat");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("through its API"), "{stderr}");

    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "olu", "role": "police", "force": "AvonSomerset"})),
    );
    assert_eq!(status, 201, "{body}");
    let police = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "olu", "role": "hub"})),
    );
    assert_eq!(status, 409, "{body}");
    let seen = |server: &Server| {
        let (_, body) = call(server, "GET", "/v1/alerts", Some(&practitioner), WHY, None);
        let alerts: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|a| a["person"] == "P2"), "{body}");
        let (status, body) = call(server, "GET", "/v1/alerts", Some(&hub), WHY, None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            call(
                server,
                "GET",
                "/v1/crimes/batches",
                Some(&police),
                None,
                None
            )
            .0,
            200
        );
    };
    seen(&server);
    let (_, users_before) = call(
        &server,
        "GET",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        None,
    );
    server.kill9();
    assert_eq!(
        control_ops(&data)
            .iter()
            .filter(|op| *op == "put_user")
            .count(),
        3
    );

    // Lose the users table (and slip in a user the log does not have, as a database written
    // before users were log records would): the restart rebuilds it from the log and migrates
    // the stranger into the log.
    let legacy_token = "ts_legacy-user-token";
    {
        let db = rusqlite::Connection::open(data.join("metadata.sqlite3")).unwrap();
        db.execute_batch("DELETE FROM caseloads; DELETE FROM users; DELETE FROM users_applied;")
            .unwrap();
        let digest = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(legacy_token.as_bytes()))
        };
        db.execute(
            "INSERT INTO users (name, role, token_sha256, created_ms) VALUES ('lee', 'hub', ?1, 1)",
            [digest],
        )
        .unwrap();
    }
    let mut server = Server::start(&data, None, &[]);
    seen(&server);
    assert_eq!(
        call(&server, "GET", "/v1/alerts", Some(legacy_token), WHY, None).0,
        200
    );
    let (_, users_after) = call(
        &server,
        "GET",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        None,
    );
    let names = |body: &str| -> Vec<String> {
        serde_json::from_str::<Vec<Value>>(body)
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    };
    let mut expected = names(&users_before);
    expected.push("lee".into());
    expected.sort();
    assert_eq!(names(&users_after), expected);
    server.kill9();
    assert_eq!(
        control_ops(&data)
            .iter()
            .filter(|op| *op == "put_user")
            .count(),
        4,
        "the legacy user was written to the log once"
    );

    // Disabled offline: the token is refused from the next start.
    let out = disable_offline(&data, "pat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&data, None, &[]);
    assert_eq!(
        call(&server, "GET", "/v1/alerts", Some(&practitioner), WHY, None).0,
        401
    );
}
