//! Failover in cluster mode, measured: three NATS servers (R3) and two tagstream nodes on
//! loopback; tags upload to node A (falling back to node B when A is gone, as tags configured
//! with both would). Then the NATS server leading the stream dies (SIGKILL), and later node A.
//! Reported: for each failure, how long tags went without an acknowledgement (the longest gap
//! between acks across the kill, per tag: median and worst), and that every acknowledged batch
//! is in the stream exactly once.
//!
//! Webhooks: both nodes post to one endpoint here, and only the holder of the `webhooks` lease
//! delivers (the health fixture's alerts, fed through node A first, which holds the lease). The
//! "webhook lease moved" time is from the SIGKILL of the holder to the first POST of the
//! survivor (it re-sends the events of the records the dead holder delivered last): once when
//! node A dies (if it still held the lease then), and once more at the end, when a third node C
//! has joined and node B, the holder then, is killed.
//!
//! Run: `cargo bench --bench cluster_failover -- [--tags N] [--interval-ms M]`

#[path = "support/nats.rs"]
mod nats;
#[path = "../tests/common/webhook_receiver.rs"]
mod webhook_receiver;

use futures::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tagstream::model::{Reading, ReadingBody};
use tagstream::wire::{tag_secret, Frame, FrameCodec, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use webhook_receiver::{start_receiver, Post};

const KEY: &str = "failover-tag-key-0123456789abcdef-01";
const TOKEN: &str = "failover-admin-token";

struct Node {
    child: Child,
    ingest: String,
    http: String,
}

impl Node {
    /// Whether this node holds the `webhooks` lease (its `/metrics` gauge).
    fn holds_webhooks(&self) -> bool {
        ureq::get(&format!("http://{}/metrics", self.http))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|m| m.lines().any(|l| l == "tagstream_lease_webhooks_held 1"))
    }
}

fn start_node(dir: &std::path::Path, name: &str, config: &std::path::Path) -> anyhow::Result<Node> {
    start_node_with(dir, name, config, &[])
}

fn start_node_with(
    dir: &std::path::Path,
    name: &str,
    config: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> anyhow::Result<Node> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagstream"))
        .args(["serve", "--config"])
        .arg(config)
        .args(extra)
        .args([
            "--ingest-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.join(name))
        .env("TAGSTREAM_TAG_KEY", KEY)
        .env("TAGSTREAM_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
    let listening: serde_json::Value = serde_json::from_str(&line)?;
    let address = |key: &str| listening[key].as_str().unwrap_or_default().to_string();
    Ok(Node {
        child,
        ingest: address("ingest_addr"),
        http: address("http_addr"),
    })
}

/// The health fixture's batches (tags T1 and T2 of its orders), each acknowledged, through
/// `addr`: alerts for the webhooks.
async fn send_fixture(addr: &str) -> anyhow::Result<()> {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/health");
    let mut batches = Vec::new();
    tagstream::formats::readings_jsonl::read_batches(
        BufReader::new(std::fs::File::open(fixture.join("readings.jsonl"))?),
        |b| batches.push(b),
    )?;
    let mut clients: std::collections::HashMap<String, Framed<TcpStream, FrameCodec>> =
        Default::default();
    for batch in batches {
        if !clients.contains_key(&batch.tag) {
            let mut framed = Framed::new(TcpStream::connect(addr).await?, FrameCodec::default());
            framed
                .send(Frame::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    tag: batch.tag.clone(),
                    secret: tag_secret(KEY.as_bytes(), &batch.tag),
                    epoch: 0,
                })
                .await?;
            match framed.next().await {
                Some(Ok(Frame::HelloOk { .. })) => {}
                other => anyhow::bail!("hello for {}: {other:?}", batch.tag),
            }
            clients.insert(batch.tag.clone(), framed);
        }
        let framed = clients.get_mut(&batch.tag).expect("connected above");
        let seq = batch.seq;
        framed
            .send(Frame::Batch {
                seq,
                readings: batch.readings,
            })
            .await?;
        match framed.next().await {
            Some(Ok(Frame::Ack { seq: acked })) if acked == seq => {}
            other => anyhow::bail!("batch {seq} of {}: {other:?}", batch.tag),
        }
    }
    Ok(())
}

/// Milliseconds from `killed` to the first POST after it from the node with process id `pid`
/// (named `<hostname>-<pid>`), waiting up to 15 s for it.
fn lease_moved_ms(posts: &Mutex<Vec<Post>>, killed: Instant, pid: u32) -> Option<u128> {
    let name_end = format!("-{pid}");
    let deadline = killed + Duration::from_secs(15);
    loop {
        let first = posts
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.at > killed && p.node.as_deref().is_some_and(|n| n.ends_with(&name_end)))
            .map(|p| p.at.duration_since(killed).as_millis());
        if first.is_some() || Instant::now() > deadline {
            return first;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 15 s) until `node` holds the webhooks lease.
fn wait_holds(node: &Node) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if node.holds_webhooks() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One tag: a batch every `interval`, each waited for; on any failure it reconnects, trying
/// the nodes in order, and re-sends what the node says it lacks. Records every ack's time.
async fn run_tag(
    tag: String,
    nodes: Vec<String>,
    interval: Duration,
    until: Instant,
    acks: Arc<Mutex<Vec<(String, u64, Instant)>>>,
) {
    let secret = tag_secret(KEY.as_bytes(), &tag);
    let mut seq = 1u64;
    'connect: while Instant::now() < until {
        for addr in &nodes {
            let Ok(Ok(socket)) =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
            else {
                continue;
            };
            let mut framed = Framed::new(socket, FrameCodec::default());
            let hello = Frame::Hello {
                protocol_version: PROTOCOL_VERSION,
                tag: tag.clone(),
                secret: secret.clone(),
                epoch: 0,
            };
            if framed.send(hello).await.is_err() {
                continue;
            }
            let last_seq = match framed.next().await {
                Some(Ok(Frame::HelloOk { last_seq })) => last_seq,
                _ => continue,
            };
            seq = seq.max(last_seq + 1);
            while Instant::now() < until {
                let readings = (0..10)
                    .map(|i| Reading {
                        t_ms: 1_800_000_000_000 + (seq * 10 + i) as i64 * 1_000,
                        battery_pct: Some(80),
                        body: ReadingBody::Rf { in_range: true },
                    })
                    .collect();
                if framed.send(Frame::Batch { seq, readings }).await.is_err() {
                    continue 'connect;
                }
                match tokio::time::timeout(Duration::from_secs(5), framed.next()).await {
                    Ok(Some(Ok(Frame::Ack { seq: acked }))) if acked == seq => {
                        acks.lock()
                            .unwrap()
                            .push((tag.clone(), seq, Instant::now()));
                        seq += 1;
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue 'connect;
                    }
                }
                tokio::time::sleep(interval).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Per tag, the longest time without an ack from `from` (or the ack before it) to the first
/// ack after it; (median, worst) in milliseconds.
fn outage_ms(acks: &[(String, u64, Instant)], tags: usize, from: Instant) -> (u128, u128) {
    let mut gaps: Vec<u128> = (0..tags)
        .map(|i| {
            let tag = format!("FAILOVER-{i:03}");
            let mine: Vec<Instant> = acks.iter().filter(|a| a.0 == tag).map(|a| a.2).collect();
            let before = mine
                .iter()
                .filter(|t| **t <= from)
                .max()
                .copied()
                .unwrap_or(from);
            match mine.iter().filter(|t| **t > from).min() {
                Some(after) => after.duration_since(before).as_millis(),
                None => u128::MAX,
            }
        })
        .collect();
    gaps.sort();
    (gaps[gaps.len() / 2], gaps[gaps.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let tags = option("--tags", 20) as usize;
    let interval = Duration::from_millis(option("--interval-ms", 100));
    let dir = tempfile::tempdir()?;
    // The nodes connect to the first server listed.
    let (mut servers, config) = nats::start_jetstream(dir.path(), 3, true)?;
    // Every node posts its webhooks (while it holds the lease) to the receiver here.
    let (hook, posts) = start_receiver()?;
    let with_hook = dir.path().join("with-webhook.toml");
    std::fs::write(
        &with_hook,
        format!(
            "[[webhooks]]\nurl = \"{hook}\"\n\n{}",
            std::fs::read_to_string(&config)?
        ),
    )?;
    let config = with_hook;
    let orders =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/health/orders.json");
    let mut a = start_node_with(
        dir.path(),
        "node-a",
        &config,
        &["--orders".as_ref(), orders.as_os_str()],
    )?;
    anyhow::ensure!(wait_holds(&a), "node A never took the webhooks lease");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(send_fixture(&a.ingest))?;
    let mut b = start_node(dir.path(), "node-b", &config)?;
    let acks = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let until = started + Duration::from_secs(16);
    let nodes = vec![a.ingest.clone(), b.ingest.clone()];
    let tasks: Vec<_> = (0..tags)
        .map(|i| {
            runtime.spawn(run_tag(
                format!("FAILOVER-{i:03}"),
                nodes.clone(),
                interval,
                until,
                acks.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    // The server that leads the stream dies: a new leader must be elected before any append is
    // acknowledged again (the worse of the two NATS failures; `-n n<i>` names server i).
    let text = std::fs::read_to_string(&config)?;
    let server_config: tagstream::config::ServerConfig = toml::from_str(&text)?;
    let stream_config = server_config.jetstream().expect("a stream").clone();
    let leader = runtime.block_on(async {
        let log = tagstream::cluster::jetstream::JetStreamLog::open(stream_config.clone()).await?;
        anyhow::Ok(log.leader().await?)
    })?;
    let killed = leader
        .as_deref()
        .and_then(|name| name.strip_prefix('n'))
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(0);
    let nats_killed = Instant::now();
    let _ = servers.0[killed].kill();
    std::thread::sleep(Duration::from_secs(6));
    let a_held = a.holds_webhooks();
    let node_killed = Instant::now();
    let _ = a.child.kill();
    let _ = a.child.wait();
    let moved_from_a = if a_held {
        lease_moved_ms(&posts, node_killed, b.child.id())
    } else {
        None
    };
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let acks = acks.lock().unwrap().clone();
    let (nats_median, nats_worst) = outage_ms(&acks, tags, nats_killed);
    let (node_median, node_worst) = outage_ms(&acks, tags, node_killed);

    // Every acknowledged batch is in the stream exactly once.
    let (stored, duplicates) = runtime.block_on(async {
        let log = tagstream::cluster::jetstream::JetStreamLog::open(stream_config).await?;
        let end = log.next_record().await?;
        let mut records = Box::pin(log.read_from(0).await?);
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = 0u64;
        while let Some(item) = records.next().await {
            let (record, entry) = item?;
            if let tagstream::model::LogEntry::Batch(batch) = entry {
                if !seen.insert((batch.tag.clone(), batch.seq)) {
                    duplicates += 1;
                }
            }
            if record + 1 >= end {
                break;
            }
        }
        anyhow::Ok((seen, duplicates))
    })?;
    let missing = acks
        .iter()
        .filter(|(tag, seq, _)| !stored.contains(&(tag.clone(), *seq)))
        .count();
    // A third node joins; node B (the holder since A died) is killed; node C takes over.
    let c = start_node(dir.path(), "node-c", &config)?;
    let b_held = wait_holds(&b);
    std::thread::sleep(Duration::from_secs(1));
    let b_killed = Instant::now();
    let _ = b.child.kill();
    let _ = b.child.wait();
    let moved_from_b = if b_held {
        lease_moved_ms(&posts, b_killed, c.child.id())
    } else {
        None
    };
    let c_holds = c.holds_webhooks();
    drop(c);
    drop(b);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "tags": tags,
            "interval_ms": interval.as_millis() as u64,
            "acked_batches": acks.len(),
            "nats_server_killed": {"server": format!("n{killed}"), "was_stream_leader": leader.is_some(), "outage_ms_median": nats_median, "outage_ms_worst": nats_worst},
            "node_killed": {"outage_ms_median": node_median, "outage_ms_worst": node_worst},
            "acked_missing_from_stream": missing,
            "webhook_lease_moved_ms": {
                "node_a_killed": moved_from_a,
                "node_a_held_the_lease": a_held,
                "node_b_killed": moved_from_b,
                "node_b_held_the_lease": b_held,
                "node_c_holds_it_after": c_holds,
                "posts": posts.lock().unwrap().len(),
                "events_posted": posts.lock().unwrap().iter().map(|p| p.events.len()).sum::<usize>(),
            },
            "stored_twice": duplicates,
        }))?
    );
    Ok(())
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
