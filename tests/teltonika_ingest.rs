//! Teltonika trackers against the real binary: only devices bound to a tag through the API are
//! accepted (unknown IMEIs answered 0x00 and counted, revoked tags and unbound devices refused),
//! a refused packet is acknowledged with 0 records and stores nothing, a resend of the last
//! packet is not stored twice, other devices are unaffected; and a GPS population streamed by
//! `tagsim stream --protocol teltonika` raises the same curfew and zone alerts as the same
//! population (reporting what a tracker can) over the native protocol.
//!
//! Needs the `tagsim` binary (built by `cargo test --workspace` and by `scripts/test.sh`).

mod common;

use common::{call, generate_sim_with, metric, spawn_tagsim_stream, Server, ADMIN_TOKEN};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use tagstream::devices::teltonika::mapping::io_id;
use tagstream::devices::teltonika::{
    AvlPacket, AvlRecord, Codec, DeviceCodec, DeviceMessage, GpsElement, Imei, IoElement, IoValue,
    Priority, ServerReply,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const PRIVATE_NETWORK: &str = "[teltonika]\nlisten = \"127.0.0.1:0\"\nprivate_network = true\n";

fn start_with_teltonika(dir: &Path, orders: Option<&Path>) -> Server {
    let config = dir.join("teltonika.toml");
    std::fs::write(&config, PRIVATE_NETWORK).unwrap();
    Server::start(
        &dir.join("data"),
        orders,
        &["--config", config.to_str().unwrap()],
    )
}

fn bind(server: &Server, imei: &str, tag: &str) -> (u16, String) {
    call(
        server,
        "PUT",
        &format!("/v1/devices/teltonika/{imei}"),
        Some(ADMIN_TOKEN),
        Some("fitting a tracker"),
        Some(json!({ "tag": tag })),
    )
}

fn committed_readings(server: &Server) -> u64 {
    let stats: Value = serde_json::from_str(&server.get("/v1/stats").unwrap()).unwrap();
    stats["committed_readings"].as_u64().unwrap()
}

/// The committed readings once the count has reached `expected` (the pipeline counts them just
/// after the acknowledgement), or what it is after five seconds.
fn committed_readings_reach(server: &Server, expected: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = committed_readings(server);
        if now >= expected || std::time::Instant::now() > deadline {
            // A moment more, so that a count going past `expected` shows.
            std::thread::sleep(std::time::Duration::from_millis(100));
            return committed_readings(server);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A packet of `n` GPS records a minute apart from `t0_ms`.
fn packet(t0_ms: i64, n: usize) -> AvlPacket {
    let records = (0..n)
        .map(|i| AvlRecord {
            t_ms: t0_ms + i as i64 * 60_000,
            priority: Priority::Low,
            gps: GpsElement {
                longitude_e7: -25_876_543,
                latitude_e7: 514_545_123 + i as i32 * 100,
                altitude_m: 40,
                angle_deg: 90,
                satellites: 9,
                speed_kmh: 4,
            },
            event_io_id: 0,
            io: vec![IoElement {
                id: io_id::HDOP,
                value: IoValue::U16(12),
            }],
        })
        .collect();
    AvlPacket {
        codec: Codec::Codec8,
        records,
    }
}

type Tracker = Framed<TcpStream, DeviceCodec>;

/// Connects and sends the IMEI; returns the connection and the server's answer.
async fn handshake(addr: &str, imei: &str) -> (Tracker, Option<ServerReply>) {
    let socket = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(socket, DeviceCodec::default());
    let imei = Imei::from_digits(imei.as_bytes()).unwrap();
    framed.send(&DeviceMessage::Imei(imei)).await.unwrap();
    let answer = framed.next().await.and_then(Result::ok);
    (framed, answer)
}

async fn send(framed: &mut Tracker, packet: &AvlPacket) -> Option<ServerReply> {
    framed
        .send(&DeviceMessage::Avl(packet.clone()))
        .await
        .ok()?;
    framed.next().await.and_then(Result::ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bound_devices_are_accepted_and_refused_packets_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| start_with_teltonika(dir.path(), None));
    let addr = server
        .teltonika_addr
        .clone()
        .expect("the Teltonika listener runs");
    let (a, b, c) = ("356307042441013", "356307042441021", "356307042441039");
    let (status, body) = tokio::task::block_in_place(|| bind(&server, a, "T1"));
    assert_eq!(status, 200, "{body}");
    let bound: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (bound["tag"].as_str(), bound["actor"].as_str()),
        (Some("T1"), Some("bootstrap-admin"))
    );
    tokio::task::block_in_place(|| {
        assert_eq!(bind(&server, c, "T2").0, 200);
        // One device per tag; a malformed IMEI names what is wrong.
        let (status, body) = bind(&server, b, "T1");
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("already bound"), "{body}");
        let (status, body) = bind(&server, "12345", "T3");
        assert_eq!(status, 400);
        assert!(body.contains("15 digits"), "{body}");
    });

    // An unknown IMEI is refused and counted.
    let (_, answer) = handshake(&addr, b).await;
    assert_eq!(answer, Some(ServerReply::ImeiRefused));
    let unknown = tokio::task::block_in_place(|| {
        metric(&server, "tagstream_teltonika_unknown_devices_total")
    });
    assert_eq!(unknown, 1.0);

    let t0 = 1_772_438_400_000; // 2026-03-02T08:00:00Z
    let (mut tracker, answer) = handshake(&addr, a).await;
    assert_eq!(answer, Some(ServerReply::ImeiAccepted));
    let (mut other, answer) = handshake(&addr, c).await;
    assert_eq!(answer, Some(ServerReply::ImeiAccepted));

    // A packet whose CRC does not match is acknowledged with 0 records; nothing is stored.
    let good = packet(t0, 3);
    let mut bytes = bytes::BytesMut::new();
    tagstream::devices::teltonika::encode_avl_packet(&good, &mut bytes, 1 << 16).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let raw = tracker.get_mut();
    tokio::io::AsyncWriteExt::write_all(raw, &bytes)
        .await
        .unwrap();
    assert_eq!(
        tracker.next().await.unwrap().unwrap(),
        ServerReply::Ack { records: 0 }
    );

    // The same packet intact is stored and acknowledged with its count; sent again (its
    // acknowledgement lost) it is acknowledged again and not stored twice.
    assert_eq!(
        send(&mut tracker, &good).await,
        Some(ServerReply::Ack { records: 3 })
    );
    assert_eq!(
        send(&mut tracker, &good).await,
        Some(ServerReply::Ack { records: 3 })
    );
    // The other device is unaffected by all of it.
    let theirs = packet(t0, 2);
    assert_eq!(
        send(&mut other, &theirs).await,
        Some(ServerReply::Ack { records: 2 })
    );
    tokio::task::block_in_place(|| {
        assert_eq!(
            committed_readings_reach(&server, 5),
            5,
            "3 + 2: the refused packet and the resend stored nothing"
        );
        assert_eq!(
            metric(&server, "tagstream_teltonika_refused_packets_total"),
            1.0
        );
        assert_eq!(
            metric(&server, "tagstream_teltonika_resent_packets_total"),
            1.0
        );
        let (status, _) = call(
            &server,
            "POST",
            "/v1/tags/T1/revoke",
            Some(ADMIN_TOKEN),
            Some("tracker stolen"),
            None,
        );
        assert_eq!(status, 200);
    });
    // Revoked: the live connection is closed at its next packet, unacknowledged, and a new
    // handshake is refused; the other device goes on.
    assert_eq!(send(&mut tracker, &packet(t0 + 3_600_000, 1)).await, None);
    let (_, answer) = handshake(&addr, a).await;
    assert_eq!(answer, Some(ServerReply::ImeiRefused));
    assert_eq!(
        send(&mut other, &packet(t0 + 3_600_000, 1)).await,
        Some(ServerReply::Ack { records: 1 })
    );
    // Unbound: refused from then on.
    tokio::task::block_in_place(|| {
        let path = format!("/v1/devices/teltonika/{c}");
        let (status, body) = call(
            &server,
            "DELETE",
            &path,
            Some(ADMIN_TOKEN),
            Some("returned"),
            None,
        );
        assert_eq!(status, 204, "{body}");
        let (status, _) = call(
            &server,
            "DELETE",
            &path,
            Some(ADMIN_TOKEN),
            Some("again"),
            None,
        );
        assert_eq!(status, 404);
    });
    assert_eq!(send(&mut other, &packet(t0 + 7_200_000, 1)).await, None);
    let (_, answer) = handshake(&addr, c).await;
    assert_eq!(answer, Some(ServerReply::ImeiRefused));
    tokio::task::block_in_place(|| {
        assert_eq!(committed_readings_reach(&server, 6), 6);
        // Every binding change is audited.
        let audit = server.get("/v1/audit").unwrap();
        assert!(
            audit.contains("device.bind") && audit.contains("device.unbind"),
            "{audit}"
        );
        let devices: Value = serde_json::from_str(&server.get("/v1/devices").unwrap()).unwrap();
        assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    });
}

/// The curfew (AL08–AL12) and zone alerts `server` holds once settled, by id: those that stand
/// (not withdrawn), without their `late` flag. Both depend on when readings arrived, not on
/// what they say: a "possible" alert raised while a tag's upload was still on its way and
/// withdrawn when it came, a reading that arrived after others of later time. Two runs over the
/// same protocol differ in them too; what the readings say must not.
fn curfew_and_zone_alerts(server: &Server) -> Vec<Value> {
    let text = server.settled_alerts();
    let mut alerts: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a.get("withdrawn").is_none())
        .map(|mut a| {
            a.as_object_mut().unwrap().remove("late");
            a
        })
        .filter(|a| {
            matches!(
                a["type"].as_str(),
                Some("curfew_violation" | "exclusion_zone_entry" | "inclusion_zone_exit")
            )
        })
        .collect();
    alerts.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    alerts
}

fn run_stream(options: &[&str], connect: &str, extra: &[&str]) {
    let mut args: Vec<&str> = options.to_vec();
    args.extend_from_slice(extra);
    let out = spawn_tagsim_stream(&args, connect, "0")
        .wait_with_output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("readings not sendable"), "{text}");
}

#[test]
fn a_gps_population_raises_the_same_curfew_and_zone_alerts_over_teltonika_as_over_native() {
    let dir = tempfile::tempdir().unwrap();
    let options = [
        "--tags",
        "16",
        "--days",
        "2",
        "--seed",
        "11",
        "--gps-share",
        "1",
        "--swap-share",
        "0",
    ];
    let sim = generate_sim_with(dir.path(), &options);
    let orders = sim.join("orders.json");
    let devices: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(sim.join("devices.json")).unwrap()).unwrap();

    let native_dir = dir.path().join("native");
    let native = Server::start(&native_dir.join("data"), Some(&orders), &[]);
    run_stream(
        &options,
        &native.ingest_addr,
        &["--device-profile", "teltonika"],
    );
    let over_native = curfew_and_zone_alerts(&native);

    let teltonika_dir = dir.path().join("teltonika");
    std::fs::create_dir_all(&teltonika_dir).unwrap();
    let server = start_with_teltonika(&teltonika_dir, Some(&orders));
    for d in &devices {
        let (status, body) = bind(
            &server,
            d["device"].as_str().unwrap(),
            d["tag"].as_str().unwrap(),
        );
        assert_eq!(status, 200, "{body}");
    }
    let addr = server.teltonika_addr.clone().unwrap();
    run_stream(&options, &addr, &["--protocol", "teltonika"]);
    let over_teltonika = curfew_and_zone_alerts(&server);

    assert!(
        over_native.len() >= 3,
        "too few curfew and zone alerts to compare: {}",
        over_native.len()
    );
    assert_eq!(
        committed_readings(&native),
        committed_readings(&server),
        "the same readings reached both logs"
    );
    assert_eq!(over_native, over_teltonika);
    let sessions = metric(&server, "tagstream_teltonika_sessions_total");
    assert!(sessions >= 16.0, "{sessions}");
}
