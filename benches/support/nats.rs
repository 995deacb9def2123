//! NATS servers with JetStream on loopback for the benches (the binary `scripts/nats-setup.sh`
//! installs), and the config file that puts a tagstream server's log on their stream.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// NATS servers killed when dropped.
pub struct NatsServers(pub Vec<std::process::Child>);

impl Drop for NatsServers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `replicas` NATS servers (a cluster when more than one), waits until the stream can be
/// created, and writes the server's config file naming it.
pub fn start_jetstream(
    dir: &std::path::Path,
    replicas: usize,
    retain_server_order: bool,
) -> anyhow::Result<(NatsServers, std::path::PathBuf)> {
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/nats-server/nats-server");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run scripts/nats-setup.sh",
        bin.display()
    );
    let ports: Vec<(u16, u16)> = (0..replicas)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let routes: Vec<String> = ports
        .iter()
        .map(|(_, r)| format!("nats://127.0.0.1:{r}"))
        .collect();
    let mut servers = NatsServers(Vec::new());
    for (i, (port, route)) in ports.iter().enumerate() {
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js"])
            .arg("-sd")
            .arg(dir.join(format!("nats-{i}")))
            .args(["-n", &format!("n{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if replicas > 1 {
            cmd.args(["--cluster_name", "load", "--cluster"])
                .arg(format!("nats://127.0.0.1:{route}"))
                .args(["--routes", &routes.join(",")]);
        }
        servers.0.push(cmd.spawn()?);
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(p, _)| format!("nats://127.0.0.1:{p}"))
        .collect();
    let config = tagstream::cluster::jetstream::JetStreamConfig {
        urls: urls.clone(),
        stream: "TAGSTREAM".into(),
        subject_prefix: "ts".into(),
        replicas,
        partitions: 64,
        duplicate_window_s: 3_600,
        retain_server_order,
        node_id: None,
        lease_ttl_ms: tagstream::cluster::lease::DEFAULT_TTL_MS,
        own_partitions: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    runtime.block_on(async {
        loop {
            match tagstream::cluster::jetstream::JetStreamLog::open(config.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(anyhow::anyhow!("{e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })?;
    let path = dir.join("jetstream.toml");
    let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "[log]\nbackend = \"jetstream\"\n\n[log.jetstream]\nurls = [{}]\nreplicas = {replicas}\nretain_server_order = {retain_server_order}\n",
            quoted.join(", ")
        ),
    )?;
    Ok((servers, path))
}
