//! The sober-day report over real HTTP and offline, checked from the outside as a practitioner
//! would read it: a synthetic wearer streams two weeks of TAC readings (a drinking evening, an
//! obstruction, a day not worn, a day worn half the day) into the server; `pdftotext` finds
//! every required field and value, `pdftoppm` renders every page, `qpdf --check` passes, the
//! manifest verifies, the same data gives the same bytes (twice from the API, and from
//! `tagstream report sober-days` over the stopped server's data directory), and whoever may not
//! read the person gets 403. Needs poppler-utils and qpdf (`scripts/documents-setup.sh`).

mod common;
#[path = "support/pdf_checks.rs"]
mod pdf_checks;
#[path = "support/tac_synth.rs"]
mod tac_synth;

use common::{add_user, call, Server, TagClient};
use pdf_checks::{
    assert_offline_report, assert_well_formed, page_ink, pdf_flat_text, real_street_archive,
    verify_manifest,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use tac_synth::{tac_stream, TacPlan};
use tagstream::model::time::parse_time;

const PURPOSE: &str = "supervision review";

fn orders() -> String {
    json!({
        "people": [
            {"id": "P1", "name": "Sam Sober", "nomis_id": "A7654ZY", "pnc_ref": "15/123456B",
             "date_of_birth": "1985-06-15", "offender_manager": "Jo Manager"},
            {"id": "P2", "name": "Other Person"}
        ],
        "activations": [
            {"id": "A1", "person": "P1", "tag": "S1", "from": "2026-01-05T00:00:00Z", "to": null},
            {"id": "A2", "person": "P2", "tag": "S2", "from": "2026-01-05T00:00:00Z", "to": null}
        ],
        "orders": [
            {"id": "O1", "person": "P1", "from": "2026-01-05", "to": "2026-04-30",
             "conditions": [{"type": "alcohol", "mode": "abstinence"}]},
            {"id": "O2", "person": "P2", "from": "2026-01-05", "to": "2026-04-30",
             "conditions": [{"type": "alcohol", "mode": "abstinence"}]}
        ]
    })
    .to_string()
}

/// Two weeks from Monday 5 January 2026: drinking on Thursday 8 (into Friday morning), not
/// worn on Sunday 11, worn only until 10:00 on Tuesday 13, the sensor obstructed on Thursday 15.
/// A test's scratch directory, the data directory in it, and an orders file holding `orders`.
fn scratch_with_orders(orders: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orders_file = dir.path().join("orders.json");
    std::fs::write(&orders_file, orders).unwrap();
    (dir, data, orders_file)
}

fn plan() -> TacPlan {
    TacPlan {
        days: 14,
        drinking: vec![3],
        obstructed: vec![10],
        not_worn: vec![6],
        half_worn: vec![8],
    }
}

/// A GET with this test's purpose.
fn get_bytes(server: &Server, path: &str, token: &str) -> (u16, Vec<u8>) {
    common::get_bytes(server, path, token, PURPOSE)
}

/// Waits until the order's day records stop changing; returns them.
fn settled_days(server: &Server, token: &str) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (status, body) = get_bytes(server, "/v1/orders/O1/sober-days", token);
        assert_eq!(status, 200);
        let now: Vec<u8> = body;
        if now == last && !now.is_empty() {
            break;
        }
        last = now;
    }
    let v: Value = serde_json::from_slice(&last).unwrap();
    v["days"].as_array().unwrap().clone()
}

/// S1 streams [`plan`]'s two weeks from Monday 5 January 2026; the order's day records once
/// settled.
async fn two_weeks_of_tac(server: &Server, token: &str) -> Vec<Value> {
    let readings = tac_stream(parse_time("2026-01-05T00:00:00Z").unwrap(), &plan());
    let mut tag = TagClient::connect(&server.ingest_addr, "S1").await;
    for (i, chunk) in readings.chunks(8).enumerate() {
        tag.send_acked(i as u64 + 1, chunk.to_vec()).await;
    }
    let _ = server.settled_alerts();
    settled_days(server, token)
}

fn status_of<'a>(calendar: &'a [Value], date: &str) -> &'a str {
    calendar
        .iter()
        .find(|d| d["date"] == date)
        .and_then(|d| d["status"].as_str())
        .unwrap_or_else(|| panic!("{date} is not in the calendar"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sober_day_report_from_the_api_and_offline_is_complete_reproducible_and_verifiable() {
    let (dir, data, orders_file) = scratch_with_orders(&orders());
    let hub = add_user(&data, "hana", "hub", &[]);
    let own = add_user(&data, "pia", "practitioner", &["--caseload", "P1"]);
    let other = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    let police = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let admin = add_user(&data, "ada", "admin", &[]);
    let mut server = Server::start(&data, Some(&orders_file), &[]);

    let days = two_weeks_of_tac(&server, &hub).await;
    assert!(days.len() >= 10, "{days:?}");

    let pdf_path = "/v1/people/P1/sober-day-report.pdf";
    // Who may not read the person's sober days may not have the report; no purpose, no report.
    assert_eq!(get_bytes(&server, pdf_path, &other).0, 403);
    assert_eq!(get_bytes(&server, pdf_path, &police).0, 403);
    assert_eq!(
        call(&server, "GET", pdf_path, Some(&hub), None, None).0,
        400,
        "a purpose is required"
    );
    let bad = "/v1/people/P1/sober-day-report.json?from=2026-01-10&to=2026-01-08";
    assert_eq!(get_bytes(&server, bad, &hub).0, 400);
    let (status, _) = get_bytes(
        &server,
        "/v1/people/P1/sober-day-report.json?order=O2",
        &hub,
    );
    assert_eq!(status, 404, "O2 is not P1's order");

    // The practitioner's report is the hub's, byte for byte, and the same again.
    let (status, pdf) = get_bytes(&server, pdf_path, &own);
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(get_bytes(&server, pdf_path, &hub).1, pdf);
    assert_eq!(get_bytes(&server, pdf_path, &own).1, pdf);
    let (status, json_bytes) = get_bytes(&server, "/v1/people/P1/sober-day-report.json", &own);
    assert_eq!(status, 200);
    let (status, manifest) = get_bytes(
        &server,
        "/v1/people/P1/sober-day-report-manifest.json",
        &own,
    );
    assert_eq!(status, 200);
    let report: Value = serde_json::from_slice(&json_bytes).unwrap();
    let manifest_json: Value = serde_json::from_slice(&manifest).unwrap();

    // The content: the whole order up to the data, each day as the server classified it.
    assert_eq!(report["period"]["from"], "2026-01-05");
    let calendar = report["calendar"].as_array().unwrap().clone();
    let through = report["period"]["data_through"].as_str().unwrap();
    assert_eq!(report["period"]["to"], through);
    assert!(("2026-01-17".."2026-01-19").contains(&through), "{through}");
    for day in &days {
        let date = day["date"].as_str().unwrap();
        assert_eq!(status_of(&calendar, date), day["status"], "{date}");
    }
    assert_eq!(status_of(&calendar, "2026-01-08"), "drinking");
    assert_eq!(status_of(&calendar, "2026-01-11"), "not_worn");
    assert_eq!(status_of(&calendar, "2026-01-13"), "partial");
    assert_eq!(status_of(&calendar, "2026-01-06"), "sober");
    let awaiting = report["awaiting_data"].as_array().unwrap().len();
    assert_eq!(calendar.len(), days.len() + awaiting);
    assert!(awaiting >= 1, "the last day waits for later data");
    let summary = &report["rate"]["summary"];
    let count = |s: &str| days.iter().filter(|d| d["status"] == s).count() as u64;
    assert_eq!(summary["sober"], count("sober"));
    assert_eq!(
        summary["worn"],
        count("sober") + count("drinking") + count("tamper")
    );
    let (_, alerts) = call(
        &server,
        "GET",
        "/v1/alerts",
        Some(&hub),
        Some(PURPOSE),
        None,
    );
    let alerts: Vec<Value> = serde_json::from_str(&alerts).unwrap();
    let mut alcohol: Vec<String> = alerts
        .iter()
        .filter(|a| a["person"] == "P1" && a["withdrawn"].is_null())
        .filter(|a| {
            [
                "drinking_event",
                "alcohol_obstruction",
                "alcohol_removal",
                "environmental_alcohol",
            ]
            .contains(&a["type"].as_str().unwrap_or(""))
        })
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    alcohol.sort();
    let mut events: Vec<String> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    events.sort();
    assert_eq!(events, alcohol);
    let drinking = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "drinking_event")
        .expect("the drinking evening is an event");
    assert!(
        drinking["chart"]["readings"].as_u64().unwrap() > 40,
        "{drinking}"
    );
    assert_eq!(
        manifest_json["inputs"]["alerts"].as_array().unwrap().len(),
        events.len()
    );
    assert_eq!(manifest_json["document"], "sober_day_report");

    // What the practitioner reads.
    let out = dir.path().join("api");
    std::fs::create_dir_all(&out).unwrap();
    let names: Vec<String> = manifest_json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let base = format!("P1-O1-sober-days-2026-01-05-{through}");
    assert_eq!(names, [format!("{base}.pdf"), format!("{base}.json")]);
    let pdf_file = out.join(&names[0]);
    std::fs::write(&pdf_file, &pdf).unwrap();
    std::fs::write(out.join(&names[1]), &json_bytes).unwrap();
    let manifest_file = out.join(format!("{base}-manifest.json"));
    std::fs::write(&manifest_file, &manifest).unwrap();
    let text = pdf_flat_text(&pdf_file);
    let rate_words = report["rate"]["words"].as_str().unwrap();
    let mut needed = vec![
        "Sam Sober".to_string(),
        "A7654ZY".into(),
        "15/123456B".into(),
        "1985-06-15".into(),
        "Jo Manager".into(),
        "O1".into(),
        "abstinence (AAMR)".into(),
        "Sober-day rate".into(),
        rate_words.into(),
        "Sober-day rate = sober days ÷ days worn".into(),
        "Exhibit 1".into(),
        "Exhibit 2".into(),
        "Sun 11 Jan 2026".into(),
        "no readings".into(),
        "Tue 13 Jan 2026".into(),
        "Not worn".into(),
        "Partial".into(),
        "Awaiting data".into(),
        "Confirmed drinking event".into(),
        "Peak TAC".into(),
        "Mon 05 Jan 2026 to".into(),
    ];
    needed.extend(events.iter().cloned());
    for field in ["sober", "drinking", "tamper", "partial", "not_worn", "worn"] {
        assert!(summary[field].is_u64(), "{field}");
    }
    for needed in &needed {
        assert!(
            text.contains(needed.as_str()),
            "'{needed}' missing from the PDF:\n{text}"
        );
    }

    // Every page renders and none is blank; the PDF is well formed; the manifest verifies.
    let pages_dir = dir.path().join("pages");
    std::fs::create_dir_all(&pages_dir).unwrap();
    let ink = page_ink(&pdf_file, &pages_dir);
    assert!(ink.len() >= 2, "{ink:?}");
    assert!(ink.iter().all(|i| *i > 0.005), "a page is blank: {ink:?}");
    if let Ok(keep) = std::env::var("TAGSTREAM_KEEP_REPORT") {
        std::fs::copy(&pdf_file, keep).unwrap();
    }
    assert_well_formed(&pdf_file);
    let verify = verify_manifest;
    assert!(verify(&manifest_file).status.success());

    // A period of the caller's choosing.
    let (status, part) = get_bytes(
        &server,
        "/v1/people/P1/sober-day-report.json?order=O1&from=2026-01-07&to=2026-01-09",
        &own,
    );
    assert_eq!(status, 200);
    let part: Value = serde_json::from_slice(&part).unwrap();
    assert_eq!(part["calendar"].as_array().unwrap().len(), 3);
    assert_eq!(part["period"]["to"], "2026-01-09");

    // Every download was audited with its purpose.
    let (_, audit) = call(
        &server,
        "GET",
        "/v1/audit?limit=1000",
        Some(&admin),
        Some(PURPOSE),
        None,
    );
    let audited = serde_json::from_str::<Vec<Value>>(&audit)
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "documents.sober_day_report"
                && e["purpose"] == PURPOSE
                && e["person"] == "P1"
        })
        .count();
    assert!(audited >= 6, "{audit}");

    // Offline from the stopped server's data: the same bytes.
    let (status, _) = server.terminate();
    assert!(status.success());
    let offline = dir.path().join("offline");
    assert_offline_report(
        &["sober-days", "--person", "P1", "--purpose", "court review"],
        &data,
        None,
        &offline,
        &[
            (names[0].clone(), &pdf),
            (names[1].clone(), &json_bytes),
            (format!("{base}-manifest.json"), &manifest),
        ],
    );
}

/// An abstinence order with no end date is monitored only for the deployment's cap (the AAMR's
/// 120 days; 7 here, so two weeks of data run past it): the day records stop at the cap, and so
/// does the report, whatever period is asked for, and it says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sober_day_report_ends_where_the_abstinence_cap_ends_monitoring() {
    let mut open_ended: Value = serde_json::from_str(&orders()).unwrap();
    open_ended["orders"][0]["to"] = Value::Null;
    let (dir, data, orders_file) = scratch_with_orders(&open_ended.to_string());
    let config = dir.path().join("tagstream.toml");
    std::fs::write(&config, "[rules.alcohol]\nabstinence_max_days = 7\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let mut server = Server::start(&data, Some(&orders_file), &["--config", config_arg]);

    let days = two_weeks_of_tac(&server, &hub).await;
    let last_day = days.iter().filter_map(|d| d["date"].as_str()).max();
    assert_eq!(
        last_day,
        Some("2026-01-11"),
        "the rule stops at day 7: {days:?}"
    );

    let json_path = "/v1/people/P1/sober-day-report.json";
    let (status, body) = get_bytes(&server, json_path, &hub);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["order"]["monitored_to"], "2026-01-11");
    assert_eq!(report["period"]["to"], "2026-01-11");
    assert_eq!(report["period"]["data_through"], "2026-01-11");
    assert_eq!(report["calendar"].as_array().unwrap().len(), 7);
    assert_eq!(report["awaiting_data"], json!([]));

    // A period past the cap is cut at it; one wholly after it is refused, saying why.
    let (status, body) = get_bytes(&server, &format!("{json_path}?to=2026-01-18"), &hub);
    assert_eq!(status, 200);
    let cut: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(cut["period"]["to"], "2026-01-11");
    let (status, body) = get_bytes(&server, &format!("{json_path}?from=2026-01-12"), &hub);
    assert_eq!(status, 400);
    let refusal = String::from_utf8_lossy(&body);
    assert!(
        refusal.contains("monitored from 2026-01-05 to 2026-01-11"),
        "{refusal}"
    );

    let (status, pdf) = get_bytes(&server, "/v1/people/P1/sober-day-report.pdf", &hub);
    assert_eq!(status, 200);
    let pdf_file = dir.path().join("capped.pdf");
    std::fs::write(&pdf_file, &pdf).unwrap();
    let text = pdf_flat_text(&pdf_file);
    for needed in [
        "05 Jan 2026 to 11 Jan 2026 (7 days)",
        "monitored for at most 7 days",
        "Mon 05 Jan 2026 to Sun 11 Jan 2026",
    ] {
        assert!(text.contains(needed), "'{needed}' missing:\n{text}");
    }

    // Offline under the same configuration: the same bytes.
    let (status, _) = server.terminate();
    assert!(status.success());
    let offline = dir.path().join("offline");
    assert_offline_report(
        &["sober-days", "--person", "P1", "--purpose", "court review"],
        &data,
        Some(&config),
        &offline,
        &[(
            "P1-O1-sober-days-2026-01-05-2026-01-11.pdf".to_string(),
            &pdf,
        )],
    );
}

const HOME: (f64, f64) = (51.4545, -2.5879);
/// About 1.1 km north of home, inside the exclusion zone.
const TOWN: (f64, f64) = (51.4645, -2.5879);

fn breach_orders() -> String {
    let zone = json!({"type": "Polygon", "coordinates": [[
        [-2.5929, 51.4625], [-2.5829, 51.4625], [-2.5829, 51.4665], [-2.5929, 51.4665], [-2.5929, 51.4625]
    ]]});
    json!({
        "people": [
            {"id": "P1", "name": "Casey Curfew", "nomis_id": "B1111CC", "offender_manager": "Jo Manager"},
            {"id": "P2", "name": "Other Person"}
        ],
        "activations": [
            {"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-09T00:00:00Z", "to": null}
        ],
        "orders": [
            {"id": "O1", "person": "P1", "from": "2026-03-09", "to": "2026-04-30",
             "conditions": [
                {"type": "curfew", "grace_min": 0,
                 "addresses": [{"id": "home", "lat": HOME.0, "lon": HOME.1, "radius_m": 75}],
                 "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                                "start": "19:00", "end": "07:00", "address": "home"}]},
                {"type": "exclusion_zone", "id": "Z1", "name": "Town centre", "geometry": zone}
             ]}
        ]
    })
    .to_string()
}

/// GPS fixes every 5 minutes over `[from, to)` at one place.
fn track(from: &str, to: &str, at: (f64, f64)) -> Vec<tagstream::model::Reading> {
    let (a, b) = (parse_time(from).unwrap(), parse_time(to).unwrap());
    (0..)
        .map(|k| a + k * 300_000)
        .take_while(|t| *t < b)
        .map(|t| common::gps_fix_at(t, at))
        .collect()
}

/// T1 streams 10 March: home until 19:30, in town (inside the zone, away during the curfew)
/// until 21:00, then home until the next morning. The alerts once settled.
async fn evening_in_town(server: &Server, token: &str) -> Vec<Value> {
    let mut readings = track("2026-03-10T17:00:00Z", "2026-03-10T19:30:00Z", HOME);
    readings.extend(track("2026-03-10T19:30:00Z", "2026-03-10T21:00:00Z", TOWN));
    readings.extend(track("2026-03-10T21:00:00Z", "2026-03-11T09:00:00Z", HOME));
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    for (i, chunk) in readings.chunks(6).enumerate() {
        tag.send_acked(i as u64 + 1, chunk.to_vec()).await;
    }
    let _ = server.settled_alerts();
    listed_alerts(server, token)
}

/// The alerts `GET /v1/alerts` lists.
fn listed_alerts(server: &Server, token: &str) -> Vec<Value> {
    let (_, alerts) = call(
        server,
        "GET",
        "/v1/alerts",
        Some(token),
        Some(PURPOSE),
        None,
    );
    serde_json::from_str(&alerts).unwrap()
}

/// The id of the alert of type `alert_type`.
fn id_of(alerts: &[Value], alert_type: &str) -> String {
    alerts
        .iter()
        .find(|a| a["type"] == alert_type)
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("no {alert_type} alert: {alerts:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breach_reports_of_a_curfew_and_a_zone_alert_over_the_api_and_offline() {
    let (dir, data, orders_file) = scratch_with_orders(&breach_orders());
    let config = dir.path().join("tagstream.toml");
    let archive = real_street_archive(dir.path());
    std::fs::write(
        &config,
        format!(
            "[console]\ntile_archive = {:?}\n",
            archive.display().to_string()
        ),
    )
    .unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let own = add_user(&data, "pia", "practitioner", &["--caseload", "P1"]);
    let other = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    let police = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let mut server = Server::start(
        &data,
        Some(&orders_file),
        &["--config", config.to_str().unwrap()],
    );

    let alerts = evening_in_town(&server, &hub).await;
    let curfew = id_of(&alerts, "curfew_violation");
    let zone = id_of(&alerts, "exclusion_zone_entry");

    // The hub acts on the curfew alert: its review is in the report.
    for (action, body) in [
        ("acknowledge", json!({"notes": "Calling the person"})),
        (
            "resolve",
            json!({"outcome": "breach_confirmed", "notes": "Admitted being in town"}),
        ),
    ] {
        let (status, body) = call(
            &server,
            "POST",
            &format!("/v1/alerts/{curfew}/{action}"),
            Some(&hub),
            Some(PURPOSE),
            Some(body),
        );
        assert_eq!(status, 200, "{action}: {body}");
    }

    let mut made = Vec::new();
    for (id, needed) in [
        (
            &curfew,
            vec![
                "Curfew violation",
                "19:00",
                "07:00",
                "home",
                "75 m",
                "Admitted being in town",
                "breach_confirmed",
                "hana",
                "outside",
            ],
        ),
        (
            &zone,
            vec![
                "Exclusion zone entry",
                "Town centre",
                "Z1",
                "must not enter",
                "inside",
            ],
        ),
    ] {
        let pdf_path = format!("/v1/alerts/{id}/breach-report.pdf");
        assert_eq!(get_bytes(&server, &pdf_path, &other).0, 403);
        assert_eq!(get_bytes(&server, &pdf_path, &police).0, 403);
        assert_eq!(
            call(&server, "GET", &pdf_path, Some(&hub), None, None).0,
            400
        );
        let (status, pdf) = get_bytes(&server, &pdf_path, &own);
        assert_eq!(status, 200);
        assert_eq!(get_bytes(&server, &pdf_path, &hub).1, pdf, "the same bytes");
        let (status, json_bytes) = get_bytes(
            &server,
            &format!("/v1/alerts/{id}/breach-report.json"),
            &own,
        );
        assert_eq!(status, 200);
        let (status, manifest) = get_bytes(
            &server,
            &format!("/v1/alerts/{id}/breach-report-manifest.json"),
            &own,
        );
        assert_eq!(status, 200);
        let report: Value = serde_json::from_slice(&json_bytes).unwrap();
        assert!(!report["positions"].as_array().unwrap().is_empty());
        // The manifest names each position's batch (sent six fixes a batch, from seq 1).
        let named: Value = serde_json::from_slice(&manifest).unwrap();
        let positions = &named["inputs"]["positions"];
        let batches = positions["batches"].as_array().unwrap();
        assert_eq!(batches.len(), positions["t"].as_array().unwrap().len());
        assert!(
            batches
                .iter()
                .all(|b| b["seq"].as_u64().is_some_and(|s| s >= 1)),
            "{positions}"
        );
        let out = dir.path().join(format!("api-{id}"));
        std::fs::create_dir_all(&out).unwrap();
        let pdf_file = out.join(format!("{id}-breach.pdf"));
        std::fs::write(&pdf_file, &pdf).unwrap();
        std::fs::write(out.join(format!("{id}-breach.json")), &json_bytes).unwrap();
        let manifest_file = out.join(format!("{id}-breach-manifest.json"));
        std::fs::write(&manifest_file, &manifest).unwrap();
        let text = pdf_flat_text(&pdf_file);
        let start_uk = report["alert"]["start_uk"].as_str().unwrap();
        for needed in needed.iter().copied().chain([
            id.as_str(),
            "Casey Curfew",
            "B1111CC",
            "Exhibit 1",
            "Test streets",
            start_uk,
        ]) {
            assert!(
                text.contains(needed),
                "'{needed}' missing from the PDF of {id}:\n{text}"
            );
        }
        let pages_dir = dir.path().join(format!("pages-{id}"));
        std::fs::create_dir_all(&pages_dir).unwrap();
        let ink = page_ink(&pdf_file, &pages_dir);
        assert!(ink.len() >= 2 && ink.iter().all(|i| *i > 0.005), "{ink:?}");
        assert!(
            ink.iter().any(|i| *i > 0.3),
            "the map page has streets on it: {ink:?}"
        );
        if let Ok(keep) = std::env::var("TAGSTREAM_KEEP_REPORT") {
            std::fs::copy(&pdf_file, format!("{keep}-{id}.pdf")).unwrap();
        }
        assert_well_formed(&pdf_file);
        let verified = verify_manifest(&manifest_file);
        assert!(verified.status.success(), "{verified:?}");
        made.push((id.clone(), pdf, json_bytes, manifest));
    }
    let (status, _) = get_bytes(&server, "/v1/alerts/no-such-alert/breach-report.pdf", &own);
    assert_eq!(status, 403, "a practitioner learns nothing of other alerts");

    // Offline from the stopped server's data: the same bytes.
    let (status, _) = server.terminate();
    assert!(status.success());
    for (id, pdf, json_bytes, manifest) in made {
        let offline = dir.path().join(format!("offline-{id}"));
        assert_offline_report(
            &["breach", "--alert", &id, "--purpose", "breach hearing"],
            &data,
            Some(&config),
            &offline,
            &[
                (format!("{id}-breach.pdf"), &pdf),
                (format!("{id}-breach.json"), &json_bytes),
                (format!("{id}-breach-manifest.json"), &manifest),
            ],
        );
    }
}

/// The alert with `id` as the API lists it.
fn alert_by_id(server: &Server, token: &str, id: &str) -> Value {
    listed_alerts(server, token)
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no alert {id}"))
}

/// The breach report's JSON of alert `id`.
fn breach_json(server: &Server, token: &str, id: &str) -> Value {
    let (status, body) = get_bytes(
        server,
        &format!("/v1/alerts/{id}/breach-report.json"),
        token,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// The condition the breach report of `id` quotes, asserted to be the 19:00 curfew of the
/// version made by log record `record`.
fn quoted_condition(server: &Server, token: &str, id: &str, record: u64) -> Value {
    let condition = breach_json(server, token, id)["condition"].clone();
    assert_eq!(
        condition["curfew"]["timetable"][0]["start"], "19:00",
        "{condition}"
    );
    assert_eq!(condition["version"]["record"], record);
    condition
}

/// The condition is quoted from the order version that governed the alert's day, not from the
/// order as it stands: a variation effective after the alert leaves the report quoting the
/// curfew the person broke; a correction that withdraws the alert leaves it quoting the version
/// the alert stood under until then. After a hard stop that leaves the stores behind the log
/// (here the alert store and trails are lost outright), `tagstream report breach` brings them
/// up to the log first and gives the bytes the server served, and so does a restarted server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breach_report_quotes_the_version_of_the_alert_day_and_is_made_offline_after_a_hard_stop() {
    let (dir, data, orders_file) = scratch_with_orders(&breach_orders());
    let hub = add_user(&data, "hana", "hub", &[]);
    let admin = add_user(&data, "ada", "admin", &[]);
    let mut server = Server::start(&data, Some(&orders_file), &[]);

    let curfew = id_of(&evening_in_town(&server, &hub).await, "curfew_violation");
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/alerts/{curfew}/acknowledge"),
        Some(&hub),
        Some(PURPOSE),
        Some(json!({"notes": "Calling the person"})),
    );
    assert_eq!(status, 200, "{body}");
    let imported = breach_json(&server, &hub, &curfew)["condition"]["version"]["record"]
        .as_u64()
        .expect("the version is named");

    let order_with_start = |start: &str| {
        let mut order =
            serde_json::from_str::<Value>(&breach_orders()).unwrap()["orders"][0].clone();
        order["conditions"][0]["timetable"][0]["start"] = json!(start);
        order
    };
    // A variation from 12 March: the curfew starts at 20:00 from then on.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/orders?effective=2026-03-12T00:00:00Z",
        Some(&admin),
        Some(PURPOSE),
        Some(order_with_start("20:00")),
    );
    assert_eq!(status, 201, "{body}");
    let _ = server.settled_alerts();
    assert!(alert_by_id(&server, &hub, &curfew)["withdrawn"].is_null());
    let condition = quoted_condition(&server, &hub, &curfew, imported);
    assert_eq!(condition["version"]["basis"], "as_raised");
    assert_eq!(condition["version"]["days_from"], "2026-03-09");
    assert_eq!(
        condition["version"]["days_to"], "2026-03-11",
        "the variation cuts it"
    );

    // A correction: the curfew starts at 22:00 on every day, so the evening in town breached
    // nothing; the alert is withdrawn, and its report quotes what it was raised under.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/orders",
        Some(&admin),
        Some(PURPOSE),
        Some(order_with_start("22:00")),
    );
    assert_eq!(status, 201, "{body}");
    let mut withdrawn = Value::Null;
    for _ in 0..100 {
        withdrawn = alert_by_id(&server, &hub, &curfew)["withdrawn"].clone();
        if !withdrawn.is_null() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let correction = withdrawn["change"]
        .as_u64()
        .expect("withdrawn by the correction");
    let condition = quoted_condition(&server, &hub, &curfew, imported);
    assert_eq!(condition["version"]["basis"], "withdrawn_by");
    assert_eq!(condition["version"]["basis_record"], correction);

    let mut served = Vec::new();
    for part in [
        "breach-report.pdf",
        "breach-report.json",
        "breach-report-manifest.json",
    ] {
        let (status, bytes) = get_bytes(&server, &format!("/v1/alerts/{curfew}/{part}"), &hub);
        assert_eq!(status, 200);
        served.push(bytes);
    }
    let pdf_file = dir.path().join("withdrawn.pdf");
    std::fs::write(&pdf_file, &served[0]).unwrap();
    let text = pdf_flat_text(&pdf_file);
    for needed in [
        format!("made by log record {imported}"),
        "09 Mar 2026 to 11 Mar 2026".to_string(),
        format!("until the change in log record {correction} withdrew it"),
    ] {
        assert!(text.contains(&needed), "'{needed}' missing:\n{text}");
    }

    // A hard stop, and the stores behind the log: lost outright, the furthest behind they can be.
    server.kill9();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("alerts.sqlite3") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::remove_dir_all(data.join("trails")).unwrap();
    let offline = dir.path().join("offline");
    assert_offline_report(
        &["breach", "--alert", &curfew, "--purpose", "breach hearing"],
        &data,
        None,
        &offline,
        &[
            (format!("{curfew}-breach.pdf"), &served[0]),
            (format!("{curfew}-breach.json"), &served[1]),
            (format!("{curfew}-breach-manifest.json"), &served[2]),
        ],
    );

    // The caught-up stores serve the same report when the server starts again.
    let server = Server::start(&data, None, &[]);
    let (status, pdf) = get_bytes(
        &server,
        &format!("/v1/alerts/{curfew}/breach-report.pdf"),
        &hub,
    );
    assert_eq!(status, 200);
    assert_eq!(pdf, served[0], "the restarted server serves the same bytes");
}
