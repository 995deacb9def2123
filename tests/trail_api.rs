//! Trails over real HTTP: positions reach the trail store through the live server, and each
//! export format parses with a standard parser (GeoJSON crate, XML for GPX and KML, CSV crate);
//! gap flags and stays on the known fixture; bounded periods, purpose and audit; role checks.

mod common;

use common::{add_user, call, fixture, stream_health_fixture, Server};

const PERIOD: &str = "from=2026-03-28T00:00:00Z&to=2026-03-28T03:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trails_export_in_every_format_with_gaps_stays_limits_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hana", "hub", &[]);
    let practitioner = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    let admin = add_user(&data, "ada", "admin", &[]);
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    stream_health_fixture(&server).await;
    let why = Some("case conference");
    let get = |path: &str, token: &str| call(&server, "GET", path, Some(token), why, None);

    // Wait until the feed has applied everything (it trails the ack by a moment).
    let mut geo = String::new();
    for _ in 0..100 {
        let (status, body) = get(&format!("/v1/people/P1/trail?{PERIOD}"), &hub);
        assert_eq!(status, 200, "{body}");
        geo = body;
        if geo.matches("\"Point\"").count() == 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let parsed: geojson::GeoJson = geo.parse().expect("valid GeoJSON");
    let geojson::GeoJson::FeatureCollection(fc) = parsed else {
        panic!("not a FeatureCollection")
    };
    let points = fc
        .features
        .iter()
        .filter(|f| {
            matches!(
                f.geometry.as_ref().map(|g| &g.value),
                Some(geojson::GeometryValue::Point { .. })
            )
        })
        .count();
    assert_eq!(points, 120, "one point per minute 00:00–01:59");

    let (status, gpx) = get(&format!("/v1/people/P1/trail?{PERIOD}&format=gpx"), &hub);
    assert_eq!(status, 200);
    let doc = roxmltree::Document::parse(&gpx).expect("GPX is XML");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("trkpt"))
            .count(),
        120
    );
    let (status, kml) = get(&format!("/v1/people/P1/trail?{PERIOD}&format=kml"), &hub);
    assert_eq!(status, 200);
    let doc = roxmltree::Document::parse(&kml).expect("KML is XML");
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("Placemark"))
            .count()
            >= 120
    );
    let (status, csv_text) = get(&format!("/v1/people/P1/trail?{PERIOD}&format=csv"), &hub);
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("CSV row")).collect();
    assert_eq!(rows.len(), 120);

    // P2's fixes at 00:01, 00:11, 00:31, 02:10, 02:11: gaps of more than 5 minutes before the
    // 2nd, 3rd and 4th, so the sequence labels start a new letter there.
    let (status, p2) = get(&format!("/v1/people/P2/trail?{PERIOD}"), &practitioner);
    assert_eq!(status, 200, "{p2}");
    let v: serde_json::Value = serde_json::from_str(&p2).unwrap();
    let props: Vec<(bool, String)> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["geometry"]["type"] == "Point")
        .map(|f| {
            (
                f["properties"]["gap_before"].as_bool().unwrap(),
                f["properties"]["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        props,
        vec![
            (false, "A1".into()),
            (true, "B1".into()),
            (true, "C1".into()),
            (true, "D1".into()),
            (false, "D2".into())
        ]
    );

    // P1 stood still for two hours: one stay.
    let (status, stays) = get(&format!("/v1/people/P1/stays?{PERIOD}"), &hub);
    assert_eq!(status, 200, "{stays}");
    let stays: serde_json::Value = serde_json::from_str(&stays).unwrap();
    assert_eq!(stays["stays"].as_array().unwrap().len(), 1, "{stays}");
    assert_eq!(stays["stays"][0]["arrival"], "2026-03-28T00:00:00Z");
    let (status, daily) = get(&format!("/v1/people/P1/daily?{PERIOD}"), &hub);
    assert_eq!(status, 200, "{daily}");

    // Limits, purpose, roles.
    let (status, body) = get(
        "/v1/people/P1/trail?from=2026-01-01T00:00:00Z&to=2026-03-28T00:00:00Z",
        &hub,
    );
    assert_eq!(status, 400);
    assert!(body.contains("at most 31 days"), "{body}");
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/v1/people/P1/trail?{PERIOD}"),
            Some(&hub),
            None,
            None
        )
        .0,
        400
    );
    assert_eq!(
        get(&format!("/v1/people/P1/trail?{PERIOD}"), &practitioner).0,
        403
    );
    assert_eq!(
        get(&format!("/v1/activations/A1/trail?{PERIOD}"), &practitioner).0,
        403
    );
    assert_eq!(
        get(&format!("/v1/activations/A2/trail?{PERIOD}"), &practitioner).0,
        200
    );
    assert_eq!(
        get(&format!("/v1/people/P1/trail?{PERIOD}&format=shp"), &hub).0,
        400
    );

    let (_, audit) = call(
        &server,
        "GET",
        "/v1/audit?user=pat",
        Some(&admin),
        None,
        None,
    );
    let audit: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    let trail_reads: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|e| e["action"] == "trail.read")
        .collect();
    assert_eq!(trail_reads.len(), 2, "{audit:#?}");
    assert_eq!(trail_reads[0]["person"], "P2");
    assert_eq!(trail_reads[0]["from"], "2026-03-28T00:00:00Z");
    assert_eq!(trail_reads[0]["to"], "2026-03-28T03:00:00Z");
    assert_eq!(trail_reads[0]["format"], "geojson");
    assert_eq!(trail_reads[0]["purpose"], "case conference");
}
