//! The real server over loopback: live alerts equal replay byte for byte, malformed frames get
//! error frames without disturbing other tags, duplicates are stored once, and a kill -9 at any
//! moment loses no acknowledged reading.

mod common;

use common::{bin, fixture, fixture_batches, Server, TagClient, TAG_KEY};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use tagstream::log::LogReader;
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};
use tagstream::wire::{ErrorCode, Frame};
use tokio::io::AsyncWriteExt;

fn replay(readings: &Path, out: &Path) -> String {
    common::replay_alerts(&fixture("orders.json"), readings, out)
}

fn fix(t_ms: i64) -> Reading {
    Reading {
        t_ms,
        battery_pct: Some(50),
        body: ReadingBody::Position(Position {
            lat_e7: 514_545_000,
            lon_e7: -25_879_000,
            precision_cm: 500,
            source: PositionSource::Gps,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: None,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_equal_replay_of_the_same_file_and_of_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&fixture("orders.json")), &[]);
    let mut clients: HashMap<String, TagClient> = HashMap::new();
    // One batch at a time, each acked before the next: the log holds the file's order.
    for batch in fixture_batches() {
        if !clients.contains_key(&batch.tag) {
            let c = TagClient::connect(&server.ingest_addr, &batch.tag).await;
            clients.insert(batch.tag.clone(), c);
        }
        clients
            .get_mut(&batch.tag)
            .unwrap()
            .send_acked(batch.seq, batch.readings)
            .await;
    }
    let live = server.settled_alerts();
    assert!(
        live.contains("\"late\":true"),
        "the fixture has a late batch: {live}"
    );
    assert_eq!(live.lines().count(), 5, "{live}");

    let from_file = replay(&fixture("readings.jsonl"), &dir.path().join("out-file"));
    assert_eq!(
        live, from_file,
        "live and replay of the recorded file differ"
    );
    let from_log = replay(&dir.path().join("data"), &dir.path().join("out-log"));
    assert_eq!(
        live, from_log,
        "live and replay of the server's own log differ"
    );
    let again = replay(&fixture("readings.jsonl"), &dir.path().join("out-again"));
    assert_eq!(from_file, again, "replay is not deterministic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_an_error_frame_and_other_tags_keep_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&fixture("orders.json")), &[]);
    let mut good = TagClient::connect(&server.ingest_addr, "T1").await;
    good.send_acked(1, vec![fix(1_774_656_000_000)]).await;

    // Wrong secret.
    let refused = TagClient::connect_with_secret(&server.ingest_addr, "T2", "00ff")
        .await
        .err();
    assert!(
        matches!(
            refused,
            Some(Frame::Error {
                code: ErrorCode::AuthFailed,
                ..
            })
        ),
        "{refused:?}"
    );

    // Raw byte-level cases: (bytes, expected code).
    let oversize = {
        let mut b = (u32::MAX / 2).to_le_bytes().to_vec();
        b.push(2);
        b
    };
    let unknown_type = vec![1, 0, 0, 0, 0x7f];
    let batch_first = {
        let mut b = Vec::new();
        let payload_len = 1 + 8 + 4 + 32;
        b.extend_from_slice(&(payload_len as u32).to_le_bytes());
        b.push(tagstream::wire::FrameType::Batch.code());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&tagstream::wire::encode_record(&fix(0)));
        b
    };
    for (bytes, expected) in [
        (oversize, ErrorCode::FrameTooLarge),
        (unknown_type, ErrorCode::UnknownFrameType),
        (batch_first, ErrorCode::BatchBeforeHello),
    ] {
        let mut socket = tokio::net::TcpStream::connect(&server.ingest_addr)
            .await
            .unwrap();
        socket.write_all(&bytes).await.unwrap();
        let mut framed =
            tokio_util::codec::Framed::new(socket, tagstream::wire::FrameCodec::default());
        use futures::StreamExt;
        match framed.next().await {
            Some(Ok(Frame::Error { code, message })) => {
                assert_eq!(code, expected, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected error {expected:?}, got {other:?}"),
        }
        assert!(
            framed.next().await.is_none(),
            "connection must close after an error frame"
        );
    }

    // A bad record inside a batch, after a good hello: the error names the record.
    let mut bad = TagClient::connect(&server.ingest_addr, "T2").await;
    let mut record = tagstream::wire::encode_record(&fix(0));
    record[8] = 99;
    let mut frame = Vec::new();
    frame.extend_from_slice(&((1 + 8 + 4 + 32) as u32).to_le_bytes());
    frame.push(tagstream::wire::FrameType::Batch.code());
    frame.extend_from_slice(&1u64.to_le_bytes());
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&record);
    bad.framed.get_mut().write_all(&frame).await.unwrap();
    match bad.next_frame().await {
        Some(Frame::Error {
            code: ErrorCode::BadRecord,
            message,
        }) => assert!(message.contains('0'), "{message}"),
        other => panic!("expected bad record error, got {other:?}"),
    }

    // A second hello on the same connection.
    let mut twice = TagClient::connect(&server.ingest_addr, "T2").await;
    twice.framed.send_hello_again().await;
    assert!(matches!(
        twice.next_frame().await,
        Some(Frame::Error {
            code: ErrorCode::SecondHello,
            ..
        })
    ));

    // The good tag was never disturbed.
    good.send_acked(2, vec![fix(1_774_656_060_000)]).await;
}

trait HelloAgain {
    async fn send_hello_again(&mut self);
}

impl HelloAgain for tokio_util::codec::Framed<tokio::net::TcpStream, tagstream::wire::FrameCodec> {
    async fn send_hello_again(&mut self) {
        use futures::SinkExt;
        let secret = tagstream::wire::tag_secret(TAG_KEY.as_bytes(), "T2");
        self.send(Frame::hello("T2", secret)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_batches_are_acked_again_but_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    assert_eq!(tag.last_seq, 0);
    tag.send_acked(1, vec![fix(1_774_656_000_000), fix(1_774_656_060_000)])
        .await;
    tag.send_acked(2, vec![fix(1_774_656_120_000)]).await;
    tag.send_acked(1, vec![fix(1_774_656_000_000), fix(1_774_656_060_000)])
        .await;
    drop(tag);
    // After a reconnect the server says where to resume, and a resend is still only acked.
    let mut again = TagClient::connect(&server.ingest_addr, "T1").await;
    assert_eq!(again.last_seq, 2);
    again.send_acked(2, vec![fix(1_774_656_120_000)]).await;
    drop(server);
    let stored: Vec<(String, u64)> = LogReader::open(&data.join("log"))
        .unwrap()
        .batches()
        .map(|r| r.unwrap().1)
        .map(|b| (b.tag, b.seq))
        .collect();
    assert_eq!(stored, vec![("T1".to_string(), 1), ("T1".to_string(), 2)]);
    let inspect = Command::new(bin())
        .args(["inspect", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(summary["activations"], 2, "{summary}");
    assert_eq!(summary["log"]["readings"]["gps"], 3, "{summary}");
}

/// Streams from several tags with pipelined batches, SIGKILLs the server at a random moment,
/// restarts it, and checks that every acknowledged batch is in the log and `inspect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_stream_loses_no_acknowledged_reading() {
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut server = Server::start(&data, Some(&fixture("orders.json")), &[]);
        let acked = Arc::new(std::sync::Mutex::new(HashSet::<(String, u64)>::new()));
        let mut tasks = Vec::new();
        for tag in ["T1", "T2", "X3", "X4"] {
            let addr = server.ingest_addr.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = TagClient::connect(&addr, tag).await;
                let mut in_flight = std::collections::VecDeque::new();
                for seq in 1..=100_000u64 {
                    let readings = (0..50)
                        .map(|k| fix(1_774_656_000_000 + (seq * 50 + k) as i64 * 1000))
                        .collect();
                    if client
                        .framed
                        .send_nowait(Frame::Batch { seq, readings })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    in_flight.push_back(seq);
                    while in_flight.len() >= 8 {
                        match client.framed.next_nowait().await {
                            Some(Frame::Ack { seq }) => {
                                assert_eq!(in_flight.pop_front(), Some(seq));
                                acked.lock().unwrap().insert((tag.to_string(), seq));
                            }
                            _ => return, // server gone
                        }
                    }
                }
            }));
        }
        let wait_ms = 300 + (round * 7919 + std::process::id() as u64) % 700;
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        server.kill9();
        for t in tasks {
            let _ = t.await;
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 10,
            "round {round}: too few acks ({}) to mean anything",
            acked.len()
        );

        // Restart on the same data: recovery keeps every acknowledged batch.
        let restarted = Server::start(&data, None, &[]);
        let stats: serde_json::Value =
            serde_json::from_str(&restarted.get("/v1/stats").unwrap()).unwrap();
        drop(restarted);
        let stored: HashSet<(String, u64)> = LogReader::open(&data.join("log"))
            .unwrap()
            .batches()
            .map(|r| r.unwrap().1)
            .map(|b| (b.tag, b.seq))
            .collect();
        let missing: Vec<_> = acked.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
        let inspect = Command::new(bin())
            .args(["inspect", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let summary: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        let readings = summary["log"]["readings"]["gps"].as_u64().unwrap();
        assert!(
            readings >= acked.len() as u64 * 50,
            "round {round}: inspect shows {readings} readings"
        );
        assert_eq!(
            stats["committed_batches"].as_u64().unwrap(),
            stored.len() as u64
        );
    }
}

trait NoWait {
    async fn send_nowait(&mut self, frame: Frame) -> Result<(), ()>;
    async fn next_nowait(&mut self) -> Option<Frame>;
}

impl NoWait for tokio_util::codec::Framed<tokio::net::TcpStream, tagstream::wire::FrameCodec> {
    async fn send_nowait(&mut self, frame: Frame) -> Result<(), ()> {
        use futures::SinkExt;
        self.send(frame).await.map_err(|_| ())
    }
    async fn next_nowait(&mut self) -> Option<Frame> {
        use futures::StreamExt;
        match tokio::time::timeout(std::time::Duration::from_secs(5), self.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            _ => None,
        }
    }
}

#[allow(dead_code)]
fn unused(_: DeviceEvent) {}
