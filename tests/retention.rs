//! Retention and subject access over real HTTP against the real server: two people monitored
//! over the same days, one activation long over and one recently ended; a purge judged at an
//! injected "now" removes exactly the due activation's readings (in the log), positions, alerts
//! with reviews and events, sober days, and — the person having nothing left — the person, order,
//! caseload link and audit records, and leaves the other person's untouched; a restart (with the
//! same orders file) brings nothing back. The subject access export holds every section, is
//! admin-only and audited. Offline, the CLI refuses to run beside a server, exports, and purges.

mod common;

use common::{add_user, bin, call, Server, TagClient};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use tagstream::alerts::alert_store::AlertStore;
use tagstream::log::LogReader;
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::Reading;

const DAY_MS: i64 = 86_400_000;
const FROM: &str = "2026-03-02T00:00:00Z";
const PERIOD: &str = "from=2026-03-01T00:00:00Z&to=2026-03-08T00:00:00Z";
/// Per tag: TAC every 30 minutes and a fix every 10 minutes for three days, and a strap
/// opened and closed (a tamper alert).
const TAC: usize = 3 * 48;
const FIXES: usize = 3 * 24 * 6;
const EVENTS: usize = 2;
const PER_TAG: usize = TAC + FIXES + EVENTS;

fn three_days(lat_e7: i32) -> Vec<Reading> {
    common::monitored_days(parse_time(FROM).unwrap(), 3, lat_e7)
}

/// Readings of `tag` in the durable log, and the number of records.
fn log_counts(data: &Path, tag: &str) -> (usize, u64) {
    let mut readings = 0;
    let mut records = 0;
    for item in LogReader::open(&data.join("log")).unwrap() {
        let (_, entry) = item.unwrap();
        records += 1;
        let Some(batch) = entry.batch() else {
            continue;
        };
        if batch.tag == tag {
            readings += batch.readings.len();
        }
    }
    (readings, records)
}

fn json_of(status_body: (u16, String), want: u16) -> Value {
    let (status, body) = status_body;
    assert_eq!(status, want, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The state of one person as the API shows it, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Seen {
    person: u16,
    positions: usize,
    alert_ids: Vec<String>,
    sober_days: Vec<Value>,
}

/// A GET with a token and a stated purpose: (status, body).
fn get(server: &Server, path: &str, token: &str) -> (u16, String) {
    call(
        server,
        "GET",
        path,
        Some(token),
        Some("retention test"),
        None,
    )
}

fn seen(server: &Server, token: &str, person: &str, activation: &str, order: &str) -> Seen {
    let get = |path: &str| get(server, path, token);
    let (person_status, _) = get(&format!("/v1/people/{person}"));
    let (trail_status, trail) = get(&format!("/v1/activations/{activation}/trail?{PERIOD}"));
    let positions = if trail_status == 200 {
        trail.matches("\"Point\"").count()
    } else {
        0
    };
    let alerts = json_of(get(&format!("/v1/alerts?person={person}")), 200);
    let mut alert_ids: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    alert_ids.sort();
    let (days_status, days) = get(&format!("/v1/orders/{order}/sober-days"));
    let sober_days = if days_status == 200 {
        serde_json::from_str::<Value>(&days).unwrap()["days"]
            .as_array()
            .unwrap()
            .clone()
    } else {
        Vec::new()
    };
    Seen {
        person: person_status,
        positions,
        alert_ids,
        sober_days,
    }
}

/// Waits until both people's data is all in (positions, tamper alerts, two sober days each).
fn settled(server: &Server, hub: &str) -> (Seen, Seen) {
    for _ in 0..200 {
        let one = seen(server, hub, "P1", "A1", "O1");
        let two = seen(server, hub, "P2", "A2", "O2");
        let done =
            |s: &Seen| s.positions == FIXES && !s.alert_ids.is_empty() && s.sober_days.len() >= 2;
        if done(&one) && done(&two) {
            return (one, two);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "data never settled: {:?} {:?}",
        seen(server, hub, "P1", "A1", "O1"),
        seen(server, hub, "P2", "A2", "O2")
    );
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run tagstream")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_exactly_what_is_due_and_subject_access_exports_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tagstream.toml");
    std::fs::write(
        &config,
        "segment_bytes = 8192\n[retention]\ndays_after_end = 30\nrun_every_hours = 0\nallow_now_override = true\n",
    )
    .unwrap();
    // "Now" is 40 days from the wall clock: A1 (ended in March) is past 30 days of retention; A2
    // ends 20 days from the wall clock, so it ended only 20 days before that "now".
    let wall_ms = tagstream::retention::purge::wall_clock_ms();
    let (orders, now) = common::purge_orders(dir.path());
    let hub = add_user(&data, "hana", "hub", &[]);
    let pat = add_user(&data, "pat", "practitioner", &["--caseload", "P1,P2"]);
    let ada = add_user(&data, "ada", "admin", &[]);
    let cfg = config.to_str().unwrap();
    let mut server = Server::start(&data, Some(&orders), &["--config", cfg]);

    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    let (r1, r2) = (three_days(514_500_000), three_days(514_600_000));
    for (i, (c1, c2)) in r1.chunks(20).zip(r2.chunks(20)).enumerate() {
        t1.send_acked(i as u64 + 1, c1.to_vec()).await;
        t2.send_acked(i as u64 + 1, c2.to_vec()).await;
    }
    let (before1, before2) = settled(&server, &hub);
    assert_eq!(before1.sober_days.len(), 2, "{:?}", before1.sober_days);
    let api = |method: &str, path: &str, token: &str, body: Option<Value>| {
        call(
            &server,
            method,
            path,
            Some(token),
            Some("retention test"),
            body,
        )
    };
    let tamper = before1.alert_ids.clone();
    json_of(
        api(
            "POST",
            &format!("/v1/alerts/{}/acknowledge", tamper[0]),
            &hub,
            Some(json!({"notes": "called the wearer"})),
        ),
        200,
    );
    assert_eq!(log_counts(&data, "T1").0, PER_TAG);
    let (t2_readings, records) = log_counts(&data, "T2");
    assert_eq!(t2_readings, PER_TAG);

    // Subject access export: admin only, purpose required, 404 for nobody, every section.
    let export = |token: &str, person: &str| {
        api(
            "GET",
            &format!("/v1/admin/people/{person}/export"),
            token,
            None,
        )
    };
    assert_eq!(export(&hub, "P1").0, 403);
    assert_eq!(export(&pat, "P1").0, 403);
    assert_eq!(export(&ada, "P9").0, 404);
    let no_purpose = call(
        &server,
        "GET",
        "/v1/admin/people/P1/export",
        Some(&ada),
        None,
        None,
    );
    assert_eq!(no_purpose.0, 400);
    let sar = json_of(export(&ada, "P1"), 200);
    assert_eq!(sar["export"]["kind"], "subject_access");
    assert_eq!(sar["person"]["id"], "P1");
    assert_eq!(sar["person"]["date_of_birth"], "1980-01-01");
    assert_eq!(sar["activations"][0]["id"], "A1");
    assert_eq!(sar["orders"][0]["conditions"][0]["type"], "alcohol");
    assert_eq!(sar["caseload_links"][0]["user"], "pat");
    let alerts = sar["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), before1.alert_ids.len());
    let reviewed = alerts
        .iter()
        .find(|a| a["id"] == tamper[0].as_str())
        .unwrap();
    assert_eq!(reviewed["review"]["state"], "acknowledged");
    assert_eq!(reviewed["review_history"][0]["notes"], "called the wearer");
    assert_eq!(sar["sober_days"].as_array().unwrap().len(), 2);
    assert_eq!(sar["trails"][0]["activation"], "A1");
    assert_eq!(
        sar["trails"][0]["positions"].as_array().unwrap().len(),
        FIXES
    );
    assert_eq!(sar["readings"].as_array().unwrap().len(), TAC + EVENTS);
    let audit = sar["audit"].as_array().unwrap();
    assert!(audit
        .iter()
        .any(|e| e["action"] == "person.read" && e["user"] == "hana"));
    assert!(audit
        .iter()
        .any(|e| e["action"] == "sar.export" && e["user"] == "ada"));
    let p1_audit_before = json_of(api("GET", "/v1/audit?person=P1", &ada, None), 200);
    let p2_audit_before = json_of(api("GET", "/v1/audit?person=P2", &ada, None), 200);
    let sar_audit: Vec<&Value> = p1_audit_before
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "sar.export")
        .collect();
    assert_eq!(sar_audit.len(), 1, "the refused exports are not audited");
    assert_eq!(sar_audit[0]["purpose"], "retention test");

    // The purge: admin only, judged at the injected now.
    let run_path = format!("/v1/admin/retention/run?now={now}");
    assert_eq!(api("POST", &run_path, &hub, None).0, 403);
    let report = json_of(api("POST", &run_path, &ada, None), 200);
    assert_eq!(report["activations"], json!(["A1"]), "{report:#}");
    assert_eq!(report["people"], json!(["P1"]));
    let counts = &report["counts"];
    assert_eq!(counts["log_readings"], PER_TAG);
    assert_eq!(counts["trail_positions"], FIXES);
    assert_eq!(counts["alerts"], before1.alert_ids.len());
    assert_eq!(counts["alert_reviews"], 1);
    assert_eq!(counts["sober_days"], 2);
    assert_eq!(counts["tac_readings"], TAC);
    assert_eq!(counts["other"]["last_contact"], 1, "A1's last contact");
    assert_eq!(
        (counts["activations"].as_u64(), counts["orders"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(counts["caseload_links"], 1);
    assert_eq!(
        counts["audit_records"],
        p1_audit_before.as_array().unwrap().len()
    );
    // The log's control records about P1 (their name, date of birth, activation and order) are
    // erased by this run's compaction, not the next one's: kept as `redacted`, numbering as it
    // was. P2's stay.
    let mut redacted = 0;
    let mut mentions_p2 = false;
    for item in LogReader::open(&data.join("log")).unwrap().controls_only() {
        if let (_, tagstream::model::LogEntry::Control { control, .. }) = item.unwrap() {
            let text = serde_json::to_string(&*control).unwrap();
            assert!(
                !text.contains("Long Gone") && !text.contains("1980-01-01"),
                "a control record still names the purged person: {text}"
            );
            redacted += usize::from(control.change.op() == "redacted");
            mentions_p2 |= text.contains("Still Here");
        }
    }
    assert!(
        redacted >= 3,
        "person, activation and order records erased: {redacted}"
    );
    assert!(mentions_p2, "the other person's records are kept");
    let runs = json_of(api("GET", "/v1/admin/retention/runs", &ada, None), 200);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["trigger"], "admin:ada");
    assert_eq!(runs[0]["report"]["activations"], json!(["A1"]));
    assert!(
        !runs[0].to_string().contains("Long Gone"),
        "no personal data in the run record"
    );

    // Gone at once, everywhere; the other person's data is as it was.
    let p1_audit_ids: Vec<&Value> = p1_audit_before
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    let check_after = |server: &Server| {
        let get = |path: &str, token: &str| get(server, path, token);
        // (Listing alerts with ?person=P1, as below, is itself audited under P1.)
        let p1_audit = json_of(get("/v1/audit?person=P1", &ada), 200);
        assert!(p1_audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !p1_audit_ids.contains(&&e["id"]) && e["action"] == "alerts.list"));
        let one = seen(server, &hub, "P1", "A1", "O1");
        assert_eq!(
            one,
            Seen {
                person: 404,
                positions: 0,
                alert_ids: vec![],
                sober_days: vec![]
            }
        );
        assert_eq!(seen(server, &hub, "P2", "A2", "O2"), before2);
        assert_eq!(
            get(&format!("/v1/activations/A1/trail?{PERIOD}"), &hub).0,
            404
        );
        assert_eq!(get(&format!("/v1/alerts/{}", tamper[0]), &hub).0, 404);
        let export = get("/v1/alerts/export", &hub).1;
        assert!(
            !export.contains("\"A1\"") && export.contains("\"A2\""),
            "{export}"
        );
        assert_eq!(get("/v1/admin/people/P1/export", &ada).0, 404);
        let p2_audit = json_of(get("/v1/audit?person=P2", &ada), 200);
        assert!(p2_audit.as_array().unwrap().len() >= p2_audit_before.as_array().unwrap().len());
        let users = json_of(get("/v1/users", &ada), 200);
        let pat = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "pat")
            .unwrap();
        assert_eq!(pat["caseload"], json!(["P2"]));
        assert_eq!(
            log_counts(&data, "T1"),
            (0, records + 1),
            "tombstones keep the numbering (and the purge is a record of its own)"
        );
        assert_eq!(log_counts(&data, "T2").0, PER_TAG);
        let store = AlertStore::open(&data).unwrap();
        let events = store.events_after(0, 1_000_000).unwrap();
        assert!(events.iter().all(|e| !tamper.contains(&e.alert_id)));
        assert!(store.review_history(&tamper[0]).unwrap().is_empty());
        // The log's control records say the same: P1 purged (a purge record), P2 kept.
        let inspect = std::process::Command::new(common::bin())
            .args(["inspect", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let summary: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(summary["activations"], 1, "{summary}");
        assert_eq!(summary["people"], 1, "{summary}");
    };
    check_after(&server);

    // A restart replays the log (and re-imports the same orders file): nothing comes back.
    server.kill9();
    let server = Server::start(&data, Some(&orders), &["--config", cfg]);
    let _ = server.settled_alerts();
    check_after(&server);

    // A late upload for A1's window, after A1 was purged: stored (and acknowledged), attributed
    // to no one; the next compaction removes it too.
    let mut late = TagClient::connect(&server.ingest_addr, "T1").await;
    let seq = late.last_seq + 1;
    late.send_acked(seq, r1[..1].to_vec()).await;
    assert_eq!(log_counts(&data, "T1").0, 1);

    // Offline commands refuse to run beside the server.
    let data_arg = data.to_str().unwrap();
    let busy = cli(&["retention", "run", "--data", data_arg, "--config", cfg]);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("holds this data directory"));
    drop(server);

    // Offline subject access export of the remaining person, audited with its purpose.
    let out = dir.path().join("p2.json");
    let exported = cli(&[
        "people",
        "export",
        "--data",
        data_arg,
        "--person",
        "P2",
        "--out",
        out.to_str().unwrap(),
        "--purpose",
        "SAR 42",
        "--config",
        cfg,
    ]);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let sar: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        sar["trails"][0]["positions"].as_array().unwrap().len(),
        FIXES
    );
    assert_eq!(
        sar["sober_days"].as_array().unwrap().len(),
        before2.sober_days.len()
    );
    assert_eq!(sar["readings"].as_array().unwrap().len(), TAC + EVENTS);
    assert_eq!(
        sar["alerts"].as_array().unwrap().len(),
        before2.alert_ids.len()
    );
    assert!(sar["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "sar.export" && e["purpose"] == "SAR 42"));

    // Offline purge later on: A2 is now due; P2 keeps an open-ended order, so stays.
    let later = format_time(wall_ms + 60 * DAY_MS);
    let purged = cli(&[
        "retention",
        "run",
        "--data",
        data_arg,
        "--now",
        &later,
        "--config",
        cfg,
    ]);
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    let report: Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(report["activations"], json!(["A2"]));
    assert_eq!(report["people"], json!([]));
    assert_eq!(report["trigger"], "cli");
    assert_eq!(report["counts"]["log_readings"], PER_TAG + 1);
    assert_eq!(log_counts(&data, "T1").0, 0, "the late reading went too");
    assert_eq!(report["counts"]["trail_positions"], FIXES);
    assert_eq!(log_counts(&data, "T2").0, 0);
    let server = Server::start(&data, None, &["--config", cfg]);
    let two = seen(&server, &hub, "P2", "A2", "O2");
    assert_eq!(
        (two.person, two.positions, two.alert_ids.len()),
        (200, 0, 0)
    );
    let runs = json_of(
        call(
            &server,
            "GET",
            "/v1/admin/retention/runs",
            Some(&ada),
            None,
            None,
        ),
        200,
    );
    assert_eq!(runs.as_array().unwrap().len(), 2);
}
