//! Recordings carry each batch's arrival time (issue 14, item 4): a JSON Lines recording of what
//! a live server received, written with its arrival times, replays the event-time clock — and so
//! the alerts — exactly as the server computed them; without them it does not.

mod common;

use common::{Server, TagClient};
use tagstream::model::time::parse_time;
use tagstream::model::{Position, PositionSource, Reading, ReadingBody};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn fix(t_ms: i64) -> Reading {
    Reading {
        t_ms,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: 514_545_000,
            lon_e7: -25_879_000,
            precision_cm: 800,
            source: PositionSource::Gps,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: Some(8),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_with_arrival_times_replays_the_live_clock() {
    let dir = tempfile::tempdir().unwrap();
    let now = {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        ms - ms % MIN
    };
    let from = tagstream::model::time::format_time(now - HOUR);
    let orders = dir.path().join("orders.json");
    std::fs::write(
        &orders,
        format!(
            r#"{{"people":[{{"id":"P1"}},{{"id":"P2"}}],
 "activations":[{{"id":"A1","person":"P1","tag":"T1","from":"{from}"}},
                {{"id":"A2","person":"P2","tag":"T2","from":"{from}"}}],
 "orders":[]}}"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&orders), &[]);
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    t1.send_acked(
        1,
        (0..6).map(|k| fix(now - 50 * MIN + k * 10 * MIN)).collect(),
    )
    .await;
    t2.send_acked(
        1,
        (0..6).map(|k| fix(now - 50 * MIN + k * 10 * MIN)).collect(),
    )
    .await;
    // T1's clock says 2100: more than a day after the server received it, so it is held out of
    // the rules (device_clock). Only the recorded arrival time can tell: with two tags the
    // clock has no quorum to measure skew against.
    let y2100 = parse_time("2100-01-01T00:00:00Z").unwrap();
    t1.send_acked(2, vec![fix(y2100)]).await;
    t2.send_acked(2, vec![fix(now + MIN)]).await;
    let mut live = server.settled_alerts();
    for _ in 0..50 {
        if live.contains("device_clock") {
            break;
        }
        live = server.settled_alerts();
    }
    drop(server);
    assert_eq!(live.lines().count(), 1, "{live}");
    assert!(live.contains(r#""type":"device_clock""#), "{live}");

    // Record what the server received, as JSON Lines with arrival times.
    let mut recording = Vec::new();
    tagstream::replay::read_recorded(&data, &mut |entry| match entry {
        tagstream::model::LogEntry::Batch(batch) => {
            assert!(batch.arrival_ms > 0);
            tagstream::formats::readings_jsonl::write_batch(&mut recording, &batch).unwrap();
        }
        tagstream::model::LogEntry::Control { record, control } => {
            tagstream::formats::readings_jsonl::write_control(&mut recording, record, &control)
                .unwrap();
        }
    })
    .unwrap();
    let text = String::from_utf8(recording).unwrap();
    // The start-up import's control lines (people, activations, orders), then the readings.
    let readings = || text.lines().filter(|l| !l.contains(r#""control":"#));
    assert_eq!(readings().count(), 14);
    assert!(readings().all(|l| l.contains(r#","arrival":""#)), "{text}");
    let file = dir.path().join("recording.jsonl");
    std::fs::write(&file, &text).unwrap();
    let replayed = common::replay_alerts(&orders, &file, &dir.path().join("out"));
    assert_eq!(replayed, live, "the recording replays the live clock");

    // The same recording without arrival times: the 2100 reading moves the clock, and every
    // tag is "silent" for 74 years.
    let stripped: String = readings()
        .map(|l| {
            let a = l.find(r#","arrival":""#).unwrap();
            let b = a + l[a..].find(r#"","batch""#).unwrap() + 1;
            format!("{}{}\n", &l[..a], &l[b..])
        })
        .collect();
    assert!(!stripped.contains("arrival"));
    let file = dir.path().join("no-arrival.jsonl");
    std::fs::write(&file, stripped).unwrap();
    let without = common::replay_alerts(&orders, &file, &dir.path().join("out-no-arrival"));
    assert!(!without.contains("device_clock"), "{without}");
    assert!(without.contains("no_contact"), "{without}");
}
