//! API safety over real HTTP against a running server (issue 13, items 7–10): police learn
//! nothing of unconfirmed hits, upload limits per force and the hub's bulk flag, CSV exports
//! that a spreadsheet cannot run, a safe `Content-Disposition`, text limits, an owner-only data
//! directory whatever the umask, expiring tokens, and refusals that do not reveal existence.

mod common;

use common::{add_user, bin, call, fixture, stream_health_fixture, Server, TagClient};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tagstream::model::time::parse_time;
use tagstream::model::{Reading, ReadingBody};

const WHY: Option<&str> = Some("api safety test");
/// A crime location (central Bristol).
const C1: (f64, f64) = (51.4545, -2.5879);

/// People whose record fields try formula injection into the hits CSV.
const ORDERS: &str = r#"{"people":[
  {"id":"P1","name":"+cmd|' /C calc'!A0","date_of_birth":"1990-01-01","nomis_id":"=1+1","pnc_ref":"-2+3","address":"@SUM(A1:A2)","offender_manager":"  =HYPERLINK(\"http://evil\",\"x\")","restricted":false}],
 "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-28T00:00:00Z","to":null}],
 "orders":[{"id":"O1","person":"P1","from":"2026-03-28","to":"2026-06-01","conditions":[{"type":"trail"}]}]}"#;

fn t(text: &str) -> i64 {
    parse_time(text).unwrap()
}

/// GPS fixes walking west to east past `origin`, 30 m north of it, at 10:30, 150 m apart.
fn walk_past(origin: (f64, f64)) -> Vec<Reading> {
    (-10..=10)
        .step_by(2)
        .map(|m: i64| {
            common::gps_fix_offset(
                t("2026-03-28T10:30:00Z") + m * 60_000 + 60_000,
                origin,
                75.0 + 75.0 * m as f64,
                30.0,
            )
        })
        .collect()
}

fn crime_row(batch: &str, reference: &str, text: &str) -> String {
    format!(
        "AvonSomerset,BIAD,Burglary in a dwelling,{batch},{reference},20260328102000,20260328104000,,,{},{},WGS84,\"{}\"\n",
        C1.0,
        C1.1,
        text.replace('"', "\"\"")
    )
}

fn upload(server: &Server, token: &str, csv: &str, query: &str) -> (u16, serde_json::Value) {
    let result = ureq::post(&format!(
        "http://{}/v1/crimes/batches{query}",
        server.http_addr
    ))
    .set("Authorization", &format!("Bearer {token}"))
    .set("Content-Type", "text/csv")
    .send_string(csv);
    let (status, body) = match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("upload: {e}"),
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn wait_for_hits(server: &Server, token: &str, batch: &str, n: usize) -> Vec<serde_json::Value> {
    let mut last = Vec::new();
    for _ in 0..100 {
        let (status, body) = call(
            server,
            "GET",
            &format!("/v1/hits?batch={batch}"),
            Some(token),
            WHY,
            None,
        );
        assert_eq!(status, 200, "{body}");
        last = json(&body).as_array().unwrap().clone();
        if last.len() >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    last
}

/// A batch as listed for `token`.
fn listed(server: &Server, token: &str, batch: &str) -> serde_json::Value {
    let (status, body) = call(server, "GET", "/v1/crimes/batches", Some(token), None, None);
    assert_eq!(status, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["batch_id"] == batch)
        .cloned()
        .unwrap_or_else(|| panic!("{batch} not listed: {body}"))
}

/// The config of the tests of the bulk flag and of a force's own limits: flag a batch above 0
/// pending hits; Kent's batches at most 2 rows and 1000 m.
const LIMITS_CONFIG: &str = "[crime_api]\nbulk_pending_hits = 0\n[crime_api.force_limits.Kent]\nmax_rows_per_batch = 2\nmax_radius_m = 1000.0\n";

/// A server with P1 (formula-laden record) walking past C1, a hub, an Avon and a Kent police
/// user; `config` the server's config file text, if any.
async fn crime_server(dir: &Path, config: Option<&str>) -> (Server, String, String, String) {
    let data = dir.join("data");
    let orders = dir.join("orders.json");
    std::fs::write(&orders, ORDERS).unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let avs = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let kent = add_user(&data, "kent", "police", &["--force", "Kent"]);
    let config_path = dir.join("server.toml");
    let mut extra = Vec::new();
    if let Some(text) = config {
        std::fs::write(&config_path, text).unwrap();
        extra = vec!["--config", config_path.to_str().unwrap()];
    }
    let server = Server::start(&data, Some(&orders), &extra);
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(1, walk_past(C1)).await;
    std::thread::sleep(std::time::Duration::from_millis(300));
    (server, hub, avs, kent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_learn_nothing_of_unconfirmed_hits_from_uploads_or_batch_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, avs, _kent) = crime_server(dir.path(), None).await;

    // A one-row probe with a wide radius: the answer says nothing of the hit it made.
    let csv = crime_row("AVS20260329", "AVS/1", "probe");
    let (status, report) = upload(&server, &avs, &csv, "?radius_m=400");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 1);
    let text = report.to_string();
    for hidden in ["matching", "pending_hits", "bulk"] {
        assert!(report.get(hidden).is_none(), "{hidden} in {text}");
    }
    // The hub has the pending hit.
    assert_eq!(wait_for_hits(&server, &hub, "AVS20260329", 1).len(), 1);

    // Police: the batch (list and one) shows no hit until the hub confirms one.
    let mine = listed(&server, &avs, "AVS20260329");
    assert_eq!(mine["hits"], 0, "{mine}");
    for hidden in ["pending_hits", "confirmed_hits", "bulk"] {
        assert!(mine.get(hidden).is_none(), "{hidden} in {mine}");
    }
    let (_, one) = call(
        &server,
        "GET",
        "/v1/crimes/batches/AVS20260329",
        Some(&avs),
        None,
        None,
    );
    let one = json(&one);
    assert_eq!(one["hits"], 0, "{one}");
    assert!(one.get("pending_hits").is_none() && one.get("bulk").is_none());

    // The hub sees every count.
    let theirs = listed(&server, &hub, "AVS20260329");
    assert_eq!(theirs["hits"], 1, "{theirs}");
    assert_eq!(theirs["pending_hits"], 1, "{theirs}");
    assert_eq!(theirs["bulk"], false, "{theirs}");

    // Confirmed: now police see it counted.
    let hits = wait_for_hits(&server, &hub, "AVS20260329", 1);
    let id = hits[0]["id"].as_str().unwrap();
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/hits/{id}/review"),
        Some(&hub),
        None,
        Some(json!({"decision": "confirm", "reason": "walked past during the window"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&server, &avs, "AVS20260329")["hits"], 1);

    // A hub upload's answer does report matching and pending hits.
    let csv = crime_row("AVS20260330", "AVS/2", "hub filed");
    let (status, report) = upload(&server, &hub, &csv, "");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["matching"]["hits"], 1, "{report}");
    assert_eq!(report["pending_hits"], 1, "{report}");
    assert_eq!(report["bulk"], false, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_pending_bound_is_flagged_bulk_for_the_hub_only() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, avs, _kent) = crime_server(dir.path(), Some(LIMITS_CONFIG)).await;
    let csv = crime_row("AVS20260329", "AVS/1", "probe");
    let (status, report) = upload(&server, &avs, &csv, "?radius_m=400");
    assert_eq!(status, 200, "{report}");
    assert!(report.get("bulk").is_none(), "{report}");
    wait_for_hits(&server, &hub, "AVS20260329", 1);
    let theirs = listed(&server, &hub, "AVS20260329");
    assert_eq!(theirs["bulk"], true, "{theirs}");
    assert_eq!(theirs["pending_hits"], 1, "{theirs}");
    let mine = listed(&server, &avs, "AVS20260329");
    assert!(mine.get("bulk").is_none(), "{mine}");
    // Sticky: the hub's re-upload of the same batch keeps the flag.
    let (status, report) = upload(&server, &hub, &csv, "");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["bulk"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_limited_in_rows_and_radius_per_force() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, avs, _kent) = crime_server(dir.path(), None).await;

    // Radius: the default limit is 500 m, for police and for the hub filing a force's batch.
    let csv = crime_row("AVS20260329", "AVS/1", "x");
    for token in [&avs, &hub] {
        let (status, body) = upload(&server, token, &csv, "?radius_m=5000");
        assert_eq!(status, 400, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("radius_m") && message.contains("500"),
            "{message}"
        );
    }
    let (status, body) = upload(&server, &avs, &csv, "?radius_m=500");
    assert_eq!(status, 200, "{body}");

    // The default row limit, 50,000.
    let big: String = (0..50_001)
        .map(|n| crime_row("AVS20260331", &format!("AVS/B{n}"), "x"))
        .collect();
    let (status, body) = upload(&server, &avs, &big, "");
    assert_eq!(status, 413, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 50000 rows"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_may_have_its_own_row_and_radius_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _hub, avs, kent) = crime_server(dir.path(), Some(LIMITS_CONFIG)).await;
    // Avon keeps the defaults.
    let (status, _) = upload(
        &server,
        &avs,
        &crime_row("AVS20260329", "AVS/1", "x"),
        "?radius_m=800",
    );
    assert_eq!(status, 400);
    // Kent's own limits: 1000 m, 2 rows.
    let kent_row = |n: usize| {
        format!("Kent,BIAD,Burglary in a dwelling,KNT20260329,KNT/{n},20260328102000,20260328104000,,,51.28,1.08,WGS84,x\n")
    };
    let (status, body) = upload(&server, &kent, &kent_row(1), "?radius_m=800");
    assert_eq!(status, 200, "{body}");
    let three: String = (1..=3).map(kent_row).collect();
    let (status, body) = upload(&server, &kent, &three, "");
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_many_rows");
    assert!(
        body["message"].as_str().unwrap().contains("at most 2 rows"),
        "{body}"
    );
}

/// Whether a spreadsheet would run `cell` as a formula.
fn is_formula(cell: &str) -> bool {
    let trimmed = cell.trim_start_matches(|c: char| c.is_whitespace() && c != '\t' && c != '\r');
    let numeric = cell.trim().parse::<f64>().is_ok();
    trimmed.starts_with(['=', '+', '-', '@', '\t', '\r']) && !numeric
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_are_safe_to_open_and_downloads_are_safely_named() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, _avs, _kent) = crime_server(dir.path(), None).await;
    let csv = crime_row(
        "AVS20260329",
        "AVS/1",
        "=HYPERLINK(\"http://evil.example\",\"click\")",
    );
    let (status, report) = upload(&server, &hub, &csv, "");
    assert_eq!(status, 200, "{report}");
    assert_eq!(wait_for_hits(&server, &hub, "AVS20260329", 1).len(), 1);

    let response = ureq::get(&format!(
        "http://{}/v1/crimes/batches/AVS20260329/hits.csv",
        server.http_addr
    ))
    .set("Authorization", &format!("Bearer {hub}"))
    .set("X-Purpose", "api safety test")
    .call()
    .unwrap();
    let text = response.into_string().unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let row = &rows[1];
    for cell in row.iter() {
        assert!(!is_formula(cell), "formula cell {cell:?} in {text}");
    }
    // Neutralised, not dropped: the text is all there after the quote.
    assert_eq!(&row[8], "'=HYPERLINK(\"http://evil.example\",\"click\")");
    assert_eq!(&row[12], "'+cmd|' /C calc'!A0");
    assert_eq!(&row[15], "'@SUM(A1:A2)");
    // Coordinates stay numbers (a negative longitude is not a formula).
    assert!(row[7].starts_with("-2.58"), "{text}");

    // The trail CSV goes through the same writer.
    let (status, trail) = call(
        &server,
        "GET",
        "/v1/people/P1/trail?from=2026-03-28T00:00:00Z&to=2026-03-29T00:00:00Z&format=csv",
        Some(&hub),
        WHY,
        None,
    );
    assert_eq!(status, 200, "{trail}");
    for line in trail.lines().skip(1) {
        for cell in line.split(',') {
            assert!(!is_formula(cell), "{cell:?} in {trail}");
        }
    }

    // A batch id with quotes and CR/LF: a valid header, the name encoded (it was a 500).
    let response = ureq::get(&format!(
        "http://{}/v1/crimes/batches/AVS%22x%0D%0AX-Evil:%201/hits.csv",
        server.http_addr
    ))
    .set("Authorization", &format!("Bearer {hub}"))
    .set("X-Purpose", "api safety test")
    .call()
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.header("x-evil").is_none());
    let disposition = response.header("content-disposition").unwrap().to_string();
    assert_eq!(
        disposition,
        "attachment; filename=\"AVS_x__X-Evil__1-hits.csv\"; \
         filename*=UTF-8''AVS%22x%0D%0AX-Evil%3A%201-hits.csv"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_text_is_length_limited_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, avs, _kent) = crime_server(dir.path(), None).await;

    // Crime free text: the row is rejected in the report, naming the column and the limit.
    let csv = crime_row("AVS20260329", "AVS/1", &"x".repeat(5_000));
    let (status, report) = upload(&server, &avs, &csv, "");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 0, "{report}");
    let error = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "field_too_long")
        .unwrap_or_else(|| panic!("no field_too_long in {report}"));
    assert_eq!(error["line"], 1);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("free_text") && message.contains("1000"),
        "{message}"
    );

    let csv = crime_row("AVS20260330", "AVS/2", "ok");
    let (status, _) = upload(&server, &hub, &csv, "");
    assert_eq!(status, 200);
    let hits = wait_for_hits(&server, &hub, "AVS20260330", 1);
    let id = hits[0]["id"].as_str().unwrap();

    let too_long = |status: u16, body: &str, field: &str, limit: &str| {
        assert_eq!(status, 400, "{field}: {body}");
        let v = json(body);
        assert_eq!(v["error"], "too_long", "{body}");
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("'{field}'")) && m.contains(limit),
            "{m}"
        );
    };
    // A 1.9 MB review note.
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/hits/{id}/review"),
        Some(&hub),
        None,
        Some(json!({"decision": "reject", "reason": "n".repeat(1_900_000)})),
    );
    too_long(status, &body, "reason", "2000");
    // A long purpose is refused, not silently cut.
    let (status, body) = call(
        &server,
        "GET",
        "/v1/hits",
        Some(&hub),
        Some(&"p".repeat(600)),
        None,
    );
    too_long(status, &body, "purpose", "500");
    // Alert notes, user names, people's records.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/alerts/X1/acknowledge",
        Some(&hub),
        WHY,
        Some(json!({"notes": "n".repeat(5_000)})),
    );
    too_long(status, &body, "notes", "4000");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "u".repeat(300), "role": "hub"})),
    );
    too_long(status, &body, "name", "200");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/people",
        Some(&hub),
        None,
        Some(json!({"id": "P9", "name": "Ok", "address": "a".repeat(3_000), "restricted": false})),
    );
    too_long(status, &body, "address", "2000");
    let (status, body) = call(
        &server,
        "GET",
        &format!("/v1/crimes/batches/{}", "B".repeat(200)),
        Some(&hub),
        None,
        None,
    );
    too_long(status, &body, "batch_id", "128");
    // Every query parameter, on every route.
    let (status, body) = call(
        &server,
        "GET",
        &format!(
            "/v1/people/P1/trail?from=2026-03-28T00:00:00Z&to=2026-03-29T00:00:00Z&format={}",
            "f".repeat(300)
        ),
        Some(&hub),
        WHY,
        None,
    );
    too_long(status, &body, "format", "256");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn walk_modes(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_dir = path.is_dir();
        out.push((path.clone(), mode(&path), is_dir));
        if is_dir {
            walk_modes(&path, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_owner_only_whatever_the_umask() {
    // The default umask of most systems: files 0644, directories 0755.
    unsafe {
        libc::umask(0o022);
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What an older version left: an open directory and file.
    std::fs::create_dir_all(data.join("old")).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("old/notes.json"), "{}").unwrap();
    assert_eq!(mode(&data.join("old/notes.json")), 0o644);

    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, ORDERS).unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let mut server = Server::start(&data, Some(&orders), &[]);
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(1, walk_past(C1)).await;
    let (status, _) = upload(&server, &hub, &crime_row("AVS20260329", "AVS/1", "x"), "");
    assert_eq!(status, 200);
    wait_for_hits(&server, &hub, "AVS20260329", 1);
    server.kill9();

    assert_eq!(mode(&data), 0o700);
    let mut all = Vec::new();
    walk_modes(&data, &mut all);
    let names: Vec<String> = all
        .iter()
        .map(|(p, _, _)| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for expected in [
        "metadata.sqlite3",
        "crimes.sqlite3",
        "alerts.sqlite3",
        "log",
        "trails",
        "old/notes.json",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(expected)),
            "{expected} missing from {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("log/")), "{names:?}");
    for (path, mode, is_dir) in &all {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}", path.display());
    }
}

#[test]
fn tokens_expire_with_a_clear_401_and_users_keep_working_across_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let short = add_user(&data, "brief", "hub", &["--expires-in", "1s"]);
    let month = add_user(&data, "month", "hub", &["--expires-in", "30d"]);
    let forever = add_user(&data, "forever", "hub", &[]);
    // An expiry in the past, or both forms, is refused.
    for args in [
        &["--expires", "2000-01-01T00:00:00Z"][..],
        &["--expires-in", "soon"][..],
        &["--expires-in", "1d", "--expires", "2099-01-01T00:00:00Z"][..],
    ] {
        let out = std::process::Command::new(bin())
            .args(["users", "add", "--data-dir"])
            .arg(&data)
            .args(["--name", "bad", "--role", "hub"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
    }
    let server = Server::start(&data, None, &[]);
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    let (status, body) = call(&server, "GET", "/v1/me", Some(&short), None, None);
    assert_eq!(status, 401, "{body}");
    let v = json(&body);
    assert_eq!(v["error"], "token_expired");
    assert!(
        v["message"].as_str().unwrap().contains("expired at"),
        "{body}"
    );
    for token in [&month, &forever] {
        assert_eq!(
            call(&server, "GET", "/v1/me", Some(token), None, None).0,
            200
        );
    }
    let (_, users) = call(
        &server,
        "GET",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        None,
    );
    let users = json(&users);
    let user = |name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap()
    };
    assert!(user("month")["expires_at"].is_string(), "{users}");
    assert!(user("forever")["expires_at"].is_null(), "{users}");
    // Over the API too.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "api-brief", "role": "hub", "expires_in": "12h"})),
    );
    assert_eq!(status, 201, "{body}");
    assert!(json(&body)["user"]["expires_at"].is_string(), "{body}");
}

/// A server on the health fixture's orders with a hub and a practitioner whose caseload holds
/// P1, a restricted P3 and PX, who does not exist; with `alerts`, the fixture's readings too.
async fn people_server(dir: &Path, alerts: bool) -> (Server, String, String) {
    let data = dir.join("data");
    let hub = add_user(&data, "hana", "hub", &[]);
    let pat = add_user(&data, "pat", "practitioner", &["--caseload", "P1,P3,PX"]);
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    let (status, _) = call(
        &server,
        "POST",
        "/v1/people",
        Some(&hub),
        None,
        Some(json!({"id": "P3", "name": "Restricted Case", "restricted": true})),
    );
    assert_eq!(status, 201);
    if alerts {
        stream_health_fixture(&server).await;
        let _ = server.settled_alerts();
    }
    (server, hub, pat)
}

fn get(server: &Server, path: &str, token: &str, purpose: Option<&str>) -> (u16, String) {
    call(server, "GET", path, Some(token), purpose, None)
}

fn audit_of(server: &Server, person: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(
        server,
        &format!("/v1/audit?person={person}"),
        common::ADMIN_TOKEN,
        None,
    );
    assert_eq!(status, 200, "{body}");
    json(&body).as_array().unwrap().clone()
}

const PERIOD: &str = "from=2026-03-28T00:00:00Z&to=2026-03-29T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caseload_entry_that_does_not_exist_is_refused_like_a_restricted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, pat) = people_server(dir.path(), false).await;
    assert_eq!(get(&server, "/v1/people/P3", &pat, WHY).0, 403);
    assert_eq!(get(&server, "/v1/people/PX", &pat, WHY).0, 403);
    for what in ["trail", "stays", "daily"] {
        let path = |id: &str| format!("/v1/people/{id}/{what}?{PERIOD}");
        assert_eq!(
            get(&server, &path("PX"), &pat, WHY).0,
            get(&server, &path("P3"), &pat, WHY).0,
            "{what}"
        );
    }
    // The hub, who may see everyone, is told it does not exist.
    assert_eq!(get(&server, "/v1/people/PX", &hub, WHY).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_purpose_does_not_reveal_whether_an_activation_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _hub, pat) = people_server(dir.path(), false).await;
    let trail = |id: &str, purpose| {
        get(
            &server,
            &format!("/v1/activations/{id}/trail?{PERIOD}"),
            &pat,
            purpose,
        )
        .0
    };
    // A2 exists (P2's, not on the caseload); NOPE does not.
    assert_eq!(trail("A2", None), 400);
    assert_eq!(trail("NOPE", None), 400);
    assert_eq!(trail("A2", WHY), 403);
    assert_eq!(trail("NOPE", WHY), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_a_persons_alerts_needs_a_purpose_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, _pat) = people_server(dir.path(), true).await;
    let (status, body) = get(&server, "/v1/alerts/count?person=P1", &hub, None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(
        &server,
        "/v1/alerts/count?person=P1",
        &hub,
        Some("count check"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        audit_of(&server, "P1")
            .iter()
            .any(|e| e["action"] == "alerts.count" && e["purpose"] == "count check"),
        "no audit of the count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_on_an_alert_needs_a_purpose_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, _pat) = people_server(dir.path(), true).await;
    let (status, alerts) = get(&server, "/v1/alerts?person=P1", &hub, WHY);
    assert_eq!(status, 200);
    let id = json(&alerts)[0]["id"].as_str().unwrap().to_string();
    let act = |id: &str, purpose: Option<&str>| {
        call(
            &server,
            "POST",
            &format!("/v1/alerts/{id}/acknowledge"),
            Some(&hub),
            purpose,
            Some(json!({"notes": "called"})),
        )
        .0
    };
    // The purpose is asked for before anything is looked up.
    assert_eq!(act("NO-SUCH-ALERT", None), 400);
    assert_eq!(act(&id, None), 400);
    assert_eq!(act(&id, Some("working the queue")), 200);
    assert!(
        audit_of(&server, "P1")
            .iter()
            .any(|e| e["action"] == "alert.act"
                && e["purpose"] == "working the queue"
                && e["detail"].as_str().unwrap().contains(&id)),
        "no audit of the action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_users_only_for_the_19_emac_forces() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _hub, _pat) = people_server(dir.path(), false).await;
    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "pc-narnia", "role": "police", "force": "Narnia"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("19 EMAC forces"), "{body}");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/users",
        Some(common::ADMIN_TOKEN),
        None,
        Some(json!({"name": "pc-kent", "role": "police", "force": "Kent"})),
    );
    assert_eq!(status, 201, "{body}");
    let out = std::process::Command::new(bin())
        .args(["users", "add", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--name", "x", "--role", "police", "--force", "Narnia"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EMAC"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dwell_parameter_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (server, hub, _pat) = people_server(dir.path(), false).await;
    for bad in ["9223372036854775807", "0", "-5"] {
        let (status, body) = get(
            &server,
            &format!("/v1/people/P1/stays?{PERIOD}&min_dwell_min={bad}"),
            &hub,
            WHY,
        );
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("min_dwell_min"), "{body}");
    }
    let (status, body) = get(
        &server,
        &format!("/v1/people/P1/stays?{PERIOD}&min_dwell_min=15"),
        &hub,
        WHY,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["min_dwell_ms"], 900_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_access_export_writes_only_valid_times() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _hub, _pat) = people_server(dir.path(), false).await;
    // A tag clock gone wild: a reading at the largest time the protocol can carry.
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    let wild = |t_ms| Reading {
        t_ms,
        battery_pct: Some(50),
        body: ReadingBody::Event(tagstream::model::DeviceEvent::BatteryLow),
    };
    t1.send_acked(1, vec![wild(i64::MAX), wild(t("2026-03-28T10:00:00Z"))])
        .await;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body) = get(
        &server,
        "/v1/admin/people/P1/export",
        common::ADMIN_TOKEN,
        WHY,
    );
    assert_eq!(status, 200, "{body}");
    let doc = json(&body);
    fn times(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.contains("invalid-time") => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| times(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| times(x, out)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    times(&doc, &mut bad);
    assert!(bad.is_empty(), "{bad:?} in {body}");
    // Kept, not dropped: the value as sent, with no time to misread.
    let readings = doc["readings"].as_array().unwrap();
    assert!(
        readings
            .iter()
            .any(|r| r["reading"]["t_ms"] == i64::MAX && r["reading"]["t"].is_null()),
        "{body}"
    );
}
