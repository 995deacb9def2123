//! The hub's work queue over real HTTP: alerts stored with stable ids and reviewed (acknowledge,
//! assign, resolve with outcome; attributed, with history), filtered and counted; the SSE stream
//! resumed after a disconnect with Last-Event-ID loses nothing; a webhook endpoint that fails
//! and then recovers receives every event, in order; after a kill -9, numbering continues above
//! every number handed out before, so a resuming client neither misses nor repeats a change.

mod common;

use common::{add_user, call, fixture, read_sse, stream_health_fixture, Server, TagClient};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A webhook receiver that answers 500 to the first `fail_first` requests, then 200.
fn webhook_receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let got = received.clone();
    std::thread::spawn(move || {
        let mut requests = 0usize;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            requests += 1;
            let status = if requests <= fail_first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if requests > fail_first {
                if let Ok(v) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
                    got.lock().unwrap().extend(v);
                }
            }
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (format!("http://{addr}/hook"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_lifecycle_sse_resume_and_webhook_retry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let practitioner = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    let (hook_url, received) = webhook_receiver(3);
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!("[[webhooks]]\nurl = \"{hook_url}\"\nbatch = 2\nmax_backoff_ms = 200\n"),
    )
    .unwrap();
    let server = Server::start(
        &data,
        Some(&fixture("orders.json")),
        &["--config", config.to_str().unwrap()],
    );
    stream_health_fixture(&server).await;
    let _ = server.settled_alerts();

    let why = Some("hub queue");
    let (status, body) = call(
        &server,
        "GET",
        "/v1/alerts?type=strap_tamper",
        Some(&hub),
        why,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1, "{body}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["review"]["state"], "new");

    // A practitioner sees only their caseload's alerts (P2's), and cannot act.
    let (_, theirs) = call(&server, "GET", "/v1/alerts", Some(&practitioner), why, None);
    let theirs: Vec<serde_json::Value> = serde_json::from_str(&theirs).unwrap();
    assert!(!theirs.is_empty() && theirs.iter().all(|a| a["person"] == "P2"));
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("/v1/alerts/{id}/acknowledge"),
            Some(&practitioner),
            None,
            Some(json!({}))
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/v1/alerts/{id}"),
            Some(&practitioner),
            why,
            None
        )
        .0,
        403
    );

    // SSE: everything so far, then disconnect.
    let (_, count_body) = call(&server, "GET", "/v1/alerts/count", Some(&hub), why, None);
    let total = serde_json::from_str::<serde_json::Value>(&count_body).unwrap()["total"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(total, 5, "{count_body}");
    // Every alert is raised once; those that closed were updated once more.
    let all = read_sse(&server.http_addr, &hub, None, usize::MAX);
    assert!(
        all.len() >= total,
        "{} events for {total} alerts",
        all.len()
    );
    assert_eq!(all.iter().filter(|e| e.1 == "raised").count(), total);
    let ids: Vec<i64> = all.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "events numbered without gaps"
    );
    // Disconnect part-way through, resume from there: the rest arrives exactly once.
    let first = read_sse(&server.http_addr, &hub, None, 2);
    let rest = read_sse(&server.http_addr, &hub, Some(first[1].0), usize::MAX);
    assert_eq!([first.clone(), rest].concat(), all);
    let last_seen = all.last().unwrap().0;

    // Review while the stream is down.
    let act = |action: &str, body: serde_json::Value| {
        call(
            &server,
            "POST",
            &format!("/v1/alerts/{id}/{action}"),
            Some(&hub),
            why,
            Some(body),
        )
    };
    assert_eq!(
        act("acknowledge", json!({"notes": "calling the wearer"})).0,
        200
    );
    assert_eq!(act("assign", json!({"assignee": "field officer 7"})).0, 200);
    let (status, body) = act("resolve", json!({"notes": "reasonable"}));
    assert_eq!(status, 400, "resolve without outcome: {body}");
    let (status, body) = act(
        "resolve",
        json!({"outcome": "reasonable_excuse", "notes": "strap caught on bed frame"}),
    );
    assert_eq!(status, 200, "{body}");
    let resolved: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resolved["review"]["state"], "resolved");
    assert_eq!(resolved["review"]["outcome"], "reasonable_excuse");
    assert_eq!(resolved["review"]["reviewed_by"], "hana-hub");
    assert_eq!(
        act("acknowledge", json!({})).0,
        409,
        "a resolved alert is closed"
    );

    // Resume: exactly the three review events, none repeated, none lost.
    let resumed = read_sse(&server.http_addr, &hub, Some(last_seen), 3);
    let ids: Vec<i64> = resumed.iter().map(|e| e.0).collect();
    assert_eq!(ids, vec![last_seen + 1, last_seen + 2, last_seen + 3]);
    assert!(resumed
        .iter()
        .all(|e| e.1 == "reviewed" && e.2.contains(&id)));

    let (_, one) = call(
        &server,
        "GET",
        &format!("/v1/alerts/{id}"),
        Some(&hub),
        why,
        None,
    );
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    let actions: Vec<&str> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["acknowledge", "assign", "resolve"]);
    assert!(one["history"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["user"] == "hana-hub"));
    let (_, resolved_count) = call(
        &server,
        "GET",
        "/v1/alerts/count?state=resolved",
        Some(&hub),
        why,
        None,
    );
    assert!(resolved_count.contains("\"total\":1"), "{resolved_count}");

    // The webhook failed three times, then got every event in order.
    let expected = (last_seen + 3) as usize;
    for _ in 0..100 {
        if received.lock().unwrap().len() >= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = received.lock().unwrap().clone();
    let seqs: Vec<i64> = got.iter().map(|e| e["event"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=expected as i64).collect::<Vec<_>>(),
        "webhook events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_a_resuming_stream_gets_only_new_changes_numbered_above_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana-hub", "hub", &[]);
    let mut server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    stream_health_fixture(&server).await;
    let _ = server.settled_alerts();
    let before = read_sse(&server.http_addr, &hub, None, usize::MAX);
    assert!(!before.is_empty());
    let last_seen = before.last().unwrap().0;
    server.kill9();

    // The restart re-derives every alert from the log exactly as stored: nothing to deliver.
    let server = Server::start(&data, None, &[]);
    let _ = server.settled_alerts();
    let repeated = read_sse(&server.http_addr, &hub, Some(last_seen), usize::MAX);
    assert!(repeated.is_empty(), "repeated after restart: {repeated:?}");

    // A new change is numbered above the block reserved before the crash, so no number a
    // client saw (even one published and never stored) is ever reused.
    let strap_open = tagstream::model::Reading {
        t_ms: tagstream::model::time::parse_time("2026-03-28T03:00:00Z").unwrap(),
        battery_pct: Some(80),
        body: tagstream::model::ReadingBody::Event(tagstream::model::DeviceEvent::StrapOpen),
    };
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tag.send_acked(14, vec![strap_open]).await;
    let after = read_sse(&server.http_addr, &hub, Some(last_seen), 1);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].1, "raised");
    assert!(after[0].2.contains("strap_tamper"), "{}", after[0].2);
    assert!(
        after[0].0 > tagstream::alerts::live_alerts::SEQ_BLOCK,
        "event {} after the restart",
        after[0].0
    );
    // The same from the start: every event once, in increasing order.
    let all = read_sse(&server.http_addr, &hub, None, usize::MAX);
    assert_eq!(all, [before, after].concat());
}
