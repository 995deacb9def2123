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
//! live matching and `tagstream replay` agree byte for byte.

use crate::model::{hit_id, CrimeKey, CrimeVersion, Hit, Reading, ReadingBody, TimeMs};
use crate::rules::hits::index::{crime_box, CrimeIndex, PathBox};
use crate::rules::hits::{evaluate, qualifies, HitsConfig};
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
    /// A hit whose trail no longer qualifies (a late fix changed the path between two fixes).
    Withdraw { id: String },
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
}

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
        }
    }

    pub fn config(&self) -> &HitsConfig {
        &self.config
    }

    /// Sets who an activation belongs to (hits name the person).
    pub fn set_person(&mut self, activation: &str, person: &str) {
        self.people
            .insert(activation.to_string(), person.to_string());
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
            if let Some(change) = self.record(slot, &activation, verdict) {
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
            for c in candidates {
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
        // Everything is read before any state changes: a failed read leaves the matcher as it
        // was, so the same positions can be matched again later (as late data if newer ones
        // came meanwhile) without a change lost.
        let mut last = self.last_fix.get(activation).copied();
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
            .filter_map(|(slot, verdict)| self.record(slot, activation, verdict))
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
                        if (n.t_ms - r.t_ms).abs() <= max_gap_ms {
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
        if hi < lo {
            return Ok(None);
        }
        let near = source.positions(activation, lo, hi)?;
        if !qualifies(crime, &near, &self.config) {
            return Ok(None);
        }
        let (from, to) = self.config.evidence_window(crime);
        let positions = source.positions(activation, from, to)?;
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

    /// Notes a verdict in the per-activation hit sets and says what changed.
    fn record(&mut self, slot: u32, activation: &str, verdict: Option<Hit>) -> Option<HitChange> {
        let set = self.hits.entry(activation.to_string()).or_default();
        match verdict {
            Some(hit) => {
                set.insert(slot);
                Some(HitChange::Upsert(Box::new(hit)))
            }
            None if set.remove(&slot) => Some(HitChange::Withdraw {
                id: hit_id(&self.crimes[slot as usize].key(), activation),
            }),
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
