//! `tagstream serve` and `tagstream rebuild`: the process around the topology. Reads the
//! secrets (tag key, admin token) and the TLS files, starts the [`Topology`], then wires the
//! sockets: the tag listener, the HTTP API (and console) with the purge job it runs (also on
//! its schedule), the listening line, and the stop on Ctrl-C or SIGTERM. What runs between the log and the stores is `topology`'s business.
//!
//! The secrets stay here: they feed only what this file wires (the tag listener's
//! authentication and the API's bootstrap token), and `tagstream tag-secret` reads the tag key
//! through [`load_tag_key`].

use crate::api::auth::BootstrapToken;
use crate::api::{router, ApiState};
use crate::config::ServerConfig;
use crate::ingest::limits::optional_ms;
use crate::ingest::osmand::{serve_osmand, OsmandContext};
use crate::ingest::teltonika::{run_teltonika_listener, TeltonikaContext};
use crate::ingest::{
    run_listener, EffectiveLimits, HttpListener, IngestContext, IngestTransport, TagCredentials,
};
use crate::retention::Purger;
use crate::topology::rebuild::SetAside;
use crate::topology::{Mode, Start, Started, Topology};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Environment variable holding the tag key (its bytes, at least 32); else `DATA/tag.key` is
/// used/created.
pub const TAG_KEY_ENV: &str = "TAGSTREAM_TAG_KEY";
/// Environment variable holding the admin API token; else `DATA/admin.token` is used/created.
pub const ADMIN_TOKEN_ENV: &str = "TAGSTREAM_ADMIN_TOKEN";

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom for a new secret")?;
    Ok(hex::encode(buf))
}

/// Reads a secret from the environment, else from `path`, creating it (mode 0600) if absent.
pub fn load_or_create_secret(env: &str, path: &Path) -> Result<String> {
    if let Ok(v) = std::env::var(env) {
        if !v.trim().is_empty() {
            return Ok(v.trim().to_string());
        }
    }
    if path.exists() {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_string());
    }
    let secret = random_hex(32)?;
    write_private(path, &secret)?;
    Ok(secret)
}

/// The tag key: from [`TAG_KEY_ENV`], else `DATA/tag.key` (if absent: created with 64 random
/// hex digits when `create`, else an error). An empty or short key is refused, naming where it
/// came from: every tag's secret would be computable from it.
pub fn load_tag_key(data_dir: &Path, create: bool) -> Result<Vec<u8>> {
    let path = data_dir.join("tag.key");
    let from_env = std::env::var(TAG_KEY_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let source_name = match from_env {
        Some(_) => format!("environment variable {TAG_KEY_ENV}"),
        None => path.display().to_string(),
    };
    if from_env.is_none() && !create && !path.exists() {
        bail!("no tag key: set {TAG_KEY_ENV} or create {}", path.display());
    }
    let key = load_or_create_secret(TAG_KEY_ENV, &path)?.into_bytes();
    crate::wire::check_tag_key(&key, &source_name)?;
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Runs the server until Ctrl-C or SIGTERM.
/// `tagstream serve`.
/// How a server ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop (SIGTERM, Ctrl-C).
    Done,
    /// Cluster mode, `own_partitions = "auto"`: its share of the partitions changed; the
    /// caller starts the process again in place (`topology::partition_share`).
    Restart,
}

pub async fn run(config: ServerConfig) -> Result<Stopped> {
    let mut stopped = Stopped::Done;
    run_as(config, Mode::Serve, &mut stopped).await?;
    Ok(stopped)
}

/// `tagstream rebuild` (server stopped): sets the log's views aside and builds them again with
/// the start-up below, then stops before letting anyone in. Returns where the old stores went.
pub async fn rebuild(config: ServerConfig) -> Result<SetAside> {
    run_as(config, Mode::Rebuild, &mut Stopped::Done)
        .await?
        .context("the rebuild stopped before the stores were set aside")
}

/// The offline commands, server stopped: brings every view of the data directory up to its log
/// as a start-up would (a hard stop can leave the stores behind the log), then stops. Returns the
/// log's next record. Holds the data directory's lock while it runs.
pub async fn catch_up(config: ServerConfig) -> Result<u64> {
    let topology = Topology::open(&config, Mode::CatchUp)?;
    match topology.start(&config).await? {
        Start::CaughtUp(next_record) => Ok(next_record),
        Start::Serving(_) | Start::Rebuilt(_) | Start::Packed(_) => {
            anyhow::bail!("the catch-up did not stop")
        }
    }
}

async fn run_as(
    mut config: ServerConfig,
    mode: Mode,
    stopped: &mut Stopped,
) -> Result<Option<SetAside>> {
    if mode == Mode::Serve {
        // Cluster mode, an empty data directory: start from the cluster's newest snapshot.
        crate::topology::snapshot_join::join_from_snapshot(&config)
            .await
            .context("joining from the cluster's snapshot")?;
    }
    // Cluster mode, own_partitions = "auto": this node's share, by membership.
    let share = match mode == Mode::Serve && config.auto_ownership() {
        true => Some(
            crate::topology::partition_share::take(&mut config)
                .await
                .context("taking this node's share of the partitions")?,
        ),
        false => None,
    };
    if mode == Mode::Serve {
        // A share that changed: continue from the cluster's snapshot rather than the whole
        // stream (losing this costs a longer start, never data).
        if let Err(e) = crate::topology::snapshot_join::checkpoint_for_share(&config).await {
            tracing::warn!(error = %e, "the cluster's checkpoint not taken; this start may replay the whole stream");
        }
    }
    let restart = Arc::new(tokio::sync::Notify::new());
    if let Some(share) = &share {
        share.watch(restart.clone());
    }
    let topology = Topology::open(&config, mode)?;
    let tag_key = load_tag_key(&config.data_dir, true)?;
    let admin_token = load_or_create_secret(ADMIN_TOKEN_ENV, &config.data_dir.join("admin.token"))?;
    // TLS files are read before anything slow, so a bad path fails the start at once.
    let ingest_transport = match &config.ingest.tls {
        None => IngestTransport::plain(),
        Some(tls) => IngestTransport::tls(tls).context("setting up TLS on the tag port")?,
    };
    let teltonika_transport = match (&config.teltonika.listen, &config.teltonika.tls) {
        (None, _) => None,
        (Some(_), None) => Some(IngestTransport::plain()),
        (Some(_), Some(tls)) => {
            Some(IngestTransport::tls(tls).context("setting up mutual TLS on the Teltonika port")?)
        }
    };
    let http_tls = match &config.http.tls {
        None => None,
        Some(tls) => Some((
            crate::tls::http_acceptor(tls).context("setting up HTTPS on the API")?,
            std::time::Duration::from_millis(tls.handshake_timeout_ms),
        )),
    };
    let credentials = TagCredentials::load(tag_key, topology.metadata().clone())
        .context("loading tag credentials from the metadata database")?;
    let started: Started = match topology.start(&config).await? {
        Start::Rebuilt(aside) => return Ok(Some(aside)),
        Start::Serving(started) => *started,
        Start::Packed(_) => anyhow::bail!("a server start stopped as the snapshot follower's"),
        Start::CaughtUp(_) => anyhow::bail!("a server start stopped as an offline catch-up"),
    };
    // `started.lock` is held until the process ends (its other fields move out below): this
    // process owns the stores.
    let limits = EffectiveLimits::for_this_process(&config.ingest, &config.http);
    tracing::info!(?limits, "connection limits");
    let ingest = Arc::new(IngestContext::new(
        started.commit,
        credentials,
        ingest_transport,
        config.max_frame_bytes,
        &config.ingest,
        limits,
    ));
    let ingest_listener = TcpListener::bind(config.ingest_addr)
        .await
        .with_context(|| format!("binding ingest address {}", config.ingest_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let ingest_addr = ingest_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let teltonika = match (config.teltonika.listen, teltonika_transport) {
        (Some(addr), Some(transport)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the Teltonika address {addr}"))?;
            let devices = Arc::new(TeltonikaContext::new(&config.teltonika, transport));
            let _ = ingest.teltonika.set(devices.counters.clone());
            Some((listener, devices))
        }
        _ => None,
    };
    let tracker_ingest = ingest.clone();
    let mut tracker_task = None;
    let mut osmand_task = None;
    let osmand = match config.osmand.listen {
        None => None,
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the OsmAnd address {addr}"))?;
            let context = Arc::new(OsmandContext::new(&config.osmand, ingest.clone()));
            let _ = ingest.osmand.set(context.counters.clone());
            Some((listener, context))
        }
    };
    // Survives accept errors, bounds open HTTP connections and closes idle ones.
    let http_listener = HttpListener::new(
        http_listener,
        limits.http_max_connections,
        optional_ms(config.http.idle_timeout_ms),
    );
    let _ = ingest
        .http_listener
        .set((http_listener.stats(), http_listener.gauge()));

    // The purge job: the admin route runs it, and so does its schedule (in a cluster, on the
    // node holding the retention lease; every node's stores follow the purge records).
    let mut purger = Purger::new(
        config.retention,
        config.data_dir.clone(),
        started.metadata.clone(),
        started.alert_store,
        started.trails.clone(),
        Arc::new(ingest.commit.clone()),
        Some(started.alerts.clone()),
        Some(started.tac.clone()),
    )
    .with_target(Arc::new(started.crimes.clone()))
    .with_target(started.last_contact.clone());
    for target in started.purge_targets.iter().cloned() {
        purger = purger.with_target(target);
    }
    if let Some(held) = started.retention_lease {
        purger = purger.with_lease(held);
    }
    let retention = Arc::new(purger);
    retention.spawn_schedule();
    if let Some(live) = started.live_snapshots {
        // Cluster mode: live snapshots (the node serves whatever happens to them).
        if let Err(e) = live.spawn(Arc::new(ScratchRetention(config.retention))) {
            tracing::error!(error = format!("{e:#}"), "live snapshots off");
        }
    }
    if let Some(purges) = &started.purges {
        // Cluster mode: purge records other nodes append are followed by this node's stores.
        purges.follow_with(Arc::new(FollowPurges(retention.clone())));
        spawn_purge_retries(purges.clone());
    }
    let state = ApiState {
        metadata: started.metadata,
        bootstrap: BootstrapToken::new(&admin_token),
        alerts: started.alerts,
        counters: started.counters,
        ingest: ingest.clone(),
        trails: started.trails,
        trail_api: config.trail_api,
        tac: started.tac,
        last_contact: started.last_contact,
        crimes: started.crimes,
        hits: started.hits,
        hits_config: config.rules.hits,
        abstinence_max_days: config.rules.alcohol.abstinence_max_days,
        crime_api: config.crime_api,
        directory: started.directory,
        control: started.control,
        retention,
        system: started.system,
        documents: config.documents.clone(),
        tiles: document_tiles(&config.console),
    };
    let mut app = router(state);
    if let Some(console) = crate::console::router(&config.console) {
        app = app.merge(console);
    }
    let http_scheme = if http_tls.is_some() { "https" } else { "http" };
    let ingest_tls = ingest.transport.is_tls();
    let http = match http_tls {
        None => tokio::spawn(async move { axum::serve(http_listener, app).await }),
        Some((acceptor, handshake_timeout)) => {
            let listener = crate::tls::TlsListener::new(http_listener, acceptor, handshake_timeout)
                .context("starting the HTTPS listener")?;
            tokio::spawn(async move { axum::serve(listener, app).await })
        }
    };
    let ingest_task = tokio::spawn(run_listener(ingest_listener, ingest));
    let teltonika_addr = match teltonika {
        None => None,
        Some((listener, devices)) => {
            let addr = listener.local_addr()?;
            tracker_task = Some(tokio::spawn(run_teltonika_listener(
                listener,
                tracker_ingest,
                devices,
            )));
            Some(addr.to_string())
        }
    };

    let osmand_addr = match osmand {
        None => None,
        Some((listener, context)) => {
            let addr = listener.local_addr()?;
            let app = axum::Router::new()
                .fallback(serve_osmand)
                .layer(axum::extract::DefaultBodyLimit::max(
                    context.limits.max_body_bytes,
                ))
                .with_state(context);
            let listener = HttpListener::new(
                listener,
                limits.http_max_connections,
                optional_ms(config.http.idle_timeout_ms),
            );
            osmand_task = Some(match &config.osmand.tls {
                None => tokio::spawn(async move { axum::serve(listener, app).await }),
                Some(tls) => {
                    let acceptor = crate::tls::http_acceptor(tls)
                        .context("setting up HTTPS on the OsmAnd port")?;
                    let timeout = std::time::Duration::from_millis(tls.handshake_timeout_ms);
                    let listener = crate::tls::TlsListener::new(listener, acceptor, timeout)
                        .context("starting the OsmAnd HTTPS listener")?;
                    tokio::spawn(async move { axum::serve(listener, app).await })
                }
            });
            Some(addr.to_string())
        }
    };

    // One machine-readable line so scripts and tests can find the ports.
    println!(
        "{}",
        serde_json::json!({
            "event": "listening",
            "ingest_addr": ingest_addr.to_string(),
            "http_addr": http_addr.to_string(),
            "http_scheme": http_scheme,
            "ingest_tls": ingest_tls,
            "teltonika_addr": teltonika_addr,
            "osmand_addr": osmand_addr,
            "data_dir": config.data_dir.display().to_string(),
            "admin_token_file": config.data_dir.join("admin.token").display().to_string(),
            "recovered_batches": started.recovered.0,
        })
    );

    let (mut http, mut ingest_task) = (http, ingest_task);
    tokio::select! {
        r = &mut http => bail!("HTTP server stopped: {r:?}"),
        r = &mut ingest_task => bail!("ingest listener stopped: {r:?}"),
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = restart.notified() => {
            tracing::info!("restarting for this node's new share of the partitions");
            *stopped = Stopped::Restart;
        }
    }
    // No new connection or request from here; the topology then drains in order (its one
    // owner of stopping, `topology::Shutdown`). A tag mid-upload gets no ack and re-sends.
    http.abort();
    ingest_task.abort();
    if let Some(task) = tracker_task {
        task.abort();
    }
    if let Some(task) = osmand_task {
        task.abort();
    }
    let drained = started.shutdown.run(STOP_WITHIN).await;
    // An orderly stop gives this node's partitions up at once; a restart keeps its membership.
    if let (Some(share), Stopped::Done) = (share, *stopped) {
        share.leave().await;
    }
    // Whoever started the server may no longer be reading its stdout: not an error.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::json!({ "event": "stopped", "stages": &drained, "restart": *stopped == Stopped::Restart })
    );
    if !drained.timed_out.is_empty() {
        bail!(
            "stopped without draining {:?} within {} s: the next start recovers their work from \
             the log",
            drained.timed_out,
            STOP_WITHIN.as_secs()
        );
    }
    Ok(None)
}

/// The retention job purging this node's stores for a purge record from the stream.
struct FollowPurges(Arc<Purger>);

impl crate::topology::purge_follow::PurgeFollower for FollowPurges {
    fn follow(&self, record: u64, control: &crate::model::ControlRecord) -> Result<(), String> {
        self.0
            .apply_purge_record(record, control)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The retention job over the live snapshot follower's scratch stores: they follow the
/// stream's purge records as a node's stores do (`topology::snapshot_follower`).
struct ScratchRetention(crate::config::RetentionConfig);

impl crate::topology::snapshot_follower::ScratchPurges for ScratchRetention {
    fn follower(
        &self,
        stores: crate::topology::snapshot_follower::ScratchStores,
    ) -> Result<Arc<dyn crate::topology::purge_follow::PurgeFollower>> {
        let purger = Purger::new(
            self.0,
            stores.data_dir,
            stores.metadata,
            stores.alert_store,
            stores.trails,
            Arc::new(NoLog),
            None,
            None,
        )
        .with_target(Arc::new(stores.crimes));
        Ok(Arc::new(FollowPurges(Arc::new(purger))))
    }
}

/// The scratch stores have no log of their own: following a purge record never writes one.
struct NoLog;

impl NoLog {
    fn refused() -> crate::log::LogError {
        crate::log::LogError::Io {
            op: "using the log of",
            path: "the snapshot follower's scratch stores".into(),
            source: Arc::new(std::io::Error::other(
                "they have none (they follow the stream)",
            )),
        }
    }
}

impl crate::retention::purge::PurgeLog for NoLog {
    fn compact(
        &self,
        _log_dir: &std::path::Path,
        _windows: &crate::log::TagWindows,
    ) -> Result<crate::log::CompactReport, crate::log::LogError> {
        Err(Self::refused())
    }

    fn append_control(
        &self,
        _control: crate::model::ControlRecord,
    ) -> Result<u64, crate::log::LogError> {
        Err(Self::refused())
    }

    fn for_each_batch(
        &self,
        _log_dir: &std::path::Path,
        _each: &mut dyn FnMut(&crate::model::Batch) -> std::ops::ControlFlow<()>,
    ) -> Result<(), crate::log::LogError> {
        Err(Self::refused())
    }
}

/// Tries the purge records whose following failed again, every minute.
/// The console's tile archive, for documents' maps too (its own connections). An archive that
/// does not open was already reported by the console; documents then say they have no streets.
fn document_tiles(
    console: &crate::config::ConsoleConfig,
) -> Option<Arc<dyn crate::documents::map_figure::TileSource>> {
    match crate::console::tiles::open_configured(console) {
        Ok(Some(archive)) => Some(Arc::new(archive)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "documents' maps will have no streets");
            None
        }
    }
}

fn spawn_purge_retries(purges: crate::topology::purge_follow::PurgeRecords) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            if purges.waiting() > 0 {
                let purges = purges.clone();
                let _ = tokio::task::spawn_blocking(move || purges.retry()).await;
            }
        }
    });
}

/// How long an orderly stop waits for the stages to drain.
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
