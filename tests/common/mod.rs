//! Test harness: runs the real `tagstream` binary and talks to it as tags and API clients do.
#![allow(dead_code)]

pub mod nats;
pub mod webhook_receiver;

use futures::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tagstream::model::Reading;
use tagstream::wire::{tag_secret, Frame, FrameCodec, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// At least 32 bytes: the server refuses shorter tag keys.
pub const TAG_KEY: &str = "test-tag-key-0123456789abcdef-0123";
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tagstream")
}

/// The simulator binary beside the server's (`cargo build -p tagsim` builds it; scripts/test.sh
/// does).
pub fn tagsim() -> PathBuf {
    let path = Path::new(bin()).with_file_name("tagsim");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p tagsim` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running `tagstream serve` child process.
pub struct Server {
    pub child: Child,
    /// The server's stdout after its listening line, kept open (a server that prints when it
    /// stops must not find the pipe closed).
    pub stdout: Option<BufReader<std::process::ChildStdout>>,
    pub ingest_addr: String,
    pub http_addr: String,
    /// The Teltonika listener's address, when `[teltonika] listen` is configured.
    pub teltonika_addr: Option<String>,
    /// The OsmAnd listener's address, when `[osmand] listen` is configured.
    pub osmand_addr: Option<String>,
    pub data_dir: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, orders: Option<&Path>, extra: &[&str]) -> Server {
        Self::start_at(data_dir, orders, "127.0.0.1:0", "127.0.0.1:0", extra)
    }

    pub fn start_at(
        data_dir: &Path,
        orders: Option<&Path>,
        ingest: &str,
        http: &str,
        extra: &[&str],
    ) -> Server {
        Self::start_limited(data_dir, orders, ingest, http, extra, None)
    }

    /// Starts the server with its `RLIMIT_NOFILE` (soft and hard) set to `max_open_files`.
    pub fn start_with_fd_limit(data_dir: &Path, extra: &[&str], max_open_files: u64) -> Server {
        let (any, limit) = ("127.0.0.1:0", Some(max_open_files));
        Self::start_limited(data_dir, None, any, any, extra, limit)
    }

    fn start_limited(
        data_dir: &Path,
        orders: Option<&Path>,
        ingest: &str,
        http: &str,
        extra: &[&str],
        max_open_files: Option<u64>,
    ) -> Server {
        let mut cmd = Command::new(bin());
        if let Some(limit) = max_open_files {
            use std::os::unix::process::CommandExt;
            let rlimit = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads `rlimit`, a copy owned by
            // the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.args([
            "serve",
            "--ingest-addr",
            ingest,
            "--http-addr",
            http,
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("TAGSTREAM_TAG_KEY", TAG_KEY)
        .env("TAGSTREAM_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
        if let Some(orders) = orders {
            cmd.arg("--orders").arg(orders);
        }
        let mut child = cmd.spawn().expect("start tagstream serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("read listening line");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("server did not start (line {line:?}): {e}"));
        Server {
            child,
            stdout: Some(stdout),
            ingest_addr: v["ingest_addr"].as_str().expect("ingest_addr").to_string(),
            http_addr: v["http_addr"].as_str().expect("http_addr").to_string(),
            teltonika_addr: v["teltonika_addr"].as_str().map(str::to_string),
            osmand_addr: v["osmand_addr"].as_str().map(str::to_string),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Stops the server as an operator or a service manager does (SIGTERM) and returns its
    /// exit status and the lines it printed after the listening line.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        // SAFETY: kill(2) with a child's pid and a standard signal reads no memory of ours.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM not sent");
        let lines = match self.stdout.take() {
            Some(stdout) => stdout.lines().map_while(Result::ok).collect(),
            None => Vec::new(),
        };
        (self.child.wait().expect("wait for the server"), lines)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn get(&self, path: &str) -> Result<String, String> {
        ureq::get(&format!("http://{}{}", self.http_addr, path))
            .set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .set("X-Purpose", "integration test")
            .call()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())
    }

    /// Waits until the server's alert set stops changing and returns it (JSON Lines).
    pub fn settled_alerts(&self) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = self
                .get("/v1/alerts/export")
                .expect("GET /v1/alerts/export");
            if now == last && !now.is_empty() {
                return now;
            }
            last = now;
        }
        last
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A simulated tag on one connection.
pub struct TagClient {
    pub framed: Framed<TcpStream, FrameCodec>,
    pub last_seq: u64,
}

impl TagClient {
    pub async fn connect(addr: &str, tag: &str) -> TagClient {
        Self::connect_with_secret(addr, tag, &tag_secret(TAG_KEY.as_bytes(), tag))
            .await
            .expect("hello accepted")
    }

    pub async fn connect_with_secret(
        addr: &str,
        tag: &str,
        secret: &str,
    ) -> Result<TagClient, Frame> {
        Self::connect_in_epoch_with_secret(addr, tag, secret, 0).await
    }

    /// Connects saying session epoch `epoch` in the hello; `Err` is the server's answer if it
    /// was not `HelloOk`.
    pub async fn connect_in_epoch(addr: &str, tag: &str, epoch: u32) -> Result<TagClient, Frame> {
        Self::connect_in_epoch_with_secret(addr, tag, &tag_secret(TAG_KEY.as_bytes(), tag), epoch)
            .await
    }

    pub async fn connect_in_epoch_with_secret(
        addr: &str,
        tag: &str,
        secret: &str,
        epoch: u32,
    ) -> Result<TagClient, Frame> {
        let socket = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(socket, FrameCodec::default());
        framed
            .send(Frame::Hello {
                protocol_version: PROTOCOL_VERSION,
                tag: tag.into(),
                secret: secret.into(),
                epoch,
            })
            .await
            .expect("send hello");
        match framed.next().await {
            Some(Ok(Frame::HelloOk { last_seq })) => Ok(TagClient { framed, last_seq }),
            Some(Ok(other)) => Err(other),
            other => panic!("no answer to hello: {other:?}"),
        }
    }

    pub async fn send(&mut self, seq: u64, readings: Vec<Reading>) {
        self.framed
            .send(Frame::Batch { seq, readings })
            .await
            .expect("send batch");
    }

    pub async fn next_frame(&mut self) -> Option<Frame> {
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.framed.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            Ok(_) => None,
            Err(_) => panic!("timed out waiting for a frame"),
        }
    }

    /// Sends one batch and waits for its ack.
    pub async fn send_acked(&mut self, seq: u64, readings: Vec<Reading>) {
        self.send(seq, readings).await;
        match self.next_frame().await {
            Some(Frame::Ack { seq: acked }) => assert_eq!(acked, seq),
            other => panic!("expected ack {seq}, got {other:?}"),
        }
    }
}

/// Creates a user with the real CLI and returns its token.
pub fn add_user(data_dir: &Path, name: &str, role: &str, extra: &[&str]) -> String {
    std::fs::create_dir_all(data_dir).unwrap();
    let out = Command::new(bin())
        .args(["users", "add", "--data-dir"])
        .arg(data_dir)
        .args(["--name", name, "--role", role])
        .args(extra)
        .output()
        .expect("run tagstream users add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// An HTTP call: (status, body). `token` None sends no Authorization header.
pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    purpose: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let mut req = ureq::request(method, &format!("http://{}{}", server.http_addr, path));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(p) = purpose {
        req = req.set("X-Purpose", p);
    }
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match result {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// A file of the health fixture (`fixtures/health`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/health")
        .join(name)
}

/// The batches of `fixtures/health/readings.jsonl`, in file order.
pub fn fixture_batches() -> Vec<tagstream::model::Batch> {
    read_batches_jsonl(&fixture("readings.jsonl"))
}

/// The batches of a readings JSON Lines file, in file order (every line must be valid).
pub fn read_batches_jsonl(path: &Path) -> Vec<tagstream::model::Batch> {
    let file = std::fs::File::open(path).unwrap();
    let mut batches = vec![];
    let errors =
        tagstream::formats::readings_jsonl::read_batches(std::io::BufReader::new(file), |b| {
            batches.push(b)
        })
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    batches
}

/// Streams the health fixture's readings batch by batch, each acknowledged before the next, so
/// the server's log holds the file's order.
pub async fn stream_health_fixture(server: &Server) {
    let file = std::fs::File::open(fixture("readings.jsonl")).expect("fixture readings");
    let mut batches = vec![];
    tagstream::formats::readings_jsonl::read_batches(std::io::BufReader::new(file), |b| {
        batches.push(b)
    })
    .expect("read fixture");
    let mut clients: std::collections::HashMap<String, TagClient> = Default::default();
    for b in batches {
        if !clients.contains_key(&b.tag) {
            let client = TagClient::connect(&server.ingest_addr, &b.tag).await;
            clients.insert(b.tag.clone(), client);
        }
        let client = clients.get_mut(&b.tag).expect("client");
        client.send_acked(b.seq, b.readings).await;
    }
}

/// A still GPS fix (±8 m, 8 satellites) at `at` (latitude, longitude).
pub fn gps_fix_at(t_ms: i64, at: (f64, f64)) -> Reading {
    use tagstream::model::{Position, PositionSource, ReadingBody};
    Reading {
        t_ms,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: (at.0 * 1e7).round() as i32,
            lon_e7: (at.1 * 1e7).round() as i32,
            precision_cm: 800,
            source: PositionSource::Gps,
            speed_ckmh: None,
            heading_cdeg: None,
            satellites: Some(8),
        }),
    }
}

/// A GPS fix (±5 m, walking pace, heading east) `east_m`, `north_m` metres from `origin`
/// (latitude, longitude).
pub fn gps_fix_offset(t_ms: i64, origin: (f64, f64), east_m: f64, north_m: f64) -> Reading {
    use tagstream::model::{Position, PositionSource, ReadingBody};
    use tagstream::rules::geodesy::M_PER_DEG_LAT;
    let lat = origin.0 + north_m / M_PER_DEG_LAT;
    let lon = origin.1 + east_m / (M_PER_DEG_LAT * origin.0.to_radians().cos());
    Reading {
        t_ms,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: (lat * 1e7).round() as i32,
            lon_e7: (lon * 1e7).round() as i32,
            precision_cm: 500,
            source: PositionSource::Gps,
            speed_ckmh: Some(500),
            heading_cdeg: Some(9000),
            satellites: Some(9),
        }),
    }
}

/// `tagstream replay` of `readings` (a file or a data directory) under `orders`; returns the
/// alerts it wrote.
pub fn replay_alerts(orders: &Path, readings: &Path, out: &Path) -> String {
    replay_alerts_with(Some(orders), readings, out)
}

/// `tagstream replay` of `readings`, with an orders document or (a data directory, whose log
/// carries its own changes) without; returns the alerts it wrote.
pub fn replay_alerts_with(orders: Option<&Path>, readings: &Path, out: &Path) -> String {
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(orders) = orders {
        args.extend([std::ffi::OsStr::new("--orders"), orders.as_os_str()]);
    }
    args.extend([std::ffi::OsStr::new("--readings"), readings.as_os_str()]);
    replay_into(&args, out)
}

/// `tagstream replay ARGS --out OUT`, which must succeed; returns the alerts it wrote.
pub fn replay_into(args: &[&std::ffi::OsStr], out: &Path) -> String {
    let status = Command::new(bin())
        .arg("replay")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read_to_string(out.join("alerts.jsonl")).unwrap()
}

/// `tagstream rebuild --data-dir DATA` (server stopped): every view of the log built again.
/// Returns its report (`old_stores`: where the old stores were set aside).
pub fn rebuild(data_dir: &Path) -> serde_json::Value {
    rebuild_with(data_dir, &[])
}

/// `tagstream rebuild` with more arguments (e.g. `--config F`); its report.
pub fn rebuild_with(data_dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(bin())
        .args(["rebuild", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("run tagstream rebuild");
    assert!(
        out.status.success(),
        "rebuild failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rebuild report");
    assert_eq!(report["event"], "rebuilt", "{report}");
    report
}

/// Reads SSE events until `count` have arrived or the stream goes quiet; (id, kind, data).
pub fn read_sse(
    http_addr: &str,
    token: &str,
    last_event_id: Option<i64>,
    count: usize,
) -> Vec<(i64, String, String)> {
    read_sse_at(http_addr, token, "/v1/alerts/stream", last_event_id, count)
}

/// [`read_sse`] of the alert stream at `path` (with its query).
pub fn read_sse_at(
    http_addr: &str,
    token: &str,
    path: &str,
    last_event_id: Option<i64>,
    count: usize,
) -> Vec<(i64, String, String)> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(http_addr).unwrap();
    // An idle stream for this long means everything available has arrived.
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nX-Purpose: hub queue\r\n{resume}\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut events = Vec::new();
    let (mut id, mut kind, mut data) = (None, String::new(), String::new());
    while events.len() < count {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = v.trim().to_string();
        } else if line.is_empty() {
            if let Some(i) = id.take() {
                events.push((i, std::mem::take(&mut kind), std::mem::take(&mut data)));
            }
        }
    }
    events
}

/// The `op` of every control record in a data directory's log, in log order.
pub fn control_ops(data: &std::path::Path) -> Vec<String> {
    tagstream::log::LogReader::open(&data.join("log"))
        .unwrap()
        .filter_map(|item| match item.unwrap().1 {
            tagstream::model::LogEntry::Control { control, .. } => {
                Some(control.change.op().to_string())
            }
            tagstream::model::LogEntry::Batch(_) => None,
        })
        .collect()
}

/// `days` days of a tag's readings from `from_ms`: TAC every 30 minutes (sober), a GPS fix every
/// 10 minutes at latitude `lat_e7`, and the strap opened and closed on the second day (a tamper
/// alert), in time order. Per day: 48 TAC readings and 144 fixes; 2 events in all.
pub fn monitored_days(from_ms: i64, days: i64, lat_e7: i32) -> Vec<Reading> {
    use tagstream::model::{DeviceEvent, Position, PositionSource, ReadingBody, TacSample};
    const DAY_MS: i64 = 86_400_000;
    let mut all = Vec::new();
    for i in 0..days * 48 {
        all.push(Reading {
            t_ms: from_ms + i * 1_800_000,
            battery_pct: Some(90),
            body: ReadingBody::Tac(TacSample {
                tac_ugdl: 0,
                ir_uv: 1_100_000,
                temp_mc: 33_000,
            }),
        });
    }
    for i in 0..days * 24 * 6 {
        all.push(Reading {
            t_ms: from_ms + i * 600_000 + 1_000,
            battery_pct: Some(90),
            body: ReadingBody::Position(Position {
                lat_e7,
                lon_e7: -25_800_000,
                precision_cm: 800,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: Some(8),
            }),
        });
    }
    for (minutes, event) in [
        (600, DeviceEvent::StrapOpen),
        (605, DeviceEvent::StrapClosed),
    ] {
        all.push(Reading {
            t_ms: from_ms + DAY_MS + minutes * 60_000 + 2_000,
            battery_pct: Some(90),
            body: ReadingBody::Event(event),
        });
    }
    all.sort_by_key(|r| r.t_ms);
    all
}

/// `tagsim stream OPTIONS --connect CONNECT --key TAG_KEY --speed SPEED --progress-s 0`, its
/// output piped (the summary is read from it).
pub fn spawn_tagsim_stream(options: &[&str], connect: &str, speed: &str) -> Child {
    Command::new(tagsim())
        .arg("stream")
        .args(options)
        .args([
            "--connect",
            connect,
            "--key",
            TAG_KEY,
            "--speed",
            speed,
            "--progress-s",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `batches` in their order (the log's order is the file's, as `tagstream replay` reads
/// it), each through the node `route` picks for its tag, each batch acknowledged; a batch the
/// node already holds (its tag's hello says so) is skipped.
pub async fn send_in_order(batches: &[tagstream::model::Batch], route: impl Fn(&str) -> String) {
    let mut clients: std::collections::HashMap<String, TagClient> = Default::default();
    for batch in batches {
        if !clients.contains_key(&batch.tag) {
            let client = TagClient::connect(&route(&batch.tag), &batch.tag).await;
            clients.insert(batch.tag.clone(), client);
        }
        let client = clients.get_mut(&batch.tag).unwrap();
        if client.last_seq < batch.seq {
            client.send_acked(batch.seq, batch.readings.clone()).await;
        }
    }
}

/// `tagsim generate` of `tags` × `days` with `seed` into `dir/sim` (needs the `tagsim` binary).
pub fn generate_sim(dir: &Path, tags: u32, days: u32, seed: u64) -> PathBuf {
    let (tags, days, seed) = (tags.to_string(), days.to_string(), seed.to_string());
    let options = ["--tags", &tags, "--days", &days, "--seed", &seed];
    generate_sim_with(dir, &options)
}

/// `tagsim generate OPTIONS --out dir/sim`; returns `dir/sim`.
pub fn generate_sim_with(dir: &Path, options: &[&str]) -> PathBuf {
    let sim = dir.join("sim");
    let out = Command::new(tagsim())
        .arg("generate")
        .args(options)
        .arg("--out")
        .arg(&sim)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim
}

/// `tagstream crimes import` of `file` through `server`'s API (as the admin).
pub fn import_crimes(server: &Server, file: &Path) {
    let out = Command::new(bin())
        .args(["crimes", "import", "--server"])
        .arg(format!("http://{}", server.http_addr))
        .args(["--token", ADMIN_TOKEN])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A gauge or counter of `server`'s `/metrics`.
pub fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// The simulated crime batch files of `sim`, in order (at least two).
pub fn crime_files(sim: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sim.join("crimes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "the simulation wrote {files:?}");
    files
}

/// Sends `batches` in order, every tag to `server`.
pub async fn send_to(server: &Server, batches: &[tagstream::model::Batch]) {
    let addr = server.ingest_addr.clone();
    send_in_order(batches, |_| addr.clone()).await;
}

/// Everything a node serves that its start-up rebuilds from the log.
pub fn node_views(server: &Server, sim: &Path) -> std::collections::BTreeMap<String, String> {
    let orders: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sim.join("orders.json")).unwrap()).unwrap();
    let ids = |kind: &str| -> Vec<String> {
        orders[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut paths = vec![
        "/v1/alerts/export".to_string(),
        "/v1/hits/export".to_string(),
    ];
    let period = "from=2026-03-01T00:00:00Z&to=2026-03-06T00:00:00Z";
    for a in ids("activations") {
        paths.push(format!("/v1/activations/{a}/alcohol-chart?{period}"));
    }
    for o in ids("orders") {
        paths.push(format!("/v1/orders/{o}/sober-days"));
    }
    for p in ids("people") {
        paths.push(format!("/v1/people/{p}/history"));
    }
    let mut out: std::collections::BTreeMap<String, String> = paths
        .into_iter()
        .map(|path| {
            let (status, body) = call(
                server,
                "GET",
                &path,
                Some(ADMIN_TOKEN),
                Some("integration test"),
                None,
            );
            (path, format!("{status} {body}"))
        })
        .collect();
    for name in [
        "tagstream_committed_batches_total",
        "tagstream_committed_readings_total",
    ] {
        out.insert(name.to_string(), metric(server, name).to_string());
    }
    out
}

/// The keys whose values differ (the values are too long to print).
pub fn differing(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Two wearers: A1 (P1, "Long Gone") ended in March 2026, A2 (P2) ends 20 days from the wall
/// clock. Returns the orders file and a "now" 40 days from the wall clock, at which a purge with
/// 30 days of retention takes A1 and P1 and keeps A2.
pub fn purge_orders(dir: &Path) -> (PathBuf, String) {
    use tagstream::model::time::format_time;
    const DAY_MS: i64 = 86_400_000;
    let wall_ms = tagstream::retention::purge::wall_clock_ms();
    let orders = dir.join("orders.json");
    std::fs::write(
        &orders,
        serde_json::json!({
            "people": [{"id": "P1", "name": "Long Gone", "date_of_birth": "1980-01-01"},
                       {"id": "P2", "name": "Still Here"}],
            "activations": [
                {"id": "A1", "person": "P1", "tag": "T1", "from": "2026-03-02T00:00:00Z",
                 "to": "2026-03-05T00:00:00Z"},
                {"id": "A2", "person": "P2", "tag": "T2", "from": "2026-03-02T00:00:00Z",
                 "to": format_time(wall_ms + 20 * DAY_MS)}],
            "orders": [
                {"id": "O1", "person": "P1", "from": "2026-03-02", "to": "2026-03-04",
                 "conditions": [{"type": "alcohol", "mode": "abstinence"}]},
                {"id": "O2", "person": "P2", "from": "2026-03-02",
                 "conditions": [{"type": "alcohol", "mode": "abstinence"}]}]
        })
        .to_string(),
    )
    .unwrap();
    (orders, format_time(wall_ms + 40 * DAY_MS))
}

/// Three days of T1's and T2's readings, each batch acknowledged.
pub async fn send_three_days(server: &Server) {
    let from_ms = tagstream::model::time::parse_time("2026-03-02T00:00:00Z").unwrap();
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    let (r1, r2) = (
        monitored_days(from_ms, 3, 514_500_000),
        monitored_days(from_ms, 3, 514_600_000),
    );
    for (i, (c1, c2)) in r1.chunks(20).zip(r2.chunks(20)).enumerate() {
        t1.send_acked(i as u64 + 1, c1.to_vec()).await;
        t2.send_acked(i as u64 + 1, c2.to_vec()).await;
    }
}

/// A GET with a bearer token and a purpose: its status and body bytes (documents are binary).
pub fn get_bytes(server: &Server, path: &str, token: &str, purpose: &str) -> (u16, Vec<u8>) {
    let result = ureq::get(&format!("http://{}{}", server.http_addr, path))
        .set("Authorization", &format!("Bearer {token}"))
        .set("X-Purpose", purpose)
        .call();
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, body)
}
