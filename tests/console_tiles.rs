//! The console's local map tiles over HTTP: `tagstream serve --tile-archive` with the checked-in
//! synthetic street archive serves PNG tiles at /console/tiles/{z}/{x}/{y}.png (404 outside the
//! archive, 400 for malformed addresses), tells the page where they are and that they are
//! synthetic, and refuses to start with an unusable archive or with a remote tile URL as well.

mod common;

use common::{bin, Server};
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

fn archive() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/basemap/demo-streets.mbtiles")
}

/// Status, content type, cache control and body bytes.
fn get(server: &Server, path: &str) -> (u16, String, String, Vec<u8>) {
    let (status, r) = match ureq::get(&format!("http://{}{}", server.http_addr, path)).call() {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("GET {path}: {e}"),
    };
    let header = |h: &str| r.header(h).unwrap_or_default().to_string();
    let (ct, cc) = (header("content-type"), header("cache-control"));
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    (status, ct, cc, body)
}

/// The XYZ tile holding (lat, lon) at zoom z (Web Mercator).
fn tile_at(lat: f64, lon: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let x = (lon + 180.0) / 360.0 * n;
    let lat = lat.to_radians();
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

#[test]
fn street_tiles_are_served_from_the_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = archive();
    let server = Server::start(
        dir.path(),
        None,
        &["--tile-archive", archive.to_str().unwrap()],
    );

    let (status, _, _, body) = get(&server, "/console/config.json");
    assert_eq!(status, 200);
    let cfg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(cfg["tile_url"], "/console/tiles/{z}/{x}/{y}.png");
    assert_eq!(cfg["tile_min_native_zoom"], 11);
    assert_eq!(cfg["tile_max_native_zoom"], 16);
    assert_eq!(cfg["tile_synthetic"], true);
    assert!(
        cfg["tile_attribution"]
            .as_str()
            .is_some_and(|a| a.contains("not evidence")),
        "{cfg}"
    );
    let bounds: Vec<f64> = serde_json::from_value(cfg["tile_bounds"].clone()).unwrap();
    let [w, s, e, n] = bounds[..] else {
        panic!("bounds {bounds:?}")
    };
    assert!(
        w < -2.5879 && -2.5879 < e && s < 51.4545 && 51.4545 < n,
        "{bounds:?}"
    );

    // Central Bristol at street zoom and at the widest zoom: 256-pixel PNGs, cacheable.
    for z in [16u8, 13, 11] {
        let (x, y) = tile_at(51.4545, -2.5879, z);
        let (status, ct, cc, png) = get(&server, &format!("/console/tiles/{z}/{x}/{y}.png"));
        assert_eq!(status, 200, "z{z}");
        assert_eq!(ct, "image/png");
        assert_eq!(cc, "public, max-age=86400");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG magic");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(png[16..24], [0, 0, 1, 0, 0, 0, 1, 0], "256 x 256");
    }

    // Outside the archive: London at z16, and Bristol deeper than the archive goes.
    let (x, y) = tile_at(51.5074, -0.1278, 16);
    assert_eq!(
        get(&server, &format!("/console/tiles/16/{x}/{y}.png")).0,
        404
    );
    let (x, y) = tile_at(51.4545, -2.5879, 17);
    assert_eq!(
        get(&server, &format!("/console/tiles/17/{x}/{y}.png")).0,
        404
    );

    // Malformed or outside the zoom's grid.
    for bad in [
        "/console/tiles/16/abc/21000.png",
        "/console/tiles/16/32000/21000.jpg",
        "/console/tiles/3/8/0.png",
        "/console/tiles/3/0/8.png",
        "/console/tiles/99/0/0.png",
        "/console/tiles/-1/0/0.png",
    ] {
        assert_eq!(get(&server, bad).0, 400, "{bad}");
    }
}

/// `tagstream serve` with `extra` must fail at start, saying all of `expected`.
fn refuses_to_start(extra: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--ingest-addr", "127.0.0.1:0", "--http-addr"])
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .env("TAGSTREAM_TAG_KEY", common::TAG_KEY)
        .env("TAGSTREAM_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {extra:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "it listened: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for e in expected {
        assert!(stderr.contains(e), "{extra:?}: expected {e:?} in {stderr}");
    }
}

#[test]
fn an_unusable_archive_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.mbtiles");
    refuses_to_start(
        &["--tile-archive", missing.to_str().unwrap()],
        &[missing.to_str().unwrap(), "no such file"],
    );
    let text = dir.path().join("readme.mbtiles");
    std::fs::write(
        &text,
        "not a tile archive at all, only some words in a file",
    )
    .unwrap();
    refuses_to_start(
        &["--tile-archive", text.to_str().unwrap()],
        &[text.to_str().unwrap(), "not an MBTiles archive"],
    );
    let archive = archive();
    refuses_to_start(
        &[
            "--tile-archive",
            archive.to_str().unwrap(),
            "--tile-url",
            "https://tiles.example.org/{z}/{x}/{y}.png",
        ],
        &["both set"],
    );
}
