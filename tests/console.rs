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

/// The status line and headers (lower-cased names) of a raw GET with `extra` header lines, and
/// the body's length.
fn raw_head(server: &Server, path: &str, extra: &str) -> (String, Vec<(String, String)>, usize) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.http_addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let cut = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..cut]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, all.len() - cut - 4)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn static_files_are_compressed_for_browsers_that_accept_it_and_revalidated_by_etag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    // A file of the repository's own (npm packages are installed after the cargo tests).
    let file = "/console/basemap/force-areas.geojson";
    let (status, plain, plain_len) = raw_head(&server, file, "");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(header(&plain, "content-encoding"), None);
    let (_, gzip, gzip_len) = raw_head(&server, file, "Accept-Encoding: gzip\r\n");
    assert_eq!(header(&gzip, "content-encoding"), Some("gzip"));
    assert!(
        gzip_len * 3 < plain_len,
        "gzip {gzip_len} bytes against {plain_len}"
    );
    let (_, br, br_len) = raw_head(&server, file, "Accept-Encoding: br\r\n");
    assert_eq!(header(&br, "content-encoding"), Some("br"));
    assert!(br_len * 3 < plain_len, "br {br_len} against {plain_len}");
    // Revalidation: the same file again is 304 with no body; the tag is kept.
    let tag = header(&plain, "etag").expect("an ETag").to_string();
    assert_eq!(header(&plain, "cache-control"), Some("no-cache"));
    let (status, again, len) = raw_head(&server, file, &format!("If-None-Match: {tag}\r\n"));
    assert!(status.contains(" 304 "), "{status}");
    assert_eq!((header(&again, "etag"), len), (Some(tag.as_str()), 0));
    let (status, _, _) = raw_head(&server, file, "If-None-Match: \"other\"\r\n");
    assert!(status.contains(" 200 "), "{status}");
}
