//! Issue 14: people, activations and orders changed through the API on a running server are
//! monitored from the next reading (no restart), take effect at their effective time, and a
//! backdated variation withdraws what no longer holds; the log alone reproduces all of it
//! (replay of the data directory with no orders file, and a restart after kill -9).

mod common;

use common::{call, gps_fix_offset, replay_alerts_with, Server, TagClient, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tagstream::model::time::parse_time;
use tagstream::model::Reading;

const HOME: (f64, f64) = (51.4545, -2.5879);

fn post(server: &Server, path: &str, body: Value) -> (u16, String) {
    call(server, "POST", path, Some(ADMIN_TOKEN), None, Some(body))
}

fn curfew_order(start: &str) -> Value {
    json!({"id": "O1", "person": "P1", "from": "2026-03-01", "conditions": [{
        "type": "curfew",
        "addresses": [{"id": "home", "lat": HOME.0, "lon": HOME.1, "radius_m": 50}],
        "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                       "start": start, "end": "07:00", "address": "home"}]}]})
}

/// Fixes every 2 minutes from `from` to `to`, `east_m` east of home.
fn track(from: &str, to: &str, east_m: f64) -> Vec<Reading> {
    let (from, to) = (parse_time(from).unwrap(), parse_time(to).unwrap());
    (0..)
        .map(|i| from + i * 120_000)
        .take_while(|t| *t < to)
        .map(|t| gps_fix_offset(t, HOME, east_m, 0.0))
        .collect()
}

fn alerts(server: &Server) -> Vec<Value> {
    server
        .get("/v1/alerts/export")
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn curfew_alerts(server: &Server) -> Vec<Value> {
    alerts(server)
        .into_iter()
        .filter(|a| a["type"] == "curfew_violation")
        .collect()
}

/// Waits (up to `limit`) until `test` holds for the server's alerts.
fn wait_for(server: &Server, limit: Duration, test: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let now = curfew_alerts(server);
        if test(&now) || start.elapsed() > limit {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_made_through_the_api_is_monitored_at_once_and_a_backdated_variation_withdraws() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, None, &[]);

    // A new person, a tag fitted, a 19:00–07:00 curfew: no restart.
    assert_eq!(
        post(&server, "/v1/people", json!({"id": "P1", "name": "Ann"})).0,
        201
    );
    let activation =
        json!({"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-01T00:00:00Z"});
    assert_eq!(post(&server, "/v1/activations", activation).0, 201);
    let (status, body) = post(&server, "/v1/orders", curfew_order("19:00"));
    assert_eq!(status, 201, "{body}");
    // A change the record book refuses is answered with why (and changes nothing).
    let bad = json!({"id": "A2", "person": "P9", "tag": "T2", "from": "2026-03-01T00:00:00Z"});
    let (status, body) = post(&server, "/v1/activations", bad);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("unknown person 'P9'"), "{body}");

    // 2 km from home from 18:00 to 22:00 on Monday 2 March (GMT), then home.
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tag.send_acked(
        1,
        track("2026-03-02T18:00:00Z", "2026-03-02T22:00:00Z", 2_000.0),
    )
    .await;
    let uploaded = Instant::now();
    tag.send_acked(
        2,
        track("2026-03-02T22:00:00Z", "2026-03-03T08:00:00Z", 0.0),
    )
    .await;
    let raised = wait_for(&server, Duration::from_secs(5), |a| !a.is_empty());
    assert!(
        !raised.is_empty(),
        "no curfew alert from an order made through the API"
    );
    assert!(
        uploaded.elapsed() < Duration::from_secs(5),
        "the alert took {:?}",
        uploaded.elapsed()
    );
    assert!(raised.iter().all(|a| a["withdrawn"].is_null()));
    let _ = server.settled_alerts();
    let raised = curfew_alerts(&server);

    // A variation effective from 1 March: the curfew starts at 23:00, so the evening out no
    // longer breaches it. The alert is kept, withdrawn, naming the change.
    let path = "/v1/orders?effective=2026-03-01T00:00:00Z";
    let (status, body) = post(&server, path, curfew_order("23:00"));
    assert_eq!(status, 201, "{body}");
    let after = wait_for(&server, Duration::from_secs(5), |a| {
        a.iter().any(|x| !x["withdrawn"].is_null())
    });
    let withdrawn: Vec<Value> = after
        .iter()
        .filter(|a| !a["withdrawn"].is_null())
        .cloned()
        .collect();
    assert!(!withdrawn.is_empty(), "nothing withdrawn: {after:?}");
    for a in &withdrawn {
        let reason = a["withdrawn"]["reason"].as_str().unwrap();
        assert!(reason.contains("order 'O1'"), "{reason}");
    }
    let ids = |list: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = list
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&raised),
        ids(&withdrawn),
        "every earlier alert is kept, withdrawn"
    );
    let live = server.settled_alerts();

    // The log alone reproduces it: replay of the data directory, no orders file.
    let out = dir.path().join("replay");
    let replayed = replay_alerts_with(None, &data, &out);
    assert_eq!(
        replayed, live,
        "replay of the data directory differs from live"
    );

    // And so does a JSON Lines recording of it: control lines and arrival times included.
    let mut recording = Vec::new();
    tagstream::replay::read_recorded(&data, &mut |entry| match entry {
        tagstream::model::LogEntry::Batch(batch) => {
            tagstream::formats::readings_jsonl::write_batch(&mut recording, &batch).unwrap()
        }
        tagstream::model::LogEntry::Control { record, control } => {
            tagstream::formats::readings_jsonl::write_control(&mut recording, record, &control)
                .unwrap()
        }
    })
    .unwrap();
    let file = dir.path().join("recording.jsonl");
    std::fs::write(&file, recording).unwrap();
    let from_file = replay_alerts_with(None, &file, &dir.path().join("replay-file"));
    assert_eq!(
        from_file, live,
        "replay of the JSON Lines recording differs from live"
    );

    // A kill -9 and a restart (no --orders) give the same alerts and the same people.
    server.kill9();
    let mut server = Server::start(&data, None, &[]);
    assert_eq!(server.settled_alerts(), live, "restart differs");
    let person_json = server.get("/v1/people/P1").unwrap();
    let person: Value = serde_json::from_str(&person_json).unwrap();
    assert_eq!(
        person["orders"][0]["conditions"][0]["timetable"][0]["start"],
        "23:00"
    );
    let history = server.get("/v1/people/P1/history").unwrap();

    // Every store is a view: `tagstream rebuild` builds them again from the log alone.
    server.kill9();
    let report = common::rebuild(&data);
    assert!(std::path::Path::new(report["old_stores"].as_str().unwrap()).is_dir());
    let server = Server::start(&data, None, &[]);
    assert_eq!(server.settled_alerts(), live, "rebuild differs");
    assert_eq!(server.get("/v1/people/P1").unwrap(), person_json);
    assert_eq!(server.get("/v1/people/P1/history").unwrap(), history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_before_their_activation_existed_are_judged_once_it_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None, &[]);
    assert_eq!(post(&server, "/v1/people", json!({"id": "P1"})).0, 201);
    assert_eq!(post(&server, "/v1/orders", curfew_order("19:00")).0, 201);
    // The tag uploads before anyone recorded that it was fitted.
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tag.send_acked(
        1,
        track("2026-03-02T18:00:00Z", "2026-03-02T22:00:00Z", 2_000.0),
    )
    .await;
    tag.send_acked(
        2,
        track("2026-03-02T22:00:00Z", "2026-03-03T08:00:00Z", 0.0),
    )
    .await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(curfew_alerts(&server).is_empty());
    let activation =
        json!({"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-01T00:00:00Z"});
    assert_eq!(post(&server, "/v1/activations", activation).0, 201);
    let raised = wait_for(&server, Duration::from_secs(5), |a| !a.is_empty());
    assert!(
        !raised.is_empty(),
        "the readings already in the log were not judged"
    );
    let live = server.settled_alerts();
    let replayed = replay_alerts_with(None, &data, &dir.path().join("replay"));
    assert_eq!(replayed, live);

    // The trail files them too, live, under the record that made them the activation's: the
    // same as a rebuild from the log gives (which once used the final activations instead).
    let trail = |server: &Server| {
        let (status, body) = call(
            server,
            "GET",
            "/v1/people/P1/trail?from=2026-03-02T18:00:00Z&to=2026-03-03T08:00:00Z",
            Some(ADMIN_TOKEN),
            Some("test"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    let sent = 2 * 60 + 5 * 60;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut live_trail = trail(&server);
    while live_trail.matches("\"Point\"").count() < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        live_trail = trail(&server);
    }
    assert_eq!(
        live_trail.matches("\"Point\"").count(),
        sent,
        "positions uploaded before their activation existed are in the live trail"
    );
    let mut server = server;
    server.kill9();
    common::rebuild(&data);
    let server = Server::start(&data, None, &[]);
    assert_eq!(trail(&server), live_trail, "the rebuilt trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_day_tag_swap_gives_one_continuous_trail_and_an_address_change_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None, &[]);
    assert_eq!(post(&server, "/v1/people", json!({"id": "P1"})).0, 201);
    let first = json!({"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-01T00:00:00Z"});
    assert_eq!(post(&server, "/v1/activations", first).0, 201);
    assert_eq!(post(&server, "/v1/orders", curfew_order("19:00")).0, 201);

    // Morning on T1; at 12:00 the faulty tag is swapped for T2.
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(
        1,
        track("2026-03-02T08:00:00Z", "2026-03-02T12:00:00Z", 0.0),
    )
    .await;
    let end = json!({"to": "2026-03-02T12:00:00Z"});
    let (status, body) = post(&server, "/v1/activations/A1/end", end);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "/v1/activations/A1/end",
        json!({"to": "2026-03-02T13:00:00Z"}),
    );
    assert_eq!(status, 409, "ending twice: {body}");
    let second = json!({"id": "A2", "person": "P1", "tag": "T2", "from": "2026-03-02T12:00:00Z"});
    assert_eq!(post(&server, "/v1/activations", second).0, 201);
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    t2.send_acked(
        1,
        track("2026-03-02T12:00:00Z", "2026-03-02T18:00:00Z", 0.0),
    )
    .await;

    // One continuous trail for the person across both tags: a fix every 2 minutes, 08–18.
    let period = "from=2026-03-02T08:00:00Z&to=2026-03-02T18:00:00Z";
    let trail = |server: &Server| {
        let (status, body) = call(
            server,
            "GET",
            &format!("/v1/people/P1/trail?{period}"),
            Some(ADMIN_TOKEN),
            Some("test"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    let mut points = 0;
    for _ in 0..100 {
        points = trail(&server).matches("\"Point\"").count();
        if points == 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(points, 300, "120 fixes from T1 and 180 from T2");

    // The person moves 2 km east from 18:00: an address change (corrected to where they
    // now live) makes the evening at the new address compliant, not a breach.
    let mut moved = curfew_order("19:00");
    moved["conditions"][0]["addresses"][0]["lon"] = json!(HOME.1 + 2_000.0 / 69_400.0);
    let (status, body) = post(&server, "/v1/orders?effective=2026-03-02T00:00:00Z", moved);
    assert_eq!(status, 201, "{body}");
    t2.send_acked(
        2,
        track("2026-03-02T18:00:00Z", "2026-03-03T08:00:00Z", 2_000.0),
    )
    .await;
    let _ = server.settled_alerts();
    let live = curfew_alerts(&server);
    assert!(
        live.iter()
            .filter(|a| a["start"].as_str().unwrap() >= "2026-03-02T12:00:00")
            .all(|a| !a["withdrawn"].is_null()),
        "a breach at the new address: {live:?}"
    );
    let replayed = replay_alerts_with(None, &data, &dir.path().join("replay"));
    let live = server.settled_alerts();
    assert_eq!(replayed, live);

    // Rebuilt from the log, the trail across both tags and the alerts are the same.
    let live_trail = trail(&server);
    let mut server = server;
    server.kill9();
    common::rebuild(&data);
    let server = Server::start(&data, None, &[]);
    assert_eq!(server.settled_alerts(), live);
    assert_eq!(trail(&server), live_trail);
}
