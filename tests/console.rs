//! The web console as `tagstream serve` serves it: the page and its assets from `web/` (found from
//! the current directory), the deployment settings, a Content-Security-Policy that keeps the page
//! on this origin, no way out of the console directory, and `GET /v1/me` for each role.

mod common;

use common::{add_user, call, fixture, Server, ADMIN_TOKEN};

fn raw_get(server: &Server, path: &str) -> (u16, String, String) {
    match ureq::get(&format!("http://{}{}", server.http_addr, path)).call() {
        Ok(r) => {
            let csp = r
                .header("content-security-policy")
                .unwrap_or("")
                .to_string();
            (r.status(), csp, r.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(code, r)) => {
            (code, String::new(), r.into_string().unwrap_or_default())
        }
        Err(e) => panic!("GET {path}: {e}"),
    }
}

#[test]
fn the_console_is_served_with_its_settings_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        None,
        &["--tile-url", "https://tiles.example.org/{z}/{x}/{y}.png"],
    );

    let (status, csp, body) = raw_get(&server, "/");
    assert_eq!(status, 200);
    assert!(body.contains("/console/js/app.js"), "{body}");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("img-src 'self' data: blob: https://tiles.example.org;"),
        "{csp}"
    );

    let (status, _, js) = raw_get(&server, "/console/js/api.js");
    assert_eq!(status, 200);
    assert!(js.contains("Authorization"));
    let (status, _, basemap) = raw_get(&server, "/console/basemap/force-areas.geojson");
    assert_eq!(status, 200);
    assert!(basemap.contains("Avon and Somerset"));

    let (status, _, settings) = raw_get(&server, "/console/config.json");
    assert_eq!(status, 200);
    let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(
        settings["tile_url"],
        "https://tiles.example.org/{z}/{x}/{y}.png"
    );

    for outside in [
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/package.json",
        "/console/node_modules/leaflet/package.json",
        "/console/nothing-here.js",
    ] {
        assert_eq!(raw_get(&server, outside).0, 404, "{outside}");
    }
}

#[test]
fn me_says_who_the_token_belongs_to_and_what_it_is_bound_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let practitioner = add_user(&data, "om-priya", "practitioner", &["--caseload", "P1,P2"]);
    let police = add_user(&data, "pc-dave", "police", &["--force", "AvonSomerset"]);
    let hub = add_user(&data, "hub-anna", "hub", &[]);
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    let me = |token: Option<&str>| {
        let (status, body) = call(&server, "GET", "/v1/me", token, None, None);
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    assert_eq!(
        me(Some(&practitioner)),
        (
            200,
            serde_json::json!({"user": "om-priya", "role": "practitioner", "caseload": ["P1", "P2"]})
        )
    );
    assert_eq!(
        me(Some(&police)),
        (
            200,
            serde_json::json!({"user": "pc-dave", "role": "police", "force": "AvonSomerset"})
        )
    );
    assert_eq!(
        me(Some(&hub)),
        (200, serde_json::json!({"user": "hub-anna", "role": "hub"}))
    );
    assert_eq!(me(Some(ADMIN_TOKEN)).1["role"], "admin");
    assert_eq!(me(None).0, 401);
    assert_eq!(me(Some("not-a-token")).0, 401);
}
