//! Access control and audit over real HTTP against a running server: each role's allowed and
//! forbidden calls, 401 vs 403 without leaking existence, purpose required and audited,
//! validation errors naming the rule, and the OpenAPI description covering every route.

mod common;

use common::{add_user, call, Server, ADMIN_TOKEN};
use serde_json::json;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/health")
        .join(name)
}

struct Tokens {
    hub: String,
    practitioner: String,
    police: String,
    admin: String,
}

fn start() -> (tempfile::TempDir, Server, Tokens) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = Tokens {
        hub: add_user(&data, "hana-hub", "hub", &[]),
        practitioner: add_user(
            &data,
            "pat-practitioner",
            "practitioner",
            &["--caseload", "P1,P3"],
        ),
        police: add_user(&data, "pc-avon", "police", &["--force", "AvonSomerset"]),
        admin: add_user(&data, "ada-admin", "admin", &[]),
    };
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    // A restricted person on the practitioner's caseload.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/people",
        Some(&tokens.hub),
        None,
        Some(json!({"id": "P3", "name": "Restricted Case", "restricted": true})),
    );
    assert_eq!(status, 201, "{body}");
    (dir, server, tokens)
}

#[test]
fn roles_see_only_what_they_may_and_refusals_do_not_leak_existence() {
    let (_dir, server, t) = start();
    let get = |path: &str, token: Option<&str>, purpose: Option<&str>| {
        call(&server, "GET", path, token, purpose, None).0
    };
    let why = Some("supervision session");

    // No or unknown token: 401.
    assert_eq!(get("/v1/people/P1", None, why), 401);
    assert_eq!(get("/v1/people/P1", Some("ts_not-a-token"), why), 401);
    assert_eq!(get("/v1/alerts", None, why), 401);
    assert_eq!(get("/v1/alerts/export", Some(&t.police), why), 403);

    // Practitioner: own caseload only, never restricted; unknown ids look like forbidden ones.
    assert_eq!(get("/v1/people/P1", Some(&t.practitioner), why), 200);
    assert_eq!(get("/v1/people/P2", Some(&t.practitioner), why), 403);
    assert_eq!(get("/v1/people/NOBODY", Some(&t.practitioner), why), 403);
    assert_eq!(
        get("/v1/people/P3", Some(&t.practitioner), why),
        403,
        "restricted"
    );
    let (_, list) = call(
        &server,
        "GET",
        "/v1/people",
        Some(&t.practitioner),
        why,
        None,
    );
    let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&list)
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["P1"]);

    // Hub: everyone, restricted too; a missing person is a plain 404 for a role that sees all.
    assert_eq!(get("/v1/people/P3", Some(&t.hub), why), 200);
    assert_eq!(get("/v1/people/NOBODY", Some(&t.hub), why), 404);

    // Police: no free search of people, no alerts.
    assert_eq!(get("/v1/people/P1", Some(&t.police), why), 403);
    assert_eq!(get("/v1/people", Some(&t.police), why), 403);
    assert_eq!(get("/v1/alerts", Some(&t.police), why), 403);

    // Management is for staff; users and audit for admins.
    let person = Some(json!({"id": "P9", "name": "New"}));
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/people",
            Some(&t.practitioner),
            None,
            person.clone()
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/v1/people",
            Some(&t.police),
            None,
            person.clone()
        )
        .0,
        403
    );
    assert_eq!(
        call(&server, "POST", "/v1/people", Some(&t.hub), None, person).0,
        201
    );
    assert_eq!(get("/v1/audit", Some(&t.hub), None), 403);
    assert_eq!(get("/v1/audit", Some(&t.admin), None), 200);
    assert_eq!(get("/v1/users", Some(&t.practitioner), None), 403);
    assert_eq!(get("/v1/stats", Some(&t.practitioner), None), 403);
    assert_eq!(
        get("/v1/stats", Some(ADMIN_TOKEN), None),
        200,
        "bootstrap admin token"
    );
}

#[test]
fn person_data_needs_a_purpose_and_every_read_is_audited() {
    let (_dir, server, t) = start();
    let (status, body) = call(
        &server,
        "GET",
        "/v1/people/P1",
        Some(&t.practitioner),
        None,
        None,
    );
    assert_eq!(status, 400);
    assert!(body.contains("purpose"), "{body}");

    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/people/P1",
            Some(&t.practitioner),
            Some("pre-sentence report"),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/alerts",
            Some(&t.hub),
            Some("morning review"),
            None
        )
        .0,
        200
    );
    // A refused read is not data returned: nothing to audit for P2.
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/people/P2",
            Some(&t.practitioner),
            Some("curious"),
            None
        )
        .0,
        403
    );

    let (_, audit) = call(
        &server,
        "GET",
        "/v1/audit?person=P1",
        Some(&t.admin),
        None,
        None,
    );
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["user"], "pat-practitioner");
    assert_eq!(entries[0]["role"], "practitioner");
    assert_eq!(entries[0]["action"], "person.read");
    assert_eq!(entries[0]["purpose"], "pre-sentence report");
    let (_, all) = call(
        &server,
        "GET",
        "/v1/audit?user=hana-hub",
        Some(&t.admin),
        None,
        None,
    );
    assert!(
        all.contains("alerts.list") && all.contains("morning review"),
        "{all}"
    );
    let (_, p2) = call(
        &server,
        "GET",
        "/v1/audit?person=P2",
        Some(&t.admin),
        None,
        None,
    );
    assert_eq!(p2.trim(), "[]");
}

/// `GET /v1/people` pages by id when asked (`limit`, `after`), within what the caller may see;
/// each page's audit record names the people on that page only. Without the parameters it is
/// the whole list, as before.
#[test]
fn the_people_list_pages_by_id_when_asked() {
    let (_dir, server, t) = start();
    let why = Some("caseload review");
    let ids = |path: &str, token: &str| -> Vec<String> {
        let (status, body) = call(&server, "GET", path, Some(token), why, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("/v1/people", &t.hub), ["P1", "P2", "P3"]);
    assert_eq!(ids("/v1/people?limit=2", &t.hub), ["P1", "P2"]);
    assert_eq!(ids("/v1/people?limit=2&after=P2", &t.hub), ["P3"]);
    assert_eq!(ids("/v1/people?after=P1", &t.hub), ["P2", "P3"]);
    assert!(ids("/v1/people?limit=2&after=P3", &t.hub).is_empty());
    // The practitioner's caseload is P1 and P3, and P3 is restricted.
    assert_eq!(ids("/v1/people?limit=1", &t.practitioner), ["P1"]);
    assert!(ids("/v1/people?limit=1&after=P1", &t.practitioner).is_empty());
    for bad in ["limit=0", "limit=10001", "limit=-1", "limit=many"] {
        let (status, body) = call(
            &server,
            "GET",
            &format!("/v1/people?{bad}"),
            Some(&t.hub),
            why,
            None,
        );
        assert_eq!(status, 400, "{bad}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "bad_request", "{bad}: {body}");
    }

    let (_, audit) = call(
        &server,
        "GET",
        "/v1/audit?user=hana-hub",
        Some(&t.admin),
        None,
        None,
    );
    let lists: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&audit)
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "people.list")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    for page in ["P1,P2,P3", "P1,P2", "P3", "P2,P3", ""] {
        assert!(lists.iter().any(|d| d == page), "{page:?} in {lists:?}");
    }
    assert_eq!(lists.len(), 5, "refused pages are not audited: {lists:?}");
}

#[test]
fn invalid_activations_and_orders_are_refused_with_the_rule_they_break() {
    let (_dir, server, t) = start();
    let (status, body) = call(
        &server,
        "POST",
        "/v1/activations",
        Some(&t.hub),
        None,
        Some(json!({
        "id": "A9", "person": "P2", "tag": "T1", "from": "2026-04-01T00:00:00Z", "to": null})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("overlaps activation 'A1'"), "{body}");

    let curfew = |start: &str, end: &str| {
        json!({"id": "O9", "person": "P1", "from": "2026-04-01", "to": "2026-06-01",
        "conditions": [{"type": "curfew", "grace_min": 5,
            "addresses": [{"id": "home", "lat": 51.45, "lon": -2.58, "radius_m": 50}],
            "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": start, "end": end, "address": "home"}]}]})
    };
    let (status, body) = call(
        &server,
        "POST",
        "/v1/orders",
        Some(&t.hub),
        None,
        Some(curfew("07:00", "06:00")),
    );
    assert_eq!(status, 422);
    assert!(body.contains("legal maximum of 20 hours a day"), "{body}");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/orders",
        Some(&t.hub),
        None,
        Some(curfew("19:00", "11:30")),
    );
    assert_eq!(status, 422);
    assert!(body.contains("112 hours"), "{body}");
    let (status, body) = call(
        &server,
        "POST",
        "/v1/orders",
        Some(&t.hub),
        None,
        Some(curfew("19:00", "07:00")),
    );
    assert_eq!(status, 201, "{body}");

    let (status, body) = call(
        &server,
        "POST",
        "/v1/activations",
        Some(&t.hub),
        None,
        Some(json!({
        "id": "A9", "person": "P2", "tag": "T9", "from": "2026-04-01T00:00:00Z"})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        &server,
        "POST",
        "/v1/activations/A9/end",
        Some(&t.hub),
        None,
        Some(json!({"to": "2026-04-02T00:00:00Z"})),
    );
    assert_eq!(status, 200);
}

#[test]
fn the_openapi_description_covers_every_route() {
    let (_dir, server, _t) = start();
    let (status, body) = call(&server, "GET", "/openapi.json", None, None, None);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let routes =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/routes.rs"))
            .unwrap();
    let mut count = 0;
    for line in routes
        .lines()
        .filter(|l| l.trim_start().starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap();
        assert!(
            doc["paths"].get(path).is_some(),
            "route {path} is missing from docs/openapi.json"
        );
        count += 1;
    }
    assert!(count >= 10);
    assert_eq!(
        call(&server, "GET", "/healthz", None, None, None),
        (200, "ok\n".into())
    );
    let (_, metrics) = call(&server, "GET", "/metrics", None, None, None);
    assert!(metrics.contains("tagstream_committed_readings_total"));
}
