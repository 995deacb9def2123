//! The spatio-temporal index: a 3-D `rstar` R-tree of block envelopes (longitude, latitude, time).
//!
//! Each sealed block has one entry whose envelope covers the block's path, not just its fixes:
//! the block's own bounding box, the boxes of blocks of the same activation that overlap it in
//! time (late data interleaved with earlier data), and the fix just before the block (so the
//! segment from the previous block's last fix to this block's first fix is inside), when the gap
//! between them is within the segment gap limit. A crime query ("who was near here between these
//! times") is then one R-tree range query, never a scan of positions.
//!
//! Also here: the exact test of a path (fixes and the straight segments between them) against a
//! box in a time window, used to refine R-tree candidates.

use super::manifest::{BboxE7, FixE7};
use crate::model::{Reading, ReadingBody};
use rstar::{RTreeObject, AABB};

/// Time axis scale: one hour of event time spans 0.01 units, about the extent of a 1 km box in
/// degrees, so the R-tree splits space and time in balance.
const TIME_UNITS_PER_MS: f64 = 0.01 / 3_600_000.0;
/// Padding so that rounding in the f64 conversions never drops a touching box.
const PAD_DEG: f64 = 1e-7;
const PAD_T: f64 = 1e-7;

pub fn deg(e7: i32) -> f64 {
    e7 as f64 / 1e7
}

fn t_axis(t_ms: i64) -> f64 {
    t_ms as f64 * TIME_UNITS_PER_MS
}

/// An envelope in fixed point: a box and a time range, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub bbox: BboxE7,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Envelope {
    pub fn new(bbox: BboxE7, from_ms: i64, to_ms: i64) -> Self {
        Envelope {
            bbox,
            from_ms,
            to_ms,
        }
    }

    pub fn add_fix(&mut self, f: &FixE7) {
        self.bbox.add(f.lat_e7, f.lon_e7);
        self.from_ms = self.from_ms.min(f.t_ms);
        self.to_ms = self.to_ms.max(f.t_ms);
    }

    pub fn union(&mut self, other: &Envelope) {
        self.bbox.union(&other.bbox);
        self.from_ms = self.from_ms.min(other.from_ms);
        self.to_ms = self.to_ms.max(other.to_ms);
    }

    pub fn to_aabb(&self) -> AABB<[f64; 3]> {
        AABB::from_corners(
            [
                deg(self.bbox.min_lon_e7) - PAD_DEG,
                deg(self.bbox.min_lat_e7) - PAD_DEG,
                t_axis(self.from_ms) - PAD_T,
            ],
            [
                deg(self.bbox.max_lon_e7) + PAD_DEG,
                deg(self.bbox.max_lat_e7) + PAD_DEG,
                t_axis(self.to_ms) + PAD_T,
            ],
        )
    }

    /// Whether this envelope meets a WGS84 box (degrees) during `[from_ms, to_ms]`.
    pub fn intersects(&self, query: &QueryBox) -> bool {
        self.from_ms <= query.to_ms
            && query.from_ms <= self.to_ms
            && deg(self.bbox.min_lon_e7) <= query.max_lon + PAD_DEG
            && query.min_lon <= deg(self.bbox.max_lon_e7) + PAD_DEG
            && deg(self.bbox.min_lat_e7) <= query.max_lat + PAD_DEG
            && query.min_lat <= deg(self.bbox.max_lat_e7) + PAD_DEG
    }
}

/// A WGS84 box in degrees and an event-time window, inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl QueryBox {
    pub fn to_aabb(&self) -> AABB<[f64; 3]> {
        AABB::from_corners(
            [self.min_lon, self.min_lat, t_axis(self.from_ms)],
            [self.max_lon, self.max_lat, t_axis(self.to_ms)],
        )
    }

    fn contains(&self, lon: f64, lat: f64) -> bool {
        lon >= self.min_lon && lon <= self.max_lon && lat >= self.min_lat && lat <= self.max_lat
    }
}

pub use crate::model::rtree_load::load_rtree;

/// One R-tree entry: the envelope of one sealed block.
#[derive(Clone, Debug, PartialEq)]
pub struct SpatialEntry {
    pub aabb: AABB<[f64; 3]>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub activation: u32,
    pub file: u32,
    pub offset: u64,
}

impl SpatialEntry {
    pub fn new(env: &Envelope, activation: u32, file: u32, offset: u64) -> Self {
        SpatialEntry {
            aabb: env.to_aabb(),
            from_ms: env.from_ms,
            to_ms: env.to_ms,
            activation,
            file,
            offset,
        }
    }
}

impl RTreeObject for SpatialEntry {
    type Envelope = AABB<[f64; 3]>;
    fn envelope(&self) -> Self::Envelope {
        self.aabb
    }
}

/// Whether the straight segment a→b (lon, lat) meets the box (Liang–Barsky clipping).
pub fn segment_meets_box(a: (f64, f64), b: (f64, f64), q: &QueryBox) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let mut t0 = 0.0f64;
    let mut t1 = 1.0f64;
    for (p, qv) in [
        (-dx, a.0 - q.min_lon),
        (dx, q.max_lon - a.0),
        (-dy, a.1 - q.min_lat),
        (dy, q.max_lat - a.1),
    ] {
        if p == 0.0 {
            if qv < 0.0 {
                return false;
            }
        } else {
            let r = qv / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

fn lon_lat(r: &Reading) -> Option<(f64, f64)> {
    match &r.body {
        ReadingBody::Position(p) => Some((p.lon(), p.lat())),
        _ => None,
    }
}

/// Where the segment a→b is at time `t` (linear in time), as (lon, lat).
fn at_time(a: &Reading, pa: (f64, f64), b: &Reading, pb: (f64, f64), t: i64) -> (f64, f64) {
    let span = (b.t_ms - a.t_ms) as f64;
    if span <= 0.0 {
        return pa;
    }
    let f = ((t - a.t_ms) as f64 / span).clamp(0.0, 1.0);
    (pa.0 + (pb.0 - pa.0) * f, pa.1 + (pb.1 - pa.1) * f)
}

/// Whether a path (positions sorted by time) is inside the box at some instant of the window:
/// a fix inside, or the straight segment between two consecutive fixes at most `max_gap_ms`
/// apart, clipped to the window, crossing it.
pub fn path_meets_box(positions: &[Reading], q: &QueryBox, max_gap_ms: i64) -> bool {
    let fixes: Vec<(&Reading, (f64, f64))> = positions
        .iter()
        .filter_map(|r| lon_lat(r).map(|p| (r, p)))
        .collect();
    if fixes
        .iter()
        .any(|(r, p)| r.t_ms >= q.from_ms && r.t_ms <= q.to_ms && q.contains(p.0, p.1))
    {
        return true;
    }
    fixes.windows(2).any(|w| {
        let ((a, pa), (b, pb)) = (w[0], w[1]);
        if b.t_ms - a.t_ms > max_gap_ms || b.t_ms < q.from_ms || a.t_ms > q.to_ms {
            return false;
        }
        let start = at_time(a, pa, b, pb, a.t_ms.max(q.from_ms));
        let end = at_time(a, pa, b, pb, b.t_ms.min(q.to_ms));
        segment_meets_box(start, end, q)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_tree_takes_inserts_whatever_its_size() {
        // Sizes at which rstar's bulk load leaves entries at two depths (54 panicked at the
        // 25th insert before `load_rtree` checked).
        let entry = |i: u64| {
            let t = 1_770_000_000_000 + i as i64 * 60_000;
            let e7 = 514_000_000 + ((i * 7_919) % 100_000) as i32;
            let env = Envelope::new(
                BboxE7 {
                    min_lat_e7: e7,
                    min_lon_e7: -258_000_000 + e7 % 1000,
                    max_lat_e7: e7 + 1000,
                    max_lon_e7: -258_000_000 + e7 % 1000 + 1000,
                },
                t,
                t + 60_000,
            );
            SpatialEntry::new(&env, 0, 0, i)
        };
        for n in 1..200u64 {
            let mut tree = load_rtree((0..n).map(entry).collect());
            for i in 0..100 {
                tree.insert(entry(n + i));
            }
            assert_eq!(tree.size() as u64, n + 100);
        }
    }
    use crate::model::{Position, PositionSource};

    fn q() -> QueryBox {
        QueryBox {
            min_lon: 0.0,
            min_lat: 0.0,
            max_lon: 1.0,
            max_lat: 1.0,
            from_ms: 0,
            to_ms: 1000,
        }
    }

    fn fix(t_ms: i64, lon: f64, lat: f64) -> Reading {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: (lat * 1e7) as i32,
                lon_e7: (lon * 1e7) as i32,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    #[test]
    fn segments_crossing_touching_and_missing() {
        assert!(segment_meets_box((-1.0, 0.5), (2.0, 0.5), &q()));
        assert!(segment_meets_box((-1.0, -1.0), (2.0, 2.0), &q()));
        assert!(segment_meets_box((0.5, 0.5), (0.5, 0.5), &q()));
        assert!(!segment_meets_box((-1.0, 1.5), (2.0, 1.5), &q()));
        assert!(!segment_meets_box((1.5, -1.0), (3.0, 2.0), &q()));
    }

    #[test]
    fn a_walk_past_between_two_fixes_outside_is_inside() {
        let path = [fix(0, -1.0, 0.5), fix(1000, 2.0, 0.5)];
        assert!(path_meets_box(&path, &q(), 60_000));
        // Too long a gap: no path is assumed.
        assert!(!path_meets_box(&path, &q(), 500));
        // The crossing happens (at t ≈ 333..666) outside a window that ends at t = 200.
        let early = QueryBox { to_ms: 200, ..q() };
        assert!(!path_meets_box(&path, &early, 60_000));
    }

    #[test]
    fn envelopes_cover_what_they_were_built_from() {
        let mut e = Envelope::new(BboxE7::point(0, 0), 10, 10);
        e.add_fix(&FixE7 {
            t_ms: 5,
            lat_e7: 5_000_000,
            lon_e7: 5_000_000,
        });
        assert!(e.intersects(&q()));
        assert!(!e.intersects(&QueryBox { from_ms: 11, ..q() }));
        let a = e.to_aabb();
        assert!(rstar::Envelope::intersects(&a, &q().to_aabb()));
    }
}
