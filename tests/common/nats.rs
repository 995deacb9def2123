//! NATS servers (JetStream) on loopback for the cluster tests: the binary `scripts/nats-setup.sh`
//! installs (`scripts/test.sh` runs it), one process per server, killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn nats_server_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/nats-server/nats-server");
    assert!(
        path.exists(),
        "{} is missing: run scripts/nats-setup.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A NATS server child process, killed (SIGKILL) when dropped.
pub struct Nats {
    pub child: Child,
    pub url: String,
    /// How it was started, to start it again on the same port, store and routes.
    pub spec: NatsSpec,
}

/// One NATS server's identity: its name (store under `dir/name`), client port and, in a
/// cluster, its route port and every route URL.
#[derive(Clone, Debug)]
pub struct NatsSpec {
    pub dir: PathBuf,
    pub name: String,
    pub port: u16,
    pub cluster: Option<(u16, Vec<String>)>,
}

impl NatsSpec {
    /// Starts (or starts again, after a kill) the server this spec describes.
    pub fn start(&self) -> Nats {
        // The port may take a moment to be free again after a kill.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match std::panic::catch_unwind(|| spawn_nats(self)) {
                Ok(nats) => return nats,
                Err(e) if std::time::Instant::now() > deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts one NATS server with JetStream storing under `dir`; `cluster`: (its route port, every
/// route URL of the cluster).
pub fn start_nats(dir: &Path, name: &str, cluster: Option<(u16, &[String])>) -> Nats {
    spawn_nats(&NatsSpec {
        dir: dir.to_path_buf(),
        name: name.to_string(),
        port: free_port(),
        cluster: cluster.map(|(route_port, routes)| (route_port, routes.to_vec())),
    })
}

fn spawn_nats(spec: &NatsSpec) -> Nats {
    let (dir, name, port) = (&spec.dir, spec.name.as_str(), spec.port);
    let mut cmd = Command::new(nats_server_bin());
    cmd.args([
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-js",
        "-n",
        name,
    ])
    .arg("-sd")
    .arg(dir.join(name))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some((route_port, routes)) = &spec.cluster {
        cmd.args([
            "--cluster_name",
            "tagstream-test",
            "--cluster",
            &format!("nats://127.0.0.1:{route_port}"),
            "--routes",
            &routes.join(","),
        ]);
    }
    let mut child = cmd.spawn().expect("start nats-server");
    // Listening before anyone connects (a server started right after would be refused).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() >= deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nats-server {name} not listening on port {port} within 15 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        spec: spec.clone(),
    }
}

/// Starts `count` NATS servers as one cluster (routes between them); each slot is `None` once
/// the test has killed that server.
pub fn start_cluster(dir: &Path, count: usize) -> Vec<Option<Nats>> {
    let route_ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
    let routes: Vec<String> = route_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    (0..count)
        .map(|i| {
            let cluster = Some((route_ports[i], routes.as_slice()));
            Some(start_nats(dir, &format!("n{i}"), cluster))
        })
        .collect()
}

/// Opens the stream a node's config file names, once its servers answer (and have a leader):
/// a node refuses to start without its log.
/// A one-server cluster for a test: a NATS server in `dir`, a node config (`dir/node.toml`: the
/// stream on it, R1, 16 partitions, after `extra` configuration), and the stream opened. The
/// server stops when the returned handle drops.
pub async fn one_server_cluster(
    dir: &Path,
    extra: &str,
    log_extra: &str,
) -> (
    Nats,
    std::path::PathBuf,
    tagstream::cluster::jetstream::JetStreamLog,
) {
    let nats = start_nats(dir, "nats", None);
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [\"{}\"]\nreplicas = 1\npartitions = 16\n{log_extra}",
            nats.url
        ),
    )
    .unwrap();
    let stream = open_stream_when_ready(&config).await;
    (nats, config, stream)
}

pub async fn open_stream_when_ready(config: &Path) -> tagstream::cluster::jetstream::JetStreamLog {
    let config: tagstream::config::ServerConfig =
        toml::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    let jetstream = config.jetstream().unwrap().clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match tagstream::cluster::jetstream::JetStreamLog::open(jetstream.clone()).await {
            Ok(log) => return log,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "no stream in 30 s: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `tagstream replay --stream` of the stream a node's config file names, into `out`: (alerts,
/// hits) as JSON Lines.
pub fn replay_stream(config: &Path, out: &Path) -> (String, String) {
    let args = ["--stream", "--config"].map(std::ffi::OsStr::new);
    let alerts = super::replay_into(&[args[0], args[1], config.as_os_str()], out);
    let hits = std::fs::read_to_string(out.join("hits.jsonl")).unwrap();
    (alerts, hits)
}
