//! Cluster mode (issue 15), the suite: three NATS servers (R3 stream) and three tagstream
//! nodes on loopback, every node with the same webhook endpoint, the simulator streaming into all
//! three nodes (`tagsim stream --connect a,b,c`). While it streams one NATS server and then the
//! node holding the webhook lease (and, like every node, tag connections) are killed with
//! SIGKILL, and both are started again on the same ports and data. Afterwards: every generated batch is in the stream exactly once; every node's alert
//! and hit exports are byte-identical to each other and to `tagstream replay --stream`; the
//! webhook receiver got every alert of the final export in its final state, and every change a
//! node that was never killed published (its whole event history); and the simulator
//! had every batch acknowledged, its tags failing over to the surviving nodes.
//!
//! Needs the `tagsim` binary (`cargo build --workspace --bins`) and nats-server
//! (`scripts/nats-setup.sh`).

mod common;

use common::nats::{free_port, start_cluster, Nats};
use common::webhook_receiver::{start_receiver, Post};
use common::{call, Server, ADMIN_TOKEN};
use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// The simulated population: 30 tags over three days; at speed 10,000 the stream takes ~26 s.
const SIM: [&str; 6] = ["--tags", "30", "--days", "3", "--seed", "7"];
const SPEED: &str = "10000";

/// A node's config: the R3 stream on the three NATS servers, and the webhook endpoint.
fn node_config(dir: &Path, name: &str, urls: &[String], webhook: Option<&str>) -> PathBuf {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let mut text = format!(
        "[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [{}]\nreplicas = 3\npartitions = 16\n",
        urls.join(", ")
    );
    if let Some(url) = webhook {
        text.push_str(&format!("\n[[webhooks]]\nurl = \"{url}\"\nbatch = 50\n"));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A node with fixed ports (so it can come back on the same ones after a kill).
struct Node {
    data: PathBuf,
    config: PathBuf,
    ingest: String,
    http: String,
}

impl Node {
    fn start(&self, orders: Option<&Path>) -> Server {
        let config = self.config.to_str().unwrap();
        // The ports may take a moment to be free again after a kill.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let started = std::panic::catch_unwind(|| {
                Server::start_at(
                    &self.data,
                    orders,
                    &self.ingest,
                    &self.http,
                    &["--config", config],
                )
            });
            match started {
                Ok(server) => return server,
                Err(e) if Instant::now() > deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
}

/// Every batch in the stream as (tag, seq, readings), in stream order.
fn stream_batches(config: &Path) -> Vec<(String, u64, usize)> {
    use futures::StreamExt;
    let config: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let jetstream = config.jetstream().unwrap().clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = async {
                let stream = tagstream::cluster::jetstream::JetStreamLog::open(jetstream.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let end = stream.next_record().await.map_err(|e| e.to_string())?;
                let mut records = Box::pin(stream.read_from(0).await.map_err(|e| e.to_string())?);
                let mut batches = Vec::new();
                let mut expected = 0u64;
                while expected < end {
                    let (record, entry) = records
                        .next()
                        .await
                        .ok_or("the stream ended early")?
                        .map_err(|e| e.to_string())?;
                    assert_eq!(record, expected, "records in order, without gaps");
                    expected += 1;
                    if let tagstream::model::LogEntry::Batch(b) = entry {
                        batches.push((b.tag.clone(), b.seq, b.readings.len()));
                    }
                }
                Ok::<_, String>(batches)
            };
            match read.await {
                Ok(batches) => return batches,
                Err(e) if Instant::now() > deadline => panic!("reading the stream: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    })
}

/// Opens the stream (made by the first node to ask) once the three servers have a leader.
fn wait_for_stream(config: &Path) {
    let config: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let jetstream = config.jetstream().unwrap().clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) =
            tagstream::cluster::jetstream::JetStreamLog::open(jetstream.clone()).await
        {
            assert!(Instant::now() < deadline, "no stream in 30 s: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// `GET path` with the admin token; `None` while the node does not answer.
fn export(server: &Server, path: &str) -> Option<String> {
    server.get(path).ok()
}

/// The alerts of `export` (JSON Lines) that the webhook receiver never got in that exact state:
/// for each exported alert, some delivered event must carry the same id and, for every field of
/// the export, the same value (an event's body is the alert plus its review).
fn alerts_missing_from_webhooks(export: &str, posts: &[Post]) -> Vec<String> {
    let mut delivered: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for event in posts.iter().flat_map(|p| &p.events) {
        let alert = event["alert"].clone();
        let id = alert["id"].as_str().unwrap_or_default().to_string();
        delivered.entry(id).or_default().push(alert);
    }
    export
        .lines()
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            let fields = want.as_object().unwrap();
            let id = want["id"].as_str().unwrap_or_default();
            let got = delivered.get(id).is_some_and(|versions| {
                versions
                    .iter()
                    .any(|v| fields.iter().all(|(key, value)| &v[key] == value))
            });
            (!got).then(|| line.to_string())
        })
        .collect()
}

/// A count in the simulator's summary line: the number before `what`.
fn summary_count(line: &str, what: &str) -> u64 {
    line.split([',', ';'])
        .find(|part| {
            part.trim_start()
                .split_once(' ')
                .map(|x| x.1)
                .is_some_and(|rest| rest.starts_with(what))
        })
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' count in: {line}"))
}

#[test]
fn three_nodes_survive_a_nats_server_and_a_node_killed_mid_stream() {
    let started = Instant::now();
    // TAGSTREAM_TEST_KEEP=1 keeps the directory (nodes' data, the stream) for a look afterwards.
    let keep = std::env::var_os("TAGSTREAM_TEST_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("keeping {}", dir.path().display());
    }
    let sim = common::generate_sim_with(dir.path(), &SIM);

    let mut nats: Vec<Option<Nats>> = start_cluster(dir.path(), 3);
    let urls: Vec<String> = nats
        .iter()
        .map(|n| n.as_ref().unwrap().url.clone())
        .collect();
    let (hook_url, hooks) = start_receiver().unwrap();
    let posts = || hooks.lock().unwrap().clone();
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let name = format!("node{i}");
            Node {
                data: dir.path().join(&name),
                config: node_config(dir.path(), &name, &urls, Some(&hook_url)),
                ingest: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
            }
        })
        .collect();
    wait_for_stream(&nodes[0].config);
    // Node 0 first, up (and the orders imported through the stream) before the others start:
    // it is the first node of the cluster.
    let mut servers: Vec<Option<Server>> =
        vec![Some(nodes[0].start(Some(&sim.join("orders.json"))))];
    for node in &nodes[1..] {
        servers.push(Some(node.start(None)));
    }

    // Police upload the simulated crime batches (through node 1) before the tags stream: every
    // node matches them against the trails as they arrive (the killed node again at its restart).
    let (status, police) = call(
        servers[1].as_ref().unwrap(),
        "POST",
        "/v1/users",
        Some(ADMIN_TOKEN),
        None,
        Some(serde_json::json!({"name": "police", "role": "police", "force": "AvonSomerset"})),
    );
    assert!((200..300).contains(&status), "{status}: {police}");
    let police: serde_json::Value = serde_json::from_str(&police).unwrap();
    let police = police["token"].as_str().unwrap().to_string();
    let mut crime_files: Vec<PathBuf> = std::fs::read_dir(sim.join("crimes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crime_files.sort();
    assert!(!crime_files.is_empty());
    for file in &crime_files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let result = ureq::post(&format!(
            "http://{}/v1/crimes/batches",
            servers[1].as_ref().unwrap().http_addr
        ))
        .set("Authorization", &format!("Bearer {police}"))
        .set("Content-Type", "text/csv")
        .query("filename", name)
        .send_string(&std::fs::read_to_string(file).unwrap());
        assert!(result.is_ok(), "crime upload {name}: {result:?}");
    }

    let connect: Vec<&str> = nodes.iter().map(|n| n.ingest.as_str()).collect();
    let stream = common::spawn_tagsim_stream(&SIM, &connect.join(","), SPEED);

    // Mid-stream: a NATS server dies hard, then the lease holder; both come back on the same ports and
    // data while the stream goes on.
    std::thread::sleep(Duration::from_secs(4));
    let nats_spec = nats[2].as_ref().unwrap().spec.clone();
    drop(nats[2].take());
    std::thread::sleep(Duration::from_secs(4));
    // The node to kill holds tag connections (every node does: tag i is on node i mod 3) and
    // the webhook lease (the "a node holding tag connections and the webhook lease").
    // Node 0 took the lease first, but the NATS server's death may have moved it: whichever
    // node's `/metrics` says it holds it now is killed.
    let holds_lease = |node: &Server| {
        node.get("/metrics")
            .map(|m| m.lines().any(|l| l == "tagstream_lease_webhooks_held 1"))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(8);
    let holder = loop {
        let holders: Vec<usize> = (0..servers.len())
            .filter(|i| servers[*i].as_ref().is_some_and(holds_lease))
            .collect();
        if let [one] = holders.as_slice() {
            break *one;
        }
        assert!(
            Instant::now() < deadline,
            "no single node holds the webhook lease: {holders:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("killing node {holder}, the webhook lease holder");
    let mut victim = servers[holder].take().unwrap();
    victim.kill9();
    drop(victim);
    std::thread::sleep(Duration::from_secs(3));
    nats[2] = Some(nats_spec.start());
    std::thread::sleep(Duration::from_secs(2));
    servers[holder] = Some(nodes[holder].start(None));

    let output = stream.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "tagsim stream failed: {text}");
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains("acknowledged of"))
        .unwrap_or_else(|| panic!("no summary: {text}"))
        .to_string();
    eprintln!("{summary}");
    // (d) Every generated batch acknowledged (or known stored), tags failed over.
    let counts: Vec<u64> = summary
        .split_whitespace()
        .filter_map(|w| w.trim_start_matches('(').parse().ok())
        .collect();
    assert!(
        counts.len() >= 3 && counts[0] == counts[2],
        "every generated batch acknowledged: {summary}"
    );
    assert!(summary_count(&summary, "failovers") >= 1, "{summary}");
    assert!(summary_count(&summary, "reconnects") >= 1, "{summary}");

    let servers: Vec<Server> = servers.into_iter().map(Option::unwrap).collect();

    // (a) Every generated batch is in the stream exactly once.
    let file = std::fs::File::open(sim.join("readings.jsonl")).unwrap();
    let mut want: Vec<(String, u64, usize)> = Vec::new();
    let errors = tagstream::formats::readings_jsonl::read_batches(BufReader::new(file), |b| {
        want.push((b.tag.clone(), b.seq, b.readings.len()))
    })
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let mut stored = stream_batches(&nodes[1].config);
    let unique: HashSet<&(String, u64, usize)> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a batch is in the stream twice");
    stored.sort();
    want.sort();
    if stored != want {
        let have: HashSet<&(String, u64, usize)> = stored.iter().collect();
        let wanted: HashSet<&(String, u64, usize)> = want.iter().collect();
        let missing: Vec<_> = want.iter().filter(|b| !have.contains(b)).take(10).collect();
        let extra: Vec<_> = stored
            .iter()
            .filter(|b| !wanted.contains(b))
            .take(10)
            .collect();
        panic!(
            "the stream holds {} batches, {} generated; missing (tag, seq, readings) {missing:?}; \
             not generated {extra:?}; simulator: {summary}",
            stored.len(),
            want.len()
        );
    }

    // (b) Replay of the stream (everything is in it now), and every node settled on it.
    let (replay_alerts, replay_hits) =
        common::nats::replay_stream(&nodes[1].config, &dir.path().join("replay"));
    assert!(!replay_alerts.is_empty(), "the simulation raised no alerts");
    assert!(!replay_hits.is_empty(), "the crime batches gave no hits");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let exports: Vec<(Option<String>, Option<String>)> = servers
            .iter()
            .map(|s| (export(s, "/v1/alerts/export"), export(s, "/v1/hits/export")))
            .collect();
        let settled = exports.iter().all(|(alerts, hits)| {
            alerts.as_deref() == Some(replay_alerts.as_str())
                && hits.as_deref() == Some(replay_hits.as_str())
        });
        if settled {
            break;
        }
        if Instant::now() > deadline {
            // Say how each node differs (the exports are too long to print whole).
            let lines = |text: &Option<String>| text.as_ref().map(|t| t.lines().count());
            let report: Vec<String> = exports
                .iter()
                .enumerate()
                .map(|(i, (alerts, hits))| {
                    format!(
                        "node {i}: alerts {} ({:?} lines), hits {} ({:?} lines)",
                        if alerts.as_deref() == Some(replay_alerts.as_str()) {
                            "equal"
                        } else {
                            "DIFFER"
                        },
                        lines(alerts),
                        if hits.as_deref() == Some(replay_hits.as_str()) {
                            "equal"
                        } else {
                            "DIFFER"
                        },
                        lines(hits),
                    )
                })
                .collect();
            panic!(
                "nodes not equal to replay ({} alerts, {} hits) after 60 s: {}",
                replay_alerts.lines().count(),
                replay_hits.lines().count(),
                report.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    // (c) The webhook endpoint got every alert of the final export in its final state.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = alerts_missing_from_webhooks(&replay_alerts, &posts());
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} alerts never delivered in their final state, e.g. {}",
            missing.len(),
            replay_alerts.lines().count(),
            missing[0]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // (c') And every change a node that was never killed published (its whole event history,
    // read from its event stream from the start) reached the endpoint at least once: not only
    // final states but every step between, across the lease's move.
    let survivor = &servers[(holder + 1) % servers.len()];
    let history = common::read_sse(&survivor.http_addr, ADMIN_TOKEN, Some(0), usize::MAX);
    assert!(
        !history.is_empty(),
        "the survivor published no alert change"
    );
    let delivered: HashSet<String> = posts()
        .iter()
        .flat_map(|p| &p.events)
        .map(|event| event["alert"].to_string())
        .collect();
    let undelivered: Vec<&(i64, String, String)> = history
        .iter()
        .filter(|(_, _, data)| {
            let change: serde_json::Value = serde_json::from_str(data).unwrap();
            !delivered.contains(&change.to_string())
        })
        .collect();
    assert!(
        undelivered.is_empty(),
        "{} of the survivor's {} alert changes never reached the webhook endpoint, e.g. {:?}",
        undelivered.len(),
        history.len(),
        undelivered[0]
    );
    eprintln!(
        "{} alert changes, every one delivered; {} alerts, {} hits, {} webhook posts; {:.1} s",
        history.len(),
        replay_alerts.lines().count(),
        replay_hits.lines().count(),
        posts().len(),
        started.elapsed().as_secs_f64()
    );
}
