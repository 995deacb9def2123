//! Issue 14, hits: a hit that no longer holds is withdrawn — kept, marked with the change that
//! caused it and why, never deleted. Over a running server: a confirmed hit whose activation is
//! then ended (backdated, before the crime) stays listed, marked withdrawn with the control
//! record's number, its review history intact; reviewing it again is refused (409); police still
//! see it, marked; a kill -9 and a restart give the same hit, still withdrawn for the same reason.

mod common;

use common::{add_user, call, gps_fix_offset, Server, TagClient};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tagstream::model::time::parse_time;
use tagstream::model::Reading;

/// The crime's location (central Bristol).
const C1: (f64, f64) = (51.4545, -2.5879);
const PURPOSE: Option<&str> = Some("crime hit review");

const ORDERS: &str = r#"{"people":[{"id":"P1","name":"Alex Example","restricted":false}],
 "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-28T00:00:00Z","to":null}],
 "orders":[{"id":"O1","person":"P1","from":"2026-03-28","to":"2026-06-01","conditions":[{"type":"trail"}]}]}"#;

/// A burglary at C1, 10:20–10:40 on 28 March.
const BATCH: &str = "AvonSomerset,BIAD,Burglary in a dwelling,AVS20260329,AVS/1,20260328102000,20260328104000,,,51.4545,-2.5879,WGS84,Rear door forced\n";

/// T1 walks west to east past C1, 30 m north of it, a fix every 2 minutes from 10:21 to 10:41.
fn walk_past() -> Vec<Reading> {
    let at = parse_time("2026-03-28T10:30:00Z").unwrap();
    (-10..=10)
        .step_by(2)
        .map(|m: i64| gps_fix_offset(at + m * 60_000 + 60_000, C1, 75.0 + 75.0 * m as f64, 30.0))
        .collect()
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn get(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = call(server, "GET", path, Some(token), PURPOSE, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    json_of(&body)
}

fn hits(server: &Server, token: &str, query: &str) -> Vec<Value> {
    get(server, &format!("/v1/hits{query}"), token)
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `GET path` until `done` holds of it (or 20 s pass); the last answer.
fn wait_until(server: &Server, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let now = get(server, path, token);
        if done(&now) || start.elapsed() > Duration::from_secs(20) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn upload(server: &Server, token: &str, csv: &str) -> (u16, String) {
    match ureq::post(&format!("http://{}/v1/crimes/batches", server.http_addr))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "text/csv")
        .query("filename", "AVS20260329.csv")
        .send_string(csv)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("upload: {e}"),
    }
}

fn review(server: &Server, token: &str, id: &str, decision: &str) -> (u16, String) {
    let body = json!({"decision": decision, "reason": "the person is on CCTV nearby"});
    let path = format!("/v1/hits/{id}/review");
    call(server, "POST", &path, Some(token), None, Some(body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_hit_withdrawn_by_a_backdated_end_stays_listed_marked_with_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, ORDERS).unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let police = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let mut server = Server::start(&data, Some(&orders), &[]);

    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(1, walk_past()).await;
    // The upload matches against the trail store: wait until the trail feed has the walk.
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = upload(&server, &police, BATCH);
    assert_eq!(status, 200, "{body}");
    let found = wait_until(&server, "/v1/hits", &hub, |h| {
        h.as_array().unwrap().len() == 1
    });
    let id = found[0]["id"].as_str().expect("one hit").to_string();
    assert!(found[0].get("withdrawn").is_none(), "{found}");
    let (status, body) = review(&server, &hub, &id, "confirm");
    assert_eq!(status, 200, "{body}");
    let trail_csv = format!("/v1/hits/{id}/trail?format=csv");
    let (status, trail) = call(&server, "GET", &trail_csv, Some(&police), PURPOSE, None);
    assert_eq!(status, 200, "{trail}");
    assert_eq!(trail.lines().count(), 1 + walk_past().len(), "{trail}");

    // The tag was in fact removed at 09:00, before the crime: recorded late, backdated.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/activations/A1/end",
        Some(&hub),
        None,
        Some(json!({"to": "2026-03-28T09:00:00Z"})),
    );
    assert_eq!(status, 200, "{body}");
    let history = get(&server, "/v1/people/P1/history", &hub);
    let record = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["change"]["op"] == "end_activation")
        .and_then(|c| c["record"].as_u64())
        .unwrap_or_else(|| panic!("no end_activation in {history}"));

    // Withdrawn, not deleted: the hit is still there, marked with the change and why.
    let path = format!("/v1/hits/{id}");
    let hit = wait_until(&server, &path, &hub, |h| h.get("withdrawn").is_some());
    let withdrawn = &hit["withdrawn"];
    assert_eq!(withdrawn["change"], record, "{hit}");
    let reason = withdrawn["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "activation 'A1' ended 2026-03-28T09:00:00Z, so its positions from then on no \
             longer count (change {record}): the trail of activation 'A1' no longer comes \
             within 100 m of crime 'AVS/1' version 1"
        )),
        "{reason}"
    );
    // Its review and review history are intact; the decision was made on other evidence.
    assert_eq!(hit["review"]["state"], "confirmed");
    assert_eq!(hit["review"]["by"], "hana");
    assert_eq!(hit["review"]["changed_after_review"], true);
    let history = hit["review_history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{hit}");
    assert_eq!(history[0]["decision"], "confirmed");

    // Listed by default (it had been reviewed), marked; left out or alone when asked.
    let listed = hits(&server, &hub, "");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["withdrawn"], *withdrawn);
    assert!(hits(&server, &hub, "?withdrawn=exclude").is_empty());
    assert_eq!(hits(&server, &hub, "?withdrawn=only").len(), 1);
    assert!(hits(&server, &hub, "?state=pending").is_empty());
    let (status, _) = call(
        &server,
        "GET",
        "/v1/hits?withdrawn=maybe",
        Some(&hub),
        PURPOSE,
        None,
    );
    assert_eq!(status, 400);
    // Police had been told of the confirmed hit: they see that it was withdrawn.
    let theirs = hits(&server, &police, "");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["withdrawn"]["change"], record);
    assert_eq!(get(&server, &path, &police)["withdrawn"], *withdrawn);
    let evidence = get(&server, &format!("{path}/evidence"), &police);
    assert_eq!(evidence["properties"]["withdrawn"], *withdrawn);
    // The positions after the end are not the person's: the hit's trail no longer shows them.
    let (status, trail) = call(&server, "GET", &trail_csv, Some(&police), PURPOSE, None);
    assert_eq!((status, trail.lines().count()), (200, 1), "{trail}");
    assert!(hits(&server, &police, "?withdrawn=exclude").is_empty());

    // The batch counts current hits; the hub also sees how many were withdrawn, police do not.
    let batches = get(&server, "/v1/crimes/batches", &hub);
    assert_eq!(
        (&batches[0]["hits"], &batches[0]["withdrawn_hits"]),
        (&json!(0), &json!(1)),
        "{batches}"
    );
    let theirs = get(&server, "/v1/crimes/batches", &police);
    assert!(theirs[0].get("withdrawn_hits").is_none(), "{theirs}");

    // A withdrawn hit cannot be reviewed: 409, saying why.
    for decision in ["confirm", "reject"] {
        let (status, body) = review(&server, &hub, &id, decision);
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("withdrawn"), "{body}");
    }
    assert_eq!(
        get(&server, &path, &hub)["review_history"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The export: current hits by default (equal to replay's hits.jsonl); withdrawn on request.
    let (status, body) = call(&server, "GET", "/v1/hits/export", Some(&hub), PURPOSE, None);
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = call(
        &server,
        "GET",
        "/v1/hits/export?withdrawn=include",
        Some(&hub),
        PURPOSE,
        None,
    );
    assert_eq!(status, 200);
    let lines: Vec<Value> = body.lines().map(json_of).collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["withdrawn"], *withdrawn);

    // A kill -9 and a restart (from the log alone: no orders file to re-import): the same hit,
    // still withdrawn for the same reason with the same change.
    let before = get(&server, &path, &hub);
    server.kill9();
    let server = Server::start(&data, None, &[]);
    assert_eq!(get(&server, &path, &hub), before);
    assert_eq!(hits(&server, &hub, ""), listed);
    let (status, _) = review(&server, &hub, &id, "confirm");
    assert_eq!(status, 409);
}
