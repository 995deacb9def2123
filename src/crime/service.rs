//! The hit service: one worker thread that owns the [`HitMatcher`] (crime catalogue and R-tree)
//! and serialises every evaluation, so a hit's stored form is always the latest one computed
//! from the trail store. It takes three kinds of work:
//! - new positions, per activation, from the trail feed right after they were appended to the
//!   trail store (live matching);
//! - new crime versions from an import, answered when their retrospective match is done;
//! - at start, every stored crime version, matched against the trails, and every stored hit not
//!   withdrawn evaluated again (this also repairs any hit change lost in a crash: hits are derived
//!   from durable crimes and durable trails);
//! - changes to activations (control records, in log order): a period narrowed or moved, or the
//!   activation given to another person, re-evaluates its hits, withdrawing those whose evidence
//!   is no longer its own with the change's record number and a reason.
//!
//! Nothing that fails is dropped: a hit change the crime store refused, a crime match or a
//! position match the trail store could not be read for, is kept in [`Retry`] and done again
//! before newer work and, while the worker is idle, after a back-off; each failure is counted
//! (`/metrics`, and the import's `matching` summary says how many are still waiting).

use super::matcher::{ActivationFilter, Cause, HitChange, HitMatcher, Period, TrailSource};
use crate::model::time::format_time;
use crate::model::{Change, CrimeVersion, HitStanding, Reading, ReadingBody, TimeMs};
use crate::pipeline::ActivationDirectory;
use crate::pipeline::{Output, Sink};
use crate::rules::hits::HitsConfig;
use crate::store::crime_store::{CrimeStore, CrimeStoreError};
use crate::store::trails::TrailStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hit matcher as a pipeline [`Sink`], fed by the trail feed after each append: the
/// positions the dispatcher filed under each activation (matched once the trail store holds
/// them), gathered and sent as one job per committed group, and each change to a person's
/// activations, in log order with the positions.
pub struct HitFeed {
    service: HitService,
    positions: Vec<(String, Vec<Reading>)>,
}

impl HitFeed {
    pub fn new(service: HitService) -> Self {
        Self {
            service,
            positions: Vec::new(),
        }
    }
}

impl Sink for HitFeed {
    fn emit(&mut self, output: Output, _cause_arrival_ms: Option<TimeMs>) {
        match output {
            Output::Readings {
                activation,
                readings,
                ..
            } => {
                let fixes: Vec<Reading> = readings
                    .readings()
                    .iter()
                    .filter(|r| matches!(r.body, ReadingBody::Position(_)))
                    .copied()
                    .collect();
                if !fixes.is_empty() {
                    self.positions.push((activation.id.clone(), fixes));
                }
            }
            Output::Activations {
                record,
                control,
                activations,
            } => {
                // Positions before the change are matched under the activation as it was.
                self.flush();
                self.service.control(record, &control.change, activations);
            }
            Output::Alert(_) | Output::SoberDay(_) | Output::Purged { .. } => {}
        }
    }

    fn flush(&mut self) {
        if !self.positions.is_empty() {
            self.service.positions(std::mem::take(&mut self.positions));
        }
    }
}

/// First wait before an idle worker retries failed work; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What a retrospective match did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MatchSummary {
    pub crimes: u64,
    /// Hits created or changed.
    pub hits: u64,
    pub withdrawn: u64,
    pub elapsed_ms: u64,
    /// Hit changes this pass could not store: kept and retried, never dropped.
    pub store_failures: u64,
    /// Work still waiting to be retried after this pass (hit changes, crimes, position groups).
    pub retry_pending: u64,
    /// Why matching failed, if it did: the crimes are kept and matched again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Failed work, done again before newer work (so nothing is lost while the process runs; a
/// restart re-derives hits from durable crimes and trails anyway).
#[derive(Default)]
pub struct Retry {
    /// Hit changes the store refused: the latest per hit id (a newer change supersedes).
    changes: BTreeMap<String, HitChange>,
    /// Crimes (matcher slots) whose retrospective match failed.
    crimes: BTreeSet<u32>,
    /// Position groups whose live match failed, in the order they came.
    positions: Vec<(String, Vec<Reading>)>,
    /// Re-evaluations of an activation's hits (after a change to it, or at start) not yet done.
    rechecks: Vec<Recheck>,
    /// Other nodes' hits the store refused: the latest per hit id.
    standings: BTreeMap<String, HitStanding>,
    /// Hits changed here whose standing could not be read back to publish.
    unpublished: BTreeSet<String>,
}

/// Crimes to evaluate against one activation again, and why.
struct Recheck {
    activation: String,
    slots: BTreeSet<u32>,
    cause: Cause,
}

impl Retry {
    /// How many pieces of work are waiting.
    pub fn len(&self) -> u64 {
        (self.changes.len()
            + self.crimes.len()
            + self.positions.len()
            + self.rechecks.len()
            + self.standings.len()
            + self.unpublished.len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters for `/metrics` ([`HitService::write_metrics`]).
#[derive(Debug, Default)]
pub struct HitStats {
    pub store_failures: AtomicU64,
    pub match_failures: AtomicU64,
    pub retry_pending: AtomicU64,
    /// Set when the worker is gone (it panicked): nothing is matched until a restart.
    pub stopped: AtomicBool,
    /// Hit standings handed to the outputs stream (a node owning some partitions).
    pub published: AtomicU64,
    /// Other nodes' hit standings from the outputs stream that changed this node's store.
    pub materialised: AtomicU64,
}

/// A node owning some partitions (cluster mode): which activations its matcher evaluates, and
/// where the standing of each hit it changes goes (`topology::outputs_link` publishes it). The
/// other activations' hits come from their owners ([`HitService::materialise`]).
pub struct HitSplit {
    pub owns: ActivationFilter,
    pub publish: tokio::sync::mpsc::UnboundedSender<HitStanding>,
}

/// Crime batch records submitted for matching, each with its summary to come.
type PendingSummaries = std::collections::VecDeque<(u64, Receiver<MatchSummary>)>;

/// Summaries kept for importers that have yet to ask (a few crime batches a day per force).
const KEPT_SUMMARIES: usize = 256;

enum Job {
    Positions(Vec<(String, Vec<Reading>)>),
    /// A control record (log record `record`) created or changed an activation after start:
    /// whose positions it carries, and its period when the record set it.
    Activation {
        record: u64,
        id: String,
        person: String,
        period: Option<PeriodChange>,
    },
    Crimes(Vec<CrimeVersion>, Sender<MatchSummary>),
    /// Hits other nodes published.
    Standings(Vec<HitStanding>),
}

/// What a control record did to an activation's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeriodChange {
    /// `put_activation`: the whole period.
    Set(Period),
    /// `end_activation`: ended at this time.
    End(TimeMs),
}

/// Handle to the worker; cheap to clone.
#[derive(Clone)]
pub struct HitService {
    jobs: Sender<Job>,
    /// Crime batches submitted for matching (by log record), their summaries to come: the
    /// importer on this node waits for its own (see [`HitService::matched`]).
    summaries: Arc<std::sync::Mutex<PendingSummaries>>,
    /// Whether any crime is indexed: until one is, positions are not worth sending (a new
    /// batch is matched retrospectively against everything stored anyway).
    has_crimes: Arc<AtomicBool>,
    stats: Arc<HitStats>,
}

impl HitService {
    /// Starts the worker: loads every stored crime, matches them all against the trails, then
    /// serves jobs. Returns once the start-up match is done.
    ///
    /// With `split` (a node owning some partitions) the matcher evaluates its own activations
    /// only, and each hit it changes after the start-up match is published; what the start-up
    /// match changed is the caller's to publish (it compares with what the stream holds).
    pub fn start(
        config: HitsConfig,
        store: CrimeStore,
        trails: TrailStore,
        directory: Arc<ActivationDirectory>,
        split: Option<HitSplit>,
    ) -> Result<(HitService, MatchSummary), CrimeStoreError> {
        let mut matcher = HitMatcher::new(config);
        let mut publish = None;
        if let Some(split) = split {
            matcher = matcher.only(split.owns);
            publish = Some(split.publish);
        }
        for a in directory.all() {
            let period = Period {
                from_ms: a.from_ms,
                to_ms: a.to_ms,
            };
            matcher.set_activation(&a.id, &a.person, period);
        }
        let crimes = store.all_crimes()?;
        let has_crimes = Arc::new(AtomicBool::new(!crimes.is_empty()));
        let stats = Arc::new(HitStats::default());
        let mut worker = Worker {
            matcher,
            store,
            trails,
            retry: Retry::default(),
            stats: stats.clone(),
            publish: None,
        };
        // A failure here is retried by the worker like any other (and reported in the summary).
        let slots = worker.matcher.add_crimes(crimes);
        // Every stored hit not withdrawn is evaluated again (a crime match only visits the
        // activations whose trail meets the crime): one that no longer holds is withdrawn.
        let mut stored: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for (crime, activation) in worker.store.current_hit_keys()? {
            if let Some(slot) = worker.matcher.seed_hit(&crime, &activation) {
                stored.entry(activation).or_default().insert(slot);
            }
        }
        let started = Instant::now();
        let mut summary = worker.match_crimes(slots);
        worker
            .retry
            .rechecks
            .extend(stored.into_iter().map(|(activation, slots)| Recheck {
                activation,
                slots,
                cause: Cause::Rematch,
            }));
        let changes = worker.rechecks();
        worker.store(changes, &mut summary, started);
        worker.publish = publish;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("hit-matcher".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| CrimeStoreError::Invalid(format!("cannot start the hit matcher: {e}")))?;
        Ok((
            HitService {
                jobs: tx,
                summaries: Arc::default(),
                has_crimes,
                stats,
            },
            summary,
        ))
    }

    /// A control record applied while running (log record `record`), with the `(activation,
    /// person)` pairs of the person it changed (`ControlApplier::apply`'s answer: empty when
    /// refused). Hits of an activation's positions name its person; a period narrowed, moved or
    /// given to another person re-evaluates the activation's hits.
    pub fn control(&self, record: u64, change: &Change, activations: Vec<(String, String)>) {
        for (id, person) in activations {
            let period = match change {
                Change::PutActivation { activation } if activation.id == id => {
                    Some(PeriodChange::Set(Period {
                        from_ms: activation.from,
                        to_ms: activation.to,
                    }))
                }
                Change::EndActivation { activation, to } if *activation == id => {
                    Some(PeriodChange::End(*to))
                }
                _ => None,
            };
            let job = Job::Activation {
                record,
                id,
                person,
                period,
            };
            if self.jobs.send(job).is_err() {
                self.worker_gone();
                return;
            }
        }
    }

    /// Live matching of positions just appended to the trail store.
    pub fn positions(&self, groups: Vec<(String, Vec<Reading>)>) {
        if !groups.is_empty()
            && self.has_crimes.load(Ordering::Acquire)
            && self.jobs.send(Job::Positions(groups)).is_err()
        {
            self.worker_gone();
        }
    }

    /// Retrospective matching of the new crime versions of crime batch record `record`, queued
    /// behind the work already waiting. Every node does this when it applies the record, so
    /// every node's hits follow the log, not only those of the node that took the upload.
    pub fn submit_new_crimes(&self, record: u64, crimes: Vec<CrimeVersion>) {
        if !crimes.is_empty() {
            self.has_crimes.store(true, Ordering::Release);
        }
        let (tx, rx) = channel();
        if self.jobs.send(Job::Crimes(crimes, tx)).is_err() {
            self.worker_gone();
        }
        // A summary nobody asks for (the upload was taken by another node) is dropped in time.
        let mut summaries = self.summaries.lock().unwrap_or_else(|e| e.into_inner());
        summaries.push_back((record, rx));
        while summaries.len() > KEPT_SUMMARIES {
            summaries.pop_front();
        }
    }

    /// Hits other nodes published (their partitions'): stored as they stand, in the order given;
    /// those of this node's own activations are skipped (its matcher is their authority).
    pub fn materialise(&self, standings: Vec<HitStanding>) {
        if !standings.is_empty() && self.jobs.send(Job::Standings(standings)).is_err() {
            self.worker_gone();
        }
    }

    /// Counts `n` hit standings published on this node's behalf (the start's comparison with
    /// the outputs stream).
    pub fn note_published(&self, n: u64) {
        self.stats.published.fetch_add(n, Ordering::Relaxed);
    }

    /// Waits for the matching of crime batch record `record` (submitted on this node) and
    /// returns its summary; `None` if it was not submitted here.
    pub fn matched(&self, record: u64) -> Option<MatchSummary> {
        let waiting = {
            let mut summaries = self.summaries.lock().unwrap_or_else(|e| e.into_inner());
            let at = summaries.iter().position(|(r, _)| *r == record)?;
            summaries.remove(at)?.1
        };
        if let Ok(summary) = waiting.recv() {
            return Some(summary);
        }
        self.worker_gone();
        Some(MatchSummary {
            error: Some(
                "the hit matcher stopped: the crimes are stored and matched at the next start"
                    .into(),
            ),
            ..MatchSummary::default()
        })
    }

    fn worker_gone(&self) {
        if !self.stats.stopped.swap(true, Ordering::Relaxed) {
            tracing::error!("the hit matcher stopped; hits are re-derived at the next start");
        }
    }

    /// The hit matcher's lines for `/metrics`.
    pub fn write_metrics(&self, e: &mut crate::metrics::exposition::Exposition) {
        let s = &self.stats;
        e.counter(
            "tagstream_hit_store_failures_total",
            "Hit changes the crime store refused (each kept and retried, never dropped).",
            s.store_failures.load(Ordering::Relaxed),
        );
        e.counter(
            "tagstream_hit_match_failures_total",
            "Crime or position matches that failed to read the trails (kept and retried).",
            s.match_failures.load(Ordering::Relaxed),
        );
        e.gauge(
            "tagstream_hit_retry_pending",
            "Hit changes, crimes and position groups waiting to be retried.",
            s.retry_pending.load(Ordering::Relaxed) as f64,
        );
        e.counter(
            "tagstream_hits_published_total",
            "Hit standings this node published to the outputs stream (its partitions' hits).",
            s.published.load(Ordering::Relaxed),
        );
        e.counter(
            "tagstream_hits_materialised_total",
            "Hit standings from the outputs stream (other nodes' partitions) this node stored.",
            s.materialised.load(Ordering::Relaxed),
        );
        e.gauge(
            "tagstream_hit_matcher_up",
            "1 while the hit matcher runs; 0 once it stopped (hits resume at the next start).",
            if s.stopped.load(Ordering::Relaxed) {
                0.0
            } else {
                1.0
            },
        );
    }
}

/// The worker's state: the matcher, the stores, and what failed and waits to be retried.
struct Worker {
    matcher: HitMatcher,
    store: CrimeStore,
    trails: TrailStore,
    retry: Retry,
    stats: Arc<HitStats>,
    /// Where the standing of each hit this worker changes goes (a node owning some partitions).
    publish: Option<tokio::sync::mpsc::UnboundedSender<HitStanding>>,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Job>) {
        let mut backoff = RETRY_FIRST;
        loop {
            let job = if self.retry.is_empty() {
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            } else {
                match jobs.recv_timeout(backoff) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        let before = self.retry.len();
                        self.retry_now();
                        backoff = if self.retry.len() < before {
                            RETRY_FIRST
                        } else {
                            (backoff * 2).min(RETRY_MAX)
                        };
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            match job {
                Job::Activation {
                    record,
                    id,
                    person,
                    period,
                } => self.activation_changed(record, &id, &person, period),
                Job::Positions(groups) => {
                    self.match_positions(groups);
                }
                Job::Crimes(crimes, reply) => {
                    let slots = self.matcher.add_crimes(crimes);
                    let summary = self.match_crimes(slots);
                    let _ = reply.send(summary); // the importer gave up waiting: nothing lost
                }
                Job::Standings(standings) => self.materialise(standings),
            }
        }
    }

    /// Everything waiting, done again.
    fn retry_now(&mut self) {
        if !self.retry.crimes.is_empty() {
            self.match_crimes(Vec::new());
        }
        if !self.retry.positions.is_empty()
            || !self.retry.changes.is_empty()
            || !self.retry.rechecks.is_empty()
            || !self.retry.unpublished.is_empty()
        {
            self.match_positions(Vec::new());
        }
        if !self.retry.standings.is_empty() {
            self.materialise(Vec::new());
        }
    }

    /// Stores other nodes' hits (after those the store refused before), skipping this node's
    /// own; one the store refuses is kept, the latest per hit.
    fn materialise(&mut self, standings: Vec<HitStanding>) {
        let earlier = std::mem::take(&mut self.retry.standings).into_values();
        for standing in earlier.chain(standings) {
            if self.matcher.owns(&standing.hit.activation) {
                continue;
            }
            match self.store.put_hit_standing(&standing) {
                Ok(changed) => {
                    self.stats
                        .materialised
                        .fetch_add(u64::from(changed), Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(error = %e, hit = %standing.hit.id, "storing a published hit failed; will retry");
                    self.stats.store_failures.fetch_add(1, Ordering::Relaxed);
                    self.retry
                        .standings
                        .insert(standing.hit.id.clone(), standing);
                }
            }
        }
        self.stats
            .retry_pending
            .store(self.retry.len(), Ordering::Relaxed);
    }

    /// Applies a control record's change to an activation; when its period or person changed,
    /// re-evaluates its hits (and the crimes in time its period gained), naming the change.
    fn activation_changed(
        &mut self,
        record: u64,
        id: &str,
        person: &str,
        period: Option<PeriodChange>,
    ) {
        let before = self.matcher.activation(id);
        let after = match (period, &before) {
            (Some(PeriodChange::Set(p)), _) => p,
            (Some(PeriodChange::End(to_ms)), Some((_, p))) => Period {
                from_ms: p.from_ms,
                to_ms: Some(to_ms),
            },
            (Some(PeriodChange::End(to_ms)), None) => Period {
                from_ms: TimeMs::MIN,
                to_ms: Some(to_ms),
            },
            (None, Some((_, p))) => *p,
            (None, None) => {
                self.matcher.set_person(id, person);
                return;
            }
        };
        let Some(gained) = self.matcher.set_activation(id, person, after) else {
            return;
        };
        let Some((person_before, period_before)) = before else {
            return; // new: nothing is stored under it yet
        };
        let mut what = Vec::new();
        if period_before != after {
            what.push(match period {
                Some(PeriodChange::End(to_ms)) => format!(
                    "activation '{id}' ended {}, so its positions from then on no longer count",
                    format_time(to_ms)
                ),
                _ => format!(
                    "activation '{id}' now runs from {} to {}, so only its positions in that \
                     period count",
                    format_time(after.from_ms),
                    after.to_ms.map_or("now (open)".to_string(), format_time)
                ),
            });
        }
        if person_before != person {
            what.push(format!(
                "activation '{id}' now belongs to person '{person}'"
            ));
        }
        let slots = self.matcher.recheck_slots(id, &gained);
        if slots.is_empty() {
            return;
        }
        self.retry.rechecks.push(Recheck {
            activation: id.to_string(),
            slots,
            cause: Cause::Change {
                record,
                what: what.join("; "),
            },
        });
        self.match_positions(Vec::new());
    }

    /// Runs the waiting re-evaluations; one whose trail read fails stays waiting.
    fn rechecks(&mut self) -> Vec<HitChange> {
        let mut changes = Vec::new();
        for recheck in std::mem::take(&mut self.retry.rechecks) {
            match self.matcher.recheck(
                &self.trails,
                &recheck.activation,
                &recheck.slots,
                &recheck.cause,
            ) {
                Ok(c) => changes.extend(c),
                Err(e) => {
                    tracing::error!(error = %e, activation = %recheck.activation,
                        "re-evaluating an activation's hits failed; will retry");
                    self.stats.match_failures.fetch_add(1, Ordering::Relaxed);
                    self.retry.rechecks.push(recheck);
                }
            }
        }
        changes
    }

    /// Retrospective match of `slots` (and of crimes whose match failed before).
    fn match_crimes(&mut self, slots: Vec<u32>) -> MatchSummary {
        let started = Instant::now();
        let mut summary = MatchSummary {
            crimes: slots.len() as u64,
            ..MatchSummary::default()
        };
        let mut all = std::mem::take(&mut self.retry.crimes);
        all.extend(slots);
        let all: Vec<u32> = all.into_iter().collect();
        let changes = match self.matcher.match_crimes(&self.trails, &all) {
            Ok(changes) => changes,
            Err(e) => {
                tracing::error!(error = %e, crimes = all.len(), "crime matching failed; will retry");
                self.stats.match_failures.fetch_add(1, Ordering::Relaxed);
                summary.error = Some(format!("{e}; the crimes are matched again"));
                self.retry.crimes.extend(all);
                Vec::new()
            }
        };
        self.store(changes, &mut summary, started);
        summary
    }

    /// Live match of position groups (after those whose match failed before).
    fn match_positions(&mut self, groups: Vec<(String, Vec<Reading>)>) {
        let started = Instant::now();
        let mut summary = MatchSummary::default();
        let mut changes = self.rechecks();
        let earlier = std::mem::take(&mut self.retry.positions);
        for (activation, readings) in earlier.into_iter().chain(groups) {
            match self
                .matcher
                .on_positions(&self.trails, &activation, &readings)
            {
                Ok(c) => changes.extend(c),
                Err(e) => {
                    tracing::error!(error = %e, activation, "live hit matching failed; will retry");
                    self.stats.match_failures.fetch_add(1, Ordering::Relaxed);
                    self.retry.positions.push((activation, readings));
                }
            }
        }
        self.store(changes, &mut summary, started);
    }

    fn store(&mut self, changes: Vec<HitChange>, summary: &mut MatchSummary, started: Instant) {
        let store = &self.store;
        // What changed, to publish: an upsert's standing is the hit itself (it holds again); a
        // withdrawal's is read back (the stored form with its reason).
        let mut changed: Vec<(String, Option<HitStanding>)> = Vec::new();
        let publishing = self.publish.is_some();
        store_changes(&mut self.retry, changes, summary, &mut |c| {
            store_change(store, c).inspect(|&did| {
                if did && publishing {
                    changed.push(match c {
                        HitChange::Upsert(hit) => (
                            hit.id.clone(),
                            Some(HitStanding {
                                hit: (**hit).clone(),
                                withdrawn: None,
                            }),
                        ),
                        HitChange::Withdraw { id, .. } => (id.clone(), None),
                    });
                }
            })
        });
        if publishing {
            let earlier = std::mem::take(&mut self.retry.unpublished);
            self.publish_standings(earlier.into_iter().map(|id| (id, None)).chain(changed));
        }
        self.stats
            .store_failures
            .fetch_add(summary.store_failures, Ordering::Relaxed);
        self.stats
            .retry_pending
            .store(self.retry.len(), Ordering::Relaxed);
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
    }
}

impl Worker {
    /// Publishes each changed hit's standing: the one given, or (`None`) as the store now holds
    /// it; one that cannot be read back is kept and published later.
    fn publish_standings(
        &mut self,
        changed: impl IntoIterator<Item = (String, Option<HitStanding>)>,
    ) {
        let Some(publish) = &self.publish else {
            return;
        };
        for (id, known) in changed {
            let standing = match known {
                Some(standing) => Ok(Some(standing)),
                None => self.store.hit(&id).map(|h| h.map(|h| h.standing())),
            };
            match standing {
                Ok(Some(standing)) => {
                    // The publisher is gone only when the node stops: its next start compares
                    // what the stream holds with its store and publishes the difference.
                    if publish.send(standing).is_ok() {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {} // purged since
                Err(e) => {
                    tracing::error!(error = %e, hit = %id, "reading a changed hit back to publish it failed; will retry");
                    self.retry.unpublished.insert(id);
                }
            }
        }
    }
}

/// Writes one hit change; `true` if the store changed.
fn store_change(store: &CrimeStore, change: &HitChange) -> Result<bool, CrimeStoreError> {
    match change {
        HitChange::Upsert(hit) => store.upsert_hit(hit),
        HitChange::Withdraw { id, why } => store.withdraw_hit(id, why),
    }
}

fn change_id(change: &HitChange) -> &str {
    match change {
        HitChange::Upsert(hit) => &hit.id,
        HitChange::Withdraw { id, .. } => id,
    }
}

/// Stores `changes` with `store_one`, after the earlier failures in `retry` that no newer change
/// supersedes. A change that cannot be stored is counted and kept in `retry` (the latest per
/// hit), never dropped. Counts go into `summary`.
pub fn store_changes(
    retry: &mut Retry,
    changes: Vec<HitChange>,
    summary: &mut MatchSummary,
    store_one: &mut dyn FnMut(&HitChange) -> Result<bool, CrimeStoreError>,
) {
    let newer: BTreeSet<String> = changes.iter().map(|c| change_id(c).to_string()).collect();
    let earlier: Vec<HitChange> = std::mem::take(&mut retry.changes)
        .into_iter()
        .filter(|(id, _)| !newer.contains(id))
        .map(|(_, c)| c)
        .collect();
    for change in earlier.into_iter().chain(changes) {
        match store_one(&change) {
            Ok(changed) => match change {
                HitChange::Upsert(_) => summary.hits += u64::from(changed),
                HitChange::Withdraw { .. } => summary.withdrawn += u64::from(changed),
            },
            Err(e) => {
                let id = change_id(&change).to_string();
                tracing::error!(error = %e, hit = %id, "storing a hit change failed; will retry");
                summary.store_failures += 1;
                retry.changes.insert(id, change);
            }
        }
    }
    summary.retry_pending = retry.len();
}

/// Why [`match_into`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error(transparent)]
    Trails(#[from] crate::store::trails::TrailError),
    #[error("{failed} hit change(s) could not be stored (first: {first})")]
    Store { failed: u64, first: String },
}

/// Runs the whole retrospective match of `crimes` over any trail source into `store` (replay,
/// where nobody would retry: a hit change that cannot be stored fails the match).
pub fn match_into(
    matcher: &mut HitMatcher,
    store: &CrimeStore,
    source: &dyn TrailSource,
    crimes: Vec<CrimeVersion>,
) -> Result<MatchSummary, MatchError> {
    let started = Instant::now();
    let mut summary = MatchSummary {
        crimes: crimes.len() as u64,
        ..MatchSummary::default()
    };
    let slots = matcher.add_crimes(crimes);
    let changes = matcher.match_crimes(source, &slots)?;
    let mut first = None;
    let mut retry = Retry::default();
    store_changes(&mut retry, changes, &mut summary, &mut |c| {
        store_change(store, c).inspect_err(|e| {
            if first.is_none() {
                first = Some(e.to_string());
            }
        })
    });
    if let Some(first) = first {
        return Err(MatchError::Store {
            failed: summary.store_failures,
            first,
        });
    }
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crime::matcher::MemoryTrails;
    use crate::crime::test_fixtures::{crime, gps, MIN, T0};
    use crate::model::TimeMs;
    use crate::store::crime_store::HitWithdrawal;
    use crate::store::trails::{QueryBox, TrailError};

    /// Trails that fail every read while `failing` is set (a trail store I/O error).
    struct Flaky {
        inner: MemoryTrails,
        failing: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<(), TrailError> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(TrailError::Io {
                    op: "read",
                    path: "trails/seg-1".into(),
                    source: std::io::Error::other("injected"),
                });
            }
            Ok(())
        }
    }

    impl TrailSource for Flaky {
        fn candidates(
            &self,
            q: &QueryBox,
        ) -> Result<Vec<crate::crime::matcher::PathCandidate>, TrailError> {
            self.check()?;
            self.inner.candidates(q)
        }
        fn positions(&self, a: &str, from: TimeMs, to: TimeMs) -> Result<Vec<Reading>, TrailError> {
            self.check()?;
            self.inner.positions(a, from, to)
        }
    }

    /// A walk past the crime (two fixes 600 m apart either side of it): one hit.
    fn walk_past() -> (HitMatcher, Vec<HitChange>) {
        let config = HitsConfig::default();
        let mut trails = MemoryTrails::new(config.max_gap_s * 1000);
        for r in [
            gps(T0 + 10 * MIN, -300.0, 40.0),
            gps(T0 + 14 * MIN, 300.0, 40.0),
        ] {
            trails.push("A1", r);
        }
        trails.seal();
        let mut matcher = HitMatcher::new(config);
        matcher.set_person("A1", "P1");
        let slots = matcher.add_crimes([crime()]);
        let changes = matcher.match_crimes(&trails, &slots).unwrap();
        assert!(matches!(&changes[..], [HitChange::Upsert(_)]));
        (matcher, changes)
    }

    #[test]
    fn a_hit_change_the_store_refuses_is_counted_kept_and_stored_by_the_next_pass() {
        let store = CrimeStore::in_memory().unwrap();
        let (_, changes) = walk_past();
        let mut retry = Retry::default();
        let mut write = |_: &HitChange| Err(CrimeStoreError::Invalid("injected: disk full".into()));
        let mut first = MatchSummary::default();
        store_changes(&mut retry, changes, &mut first, &mut write);
        assert_eq!(
            (first.hits, first.store_failures, first.retry_pending),
            (0, 1, 1),
            "not counted as stored, counted as failed, kept"
        );
        let mut write = |c: &HitChange| store_change(&store, c);
        let mut next = MatchSummary::default();
        store_changes(&mut retry, Vec::new(), &mut next, &mut write);
        assert_eq!(
            (next.hits, next.store_failures, next.retry_pending),
            (1, 0, 0)
        );
        let stored = store.hits(&Default::default()).unwrap();
        assert_eq!(stored.len(), 1, "the hit is in the store");
    }

    #[test]
    fn a_newer_change_supersedes_a_kept_one() {
        let store = CrimeStore::in_memory().unwrap();
        let (_, changes) = walk_past();
        let id = change_id(&changes[0]).to_string();
        let mut retry = Retry::default();
        let mut summary = MatchSummary::default();
        store_changes(&mut retry, changes, &mut summary, &mut |_| {
            Err(CrimeStoreError::Invalid("injected".into()))
        });
        // The hit was withdrawn meanwhile (a late fix): only the withdrawal is written, and
        // there was nothing stored to withdraw.
        let mut written = Vec::new();
        let mut summary = MatchSummary::default();
        store_changes(
            &mut retry,
            vec![HitChange::Withdraw {
                id: id.clone(),
                why: HitWithdrawal {
                    change: None,
                    reason: "test".into(),
                },
            }],
            &mut summary,
            &mut |c| {
                written.push(matches!(c, HitChange::Withdraw { .. }));
                store_change(&store, c)
            },
        );
        assert_eq!(written, vec![true]);
        assert_eq!((summary.withdrawn, summary.retry_pending), (0, 0));
        assert!(store.hits(&Default::default()).unwrap().is_empty());
    }

    #[test]
    fn replay_matching_fails_loudly_when_a_hit_cannot_be_stored() {
        let config = HitsConfig::default();
        let mut trails = MemoryTrails::new(config.max_gap_s * 1000);
        for r in [
            gps(T0 + 10 * MIN, -300.0, 40.0),
            gps(T0 + 14 * MIN, 300.0, 40.0),
        ] {
            trails.push("A1", r);
        }
        trails.seal();
        let store = CrimeStore::in_memory().unwrap();
        let mut matcher = HitMatcher::new(config);
        let ok = match_into(&mut matcher, &store, &trails, vec![crime()]).unwrap();
        assert_eq!((ok.hits, ok.store_failures), (1, 0));
        // A store that cannot write: the match is an error, not a summary of zero hits.
        let broken = CrimeStore::in_memory().unwrap();
        broken.break_hits_for_tests();
        let mut matcher = HitMatcher::new(config);
        let err = match_into(&mut matcher, &broken, &trails, vec![crime()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("1 hit change(s) could not be stored"),
            "{err}"
        );
    }

    #[test]
    fn live_matching_that_failed_to_read_the_trails_finds_the_hit_when_done_again() {
        let config = HitsConfig::default();
        let mut trails = Flaky {
            inner: MemoryTrails::new(config.max_gap_s * 1000),
            failing: AtomicBool::new(false),
        };
        let mut matcher = HitMatcher::new(config);
        matcher.set_person("A1", "P1");
        matcher.add_crimes([crime()]);
        let west = gps(T0 + 10 * MIN, -300.0, 40.0);
        trails.inner.push("A1", west);
        trails.inner.seal();
        assert!(matcher
            .on_positions(&trails, "A1", &[west])
            .unwrap()
            .is_empty());
        // The next fix is appended to the trail store, but reading the trails fails.
        let east = gps(T0 + 14 * MIN, 300.0, 40.0);
        trails.inner.push("A1", east);
        trails.inner.seal();
        trails.failing.store(true, Ordering::Relaxed);
        assert!(matcher.on_positions(&trails, "A1", &[east]).is_err());
        // Done again once the trails can be read: the walk past the crime is a hit (the failed
        // attempt must not have moved the matcher on past the west fix).
        trails.failing.store(false, Ordering::Relaxed);
        let changes = matcher.on_positions(&trails, "A1", &[east]).unwrap();
        assert!(
            matches!(&changes[..], [HitChange::Upsert(_)]),
            "{changes:?}"
        );
    }

    /// A trail store holding A1's walk past the crime, a crime store holding the crime (as an
    /// upload stores it), and A1's activation from a day before the crime.
    fn stores(dir: &std::path::Path) -> (TrailStore, CrimeStore, crate::model::Activation) {
        let (trails, _) =
            TrailStore::open(dir, crate::store::trails::TrailConfig::default()).unwrap();
        let walk = [
            gps(T0 + 10 * MIN, -300.0, 40.0),
            gps(T0 + 14 * MIN, 300.0, 40.0),
        ];
        trails.append("A1", 1, &walk).unwrap();
        let store = CrimeStore::in_memory().unwrap();
        // 2026-05-28T20:26:40Z (T0) for an hour, at the crime's location.
        let csv = "AvonSomerset,BIAD,Burglary in a dwelling,AVS20260601,AVS/1,20260528202640,\
                   20260528212640,,,51.4545,-2.5879,WGS84,x\n";
        let report = crate::crime::import::parse(
            csv.as_bytes(),
            None,
            &crate::crime::PoliceCsvRules::default(),
        );
        let (_, versions) =
            crate::crime::import::store(&store, "b.csv", &report, 100.0, "test", 0).unwrap();
        assert_eq!(versions.len(), 1, "{:?}", report);
        let a1 = crate::model::Activation {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from: T0 - 24 * 60 * MIN,
            to: None,
        };
        (trails, store, a1)
    }

    fn start(
        store: &CrimeStore,
        trails: &TrailStore,
        a1: &crate::model::Activation,
    ) -> (HitService, MatchSummary) {
        let directory = Arc::new(ActivationDirectory::new(std::slice::from_ref(a1)));
        HitService::start(
            HitsConfig::default(),
            store.clone(),
            trails.clone(),
            directory,
            None,
        )
        .unwrap()
    }

    /// Waits (up to 10 s) until the hit is withdrawn; its withdrawal.
    fn withdrawn(store: &CrimeStore, id: &str) -> HitWithdrawal {
        for _ in 0..200 {
            if let Some(w) = store.hit(id).unwrap().and_then(|h| h.withdrawn) {
                return w;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hit {id} was not withdrawn");
    }

    #[test]
    fn a_backdated_end_withdraws_the_hit_naming_the_record_and_a_restart_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (trails, store, a1) = stores(dir.path());
        let (service, summary) = start(&store, &trails, &a1);
        assert_eq!((summary.hits, summary.withdrawn), (1, 0), "{summary:?}");
        let id = store.hits(&Default::default()).unwrap()[0].hit.id.clone();
        // Record 17 ends A1 a minute before the crime; the forwarder passes the person's
        // activations as the metadata view applied them.
        let end = Change::EndActivation {
            activation: "A1".into(),
            to: T0 - MIN,
        };
        service.control(17, &end, vec![("A1".into(), "P1".into())]);
        let why = withdrawn(&store, &id);
        assert_eq!(why.change, Some(17));
        assert_eq!(
            why.reason,
            "activation 'A1' ended 2026-05-28T20:25:40Z, so its positions from then on no longer \
             count (change 17): the trail of activation 'A1' no longer comes within 100 m of \
             crime 'AVS/1' version 1 during its window"
        );
        // A restart builds the matcher from the final activations: nothing to do, the hit stays
        // withdrawn for the same reason.
        drop(service);
        let ended = crate::model::Activation {
            to: Some(T0 - MIN),
            ..a1
        };
        let (_, summary) = start(&store, &trails, &ended);
        assert_eq!((summary.hits, summary.withdrawn), (0, 0), "{summary:?}");
        assert_eq!(store.hit(&id).unwrap().unwrap().withdrawn, Some(why));
    }

    #[test]
    fn a_later_start_withdraws_and_a_start_after_a_lost_withdrawal_makes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (trails, store, a1) = stores(dir.path());
        let (service, _) = start(&store, &trails, &a1);
        let id = store.hits(&Default::default()).unwrap()[0].hit.id.clone();
        // A refused record (no activations applied) changes nothing.
        let later = crate::model::Activation {
            from: T0 + 12 * MIN,
            ..a1.clone()
        };
        let put = Change::PutActivation {
            activation: later.clone(),
        };
        service.control(18, &put, Vec::new());
        // Applied: the walk's first fix is no longer A1's.
        service.control(19, &put, vec![("A1".into(), "P1".into())]);
        let why = withdrawn(&store, &id);
        assert_eq!(why.change, Some(19));
        assert!(
            why.reason.starts_with(
                "activation 'A1' now runs from 2026-05-28T20:38:40Z to now (open), so only its \
                 positions in that period count (change 19): the trail of activation 'A1' no \
                 longer"
            ),
            "{}",
            why.reason
        );
        drop(service);

        // A store that never got the withdrawal (a crash): the hit is current again there.
        let fresh = CrimeStore::in_memory().unwrap();
        let (_, versions) = {
            let csv = "AvonSomerset,BIAD,Burglary in a dwelling,AVS20260601,AVS/1,\
                       20260528202640,20260528212640,,,51.4545,-2.5879,WGS84,x\n";
            let report = crate::crime::import::parse(
                csv.as_bytes(),
                None,
                &crate::crime::PoliceCsvRules::default(),
            );
            crate::crime::import::store(&fresh, "b.csv", &report, 100.0, "test", 0).unwrap()
        };
        assert_eq!(versions.len(), 1);
        let hit = store.hit(&id).unwrap().unwrap().hit;
        fresh.upsert_hit(&hit).unwrap();
        let (_, summary) = start(&fresh, &trails, &later);
        assert_eq!(summary.withdrawn, 1, "{summary:?}");
        let why = fresh.hit(&id).unwrap().unwrap().withdrawn.unwrap();
        assert_eq!(why.change, None);
        assert!(
            why.reason
                .starts_with("matched again against the stored trails: the trail of activation"),
            "{}",
            why.reason
        );
    }
}
