//! Alcohol over real HTTP: a real SCRAM bar-crawl export streamed into the server gives a
//! drinking day in the order's sober-day record, a cohort rate, a drinking alert, and an SVG chart
//! that parses as XML; access is by role, with purpose.

mod common;

use common::{add_user, call, Server, TagClient};
use serde_json::json;
use std::path::Path;
use tagstream::model::time::parse_time;
use tagstream::model::{Reading, ReadingBody, TacSample};

fn scram_readings(name: &str) -> Vec<Reading> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/alcohol/scram-barcrawl")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let temp_c = (f[3].parse::<f64>().unwrap() - 32.0) * 5.0 / 9.0;
            Reading {
                t_ms: parse_time(f[0]).unwrap(),
                battery_pct: None,
                body: ReadingBody::Tac(TacSample {
                    tac_ugdl: (f[1].parse::<f64>().unwrap() * 1e6).round() as i32,
                    ir_uv: (f[2].parse::<f64>().unwrap() * 1e6).round() as i32,
                    temp_mc: (temp_c * 1e3).round() as i32,
                }),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sober_days_rate_and_chart_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, json!({
        "people": [{"id": "P1", "name": "Bar Crawl"}, {"id": "P2", "name": "Other"}],
        "activations": [{"id": "A1", "person": "P1", "tag": "S1", "from": "2017-05-02T00:00:00Z", "to": null}],
        "orders": [{"id": "O1", "person": "P1", "from": "2017-05-02", "to": "2017-06-01",
                    "conditions": [{"type": "alcohol", "mode": "abstinence"}]}]
    }).to_string()).unwrap();
    let hub = add_user(&data, "hana", "hub", &[]);
    let other = add_user(&data, "pat", "practitioner", &["--caseload", "P2"]);
    let server = Server::start(&data, Some(&orders), &[]);

    let readings = scram_readings("BK7610.csv");
    assert!(readings.len() > 40);
    let mut tag = TagClient::connect(&server.ingest_addr, "S1").await;
    for (i, chunk) in readings.chunks(4).enumerate() {
        tag.send_acked(i as u64 + 1, chunk.to_vec()).await;
    }
    let _ = server.settled_alerts();
    let why = Some("supervision");

    let (status, body) = call(
        &server,
        "GET",
        "/v1/orders/O1/sober-days",
        Some(&hub),
        why,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let drinking_days: Vec<&str> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "drinking")
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert!(drinking_days.contains(&"2017-05-02"), "{body}");
    assert!(v["rate"]["days"].as_u64().unwrap() >= 1);

    let (status, body) = call(
        &server,
        "GET",
        "/v1/sober-days/rate?orders=O1",
        Some(&hub),
        why,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"pooled\"") && body.contains("\"O1\""),
        "{body}"
    );

    let (status, body) = call(
        &server,
        "GET",
        "/v1/alerts?type=drinking_event",
        Some(&hub),
        why,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len(),
        1,
        "{body}"
    );

    let (status, svg) = call(
        &server,
        "GET",
        "/v1/activations/A1/alcohol-chart?from=2017-05-02T00:00:00Z&to=2017-05-04T00:00:00Z",
        Some(&hub),
        why,
        None,
    );
    assert_eq!(status, 200, "{svg}");
    let doc = roxmltree::Document::parse(&svg).expect("the chart is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");

    // A practitioner without this person on the caseload, and a missing purpose.
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/orders/O1/sober-days",
            Some(&other),
            why,
            None
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/activations/A1/alcohol-chart?from=2017-05-02T00:00:00Z&to=2017-05-03T00:00:00Z",
            Some(&other),
            why,
            None
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/sober-days/rate?orders=O1",
            Some(&other),
            why,
            None
        )
        .0,
        403
    );
    assert_eq!(
        call(
            &server,
            "GET",
            "/v1/orders/O1/sober-days",
            Some(&hub),
            None,
            None
        )
        .0,
        400
    );
}
