//! The API against its contract, `docs/openapi.json`: every route in the router is documented
//! and every documented operation is routed; every operation documents the errors it can give
//! and a schema for each answer; a caller without the role gets 403 before the body is read;
//! every error is the one JSON `Error` shape; `/metrics` is valid Prometheus text. The
//! schema-driven fuzzing of the running server is `scripts/api-check.sh` (run by
//! `scripts/test.sh` after the cargo tests).

mod common;

use common::{add_user, call, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn openapi() -> Value {
    serde_json::from_str(&repo("docs/openapi.json")).expect("docs/openapi.json is JSON")
}

/// `(METHOD, path)` of every `.route(…)` in `src/api/routes.rs`: the path literal and the method
/// routers (`get(…)`, `.post(…)`, …) inside the call's parentheses.
fn routed() -> BTreeSet<(String, String)> {
    let src = repo("src/api/routes.rs");
    let mut out = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(".route(") {
        let call = &rest[i + ".route(".len()..];
        let mut depth = 1;
        let end = call
            .char_indices()
            .find_map(|(j, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(j)
            })
            .expect("balanced .route( call");
        let args = &call[..end];
        let path = args.split('"').nth(1).expect("a path literal").to_string();
        for method in ["get", "post", "put", "patch", "delete"] {
            let word = format!("{method}(");
            let found = args.match_indices(&word).any(|(k, _)| {
                k == 0
                    || !args.as_bytes()[k - 1].is_ascii_alphanumeric()
                        && args.as_bytes()[k - 1] != b'_'
            });
            if found {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        rest = &call[end..];
    }
    out
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let routed = routed();
    assert!(routed.len() >= 40, "parsed only {} routes", routed.len());
    let documented = documented(&openapi());
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routed but not in docs/openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/openapi.json but not routed: {extra:?}"
    );
}

/// Follows a local `$ref` (one level is all the document uses for responses and parameters).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |node, key| &node[key]),
        None => v,
    }
}

#[test]
fn every_operation_documents_its_errors_and_answer_schemas() {
    let doc = openapi();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            let responses = op["responses"].as_object().expect("responses");
            let has = |code: &str| responses.contains_key(code);
            if op.get("operationId").is_none() {
                problems.push(format!("{at}: no operationId"));
            }
            if path.starts_with("/v1/") && !has("401") {
                problems.push(format!("{at}: no 401"));
            }
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(|p| resolve(&doc, p)).collect())
                .unwrap_or_default();
            if params
                .iter()
                .any(|p| p["in"] == "query" || p["in"] == "path")
                && !has("400")
            {
                problems.push(format!("{at}: parameters but no 400"));
            }
            if params.iter().any(|p| p["in"] == "path") && !has("404") {
                problems.push(format!("{at}: a path parameter but no 404"));
            }
            if let Some(body) = op.get("requestBody") {
                let body = resolve(&doc, body);
                let json_body = body["content"].get("application/json").is_some();
                for code in ["400", "413"] {
                    if !has(code) {
                        problems.push(format!("{at}: a request body but no {code}"));
                    }
                }
                for code in ["415", "422"] {
                    if json_body && !has(code) {
                        problems.push(format!("{at}: a JSON body but no {code}"));
                    }
                }
            }
            for (code, response) in responses {
                let response = resolve(&doc, response);
                if code == "204" {
                    continue;
                }
                match response["content"].as_object() {
                    Some(content) if !content.is_empty() => {
                        for (media, m) in content {
                            if m.get("schema").is_none() {
                                problems.push(format!("{at} {code} {media}: no schema"));
                            }
                        }
                    }
                    _ => problems.push(format!("{at} {code}: no content")),
                }
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    if schema != "#/components/schemas/Error" {
                        problems.push(format!("{at} {code}: not the Error schema"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

struct Tokens {
    hub: String,
    police: String,
    practitioner: String,
}

fn start() -> (tempfile::TempDir, Server, Tokens) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = Tokens {
        hub: add_user(&data, "hana-hub", "hub", &[]),
        police: add_user(&data, "pc-avon", "police", &["--force", "AvonSomerset"]),
        practitioner: add_user(&data, "pat", "practitioner", &["--caseload", "P1"]),
    };
    let server = Server::start(&data, Some(&common::fixture("orders.json")), &[]);
    (dir, server, tokens)
}

/// A raw HTTP call: (status, content type, body).
fn raw(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut req = ureq::request(method, &format!("http://{}{}", server.http_addr, path))
        .set("Authorization", &format!("Bearer {token}"))
        .set("X-Purpose", "contract test");
    if let Some(ct) = content_type {
        req = req.set("Content-Type", ct);
    }
    let result = if method == "GET" {
        req.call()
    } else {
        req.send_string(body)
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let ct = resp.content_type().to_string();
    (status, ct, resp.into_string().unwrap_or_default())
}

fn assert_error_json(what: &str, status: u16, ct: &str, body: &str, want: u16) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(ct, "application/json", "{what}: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["error", "message"]), "{what}: {body}");
    assert!(
        v["error"].is_string() && v["message"].is_string(),
        "{what}: {body}"
    );
}

#[test]
fn a_caller_without_the_role_gets_403_whatever_the_body() {
    let (_dir, server, t) = start();
    let hub_only_posts = [
        "/v1/people",
        "/v1/activations",
        "/v1/activations/A1/end",
        "/v1/orders",
        "/v1/alerts/X/acknowledge",
        "/v1/hits/X/review",
        "/v1/crimes/public",
        "/v1/stats/reset-latency",
    ];
    let bodies: [(Option<&str>, &str); 4] = [
        (None, ""),
        (Some("application/json"), "{not json"),
        (Some("application/json"), "{\"unexpected\": [1, 2]}"),
        (Some("text/plain"), "hello"),
    ];
    for path in hub_only_posts.iter().chain(&["/v1/users"]) {
        for token in [&t.police, &t.practitioner] {
            for (ct, body) in bodies {
                let (status, got_ct, text) = raw(&server, "POST", path, token, ct, body);
                assert_error_json(
                    &format!("POST {path} {ct:?} {body:?}"),
                    status,
                    &got_ct,
                    &text,
                    403,
                );
            }
        }
    }
    // Crime batches are no practitioner's business, whatever the query.
    let (status, ct, text) = raw(
        &server,
        "POST",
        "/v1/crimes/batches?radius_m=not-a-number",
        &t.practitioner,
        Some("text/csv"),
        "x",
    );
    assert_error_json("practitioner crime upload", status, &ct, &text, 403);
    // Admin-only, for the hub: 403 before the query or body is looked at.
    for (method, path) in [
        ("POST", "/v1/users"),
        ("GET", "/v1/audit?limit=not-a-number"),
        ("GET", "/v1/admin/retention/runs?limit=-1"),
        ("POST", "/v1/admin/retention/run?now=garbage"),
    ] {
        let (status, ct, text) = raw(&server, method, path, &t.hub, Some("text/plain"), "x");
        assert_error_json(&format!("{method} {path}"), status, &ct, &text, 403);
    }
}

#[test]
fn every_error_is_the_json_error_shape() {
    let (_dir, server, t) = start();
    let cases: [(&str, &str, Option<&str>, &str, u16); 9] = [
        ("GET", "/v1/alerts?limit=abc", None, "", 400),
        ("GET", "/v1/alerts?limit=-3", None, "", 400),
        ("GET", "/v1/no-such-route", None, "", 404),
        (
            "GET",
            "/v1/people/P1/trail?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z&page=x",
            None,
            "",
            400,
        ),
        ("POST", "/v1/people", None, "{}", 415),
        ("POST", "/v1/people", Some("application/json"), "{oops", 400),
        (
            "POST",
            "/v1/people",
            Some("application/json"),
            "{\"name\": 3}",
            422,
        ),
        (
            "POST",
            "/v1/alerts/X/frobnicate",
            Some("application/json"),
            "{}",
            404,
        ),
        ("DELETE", "/v1/people", None, "", 405),
    ];
    for (method, path, ct, body, want) in cases {
        let (status, got_ct, text) = raw(&server, method, path, &t.hub, ct, body);
        assert_error_json(&format!("{method} {path}"), status, &got_ct, &text, want);
    }
}

#[test]
fn extreme_inputs_are_never_a_server_error() {
    let (_dir, server, t) = start();
    let period = "from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z";
    for path in [
        format!("/v1/people/P1/trail?{period}&page=18446744073709551615"),
        format!("/v1/people/P1/stays?{period}&min_dwell_min=9223372036854775807"),
        format!("/v1/people/P1/stays?{period}&min_dwell_min=-9223372036854775808&radius_m=inf"),
        format!("/v1/activations/A1/trail?{period}&page=9223372036854775807&format=kml"),
        // An id that cannot go into a header as it is (the CSV's file name).
        "/v1/crimes/batches/d%C3%B3%23h%1C%22x/hits.csv".to_string(),
    ] {
        // Answered, or refused with a documented 400 naming the parameter; never a 5xx.
        let (status, got_ct, text) = raw(&server, "GET", &path, &t.hub, None, "");
        if status != 200 {
            assert_error_json(&format!("GET {path}"), status, &got_ct, &text, 400);
        }
    }
}

#[test]
fn metrics_are_valid_prometheus_text_with_help_type_and_summary_sums() {
    let (_dir, server, _t) = start();
    let (status, body) = call(&server, "GET", "/metrics", None, None, None);
    assert_eq!(status, 200);
    // A real parser of the exposition format reads it…
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    assert!(!scrape.samples.is_empty());
    // …and every family it found has its HELP and TYPE, every summary its sum and count.
    let mut helped = BTreeSet::new();
    let mut typed = std::collections::BTreeMap::new();
    for line in body.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), Some(_)) => {
                assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                assert!(
                    typed.insert(name.to_string(), kind.to_string()).is_none(),
                    "TYPE twice for {name}"
                );
            }
            (Some(w), ..) if w.starts_with('#') => panic!("stray comment line {line:?}"),
            _ => {}
        }
    }
    for sample in &scrape.samples {
        let family = typed
            .keys()
            .find(|f| {
                sample.metric == **f
                    || sample.metric == format!("{f}_sum")
                    || sample.metric == format!("{f}_count")
            })
            .unwrap_or_else(|| panic!("sample {} has no TYPE", sample.metric));
        assert!(helped.contains(family), "{family} has no HELP");
    }
    assert_eq!(
        helped,
        typed.keys().cloned().collect(),
        "HELP and TYPE for the same families"
    );
    let summaries: Vec<&String> = typed
        .iter()
        .filter(|(_, k)| *k == "summary")
        .map(|(n, _)| n)
        .collect();
    assert!(!summaries.is_empty());
    for name in summaries {
        for suffix in ["_sum", "_count"] {
            let want = format!("{name}{suffix}");
            assert!(
                scrape.samples.iter().any(|s| s.metric == want),
                "summary {name} has no {want}"
            );
        }
        let parsed = scrape
            .samples
            .iter()
            .find(|s| &s.metric == name)
            .map(|s| &s.value);
        assert!(
            matches!(parsed, Some(prometheus_parse::Value::Summary(_))),
            "{name} parses as a summary: {parsed:?}"
        );
    }
}
