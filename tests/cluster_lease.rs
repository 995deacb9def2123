//! Cluster mode (issue 15): webhooks are delivered by one node, the holder of the `webhooks`
//! lease, not by every node. Two nodes on one stream with the same endpoint: while both live,
//! only the first delivers (each event once); killed with SIGKILL, the survivor takes the lease
//! over within 5 s, resumes where the dead holder got to, and in the end every alert's final
//! state has been delivered at least once.

mod common;

use common::nats::start_nats;
use common::webhook_receiver::{start_receiver, Post};
use common::{fixture, fixture_batches, send_in_order, Server};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A node's config: the log on the stream at `url`, and the one webhook. No `node_id`: each
/// node is named `<hostname>-<pid>`, which the test tells apart by the pid.
fn node_config(dir: &Path, name: &str, url: &str, hook: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[[webhooks]]\nurl = \"{hook}\"\nbatch = 10\n\n[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [\"{url}\"]\nreplicas = 1\npartitions = 16\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start_node(dir: &Path, name: &str, url: &str, hook: &str) -> Server {
    let config = node_config(dir, name, url, hook);
    Server::start(
        &dir.join(name),
        Some(&fixture("orders.json")),
        &["--config", config.to_str().unwrap()],
    )
}

/// Whether `post` came from the node with this pid.
fn from(post: &Post, pid: u32) -> bool {
    post.node
        .as_deref()
        .is_some_and(|n| n.ends_with(&format!("-{pid}")))
}

/// Waits until the receiver has had nothing new for `quiet`.
fn wait_quiet(posts: &Mutex<Vec<Post>>, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = usize::MAX;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        let now = posts.lock().unwrap().len();
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet && now > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lease_held(node: &Server) -> Option<bool> {
    let metrics = node.get("/metrics").ok()?;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tagstream_lease_webhooks_held "))?;
    Some(line.ends_with(" 1"))
}

/// The alert an event carries, as the export writes it (the event adds the review).
fn alert_of(event: &serde_json::Value) -> serde_json::Value {
    let mut alert = event["alert"].clone();
    if let Some(fields) = alert.as_object_mut() {
        fields.remove("review");
    }
    alert
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_delivers_webhooks_and_a_survivor_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    let (hook, posts) = start_receiver().unwrap();
    // The stream exists before the nodes start (a node refuses to start without its log).
    let probe: tagstream::config::ServerConfig = toml::from_str(
        &std::fs::read_to_string(node_config(dir.path(), "probe", &nats.url, &hook)).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) =
        tagstream::cluster::jetstream::JetStreamLog::open(probe.jetstream().unwrap().clone()).await
    {
        assert!(Instant::now() < deadline, "no stream in 15 s: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut a = start_node(dir.path(), "node-a", &nats.url, &hook);
    // Node A holds the lease before node B competes for it. (A build without leases has no
    // such gauge: it goes on, and its two nodes' deliveries are what fails below.)
    let deadline = Instant::now() + Duration::from_secs(15);
    while lease_held(&a) == Some(false) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = start_node(dir.path(), "node-b", &nats.url, &hook);
    let (pid_a, pid_b) = (a.child.id(), b.child.id());

    // All but the last three batches (most alerts change by then): T1 through node A, T2
    // through node B.
    let batches = fixture_batches();
    let before_kill = batches.len() - 3;
    assert!(before_kill > 0);
    let (addr_a, addr_b) = (a.ingest_addr.clone(), b.ingest_addr.clone());
    let route = |tag: &str| if tag == "T1" { &addr_a } else { &addr_b }.clone();
    send_in_order(&batches[..before_kill], route).await;
    a.settled_alerts();
    b.settled_alerts();
    wait_quiet(&posts, Duration::from_secs(2));

    // While both live: every event delivered once, by node A.
    let before: Vec<Post> = posts.lock().unwrap().clone();
    assert!(!before.is_empty(), "no webhook delivered");
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for event in before.iter().flat_map(|p| &p.events) {
        *delivered
            .entry(format!("{} {}", event["kind"], event["alert"]))
            .or_default() += 1;
    }
    let twice: Vec<&String> = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, _)| e)
        .collect();
    assert!(
        twice.is_empty(),
        "{} of {} events delivered more than once while both nodes were alive (both nodes \
         deliver), e.g. {:?}",
        twice.len(),
        delivered.len(),
        twice.first()
    );
    let senders: Vec<Option<String>> = before.iter().map(|p| p.node.clone()).collect();
    assert!(
        before.iter().all(|p| from(p, pid_a)),
        "node A (pid {pid_a}) should deliver alone; senders: {senders:?}"
    );
    assert_eq!(lease_held(&a), Some(true));
    assert_eq!(lease_held(&b), Some(false));

    // The holder dies hard; the survivor takes the lease over and delivers.
    let killed_at = Instant::now();
    a.kill9();
    let deadline = killed_at + Duration::from_secs(15);
    let took_over = loop {
        let first = posts
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.at > killed_at && from(p, pid_b))
            .map(|p| p.at);
        if let Some(at) = first {
            break at - killed_at;
        }
        assert!(
            Instant::now() < deadline,
            "node B never delivered after node A died"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "webhook lease moved: {} ms from SIGKILL of the holder to the survivor's first POST",
        took_over.as_millis()
    );
    assert!(
        took_over <= Duration::from_secs(5),
        "the survivor took {took_over:?} to deliver"
    );
    assert_eq!(lease_held(&b), Some(true));

    // The last batches through the survivor.
    send_in_order(&batches[before_kill..], |_| addr_b.clone()).await;
    let replayed = common::replay_alerts(
        &fixture("orders.json"),
        &fixture("readings.jsonl"),
        &dir.path().join("replay"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let export = loop {
        let export = b.settled_alerts();
        if export == replayed || Instant::now() > deadline {
            break export;
        }
    };
    assert_eq!(export, replayed, "node B's alerts");

    // Every alert's final state was delivered at least once (by A before it died, or by B).
    let finals: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!finals.is_empty());
    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = loop {
        let got: Vec<serde_json::Value> = posts
            .lock()
            .unwrap()
            .iter()
            .flat_map(|p| p.events.iter().map(alert_of))
            .collect();
        let missing: Vec<&serde_json::Value> = finals.iter().filter(|f| !got.contains(f)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        missing.is_empty(),
        "{} of {} alerts' final states never delivered, e.g. {}",
        missing.len(),
        finals.len(),
        missing[0]
    );
    let after: Vec<Post> = posts
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.at > killed_at)
        .cloned()
        .collect();
    assert!(
        after.iter().all(|p| from(p, pid_b)),
        "after the kill only node B delivers"
    );
    // The cursor moved with the lease: node B re-sent at most the events of the records node A
    // had delivered last in each lane, not everything from its own first event.
    let delivered_by_a: Vec<&serde_json::Value> = before.iter().flat_map(|p| &p.events).collect();
    let resent = after
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| delivered_by_a.iter().any(|d| d["alert"] == e["alert"]))
        .count();
    println!(
        "node B re-sent {resent} of the {} events node A had delivered",
        delivered_by_a.len()
    );
    assert!(
        resent < delivered_by_a.len(),
        "node B re-sent all {resent} events node A had delivered: the cursor did not move with \
         the lease"
    );
    let total: usize = posts.lock().unwrap().iter().map(|p| p.events.len()).sum();
    println!(
        "{} alerts; {} events delivered before the kill, {} in all",
        finals.len(),
        before.iter().map(|p| p.events.len()).sum::<usize>(),
        total
    );
}

/// The lease itself, two contenders in this process: one holds at a time; a holder whose
/// renewal is refused (another writer moved the key's revision) stops within one renewal period;
/// once the key expires one of them takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_contender_holds_the_lease_and_a_refused_renewal_loses_it() {
    use tagstream::cluster::lease::Leases;
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "nats", None);
    let config: tagstream::config::ServerConfig = toml::from_str(
        &std::fs::read_to_string(node_config(dir.path(), "probe", &nats.url, "http://x/")).unwrap(),
    )
    .unwrap();
    let jetstream = config.jetstream().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        match tagstream::cluster::jetstream::JetStreamLog::open(jetstream.clone()).await {
            Ok(log) => break log,
            Err(e) => assert!(Instant::now() < deadline, "no stream in 15 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ttl = Duration::from_millis(jetstream.lease_ttl_ms);
    let open = |node: &str| Leases::open(log.context(), "TAGSTREAM", 1, ttl, node.to_string());
    let (one, two) = (open("one").await.unwrap(), open("two").await.unwrap());
    let (release_one, release_two) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let held_one = one.hold("duty", release_one.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !*held_one.borrow() {
        assert!(Instant::now() < deadline, "the lease was never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held_two = two.hold("duty", release_two.clone());
    let both = |a: &tokio::sync::watch::Receiver<bool>, b: &tokio::sync::watch::Receiver<bool>| {
        *a.borrow() && *b.borrow()
    };
    // A while of renewals: the holder keeps it, the other never has it.
    let until = Instant::now() + ttl * 2;
    while Instant::now() < until {
        assert!(*held_one.borrow() && !*held_two.borrow());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Someone else writes the key: the holder's next renewal is refused and it stops.
    let kv = log
        .context()
        .get_key_value("TAGSTREAM_LEASES")
        .await
        .unwrap();
    assert_eq!(&kv.get("duty").await.unwrap().unwrap()[..], b"one");
    kv.put("duty", "intruder".into()).await.unwrap();
    let written = Instant::now();
    while *held_one.borrow() {
        assert!(
            written.elapsed() < ttl / 3 + Duration::from_millis(500),
            "the holder kept the lease after its renewal was refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "refused renewal noticed in {} ms",
        written.elapsed().as_millis()
    );
    // The intruder's entry expires; one contender takes the lease, never both.
    let deadline = written + ttl + ttl / 3 + Duration::from_secs(2);
    loop {
        assert!(!both(&held_one, &held_two), "two holders");
        if *held_one.borrow() || *held_two.borrow() {
            break;
        }
        assert!(Instant::now() < deadline, "nobody took the expired lease");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let holder = if *held_one.borrow() { "one" } else { "two" };
    assert_eq!(
        &kv.get("duty").await.unwrap().unwrap()[..],
        holder.as_bytes()
    );
    println!(
        "taken by {holder} {} ms after the intruder's write",
        written.elapsed().as_millis()
    );

    // The holder stops (its node shuts down): it gives the lease up at once, and the other
    // takes it within one retry period, not after the key's TTL.
    let (release, held, other) = match holder {
        "one" => (&release_one, &held_one, &held_two),
        _ => (&release_two, &held_two, &held_one),
    };
    release.cancel();
    let released = Instant::now();
    while *held.borrow() {
        assert!(released.elapsed() < Duration::from_secs(1), "not given up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while !*other.borrow() {
        assert!(
            released.elapsed() < ttl / 3 + Duration::from_millis(700),
            "the other contender waited for the TTL instead of taking the released lease"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "released lease taken over in {} ms",
        released.elapsed().as_millis()
    );
}
