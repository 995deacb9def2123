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
    let port = free_port();
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
    if let Some((route_port, routes)) = cluster {
        cmd.args([
            "--cluster_name",
            "tagstream-test",
            "--cluster",
            &format!("nats://127.0.0.1:{route_port}"),
            "--routes",
            &routes.join(","),
        ]);
    }
    let child = cmd.spawn().expect("start nats-server");
    // Listening before anyone connects (a server started right after would be refused).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server {name} not listening on port {port} within 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
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
