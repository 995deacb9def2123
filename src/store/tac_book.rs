//! TAC readings by activation, for the alcohol chart: held in memory and rebuilt from the
//! durable log at start (the log is the record; this is an index of one reading kind). It is
//! a pipeline [`Sink`]: it takes the readings the dispatcher filed under each activation.

use crate::model::{Reading, ReadingBody, TacSample, TimeMs};
use crate::pipeline::{Output, Sink};
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// The index as a node checkpoint stores it (see [`TacBook::save`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TacState {
    pub by_activation: Vec<(String, Vec<(TimeMs, TacSample)>)>,
    pub forgotten: Vec<String>,
}

#[derive(Default)]
pub struct TacBook {
    by_activation: RwLock<HashMap<String, Vec<(TimeMs, TacSample)>>>,
    /// Activations purged by retention: late readings for them are not indexed again.
    forgotten: RwLock<HashSet<String>>,
}

impl TacBook {
    /// Adds an activation's TAC readings (other kinds are ignored).
    pub fn add(&self, activation: &str, readings: &[Reading]) {
        let mut found = readings
            .iter()
            .filter_map(|r| match r.body {
                ReadingBody::Tac(sample) => Some((r.t_ms, sample)),
                _ => None,
            })
            .peekable();
        if found.peek().is_none() {
            return;
        }
        if self
            .forgotten
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(activation)
        {
            return;
        }
        self.by_activation
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(activation.to_string())
            .or_default()
            .extend(found);
    }

    /// The event time of an activation's latest TAC reading (`None`: it has none).
    pub fn latest_ms(&self, activation: &str) -> Option<TimeMs> {
        self.by_activation
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(activation)
            .and_then(|readings| readings.iter().map(|(t, _)| *t).max())
    }

    /// Drops an activation purged by retention and refuses its readings from now on; returns
    /// the readings dropped.
    pub fn forget_activation(&self, activation: &str) -> u64 {
        self.forgotten
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(activation.to_string());
        self.by_activation
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(activation)
            .map_or(0, |v| v.len() as u64)
    }

    /// Everything indexed (by activation, in the order added) and the activations forgotten,
    /// sorted: for a node checkpoint ([`Self::restore`] gives the same index back).
    pub fn save(&self) -> TacState {
        let map = self.by_activation.read().unwrap_or_else(|p| p.into_inner());
        let mut by_activation: Vec<(String, Vec<(TimeMs, TacSample)>)> =
            map.iter().map(|(a, v)| (a.clone(), v.clone())).collect();
        by_activation.sort_by(|a, b| a.0.cmp(&b.0));
        let mut forgotten: Vec<String> = self
            .forgotten
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        forgotten.sort();
        TacState {
            by_activation,
            forgotten,
        }
    }

    /// Replaces the index with a saved one.
    pub fn restore(&self, state: TacState) {
        *self
            .by_activation
            .write()
            .unwrap_or_else(|p| p.into_inner()) = state.by_activation.into_iter().collect();
        *self.forgotten.write().unwrap_or_else(|p| p.into_inner()) =
            state.forgotten.into_iter().collect();
    }

    /// Readings of an activation with `from_ms <= t <= to_ms`, in event-time order.
    pub fn range(
        &self,
        activation: &str,
        from_ms: TimeMs,
        to_ms: TimeMs,
    ) -> Vec<(TimeMs, TacSample)> {
        let map = self.by_activation.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(TimeMs, TacSample)> = map
            .get(activation)
            .map(|v| {
                v.iter()
                    .filter(|(t, _)| *t >= from_ms && *t <= to_ms)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|(t, _)| *t);
        out
    }
}

/// The index takes the pipeline's readings (as the dispatcher resolved them) and forgets a
/// purged activation.
impl Sink for std::sync::Arc<TacBook> {
    fn emit(&mut self, output: Output, _cause_arrival_ms: Option<TimeMs>) {
        match output {
            Output::Readings {
                activation,
                readings,
                ..
            } => self.add(&activation.id, readings.readings()),
            Output::Purged { activation } => {
                self.forget_activation(&activation);
            }
            Output::Alert(_) | Output::SoberDay(_) | Output::Activations { .. } => {}
        }
    }
}
