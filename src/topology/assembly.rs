//! [`Topology`]: the one assembly of the stages that `tagstream serve` and `tagstream rebuild`
//! run. [`Topology::open`] takes the data directory (owner-only, locked) and, for a rebuild,
//! sets the log's views aside; [`Topology::start`] recovers the log, brings every view up to it
//! (replay into the alert book, change history, users, trails, crime batches, the start-up
//! match, the hub's decisions), then, when serving, starts the live stages in log order —
//! committer → forwarder → control applier, TAC index, trail feed, pipeline → alert book — and
//! writes the start-up import through the log. The caller gets the handles the API, the purge
//! job and the tag listener need ([`Started`]); sockets, TLS and HTTP are not the topology's
//! business.
//!
//! Start-up order matters for "nothing acked is lost": the log is recovered first (torn tail
//! truncated), every stored batch is replayed through the pipeline to rebuild alerts, and only
//! then does the committer start, so nothing new can arrive before the views are whole.

use super::checkpoint::{self, Cut, StoreMarks};
use super::control_gate::ControlGate;
use super::control_view::ControlApplier;
use super::decision_view::DecisionView;
use super::forwarder::{Counters, Forwarder};
use super::log_source::LogSource;
use super::outputs_link::{Ordinals, PublishedOutput};
use super::purge_follow::PurgeRecords;
use super::rebuild::{carry_numbering, set_aside, SetAside};
use super::shutdown::Shutdown;
use super::startup::{
    catch_up_users, legacy_tag_credentials, legacy_users, replay_log_into, resume_log_into,
    startup_import, ChangeHistory,
};
use super::trail_feed::spawn_trail_feed;
use crate::alerts::alert_store::AlertStore;
use crate::alerts::LiveAlerts;
use crate::config::ServerConfig;
use crate::crime::matcher::ActivationFilter;
use crate::crime::service::{HitFeed, HitService, HitSplit};
use crate::data_lock::DataDirLock;
use crate::delivery::webhooks::Delivery;
use crate::log::CommitHandle;
use crate::metrics::silence_watch::SystemHealth;
use crate::model::LogEntry;
use crate::pipeline::driver::OutputBatch;
use crate::pipeline::{shared_directory, Fanout, SharedDirectory};
use crate::store::crime_store::CrimeStore;
use crate::store::last_contact::{LastContactBook, LastContactFeed};
use crate::store::metadata::Metadata;
use crate::store::tac_book::TacBook;
use crate::store::trails::{TrailFeed, TrailStore};
use anyhow::{bail, Context, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Whether the topology serves, or stops once the stores are built from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// `tagstream rebuild`: the log's views set aside and built again, then stop.
    Rebuild,
    /// Cluster mode, the live snapshot follower (`snapshot_follower`): a scratch data
    /// directory brought up to the stream's end as a start-up would, its checkpoint written and
    /// packed, then stop (nothing goes live, nothing is written to the stream).
    Snapshot,
    /// The offline commands (`tagstream report …`): every view of a stopped server's data
    /// directory brought up to its log as a start-up would (after a hard stop the stores may
    /// lag the log), the node checkpoint written, then stop. Nothing goes live and nothing is
    /// written to the log.
    CatchUp,
}

/// The data directory taken (and, for a rebuild, its views set aside); not started yet.
pub struct Topology {
    mode: Mode,
    lock: DataDirLock,
    aside: Option<SetAside>,
    metadata: Metadata,
    /// [`Mode::Snapshot`]: what follows the stream's purge records in the scratch stores.
    scratch_purges: Option<Arc<dyn super::snapshot_follower::ScratchPurges>>,
}

/// What [`Topology::start`] ends with.
pub enum Start {
    /// Serving: the handles the tag listener and the API need.
    Serving(Box<Started>),
    /// The rebuild is done; where the old stores went.
    Rebuilt(SetAside),
    /// [`Mode::Snapshot`]: the scratch directory is at the stream's end.
    Packed(Packed),
    /// [`Mode::CatchUp`]: every view is at the log's end, this record (the next to come).
    CaughtUp(u64),
}

/// What a [`Mode::Snapshot`] start read and packed.
pub struct Packed {
    /// The record the start read from (its checkpoint's, or 0).
    pub from: u64,
    /// The stream's end when it was opened: every record before it was read.
    pub end: u64,
    /// The snapshot package at `end` (none when nothing was read: the checkpoint was there).
    pub package: Option<(u64, Vec<u8>)>,
    /// The records of every purge record the state holds (from its checkpoint and read now).
    pub purge_records: Vec<u64>,
}

/// The running topology's handles. [`Started::shutdown`] stops the stages in order; dropping
/// the handles does not (they would stop with the process); it does release the data
/// directory's lock.
pub struct Started {
    /// Stops the live stages in order (see [`Shutdown`]).
    pub shutdown: Shutdown,
    /// Held while serving: this process owns the stores.
    pub lock: DataDirLock,
    pub metadata: Metadata,
    pub alerts: Arc<LiveAlerts>,
    /// Where tags' batches are appended (the ingest listener's way into the log).
    pub commit: CommitHandle,
    pub counters: Arc<Counters>,
    pub trails: TrailStore,
    pub tac: Arc<TacBook>,
    /// Each activation's newest reading (its last contact).
    pub last_contact: Arc<LastContactBook>,
    pub crimes: CrimeStore,
    pub hits: HitService,
    pub directory: SharedDirectory,
    pub control: Arc<ControlGate>,
    /// The durable alert store behind `alerts` (for the purge job).
    pub alert_store: AlertStore,
    pub system: Arc<SystemHealth>,
    /// (batches, readings) the start-up replayed from the log.
    pub recovered: (u64, u64),
    /// Cluster mode: the purge records this node's stores are to follow, waiting for the
    /// retention job to be plugged in (`PurgeRecords::follow_with`).
    pub purges: Option<PurgeRecords>,
    /// Cluster mode: whether this node holds the `retention` lease now (it alone purges).
    pub retention_lease: Option<tokio::sync::watch::Receiver<bool>>,
    /// What a purge must also purge here (cluster mode: the stream's snapshot bucket).
    pub purge_targets: Vec<Arc<dyn crate::store::PurgeTarget>>,
    /// Cluster mode with `[snapshots] live_interval_s`: the live snapshot follower, to start
    /// with what follows purge records in its stores (`LiveSnapshots::spawn`).
    pub live_snapshots: Option<super::snapshot_follower::LiveSnapshots>,
}

impl Topology {
    /// Takes the data directory: owner-only permissions and umask before anything is written,
    /// the lock (one process owns the stores), the views set aside for a rebuild, and the
    /// metadata database opened (the tag listener's credentials are read from it).
    pub fn open(config: &ServerConfig, mode: Mode) -> Result<Self> {
        crate::data_dir::secure_data_dir(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let lock = crate::data_lock::lock_data_dir(&config.data_dir)?;
        let aside = match mode {
            Mode::Serve | Mode::Snapshot | Mode::CatchUp => None,
            Mode::Rebuild => Some(
                set_aside(&config.data_dir, now_ms(), config.jetstream())
                    .context("setting the stores aside for the rebuild")?,
            ),
        };
        let metadata = Metadata::open(&config.data_dir).context("opening the metadata database")?;
        Ok(Self {
            mode,
            lock,
            aside,
            metadata,
            scratch_purges: None,
        })
    }

    /// [`Mode::Snapshot`]: the stream's purge records are followed in the scratch stores
    /// before the checkpoint is written (as a node follows them in its own).
    pub fn with_scratch_purges(
        mut self,
        purges: Arc<dyn super::snapshot_follower::ScratchPurges>,
    ) -> Self {
        self.scratch_purges = Some(purges);
        self
    }

    /// The metadata database (tag credentials, users, the control-plane view).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Recovers the log, brings every view up to it, and (serving) starts the live stages.
    pub async fn start(self, config: &ServerConfig) -> Result<Start> {
        let Topology {
            mode,
            lock,
            aside,
            metadata,
            scratch_purges,
        } = self;
        debug_assert_eq!(mode == Mode::Rebuild, aside.is_some());
        let log = LogSource::open(config).await?;
        let next_log_record = log.next_record();
        // Cluster mode, a node owning some partitions: its rules run for those alone, and its
        // alert book is fed from the outputs stream (`outputs_link`).
        let owned = config
            .owned_partitions()
            .map_err(|e| anyhow::anyhow!("[log.jetstream] own_partitions: {e}"))?;
        if let Some(owned) = &owned {
            tracing::info!(partitions = %owned.describe(), "this node runs the rules of these partitions only");
        }

        // Rebuild alerts, people, activations and orders from every stored record before any
        // new record can arrive: the log is replayed through the partitions inline, into the
        // book only; then whatever differs from the alert store is published, and the
        // partitions go live with their state. Latency is measured only for batches that
        // arrive from now on.
        let alert_store = AlertStore::open(&config.data_dir).context("opening the alert store")?;
        match &aside {
            Some(aside) => carry_numbering(&alert_store, aside)
                .context("carrying alert event numbers into the rebuilt store")?,
            // A single node delivers webhooks from the start; a cluster node competes for the
            // lease once it has caught up with the stream (below).
            None if config.jetstream().is_none() && mode == Mode::Serve => {
                crate::delivery::webhooks::spawn_webhooks(
                    alert_store.clone(),
                    &config.webhooks,
                    Delivery::Always {
                        node: crate::cluster::lease::node_id(None),
                    },
                );
            }
            None => {}
        }
        let alerts = Arc::new(
            LiveAlerts::new(alert_store.clone(), now_ms())
                .context("opening the live alert book")?,
        );
        let (outputs_tx, outputs_rx) = mpsc::channel::<OutputBatch>(256);
        let tac = Arc::new(TacBook::default());
        let last_contact = Arc::new(LastContactBook::default());
        let crime_store = CrimeStore::open(&config.data_dir).context("opening the crime store")?;
        // Only the crime batches the crime store lacks are kept from the replay (they are large).
        let batches_from = crime_store
            .crimes_applied_below()
            .context("reading the crime store's mark")?;
        // The trail store is a view of the same replay: the positions the dispatcher files
        // under each activation are appended (those already stored are skipped), exactly as
        // live serving files them, then it is checkpointed at the log's end.
        let trail_dir = config.data_dir.join("trails");
        let (trails, trails_from) = TrailStore::open(&trail_dir, config.trails)
            .with_context(|| format!("opening the trail store in {}", trail_dir.display()))?;
        // Node checkpoints (see `checkpoint`): a rebuild sets the stores aside, so a checkpoint
        // taken over them is void. A node owning some partitions continues from one taken
        // where at least its partitions' rules ran (its own, a full node's, the cluster's
        // snapshot), with each activation's outputs counted so far.
        let checkpoints = config.snapshots.enabled && mode != Mode::Rebuild;
        if mode == Mode::Rebuild {
            crate::store::checkpoint_file::discard(&config.data_dir)
                .context("removing the node checkpoint before the rebuild")?;
        }
        let marks = match checkpoints {
            true => Some(
                StoreMarks::read(&metadata, &crime_store, &alert_store)
                    .context("reading the stores' marks for the node checkpoint")?,
            ),
            false => None,
        };
        let ((driver, recovered, mut history), log, cut, read_from, to_publish, ordinals) = {
            let runtime = tokio::runtime::Handle::current();
            let (tac, alerts, trails) = (tac.clone(), alerts.clone(), trails.clone());
            let last_contact = last_contact.clone();
            let config = config.clone();
            let owned = owned.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                // From the node checkpoint when one fits, else from the log's first record.
                let resume = marks.and_then(|marks| {
                    checkpoint::load(&checkpoint::Here {
                        config: &config,
                        log: &log,
                        next_log_record,
                        trails_from,
                        marks,
                        crime_batches_from: batches_from,
                        owned: owned.as_ref(),
                    })
                });
                let resumed = resume.is_some();
                let (driver, history, from, counted, mut ordinals) = match resume {
                    Some(mut resume) => {
                        match &owned {
                            // Its book follows the outputs stream; its rules run for its own
                            // partitions only.
                            Some(owned) => resume
                                .driver
                                .own_restored_partitions(owned.clone())
                                .map_err(|e| anyhow::anyhow!("{e}"))?,
                            None => alerts.restore_recovered(resume.alerts),
                        }
                        tac.restore(resume.tac);
                        last_contact.restore(resume.last_contact);
                        log.seed_positions(resume.positions);
                        tracing::info!(record = resume.record, "starting from the node checkpoint");
                        let from = resume.record;
                        (
                            Some(resume.driver),
                            resume.history,
                            from,
                            resume.counted,
                            resume.ordinals,
                        )
                    }
                    None => (
                        None,
                        ChangeHistory::new(batches_from),
                        0,
                        (0, 0),
                        Ordinals::default(),
                    ),
                };
                // On this blocking thread: a stream is read through the runtime's handle.
                let read = std::cell::Cell::new(0u64);
                let records = log
                    .stored_records_from(runtime, from)?
                    .inspect(|_| read.set(read.get() + 1));
                let mut feed = TrailFeed::new(trails, from, None);
                let mut stores = Fanout::new()
                    .with(tac.clone())
                    .with(LastContactFeed::new(last_contact.clone()))
                    .with(&mut feed);
                // The rules' outputs: into the book as recovered, or (a node owning some
                // partitions) numbered and kept to be published; counted either way.
                let publishing = owned.is_some();
                let mut to_publish: Vec<PublishedOutput> = Vec::new();
                let mut rules_out = |batch: OutputBatch| match publishing {
                    true => to_publish.extend(ordinals.number(batch)),
                    false => {
                        ordinals.count(&batch);
                        alerts.apply_recovered(batch)
                    }
                };
                let replayed = match driver {
                    Some(driver) => resume_log_into(
                        driver,
                        records,
                        &mut stores,
                        &mut rules_out,
                        history,
                        counted,
                    )?,
                    None => replay_log_into(
                        records,
                        &mut stores,
                        config.pipeline,
                        config.rules.clone(),
                        config.partitions,
                        owned.clone(),
                        &mut rules_out,
                        history,
                    )?,
                };
                drop(stores);
                // (The snapshot follower's reads are its own, not this process's start-up.)
                if mode == Mode::Serve {
                    checkpoint::note_startup((from > 0).then_some(from), read.get());
                }
                tracing::info!(from, records = read.get(), "start-up replay done");
                feed.checkpoint_through(next_log_record)
                    .context("checkpointing the trail store at the log's end")?;
                // The cut: the pipeline is inline and every piece is as of the log's end. A
                // checkpoint restored at the log's end is that cut already (nothing was read).
                let cut = match checkpoints && !(resumed && from == next_log_record) {
                    true => {
                        let (driver, counted, history) = &replayed;
                        let cut = Cut::take(
                            &config,
                            next_log_record,
                            driver,
                            &alerts,
                            &tac,
                            &last_contact,
                            history,
                            *counted,
                            &log,
                            &ordinals,
                            owned.as_ref(),
                        );
                        cut.inspect_err(|e| {
                            tracing::error!(error = %e, "cannot take the node checkpoint; the next start replays the whole log")
                        })
                        .ok()
                    }
                    false => None,
                };
                Ok((replayed, log, cut, from, to_publish, ordinals))
            })
            .await
            .context("log replay task")??
        };
        // A node owning some partitions: the book is what every node published, this node's
        // start-up outputs published past what the stream holds and read back.
        let outputs_link = match (&owned, log.stream()) {
            (Some(_), Some(stream)) => {
                use super::outputs_link::{publish_startup, recover, Applied};
                let out =
                    crate::cluster::outputs::OutputsStream::open(stream.context(), stream.config())
                        .await
                        .context("opening the cluster's outputs stream")?;
                let mut applied = Applied::default();
                recover(&out, &alerts, &mut applied)
                    .await
                    .context("reading the outputs stream into the alert book")?;
                let published = publish_startup(&out, to_publish, &applied)
                    .await
                    .context("publishing the start-up's rule outputs")?;
                recover(&out, &alerts, &mut applied)
                    .await
                    .context("reading the outputs stream into the alert book")?;
                tracing::info!(
                    published,
                    applied = applied.applied,
                    next_sequence = applied.next_sequence,
                    "outputs stream caught up"
                );
                Some((out, applied, ordinals))
            }
            _ => None,
        };
        alerts.finish_recovery();
        let store_records = history.take_store_records();
        // Cluster mode: every purge record in the log, for this node's stores to follow (a node
        // that was down when another ran the purge still holds what it names).
        let purge_records = history.take_purge_records();
        let purges = config.jetstream().map(|_| PurgeRecords::default());
        if let Some(purges) = &purges {
            for (record, control) in &purge_records {
                purges.applied(*record, control.clone());
            }
        }
        history
            .write(&metadata)
            .context("rebuilding the change history from the log")?;
        catch_up_users(&metadata, &store_records).context("applying users from the log")?;
        let book = driver.book().clone();
        let directory = shared_directory((**driver.directory()).clone());
        let mut import = startup_import(config, &metadata, &book, &purge_records)?;
        import.extend(legacy_users(&metadata, &store_records)?);
        import.extend(legacy_tag_credentials(&metadata, &store_records)?);
        // The metadata view of people, activations and orders follows the log.
        metadata.import_orders(&book.document()).context(
            "bringing the metadata database's people, activations and orders up to the log",
        )?;

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
        // A node owning some partitions matches its own activations' hits only and publishes
        // them; the others' come from the outputs stream, as it last gave them, stored first.
        let hit_split = match (&outputs_link, &owned) {
            (Some((_, applied, _)), Some(owned)) => {
                let store = crime_store.clone();
                let standings: Vec<_> = applied.hits.values().cloned().collect();
                tokio::task::spawn_blocking(move || -> Result<()> {
                    for standing in &standings {
                        store.put_hit_standing(standing).with_context(|| {
                            format!("storing hit {} from the outputs stream", standing.hit.id)
                        })?;
                    }
                    Ok(())
                })
                .await
                .context("outputs stream hits task")??;
                let (owned, shared) = (owned.clone(), directory.clone());
                let owns: ActivationFilter = Arc::new(move |activation: &str| {
                    shared
                        .load()
                        .get(activation)
                        .is_some_and(|a| owned.holds_tag(&a.tag))
                });
                let (publish, standings) = tokio::sync::mpsc::unbounded_channel();
                Some((HitSplit { owns, publish }, standings))
            }
            _ => None,
        };
        let (hit_split, hit_standings) = hit_split.unzip();
        let hit_owns = hit_split.as_ref().map(|split| split.owns.clone());
        let (hit_service, startup_match) = {
            let (store, trails, directory) =
                (crime_store.clone(), trails.clone(), directory.load_full());
            let hits_config = config.rules.hits;
            tokio::task::spawn_blocking(move || {
                HitService::start(hits_config, store, trails, directory, hit_split)
            })
            .await
            .context("hit matcher start-up task")?
            .context("starting the hit matcher")?
        };
        tracing::info!(?startup_match, "crimes matched against stored trails");
        // Then this node's hits that the stream does not hold as they stand are published (the
        // start-up match's changes, or a change made just before a crash), before live ones.
        let hit_count = match (&outputs_link, &hit_owns) {
            (Some((out, applied, _)), Some(owns)) => {
                let store = crime_store.clone();
                let owns = owns.clone();
                let own = tokio::task::spawn_blocking(move || {
                    store.hits(&Default::default()).map(|hits| {
                        hits.into_iter()
                            .filter(|h| owns(&h.hit.activation))
                            .map(|h| h.standing())
                            .collect::<Vec<_>>()
                    })
                })
                .await
                .context("reading this node's hits")?
                .context("reading this node's hits")?;
                let mut count = super::outputs_link::HitCount::new();
                let to_publish = super::outputs_link::standings_to_publish(own, &applied.hits);
                let published =
                    super::outputs_link::publish_hits_at_start(out, to_publish, &mut count)
                        .await
                        .context("publishing this node's hits")?;
                hit_service.note_published(published as u64);
                tracing::info!(
                    published,
                    "this node's hits published past the outputs stream"
                );
                Some(count)
            }
            _ => None,
        };
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
        // The snapshot follower's stores follow every purge record the stream holds, as a
        // node's do once live (idempotent: what is not held is skipped), so that a node joining
        // from its snapshot finds each one followed already.
        if let (Mode::Snapshot, Some(scratch)) = (mode, &scratch_purges) {
            alerts.sync_store().await;
            let follower = scratch.follower(super::snapshot_follower::ScratchStores {
                data_dir: config.data_dir.clone(),
                metadata: metadata.clone(),
                alert_store: alert_store.clone(),
                trails: trails.clone(),
                crimes: crime_store.clone(),
            })?;
            let records = purge_records.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                for (record, control) in &records {
                    follower
                        .follow(*record, control)
                        .map_err(|e| anyhow::anyhow!("following purge record {record}: {e}"))?;
                }
                Ok(())
            })
            .await
            .context("purge records task")??;
        }
        // Every store is past the cut now: the checkpoint may be written. Losing it costs the
        // next start a full replay, never data, so a failure is logged and serving goes on.
        let mut written = None;
        if let Some(cut) = cut {
            let marks = StoreMarks::read(&metadata, &crime_store, &alert_store)
                .context("reading the stores' marks for the node checkpoint")?;
            let (data_dir, trails) = (config.data_dir.clone(), trails.clone());
            let record = cut.record();
            // The trail store sealed through the cut first: a checkpoint is used only over a
            // trail store holding every position before it, and the unsealed tail would not
            // survive a kill -9.
            let write = move || -> Result<u64> {
                trails.flush(next_log_record)?;
                Ok(cut.write(&data_dir, marks)?)
            };
            match tokio::task::spawn_blocking(write).await {
                Ok(Ok(bytes)) => {
                    tracing::info!(record, bytes, "node checkpoint written");
                    written = Some(record);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "node checkpoint not written; the next start replays the whole log")
                }
                Err(e) => {
                    tracing::error!(error = %e, "node checkpoint task failed; the next start replays the whole log")
                }
            }
        }
        // Cluster mode: the checkpoint and a copy of the stores, packed now (no live stage
        // writes a store yet), for the stream's snapshot bucket (`snapshot_join`).
        let mut package = None;
        // (At record 0 there is nothing a joining node would skip.)
        // (Not a node owning some partitions: its checkpoint holds their rules' state only.)
        if let (Some(record @ 1..), Some(_), None) = (written, log.stream(), &owned) {
            alerts.sync_store().await;
            let (trails, data_dir) = (trails.clone(), config.data_dir.clone());
            let packed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
                // Every position before the record sealed: the copy's checkpoint is the record.
                trails.flush(next_log_record)?;
                super::snapshot_join::pack(&data_dir)
            })
            .await;
            match packed {
                Ok(Ok(bytes)) => package = Some((record, bytes)),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "node snapshot not packed for the cluster")
                }
                Err(e) => tracing::error!(error = %e, "node snapshot packing task failed"),
            }
        }
        if mode == Mode::Snapshot {
            return Ok(Start::Packed(Packed {
                from: read_from,
                end: next_log_record,
                package,
                purge_records: purge_records.iter().map(|(record, _)| *record).collect(),
            }));
        }
        if mode == Mode::CatchUp {
            store_and_seal(&alerts, &trails, next_log_record).await?;
            return Ok(Start::CaughtUp(next_log_record));
        }
        if let Some(aside) = aside {
            if !import.is_empty() {
                bail!(
                    "{} change(s) to write to the log first (a migration, a purge to record); the \
                     old stores are in {}: start the server once, which writes them and finishes \
                     the rebuild",
                    import.len(),
                    aside.backup_dir.display()
                );
            }
            store_and_seal(&alerts, &trails, next_log_record).await?;
            return Ok(Start::Rebuilt(aside));
        }

        // Leases are given up when the log is closed (the ordered stop's second step).
        let lease_release = tokio_util::sync::CancellationToken::new();
        let mut retention_lease = None;
        let mut live_snapshots = None;
        let mut purge_targets: Vec<Arc<dyn crate::store::PurgeTarget>> = Vec::new();
        if let Some(stream) = log.stream() {
            // The live snapshot follower's scratch state is a copy of everything too: a purge
            // drops it first, so a snapshot it uploads meanwhile is seen as taken before the
            // purge (`snapshot_follower`), then the bucket's.
            let follower = (config.snapshots.enabled && config.snapshots.live_interval_s > 0)
                .then(|| super::snapshot_follower::LiveSnapshots::new(config))
                .flatten();
            if let Some(follower) = &follower {
                purge_targets.push(follower.purge_target());
            }
            // A purge deletes the bucket's snapshots (they hold the state before it).
            let bucket = super::snapshot_join::BucketPurge::open(stream)
                .await
                .context("opening the cluster's snapshot bucket")?;
            purge_targets.push(Arc::new(bucket));
            // Waited for before the stream is followed live: a purge record after the
            // snapshot's record is then followed after the upload, and its deletion of the
            // bucket's snapshots takes this one too.
            if let Some((record, bytes)) = package.take() {
                let upload = super::snapshot_join::upload(stream, record, bytes);
                match tokio::time::timeout(SNAPSHOT_UPLOAD_TIMEOUT, upload).await {
                    Ok(Ok(true)) => tracing::info!(record, "node snapshot uploaded to the cluster"),
                    Ok(Ok(false)) => tracing::debug!(record, "the cluster holds a snapshot as new"),
                    Ok(Err(e)) => tracing::error!(record, error = %e, "node snapshot not uploaded"),
                    Err(_) => {
                        tracing::error!(record, "node snapshot upload timed out; not uploaded")
                    }
                }
            }
            if let Some((out, _, _)) = &outputs_link {
                // A purge deletes the activation's outputs from the outputs stream too.
                purge_targets.push(Arc::new(super::outputs_link::OutputsPurge::new(
                    out.clone(),
                )));
            }
            let leases = open_leases(stream, stream.config()).await?;
            // Purges of the stream run on one node at a time (the schedule, the admin route).
            retention_lease = Some(leases.hold("retention", lease_release.clone()));
            // Live snapshots are taken by one node at a time, off this node's hot path.
            live_snapshots = follower.map(|follower| {
                let held = leases.hold("snapshots", lease_release.clone());
                follower.competing(held, lease_release.clone())
            });
            if !config.webhooks.is_empty() {
                // What the replay published is stored first: a lease taken now resumes from it.
                alerts.sync_store().await;
                let delivery =
                    leased_delivery(stream, &leases, config.partitions, lease_release.clone())
                        .await?;
                crate::delivery::webhooks::spawn_webhooks(
                    alert_store.clone(),
                    &config.webhooks,
                    delivery,
                );
            }
        }

        // Live from here: the stages in the order data flows back to front, so each has
        // somewhere to hand its output before anything reaches it.
        let (trail_feed, trail_feed_thread) = spawn_trail_feed(TrailFeed::new(
            trails.clone(),
            next_log_record,
            Some(Box::new(HitFeed::new(hit_service.clone()))),
        ))
        .context("starting the trail feed thread")?;
        let system = Arc::new(SystemHealth::new(
            config.watchdog,
            now_ms(),
            book.activations().next().is_some() || recovered.0 > 0,
            driver.gauges(),
        ));
        system.spawn(now_ms);
        let stores = Fanout::new()
            .with(tac.clone())
            .with(LastContactFeed::new(last_contact.clone()))
            .with(trail_feed);
        let driver = match outputs_link {
            // The rules' outputs are published; the book follows the outputs stream.
            Some((out, applied, ordinals)) => {
                let (publish_tx, publish_rx) = mpsc::channel::<OutputBatch>(256);
                super::outputs_link::spawn_publisher(
                    out.clone(),
                    publish_rx,
                    ordinals,
                    lease_release.clone(),
                );
                if let (Some(standings), Some(count)) = (hit_standings, hit_count) {
                    super::outputs_link::spawn_hit_publisher(
                        out.clone(),
                        standings,
                        count,
                        lease_release.clone(),
                    );
                }
                super::outputs_link::spawn_materialiser(
                    out,
                    applied,
                    outputs_tx,
                    hit_service.clone(),
                    lease_release.clone(),
                );
                driver.into_live(publish_tx, Box::new(stores), next_log_record)
            }
            None => driver.into_live(outputs_tx, Box::new(stores), next_log_record),
        }
        .context("starting the pipeline's runtime")?;
        // Pipeline outputs are numbered and published on their own thread (see LiveAlerts).
        let alerts_task = alerts.clone();
        let alert_book_thread = std::thread::Builder::new()
            .name("alert-book".into())
            .spawn(move || alerts_task.run_blocking(outputs_rx))
            .context("starting the alert book thread")?;

        let counters = Arc::new(Counters::default());
        counters
            .committed_batches
            .store(recovered.0, Ordering::Relaxed);
        counters
            .committed_readings
            .store(recovered.1, Ordering::Relaxed);
        counters
            .log_damaged_ranges
            .store(log.damage().0, Ordering::Relaxed);
        counters
            .log_records_lost
            .store(log.damage().1, Ordering::Relaxed);
        let (committed_tx, committed_rx) = mpsc::channel::<Vec<LogEntry>>(64);
        let commit = log.start(committed_tx)?;
        {
            let (closed, release) = (commit.closed(), lease_release.clone());
            tokio::spawn(async move {
                closed.cancelled().await;
                release.cancel();
            });
        }
        let gate = Arc::new(ControlGate::new(commit.clone(), next_log_record));
        let applier = ControlApplier::new(
            book,
            metadata.clone(),
            decisions,
            hit_service.clone(),
            directory.clone(),
            gate.clone(),
            purges.clone(),
        )
        .context("starting the metadata view thread")?;
        Forwarder {
            counters: counters.clone(),
            system: system.clone(),
            applier,
            pipeline_input: driver.input.clone(),
        }
        .spawn(committed_rx, now_ms);

        // The start-up import goes through the log like any change, before anyone is let in;
        // in chunks submitted together, so the group committer makes each chunk durable at
        // once (a large migration is one fsync per chunk, not per record). Within a chunk the
        // committer keeps submission order, and people come before their activations and
        // orders.
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

        let shutdown = Shutdown::new(
            commit.clone(),
            alerts.clone(),
            vec![
                ("alert-book", alert_book_thread),
                ("trail-feed", trail_feed_thread),
            ],
        );
        Ok(Start::Serving(Box::new(Started {
            shutdown,
            lock,
            metadata,
            alerts,
            commit,
            counters,
            trails,
            tac,
            last_contact,
            crimes: crime_store,
            hits: hit_service,
            directory,
            control: gate,
            alert_store,
            system,
            recovered,
            purges,
            retention_lease,
            purge_targets,
            live_snapshots,
        })))
    }
}

/// Longest wait for the start-up's snapshot upload (it is abandoned after: the cluster keeps
/// its older snapshot, and the node serves).
const SNAPSHOT_UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The cluster's lease bucket, this node competing under its configured (or default) name.
async fn open_leases(
    stream: &crate::cluster::jetstream::JetStreamLog,
    jetstream: &crate::cluster::jetstream::JetStreamConfig,
) -> Result<crate::cluster::lease::Leases> {
    use crate::cluster::lease::{node_id, Leases};
    let node = node_id(jetstream.node_id.as_deref());
    let ttl = std::time::Duration::from_millis(jetstream.lease_ttl_ms);
    Leases::open(
        stream.context(),
        &jetstream.stream,
        jetstream.replicas,
        ttl,
        node,
    )
    .await
    .context("opening the cluster's lease bucket")
}

/// Webhook delivery on a cluster node: only while it holds the `webhooks` lease, resuming from
/// the progress the holders keep beside the stream (`cluster::lease`, `delivery::webhooks`).
async fn leased_delivery(
    stream: &crate::cluster::jetstream::JetStreamLog,
    leases: &crate::cluster::lease::Leases,
    partitions: usize,
    release: tokio_util::sync::CancellationToken,
) -> Result<Delivery> {
    use crate::cluster::lease::SharedProgress;
    let jetstream = stream.config();
    let progress = SharedProgress::open(stream.context(), &jetstream.stream, jetstream.replicas)
        .await
        .context("opening the cluster's webhook progress bucket")?;
    Ok(Delivery::Leased {
        node: leases.node().to_string(),
        held: leases.hold("webhooks", release),
        progress: Arc::new(progress),
        partitions: u32::try_from(partitions).context("partition count")?,
    })
}

/// Wall-clock milliseconds: for the alert book's and the watchdog's bookkeeping, never for rules.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Before a start that stops (a rebuild, an offline catch-up): the alert book written to the
/// alert store and every open trail chunk sealed, so the stores stand at the log's end.
async fn store_and_seal(
    alerts: &Arc<LiveAlerts>,
    trails: &TrailStore,
    next_log_record: u64,
) -> Result<()> {
    let (alerts, trails) = (alerts.clone(), trails.clone());
    tokio::task::spawn_blocking(move || {
        alerts.sync_store_blocking();
        trails.flush(next_log_record)
    })
    .await
    .context("storing the alerts and trails")?
    .context("sealing the trail store")?;
    Ok(())
}
