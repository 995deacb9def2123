//! The activation directory: which activation a tag's reading belongs to, by tag and event time.
//! Read-mostly and shared between the ingest side and the partitions.

use super::rule::ActivationInfo;
use crate::model::{Activation, TimeMs};
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
            let info = Arc::new(ActivationInfo {
                id: a.id.clone(),
                person: a.person.clone(),
                tag: a.tag.clone(),
                from_ms: a.from,
                to_ms: a.to,
            });
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
