//! The hit matcher: keeps the catalogue of crime versions and their R-tree, and runs the hit rule
//! ([`crate::rules::hits::evaluate`]) both ways over a [`TrailSource`]:
//! - **retrospective** ([`HitMatcher::match_crimes`]): a new batch's crimes against stored trails,
//!   one spatio-temporal query of the trail index per crime (never a scan of positions), then the
//!   rule on each candidate activation's positions around the window;
//! - **live** ([`HitMatcher::on_positions`]): each new position, with the path from its
//!   neighbouring fix, against the crime R-tree; a late position (after a signal loss) is matched
//!   with its neighbours read back from the trail. Existing hits whose evidence window a new
//!   position falls in are re-evaluated too, since the evidence (or the verdict) changes.
//!
//! Every evaluation reads the activation's positions around the crime window from the source, so
//! a hit's final form depends only on the positions stored, not on the order they arrived in:
//! live matching and `tagstream replay` agree byte for byte. Only positions inside the
//! activation's period count (a backdated end or a narrowed period leaves positions stored under
//! it that are no longer its own); a change to the period re-evaluates the activation's hits
//! ([`HitMatcher::set_activation`], [`HitMatcher::recheck`]). A hit that no longer holds is
//! withdrawn with the [`Cause`] in words.

use crate::model::time::format_time;
use crate::model::{hit_id, CrimeKey, CrimeVersion, Hit, Reading, ReadingBody, TimeMs};
use crate::rules::hits::index::{crime_box, CrimeIndex, PathBox};
use crate::rules::hits::{evaluate, qualifies, HitsConfig};
use crate::store::crime_store::HitWithdrawal;
use crate::store::trails::{QueryBox, TrailError, TrailStore};
use std::collections::{BTreeSet, HashMap};

/// Where the matcher reads trails from: the trail store live, memory in replay.
pub trait TrailSource: Sync {
    /// Activations whose path may meet the box during its window (a superset is fine), each
    /// with a time range outside which its path does not meet the box.
    fn candidates(&self, q: &QueryBox) -> Result<Vec<PathCandidate>, TrailError>;
    /// The activation's positions with event time in `[from_ms, to_ms]` (more is harmless).
    fn positions(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<Reading>, TrailError>;
}

/// An activation that may meet a query box, and when.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathCandidate {
    pub activation: String,
    /// Every piece of its path that meets the box lies within this range (both ends of a
    /// segment included).
    pub from_ms: TimeMs,
    pub to_ms: TimeMs,
}

impl TrailSource for TrailStore {
    /// The R-tree of block envelopes: a block's envelope covers its fixes and the segment from the
    /// fix before it, in space and time, so the union of the meeting envelopes' time ranges
    /// bounds every piece of path that can meet the box.
    fn candidates(&self, q: &QueryBox) -> Result<Vec<PathCandidate>, TrailError> {
        Ok(TrailStore::candidates(self, q)
            .into_iter()
            .map(|c| PathCandidate {
                activation: c.activation,
                from_ms: c.from_ms,
                to_ms: c.to_ms,
            })
            .collect())
    }

    fn positions(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<Reading>, TrailError> {
        // The exact window, no neighbours: every segment the rule looks at has both ends
        // inside the windows the matcher asks for.
        TrailStore::positions(self, activation, from_ms, to_ms)
    }
}

/// The trail index query of a crime: its reach box during its window.
pub fn crime_query(crime: &CrimeVersion, config: &HitsConfig) -> QueryBox {
    let b = crime_box(crime, config);
    QueryBox {
        min_lon: b.min_lon,
        min_lat: b.min_lat,
        max_lon: b.max_lon,
        max_lat: b.max_lat,
        from_ms: b.from_ms,
        to_ms: b.to_ms,
    }
}

/// One evaluation: crime slot, activation, and the hit if any.
type Verdict = (u32, String, Option<Hit>);

/// What an evaluation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum HitChange {
    /// A new hit, or a new form of an existing one.
    Upsert(Box<Hit>),
    /// A hit whose trail no longer qualifies (a late fix changed the path between two fixes, or
    /// a change to the activation's period left its evidence outside it), and why.
    Withdraw { id: String, why: HitWithdrawal },
}

/// Why an evaluation was made: what a withdrawal it makes says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Matching crimes against the stored trails (a new batch, start-up, a retried match).
    Rematch,
    /// Positions that came in for the activation; `late` when some were older than its latest
    /// fix (uploaded after a signal loss).
    Positions {
        late: bool,
        count: usize,
        first_ms: TimeMs,
        last_ms: TimeMs,
    },
    /// The control record at log record `record` changed the activation; `what` says how.
    Change { record: u64, what: String },
}

impl Cause {
    /// The positions of `readings`, as a cause (`late`: older than the latest fix before them).
    fn of_positions(readings: &[Reading], latest_ms: Option<TimeMs>) -> Cause {
        let times = readings
            .iter()
            .filter(|r| matches!(r.body, ReadingBody::Position(_)))
            .map(|r| r.t_ms);
        let (count, first_ms, last_ms) = times.fold((0, TimeMs::MAX, TimeMs::MIN), |acc, t| {
            (acc.0 + 1, acc.1.min(t), acc.2.max(t))
        });
        Cause::Positions {
            late: latest_ms.is_some_and(|l| first_ms < l),
            count,
            first_ms,
            last_ms,
        }
    }

    /// The withdrawal this cause makes, `verdict` saying what no longer holds.
    fn withdrawal(&self, verdict: &str) -> HitWithdrawal {
        match self {
            Cause::Rematch => HitWithdrawal {
                change: None,
                reason: format!("matched again against the stored trails: {verdict}"),
            },
            Cause::Positions {
                late,
                count,
                first_ms,
                last_ms,
            } => {
                let kind = if *late { "late" } else { "new" };
                let when = if *count == 1 {
                    format!("{kind} position at {}", format_time(*first_ms))
                } else {
                    format!(
                        "{count} {kind} positions, {} to {}",
                        format_time(*first_ms),
                        format_time(*last_ms)
                    )
                };
                HitWithdrawal {
                    change: None,
                    reason: format!("{when}: {verdict}"),
                }
            }
            Cause::Change { record, what } => HitWithdrawal {
                change: Some(*record),
                reason: format!("{what} (change {record}): {verdict}"),
            },
        }
    }
}

/// An activation's period as the matcher uses it: positions at `from_ms` ≤ t < `to_ms` are its
/// own (`to_ms` `None`: still open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from_ms: TimeMs,
    pub to_ms: Option<TimeMs>,
}

impl Period {
    fn covers(&self, t_ms: TimeMs) -> bool {
        t_ms >= self.from_ms && self.to_ms.is_none_or(|to| t_ms < to)
    }

    /// The last millisecond inside (inclusive end).
    fn last_ms(&self) -> TimeMs {
        self.to_ms.map_or(TimeMs::MAX, |to| to.saturating_sub(1))
    }

    /// The time ranges (inclusive) `self` covers and `before` did not.
    fn gained_over(&self, before: &Period) -> Vec<(TimeMs, TimeMs)> {
        let mut out = Vec::new();
        if self.from_ms < before.from_ms {
            out.push((self.from_ms, self.last_ms().min(before.from_ms - 1)));
        }
        if self.last_ms() > before.last_ms() {
            out.push((self.from_ms.max(before.last_ms() + 1), self.last_ms()));
        }
        out.retain(|(a, b)| a <= b);
        out
    }
}

/// Crime catalogue, crime index and the hits found so far (per activation, for re-evaluation).
pub struct HitMatcher {
    config: HitsConfig,
    crimes: Vec<CrimeVersion>,
    slots: HashMap<CrimeKey, u32>,
    index: CrimeIndex,
    /// activation → slots of crimes it has a hit on.
    hits: HashMap<String, BTreeSet<u32>>,
    /// activation → its latest fix (time, lat, lon), for the live path piece.
    last_fix: HashMap<String, (TimeMs, f64, f64)>,
    /// activation → person.
    people: HashMap<String, String>,
    /// activation → its period (an activation without one is unbounded).
    periods: HashMap<String, Period>,
    /// The activations this matcher evaluates (a processing node: those of its partitions);
    /// `None`: every one.
    only: Option<ActivationFilter>,
}

/// Which activations a matcher evaluates: `true` for its own.
pub type ActivationFilter = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl HitMatcher {
    pub fn new(config: HitsConfig) -> Self {
        HitMatcher {
            config,
            crimes: Vec::new(),
            slots: HashMap::new(),
            index: CrimeIndex::default(),
            hits: HashMap::new(),
            last_fix: HashMap::new(),
            people: HashMap::new(),
            periods: HashMap::new(),
            only: None,
        }
    }

    /// Evaluates only the activations `filter` says are this matcher's (cluster mode, a node
    /// owning some partitions: the other partitions' hits are their owners' to find).
    pub fn only(mut self, filter: ActivationFilter) -> Self {
        self.only = Some(filter);
        self
    }

    /// Whether `activation` is one this matcher evaluates.
    pub fn owns(&self, activation: &str) -> bool {
        self.only.as_ref().is_none_or(|f| f(activation))
    }

    pub fn config(&self) -> &HitsConfig {
        &self.config
    }

    /// Sets who an activation belongs to (hits name the person).
    pub fn set_person(&mut self, activation: &str, person: &str) {
        self.people
            .insert(activation.to_string(), person.to_string());
    }

    /// An activation's person and period, when its period is known.
    pub fn activation(&self, id: &str) -> Option<(String, Period)> {
        let period = *self.periods.get(id)?;
        let person = self.people.get(id).cloned().unwrap_or_default();
        Some((person, period))
    }

    /// Sets an activation's person and period. `None` when neither changed; otherwise the time
    /// ranges the period gained (where positions stored under the activation may count again),
    /// empty for an activation the matcher did not know (nothing is stored under a new one).
    /// The caller re-evaluates with [`HitMatcher::recheck_slots`] and [`HitMatcher::recheck`].
    pub fn set_activation(
        &mut self,
        id: &str,
        person: &str,
        period: Period,
    ) -> Option<Vec<(TimeMs, TimeMs)>> {
        let before = self.periods.insert(id.to_string(), period);
        let moved = self.people.get(id).map(String::as_str) != Some(person);
        self.set_person(id, person);
        if before == Some(period) && !moved {
            return None;
        }
        // The live path piece starts afresh: the latest fix may be outside the period now.
        self.last_fix.remove(id);
        Some(before.map(|b| period.gained_over(&b)).unwrap_or_default())
    }

    /// What a change to an activation may change: its hits, and the crimes whose positions of
    /// interest fall in time its period `gained`.
    pub fn recheck_slots(&self, activation: &str, gained: &[(TimeMs, TimeMs)]) -> BTreeSet<u32> {
        let mut slots = self.hits.get(activation).cloned().unwrap_or_default();
        if !gained.is_empty() {
            let reach_ms = self.config.max_gap_s * 1000;
            for (slot, crime) in self.crimes.iter().enumerate() {
                let (from, to) = self.config.evidence_window(crime);
                let (from, to) = (
                    from.min(crime.from_ms - reach_ms),
                    to.max(crime.to_ms + reach_ms),
                );
                if gained.iter().any(|&(a, b)| a <= to && b >= from) {
                    slots.insert(slot as u32);
                }
            }
        }
        slots
    }

    /// Notes a stored hit (crime version, activation) as found (start-up), so that evaluating
    /// it again can withdraw it; its slot, if the crime is known.
    pub fn seed_hit(&mut self, crime: &CrimeKey, activation: &str) -> Option<u32> {
        if !self.owns(activation) {
            return None;
        }
        let slot = *self.slots.get(crime)?;
        self.hits
            .entry(activation.to_string())
            .or_default()
            .insert(slot);
        Some(slot)
    }

    /// Evaluates the crimes in `slots` against one activation again; a hit that no longer holds
    /// is withdrawn saying `cause`. Everything is read before any state changes.
    pub fn recheck(
        &mut self,
        source: &dyn TrailSource,
        activation: &str,
        slots: &BTreeSet<u32>,
        cause: &Cause,
    ) -> Result<Vec<HitChange>, TrailError> {
        if !self.owns(activation) {
            return Ok(Vec::new());
        }
        let mut verdicts = Vec::with_capacity(slots.len());
        for &slot in slots {
            if (slot as usize) < self.crimes.len() {
                verdicts.push((slot, self.evaluate_one(source, slot, activation, None)?));
            }
        }
        Ok(verdicts
            .into_iter()
            .filter_map(|(slot, verdict)| self.record(slot, activation, verdict, cause))
            .collect())
    }

    /// The activation's period (unbounded when unknown).
    fn period(&self, activation: &str) -> Period {
        self.periods.get(activation).copied().unwrap_or(Period {
            from_ms: TimeMs::MIN,
            to_ms: None,
        })
    }

    /// `readings` without those outside the activation's period.
    fn own(&self, activation: &str, mut readings: Vec<Reading>) -> Vec<Reading> {
        let period = self.period(activation);
        readings.retain(|r| period.covers(r.t_ms));
        readings
    }

    pub fn crimes(&self) -> &[CrimeVersion] {
        &self.crimes
    }

    /// Adds crime versions (a version already known is kept as it is) and returns their slots.
    pub fn add_crimes(&mut self, crimes: impl IntoIterator<Item = CrimeVersion>) -> Vec<u32> {
        let mut added = Vec::new();
        let bulk = self.index.is_empty();
        for crime in crimes {
            if let Some(&slot) = self.slots.get(&crime.key()) {
                added.push(slot);
                continue;
            }
            let slot = self.crimes.len() as u32;
            if !bulk {
                self.index.insert(slot, &crime, &self.config);
            }
            self.slots.insert(crime.key(), slot);
            self.crimes.push(crime);
            added.push(slot);
        }
        if bulk {
            self.index = CrimeIndex::build(
                self.crimes.iter().enumerate().map(|(i, c)| (i as u32, c)),
                &self.config,
            );
        }
        added
    }

    /// Retrospective matching of the crimes in `slots` against the stored trails. The crimes
    /// are split across the machine's cores (each evaluation is pure); the results are applied
    /// in slot order, so the outcome does not depend on the number of threads.
    pub fn match_crimes(
        &mut self,
        source: &dyn TrailSource,
        slots: &[u32],
    ) -> Result<Vec<HitChange>, TrailError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16);
        let chunk = slots.len().div_ceil(threads).max(1);
        let this = &*self;
        let results: Vec<Result<Vec<Verdict>, TrailError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = slots
                .chunks(chunk)
                .map(|part| scope.spawn(move || this.evaluate_crimes(source, part)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        // Every part is read before any verdict is recorded: a failed read leaves the matcher
        // as it was, so matching the same crimes again later gives every change (none is
        // recorded here and lost with the error).
        let verdicts = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut changes = Vec::new();
        for (slot, activation, verdict) in verdicts.into_iter().flatten() {
            if let Some(change) = self.record(slot, &activation, verdict, &Cause::Rematch) {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// The hit rule for each crime against each candidate activation (read-only).
    fn evaluate_crimes(
        &self,
        source: &dyn TrailSource,
        slots: &[u32],
    ) -> Result<Vec<Verdict>, TrailError> {
        let mut out = Vec::new();
        for &slot in slots {
            let Some(crime) = self.crimes.get(slot as usize) else {
                continue;
            };
            let mut candidates = source.candidates(&crime_query(crime, &self.config))?;
            candidates.sort();
            candidates.dedup_by(|a, b| a.activation == b.activation);
            for c in candidates.into_iter().filter(|c| self.owns(&c.activation)) {
                let verdict =
                    self.evaluate_one(source, slot, &c.activation, Some((c.from_ms, c.to_ms)))?;
                out.push((slot, c.activation, verdict));
            }
        }
        Ok(out)
    }

    /// Live matching of new positions of one activation (already stored in `source`).
    pub fn on_positions(
        &mut self,
        source: &dyn TrailSource,
        activation: &str,
        readings: &[Reading],
    ) -> Result<Vec<HitChange>, TrailError> {
        if !self.owns(activation) {
            return Ok(Vec::new());
        }
        // Everything is read before any state changes: a failed read leaves the matcher as it
        // was, so the same positions can be matched again later (as late data if newer ones
        // came meanwhile) without a change lost.
        let mut last = self.last_fix.get(activation).copied();
        let cause = Cause::of_positions(readings, last.map(|l| l.0));
        let mut dirty = BTreeSet::new();
        for r in readings {
            self.pieces_touched(source, activation, r, &mut last, &mut dirty)?;
        }
        let mut verdicts = Vec::with_capacity(dirty.len());
        for slot in dirty {
            verdicts.push((slot, self.evaluate_one(source, slot, activation, None)?));
        }
        if let Some(last) = last {
            self.last_fix.insert(activation.to_string(), last);
        }
        Ok(verdicts
            .into_iter()
            .filter_map(|(slot, verdict)| self.record(slot, activation, verdict, &cause))
            .collect())
    }

    /// Adds to `dirty` the crimes a new reading may change the hit of: those the path piece
    /// ending (or, late, centred) at it could reach, and existing hits whose evidence it is in.
    /// `last`: the activation's latest fix so far (updated as readings are taken in).
    fn pieces_touched(
        &self,
        source: &dyn TrailSource,
        activation: &str,
        r: &Reading,
        last: &mut Option<(TimeMs, f64, f64)>,
        dirty: &mut BTreeSet<u32>,
    ) -> Result<(), TrailError> {
        let ReadingBody::Position(p) = &r.body else {
            return Ok(());
        };
        let period = self.period(activation);
        if !period.covers(r.t_ms) {
            // Not this activation's (any more): it changes none of its hits.
            return Ok(());
        }
        let max_gap_ms = self.config.max_gap_s * 1000;
        let (lat, lon) = (p.lat(), p.lon());
        let mut piece = PathBox::point(lat, lon, r.t_ms);
        match *last {
            Some((t, plat, plon)) if r.t_ms >= t => {
                if r.t_ms - t <= max_gap_ms {
                    piece.add(plat, plon, t);
                }
                *last = Some((r.t_ms, lat, lon));
            }
            previous => {
                // Late, or the first fix this matcher sees of the activation (after a start, or
                // before any crime was indexed): its neighbours come back from the stored trail.
                let around =
                    source.positions(activation, r.t_ms - max_gap_ms, r.t_ms + max_gap_ms)?;
                for n in around {
                    if let ReadingBody::Position(np) = &n.body {
                        if (n.t_ms - r.t_ms).abs() <= max_gap_ms && period.covers(n.t_ms) {
                            piece.add(np.lat(), np.lon(), n.t_ms);
                        }
                    }
                }
                if previous.is_none() {
                    *last = Some((r.t_ms, lat, lon));
                }
            }
        }
        self.index.query(&piece, |slot| {
            dirty.insert(slot);
        });
        if let Some(existing) = self.hits.get(activation) {
            for &slot in existing {
                let (from, to) = self.config.evidence_window(&self.crimes[slot as usize]);
                if r.t_ms >= from && r.t_ms <= to {
                    dirty.insert(slot);
                }
            }
        }
        Ok(())
    }

    /// `meeting`: when the candidate's path can meet the crime's box (from the trail index).
    fn evaluate_one(
        &self,
        source: &dyn TrailSource,
        slot: u32,
        activation: &str,
        meeting: Option<(TimeMs, TimeMs)>,
    ) -> Result<Option<Hit>, TrailError> {
        let crime = &self.crimes[slot as usize];
        // Most candidates are not hits: decide on the positions that can matter (when the path
        // can meet the box, within a gap of the window), and read the evidence only for a hit.
        let gap_ms = self.config.max_gap_s * 1000;
        let (mut lo, mut hi) = (crime.from_ms - gap_ms, crime.to_ms + gap_ms);
        // The candidate's range already holds both ends of every segment that meets the box
        // (an envelope covers its block's fixes and the fix before it), so no gap is added.
        if let Some((from, to)) = meeting {
            lo = lo.max(from);
            hi = hi.min(to);
        }
        // Only the activation's own positions: those inside its period.
        let period = self.period(activation);
        lo = lo.max(period.from_ms);
        hi = hi.min(period.last_ms());
        if hi < lo {
            return Ok(None);
        }
        let near = self.own(activation, source.positions(activation, lo, hi)?);
        if !qualifies(crime, &near, &self.config) {
            return Ok(None);
        }
        let (from, to) = self.config.evidence_window(crime);
        let positions = self.own(activation, source.positions(activation, from, to)?);
        let person = self
            .people
            .get(activation)
            .map(String::as_str)
            .unwrap_or("");
        Ok(evaluate(
            crime,
            activation,
            person,
            &positions,
            &self.config,
        ))
    }

    /// Notes a verdict in the per-activation hit sets and says what changed (a withdrawal says
    /// `cause`).
    fn record(
        &mut self,
        slot: u32,
        activation: &str,
        verdict: Option<Hit>,
        cause: &Cause,
    ) -> Option<HitChange> {
        let set = self.hits.entry(activation.to_string()).or_default();
        match verdict {
            Some(hit) => {
                set.insert(slot);
                Some(HitChange::Upsert(Box::new(hit)))
            }
            None if set.remove(&slot) => {
                let crime = &self.crimes[slot as usize];
                let verdict = format!(
                    "the trail of activation '{activation}' no longer comes within {} m of crime \
                     '{}' version {} during its window",
                    crime.radius_m, crime.crime_ref, crime.version
                );
                Some(HitChange::Withdraw {
                    id: hit_id(&crime.key(), activation),
                    why: cause.withdrawal(&verdict),
                })
            }
            None => None,
        }
    }
}

/// Trails held in memory (replay, tests): positions per activation, sorted by time.
pub struct MemoryTrails {
    by_activation: HashMap<String, Vec<Reading>>,
    max_gap_ms: TimeMs,
}

impl MemoryTrails {
    /// `max_gap_ms`: the hit rule's path gap limit (fixes further apart are not joined).
    pub fn new(max_gap_ms: TimeMs) -> Self {
        MemoryTrails {
            by_activation: HashMap::new(),
            max_gap_ms,
        }
    }

    pub fn push(&mut self, activation: &str, reading: Reading) {
        if matches!(reading.body, ReadingBody::Position(_)) {
            self.by_activation
                .entry(activation.to_string())
                .or_default()
                .push(reading);
        }
    }

    /// Sorts every trail by time (stable); call after the last push, before matching.
    pub fn seal(&mut self) {
        for list in self.by_activation.values_mut() {
            list.sort_by_key(|r| r.t_ms);
        }
    }
}

/// Replay's trail store: takes the positions the dispatcher filed under each activation.
impl crate::pipeline::Sink for MemoryTrails {
    fn emit(&mut self, output: crate::pipeline::Output, _cause_arrival_ms: Option<TimeMs>) {
        if let crate::pipeline::Output::Readings {
            activation,
            readings,
            ..
        } = output
        {
            for r in readings.readings() {
                self.push(&activation.id, *r);
            }
        }
    }
}

impl TrailSource for MemoryTrails {
    /// Activations whose fixes within a path gap of the window have a bounding box meeting the
    /// query box: every segment that reaches into the window lies inside that box, so this is a
    /// superset of the activations whose path meets the query (the rule decides exactly).
    fn candidates(&self, q: &QueryBox) -> Result<Vec<PathCandidate>, TrailError> {
        let mut out = Vec::new();
        for (activation, list) in &self.by_activation {
            let lo = list.partition_point(|r| r.t_ms < q.from_ms - self.max_gap_ms);
            let hi = list.partition_point(|r| r.t_ms <= q.to_ms + self.max_gap_ms);
            let mut bbox: Option<(f64, f64, f64, f64)> = None;
            for r in &list[lo..hi] {
                if let ReadingBody::Position(p) = &r.body {
                    let (lat, lon) = (p.lat(), p.lon());
                    let b = bbox.get_or_insert((lat, lon, lat, lon));
                    *b = (b.0.min(lat), b.1.min(lon), b.2.max(lat), b.3.max(lon));
                }
            }
            if let Some((min_lat, min_lon, max_lat, max_lon)) = bbox {
                if min_lat <= q.max_lat
                    && max_lat >= q.min_lat
                    && min_lon <= q.max_lon
                    && max_lon >= q.min_lon
                {
                    out.push(PathCandidate {
                        activation: activation.clone(),
                        from_ms: q.from_ms - self.max_gap_ms,
                        to_ms: q.to_ms + self.max_gap_ms,
                    });
                }
            }
        }
        Ok(out)
    }

    fn positions(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Result<Vec<Reading>, TrailError> {
        let Some(list) = self.by_activation.get(activation) else {
            return Ok(Vec::new());
        };
        let lo = list.partition_point(|r| r.t_ms < from_ms);
        let hi = list.partition_point(|r| r.t_ms <= to_ms);
        Ok(list[lo..hi].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crime::test_fixtures::{crime, gps, MIN, T0};

    const DAY: i64 = 24 * 60 * MIN;

    fn period(from_ms: TimeMs, to_ms: Option<TimeMs>) -> Period {
        Period { from_ms, to_ms }
    }

    /// A1 walks past the crime: two fixes 600 m apart either side of it, 10 and 14 minutes into
    /// its window.
    fn walk_past() -> (MemoryTrails, [Reading; 2]) {
        let fixes = [
            gps(T0 + 10 * MIN, -300.0, 40.0),
            gps(T0 + 14 * MIN, 300.0, 40.0),
        ];
        let mut trails = MemoryTrails::new(HitsConfig::default().max_gap_s * 1000);
        for r in fixes {
            trails.push("A1", r);
        }
        trails.seal();
        (trails, fixes)
    }

    /// A matcher knowing A1 (P1) with `p` and the crime; the crime's slot.
    fn matcher(p: Period) -> (HitMatcher, u32) {
        let mut m = HitMatcher::new(HitsConfig::default());
        m.set_activation("A1", "P1", p);
        let slot = m.add_crimes([crime()])[0];
        (m, slot)
    }

    fn withdrawal(changes: &[HitChange]) -> &HitWithdrawal {
        match changes {
            [HitChange::Withdraw { why, .. }] => why,
            other => panic!("expected one withdrawal, got {other:?}"),
        }
    }

    #[test]
    fn only_positions_inside_the_activation_period_make_a_hit() {
        let (trails, fixes) = walk_past();
        // Ended between the two fixes: the path past the crime is no longer A1's.
        let ended = period(T0 - DAY, Some(T0 + 12 * MIN));
        let (mut retro, slot) = matcher(ended);
        assert!(retro.match_crimes(&trails, &[slot]).unwrap().is_empty());
        let (mut live, _) = matcher(ended);
        assert!(live.on_positions(&trails, "A1", &fixes).unwrap().is_empty());
        // Started between them: the same.
        let (mut late_start, slot) = matcher(period(T0 + 12 * MIN, None));
        assert!(late_start
            .match_crimes(&trails, &[slot])
            .unwrap()
            .is_empty());
        // Open over both: a hit.
        let (mut open, slot) = matcher(period(T0 - DAY, None));
        let changes = open.match_crimes(&trails, &[slot]).unwrap();
        assert!(
            matches!(&changes[..], [HitChange::Upsert(_)]),
            "{changes:?}"
        );
    }

    #[test]
    fn a_matcher_owning_some_activations_finds_only_their_hits() {
        // A1 and A2 walk past the crime the same way.
        let (_, fixes) = walk_past();
        let mut trails = MemoryTrails::new(HitsConfig::default().max_gap_s * 1000);
        for activation in ["A1", "A2"] {
            for r in fixes {
                trails.push(activation, r);
            }
        }
        trails.seal();
        let open = period(T0 - DAY, None);
        let found = |m: &mut HitMatcher, slot: u32| -> Vec<String> {
            let mut changes = m.match_crimes(&trails, &[slot]).unwrap();
            for a in ["A1", "A2"] {
                changes.extend(m.on_positions(&trails, a, &fixes).unwrap());
            }
            changes
                .iter()
                .map(|c| match c {
                    HitChange::Upsert(hit) => hit.activation.clone(),
                    HitChange::Withdraw { id, .. } => id.clone(),
                })
                .collect()
        };
        let (all, slot) = matcher(open);
        let mut all = all;
        all.set_activation("A2", "P2", open);
        assert_eq!(found(&mut all, slot), ["A1", "A2", "A1", "A2"]);
        let (mine, slot) = matcher(open);
        let mut mine = mine.only(std::sync::Arc::new(|a: &str| a == "A2"));
        mine.set_activation("A2", "P2", open);
        assert_eq!(found(&mut mine, slot), ["A2", "A2"]);
        assert!(mine.seed_hit(&crime().key(), "A1").is_none());
    }

    #[test]
    fn an_activation_ended_before_the_crime_withdraws_its_hit_naming_the_change() {
        let (trails, _) = walk_past();
        let (mut m, slot) = matcher(period(T0 - DAY, None));
        let found = m.match_crimes(&trails, &[slot]).unwrap();
        let HitChange::Upsert(hit) = &found[0] else {
            panic!("{found:?}")
        };
        // A backdated end, before the crime's window: narrowed, nothing gained.
        let gained = m.set_activation("A1", "P1", period(T0 - DAY, Some(T0 - 60 * MIN)));
        assert_eq!(gained, Some(Vec::new()));
        let slots = m.recheck_slots("A1", &[]);
        assert_eq!(slots, BTreeSet::from([slot]));
        let cause = Cause::Change {
            record: 17,
            what: "activation 'A1' ended 2026-05-28T19:26:40Z".into(),
        };
        let changes = m.recheck(&trails, "A1", &slots, &cause).unwrap();
        let why = withdrawal(&changes);
        assert_eq!(why.change, Some(17));
        assert_eq!(
            why.reason,
            "activation 'A1' ended 2026-05-28T19:26:40Z (change 17): the trail of \
             activation 'A1' no longer comes within 100 m of crime 'AVS/1' version 1 during its \
             window"
        );
        assert!(matches!(&changes[0], HitChange::Withdraw { id, .. } if *id == hit.id));
        // Evaluating again changes nothing (withdrawn once).
        assert!(m.recheck(&trails, "A1", &slots, &cause).unwrap().is_empty());
        // The end corrected back to open: the period gained the crime's time, the hit returns.
        let gained = m
            .set_activation("A1", "P1", period(T0 - DAY, None))
            .unwrap();
        assert_eq!(gained, vec![(T0 - 60 * MIN, TimeMs::MAX)]);
        let slots = m.recheck_slots("A1", &gained);
        assert_eq!(slots, BTreeSet::from([slot]));
        let back = m.recheck(&trails, "A1", &slots, &Cause::Rematch).unwrap();
        assert_eq!(back, found);
    }

    #[test]
    fn an_activation_given_to_another_person_renames_its_hits() {
        let (trails, _) = walk_past();
        let open = period(T0 - DAY, None);
        let (mut m, slot) = matcher(open);
        m.match_crimes(&trails, &[slot]).unwrap();
        assert_eq!(m.set_activation("A1", "P1", open), None, "nothing changed");
        let gained = m.set_activation("A1", "P2", open).unwrap();
        let slots = m.recheck_slots("A1", &gained);
        let cause = Cause::Change {
            record: 9,
            what: "moved".into(),
        };
        let changes = m.recheck(&trails, "A1", &slots, &cause).unwrap();
        match &changes[..] {
            [HitChange::Upsert(hit)] => assert_eq!(hit.person, "P2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_late_fix_that_withdraws_a_hit_says_so_with_no_change_record() {
        let (mut stored, fixes) = walk_past();
        let (mut m, _) = matcher(period(T0 - DAY, None));
        let changes = m.on_positions(&stored, "A1", &fixes).unwrap();
        assert!(matches!(&changes[..], [HitChange::Upsert(_)]));
        // The tag's buffered fix arrives: it went round, 2 km north, in between.
        let late = [gps(T0 + 12 * MIN, 0.0, 2000.0)];
        stored.push("A1", late[0]);
        stored.seal();
        let changes = m.on_positions(&stored, "A1", &late).unwrap();
        let why = withdrawal(&changes);
        assert_eq!(why.change, None);
        assert!(
            why.reason
                .starts_with("late position at 2026-05-28T20:38:40Z: the trail of"),
            "{}",
            why.reason
        );
    }

    #[test]
    fn a_stored_hit_that_no_longer_holds_at_start_is_withdrawn_when_evaluated_again() {
        let (trails, _) = walk_past();
        // As after a crash that lost the withdrawal: the store still holds the hit, but the
        // activation (final state) ended before the crime.
        let (mut m, slot) = matcher(period(T0 - DAY, Some(T0 - MIN)));
        assert_eq!(m.seed_hit(&crime().key(), "A1"), Some(slot));
        let changes = m
            .recheck(&trails, "A1", &BTreeSet::from([slot]), &Cause::Rematch)
            .unwrap();
        let why = withdrawal(&changes);
        assert_eq!(why.change, None);
        assert!(why
            .reason
            .starts_with("matched again against the stored trails: "));
    }

    #[test]
    fn a_period_gains_only_the_time_it_did_not_cover() {
        let p = |f, t| period(f, t);
        assert_eq!(p(10, Some(20)).gained_over(&p(10, Some(30))), vec![]);
        assert_eq!(p(5, Some(20)).gained_over(&p(10, Some(20))), vec![(5, 9)]);
        assert_eq!(
            p(10, Some(30)).gained_over(&p(10, Some(20))),
            vec![(20, 29)]
        );
        assert_eq!(
            p(10, None).gained_over(&p(12, Some(20))),
            vec![(10, 11), (20, TimeMs::MAX)]
        );
        assert_eq!(p(12, Some(15)).gained_over(&p(10, Some(20))), vec![]);
    }
}
