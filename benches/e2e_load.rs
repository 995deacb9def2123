//! End-to-end load run: starts the real `tagstream serve` binary on loopback with a fresh data
//! directory, streams readings from many simulated tags over the native protocol, and measures
//! acknowledged (durable) readings per second and the ingest→alert latency distribution
//! (hdrhistogram, server side: batch arrival → alert stored) plus batch ack latency (client side).
//!
//! Run: `cargo bench --bench e2e_load -- [--tags N] [--seconds S] [--batch B] [--rate R] [--tls]`
//! `--rate 0` is flat out; `--rate R` paces the whole load at R readings/s, each tag at its own
//! phase (tags upload independently); `--phase-locked` makes every tag send at the same instant.
//! `--tls` puts the tag port behind TLS (a self-signed certificate made at start; the tags
//! trust it), to compare with a plain run of the same options.
//! `--order-changes R` posts R order variations per second through the API meanwhile (each a
//! curfew variation backdated to the run's start, for a person drawn from a caseload of
//! `--caseload N` people, each with a curfew order; the first `--tags` of them have the streaming
//! tags' activations), and reports their latency (answered once durable and applied). Each of
//! its 16 client threads keeps one HTTP connection open (keep-alive), as an application would.
//! `--ramp-s S` opens the tags' connections gradually over S seconds (as a fleet reconnects after
//! an outage) and `--idle-s I` keeps them connected and silent for I seconds after the ramp,
//! when the server's resident memory is read: its growth over the memory before the first
//! connection, per connected tag, is reported as `server_rss_per_idle_connection_bytes`. Sending
//! starts after both, for `--seconds`. `server_cpu_us_per_batch` divides the server's CPU time by
//! the batches acknowledged.
//! `--teltonika` makes every tag a Teltonika tracker instead (bound to its tag through the API
//! before the run, on a private-network listener): Codec 8 packets of the batch's records, one in
//! flight, each acknowledged with its record count; every 20th batch's last record is a low
//! battery event (a tracker has no strap), so alerts flow.
//! A tag whose hello is refused as busy (`server_busy`: too many connections, or too many
//! waiting to authenticate) sends nothing and is counted in `tags_refused_busy`.
//! `server_rss` is the server's resident memory before the first connection, its peak (sampled
//! every second from when sending starts; every fifth sample is also printed on stderr) and at
//! the end.
//! `E2E_SERVER_BIN=path` runs that server binary instead of this build's (before/after runs).
//! `--commit-delay-us D` sets the embedded log's `[log] commit_delay_us`.
//! `--no-contact-ms N` sets `[pipeline] no_contact_ms` (the load's event time races ahead, so
//! tags that lag the clock raise no-contact alerts in bursts: a large N leaves them out).
//! `--jetstream R` puts the log on a NATS JetStream stream with R replicas instead of the
//! embedded log: R NATS servers (a cluster when R > 1) on loopback, from the binary
//! `scripts/nats-setup.sh` installs, storing in the run's scratch directory.

#[path = "support/nats.rs"]
mod nats;

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use nats::start_jetstream;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tagstream::devices::teltonika::mapping::io_id;
use tagstream::devices::teltonika::{
    AvlPacket, AvlRecord, Codec, DeviceCodec, DeviceMessage, GpsElement, Imei, IoElement, IoValue,
    Priority, ServerReply,
};
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};
use tagstream::wire::{tag_secret, Frame, FrameCodec, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

struct Options {
    tags: usize,
    seconds: u64,
    batch: usize,
    rate: u64,
    window: usize,
    phase_locked: bool,
    tls: bool,
    order_changes: u64,
    caseload: usize,
    /// Replicas of a JetStream log (0: the embedded log).
    jetstream: usize,
    /// The embedded log's `[log] commit_delay_us` (the server's default when absent).
    commit_delay_us: Option<u64>,
    /// `[pipeline] no_contact_ms` (the server's default when absent).
    no_contact_ms: Option<u64>,
    /// Speak Teltonika Codec 8 instead of the native protocol.
    teltonika: bool,
    /// Seconds over which the connections open.
    ramp_s: u64,
    /// Seconds every tag stays connected and silent after the ramp (memory is read then).
    idle_s: u64,
}

fn parse_options() -> Options {
    let mut o = Options {
        tags: 200,
        seconds: 10,
        batch: 500,
        rate: 0,
        window: 8,
        phase_locked: false,
        tls: false,
        order_changes: 0,
        caseload: 0,
        jetstream: 0,
        ramp_s: 0,
        idle_s: 0,
        commit_delay_us: None,
        no_contact_ms: None,
        teltonika: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        if args[i] == "--phase-locked" {
            o.phase_locked = true;
            i += 1;
            continue;
        }
        if args[i] == "--teltonika" {
            o.teltonika = true;
            i += 1;
            continue;
        }
        if args[i] == "--tls" {
            o.tls = true;
            i += 1;
            continue;
        }
        match (args[i].as_str(), value) {
            ("--tags", Some(v)) => o.tags = v as usize,
            ("--seconds", Some(v)) => o.seconds = v,
            ("--batch", Some(v)) => o.batch = v as usize,
            ("--rate", Some(v)) => o.rate = v,
            ("--window", Some(v)) => o.window = v as usize,
            ("--order-changes", Some(v)) => o.order_changes = v,
            ("--caseload", Some(v)) => o.caseload = v as usize,
            ("--jetstream", Some(v)) => o.jetstream = v as usize,
            ("--ramp-s", Some(v)) => o.ramp_s = v,
            ("--commit-delay-us", Some(v)) => o.commit_delay_us = Some(v),
            ("--no-contact-ms", Some(v)) => o.no_contact_ms = Some(v),
            ("--idle-s", Some(v)) => o.idle_s = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

const T0_MS: i64 = 1_774_915_200_000; // 2026-03-31T00:00:00Z

/// Tags connected and past their hello.
static CONNECTED: AtomicU64 = AtomicU64::new(0);
/// Tags whose hello the server refused as busy (they send nothing).
static BUSY_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Acks slower than 100 ms, per second of sending (stderr at the end: shows whether a tail is
/// spread over the run or comes in stalls).
static SLOW_ACKS_BY_SECOND: [AtomicU64; 600] = [const { AtomicU64::new(0) }; 600];

/// User + system CPU seconds process `pid` has used so far (/proc, 100 ticks a second).
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The resident memory of process `pid` in bytes (`VmRSS` of /proc), if readable.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A curfew order for person `i`, starting at `start` (HH:MM).
fn curfew_order(i: usize, start: &str) -> serde_json::Value {
    serde_json::json!({"id": format!("O{i}"), "person": format!("P{i}"), "from": "2026-03-01",
        "conditions": [{"type": "curfew",
            "addresses": [{"id": "home", "lat": 51.45 + (i % 1000) as f64 * 1e-5, "lon": -2.59, "radius_m": 50}],
            "timetable": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": start, "end": "07:00", "address": "home"}]}]})
}

/// `people` people, the first `tags` of them with an activation (the tags streaming), and (with
/// order changes) a curfew order each. The rest of the caseload has no activation: the load's
/// event time runs about 300,000 times faster than real time (500 one-minute fixes per batch),
/// so an idle activation would raise a curfew alert every simulated night, which would be
/// measured instead of the order changes.
fn caseload_json(people: usize, tags: usize, with_orders: bool) -> String {
    let doc: serde_json::Value = serde_json::from_str(&orders_json(people)).expect("orders json");
    let activations: Vec<serde_json::Value> = doc["activations"]
        .as_array()
        .map(|a| a.iter().take(tags).cloned().collect())
        .unwrap_or_default();
    let orders: Vec<_> = if with_orders {
        (0..people).map(|i| curfew_order(i, "19:00")).collect()
    } else {
        Vec::new()
    };
    serde_json::json!({"people": doc["people"], "activations": activations, "orders": orders})
        .to_string()
}

/// Posts `rate` order variations per second until `deadline` from `threads` threads; returns
/// (changes answered 201, refused or failed, latency histogram in µs).
fn post_order_changes(
    http: &str,
    token: &str,
    rate: u64,
    caseload: usize,
    deadline: Instant,
) -> (u64, u64, Histogram<u64>) {
    const THREADS: u64 = 16;
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let (http, token) = (http.to_string(), token.to_string());
            std::thread::spawn(move || {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
                let (mut ok, mut failed) = (0u64, 0u64);
                let interval = Duration::from_secs_f64(THREADS as f64 / rate as f64);
                let mut n = 0u64;
                let url = format!("http://{http}/v1/orders?effective=2026-03-31T00:00:00Z");
                // One keep-alive connection per client thread, as a hub's application would hold
                // (a connection per change would measure TCP set-up, not the change).
                let agent = ureq::AgentBuilder::new()
                    .max_idle_connections_per_host(1)
                    .build();
                loop {
                    let due = started
                        + interval.mul_f64(n as f64)
                        + interval.mul_f64(k as f64 / THREADS as f64);
                    if due >= deadline {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let i = ((n * THREADS + k) * 7919) as usize % caseload;
                    let start = if (n + k).is_multiple_of(2) {
                        "20:00"
                    } else {
                        "19:30"
                    };
                    let sent = Instant::now();
                    let answer = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Content-Type", "application/json")
                        .send_string(&curfew_order(i, start).to_string());
                    h.record(sent.elapsed().as_micros().max(1) as u64)
                        .expect("record");
                    match answer {
                        Ok(r) if r.status() == 201 => ok += 1,
                        _ => failed += 1,
                    }
                    n += 1;
                }
                (ok, failed, h)
            })
        })
        .collect();
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut ok, mut failed) = (0, 0);
    for handle in handles {
        let (o, f, h) = handle.join().expect("order change thread");
        ok += o;
        failed += f;
        total.add(h).expect("add histogram");
    }
    (ok, failed, total)
}

fn orders_json(tags: usize) -> String {
    let people: Vec<_> = (0..tags)
        .map(|i| serde_json::json!({"id": format!("P{i}"), "name": format!("Load {i}")}))
        .collect();
    let activations: Vec<_> = (0..tags)
        .map(|i| serde_json::json!({"id": format!("A{i}"), "person": format!("P{i}"), "tag": format!("L{i}"), "from": "2026-03-01T00:00:00Z", "to": null}))
        .collect();
    serde_json::json!({"people": people, "activations": activations, "orders": []}).to_string()
}

/// Batch `n` of a tag: one-minute GPS fixes; every 20th batch opens the strap and the next
/// closes it, so alerts flow continuously.
fn make_batch(tag_index: usize, n: u64, size: usize) -> Vec<Reading> {
    let base = T0_MS + (n as i64) * size as i64 * 60_000;
    let mut readings: Vec<Reading> = (0..size)
        .map(|k| Reading {
            t_ms: base + k as i64 * 60_000,
            battery_pct: Some(90),
            body: ReadingBody::Position(Position {
                lat_e7: 514_500_000 + (tag_index as i32 % 1000) * 100 + k as i32,
                lon_e7: -25_900_000 + k as i32 * 3,
                precision_cm: 800,
                source: PositionSource::Gps,
                speed_ckmh: Some(400),
                heading_cdeg: Some(9000),
                satellites: Some(9),
            }),
        })
        .collect();
    let event = match n % 20 {
        10 => Some(DeviceEvent::StrapOpen),
        11 => Some(DeviceEvent::StrapClosed),
        _ => None,
    };
    if let (Some(e), Some(last)) = (event, readings.last_mut()) {
        last.body = ReadingBody::Event(e);
    }
    readings
}

/// One tag's batch frame, encoded once and patched per send.
struct BatchTemplate {
    bytes: Vec<u8>,
    open_record: [u8; tagstream::wire::RECORD_LEN],
    close_record: [u8; tagstream::wire::RECORD_LEN],
    fix_record: [u8; tagstream::wire::RECORD_LEN],
    size: usize,
}

/// Offset of the batch seq in an encoded frame (length, type) and of the first record.
const SEQ_AT: usize = 5;
const RECORDS_AT: usize = 5 + 8 + 4;

impl BatchTemplate {
    fn new(tag_index: usize, size: usize) -> Self {
        let readings = make_batch(tag_index, 1, size);
        let mut buf = bytes::BytesMut::new();
        tagstream::wire::encode_frame(
            &Frame::Batch {
                seq: 1,
                readings: readings.clone(),
            },
            &mut buf,
        );
        let last = *readings.last().expect("non-empty batch");
        let with = |body| tagstream::wire::encode_record(&Reading { body, ..last });
        Self {
            bytes: buf.to_vec(),
            open_record: with(ReadingBody::Event(DeviceEvent::StrapOpen)),
            close_record: with(ReadingBody::Event(DeviceEvent::StrapClosed)),
            fix_record: tagstream::wire::encode_record(&readings[0]),
            size,
        }
    }

    fn render(&mut self, seq: u64) -> &[u8] {
        self.bytes[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
        let last_at = RECORDS_AT + (self.size - 1) * tagstream::wire::RECORD_LEN;
        let last = match seq % 20 {
            10 => self.open_record,
            11 => self.close_record,
            _ => self.fix_record,
        };
        self.bytes[last_at..last_at + tagstream::wire::RECORD_LEN].copy_from_slice(&last);
        let base = T0_MS + (seq as i64) * self.size as i64 * 60_000;
        for k in 0..self.size {
            let at = RECORDS_AT + k * tagstream::wire::RECORD_LEN;
            self.bytes[at..at + 8].copy_from_slice(&(base + k as i64 * 60_000).to_le_bytes());
        }
        &self.bytes
    }
}

/// A self-signed certificate for `localhost` in `dir` (cert file, key file) and the client
/// configuration that trusts it.
fn self_signed_tls(
    dir: &std::path::Path,
) -> anyhow::Result<(
    std::path::PathBuf,
    std::path::PathBuf,
    Arc<rustls::ClientConfig>,
)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let (cert_file, key_file) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    std::fs::write(&cert_file, certified.cert.pem())?;
    std::fs::write(&key_file, certified.key_pair.serialize_pem())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone())?;
    let client = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((cert_file, key_file, Arc::new(client)))
}

#[allow(clippy::too_many_arguments)]
async fn run_tag(
    addr: String,
    key: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    tag_index: usize,
    opts: Arc<Options>,
    (connect_at, sending_starts, deadline): (Instant, Instant, Instant),
    acked: Arc<AtomicU64>,
    ack_latency: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<()> {
    tokio::time::sleep_until(connect_at.into()).await;
    let socket = TcpStream::connect(&addr).await?;
    socket.set_nodelay(true)?;
    let run = (
        key,
        tag_index,
        opts,
        sending_starts,
        deadline,
        acked,
        ack_latency,
    );
    if run.2.teltonika {
        return drive_tracker(socket, run).await;
    }
    match tls {
        None => drive_tag(socket, run).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, socket)
                .await?;
            drive_tag(stream, run).await
        }
    }
}

type TagRun = (
    String,
    usize,
    Arc<Options>,
    Instant,
    Instant,
    Arc<AtomicU64>,
    Arc<Mutex<Histogram<u64>>>,
);

async fn drive_tag<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    socket: S,
    (key, tag_index, opts, sending_starts, deadline, acked, ack_latency): TagRun,
) -> anyhow::Result<()> {
    let tag = format!("L{tag_index}");
    let mut framed = Framed::new(socket, FrameCodec::with_max_frame_bytes(4 << 20));
    framed
        .send(Frame::Hello {
            protocol_version: PROTOCOL_VERSION,
            tag: tag.clone(),
            secret: tag_secret(key.as_bytes(), &tag),
            epoch: 0,
        })
        .await?;
    match framed.next().await {
        Some(Ok(Frame::HelloOk { .. })) => {}
        // Counted, not fatal: the run goes on with the tags the server took (15,000 tags
        // need more descriptors than a 20,000 RLIMIT_NOFILE leaves for tag connections).
        Some(Ok(Frame::Error {
            code: tagstream::wire::ErrorCode::ServerBusy,
            ..
        })) => {
            BUSY_REFUSED.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        other => anyhow::bail!("hello refused: {other:?}"),
    }
    CONNECTED.fetch_add(1, Ordering::Relaxed);
    // Made before sending starts: work the client does then is measured as ack latency.
    let mut template = BatchTemplate::new(tag_index, opts.batch);
    tokio::time::sleep_until(sending_starts.into()).await;
    // Pacing per tag: this tag's share of the total rate. Tags upload independently, so each
    // tag's schedule starts at its own phase of the period (`--phase-locked` sends every tag's
    // batch at the same instant instead: a synchronised burst, the worst case for the tail).
    let period = if opts.rate == 0 {
        None
    } else {
        let per_tag_batches_per_s = opts.rate as f64 / opts.batch as f64 / opts.tags as f64;
        Some(Duration::from_secs_f64(1.0 / per_tag_batches_per_s))
    };
    let phase = if opts.phase_locked {
        0.0
    } else {
        tag_index as f64 / opts.tags as f64
    };
    let start = Instant::now();
    let due_at = |seq: u64| match period {
        Some(p) => start + p.mul_f64(seq as f64 + phase),
        None => start,
    };
    let mut sent_at: std::collections::VecDeque<Instant> = Default::default();
    let mut seq = 0u64;
    let mut latencies_us = Vec::new();
    loop {
        let next_due = due_at(seq);
        // Flat out (`--rate 0`) every batch is due at the start: the deadline is the clock's.
        let in_time = next_due < deadline && (period.is_some() || Instant::now() < deadline);
        let may_send = in_time && sent_at.len() < opts.window;
        if may_send && Instant::now() >= next_due {
            seq += 1;
            // Patch the pre-encoded template (seq, event times, event kind) instead of
            // re-encoding: keeps the client's CPU share small on a 2-core machine.
            let frame = template.render(seq);
            framed.get_mut().write_all(frame).await?;
            // A no-op on TCP; over TLS it pushes out the records rustls may still hold.
            framed.get_mut().flush().await?;
            sent_at.push_back(Instant::now());
            continue;
        }
        if sent_at.is_empty() && !may_send {
            break;
        }
        // Wait for an ack, or until the next batch is due (no polling between the two).
        let wake = if may_send {
            tokio::time::Instant::from_std(next_due)
        } else {
            tokio::time::Instant::now() + Duration::from_secs(30)
        };
        tokio::select! {
            frame = framed.next(), if !sent_at.is_empty() => match frame {
                Some(Ok(Frame::Ack { .. })) => {
                    if let Some(t) = sent_at.pop_front() {
                        let latency_us = t.elapsed().as_micros().max(1) as u64;
                        latencies_us.push(latency_us);
                        if latency_us > 100_000 {
                            let second = (sending_starts.elapsed().as_secs() as usize).min(599);
                            SLOW_ACKS_BY_SECOND[second].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    acked.fetch_add(opts.batch as u64, Ordering::Relaxed);
                }
                other => anyhow::bail!("unexpected from server: {other:?}"),
            },
            _ = tokio::time::sleep_until(wake) => {
                if !may_send {
                    anyhow::bail!("no ack within 30 s");
                }
            }
        }
    }
    merge_latencies(&ack_latency, &latencies_us);
    Ok(())
}

/// Adds a tag's ack latencies to the run's histogram when the tag is done. A histogram per tag
/// cost the client 15,000 zeroed histograms as sending started and as many merges as it ended,
/// which showed as slow acks in the first and last seconds of every run.
fn merge_latencies(into: &Mutex<Histogram<u64>>, latencies_us: &[u64]) {
    let mut histogram = into.lock().unwrap_or_else(|e| e.into_inner());
    for &latency in latencies_us {
        histogram.saturating_record(latency);
    }
}

/// The IMEI of load tag `i`.
fn imei(i: usize) -> String {
    format!("35{i:013}")
}

/// Binds every load tag's IMEI to it through the API (four threads, keep-alive).
fn bind_trackers(http: &str, token: &str, tags: usize) -> anyhow::Result<()> {
    const THREADS: usize = 4;
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let (http, token) = (http.to_string(), token.to_string());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let agent = ureq::AgentBuilder::new().build();
                for i in (k..tags).step_by(THREADS) {
                    agent
                        .put(&format!("http://{http}/v1/devices/teltonika/{}", imei(i)))
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Content-Type", "application/json")
                        .send_string(&serde_json::json!({"tag": format!("L{i}")}).to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("binding thread panicked"))??;
    }
    Ok(())
}

/// Batch `n` of a tag as Teltonika records: its GPS fixes with HDOP 1.2; every 20th batch's last
/// record a low-battery event record.
fn tracker_packet(tag_index: usize, n: u64, size: usize) -> AvlPacket {
    let records = make_batch(tag_index, n, size)
        .iter()
        .map(|r| match r.body {
            ReadingBody::Position(p) => AvlRecord {
                t_ms: r.t_ms,
                priority: Priority::Low,
                gps: GpsElement {
                    longitude_e7: p.lon_e7,
                    latitude_e7: p.lat_e7,
                    altitude_m: 50,
                    angle_deg: 90,
                    satellites: 9,
                    speed_kmh: 4,
                },
                event_io_id: 0,
                io: vec![
                    IoElement {
                        id: io_id::BATTERY_LEVEL_PCT,
                        value: IoValue::U8(90),
                    },
                    IoElement {
                        id: io_id::HDOP,
                        value: IoValue::U16(12),
                    },
                ],
            },
            _ => AvlRecord {
                t_ms: r.t_ms,
                priority: Priority::High,
                gps: GpsElement::default(),
                event_io_id: io_id::BATTERY_LEVEL_PCT,
                io: vec![IoElement {
                    id: io_id::BATTERY_LEVEL_PCT,
                    value: IoValue::U8(15),
                }],
            },
        })
        .collect();
    AvlPacket {
        codec: Codec::Codec8,
        records,
    }
}

/// A Teltonika tracker's run: the IMEI, then its packets at the tag's pace, one in flight.
async fn drive_tracker(
    socket: TcpStream,
    (_, tag_index, opts, sending_starts, deadline, acked, ack_latency): TagRun,
) -> anyhow::Result<()> {
    let mut framed = Framed::new(socket, DeviceCodec::default());
    let id = Imei::from_digits(imei(tag_index).as_bytes())?;
    framed.send(&DeviceMessage::Imei(id)).await?;
    match framed.next().await {
        Some(Ok(ServerReply::ImeiAccepted)) => {}
        other => anyhow::bail!("IMEI refused: {other:?}"),
    }
    CONNECTED.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep_until(sending_starts.into()).await;
    let period = (opts.rate > 0).then(|| {
        let per_tag_batches_per_s = opts.rate as f64 / opts.batch as f64 / opts.tags as f64;
        Duration::from_secs_f64(1.0 / per_tag_batches_per_s)
    });
    let phase = tag_index as f64 / opts.tags as f64;
    let start = Instant::now();
    let mut latencies_us = Vec::new();
    let mut n = 0u64;
    loop {
        let due = period.map_or(Instant::now(), |p| start + p.mul_f64(n as f64 + phase));
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        n += 1;
        let packet = tracker_packet(tag_index, n, opts.batch);
        let sent = Instant::now();
        framed.send(&DeviceMessage::Avl(packet)).await?;
        match framed.next().await {
            Some(Ok(ServerReply::Ack { records })) if records as usize == opts.batch => {
                latencies_us.push(sent.elapsed().as_micros().max(1) as u64);
                acked.fetch_add(opts.batch as u64, Ordering::Relaxed);
            }
            other => anyhow::bail!("unexpected from server: {other:?}"),
        }
    }
    merge_latencies(&ack_latency, &latencies_us);
    Ok(())
}

/// User + system CPU seconds of this process (`RUSAGE_SELF`: the load client) or of its waited-for
/// children (`RUSAGE_CHILDREN`: the server), to show how the two cores were shared.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ((secs(usage.ru_utime) + secs(usage.ru_stime)) * 100.0).round() / 100.0
}

/// The server under load, killed however the run ends (a client error must not leave it running).
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let opts = Arc::new(parse_options());
    let data_dir = tempfile::tempdir()?;
    let orders = data_dir.path().join("orders-in.json");
    let caseload = opts.caseload.max(opts.tags);
    std::fs::write(
        &orders,
        // Orders (a curfew each) with a caseload or order changes: `--caseload N` alone is the
        // baseline that `--order-changes` is compared with.
        caseload_json(
            caseload,
            opts.tags,
            opts.order_changes > 0 || opts.caseload > 0,
        ),
    )?;
    let key = "load-test-tag-key-0123456789abcdef".to_string();
    let token = "load-test-admin-token".to_string();
    let tls = if opts.tls {
        Some(self_signed_tls(data_dir.path())?)
    } else {
        None
    };
    // NATS servers for a JetStream log (killed when the run ends), the stream made ready.
    let nats = match opts.jetstream {
        0 => None,
        replicas => Some(start_jetstream(data_dir.path(), replicas, false)?),
    };
    // `E2E_SERVER_BIN` runs another build of the server (a before/after comparison in one run).
    let server_bin = std::env::var_os("E2E_SERVER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tagstream").into());
    let mut command = Command::new(server_bin);
    if let Some((cert_file, key_file, _)) = &tls {
        command
            .arg("serve")
            .arg("--ingest-tls-cert")
            .arg(cert_file)
            .arg("--ingest-tls-key")
            .arg(key_file);
    } else {
        command.arg("serve");
    }
    if let Some((_, config)) = &nats {
        command.arg("--config").arg(config);
    } else if opts.commit_delay_us.is_some() || opts.teltonika || opts.no_contact_ms.is_some() {
        let mut text = format!(
            "[log]\ncommit_delay_us = {}\n",
            opts.commit_delay_us.unwrap_or(0)
        );
        if let Some(ms) = opts.no_contact_ms {
            text.push_str(&format!("[pipeline]\nno_contact_ms = {ms}\n"));
        }
        if opts.teltonika {
            text.push_str("[teltonika]\nlisten = \"127.0.0.1:0\"\nprivate_network = true\n");
        }
        let config = data_dir.path().join("server.toml");
        std::fs::write(&config, text)?;
        command.arg("--config").arg(config);
    }
    let mut server = ServerProcess(
        command
            .args([
                "--ingest-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--orders",
            ])
            .arg(&orders)
            .arg("--data-dir")
            .arg(data_dir.path().join("data"))
            .env("TAGSTREAM_TAG_KEY", &key)
            .env("TAGSTREAM_ADMIN_TOKEN", &token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().expect("piped stdout")).read_line(&mut line)?;
    let listening: serde_json::Value = serde_json::from_str(&line)?;
    let ingest = listening["ingest_addr"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let http = listening["http_addr"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let ingest = match listening["teltonika_addr"].as_str() {
        Some(addr) if opts.teltonika => {
            bind_trackers(&http, &token, opts.tags)?;
            addr.to_string()
        }
        _ => ingest,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let acked = Arc::new(AtomicU64::new(0));
    let ack_latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let server_pid = server.0.id();
    let rss_before = rss_bytes(server_pid);
    let ramp_started = Instant::now();
    let sending_starts = ramp_started + Duration::from_secs(opts.ramp_s + opts.idle_s);
    let started = sending_starts;
    let deadline = started + Duration::from_secs(opts.seconds);
    // Memory while every tag is connected and silent: half-way through the idle period.
    let idle_sample = (opts.idle_s > 0).then(|| {
        let at = ramp_started
            + Duration::from_secs(opts.ramp_s)
            + Duration::from_millis(opts.idle_s * 500);
        std::thread::spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            (CONNECTED.load(Ordering::Relaxed), rss_bytes(server_pid))
        })
    });
    // The server's CPU while the tags send (not start-up, bindings or the ramp).
    let sending_cpu = std::thread::spawn(move || {
        std::thread::sleep(sending_starts.saturating_duration_since(Instant::now()));
        let at_start = process_cpu_s(server_pid);
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        Some(process_cpu_s(server_pid)? - at_start?)
    });
    // The server's resident memory while the tags send and after: sampled every second (each
    // fifth sample also on stderr, so a run that never finishes still shows its growth).
    let memory_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let memory_samples = {
        let done = memory_done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(sending_starts.saturating_duration_since(Instant::now()));
            let mut peak = 0u64;
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(server_pid) {
                    peak = peak.max(rss);
                    if n.is_multiple_of(5) {
                        eprintln!(
                            "server rss {} MiB at {} s of sending",
                            rss >> 20,
                            sending_starts.elapsed().as_secs()
                        );
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            peak
        })
    };
    let changes = (opts.order_changes > 0).then(|| {
        let (http, token, rate) = (http.clone(), token.clone(), opts.order_changes);
        std::thread::spawn(move || post_order_changes(&http, &token, rate, caseload, deadline))
    });
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..opts.tags {
            let connect_at = ramp_started
                + Duration::from_secs_f64(opts.ramp_s as f64 * i as f64 / opts.tags as f64);
            tasks.push(tokio::spawn(run_tag(
                ingest.clone(),
                key.clone(),
                tls.as_ref().map(|(_, _, client)| client.clone()),
                i,
                opts.clone(),
                (connect_at, sending_starts, deadline),
                acked.clone(),
                ack_latency.clone(),
            )));
        }
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let sending_cpu_s = sending_cpu.join().ok().flatten();
    let idle_memory = match (
        idle_sample.map(|h| h.join().expect("memory sample")),
        rss_before,
    ) {
        (Some((connected, Some(rss_idle))), Some(before)) if connected > 0 => serde_json::json!({
            "connected": connected, "rss_before_bytes": before, "rss_idle_bytes": rss_idle,
            "per_connection_bytes": (rss_idle.saturating_sub(before)) / connected,
        }),
        _ => serde_json::Value::Null,
    };
    let order_changes = match changes {
        None => serde_json::Value::Null,
        Some(handle) => {
            let (ok, failed, h) = handle.join().expect("order changes");
            serde_json::json!({
                "caseload": caseload, "target_per_s": opts.order_changes,
                "applied": ok, "failed": failed, "applied_per_s": (ok as f64 / elapsed).round(),
                "latency_us": {"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max()},
            })
        }
    };
    // Give the pipeline a moment to finish the last alerts, then read the server's histogram.
    std::thread::sleep(Duration::from_millis(500));
    let stats: serde_json::Value = runtime.block_on(async {
        let mut stream = TcpStream::connect(&http).await?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let json = body.split("\r\n\r\n").nth(1).unwrap_or("{}");
        anyhow::Ok(serde_json::from_str(json)?)
    })?;
    let rss_end = rss_bytes(server_pid);
    memory_done.store(true, Ordering::Relaxed);
    let slow: Vec<u64> = SLOW_ACKS_BY_SECOND
        .iter()
        .take(opts.seconds as usize + 1)
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    eprintln!("acks over 100 ms, per second of sending: {slow:?}");
    let rss_peak = memory_samples.join().unwrap_or(0);
    let client_cpu_s = cpu_seconds(libc::RUSAGE_SELF);
    let _ = server.0.kill();
    let _ = server.0.wait();
    let server_cpu_s = cpu_seconds(libc::RUSAGE_CHILDREN);
    let acked = acked.load(Ordering::Relaxed);
    let h = ack_latency.lock().unwrap();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "tags": opts.tags, "batch_readings": opts.batch, "window": opts.window, "target_rate": opts.rate, "phase_locked": opts.phase_locked, "tls": opts.tls, "log": if opts.jetstream > 0 { format!("jetstream R{}", opts.jetstream) } else { "embedded".to_string() },
            "seconds": elapsed,
            "acked_readings": acked,
            "acked_readings_per_s": (acked as f64 / elapsed).round(),
            "batch_ack_latency_us": {"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "max": h.max()},
            "client_cpu_s": client_cpu_s,
            "server_cpu_s": server_cpu_s,
            "server_cpu_us_per_batch": (server_cpu_s * 1e6 / (acked as f64 / opts.batch as f64).max(1.0)).round(),
            "server_cpu_s_while_sending": sending_cpu_s,
            "server_cpu_us_per_batch_while_sending": sending_cpu_s.map(|cpu| (cpu * 1e6 / (acked as f64 / opts.batch as f64).max(1.0)).round()),
            "ramp_s": opts.ramp_s,
            "commit_delay_us": opts.commit_delay_us,
            "no_contact_ms": opts.no_contact_ms,
            "protocol": if opts.teltonika { "teltonika" } else { "native" },
            "server_rss_per_idle_connection": idle_memory,
            "tags_refused_busy": BUSY_REFUSED.load(Ordering::Relaxed),
            "server_rss": {"before_bytes": rss_before, "peak_while_sending_bytes": rss_peak, "end_bytes": rss_end},
            "order_changes": order_changes,
            "server": stats,
        }))?
    );
    Ok(())
}

/// rustls's `ring` provider (deprecated only for lacking post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
