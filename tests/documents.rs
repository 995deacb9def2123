//! The hit evidence pack over real HTTP and offline, checked from the outside as a recipient
//! would: `pdftotext` finds every required field and value, `pdftoppm` renders every page and
//! the map page is not blank, `qpdf --check` finds the PDF well formed, the manifest verifies
//! (and fails once a byte changes), the same data gives the same bytes (twice from the API, and
//! from `tagstream report hit-pack` on the stopped server's data directory), and police get 403
//! for an unconfirmed hit's pack and for another force's. Needs poppler-utils and qpdf
//! (`scripts/documents-setup.sh`, run by `scripts/test.sh`).

mod common;
#[path = "support/pdf_checks.rs"]
mod pdf_checks;

use common::{add_user, call, Server, TagClient};
use pdf_checks::{
    assert_offline_report, assert_well_formed, page_ink, pdf_flat_text, real_street_archive, tool,
    verify_manifest,
};
use tagstream::model::time::parse_time;
use tagstream::model::Reading;

const C1: (f64, f64) = (51.4545, -2.5879);
const PURPOSE: &str = "crime hit review";
const DECLARATION: &str =
    "I confirm this record was produced by the monitoring service (test declaration).";

const ORDERS: &str = r#"{"people":[
  {"id":"P1","name":"Alex Example","date_of_birth":"1990-01-01","nomis_id":"A1234BC","pnc_ref":"12/345678A","address":"1 Example Street, Bristol","offender_manager":"Olu Manager","restricted":false}],
 "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-28T00:00:00Z","to":null}],
 "orders":[{"id":"O1","person":"P1","from":"2026-03-28","to":"2026-06-01","conditions":[{"type":"trail"}]}]}"#;

const BATCH: &str = "AvonSomerset,BIAD,Burglary in a dwelling,AVS20260329,AVS/1,20260328102000,20260328104000,,,51.4545,-2.5879,WGS84,\"Rear door forced, \"\"jewellery\"\" taken\"\n";

fn t(text: &str) -> i64 {
    parse_time(text).unwrap()
}

/// A walk west to east past C1, 30 m north of it, a fix every 2 minutes.
fn walk() -> Vec<Reading> {
    let at = t("2026-03-28T10:30:00Z");
    (-10..=10)
        .step_by(2)
        .map(|m: i64| {
            common::gps_fix_offset(at + m * 60_000 + 60_000, C1, 75.0 + 75.0 * m as f64, 30.0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_pack_from_the_api_and_offline_is_complete_reproducible_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, ORDERS).unwrap();
    let archive = real_street_archive(dir.path());
    let config = dir.path().join("tagstream.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\ntile_archive = {:?}\n[documents]\nwitness_declaration = {:?}\n",
            archive.display().to_string(),
            DECLARATION
        ),
    )
    .unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let avs = add_user(&data, "avon", "police", &["--force", "AvonSomerset"]);
    let kent = add_user(&data, "kent", "police", &["--force", "Kent"]);
    let admin = add_user(&data, "ada", "admin", &[]);
    let mut server = Server::start(
        &data,
        Some(&orders),
        &["--config", config.to_str().unwrap()],
    );

    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    // Two batches: the manifest names each position by the batch it came in.
    let walk = walk();
    let split_t = walk[5].t_ms;
    t1.send_acked(1, walk[..5].to_vec()).await;
    t1.send_acked(2, walk[5..].to_vec()).await;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let upload = ureq::post(&format!("http://{}/v1/crimes/batches", server.http_addr))
        .set("Authorization", &format!("Bearer {avs}"))
        .set("Content-Type", "text/csv")
        .query("filename", "AVS20260329.csv")
        .send_string(BATCH)
        .expect("upload");
    assert_eq!(upload.status(), 200);
    let mut id = String::new();
    for _ in 0..100 {
        let (_, body) = call(&server, "GET", "/v1/hits", Some(&hub), Some(PURPOSE), None);
        let hits: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(h) = hits.as_array().and_then(|a| a.first()) {
            id = h["id"].as_str().unwrap().to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!id.is_empty(), "no hit was found");
    let pdf_path = format!("/v1/hits/{id}/pack.pdf");

    // Police: not before the hub confirms, never for another force; no purpose, no pack.
    assert_eq!(common::get_bytes(&server, &pdf_path, &avs, PURPOSE).0, 403);
    let (status, _) = call(&server, "GET", &pdf_path, Some(&hub), None, None);
    assert_eq!(status, 400, "a purpose is required");
    let (status, body) = call(
        &server,
        "POST",
        &format!("/v1/hits/{id}/review"),
        Some(&hub),
        None,
        Some(serde_json::json!({"decision": "confirm", "reason": "Route matches the door camera"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(common::get_bytes(&server, &pdf_path, &kent, PURPOSE).0, 403);
    let (status, police_pdf) = common::get_bytes(&server, &pdf_path, &avs, PURPOSE);
    assert_eq!(status, 200);

    // The hub's pack is the police's, byte for byte, and the same again.
    let (status, pdf) = common::get_bytes(&server, &pdf_path, &hub, PURPOSE);
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(pdf, police_pdf);
    assert_eq!(common::get_bytes(&server, &pdf_path, &hub, PURPOSE).1, pdf);
    let (status, json) =
        common::get_bytes(&server, &format!("/v1/hits/{id}/pack.json"), &avs, PURPOSE);
    assert_eq!(status, 200);
    let (status, manifest) = common::get_bytes(
        &server,
        &format!("/v1/hits/{id}/pack-manifest.json"),
        &avs,
        PURPOSE,
    );
    assert_eq!(status, 200);

    // Every download was audited with its purpose.
    let (_, audit) = call(
        &server,
        "GET",
        "/v1/audit?limit=1000",
        Some(&admin),
        Some(PURPOSE),
        None,
    );
    let entries: serde_json::Value = serde_json::from_str(&audit).unwrap_or_default();
    let packs = entries
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["action"] == "documents.hit_pack" && e["purpose"] == PURPOSE)
                .count()
        })
        .unwrap_or(0);
    assert!(packs >= 5, "{audit}");

    let out = dir.path().join("api");
    std::fs::create_dir_all(&out).unwrap();
    let pdf_file = out.join(format!("{id}-pack.pdf"));
    std::fs::write(&pdf_file, &pdf).unwrap();
    std::fs::write(out.join(format!("{id}-pack.json")), &json).unwrap();
    let manifest_file = out.join(format!("{id}-manifest.json"));
    std::fs::write(&manifest_file, &manifest).unwrap();

    // What a recipient reads.
    let flat = pdf_flat_text(&pdf_file);
    for needed in [
        "AVS/1",
        "AvonSomerset",
        "AVS20260329",
        "Burglary in a dwelling (BIAD)",
        "Sat 28 Mar 2026 10:20:00 GMT",
        "2026-03-28 10:40:00Z",
        "51.454500, -2.587900",
        "E 35",
        "Alex Example",
        "A1234BC",
        "12/345678A",
        "1 Example Street, Bristol",
        "1990-01-01",
        "Olu Manager",
        "T1 (activation A1)",
        "Certain",
        "Confirmed by the hub",
        "hana",
        "Route matches the door camera",
        "Rear door forced",
        "A1",
        "Exhibit 1",
        "Exhibit 2",
        "Test streets",
        DECLARATION,
        "Signature",
    ] {
        assert!(
            flat.contains(needed),
            "'{needed}' missing from the PDF:\n{flat}"
        );
    }
    let algorithm = serde_json::from_slice::<serde_json::Value>(&json).unwrap()["decision"]
        ["algorithm"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(flat.contains(&algorithm), "{algorithm}");

    // Every page renders; the map page has streets and evidence on it (not blank).
    let pages_dir = dir.path().join("pages");
    std::fs::create_dir_all(&pages_dir).unwrap();
    let ink = page_ink(&pdf_file, &pages_dir);
    assert!(ink.len() >= 3, "{ink:?}");
    if let Ok(keep) = std::env::var("TAGSTREAM_KEEP_PACK") {
        std::fs::copy(&pdf_file, keep).unwrap();
    }
    assert!(ink[1] > 0.5, "the map page is nearly blank: {ink:?}");
    let images = tool("pdfimages", &["-list", pdf_file.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&images.stdout).lines().count();
    assert!(
        listed > 2 + 2,
        "street tiles are composited: {listed} lines"
    );
    assert_well_formed(&pdf_file);

    // Each position is named by activation, tag, batch and event time.
    let named: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let named = named["inputs"]["positions"].as_array().unwrap().clone();
    assert!(!named.is_empty());
    for p in &named {
        let seq = if t(p["t"].as_str().unwrap()) < split_t {
            1
        } else {
            2
        };
        assert_eq!(
            p["batch"],
            serde_json::json!({"epoch": 0, "seq": seq}),
            "{p}"
        );
        assert_eq!(
            (&p["activation"], &p["tag"]),
            (&serde_json::json!("A1"), &serde_json::json!("T1"))
        );
    }

    // The manifest verifies, and fails once a byte changes.
    let verify = verify_manifest;
    assert!(verify(&manifest_file).status.success());

    // Offline from the stopped server's data: the same bytes.
    let (status, _) = server.terminate();
    assert!(status.success());
    let offline = dir.path().join("offline");
    assert_offline_report(
        &["hit-pack", "--hit", &id, "--purpose", "court bundle"],
        &data,
        Some(&config),
        &offline,
        &[
            (format!("{id}-pack.pdf"), &pdf),
            (format!("{id}-pack.json"), &json),
            (format!("{id}-manifest.json"), &manifest),
        ],
    );
    assert!(verify(&offline.join(format!("{id}-manifest.json")))
        .status
        .success());

    let mut tampered = pdf.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    std::fs::write(&pdf_file, &tampered).unwrap();
    let failed = verify(&manifest_file);
    assert!(!failed.status.success());
    let why = String::from_utf8_lossy(&failed.stderr);
    assert!(why.contains("pack.pdf") && why.contains("changed"), "{why}");
}
