//! `tagstream serve`: wires the stages together.
//!
//! Start-up order matters for "nothing acked is lost": the log is recovered first (torn tail
//! truncated), every stored batch is replayed through the pipeline to rebuild alerts, and only
//! then are tags let in. From then on the group committer is the single writer; it hands
//! committed batches, in log order, to the pipeline.

use crate::api::auth::BootstrapToken;
use crate::api::routes::Counters;
use crate::api::{router, ApiState};
use crate::config::ServerConfig;
use crate::crime::service::HitService;
use crate::formats::orders_file::parse_orders;
use crate::ingest::limits::optional_ms;
use crate::ingest::{
    run_listener, EffectiveLimits, HttpListener, IngestContext, IngestTransport, TagCredentials,
};
use crate::log::{DedupState, GroupCommitter, LogConfig, LogReader, LogWriter};
use crate::model::{Change, LogEntry};
use crate::orders::OrderBook;
use crate::pipeline::driver::{InlineDriver, OutputBatch};
use crate::pipeline::{shared_directory, SharedDirectory, VecSink};
use crate::retention::Purger;
use crate::rules::StandardRules;
use crate::store::alert_store::AlertStore;
use crate::store::crime_store::CrimeStore;
use crate::store::metadata::Metadata;
use crate::store::tac_book::TacBook;
use crate::store::trails::{catch_up, group_positions, FeedCursor, TrailStore};
use crate::store::LiveAlerts;
use crate::topology::control_gate::ControlGate;
use crate::topology::decision_view::DecisionView;
use crate::topology::rebuild::{carry_numbering, set_aside, SetAside};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

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

/// The changes the start-up import writes to the log as control records: first what a metadata
/// database written before control records existed holds and the log lacks (a one-time
/// migration), then what `--orders` says that differs. Importing the same file again writes
/// nothing.
fn startup_import(
    config: &ServerConfig,
    metadata: &Metadata,
    book: &OrderBook,
) -> Result<Vec<(String, Change)>> {
    let mut changes = Vec::new();
    // A purge the log does not hold yet (a run stopped between its metadata transaction and
    // its log record, or a purge made before purges were log records).
    let purged = metadata
        .purged_records()
        .context("reading which records retention purged")?;
    let is_purged = |kind: &str, id: &str| purged.contains(&(kind.to_string(), id.to_string()));
    let activations: Vec<String> = book
        .activations()
        .filter(|a| is_purged("activation", &a.id))
        .map(|a| a.id.clone())
        .collect();
    let people: Vec<String> = book
        .people()
        .filter(|p| is_purged("person", &p.id))
        .map(|p| p.id.clone())
        .collect();
    if !activations.is_empty() || !people.is_empty() {
        changes.push((
            "retention".to_string(),
            Change::Purge {
                activations,
                people,
            },
        ));
    }
    let legacy = metadata
        .orders_document()
        .context("reading people, activations and orders from the metadata database")?;
    for change in crate::orders::import::changes_for(book, &legacy) {
        changes.push(("migration".to_string(), change));
    }
    if let Some(source) = &config.orders {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("reading orders {}", source.display()))?;
        let load = parse_orders(&text).with_context(|| format!("orders {}", source.display()))?;
        for e in &load.errors {
            tracing::warn!("{}: {e} (record skipped)", source.display());
        }
        // What the migration changes already count as in the book for the file's diff.
        let mut after = book.clone();
        for (i, (_, change)) in changes.iter().enumerate() {
            let record = crate::model::ControlRecord {
                recorded: 0,
                actor: String::new(),
                effective: None,
                change: change.clone(),
            };
            let _ = after.apply(i as u64, &record);
        }
        let purged = metadata
            .purged_records()
            .context("reading which records retention purged")?;
        let actor = format!("import:{}", source.display());
        for change in crate::orders::import::changes_for(&after, &load.accepted) {
            if let Some(name) = purged_name(&change, &purged) {
                tracing::warn!(
                    "{}: {name} was purged by retention (record skipped)",
                    source.display()
                );
                continue;
            }
            changes.push((actor.clone(), change));
        }
    }
    Ok(changes)
}

/// `activation A1` when a change would bring back a record (or a record of a person) that
/// retention purged.
fn purged_name(
    change: &Change,
    purged: &std::collections::HashSet<(String, String)>,
) -> Option<String> {
    let is = |kind: &str, id: &str| purged.contains(&(kind.to_string(), id.to_string()));
    let (kind, id, person) = match change {
        Change::PutPerson { person } => ("person", person.id.as_str(), person.id.as_str()),
        Change::PutActivation { activation } => (
            "activation",
            activation.id.as_str(),
            activation.person.as_str(),
        ),
        Change::PutOrder { order } => ("order", order.id.as_str(), order.person.as_str()),
        Change::EndActivation { .. }
        | Change::Purge { .. }
        | Change::Redacted { .. }
        | Change::AlertAction { .. }
        | Change::HitReview { .. }
        | Change::PutUser { .. }
        | Change::DisableUser { .. }
        | Change::CrimeBatch { .. } => return None,
    };
    (is(kind, id) || is("person", person)).then(|| format!("{kind} {id}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the server until Ctrl-C or SIGTERM.
/// `tagstream serve`.
pub async fn run(config: ServerConfig) -> Result<()> {
    run_as(config, Mode::Serve).await.map(drop)
}

/// `tagstream rebuild` (server stopped): sets the log's views aside and builds them again with
/// the start-up below, then stops before letting anyone in. Returns where the old stores went.
pub async fn rebuild(config: ServerConfig) -> Result<SetAside> {
    run_as(config, Mode::Rebuild)
        .await?
        .context("the rebuild stopped before the stores were set aside")
}

/// Whether [`run_as`] serves, or stops once the stores are built from the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Rebuild,
}

async fn run_as(config: ServerConfig, mode: Mode) -> Result<Option<SetAside>> {
    // Owner-only data directory, files and umask before anything is written.
    crate::data_dir::secure_data_dir(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let _lock = crate::data_lock::lock_data_dir(&config.data_dir)?;
    let aside = match mode {
        Mode::Serve => None,
        Mode::Rebuild => Some(
            set_aside(&config.data_dir, now_ms())
                .context("setting the stores aside for the rebuild")?,
        ),
    };
    let tag_key = load_tag_key(&config.data_dir, true)?;
    let admin_token = load_or_create_secret(ADMIN_TOKEN_ENV, &config.data_dir.join("admin.token"))?;
    // TLS files are read before anything slow, so a bad path fails the start at once.
    let ingest_transport = match &config.ingest.tls {
        None => IngestTransport::plain(),
        Some(tls) => IngestTransport::tls(tls).context("setting up TLS on the tag port")?,
    };
    let http_tls = match &config.http.tls {
        None => None,
        Some(tls) => Some((
            crate::tls::http_acceptor(tls).context("setting up HTTPS on the API")?,
            std::time::Duration::from_millis(tls.handshake_timeout_ms),
        )),
    };
    let metadata = Metadata::open(&config.data_dir).context("opening the metadata database")?;
    let credentials = TagCredentials::load(tag_key, metadata.clone())
        .context("loading tag credentials from the metadata database")?;
    let log_dir = config.data_dir.join("log");
    let (writer, recovery) = LogWriter::open(
        &log_dir,
        LogConfig {
            segment_max_bytes: config.segment_bytes,
            ..LogConfig::default()
        },
    )
    .with_context(|| format!("opening the durable log in {}", log_dir.display()))?;
    tracing::info!(?recovery, "log recovered");
    let next_log_record = writer.next_record();

    // Rebuild alerts, people, activations and orders from every stored record before any new
    // record can arrive: the log is replayed through the partitions inline, into the book only;
    // then whatever differs from the alert store is published, and the partitions go live with
    // their state. Latency is measured only for batches that arrive from now on.
    let alert_store = AlertStore::open(&config.data_dir).context("opening the alert store")?;
    match &aside {
        Some(aside) => carry_numbering(&alert_store, aside)
            .context("carrying alert event numbers into the rebuilt store")?,
        None => {
            crate::delivery::webhooks::spawn_webhooks(alert_store.clone(), &config.webhooks);
        }
    }
    let alerts = Arc::new(
        LiveAlerts::new(alert_store.clone(), now_ms()).context("opening the live alert book")?,
    );
    let (outputs_tx, outputs_rx) = mpsc::channel::<OutputBatch>(256);
    let tac = Arc::new(TacBook::default());
    let crime_store = CrimeStore::open(&config.data_dir).context("opening the crime store")?;
    // Only the crime batches the crime store lacks are kept from the replay (they are large).
    let batches_from = crime_store
        .crimes_applied_below()
        .context("reading the crime store's mark")?;
    let (driver, recovered, mut history) = {
        let (log_dir, tac, alerts) = (log_dir.clone(), tac.clone(), alerts.clone());
        let (pipeline, partitions, rules) =
            (config.pipeline, config.partitions, config.rules.clone());
        let history = ChangeHistory {
            crime_batches_from: batches_from,
            ..ChangeHistory::default()
        };
        tokio::task::spawn_blocking(move || {
            replay_log_into(
                &log_dir, &tac, pipeline, rules, partitions, &alerts, history,
            )
        })
        .await
        .context("log replay task")??
    };
    alerts.finish_recovery();
    let store_records = std::mem::take(&mut history.store_records);
    history
        .write(&metadata)
        .context("rebuilding the change history from the log")?;
    catch_up_users(&metadata, &store_records).context("applying users from the log")?;
    let book = driver.book().clone();
    let directory = shared_directory((**driver.directory()).clone());
    let mut import = startup_import(&config, &metadata, &book)?;
    import.extend(legacy_users(&metadata, &store_records)?);
    // The metadata view of people, activations and orders follows the log.
    metadata
        .import_orders(&book.document())
        .context("bringing the metadata database's people, activations and orders up to the log")?;

    // The trail store catches up on the log records after its checkpoint.
    let trail_dir = config.data_dir.join("trails");
    let (trails, trail_checkpoint) = TrailStore::open(&trail_dir, config.trails)
        .with_context(|| format!("opening the trail store in {}", trail_dir.display()))?;
    {
        let (trails, directory, log_dir) = (trails.clone(), directory.load_full(), log_dir.clone());
        tokio::task::spawn_blocking(move || {
            catch_up(&trails, &directory, &log_dir, trail_checkpoint)
        })
        .await
        .context("trail catch-up task")?
        .context("bringing the trail store up to date with the log")?;
    }
    // Hits: every stored crime is matched against the trails before live matching starts.
    // Crime batches are control records: those the crime store has not taken yet are stored
    // first, so the start-up match below sees every batch the log holds.
    let decisions = DecisionView::new(alerts.clone(), crime_store.clone());
    let batches_caught_up = {
        let (view, records) = (decisions.clone(), store_records.clone());
        tokio::task::spawn_blocking(move || {
            view.catch_up_crime_batches(records.iter().map(|(r, c)| (*r, c.as_ref())))
        })
        .await
        .context("crime batch catch-up task")?
        .context("storing crime batches from the log")?
    };
    tracing::info!(?batches_caught_up, "crime batches caught up from the log");
    let (hit_service, startup_match) = {
        let (store, trails, directory) =
            (crime_store.clone(), trails.clone(), directory.load_full());
        let hits_config = config.rules.hits;
        tokio::task::spawn_blocking(move || {
            HitService::start(hits_config, store, trails, directory)
        })
        .await
        .context("hit matcher start-up task")?
        .context("starting the hit matcher")?
    };
    tracing::info!(?startup_match, "crimes matched against stored trails");
    // The hub's decisions the alert and hit stores have not taken yet (a crash between a
    // decision's log append and its store write, or stores rebuilt from nothing).
    let caught_up = {
        let (view, history) = (decisions.clone(), store_records.clone());
        tokio::task::spawn_blocking(move || {
            view.catch_up(history.iter().map(|(r, c)| (*r, c.as_ref())))
        })
        .await
        .context("decision catch-up task")?
        .context("applying the hub's decisions from the log")?
    };
    tracing::info!(?caught_up, "hub decisions caught up from the log");
    if let Some(aside) = aside {
        if !import.is_empty() {
            bail!(
                "{} change(s) to write to the log first (a migration, a purge to record); the old \
                 stores are in {}: start the server once, which writes them and finishes the rebuild",
                import.len(),
                aside.backup_dir.display()
            );
        }
        let (alerts, trails) = (alerts.clone(), trails.clone());
        tokio::task::spawn_blocking(move || {
            alerts.sync_store_blocking();
            trails.flush(next_log_record)
        })
        .await
        .context("storing the rebuilt alerts and trails")?
        .context("sealing the rebuilt trail store")?;
        return Ok(Some(aside));
    }
    let trail_feed = spawn_trail_feed(
        trails.clone(),
        directory.clone(),
        next_log_record,
        hit_service.clone(),
    );
    let system = Arc::new(crate::metrics::silence_watch::SystemHealth::new(
        config.watchdog,
        now_ms(),
        book.activations().next().is_some() || recovered.0 > 0,
        driver.gauges(),
    ));
    system.spawn(now_ms);
    let driver = driver.into_live(outputs_tx);
    // Pipeline outputs are numbered and published on their own thread (see LiveAlerts).
    let alerts_task = alerts.clone();
    std::thread::Builder::new()
        .name("alert-book".into())
        .spawn(move || alerts_task.run_blocking(outputs_rx))
        .context("starting the alert book thread")?;
    let marker = recovered;

    let counters = Arc::new(Counters::default());
    counters
        .committed_batches
        .store(marker.0, Ordering::Relaxed);
    counters
        .committed_readings
        .store(marker.1, Ordering::Relaxed);
    counters
        .log_damaged_ranges
        .store(recovery.damage.len() as u64, Ordering::Relaxed);
    counters
        .log_records_lost
        .store(recovery.records_lost, Ordering::Relaxed);
    let (committed_tx, mut committed_rx) = mpsc::channel::<Vec<LogEntry>>(64);
    let commit = GroupCommitter::spawn(writer, DedupState::from(&recovery), committed_tx)
        .context("starting the group committer")?;
    let gate = Arc::new(ControlGate::new(commit.clone(), next_log_record));
    let forward_counters = counters.clone();
    let (forward_tac, forward_directory) = (tac.clone(), directory.clone());
    let pipeline_input = driver.input.clone();
    let forward_system = system.clone();
    let mut applier = crate::topology::control_view::ControlApplier::new(
        book,
        metadata.clone(),
        decisions,
        directory.clone(),
        gate.clone(),
    )
    .context("starting the metadata view thread")?;
    let forward_hits = hit_service.clone();
    tokio::spawn(async move {
        while let Some(group) = committed_rx.recv().await {
            let batches = group.iter().filter_map(LogEntry::batch);
            let (count, readings) = batches.fold((0u64, 0u64), |(n, r), b| {
                (n + 1, r + b.readings.len() as u64)
            });
            if count > 0 {
                forward_system.batches_committed(now_ms());
            }
            forward_counters
                .committed_batches
                .fetch_add(count, Ordering::Relaxed);
            forward_counters
                .committed_readings
                .fetch_add(readings, Ordering::Relaxed);
            for entry in &group {
                match entry {
                    LogEntry::Batch(batch) => {
                        applier.publish_directory();
                        forward_tac.apply(&forward_directory.load(), batch)
                    }
                    LogEntry::Control { record, control } => {
                        let applied =
                            tokio::task::block_in_place(|| applier.apply(*record, control));
                        forward_hits.control(*record, &control.change, applied);
                    }
                }
            }
            applier.publish_directory();
            // Bounded: a trail store that falls behind slows ingest instead of growing memory.
            match trail_feed.try_send(group.clone()) {
                Ok(()) | Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {}
                Err(std::sync::mpsc::TrySendError::Full(group)) => {
                    let _ = tokio::task::block_in_place(|| trail_feed.send(group));
                }
            }
            if pipeline_input.send(group).await.is_err() {
                break;
            }
        }
    });

    let limits = EffectiveLimits::for_this_process(&config.ingest, &config.http);
    tracing::info!(?limits, "connection limits");
    let ingest = Arc::new(IngestContext::new(
        commit,
        credentials,
        ingest_transport,
        config.max_frame_bytes,
        &config.ingest,
        limits,
    ));
    // The start-up import goes through the log like any change, before anyone is let in; in
    // chunks submitted together, so the group committer makes each chunk durable at once (a
    // large migration is one fsync per chunk, not per record). Within a chunk the committer
    // keeps submission order, and people come before their activations and orders.
    for chunk in import.chunks(4096) {
        let submitted = chunk.iter().map(|(actor, change)| {
            let gate = gate.clone();
            async move {
                let subject = change.subject();
                if let Err(e) = gate.submit(actor, None, change.clone()).await {
                    tracing::warn!("{actor}: {subject} not imported: {e}");
                }
            }
        });
        futures::future::join_all(submitted).await;
    }

    let ingest_listener = TcpListener::bind(config.ingest_addr)
        .await
        .with_context(|| format!("binding ingest address {}", config.ingest_addr))?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP address {}", config.http_addr))?;
    let ingest_addr = ingest_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    // Survives accept errors, bounds open HTTP connections and closes idle ones.
    let http_listener = HttpListener::new(
        http_listener,
        limits.http_max_connections,
        optional_ms(config.http.idle_timeout_ms),
    );
    let _ = ingest
        .http_listener
        .set((http_listener.stats(), http_listener.gauge()));

    let purger = Arc::new(
        Purger::new(
            config.retention,
            config.data_dir.clone(),
            metadata.clone(),
            alert_store,
            trails.clone(),
            Arc::new(ingest.commit.clone()),
            Some(alerts.clone()),
            Some(tac.clone()),
        )
        .with_target(Arc::new(crime_store.clone())),
    );
    spawn_retention_schedule(purger.clone());
    let state = ApiState {
        metadata,
        bootstrap: BootstrapToken::new(&admin_token),
        alerts: alerts.clone(),
        counters,
        ingest: ingest.clone(),
        trails,
        trail_api: config.trail_api,
        tac,
        crimes: crime_store,
        hits: hit_service,
        hits_config: config.rules.hits,
        crime_api: config.crime_api,
        directory: directory.clone(),
        control: gate.clone(),
        retention: purger,
        system,
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

    // One machine-readable line so scripts and tests can find the ports.
    println!(
        "{}",
        serde_json::json!({
            "event": "listening",
            "ingest_addr": ingest_addr.to_string(),
            "http_addr": http_addr.to_string(),
            "http_scheme": http_scheme,
            "ingest_tls": ingest_tls,
            "data_dir": config.data_dir.display().to_string(),
            "admin_token_file": config.data_dir.join("admin.token").display().to_string(),
            "recovered_batches": marker.0,
        })
    );

    tokio::select! {
        r = http => bail!("HTTP server stopped: {r:?}"),
        r = ingest_task => bail!("ingest listener stopped: {r:?}"),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(None)
        }
    }
}

/// Runs the purge a minute after start, then every `run_every_hours` (0: never).
fn spawn_retention_schedule(purger: Arc<Purger>) {
    let hours = purger.config.run_every_hours;
    if hours == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(60);
        loop {
            tokio::time::sleep(wait).await;
            wait = std::time::Duration::from_secs(u64::from(hours) * 3600);
            let job = purger.clone();
            match tokio::task::spawn_blocking(move || job.run(now_ms(), "schedule")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "scheduled retention purge stopped; the next run repeats it")
                }
                Err(e) => tracing::error!(error = %e, "scheduled retention purge task failed"),
            }
        }
    });
}

/// The trail feed: a thread that appends every committed batch's positions to the trail store in
/// log order and checkpoints it every few seconds (so a restart replays only a little log). Its
/// queue is bounded ([`TRAIL_FEED_GROUPS`]): when the store falls behind for longer than a
/// checkpoint takes, the forwarder waits, which holds the committer and so slows ingest.
/// Committed groups the trail feed may have waiting: seconds of load at 0.5 M readings/s, so a
/// checkpoint's `fsync` does not reach back into the pipeline, yet memory stays bounded.
const TRAIL_FEED_GROUPS: usize = 4096;

fn spawn_trail_feed(
    trails: TrailStore,
    directory: SharedDirectory,
    next_record: u64,
    hits: HitService,
) -> std::sync::mpsc::SyncSender<Vec<LogEntry>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<LogEntry>>(TRAIL_FEED_GROUPS);
    let spawned = std::thread::Builder::new()
        .name("trail-feed".into())
        .spawn(move || {
            let mut last_checkpoint = std::time::Instant::now();
            let mut cursor = FeedCursor::new(next_record);
            loop {
                match rx.recv_timeout(std::time::Duration::from_secs(2)) {
                    Ok(group) => {
                        let mut appended = Vec::new();
                        let directory = directory.load();
                        for entry in &group {
                            // A control record holds no positions; it still takes a record number.
                            let groups = match entry {
                                LogEntry::Batch(batch) => group_positions(&directory, batch),
                                LogEntry::Control { .. } => Vec::new(),
                            };
                            // A failure holds the checkpoint back to this record (see
                            // `FeedCursor`), so the next start re-applies it from the log.
                            if let Err(e) = cursor.apply(&trails, &groups) {
                                tracing::error!(error = %e, record = cursor.last_record(),
                                "trail store append failed; the checkpoint stays before it");
                            }
                            appended.extend(groups);
                        }
                        // Live crime matching reads the positions back from the store: after the append.
                        hits.positions(appended);
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if last_checkpoint.elapsed() >= std::time::Duration::from_secs(2) {
                    if let Err(e) = trails.checkpoint(cursor.checkpoint_record()) {
                        tracing::error!(error = %e, "trail store checkpoint failed");
                    }
                    last_checkpoint = std::time::Instant::now();
                }
            }
            if let Err(e) = trails.flush(cursor.checkpoint_record()) {
                tracing::error!(error = %e, "trail store flush at shutdown failed");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the trail feed");
    }
    tx
}

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

/// Feeds every record stored in the log, in log order, through partitions on this thread (control
/// records rebuild people, activations and orders as they go), their outputs into the alert book
/// as recovered (not published). Returns the partitions (to go live) and (batches, readings)
/// replayed.
fn replay_log_into(
    log_dir: &Path,
    tac: &TacBook,
    pipeline: crate::pipeline::PipelineConfig,
    rules: crate::rules::RulesConfig,
    partitions: usize,
    alerts: &LiveAlerts,
    mut history: ChangeHistory,
) -> Result<(InlineDriver, (u64, u64), ChangeHistory)> {
    let mut sink = VecSink::default();
    let factory = Box::new(StandardRules::empty(pipeline, rules));
    let mut driver = InlineDriver::from_book(
        OrderBook::default(),
        pipeline,
        factory,
        partitions,
        &mut sink,
    );
    let reader =
        LogReader::open(log_dir).with_context(|| format!("reading log {}", log_dir.display()))?;
    let (mut batches, mut readings) = (0u64, 0u64);
    for item in reader {
        let (_, entry) = item.context("reading a stored record")?;
        if let LogEntry::Batch(batch) = &entry {
            batches += 1;
            readings += batch.readings.len() as u64;
        }
        if let LogEntry::Control { record, control } = &entry {
            history.note(*record, control);
        }
        driver.feed_entry(&entry, &mut sink);
        if let LogEntry::Batch(batch) = &entry {
            tac.apply(driver.directory(), batch);
        }
        if sink.outputs.len() >= 4096 {
            alerts.apply_recovered(std::mem::take(&mut sink.outputs));
        }
    }
    alerts.apply_recovered(sink.outputs);
    Ok((driver, (batches, readings), history))
}

/// Applies the user records from the users table's mark on (a crash between a user record's log
/// append and the table write, or a table rebuilt from nothing). A refused one is refused the
/// same way it was live.
fn catch_up_users(
    metadata: &Metadata,
    records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<()> {
    let below = metadata.users_applied_below()?;
    for (record, control) in records {
        if *record >= below && control.change.is_user() {
            if let Err(reason) = metadata.apply_user_record(*record, control)? {
                tracing::debug!(record, %reason, "user record refused at catch-up");
            }
        }
    }
    Ok(())
}

/// Users a metadata database written before users were log records holds and the log lacks:
/// written to the log once (the same digest again is accepted and changes nothing).
fn legacy_users(
    metadata: &Metadata,
    records: &[(u64, Arc<crate::model::ControlRecord>)],
) -> Result<Vec<(String, Change)>> {
    let in_log: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|(_, c)| match &c.change {
            Change::PutUser { user } => Some(user.name.as_str()),
            _ => None,
        })
        .collect();
    let mut changes = Vec::new();
    for (account, disabled) in metadata.user_accounts()? {
        if in_log.contains(account.name.as_str()) {
            continue;
        }
        let name = account.name.clone();
        changes.push(("migration".to_string(), Change::PutUser { user: account }));
        if disabled {
            changes.push(("migration".to_string(), Change::DisableUser { name }));
        }
    }
    Ok(changes)
}

/// A control record's number, the record, whose records it changes, and why it was refused.
type NotedChange = (
    u64,
    Arc<crate::model::ControlRecord>,
    Option<String>,
    Option<String>,
);

/// The control records met while replaying the log, with whose records each changes and whether
/// the record book refused it: the change history view is rebuilt from them at start. The hub's
/// decisions and the users are kept apart, for their stores to catch up on.
#[derive(Default)]
struct ChangeHistory {
    /// The same book the pipeline builds, to tell what each record changes and its verdict.
    book: OrderBook,
    entries: Vec<NotedChange>,
    /// The hub's decisions, the user records and the crime batches from
    /// `crime_batches_from` on, for their stores to catch up on.
    store_records: Vec<(u64, Arc<crate::model::ControlRecord>)>,
    crime_batches_from: u64,
}

impl ChangeHistory {
    /// Notes record `record`.
    fn note(&mut self, record: u64, control: &Arc<crate::model::ControlRecord>) {
        if !control.change.reaches_rules() {
            let old_batch = matches!(control.change, Change::CrimeBatch { .. })
                && record < self.crime_batches_from;
            if !old_batch {
                self.store_records.push((record, control.clone()));
            }
            return;
        }
        let person = self.book.person_of(&control.change);
        let refused = self.book.apply(record, control).err();
        self.entries
            .push((record, control.clone(), person, refused));
    }

    /// Writes every noted change to the metadata view (records already there are kept), except
    /// those of people retention purged.
    fn write(self, metadata: &Metadata) -> Result<()> {
        let purged = metadata.purged_records()?;
        let kept: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, _, person, _)| {
                !person
                    .as_ref()
                    .is_some_and(|p| purged.contains(&("person".to_string(), p.clone())))
            })
            .map(|(record, control, person, refused)| {
                (
                    *record,
                    control.as_ref(),
                    person.as_deref(),
                    refused.as_deref(),
                )
            })
            .collect();
        for lot in kept.chunks(4096) {
            metadata.record_changes(lot)?;
        }
        Ok(())
    }
}
