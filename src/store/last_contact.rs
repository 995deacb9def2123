//! Each activation's last contact: the event time of its newest reading of any kind (position,
//! RF presence, alcohol, device health). Held in memory and rebuilt from the durable log at start
//! like the TAC index (and kept in the node checkpoint); a pipeline [`Sink`] fed the readings
//! the dispatcher filed under each activation.
//!
//! The book is shared with the API; its feed ([`LastContactFeed`]) gathers the newest time per
//! activation while a piece of input is dispatched and takes the book's lock once, at its end
//! (a committed group live), never per reading.

use super::purge_target::{PurgeTarget, TargetError};
use crate::model::TimeMs;
use crate::pipeline::{Output, Sink};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The book as a node checkpoint stores it: (activation, newest reading's event time), sorted.
pub type LastContactState = Vec<(String, TimeMs)>;

#[derive(Default)]
pub struct LastContactBook {
    newest_ms: RwLock<HashMap<String, TimeMs>>,
}

impl LastContactBook {
    /// The event time of an activation's newest reading (`None`: none yet).
    pub fn last_contact_ms(&self, activation: &str) -> Option<TimeMs> {
        self.newest_ms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(activation)
            .copied()
    }

    /// Moves each activation's last contact on to the time given, if that is newer.
    fn note_all(&self, newest: impl IntoIterator<Item = (String, TimeMs)>) {
        let mut book = self.newest_ms.write().unwrap_or_else(|p| p.into_inner());
        for (activation, t_ms) in newest {
            note(&mut book, activation, t_ms);
        }
    }

    /// Whether it held the activation.
    fn forget(&self, activation: &str) -> bool {
        self.newest_ms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(activation)
            .is_some()
    }

    /// Everything held, sorted: for a node checkpoint ([`Self::restore`] gives it back).
    pub fn save(&self) -> LastContactState {
        let book = self.newest_ms.read().unwrap_or_else(|p| p.into_inner());
        let mut state: LastContactState = book.iter().map(|(a, t)| (a.clone(), *t)).collect();
        state.sort();
        state
    }

    /// Replaces the book with a saved one.
    pub fn restore(&self, state: LastContactState) {
        *self.newest_ms.write().unwrap_or_else(|p| p.into_inner()) = state.into_iter().collect();
    }
}

/// Retention purges an activation's last contact with the rest of its data (in memory only:
/// nothing to make durable; a restart rebuilds from the purged log).
impl PurgeTarget for LastContactBook {
    fn name(&self) -> &'static str {
        "last_contact"
    }

    fn purge_activation(&self, activation: &str) -> Result<u64, TargetError> {
        Ok(u64::from(self.forget(activation)))
    }
}

fn note(book: &mut HashMap<String, TimeMs>, activation: String, t_ms: TimeMs) {
    let newest = book.entry(activation).or_insert(t_ms);
    *newest = (*newest).max(t_ms);
}

/// The pipeline's side of the book: the newest reading time per activation in the piece of
/// input being dispatched, written to the book when it ends ([`Sink::flush`]).
pub struct LastContactFeed {
    book: Arc<LastContactBook>,
    pending: HashMap<String, TimeMs>,
}

impl LastContactFeed {
    pub fn new(book: Arc<LastContactBook>) -> Self {
        Self {
            book,
            pending: HashMap::new(),
        }
    }
}

impl Sink for LastContactFeed {
    fn emit(&mut self, output: Output, _cause_arrival_ms: Option<TimeMs>) {
        match output {
            Output::Readings {
                activation,
                readings,
                ..
            } => {
                if let Some(t_ms) = readings.readings().iter().map(|r| r.t_ms).max() {
                    note(&mut self.pending, activation.id.clone(), t_ms);
                }
            }
            // Retention purged it: nothing of it is kept (its readings are gone from the log
            // too, so a restart agrees).
            Output::Purged { activation } => {
                self.pending.remove(&activation);
                self.book.forget(&activation);
            }
            Output::Alert(_) | Output::SoberDay(_) | Output::Activations { .. } => {}
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.book.note_all(self.pending.drain());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_time_wins_and_a_save_restores_the_same_book() {
        let book = Arc::new(LastContactBook::default());
        let mut pending = HashMap::new();
        note(&mut pending, "a1".to_string(), 2_000);
        note(&mut pending, "a1".to_string(), 1_000);
        note(&mut pending, "a2".to_string(), 500);
        book.note_all(pending);
        book.note_all([("a2".to_string(), 400)]);
        assert_eq!(book.last_contact_ms("a1"), Some(2_000));
        assert_eq!(book.last_contact_ms("a2"), Some(500));
        assert_eq!(book.last_contact_ms("a3"), None);
        let again = LastContactBook::default();
        again.restore(book.save());
        assert_eq!(again.save(), book.save());
        assert_eq!(book.purge_activation("a1").unwrap(), 1);
        assert_eq!(book.purge_activation("a1").unwrap(), 0, "idempotent");
        assert_eq!(book.last_contact_ms("a1"), None);
    }
}
