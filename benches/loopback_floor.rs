//! The floor under the load run (`e2e_load`): what this machine's kernel and tokio charge a
//! server for one batch-sized request and one ack-sized reply over loopback TCP, in the load
//! run's shape (N connections, each with its own socket, a window of requests in flight), with no
//! tagstream code at all. It tells how much of the real server's CPU per batch is the transport
//! and the thread hops every durable-ack design pays, and how much is tagstream's own.
//!
//! The server is this program again, as a child process (`--serve MODE`), so its CPU is read
//! apart from the client's (from `/proc/<pid>/stat`, over the sending window only). MODE is
//! - `echo`: the connection task answers each request itself (transport only);
//! - `hop`: each request goes to one committer thread (a tokio channel it drains, as group commit
//!   does) and the answer comes back through a oneshot, which wakes the connection task from a
//!   thread outside the runtime (the embedded log's thread hop, without a disk);
//! - `hop-sync`: `hop`, plus one write and `fdatasync` per drained group to a file in a scratch
//!   directory (the disk's share).
//!
//! Run: `cargo bench --bench loopback_floor -- [--mode echo|hop|hop-sync] [--tags N]
//! [--seconds S] [--window W] [--request-bytes B]`. The request is by default the size of the
//! load run's 10-reading batch frame, the reply the size of an ack frame.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tagstream::model::{Position, PositionSource, Reading, ReadingBody};
use tagstream::wire::{encode_frame, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

struct Options {
    mode: String,
    tags: usize,
    seconds: u64,
    window: usize,
    request_bytes: usize,
}

fn parse_options(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        mode: "echo".into(),
        tags: 15_000,
        seconds: 15,
        window: 8,
        request_bytes: frame_len(&ten_reading_batch()),
    };
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1);
        let number = || -> anyhow::Result<u64> {
            value
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--mode" => {
                o.mode = value
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("--mode needs echo, hop or hop-sync"))?
            }
            "--tags" => o.tags = number()? as usize,
            "--seconds" => o.seconds = number()?,
            "--window" => o.window = number()?.max(1) as usize,
            "--request-bytes" => o.request_bytes = number()?.max(8) as usize,
            // cargo bench passes `--bench`; anything else is ignored as criterion would.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    anyhow::ensure!(
        matches!(o.mode.as_str(), "echo" | "hop" | "hop-relay" | "hop-sync"),
        "--mode is echo, hop, hop-relay or hop-sync, not {}",
        o.mode
    );
    Ok(o)
}

/// The load run's batch: ten GNSS positions.
fn ten_reading_batch() -> Frame {
    let readings = (0..10)
        .map(|k| Reading {
            t_ms: 1_800_000_000_000 + k * 60_000,
            battery_pct: Some(80),
            body: ReadingBody::Position(Position {
                lat_e7: 515_000_000 + k as i32 * 137,
                lon_e7: -1_200_000 - k as i32 * 91,
                precision_cm: 800,
                source: PositionSource::Gps,
                speed_ckmh: Some(420),
                heading_cdeg: Some(9_000),
                satellites: Some(9),
            }),
        })
        .collect();
    Frame::Batch { seq: 1, readings }
}

fn frame_len(frame: &Frame) -> usize {
    let mut out = bytes::BytesMut::new();
    encode_frame(frame, &mut out);
    out.len()
}

fn ack_len() -> usize {
    frame_len(&Frame::Ack { seq: 1 })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--serve") {
        let mode = args.get(at + 1).cloned().unwrap_or_default();
        let request_bytes = args
            .get(at + 2)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--serve MODE REQUEST_BYTES"))?;
        return serve(&mode, request_bytes);
    }
    let opts = parse_options(&args)?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["--serve", &opts.mode, &opts.request_bytes.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let result = drive(&opts, &mut server);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(scratch_file(server.id()));
    result
}

/// The client: connects every tag, then sends flat out for `seconds` and reports.
fn drive(opts: &Options, server: &mut std::process::Child) -> anyhow::Result<()> {
    let mut port = String::new();
    let stdout = server
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut port)?;
    let port: u16 = port.trim().parse()?;
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let answered = Arc::new(AtomicU64::new(0));
    let (request_bytes, reply_bytes) = (opts.request_bytes, ack_len());
    let (started, stopped, cpu_s, client_cpu_s, done) = runtime.block_on(async {
        let sending = Arc::new(tokio::sync::Notify::new());
        let go = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(opts.tags);
        for i in 0..opts.tags {
            // Several loopback addresses, so that no one address runs out of ports.
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8);
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((ip, 0).into())?;
            let stream = socket.connect(([127, 0, 0, 1], port).into()).await?;
            stream.set_nodelay(true)?;
            let (sending, go, stop, answered) =
                (sending.clone(), go.clone(), stop.clone(), answered.clone());
            let window = opts.window;
            tasks.push(tokio::spawn(async move {
                if !go.load(Ordering::Acquire) {
                    sending.notified().await;
                }
                tag_loop(stream, window, request_bytes, reply_bytes, &stop, &answered).await
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu0, client0) = (process_cpu_s(pid)?, self_cpu_s());
        let (answered0, started) = (answered.load(Ordering::Relaxed), Instant::now());
        go.store(true, Ordering::Release);
        sending.notify_waiters();
        tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
        let (cpu1, client1) = (process_cpu_s(pid)?, self_cpu_s());
        let done = answered.load(Ordering::Relaxed) - answered0;
        let stopped = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await??;
        }
        anyhow::Ok((started, stopped, cpu1 - cpu0, client1 - client0, done))
    })?;
    let _ = started;
    let per_s = done as f64 / stopped.as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "mode": opts.mode, "tags": opts.tags, "window": opts.window,
            "request_bytes": request_bytes, "reply_bytes": reply_bytes,
            "seconds": (stopped.as_secs_f64() * 100.0).round() / 100.0,
            "requests_answered_per_s": per_s.round(),
            "readings_per_s_if_10_per_batch": (per_s * 10.0).round(),
            "server_cpu_s": (cpu_s * 100.0).round() / 100.0,
            "server_cpu_us_per_request": (cpu_s * 1e6 / (done.max(1) as f64) * 10.0).round() / 10.0,
            "client_cpu_us_per_request": (client_cpu_s * 1e6 / (done.max(1) as f64) * 10.0).round() / 10.0,
        })
    );
    Ok(())
}

/// One tag: keeps `window` requests in flight until told to stop, then collects what is owed.
async fn tag_loop(
    stream: TcpStream,
    window: usize,
    request_bytes: usize,
    reply_bytes: usize,
    stop: &std::sync::atomic::AtomicBool,
    answered: &AtomicU64,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut request = vec![0x5a; request_bytes];
    request[..4].copy_from_slice(&(request_bytes as u32 - 4).to_be_bytes());
    let mut reply = vec![0; reply_bytes];
    let mut in_flight = 0;
    loop {
        while in_flight < window && !stop.load(Ordering::Relaxed) {
            write.write_all(&request).await?;
            in_flight += 1;
        }
        if in_flight == 0 {
            return Ok(());
        }
        read.read_exact(&mut reply).await?;
        in_flight -= 1;
        answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// utime + stime of process `pid`, in seconds.
fn process_cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |k: usize| {
        fields
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11) + ticks(12)) / hz)
}

fn self_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(f64::NAN)
}

/// The file `hop-sync` writes to (removed by the client once the server is gone).
fn scratch_file(server_pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loopback-floor-{server_pid}"))
}

/// A request waiting for the committer thread.
struct Pending {
    reply: oneshot::Sender<()>,
}

/// The server: a two-worker runtime (as `tagstream serve` has on this machine) answering every
/// length-prefixed request with an ack-sized reply, by `mode`.
fn serve(mode: &str, request_bytes: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let committer = match mode {
        "echo" => None,
        "hop" | "hop-sync" => Some(spawn_committer(
            mode == "hop-sync",
            false,
            request_bytes,
            runtime.handle(),
        )?),
        "hop-relay" => Some(spawn_committer(
            false,
            true,
            request_bytes,
            runtime.handle(),
        )?),
        other => anyhow::bail!("unknown mode {other}"),
    };
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        let reply_bytes = ack_len();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let committer = committer.clone();
            tokio::spawn(async move {
                let _ = answer_requests(stream, committer, reply_bytes).await;
            });
        }
    })
}

/// Reads length-prefixed requests and answers each, in order, after the committer (if any) has.
async fn answer_requests(
    stream: TcpStream,
    committer: Option<mpsc::Sender<Pending>>,
    reply_bytes: usize,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(4096, read);
    let reply = vec![0x06; reply_bytes];
    let mut body = Vec::new();
    loop {
        let len = read.read_u32().await? as usize;
        body.resize(len, 0);
        read.read_exact(&mut body).await?;
        if let Some(committer) = &committer {
            let (tx, rx) = oneshot::channel();
            committer
                .send(Pending { reply: tx })
                .await
                .map_err(|_| anyhow::anyhow!("committer gone"))?;
            rx.await?;
        }
        write.write_all(&reply).await?;
    }
}

/// The committer thread: drains the channel into a group, optionally writes and syncs it, then
/// answers every request of the group.
fn spawn_committer(
    sync: bool,
    relay: bool,
    request_bytes: usize,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<mpsc::Sender<Pending>> {
    let (tx, mut rx) = mpsc::channel::<Pending>(4096);
    // `hop-relay`: the group's answers go to one task inside the runtime, which completes them
    // there (one wake from outside the runtime per group, not one per request).
    let relay = relay.then(|| {
        let (relay_tx, mut relay_rx) = mpsc::unbounded_channel::<Vec<Pending>>();
        runtime.spawn(async move {
            while let Some(group) = relay_rx.recv().await {
                for pending in group {
                    let _ = pending.reply.send(());
                }
            }
        });
        relay_tx
    });
    let scratch = scratch_file(std::process::id());
    let mut file = match sync {
        true => Some(std::fs::File::create(&scratch)?),
        false => None,
    };
    std::thread::Builder::new()
        .name("floor-committer".into())
        .spawn(move || {
            let mut group = Vec::new();
            let (record, mut buffer) = (vec![0u8; request_bytes], Vec::new());
            while let Some(first) = rx.blocking_recv() {
                group.push(first);
                while let Ok(more) = rx.try_recv() {
                    group.push(more);
                }
                if let Some(file) = file.as_mut() {
                    // One write per group, as the log writer's buffer makes it.
                    buffer.clear();
                    for _ in &group {
                        buffer.extend_from_slice(&record);
                    }
                    let _ = file.write_all(&buffer);
                    let _ = file.sync_data();
                }
                match &relay {
                    Some(relay) => {
                        let _ = relay.send(std::mem::take(&mut group));
                    }
                    None => {
                        for pending in group.drain(..) {
                            let _ = pending.reply.send(());
                        }
                    }
                }
            }
            let _ = std::fs::remove_file(&scratch);
        })?;
    Ok(tx)
}
