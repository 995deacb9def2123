//! OsmAnd (Traccar Client) reports against the real binary, on a listener declared on a private
//! network (plain HTTP, the device id alone; HTTPS with tokens is in transport_security.rs):
//! only bound devices are accepted, a malformed report names what is wrong and stores nothing,
//! both the query and the JSON form reach the log, and revoking the tag or unbinding the device
//! refuses it from then on.

mod common;

use common::{call, metric, Server, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn start(dir: &std::path::Path) -> Server {
    let config = dir.join("osmand.toml");
    std::fs::write(
        &config,
        "[osmand]\nlisten = \"127.0.0.1:0\"\nprivate_network = true\n",
    )
    .unwrap();
    Server::start(
        &dir.join("data"),
        None,
        &["--config", config.to_str().unwrap()],
    )
}

/// A report: (status, body).
fn report(addr: &str, method: &str, target: &str, json_body: Option<Value>) -> (u16, String) {
    let req = ureq::request(method, &format!("http://{addr}{target}"));
    let result = match json_body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {target}: {e}"),
    }
}

/// The server's committed readings once they reach `expected` (or after five seconds).
fn committed_readings(server: &Server, expected: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats: Value = serde_json::from_str(&server.get("/v1/stats").unwrap()).unwrap();
        let now = stats["committed_readings"].as_u64().unwrap();
        if now >= expected || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn only_bound_devices_report_and_malformed_reports_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let addr = server
        .osmand_addr
        .clone()
        .expect("the OsmAnd listener runs");
    let bind = |device: &str, tag: &str| {
        call(
            &server,
            "PUT",
            &format!("/v1/devices/osmand/{device}"),
            Some(ADMIN_TOKEN),
            Some("staff phone"),
            Some(json!({ "tag": tag })),
        )
    };
    let (status, body) = bind("staff-1", "T1");
    assert_eq!(status, 200, "{body}");
    let bound: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bound["tag"], "T1");
    assert_eq!(bound["token"].as_str().map(str::len), Some(64), "{bound}");

    let fix = "/?id=staff-1&timestamp=1772438400&lat=51.4545&lon=-2.5879&accuracy=8&batt=80";
    // Unknown device: refused and counted.
    let (status, body) = report(&addr, "GET", &fix.replace("staff-1", "stranger"), None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not bound"), "{body}");
    assert_eq!(
        metric(&server, "tagstream_osmand_unknown_devices_total"),
        1.0
    );
    // Malformed: names the parameter; nothing stored.
    let (status, body) = report(&addr, "GET", &fix.replace("lat=51.4545", "lat=91"), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("lat"), "{body}");
    // The query form and the JSON form of the app.
    let (status, body) = report(&addr, "GET", fix, None);
    assert_eq!(status, 200, "{body}");
    let location = json!({
        "device_id": "staff-1",
        "location": {
            "timestamp": "2026-03-02T08:01:00Z",
            "coords": {"latitude": 51.4546, "longitude": -2.5878, "accuracy": 6.0,
                       "speed": 1.2, "heading": 90.0, "altitude": 40.0},
            "is_moving": true,
            "battery": {"level": 0.79, "is_charging": false}
        }
    });
    let (status, body) = report(&addr, "POST", "/", Some(location.clone()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(committed_readings(&server, 2), 2);
    assert_eq!(
        metric(&server, "tagstream_osmand_refused_reports_total"),
        1.0
    );

    // Revoked tag: refused without saying why; rotated (reinstated): accepted again.
    let post = |path: &str| call(&server, "POST", path, Some(ADMIN_TOKEN), Some("lost"), None);
    assert_eq!(post("/v1/tags/T1/revoke").0, 200);
    let (status, body) = report(&addr, "GET", fix, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(post("/v1/tags/T1/credentials/rotate").0, 200);
    assert_eq!(report(&addr, "POST", "/", Some(location.clone())).0, 200);
    // Unbound: unknown from then on.
    let (status, _) = call(
        &server,
        "DELETE",
        "/v1/devices/osmand/staff-1",
        Some(ADMIN_TOKEN),
        Some("phone returned"),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(report(&addr, "GET", fix, None).0, 403);
    assert_eq!(committed_readings(&server, 3), 3);
    assert_eq!(metric(&server, "tagstream_osmand_reports_total"), 3.0);
}
