//! TAC readings by activation, for the alcohol chart: held in memory and rebuilt from the
//! durable log at start (the log is the record; this is an index of one reading kind).

use crate::model::{Batch, ReadingBody, TacSample, TimeMs};
use crate::pipeline::ActivationDirectory;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

#[derive(Default)]
pub struct TacBook {
    by_activation: RwLock<HashMap<String, Vec<(TimeMs, TacSample)>>>,
    /// Activations purged by retention: late readings for them are not indexed again.
    forgotten: RwLock<HashSet<String>>,
}

impl TacBook {
    /// Adds the TAC readings of one batch, each to the activation covering its event time.
    pub fn apply(&self, directory: &ActivationDirectory, batch: &Batch) {
        let mut found: Vec<(String, TimeMs, TacSample)> = Vec::new();
        for r in &batch.readings {
            if let ReadingBody::Tac(sample) = r.body {
                if let Some(a) = directory.resolve(&batch.tag, r.t_ms) {
                    found.push((a.id.clone(), r.t_ms, sample));
                }
            }
        }
        if found.is_empty() {
            return;
        }
        {
            let forgotten = self.forgotten.read().unwrap_or_else(|p| p.into_inner());
            if !forgotten.is_empty() {
                found.retain(|(a, _, _)| !forgotten.contains(a));
            }
        }
        let mut map = self
            .by_activation
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for (activation, t_ms, sample) in found {
            map.entry(activation).or_default().push((t_ms, sample));
        }
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
