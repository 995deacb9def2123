//! Re-evaluation after a change: each activation's input tape, and the memory of every output it
//! emitted, so that a change to its orders or period re-runs the tape through new rules and
//! re-issues only what differs.
//!
//! What differs is re-issued once: an output the new rules no longer produce is re-issued
//! **withdrawn** (`withdrawn: {change, reason}`), kept, never deleted; an output they produce
//! anew or differently is issued with `amended_by: change`. Outputs older than the oldest input
//! the tape still holds are left as they are (the tape is bounded), as are outputs already
//! withdrawn. Everything here is ordered (BTreeMap), so live, replay and rebuild re-issue the
//! same outputs in the same order.

use super::partition::ReadingSlice;
use super::sink::{Output, Sink};
use crate::model::{Reading, TimeMs, Withdrawal};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// One input of an activation, as the partition received it.
#[derive(Debug)]
pub enum TapeEntry {
    Readings {
        /// The partition's clock when the readings arrived.
        clock_ms: TimeMs,
        readings: ReadingSlice,
        ahead: Vec<Reading>,
        ahead_count: u32,
        contact_ms: TimeMs,
    },
    /// The clock reached one of the activation's deadlines.
    Clock(TimeMs),
}

/// An activation's inputs, oldest dropped first beyond `max_readings` readings or `horizon_ms` of
/// event time behind the newest reading.
#[derive(Debug, Default)]
pub struct Tape {
    /// Each entry with the newest event time it holds (`TimeMs::MIN`: none), worked out once.
    entries: VecDeque<(TapeEntry, TimeMs)>,
    readings: usize,
    max_readings: usize,
    horizon_ms: TimeMs,
    newest_ms: TimeMs,
    /// Event time before which inputs were dropped (outputs before it are not re-evaluated).
    dropped_before_ms: Option<TimeMs>,
}

impl Tape {
    pub fn new(max_readings: usize, horizon_ms: TimeMs) -> Self {
        Self {
            max_readings,
            horizon_ms,
            newest_ms: TimeMs::MIN,
            ..Self::default()
        }
    }

    pub fn push(&mut self, entry: TapeEntry) {
        let newest_ms = match &entry {
            TapeEntry::Readings { readings, .. } => {
                let readings = readings.readings();
                self.readings += readings.len();
                readings.iter().map(|r| r.t_ms).max().unwrap_or(TimeMs::MIN)
            }
            TapeEntry::Clock(t) => *t,
        };
        if matches!(entry, TapeEntry::Readings { .. }) {
            self.newest_ms = self.newest_ms.max(newest_ms);
        }
        self.entries.push_back((entry, newest_ms));
        let horizon_start = self.newest_ms.saturating_sub(self.horizon_ms);
        while let Some((_, front_ms)) = self.entries.front() {
            let beyond_horizon = *front_ms > TimeMs::MIN && *front_ms < horizon_start;
            if self.readings <= self.max_readings && !beyond_horizon {
                break;
            }
            let Some((old, old_newest_ms)) = self.entries.pop_front() else {
                break;
            };
            if let TapeEntry::Readings { readings, .. } = old {
                self.readings -= readings.readings().len();
                if old_newest_ms > TimeMs::MIN {
                    let before = self
                        .dropped_before_ms
                        .map_or(old_newest_ms, |t| t.max(old_newest_ms));
                    self.dropped_before_ms = Some(before);
                }
            }
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &TapeEntry> {
        self.entries.iter().map(|(entry, _)| entry)
    }

    /// Outputs starting at or after this are re-evaluated in full (`TimeMs::MIN`: all). A day of
    /// margin after the last dropped input, so windows open when it was dropped are left alone.
    pub fn complete_from_ms(&self) -> TimeMs {
        const MARGIN_MS: TimeMs = 24 * 60 * 60 * 1000;
        self.dropped_before_ms
            .map_or(TimeMs::MIN, |t| t.saturating_add(MARGIN_MS))
    }
}

/// The key an output is upserted by: an alert's id, a sober day's (activation, order, date).
fn key_of(output: &Output) -> String {
    match output {
        Output::Alert(a) => format!("alert:{}", a.id),
        Output::SoberDay(d) => format!("day:{}:{}", d.order, d.date),
        Output::Purged { activation } => format!("purged:{activation}"),
        // Never remembered (see `remember`): the stores' share, not a rule's output.
        Output::Readings { record, .. } | Output::Activations { record, .. } => {
            format!("record:{record}")
        }
    }
}

fn activation_of(output: &Output) -> &str {
    match output {
        Output::Alert(a) => &a.activation,
        Output::SoberDay(d) => &d.activation,
        Output::Purged { activation } => activation,
        Output::Readings { activation, .. } => &activation.id,
        Output::Activations { .. } => "",
    }
}

/// When an output starts, in event time (a sober day: its date's midnight UTC, early enough).
fn start_of(output: &Output) -> TimeMs {
    match output {
        Output::Alert(a) => a.start,
        Output::SoberDay(d) => d
            .date
            .and_hms_opt(0, 0, 0)
            .map_or(TimeMs::MIN, |t| t.and_utc().timestamp_millis()),
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => TimeMs::MIN,
    }
}

/// The output without its amendment marks, for comparing what the rules said.
fn stripped(output: &Output) -> Output {
    let mut o = output.clone();
    match &mut o {
        Output::Alert(a) => {
            a.withdrawn = None;
            a.amended_by = None;
        }
        Output::SoberDay(d) => {
            d.withdrawn = None;
            d.amended_by = None;
        }
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {}
    }
    o
}

fn is_withdrawn(output: &Output) -> bool {
    match output {
        Output::Alert(a) => a.withdrawn.is_some(),
        Output::SoberDay(d) => d.withdrawn.is_some(),
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => true,
    }
}

/// Every output's last state, per activation.
#[derive(Debug, Default)]
pub struct OutputMemory {
    by_activation: HashMap<String, BTreeMap<String, Output>>,
}

impl OutputMemory {
    /// A sink that remembers each output before passing it on.
    pub fn recorder<'a>(&'a mut self, inner: &'a mut dyn Sink) -> Recorder<'a> {
        Recorder {
            memory: self,
            inner,
        }
    }

    /// Forgets a purged activation's outputs.
    pub fn forget(&mut self, activation: &str) {
        self.by_activation.remove(activation);
    }

    fn remember(&mut self, output: &Output) {
        if !output.is_rule_output() {
            return;
        }
        if let Output::Purged { activation } = output {
            self.by_activation.remove(activation);
            return;
        }
        self.by_activation
            .entry(activation_of(output).to_string())
            .or_default()
            .insert(key_of(output), output.clone());
    }

    /// Compares the outputs a re-run produced (`fresh`, in order) with what the activation
    /// emitted before, and emits the differences (see the module doc).
    pub fn amend(
        &mut self,
        activation: &str,
        fresh: Vec<Output>,
        complete_from_ms: TimeMs,
        change: u64,
        reason: &str,
        sink: &mut dyn Sink,
    ) {
        let mut latest: BTreeMap<String, Output> = BTreeMap::new();
        for output in fresh.into_iter().filter(Output::is_rule_output) {
            latest.insert(key_of(&output), output);
        }
        let before = self.by_activation.remove(activation).unwrap_or_default();
        let mut after = before.clone();
        let mut emit = |output: Output, after: &mut BTreeMap<String, Output>| {
            after.insert(key_of(&output), output.clone());
            sink.emit(output, None);
        };
        for (key, new) in latest.iter() {
            if start_of(new) < complete_from_ms {
                continue;
            }
            let unchanged = before
                .get(key)
                .is_some_and(|old| !is_withdrawn(old) && stripped(old) == stripped(new));
            if unchanged {
                continue;
            }
            let mut new = new.clone();
            match &mut new {
                Output::Alert(a) => a.amended_by = Some(change),
                Output::SoberDay(d) => d.amended_by = Some(change),
                Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {
                    continue
                }
            }
            emit(new, &mut after);
        }
        for (key, old) in before.iter() {
            if latest.contains_key(key) || is_withdrawn(old) || start_of(old) < complete_from_ms {
                continue;
            }
            let mut gone = old.clone();
            let withdrawal = Some(Withdrawal {
                change: Some(change),
                reason: reason.to_string(),
            });
            match &mut gone {
                Output::Alert(a) => a.withdrawn = withdrawal,
                Output::SoberDay(d) => d.withdrawn = withdrawal,
                Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {
                    continue
                }
            }
            emit(gone, &mut after);
        }
        self.by_activation.insert(activation.to_string(), after);
    }
}

/// See [`OutputMemory::recorder`].
/// A [`Tape`] entry in a snapshot (a whole batch is stored as its readings). Tuple variants:
/// CBOR arrays, no field names, since tapes are most of a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum TapeEntryState {
    /// `clock_ms`, readings, ahead, `ahead_count`, `contact_ms`.
    #[serde(rename = "r")]
    Readings(
        TimeMs,
        #[serde(with = "super::snapshot::via")] Vec<Reading>,
        #[serde(with = "super::snapshot::via")] Vec<Reading>,
        u32,
        TimeMs,
    ),
    #[serde(rename = "c")]
    Clock(TimeMs),
}

/// A [`Tape`] in a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TapeState {
    entries: Vec<(TapeEntryState, TimeMs)>,
    readings: usize,
    max_readings: usize,
    horizon_ms: TimeMs,
    newest_ms: TimeMs,
    dropped_before_ms: Option<TimeMs>,
}

impl Tape {
    pub fn save(&self) -> TapeState {
        let entries = self
            .entries
            .iter()
            .map(|(entry, newest_ms)| {
                let entry = match entry {
                    TapeEntry::Readings {
                        clock_ms,
                        readings,
                        ahead,
                        ahead_count,
                        contact_ms,
                    } => TapeEntryState::Readings(
                        *clock_ms,
                        readings.readings().to_vec(),
                        ahead.clone(),
                        *ahead_count,
                        *contact_ms,
                    ),
                    TapeEntry::Clock(t_ms) => TapeEntryState::Clock(*t_ms),
                };
                (entry, *newest_ms)
            })
            .collect();
        TapeState {
            entries,
            readings: self.readings,
            max_readings: self.max_readings,
            horizon_ms: self.horizon_ms,
            newest_ms: self.newest_ms,
            dropped_before_ms: self.dropped_before_ms,
        }
    }

    pub fn restore(state: TapeState) -> Self {
        let entries = state
            .entries
            .into_iter()
            .map(|(entry, newest_ms)| {
                let entry = match entry {
                    TapeEntryState::Readings(
                        clock_ms,
                        readings,
                        ahead,
                        ahead_count,
                        contact_ms,
                    ) => TapeEntry::Readings {
                        clock_ms,
                        readings: ReadingSlice::Part(readings),
                        ahead,
                        ahead_count,
                        contact_ms,
                    },
                    TapeEntryState::Clock(t_ms) => TapeEntry::Clock(t_ms),
                };
                (entry, newest_ms)
            })
            .collect();
        Self {
            entries,
            readings: state.readings,
            max_readings: state.max_readings,
            horizon_ms: state.horizon_ms,
            newest_ms: state.newest_ms,
            dropped_before_ms: state.dropped_before_ms,
        }
    }
}

/// A remembered rule output in a snapshot (only alerts and sober days are remembered).
#[derive(serde::Serialize, serde::Deserialize)]
pub enum OutputState {
    Alert(super::snapshot::AlertRepr),
    SoberDay(crate::model::SoberDay),
}

/// An [`OutputMemory`] in a snapshot, activations and keys in order.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OutputMemoryState(Vec<(String, Vec<(String, OutputState)>)>);

impl OutputMemory {
    pub fn save(&self) -> Result<OutputMemoryState, super::snapshot::SnapshotError> {
        use super::snapshot::{Snap, SnapshotError};
        let mut by_activation = Vec::with_capacity(self.by_activation.len());
        for (activation, outputs) in &self.by_activation {
            let mut saved = Vec::with_capacity(outputs.len());
            for (key, output) in outputs {
                let output = match output {
                    Output::Alert(a) => OutputState::Alert(a.to_repr()),
                    Output::SoberDay(d) => OutputState::SoberDay(d.clone()),
                    other => {
                        return Err(SnapshotError::Encode(format!(
                            "unexpected output remembered for '{activation}': {}",
                            key_of(other)
                        )))
                    }
                };
                saved.push((key.clone(), output));
            }
            by_activation.push((activation.clone(), saved));
        }
        by_activation.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(OutputMemoryState(by_activation))
    }

    pub fn restore(state: OutputMemoryState) -> Self {
        use super::snapshot::Snap;
        let by_activation = state
            .0
            .into_iter()
            .map(|(activation, outputs)| {
                let outputs = outputs
                    .into_iter()
                    .map(|(key, output)| {
                        let output = match output {
                            OutputState::Alert(a) => {
                                Output::Alert(crate::model::Alert::from_repr(a))
                            }
                            OutputState::SoberDay(d) => Output::SoberDay(d),
                        };
                        (key, output)
                    })
                    .collect();
                (activation, outputs)
            })
            .collect();
        Self { by_activation }
    }
}

pub struct Recorder<'a> {
    memory: &'a mut OutputMemory,
    inner: &'a mut dyn Sink,
}

impl Sink for Recorder<'_> {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        self.memory.remember(&output);
        self.inner.emit(output, cause_arrival_ms);
    }
}
