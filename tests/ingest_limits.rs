//! The real server under connection attacks: thousands of idle connections under a low
//! file-descriptor limit, unauthenticated connections sending partial huge frames, silent
//! connections, and more connections per tag than allowed. The server must stay up, keep serving
//! authenticated tags and HTTP, and hold little memory for peers that never authenticated.

mod common;

use common::{Server, TagClient};
use futures::{SinkExt, StreamExt};
use std::path::Path;
use std::time::{Duration, Instant};
use tagstream::model::{DeviceEvent, Reading, ReadingBody};
use tagstream::wire::{ErrorCode, Frame, FrameCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

fn readings(n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            t_ms: 1_774_722_600_000 + i as i64 * 1000,
            battery_pct: Some(80),
            body: ReadingBody::Event(DeviceEvent::StrapClosed),
        })
        .collect()
}

/// Writes `DATA/server.toml` with `toml` and returns its path.
fn config_file(dir: &Path, toml: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("server.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

/// Raises this test process's own open-file limit to its hard limit; returns the new limit.
fn raise_own_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one `rlimit` through valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

fn alive(server: &mut Server) -> bool {
    matches!(server.child.try_wait(), Ok(None))
}

fn http_metrics(server: &Server) -> Result<String, String> {
    ureq::get(&format!("http://{}/metrics", server.http_addr))
        .timeout(Duration::from_secs(5))
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Opens up to `count` connections that never send anything, `parallel` at a time; returns the
/// ones that connected (kept open by the caller).
async fn open_idle_connections(addr: &str, count: usize, parallel: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(count);
    let mut left = count;
    while left > 0 {
        let wave = left.min(parallel);
        left -= wave;
        let attempts: Vec<_> = (0..wave)
            .map(|_| {
                let addr = addr.to_string();
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
                })
            })
            .collect();
        for attempt in attempts {
            if let Ok(Ok(Ok(stream))) = attempt.await {
                open.push(stream);
            }
        }
    }
    open
}

/// Connects tag `tag` as soon as the server lets it (it may answer `server_busy` while its
/// connection slots are taken), within `deadline`.
async fn connect_when_admitted(addr: &str, tag: &str, deadline: Duration) -> TagClient {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < deadline {
        // One attempt waits as long as the deadline allows: an attempt abandoned while its
        // connection sat in the listen backlog would still be accepted and its hello processed
        // later, superseding the attempt that followed it (newest hello wins).
        let attempt = tokio::time::timeout(deadline.saturating_sub(start.elapsed()), async {
            let socket = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut framed = Framed::new(socket, FrameCodec::default());
            let secret = tagstream::wire::tag_secret(common::TAG_KEY.as_bytes(), tag);
            framed
                .send(Frame::hello(tag, secret))
                .await
                .map_err(|e| e.to_string())?;
            match framed.next().await {
                Some(Ok(Frame::HelloOk { last_seq })) => Ok(TagClient { framed, last_seq }),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        match attempt {
            Ok(Ok(client)) => return client,
            Ok(Err(e)) => last = e,
            Err(_) => last = "hello timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tag {tag} not admitted within {deadline:?}: last answer {last}");
}

/// Lowers the running server's soft and hard `RLIMIT_NOFILE` to the descriptors it has open now
/// plus `spare`, after it derived its connection caps from a higher limit: whatever the machine
/// makes the server's own descriptor count, accept() then runs out of descriptors.
fn squeeze_fd_limit(server: &Server, spare: u64) -> u64 {
    let pid = server.child.id();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let limit = libc::rlimit {
        rlim_cur: (open + spare) as libc::rlim_t,
        rlim_max: (open + spare) as libc::rlim_t,
    };
    // SAFETY: prlimit reads one `rlimit` through a valid pointer; the old value is not asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    open + spare
}

/// The attack and the checks, for one descriptor limit and config; with `squeeze_to_spare`, the
/// limit is lowered after start to that many descriptors beyond those the server has open.
async fn idle_connections_leave_the_server_serving(
    fd_limit: u64,
    squeeze_to_spare: Option<u64>,
    config: &str,
    connections: usize,
    http_during_attack: bool,
) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(&data, config);
    let mut server = Server::start_with_fd_limit(&data, &["--config", &config], fd_limit);
    let fd_limit = match squeeze_to_spare {
        Some(spare) => squeeze_fd_limit(&server, spare),
        None => fd_limit,
    };

    let idle = open_idle_connections(&server.ingest_addr, connections, 500).await;
    println!(
        "opened {} of {connections} idle connections (server fd limit {fd_limit})",
        idle.len()
    );
    assert!(
        idle.len() >= connections / 2,
        "only {} connections opened",
        idle.len()
    );
    assert!(alive(&mut server), "server died under the idle connections");
    if http_during_attack {
        // HTTP answers during the attack (it has its own share of descriptors).
        let during = http_metrics(&server).expect("HTTP answers while tags are attacked");
        assert!(metric(&during, "tagstream_ingest_unauthenticated_connections") > 0);
    }

    // Once the hello timeout frees the slots, a real tag connects, uploads and gets acks.
    let mut tag = connect_when_admitted(&server.ingest_addr, "T1", Duration::from_secs(60)).await;
    for seq in 1..=5 {
        tag.send_acked(seq, readings(3)).await;
    }
    assert!(alive(&mut server), "server died");
    // Acked batches reach the committed counter once forwarded to the pipeline, just after.
    let start = Instant::now();
    let after = loop {
        let after = http_metrics(&server).expect("HTTP answers after the attack");
        if metric(&after, "tagstream_committed_batches_total") >= 5 {
            break after;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "acked batches never counted as committed:\n{after}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metric(&after, "tagstream_ingest_hello_timeouts_total") > 0);
    drop(idle);
    (server, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_idle_connections_under_an_fd_limit_of_256_leave_the_server_serving() {
    let own_limit = raise_own_fd_limit();
    // Leave room for the test's own files and the tag's connection.
    let connections = 10_000usize.min(own_limit.saturating_sub(200) as usize);
    println!("test process fd limit {own_limit}: opening {connections} connections");
    let config = "[ingest]\nhello_timeout_ms = 1000\n";
    let (mut server, metrics) =
        idle_connections_leave_the_server_serving(256, None, config, connections, true).await;
    // Most of the connections were refused at once rather than held.
    assert!(metric(&metrics, "tagstream_ingest_refused_unauthenticated_total") > 0);
    assert!(alive(&mut server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accept_failing_for_lack_of_descriptors_does_not_stop_the_server() {
    raise_own_fd_limit();
    // No descriptors reserved and caps derived from a limit of 256, then the limit lowered to 8
    // beyond what the server has open: the unauthenticated connections allowed do not fit, so
    // accept() fails with EMFILE (for HTTP too, while it lasts) and must be survived. (A fixed
    // low limit depended on how many descriptors the server opens on a given machine.)
    let config = "[ingest]\nhello_timeout_ms = 1000\nreserved_fds = 0\n";
    let (mut server, metrics) =
        idle_connections_leave_the_server_serving(256, Some(8), config, 100, false).await;
    assert!(
        metric(&metrics, "tagstream_ingest_accept_errors_total") > 0,
        "the test did not make accept() fail:\n{metrics}"
    );
    assert!(alive(&mut server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_huge_frames_before_hello_do_not_make_the_server_hold_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, None, &[]);
    let pid = server.child.id();
    let before_kb = rss_kb(pid);
    // Each connection announces a 1 MiB hello and sends all of it but the last byte.
    const FRAME_BYTES: usize = 1 << 20;
    let mut prefix = (FRAME_BYTES as u32).to_le_bytes().to_vec();
    prefix.push(0x01);
    let body = vec![b'x'; FRAME_BYTES - 2];
    let mut streams = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let stream = TcpStream::connect(&server.ingest_addr).await.unwrap();
        let (prefix, body) = (prefix.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = stream;
            // The server may refuse and close early: write errors are expected then.
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                stream.write_all(&prefix).await?;
                stream.write_all(&body).await
            })
            .await;
            stream
        }));
    }
    for task in tasks {
        streams.push(task.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_kb = rss_kb(pid);
    println!("server RSS {before_kb} kB before, {after_kb} kB with 300 partial 1 MiB frames");
    assert!(
        after_kb < 100 * 1024,
        "server RSS {after_kb} kB with 300 unauthenticated connections"
    );
    assert!(alive(&mut server));
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tag.send_acked(1, readings(2)).await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_hello_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(&data, "[ingest]\nhello_timeout_ms = 500\n");
    let server = Server::start(&data, None, &["--config", &config]);
    let socket = TcpStream::connect(&server.ingest_addr).await.unwrap();
    let mut framed = Framed::new(socket, FrameCodec::default());
    let start = Instant::now();
    let frame = tokio::time::timeout(Duration::from_secs(5), framed.next())
        .await
        .expect("the server closed the silent connection");
    assert!(
        matches!(
            frame,
            Some(Ok(Frame::Error {
                code: ErrorCode::HelloTimeout,
                ..
            }))
        ),
        "{frame:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(400));
    let end = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
    assert!(matches!(end, Ok(None)), "connection closed after the error");
    // A tag that says hello in time is unaffected.
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    tag.send_acked(1, readings(1)).await;
}

#[tokio::test]
async fn a_new_connection_beyond_the_per_tag_limit_supersedes_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(&data, "[ingest]\nmax_connections_per_tag = 1\n");
    let server = Server::start(&data, None, &["--config", &config]);
    let mut first = TagClient::connect(&server.ingest_addr, "T1").await;
    first.send_acked(1, readings(1)).await;
    let other = TagClient::connect(&server.ingest_addr, "T2").await;
    let mut second = TagClient::connect(&server.ingest_addr, "T1").await;
    assert_eq!(second.last_seq, 1);
    match first.next_frame().await {
        Some(Frame::Error {
            code: ErrorCode::Superseded,
            ..
        }) => {}
        other => panic!("expected superseded, got {other:?}"),
    }
    assert_eq!(first.next_frame().await, None);
    second.send_acked(2, readings(1)).await;
    // Another tag's connection is untouched.
    let mut other = other;
    other.send_acked(1, readings(1)).await;
    let metrics = http_metrics(&server).unwrap();
    assert_eq!(metric(&metrics, "tagstream_ingest_superseded_total"), 1);
    assert_eq!(
        metric(&metrics, "tagstream_ingest_authenticated_connections"),
        2
    );
}

#[tokio::test]
async fn a_large_frame_before_hello_is_refused_as_soon_as_its_length_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None, &[]);
    let mut socket = TcpStream::connect(&server.ingest_addr).await.unwrap();
    // A 2 KiB frame length: fine for an authenticated tag, too much before the hello.
    socket.write_all(&2048u32.to_le_bytes()).await.unwrap();
    let mut framed = Framed::new(socket, FrameCodec::default());
    let frame = tokio::time::timeout(Duration::from_secs(5), framed.next())
        .await
        .expect("an answer without waiting for the body");
    assert!(
        matches!(
            frame,
            Some(Ok(Frame::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            }))
        ),
        "{frame:?}"
    );
}

#[tokio::test]
async fn an_idle_authenticated_connection_is_closed_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(&data, "[ingest]\nidle_timeout_ms = 600\n");
    let server = Server::start(&data, None, &["--config", &config]);
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    // Activity keeps it open...
    for seq in 1..=4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tag.send_acked(seq, readings(1)).await;
    }
    // ...silence closes it.
    let start = Instant::now();
    match tag.next_frame().await {
        Some(Frame::Error {
            code: ErrorCode::IdleTimeout,
            ..
        }) => {}
        other => panic!("expected idle_timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(tag.next_frame().await, None);
}
