//! The hit service: one worker thread that owns the [`HitMatcher`] (crime catalogue and R-tree)
//! and serialises every evaluation, so a hit's stored form is always the latest one computed
//! from the trail store. It takes three kinds of work:
//! - new positions, per activation, from the trail feed right after they were appended to the
//!   trail store (live matching);
//! - new crime versions from an import, answered when their retrospective match is done;
//! - at start, every stored crime version, matched against the trails (this also repairs any hit
//!   change lost in a crash: hits are derived from durable crimes and durable trails).

use super::matcher::{HitChange, HitMatcher, TrailSource};
use crate::model::{CrimeVersion, Reading};
use crate::pipeline::ActivationDirectory;
use crate::rules::hits::HitsConfig;
use crate::store::crime_store::{CrimeStore, CrimeStoreError};
use crate::store::trails::TrailStore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// What a retrospective match did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MatchSummary {
    pub crimes: u64,
    /// Hits created or changed.
    pub hits: u64,
    pub withdrawn: u64,
    pub elapsed_ms: u64,
}

enum Job {
    Positions(Vec<(String, Vec<Reading>)>),
    /// An activation was created (or changed) after start: whose positions it carries.
    Activation {
        id: String,
        person: String,
    },
    Crimes(Vec<CrimeVersion>, Sender<MatchSummary>),
}

/// Handle to the worker; cheap to clone.
#[derive(Clone)]
pub struct HitService {
    jobs: Sender<Job>,
    /// Whether any crime is indexed: until one is, positions are not worth sending (a new
    /// batch is matched retrospectively against everything stored anyway).
    has_crimes: Arc<AtomicBool>,
}

impl HitService {
    /// Starts the worker: loads every stored crime, matches them all against the trails, then
    /// serves jobs. Returns once the start-up match is done.
    pub fn start(
        config: HitsConfig,
        store: CrimeStore,
        trails: TrailStore,
        directory: Arc<ActivationDirectory>,
    ) -> Result<(HitService, MatchSummary), CrimeStoreError> {
        let mut matcher = HitMatcher::new(config);
        for a in directory.all() {
            matcher.set_person(&a.id, &a.person);
        }
        let crimes = store.all_crimes()?;
        let has_crimes = Arc::new(AtomicBool::new(!crimes.is_empty()));
        let slots = matcher.add_crimes(crimes);
        let started = std::time::Instant::now();
        let summary = match matcher.match_crimes(&trails, &slots) {
            Ok(changes) => apply(&store, changes, slots.len() as u64, started),
            Err(e) => {
                tracing::error!(error = %e, "start-up crime matching failed");
                MatchSummary::default()
            }
        };
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("hit-matcher".into())
            .spawn(move || run(matcher, store, trails, rx))
            .map_err(|e| CrimeStoreError::Invalid(format!("cannot start the hit matcher: {e}")))?;
        Ok((
            HitService {
                jobs: tx,
                has_crimes,
            },
            summary,
        ))
    }

    /// An activation created or changed while running: hits of its positions name its person.
    pub fn activation(&self, id: &str, person: &str) {
        let _ = self.jobs.send(Job::Activation {
            id: id.to_string(),
            person: person.to_string(),
        });
    }

    /// Live matching of positions just appended to the trail store.
    pub fn positions(&self, groups: Vec<(String, Vec<Reading>)>) {
        if !groups.is_empty() && self.has_crimes.load(Ordering::Acquire) {
            let _ = self.jobs.send(Job::Positions(groups));
        }
    }

    /// Retrospective matching of new crime versions; blocks until done.
    pub fn match_new_crimes(&self, crimes: Vec<CrimeVersion>) -> MatchSummary {
        if !crimes.is_empty() {
            self.has_crimes.store(true, Ordering::Release);
        }
        let (tx, rx) = channel();
        if self.jobs.send(Job::Crimes(crimes, tx)).is_err() {
            return MatchSummary::default();
        }
        rx.recv().unwrap_or_default()
    }
}

fn run(mut matcher: HitMatcher, store: CrimeStore, trails: TrailStore, jobs: Receiver<Job>) {
    for job in jobs {
        match job {
            Job::Activation { id, person } => matcher.set_person(&id, &person),
            Job::Positions(groups) => {
                let started = std::time::Instant::now();
                let mut changes = Vec::new();
                for (activation, readings) in &groups {
                    match matcher.on_positions(&trails, activation, readings) {
                        Ok(c) => changes.extend(c),
                        Err(e) => {
                            tracing::error!(error = %e, activation, "live hit matching failed")
                        }
                    }
                }
                apply(&store, changes, 0, started);
            }
            Job::Crimes(crimes, reply) => {
                let started = std::time::Instant::now();
                let n = crimes.len() as u64;
                let slots = matcher.add_crimes(crimes);
                let summary = match matcher.match_crimes(&trails, &slots) {
                    Ok(changes) => apply(&store, changes, n, started),
                    Err(e) => {
                        tracing::error!(error = %e, "crime matching failed");
                        MatchSummary::default()
                    }
                };
                let _ = reply.send(summary);
            }
        }
    }
}

/// Writes hit changes to the store.
pub fn apply(
    store: &CrimeStore,
    changes: Vec<HitChange>,
    crimes: u64,
    started: std::time::Instant,
) -> MatchSummary {
    let mut summary = MatchSummary {
        crimes,
        ..MatchSummary::default()
    };
    for change in changes {
        let result = match &change {
            HitChange::Upsert(hit) => store.upsert_hit(hit).map(|c| summary.hits += c as u64),
            HitChange::Withdraw { id } => store
                .withdraw_hit(id)
                .map(|c| summary.withdrawn += c as u64),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "storing a hit failed");
        }
    }
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    summary
}

/// Runs the whole retrospective match of `crimes` over any trail source into `store` (replay).
pub fn match_into(
    matcher: &mut HitMatcher,
    store: &CrimeStore,
    source: &dyn TrailSource,
    crimes: Vec<CrimeVersion>,
) -> Result<MatchSummary, crate::store::trails::TrailError> {
    let started = std::time::Instant::now();
    let n = crimes.len() as u64;
    let slots = matcher.add_crimes(crimes);
    let changes = matcher.match_crimes(source, &slots)?;
    Ok(apply(store, changes, n, started))
}
