//! The purge job: for every activation that ended more than the retention period before "now",
//! delete its readings from the durable log, its trail positions, its alerts with their review
//! history and events, its sober days and TAC index (in a running server), whatever plugged-in
//! [`PurgeTarget`]s hold, and finally the activation itself — with, in the same transaction, the
//! people left with nothing held, their orders and caseload links, the old audit records about
//! people no longer held, and the record of the run.
//!
//! Order matters for crashes: the metadata transaction comes last, so a run interrupted anywhere
//! before it leaves the activations in place and the next run repeats everything (every step is
//! idempotent). The log is compacted first because everything else is derived from it: a restart
//! between steps re-derives nothing the run already removed from the log.
//!
//! "Now" is a parameter: the server passes the wall clock; the admin route and the CLI may inject
//! one. Runs are serialised by a gate that subject access exports also take while they read the
//! log (compaction erases replaced segments).

use super::order_ended_by;
use crate::alerts::alert_store::{AlertStore, AlertStoreError};
use crate::alerts::LiveAlerts;
use crate::config::RetentionConfig;
use crate::log::{compact, CommitHandle, CompactReport, LogError, LogWriter, TagWindows};
use crate::model::time::rfc3339_ms;
use crate::model::{Activation, Batch, Change, ControlRecord, PurgedWindow, TimeMs};
use crate::store::metadata::{Metadata, MetadataError, MetadataPurge, MetadataPurged, NewPurgeRun};
use crate::store::tac_book::TacBook;
use crate::store::trails::{TrailError, TrailStore};
use crate::store::{PurgeTarget, TargetError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Why a purge run stopped (nothing is recorded; the next run repeats it).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("durable log: {0}")]
    Log(#[from] LogError),
    #[error("trail store: {0}")]
    Trails(#[from] TrailError),
    #[error(transparent)]
    Alerts(#[from] AlertStoreError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("node checkpoint: {0}")]
    Checkpoint(#[from] crate::store::checkpoint_file::CheckpointFileError),
    #[error("this node does not hold the cluster's retention lease: the node that does runs purges (see tagstream_lease_retention_held in each node's /metrics)")]
    NotLeaseHolder,
    #[error("purge target {target}, activation {activation}: {source}")]
    Target {
        target: &'static str,
        activation: String,
        source: TargetError,
    },
    #[error("purge target {target}, dropping its copies of every activation: {source}")]
    TargetCopies {
        target: &'static str,
        source: TargetError,
    },
}

/// The log a purge removes readings and control records from (and the subject access export
/// reads readings from).
pub trait PurgeLog: Send + Sync {
    /// Removes what `windows` covers from every record the log holds now, keeping record
    /// numbers: the embedded log's sealed segments in `log_dir`, or every record of a stream.
    fn compact(&self, log_dir: &Path, windows: &TagWindows) -> Result<CompactReport, LogError>;

    /// Appends a control record durably (the purge's own record); returns its number.
    fn append_control(&self, control: ControlRecord) -> Result<u64, LogError>;

    /// Hands `each` every batch the log holds now, in log order, until it breaks (the subject
    /// access export's readings).
    fn for_each_batch(
        &self,
        log_dir: &Path,
        each: &mut dyn FnMut(&Batch) -> ControlFlow<()>,
    ) -> Result<(), LogError>;
}

/// In the server: the group committer seals between two groups (or, in cluster mode, the
/// stream compacts record by record).
impl PurgeLog for CommitHandle {
    fn compact(&self, log_dir: &Path, windows: &TagWindows) -> Result<CompactReport, LogError> {
        self.compact_blocking(log_dir, windows)
    }

    fn append_control(&self, control: ControlRecord) -> Result<u64, LogError> {
        self.append_control_blocking(control)
    }

    fn for_each_batch(
        &self,
        log_dir: &Path,
        each: &mut dyn FnMut(&Batch) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        self.for_each_stored_batch_blocking(log_dir, each)
    }
}

/// Offline: the writer opened (and recovered) over a stopped server's log.
impl PurgeLog for Mutex<LogWriter> {
    fn compact(&self, log_dir: &Path, windows: &TagWindows) -> Result<CompactReport, LogError> {
        let boundary = self.lock().unwrap_or_else(|p| p.into_inner()).seal()?;
        compact(log_dir, boundary, windows)
    }

    fn append_control(&self, control: ControlRecord) -> Result<u64, LogError> {
        let mut writer = self.lock().unwrap_or_else(|p| p.into_inner());
        let record = writer.append_control(&control)?;
        writer.sync()?;
        Ok(record)
    }

    fn for_each_batch(
        &self,
        log_dir: &Path,
        each: &mut dyn FnMut(&Batch) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        crate::log::for_each_batch_in(log_dir, each)
    }
}

/// How much each store deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Readings removed from the durable log.
    pub log_readings: u64,
    pub trail_positions: u64,
    pub alerts: u64,
    pub alert_reviews: u64,
    pub alert_events: u64,
    /// Sober days and TAC readings held in memory by a running server (0 offline: they are
    /// derived from the log at start).
    pub sober_days: u64,
    pub tac_readings: u64,
    pub activations: u64,
    pub people: u64,
    pub orders: u64,
    pub caseload_links: u64,
    pub audit_records: u64,
    /// Plugged-in [`PurgeTarget`]s, by name.
    pub other: BTreeMap<&'static str, u64>,
}

/// What a run did: ids and counts, never the data removed. Stored as the run's record.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    pub run: i64,
    pub trigger: String,
    #[serde(with = "rfc3339_ms")]
    pub now: TimeMs,
    pub days_after_end: u32,
    /// Activations that ended at or before this were due.
    #[serde(with = "rfc3339_ms")]
    pub cutoff: TimeMs,
    pub activations: Vec<String>,
    pub people: Vec<String>,
    pub counts: PurgeCounts,
    /// The log compaction (absent when nothing was due).
    pub log: Option<CompactReport>,
    pub elapsed_ms: u64,
}

/// Everything a purge touches. Shared by the server (scheduled runs and the admin route) and the
/// offline CLI.
pub struct Purger {
    pub config: RetentionConfig,
    pub data_dir: PathBuf,
    pub metadata: Metadata,
    pub alert_store: AlertStore,
    pub trails: TrailStore,
    pub log: Arc<dyn PurgeLog>,
    /// The running server's in-memory alert book and sober days (none offline).
    pub live: Option<Arc<LiveAlerts>>,
    /// The running server's TAC index (none offline).
    pub tac: Option<Arc<TacBook>>,
    /// Stores plugged in later (e.g. crime hits).
    pub targets: Vec<Arc<dyn PurgeTarget>>,
    /// Cluster mode: whether this node holds the `retention` lease now; only the holder runs
    /// purges (of the stream, which every node shares).
    pub lease: Option<tokio::sync::watch::Receiver<bool>>,
    gate: Mutex<()>,
}

impl Purger {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: RetentionConfig,
        data_dir: PathBuf,
        metadata: Metadata,
        alert_store: AlertStore,
        trails: TrailStore,
        log: Arc<dyn PurgeLog>,
        live: Option<Arc<LiveAlerts>>,
        tac: Option<Arc<TacBook>>,
    ) -> Self {
        Self {
            config,
            data_dir,
            metadata,
            alert_store,
            trails,
            log,
            live,
            tac,
            targets: Vec::new(),
            lease: None,
            gate: Mutex::new(()),
        }
    }

    /// Adds a store to purge with the others.
    pub fn with_target(mut self, target: Arc<dyn PurgeTarget>) -> Self {
        self.targets.push(target);
        self
    }

    /// Runs purges only while `held` says this node holds the cluster's retention lease.
    pub fn with_lease(mut self, held: tokio::sync::watch::Receiver<bool>) -> Self {
        self.lease = Some(held);
        self
    }

    /// Whether this node may run a purge now (always, outside a cluster).
    pub fn may_run(&self) -> bool {
        self.lease.as_ref().is_none_or(|held| *held.borrow())
    }

    /// Held while a run or a reader of the whole log (subject access export) is active.
    pub fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("log")
    }

    /// Removes the node checkpoint (`store::checkpoint_file`) and the copies the targets hold
    /// of every activation (the cluster's snapshots): they hold the state of the records before
    /// them, the purged data included, whether an activation or only a person is purged. The
    /// next start replays the whole log (already purged) and takes a new one.
    fn discard_checkpoints(&self) -> Result<(), RetentionError> {
        if crate::store::checkpoint_file::discard(&self.data_dir)? {
            tracing::info!("node checkpoint removed by the purge");
        }
        for target in &self.targets {
            let n = target
                .discard_copies()
                .map_err(|source| RetentionError::TargetCopies {
                    target: target.name(),
                    source,
                })?;
            if n > 0 {
                tracing::info!(
                    target = target.name(),
                    copies = n,
                    "copies removed by the purge"
                );
            }
        }
        Ok(())
    }

    /// Deletes the activations' data from every store but the log and the metadata database
    /// (idempotent: a store that holds nothing of an activation deletes nothing).
    fn purge_stores(
        &self,
        due: &[Activation],
        counts: &mut PurgeCounts,
    ) -> Result<(), RetentionError> {
        for a in due {
            counts.trail_positions += self.trails.delete_activation(&a.id)?;
            // The live book first: it stops publishing for the activation and waits for what
            // it already published to be stored, so the purge below removes all of it.
            if let Some(live) = &self.live {
                counts.sober_days += live.forget_activation(&a.id).1;
            }
            let alerts = self.alert_store.purge_activation(&a.id)?;
            counts.alerts += alerts.alerts;
            counts.alert_reviews += alerts.reviews;
            counts.alert_events += alerts.events;
            if let Some(tac) = &self.tac {
                counts.tac_readings += tac.forget_activation(&a.id);
            }
            for target in &self.targets {
                let n =
                    target
                        .purge_activation(&a.id)
                        .map_err(|source| RetentionError::Target {
                            target: target.name(),
                            activation: a.id.clone(),
                            source,
                        })?;
                *counts.other.entry(target.name()).or_default() += n;
            }
        }
        Ok(())
    }

    /// A purge record another node appended (cluster mode: that node compacted the stream and
    /// purged its own stores; every node purges its own when it applies the record). Deletes
    /// what this node still holds of the activations and people the record names, and records
    /// the run. `recorded_ms` (the record's time) stands for "now" in what the policy judges
    /// (old audit records about people no longer held). Nothing held: nothing done, no run.
    pub fn apply_purge_record(
        &self,
        record: u64,
        control: &ControlRecord,
    ) -> Result<Option<PurgeReport>, RetentionError> {
        let Change::Purge {
            activations,
            people,
            windows,
        } = &control.change
        else {
            return Ok(None);
        };
        let _gate = self.gate();
        let started = Instant::now();
        let mut due = Vec::new();
        for id in activations {
            due.extend(self.metadata.activations_by_id(id)?);
        }
        let mut held_people = Vec::new();
        for id in people {
            if self.metadata.person(id)?.is_some() {
                held_people.push(id.clone());
            }
        }
        let known_windows = self.metadata.purged_windows()?;
        let new_windows: Vec<PurgedWindow> = windows
            .iter()
            .filter(|w| !known_windows.contains(&(w.tag.clone(), w.from, w.to)))
            .cloned()
            .collect();
        if due.is_empty() && held_people.is_empty() && new_windows.is_empty() {
            return Ok(None);
        }
        self.discard_checkpoints()?;
        let mut counts = PurgeCounts::default();
        self.purge_stores(&due, &mut counts)?;
        let cutoff = self.config.cutoff_ms(control.recorded);
        let trigger = format!("log record {record} ({})", control.actor);
        let request = MetadataPurge {
            activations: &due,
            order_past_retention: &|o| order_ended_by(o, cutoff),
            windows: &new_windows,
            people: Some(&held_people),
            audit_before_ms: cutoff,
            run: NewPurgeRun {
                t_ms: wall_clock_ms(),
                now_ms: control.recorded,
                days_after_end: self.config.days_after_end,
                trigger: trigger.clone(),
            },
        };
        let mut report = PurgeReport {
            run: 0,
            trigger,
            now: control.recorded,
            days_after_end: self.config.days_after_end,
            cutoff,
            activations: due.iter().map(|a| a.id.clone()).collect(),
            people: Vec::new(),
            counts,
            log: None,
            elapsed_ms: 0,
        };
        let (run, _) = self
            .metadata
            .purge(&request, |removed| report.complete(removed, started))?;
        report.run = run;
        tracing::info!(
            run,
            record,
            activations = report.activations.len(),
            people = report.people.len(),
            "applied a purge record from the log"
        );
        Ok(Some(report))
    }

    /// Runs one purge judged at `now_ms`; `trigger` says who asked (recorded). Blocking.
    pub fn run(&self, now_ms: TimeMs, trigger: &str) -> Result<PurgeReport, RetentionError> {
        if !self.may_run() {
            return Err(RetentionError::NotLeaseHolder);
        }
        let _gate = self.gate();
        let started = Instant::now();
        let cutoff = self.config.cutoff_ms(now_ms);
        let due = self.metadata.activations_ended_by(cutoff)?;
        let mut counts = PurgeCounts::default();
        let request = MetadataPurge {
            activations: &due,
            order_past_retention: &|o| order_ended_by(o, cutoff),
            windows: &[],
            people: None,
            audit_before_ms: cutoff,
            run: NewPurgeRun {
                t_ms: wall_clock_ms(),
                now_ms,
                days_after_end: self.config.days_after_end,
                trigger: trigger.to_string(),
            },
        };

        let log = if due.is_empty() {
            None
        } else {
            self.discard_checkpoints()?;
            // Earlier runs' windows too: a reading that arrived after its activation was purged
            // (a late upload) goes the next time the log is compacted.
            let mut windows = TagWindows::default();
            for a in &due {
                windows.add(&a.tag, a.from, a.to.unwrap_or(TimeMs::MAX));
            }
            for (tag, from, to) in self.metadata.purged_windows()? {
                windows.add(&tag, from, to.unwrap_or(TimeMs::MAX));
            }
            // Control records naming what is purged (people, their activations and orders)
            // are erased too, this run's with the rest: the people this purge removes are
            // judged before the log is compacted.
            for a in &due {
                windows.add_activation(&a.id);
            }
            for person in self.metadata.people_due(&request)? {
                windows.add_person(&person);
            }
            for (kind, id) in self.metadata.purged_records()? {
                match kind.as_str() {
                    "person" => windows.add_person(&id),
                    "activation" => windows.add_activation(&id),
                    _ => {}
                }
            }
            let report = self.log.compact(&self.log_dir(), &windows)?;
            counts.log_readings = report.readings_removed;
            Some(report)
        };

        self.purge_stores(&due, &mut counts)?;

        let ids: Vec<String> = due.iter().map(|a| a.id.clone()).collect();
        let mut report = PurgeReport {
            run: 0,
            trigger: trigger.to_string(),
            now: now_ms,
            days_after_end: self.config.days_after_end,
            cutoff,
            activations: ids.clone(),
            people: Vec::new(),
            counts,
            log,
            elapsed_ms: 0,
        };
        let (run, _) = self
            .metadata
            .purge(&request, |removed| report.complete(removed, started))?;
        report.run = run;
        if !report.people.is_empty() {
            // People purged without an activation of theirs (their book entries).
            self.discard_checkpoints()?;
        }
        if !report.activations.is_empty() || !report.people.is_empty() {
            // The purge is a log record too: the pipeline drops the activations' state at it, and
            // a replay or rebuild of the log gives what the live server gives. (A crash before
            // this line is repaired at the next start, which appends the record for whatever
            // the metadata says was purged and the log still holds.)
            self.log.append_control(ControlRecord {
                recorded: wall_clock_ms(),
                actor: format!("retention:{trigger}"),
                effective: None,
                change: Change::Purge {
                    activations: report.activations.clone(),
                    people: report.people.clone(),
                    windows: due
                        .iter()
                        .map(|a| PurgedWindow {
                            activation: a.id.clone(),
                            tag: a.tag.clone(),
                            from: a.from,
                            to: a.to,
                        })
                        .collect(),
                },
            })?;
        }
        tracing::info!(
            run,
            activations = report.activations.len(),
            people = report.people.len(),
            log_readings = report.counts.log_readings,
            "retention purge run"
        );
        Ok(report)
    }
}

impl PurgeReport {
    /// Completes the report with what the metadata transaction removed; returns it as the
    /// run's stored record (without the run's id, not known yet).
    fn complete(&mut self, removed: &MetadataPurged, started: Instant) -> serde_json::Value {
        self.people = removed.people.clone();
        self.counts.activations = removed.activations;
        self.counts.people = removed.people.len() as u64;
        self.counts.orders = removed.orders;
        self.counts.caseload_links = removed.caseload_links;
        self.counts.audit_records = removed.audit_records;
        self.elapsed_ms = started.elapsed().as_millis() as u64;
        let mut record = serde_json::to_value(&*self).unwrap_or_default();
        if let Some(fields) = record.as_object_mut() {
            fields.remove("run");
        }
        record
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn wall_clock_ms() -> TimeMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::orders_file::OrdersFile;
    use crate::log::LogConfig;
    use crate::model::{Batch, Reading, ReadingBody};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A plugged-in store that can be told to fail.
    #[derive(Default)]
    struct Hits {
        fail: AtomicBool,
        calls: AtomicU64,
        /// Times it was asked to drop copies of everything (as the cluster's snapshots do).
        copies_dropped: AtomicU64,
    }

    impl PurgeTarget for Hits {
        fn name(&self) -> &'static str {
            "crime_hits"
        }
        fn discard_copies(&self) -> Result<u64, TargetError> {
            self.copies_dropped.fetch_add(1, Ordering::Relaxed);
            Ok(1)
        }
        fn purge_activation(&self, activation: &str) -> Result<u64, TargetError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if self.fail.load(Ordering::Relaxed) {
                return Err(format!("hits store unavailable for {activation}").into());
            }
            Ok(3)
        }
    }

    fn purger(dir: &std::path::Path, hits: Arc<Hits>) -> Purger {
        let metadata = Metadata::open(dir).unwrap();
        let doc: OrdersFile = serde_json::from_value(serde_json::json!({
            "people": [{"id": "P1"}],
            "activations": [{"id": "A1", "person": "P1", "tag": "T1",
                             "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}],
            "orders": []
        }))
        .unwrap();
        metadata.import_orders(&doc).unwrap();
        let (mut writer, _) = LogWriter::open(&dir.join("log"), LogConfig::default()).unwrap();
        let t_ms = crate::model::time::parse_time("2020-01-10T00:00:00Z").unwrap();
        writer
            .append(&Batch {
                tag: "T1".into(),
                epoch: 0,
                seq: 1,
                arrival_ms: t_ms,
                readings: vec![Reading {
                    t_ms,
                    battery_pct: None,
                    body: ReadingBody::Rf { in_range: true },
                }],
            })
            .unwrap();
        writer.sync().unwrap();
        let (trails, _) = TrailStore::open(&dir.join("trails"), Default::default()).unwrap();
        Purger::new(
            RetentionConfig::default(),
            dir.to_path_buf(),
            metadata,
            AlertStore::open(dir).unwrap(),
            trails,
            Arc::new(Mutex::new(writer)),
            None,
            None,
        )
        .with_target(hits)
    }

    #[test]
    fn a_failing_target_stops_the_run_before_the_metadata_and_the_next_run_completes_it() {
        let dir = tempfile::tempdir().unwrap();
        let hits = Arc::new(Hits::default());
        let purger = purger(dir.path(), hits.clone());
        let now = crate::model::time::parse_time("2030-01-01T00:00:00Z").unwrap();
        // Not due yet: nothing happens, but the run is recorded.
        let early = purger.run(now - 3000 * DAY, "test").unwrap();
        assert!(early.activations.is_empty() && early.log.is_none());

        hits.fail.store(true, Ordering::Relaxed);
        let err = purger.run(now, "test").unwrap_err();
        assert!(err.to_string().contains("crime_hits"), "{err}");
        assert_eq!(purger.metadata.activations_of("P1").unwrap().len(), 1);
        assert_eq!(purger.metadata.purge_runs(10).unwrap().len(), 1);

        hits.fail.store(false, Ordering::Relaxed);
        let report = purger.run(now, "test").unwrap();
        assert_eq!(report.activations, ["A1"]);
        assert_eq!(report.people, ["P1"]);
        assert_eq!(report.counts.other.get("crime_hits"), Some(&3));
        assert_eq!(
            report.counts.log_readings, 0,
            "removed by the interrupted run"
        );
        assert_eq!(hits.calls.load(Ordering::Relaxed), 2);
        let runs = purger.metadata.purge_runs(10).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].report["counts"]["other"]["crime_hits"], 3);
        assert!(purger.metadata.person("P1").unwrap().is_none());
        // The purge is a record of the log: the person and activation leave the log's book.
        let mut book = crate::orders::OrderBook::default();
        let mut purges = 0;
        for item in crate::log::LogReader::open(&dir.path().join("log")).unwrap() {
            if let (record, crate::model::LogEntry::Control { control, .. }) = item.unwrap() {
                purges += usize::from(matches!(control.change, Change::Purge { .. }));
                book.apply(record, &control).unwrap();
            }
        }
        assert_eq!(purges, 1);
        assert!(book.person("P1").is_none());
    }

    /// A purge record naming a person alone (their activations purged earlier, or none) must
    /// still drop every copy of all the stores, the cluster's snapshots: they hold the person.
    #[test]
    fn a_purge_of_a_person_alone_drops_the_targets_copies_of_everything() {
        let dir = tempfile::tempdir().unwrap();
        let hits = Arc::new(Hits::default());
        let purger = purger(dir.path(), hits.clone());
        let alone: OrdersFile = serde_json::from_value(
            serde_json::json!({"people": [{"id": "P2"}], "activations": [], "orders": []}),
        )
        .unwrap();
        purger.metadata.import_orders(&alone).unwrap();
        let record = ControlRecord {
            recorded: crate::model::time::parse_time("2030-01-01T00:00:00Z").unwrap(),
            actor: "retention:test".into(),
            effective: None,
            change: Change::Purge {
                activations: Vec::new(),
                people: vec!["P2".into()],
                windows: Vec::new(),
            },
        };
        purger.apply_purge_record(7, &record).unwrap();
        assert!(purger.metadata.person("P2").unwrap().is_none());
        assert_eq!(hits.copies_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(
            hits.calls.load(Ordering::Relaxed),
            0,
            "no activation was named"
        );
    }

    const DAY: i64 = 86_400_000;
}
