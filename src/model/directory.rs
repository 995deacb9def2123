//! The activation directory: which activation a tag's reading belongs to, by tag and event time.
//! Read-mostly and shared between the ingest side and the partitions. A model type: the
//! pipeline resolves readings with it, and the stages beside it (TAC index, trails, hits, API)
//! read the same one.

use super::{Activation, TimeMs};
use std::collections::HashMap;
use std::sync::Arc;

/// The activation directory as of the latest applied control record, for the stages beside the
/// pipeline (TAC index, trails, hits, API): swapped whole when activations change, read without
/// a lock.
pub type SharedDirectory = Arc<arc_swap::ArcSwap<ActivationDirectory>>;

/// A [`SharedDirectory`] starting as `directory`.
pub fn shared_directory(directory: ActivationDirectory) -> SharedDirectory {
    Arc::new(arc_swap::ArcSwap::from_pointee(directory))
}

/// What a rule knows about the activation it watches.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationInfo {
    pub id: String,
    pub person: String,
    pub tag: String,
    pub from_ms: TimeMs,
    pub to_ms: Option<TimeMs>,
}

impl ActivationInfo {
    pub fn covers(&self, t_ms: TimeMs) -> bool {
        t_ms >= self.from_ms && self.to_ms.is_none_or(|to| t_ms < to)
    }
}

fn info_of(a: &Activation) -> Arc<ActivationInfo> {
    Arc::new(ActivationInfo {
        id: a.id.clone(),
        person: a.person.clone(),
        tag: a.tag.clone(),
        from_ms: a.from,
        to_ms: a.to,
    })
}

/// Tag → its activations, sorted by start.
#[derive(Debug, Default, Clone)]
pub struct ActivationDirectory {
    by_tag: HashMap<String, Vec<Arc<ActivationInfo>>>,
    all: Vec<Arc<ActivationInfo>>,
}

impl ActivationDirectory {
    /// Builds the directory. Activations are assumed validated (no overlap on one tag).
    pub fn new(activations: &[Activation]) -> Self {
        let mut dir = Self::default();
        for a in activations {
            let info = info_of(a);
            dir.by_tag
                .entry(a.tag.clone())
                .or_default()
                .push(info.clone());
            dir.all.push(info);
        }
        for list in dir.by_tag.values_mut() {
            list.sort_by_key(|a| a.from_ms);
        }
        dir.all.sort_by(|a, b| a.id.cmp(&b.id));
        dir
    }

    /// The activation of `tag` covering event time `t_ms`, if any.
    pub fn resolve(&self, tag: &str, t_ms: TimeMs) -> Option<&Arc<ActivationInfo>> {
        let list = self.by_tag.get(tag)?;
        let after = list.partition_point(|a| a.from_ms <= t_ms);
        list[..after].last().filter(|a| a.covers(t_ms))
    }

    /// Start of the tag's first activation (readings before it belong to no one).
    pub fn first_from_ms(&self, tag: &str) -> Option<TimeMs> {
        self.by_tag.get(tag)?.first().map(|a| a.from_ms)
    }

    /// Adds an activation or replaces the one with its id (kept sorted; `O(activations)` moves of
    /// pointers at worst, no rebuild).
    pub fn upsert(&mut self, a: &Activation) {
        self.remove(&a.id);
        let info = info_of(a);
        let list = self.by_tag.entry(a.tag.clone()).or_default();
        let at = list.partition_point(|x| x.from_ms <= info.from_ms);
        list.insert(at, info.clone());
        let at = self.all.partition_point(|x| x.id < info.id);
        self.all.insert(at, info);
    }

    /// Removes the activation with this id, if any.
    pub fn remove(&mut self, id: &str) {
        let Ok(at) = self.all.binary_search_by(|a| a.id.as_str().cmp(id)) else {
            return;
        };
        let old = self.all.remove(at);
        if let Some(list) = self.by_tag.get_mut(&old.tag) {
            list.retain(|x| x.id != old.id);
            if list.is_empty() {
                self.by_tag.remove(&old.tag);
            }
        }
    }

    /// One activation by id.
    pub fn get(&self, id: &str) -> Option<&Arc<ActivationInfo>> {
        let at = self.all.binary_search_by(|a| a.id.as_str().cmp(id)).ok()?;
        self.all.get(at)
    }

    /// Every activation, by id.
    pub fn all(&self) -> &[Arc<ActivationInfo>] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activation(id: &str, tag: &str, from: TimeMs, to: Option<TimeMs>) -> Activation {
        Activation {
            id: id.into(),
            person: format!("P-{id}"),
            tag: tag.into(),
            from,
            to,
        }
    }

    #[test]
    fn changes_applied_one_by_one_give_the_directory_built_whole() {
        let final_set = vec![
            activation("A1", "T1", 0, Some(100)),
            activation("A2", "T1", 100, None),
            activation("A3", "T2", 50, None),
        ];
        let mut dir = ActivationDirectory::default();
        dir.upsert(&activation("A3", "T9", 0, None)); // later moved to T2
        dir.upsert(&activation("A2", "T1", 100, None));
        dir.upsert(&activation("A1", "T1", 0, None));
        dir.upsert(&activation("A4", "T4", 0, None));
        dir.upsert(&final_set[0]); // ended
        dir.upsert(&final_set[2]);
        dir.remove("A4");
        let whole = ActivationDirectory::new(&final_set);
        let ids =
            |d: &ActivationDirectory| d.all().iter().map(|a| (**a).clone()).collect::<Vec<_>>();
        assert_eq!(ids(&dir), ids(&whole));
        for (tag, t) in [("T1", 50), ("T1", 150), ("T2", 60), ("T9", 10), ("T4", 10)] {
            assert_eq!(
                dir.resolve(tag, t).map(|a| a.id.clone()),
                whole.resolve(tag, t).map(|a| a.id.clone()),
                "{tag} at {t}"
            );
        }
        assert_eq!(dir.first_from_ms("T9"), None);
    }
}
