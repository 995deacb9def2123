//! Crime matching over real HTTP against a running server: police upload (validation report,
//! force binding), retrospective and live hits, hub review, police disclosure (confirmed hits of
//! their own force only, the trail only for the window plus margin, 403 otherwise), the GeoJSON
//! evidence and 18-column CSV, versioning, audit, restart, and replay equal to live.

mod common;

use common::{add_user, bin, call, Server, TagClient};
use std::path::Path;
use tagstream::model::time::parse_time;
use tagstream::model::Reading;

/// Crime C1's location (central Bristol) and C3's, 2 km east.
const C1: (f64, f64) = (51.4545, -2.5879);
const C3: (f64, f64) = (51.4545, -2.5590);
const PURPOSE: Option<&str> = Some("crime hit review");

const ORDERS: &str = r#"{"people":[
  {"id":"P1","name":"Alex Example","date_of_birth":"1990-01-01","nomis_id":"A1234BC","pnc_ref":"12/345678A","address":"1 Example Street, Bristol","offender_manager":"Olu Manager","restricted":false},
  {"id":"P2","name":"Sam Sample","restricted":false}],
 "activations":[
  {"id":"A1","person":"P1","tag":"T1","from":"2026-03-28T00:00:00Z","to":null},
  {"id":"A2","person":"P2","tag":"T2","from":"2026-03-28T00:00:00Z","to":null}],
 "orders":[
  {"id":"O1","person":"P1","from":"2026-03-28","to":"2026-06-01","conditions":[{"type":"trail"}]},
  {"id":"O2","person":"P2","from":"2026-03-28","to":"2026-06-01","conditions":[{"type":"trail"}]}]}"#;

fn t(text: &str) -> i64 {
    parse_time(text).unwrap()
}

/// A GPS fix `east_m`, `north_m` metres from `origin`.
fn fix(t_ms: i64, origin: (f64, f64), east_m: f64, north_m: f64) -> Reading {
    common::gps_fix_offset(t_ms, origin, east_m, north_m)
}

/// A walk west to east at 1.25 m/s, a fix every 2 minutes (150 m apart), passing `north_m`
/// from `origin` at `at`.
fn walk(origin: (f64, f64), at: i64, north_m: f64, minutes: i64) -> Vec<Reading> {
    (-minutes / 2..=minutes / 2)
        .step_by(2)
        .map(|m| {
            fix(
                at + m * 60_000 + 60_000,
                origin,
                75.0 + 75.0 * m as f64,
                north_m,
            )
        })
        .collect()
}

fn upload(server: &Server, token: &str, csv: &str, name: &str) -> (u16, serde_json::Value) {
    let result = ureq::post(&format!("http://{}/v1/crimes/batches", server.http_addr))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "text/csv")
        .query("filename", name)
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

/// A GET: (status, body).
fn get(server: &Server, path: &str, token: &str, purpose: Option<&str>) -> (u16, String) {
    call(server, "GET", path, Some(token), purpose, None)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

const BATCH1: &str = "\u{feff}AvonSomerset,BIAD,Burglary in a dwelling,AVS20260329,AVS/1,20260328102000,20260328104000,,,51.4545,-2.5879,WGS84,\"Rear door forced, \"\"jewellery\"\" taken\"\n\
AvonSomerset,TFP,Theft from the person,AVS20260329,AVS/2,20260328100000,20260328110000,529381,179534,,,OSGB36,Phone snatched\n\
AvonSomerset,XYZ,Unknown,AVS20260329,AVS/3,20260328100000,20260328110000,,,51.45,-2.59,WGS84,bad type\n\
AvonSomerset,RB,Robbery,AVS20260329,AVS/4,20260328110000,20260328100000,,,51.45,-2.59,WGS84,backwards\n";

const BATCH2: &str = "AvonSomerset,TFMV,Theft from a motor vehicle,AVS20260330,AVS/5,20260328112000,20260328114000,,,51.4545,-2.5590,WGS84,Window smashed\n";

/// C1 resubmitted with a later end.
const BATCH3: &str = "AvonSomerset,BIAD,Burglary in a dwelling,AVS20260331,AVS/1,20260328102000,20260328105000,,,51.4545,-2.5879,WGS84,\"Rear door forced, \"\"jewellery\"\" taken\"\n";

fn hits_of(server: &Server, token: &str, query: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(server, &format!("/v1/hits{query}"), token, PURPOSE);
    assert_eq!(status, 200, "{body}");
    json(&body).as_array().unwrap().clone()
}

fn wait_for_hits(server: &Server, token: &str, query: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let hits = hits_of(server, token, query);
        if hits.len() >= n {
            return hits;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    hits_of(server, token, query)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_upload_hits_review_disclosure_versions_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, ORDERS).unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let avs = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let kent = add_user(&data, "kent", "police", &["--force", "Kent"]);
    let practitioner = add_user(&data, "pat", "practitioner", &["--caseload", "P1"]);
    let admin = add_user(&data, "ada", "admin", &[]);
    let mut server = Server::start(&data, Some(&orders), &[]);

    // T1 walks past C1 at 10:30, 30 m north of it, fixes 150 m apart; T2 stays 2 km east.
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(1, walk(C1, t("2026-03-28T10:30:00Z"), 30.0, 20))
        .await;
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    let still: Vec<Reading> = (0..30)
        .map(|m| fix(t("2026-03-28T10:00:00Z") + m * 120_000, C3, 0.0, 600.0))
        .collect();
    t2.send_acked(1, still).await;
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Only police of the batch's own force, or the hub, may upload it.
    let (status, body) = upload(&server, &kent, BATCH1, "AVS20260329.csv");
    assert_eq!(status, 403, "{body}");
    let (status, _) = upload(&server, &practitioner, BATCH1, "AVS20260329.csv");
    assert_eq!(status, 403);
    let (status, report) = upload(&server, &avs, BATCH1, "AVS20260329.csv");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "partial");
    assert_eq!(report["rows"], 4);
    assert_eq!(report["imported"], 2);
    let errors: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(3, "unknown_crime_type"), (4, "to_before_from")]);
    assert!(report["errors"][0]["action"].as_str().unwrap().len() > 10);
    // Police learn nothing of unconfirmed hits from their upload's answer.
    assert!(report.get("matching").is_none(), "{report}");
    assert!(report.get("pending_hits").is_none(), "{report}");

    // The batch and its crimes, with converted BNG coordinates kept beside the original.
    let (status, body) = get(&server, "/v1/crimes/batches/AVS20260329", &avs, None);
    assert_eq!(status, 200, "{body}");
    let batch = json(&body);
    let bng = &batch["crimes"][1];
    assert!(
        (bng["lat"].as_f64().unwrap() - 51.499946).abs() < 2e-5,
        "{bng}"
    );
    assert!(
        (bng["lon"].as_f64().unwrap() + 0.137433).abs() < 2e-5,
        "{bng}"
    );
    assert_eq!(bng["original"]["coordinates"]["easting_m"], 529381.0);
    assert_eq!(
        batch["crimes"][0]["other_info"],
        "Rear door forced, \"jewellery\" taken"
    );
    let (status, _) = get(&server, "/v1/crimes/batches/AVS20260329", &kent, None);
    assert_eq!(status, 403);
    let (_, body) = get(&server, "/v1/crimes/batches", &kent, None);
    assert_eq!(json(&body), serde_json::json!([]));

    // The hub sees the pending hit.
    let hits = hits_of(&server, &hub, "?batch=AVS20260329");
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    let id = hit["id"].as_str().unwrap().to_string();
    assert_eq!(hit["activation"], "A1");
    assert_eq!(hit["person"], "P1");
    assert_eq!(hit["crime_ref"], "AVS/1");
    // The fixes 75 m either side of the crime (81 m away, 5 m precision) are wholly inside.
    assert_eq!(hit["certainty"], "certain");
    assert_eq!(hit["weaker_evidence"], false);
    assert!(
        (hit["closest_m"].as_f64().unwrap() - 30.0).abs() < 1.0,
        "{hit}"
    );
    assert_eq!(hit["review"]["state"], "pending");
    assert!(hit["positions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["distance_m"].as_f64().unwrap() > 50.0));

    // Police see nothing unconfirmed; the practitioner nothing at all.
    assert!(hits_of(&server, &avs, "").is_empty());
    for path in [
        format!("/v1/hits/{id}"),
        format!("/v1/hits/{id}/evidence"),
        format!("/v1/hits/{id}/trail"),
    ] {
        let (status, _) = get(&server, &path, &avs, PURPOSE);
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = get(&server, "/v1/hits?state=pending", &avs, PURPOSE);
    assert_eq!(status, 403);
    let (status, _) = get(&server, "/v1/hits", &practitioner, PURPOSE);
    assert_eq!(status, 403);
    let (status, _) = get(&server, "/v1/hits", &hub, None);
    assert_eq!(status, 400, "a hit is person data: purpose required");

    // The hub confirms it, with a reason (required).
    let review = |token: &str, body: serde_json::Value| {
        call(
            &server,
            "POST",
            &format!("/v1/hits/{id}/review"),
            Some(token),
            None,
            Some(body),
        )
    };
    let (status, _) = review(
        &hub,
        serde_json::json!({"decision": "confirm", "reason": " "}),
    );
    assert_eq!(status, 422);
    let (status, _) = review(
        &avs,
        serde_json::json!({"decision": "confirm", "reason": "mine"}),
    );
    assert_eq!(status, 403);
    let (status, body) = review(
        &hub,
        serde_json::json!({"decision": "confirm", "reason": "walked past during the window"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["review"]["by"], "hana");

    // Now police of the force see it, its evidence and the trail around it; Kent still not.
    assert_eq!(hits_of(&server, &avs, "").len(), 1);
    assert!(hits_of(&server, &kent, "").is_empty());
    let (status, _) = get(&server, &format!("/v1/hits/{id}"), &kent, PURPOSE);
    assert_eq!(status, 403);
    let (status, body) = get(&server, &format!("/v1/hits/{id}/evidence"), &avs, PURPOSE);
    assert_eq!(status, 200, "{body}");
    let geo: geojson::GeoJson = body.parse().expect("evidence is GeoJSON");
    let geojson::GeoJson::FeatureCollection(fc) = geo else {
        panic!("not a collection")
    };
    let kinds: Vec<String> = fc
        .features
        .iter()
        .map(|f| f.property("kind").unwrap().as_str().unwrap().to_string())
        .collect();
    for kind in ["crime", "vicinity", "position", "confidence", "track"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    let labels: Vec<&str> = fc
        .features
        .iter()
        .filter(|f| f.property("kind").unwrap() == "position")
        .map(|f| f.property("label").unwrap().as_str().unwrap())
        .collect();
    assert_eq!(labels.first(), Some(&"A1"));
    let (status, body) = get(&server, &format!("/v1/hits/{id}/trail"), &avs, PURPOSE);
    assert_eq!(status, 200, "{body}");
    // window 10:20–10:40 ± 30 min: the walk's 11 fixes, 10:21–10:41
    let trail: geojson::GeoJson = body.parse().unwrap();
    let geojson::GeoJson::FeatureCollection(trail) = trail else {
        panic!()
    };
    let points = trail
        .features
        .iter()
        .filter(|f| {
            matches!(
                f.geometry.as_ref().map(|g| &g.value),
                Some(geojson::GeometryValue::Point { .. })
            )
        })
        .count();
    assert_eq!(points, 11);
    let (status, _) = get(
        &server,
        "/v1/people/P1/trail?from=2026-03-28T10:00:00Z&to=2026-03-28T11:00:00Z",
        &avs,
        PURPOSE,
    );
    assert_eq!(status, 403, "police never get a free trail search");

    // The hub's 18-column CSV, as police receive it.
    let (status, body) = get(
        &server,
        "/v1/crimes/batches/AVS20260329/hits.csv",
        &avs,
        PURPOSE,
    );
    assert_eq!(status, 200, "{body}");
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header.len(), 18);
    assert_eq!(header[0], "POLICE FORCE");
    assert_eq!(header[17], "OFFENDER MANAGER");
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][2], "AVS/1");
    assert_eq!(&records[0][4], "20260328102000");
    assert_eq!(&records[0][9], "T1");
    assert_eq!(&records[0][12], "Alex Example");
    assert_eq!(&records[0][13], "A1234BC");
    assert_eq!(&records[0][16], "1990-01-01");

    // Late positions (stored by the tag during a signal loss) re-evaluate the confirmed hit: its
    // evidence grows and the hub sees that the decision was made on less.
    let late: Vec<Reading> = (0..4)
        .map(|m| fix(t("2026-03-28T10:44:00Z") + m * 60_000, C1, 20.0, 10.0))
        .collect();
    t1.send_acked(2, late).await;
    let mut flagged = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = get(&server, &format!("/v1/hits/{id}"), &hub, PURPOSE);
        flagged = json(&body);
        if flagged["review"]["changed_after_review"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(flagged["review"]["changed_after_review"], true, "{flagged}");
    assert_eq!(flagged["review"]["state"], "confirmed");
    // After the window, so only the evidence changes: four more positions, same closest approach.
    assert_eq!(
        flagged["positions"].as_array().unwrap().len(),
        hit["positions"].as_array().unwrap().len() + 4
    );
    assert_eq!(flagged["closest_m"], hit["closest_m"]);

    // Every read of the hit is audited with its purpose.
    let (_, body) = get(&server, "/v1/audit?user=avon", &admin, None);
    let audit = json(&body);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["hits.list", "hits.evidence", "hits.trail", "hits.export"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "hits.trail"
            && e["person"] == "P1"
            && e["purpose"] == "crime hit review"));

    // Live: a crime whose window is still open, then T2's positions (after a signal loss,
    // uploaded late) walk past it.
    let (status, report) = upload(&server, &avs, BATCH2, "AVS20260330.csv");
    assert_eq!(status, 200);
    assert_eq!(report["status"], "successful");
    assert!(report.get("matching").is_none(), "{report}");
    t2.send_acked(2, walk(C3, t("2026-03-28T11:30:00Z"), -40.0, 20))
        .await;
    let live = wait_for_hits(&server, &hub, "?batch=AVS20260330", 1);
    assert_eq!(live.len(), 1, "live matching found no hit");
    assert_eq!(live[0]["activation"], "A2");

    // A resubmitted reference becomes version 2, with what changed; it has its own hit.
    let (status, report) = upload(&server, &avs, BATCH3, "AVS20260331.csv");
    assert_eq!(status, 200);
    assert_eq!(
        report["versions"],
        serde_json::json!([{"crime_ref": "AVS/1", "version": 2, "changed": ["to"]}])
    );
    let v2 = hits_of(&server, &hub, "?batch=AVS20260331");
    assert_eq!(v2.len(), 1);
    assert_eq!(v2[0]["crime_version"], 2);
    assert_ne!(v2[0]["id"], id);
    // Re-uploading the same batch changes nothing.
    let (_, again) = upload(&server, &avs, BATCH3, "AVS20260331.csv");
    assert_eq!(again["unchanged"], 1);
    assert_eq!(again["versions"], serde_json::json!([]));

    // Replay over the server's own log and the same batch files gives the same hits.
    let (_, live_export) = get(&server, "/v1/hits/export", &hub, PURPOSE);
    assert_eq!(live_export.lines().count(), 3);
    server.kill9();
    let files: Vec<_> = [("b1.csv", BATCH1), ("b2.csv", BATCH2), ("b3.csv", BATCH3)]
        .iter()
        .map(|(name, text)| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    // The readings alone (a recording without the log's control records), the orders file and
    // the batch files: the same hits.
    let mut readings_only = Vec::new();
    tagstream::replay::read_recorded(&data, &mut |entry| {
        if let tagstream::model::LogEntry::Batch(batch) = entry {
            tagstream::formats::readings_jsonl::write_batch(&mut readings_only, &batch).unwrap();
        }
    })
    .unwrap();
    let readings_file = dir.path().join("readings.jsonl");
    std::fs::write(&readings_file, readings_only).unwrap();
    let out = dir.path().join("replay");
    let status = std::process::Command::new(bin())
        .args(["replay", "--orders"])
        .arg(&orders)
        .arg("--readings")
        .arg(&readings_file)
        .arg("--crimes")
        .args(&files)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let replayed = std::fs::read_to_string(Path::new(&out).join("hits.jsonl")).unwrap();
    assert_eq!(
        replayed, live_export,
        "replay must equal live byte for byte"
    );
    // The log alone holds the batches too: replay of the data directory, no orders file and no
    // batch files, gives the same hits.
    let out_log = dir.path().join("replay-log");
    let status = std::process::Command::new(bin())
        .args(["replay", "--readings"])
        .arg(&data)
        .arg("--out")
        .arg(&out_log)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let from_log = std::fs::read_to_string(out_log.join("hits.jsonl")).unwrap();
    assert_eq!(
        from_log, live_export,
        "replay of the log alone differs from live"
    );

    // The hub's review is a log record: a crash after the log took it and before the crime
    // store did loses nothing. Rewind the store to before the review, then restart.
    {
        let db = rusqlite::Connection::open(data.join("crimes.sqlite3")).unwrap();
        db.execute_batch(
            "UPDATE hits SET state = 'pending', reviewed_by = NULL, reviewed_ms = NULL,
               reason = NULL;
             DELETE FROM hit_reviews; DELETE FROM decisions_applied;",
        )
        .unwrap();
    }
    // After a crash and restart, hits and reviews are still there.
    let server = Server::start(&data, Some(&orders), &[]);
    let (_, reviewed) = get(&server, &format!("/v1/hits/{id}"), &hub, PURPOSE);
    assert_eq!(
        json(&reviewed)["review"]["state"],
        "confirmed",
        "{reviewed}"
    );
    assert_eq!(json(&reviewed)["review"]["by"], "hana");
    assert_eq!(hits_of(&server, &avs, "").len(), 1);
    let (_, after) = get(&server, "/v1/hits/export", &hub, PURPOSE);
    assert_eq!(after, live_export);

    // Rebuilt from the log (hits re-derived from the crimes and the rebuilt trails, the
    // review from its log record): the same hits, the same review and its history.
    let (_, reviewed) = get(&server, &format!("/v1/hits/{id}"), &hub, PURPOSE);
    let (_, batches) = get(&server, "/v1/crimes/batches", &hub, None);
    let (_, batch1) = get(&server, "/v1/crimes/batches/AVS20260329", &hub, None);
    let mut server = server;
    server.kill9();
    // Every batch is a control record in the log (the crime store is a view of it).
    let ops = common::control_ops(&data);
    assert!(
        ops.iter().filter(|op| *op == "crime_batch").count() >= 3,
        "{ops:?}"
    );
    common::rebuild(&data);
    let server = Server::start(&data, None, &[]);
    let (_, rebuilt) = get(&server, "/v1/hits/export", &hub, PURPOSE);
    assert_eq!(rebuilt, live_export);
    let (_, again) = get(&server, &format!("/v1/hits/{id}"), &hub, PURPOSE);
    assert_eq!(again, reviewed);
    // The batches and their versions, rebuilt from the log's crime batch records.
    assert_eq!(get(&server, "/v1/crimes/batches", &hub, None).1, batches);
    assert_eq!(
        get(&server, "/v1/crimes/batches/AVS20260329", &hub, None).1,
        batch1
    );
    assert_eq!(hits_of(&server, &avs, "").len(), 1);
}

#[test]
fn public_street_level_file_is_a_map_overlay_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/crimes/police-uk/2018-01-city-of-london-street.csv");
    let Ok(csv) = std::fs::read_to_string(&path) else {
        panic!("real data missing at {}", path.display());
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana", "hub", &[]);
    let police = add_user(&data, "col", "police", &["--force", "CoLP"]);
    let server = Server::start(&data, None, &[]);
    let post = |token: &str, csv: &str| match ureq::post(&format!(
        "http://{}/v1/crimes/public",
        server.http_addr
    ))
    .set("Authorization", &format!("Bearer {token}"))
    .query("filename", "2018-01-city-of-london-street.csv")
    .send_string(csv)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    // The refusal comes before the body is read, so a refused client still sending a large
    // body can see the connection close instead of the 403: refused here with a small one.
    let first_lines: String = csv.lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(post(&police, &first_lines).0, 403);
    let (status, body) = post(&hub, &csv);
    assert_eq!(status, 200, "{body}");
    let report = json(&body);
    assert_eq!(report["rows"], 698);
    assert_eq!(report["imported"], 677);
    assert_eq!(report["skipped"].as_array().unwrap().len(), 21);
    assert_eq!(report["skipped"][0]["code"], "no_location");
    // Uploading it again replaces, not doubles, the layer.
    assert_eq!(post(&hub, &csv).0, 200);
    let (status, body) = get(&server, "/v1/crimes/overlay?month=2018-01", &police, None);
    assert_eq!(status, 200);
    let geo: geojson::GeoJson = body.parse().unwrap();
    let geojson::GeoJson::FeatureCollection(fc) = geo else {
        panic!()
    };
    assert_eq!(fc.features.len(), 677);
    let (_, body) = call(
        &server,
        "GET",
        "/v1/crimes/overlay?month=2018-01&bbox=-0.0800,51.5100,-0.0700,51.5200",
        Some(&hub),
        None,
        None,
    );
    let geo: geojson::GeoJson = body.parse().unwrap();
    let geojson::GeoJson::FeatureCollection(inside) = geo else {
        panic!()
    };
    assert!(!inside.features.is_empty() && inside.features.len() < 677);
    let (status, _) = call(
        &server,
        "GET",
        "/v1/crimes/overlay?bbox=1,2,3",
        Some(&hub),
        None,
        None,
    );
    assert_eq!(status, 400);
    // Never matched for hits.
    let (_, body) = get(&server, "/v1/hits", &hub, PURPOSE);
    assert_eq!(json(&body), serde_json::json!([]));
}

#[test]
fn crimes_check_and_import_commands() {
    let crimes = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/crimes");
    // Offline validation: clean exits 0, a batch with bad rows exits 1 and lists them.
    let check = |file: &str| {
        std::process::Command::new(bin())
            .args(["crimes", "check"])
            .arg(crimes.join(file))
            .output()
            .unwrap()
    };
    let clean = check("clean.csv");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(
        json(&String::from_utf8_lossy(&clean.stdout))["status"],
        "successful"
    );
    let mixed = check("mixed.csv");
    assert_eq!(mixed.status.code(), Some(1));
    let report = json(&String::from_utf8_lossy(&mixed.stdout));
    assert_eq!(report["status"], "partial");
    assert!(report["errors"].as_array().unwrap().len() >= 18);

    // Import into a running server with the hub's token from a file.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana", "hub", &[]);
    let token_file = dir.path().join("hub.token");
    std::fs::write(&token_file, &hub).unwrap();
    let server = Server::start(&data, None, &[]);
    let out = std::process::Command::new(bin())
        .args(["crimes", "import", "--server"])
        .arg(format!("http://{}", server.http_addr))
        .arg("--token-file")
        .arg(&token_file)
        .arg(crimes.join("clean.csv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["status"], "successful");
    assert_eq!(report["source"], "clean.csv");
    let (_, body) = get(&server, "/v1/crimes/batches", &hub, None);
    assert_eq!(json(&body).as_array().unwrap().len(), 1);
    // A wrong token is a clear refusal, not a crash.
    std::fs::write(&token_file, "nope").unwrap();
    let out = std::process::Command::new(bin())
        .args(["crimes", "import", "--server"])
        .arg(format!("http://{}", server.http_addr))
        .arg("--token-file")
        .arg(&token_file)
        .arg(crimes.join("clean.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
