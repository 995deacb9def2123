//! The crime index the live matcher asks "which crimes could this piece of path hit?": an
//! `rstar` R-tree of one 3-D box per crime version (longitude, latitude, time). The box is the
//! crime's reach (vicinity radius plus the largest fix precision that may qualify) converted from
//! metres to degrees at the crime's own latitude, times the crime window. A qualifying point of a
//! path is within reach of the crime and inside the window, so any piece of path whose box misses
//! every crime box cannot make a hit; the hit rule then decides exactly.

use super::HitsConfig;
use crate::model::{CrimeVersion, TimeMs};
use crate::rules::geodesy::metres_to_degrees;
use rstar::{RTree, RTreeObject, AABB};

/// Time axis unit: an hour counts like 0.01° (the trail store's scale), so a crime window of a few
/// hours weighs about like its box of a few hundredths of a degree in the tree's split heuristics.
fn t_axis(t_ms: TimeMs) -> f64 {
    t_ms as f64 * (0.01 / 3_600_000.0)
}

/// One crime's box; `slot` is the crime's index in the caller's catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct CrimeEntry {
    pub slot: u32,
    aabb: AABB<[f64; 3]>,
}

impl RTreeObject for CrimeEntry {
    type Envelope = AABB<[f64; 3]>;
    fn envelope(&self) -> Self::Envelope {
        self.aabb
    }
}

/// A piece of path: the box of its points and its time span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathBox {
    pub min_lat: f64,
    pub min_lon: f64,
    pub max_lat: f64,
    pub max_lon: f64,
    pub from_ms: TimeMs,
    pub to_ms: TimeMs,
}

impl PathBox {
    /// A single fix.
    pub fn point(lat: f64, lon: f64, t_ms: TimeMs) -> Self {
        PathBox {
            min_lat: lat,
            min_lon: lon,
            max_lat: lat,
            max_lon: lon,
            from_ms: t_ms,
            to_ms: t_ms,
        }
    }

    /// Grows the box to take in another fix.
    pub fn add(&mut self, lat: f64, lon: f64, t_ms: TimeMs) {
        self.min_lat = self.min_lat.min(lat);
        self.min_lon = self.min_lon.min(lon);
        self.max_lat = self.max_lat.max(lat);
        self.max_lon = self.max_lon.max(lon);
        self.from_ms = self.from_ms.min(t_ms);
        self.to_ms = self.to_ms.max(t_ms);
    }

    fn aabb(&self) -> AABB<[f64; 3]> {
        AABB::from_corners(
            [self.min_lon, self.min_lat, t_axis(self.from_ms)],
            [self.max_lon, self.max_lat, t_axis(self.to_ms)],
        )
    }
}

/// The box of a crime's reach during its window.
pub fn crime_box(crime: &CrimeVersion, config: &HitsConfig) -> PathBox {
    let (dlat, dlon) = metres_to_degrees(crime.lat, config.reach_m(crime.radius_m));
    PathBox {
        min_lat: crime.lat - dlat,
        min_lon: crime.lon - dlon,
        max_lat: crime.lat + dlat,
        max_lon: crime.lon + dlon,
        from_ms: crime.from_ms,
        to_ms: crime.to_ms,
    }
}

use crate::model::rtree_load::load_rtree;

/// The R-tree of crime boxes.
#[derive(Default)]
pub struct CrimeIndex {
    tree: RTree<CrimeEntry>,
}

impl CrimeIndex {
    /// Bulk-loads an index (much faster and better balanced than inserting one by one).
    pub fn build<'a>(
        crimes: impl IntoIterator<Item = (u32, &'a CrimeVersion)>,
        config: &HitsConfig,
    ) -> Self {
        let entries = crimes
            .into_iter()
            .map(|(slot, c)| CrimeEntry {
                slot,
                aabb: crime_box(c, config).aabb(),
            })
            .collect();
        CrimeIndex {
            tree: load_rtree(entries),
        }
    }

    pub fn insert(&mut self, slot: u32, crime: &CrimeVersion, config: &HitsConfig) {
        self.tree.insert(CrimeEntry {
            slot,
            aabb: crime_box(crime, config).aabb(),
        });
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    /// Calls `found` with the slot of every crime whose box meets the piece of path.
    pub fn query(&self, path: &PathBox, mut found: impl FnMut(u32)) {
        for e in self.tree.locate_in_envelope_intersecting(&path.aabb()) {
            found(e.slot);
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn a_loaded_index_takes_inserts_whatever_its_size() {
        let entry = |i: u64| {
            let lat = 51.4 + ((i * 7_919) % 100_000) as f64 * 1e-7;
            let t = 4_900.0 + i as f64 * 0.001;
            CrimeEntry {
                slot: i as u32,
                aabb: AABB::from_corners([-25.8, lat, t], [-25.79, lat + 1e-4, t + 0.001]),
            }
        };
        for n in 1..200u64 {
            let mut tree = load_rtree((0..n).map(entry).collect());
            for i in 0..100 {
                tree.insert(entry(n + i));
            }
            assert_eq!(tree.size() as u64, n + 100);
        }
    }
}
