//! A synthetic street network for the demo basemap: arterial roads on a jittered ~1 km mesh with
//! bowed edges, residential streets every ~100–150 m filling each mesh cell (a Coons patch of the
//! cell's four bowed edges, so side streets meet the arterials exactly), some cells parks, a few
//! diagonal roads and a ring road, and a winding river. Everything is in the area's local frame
//! (metres east/north of the centre) and depends only on the seed.
//!
//! None of this is real geography: no street data can be downloaded, and a made-up network that
//! looks like streets is enough to read a trail against at street zoom. The basemap that renders
//! it says so on every map.

use crate::geo::Xy;
use crate::rng::Rng;
use std::f64::consts::PI;

/// How a road is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoadClass {
    Residential,
    Arterial,
}

/// One road: a polyline in the local frame.
#[derive(Clone, Debug)]
pub struct Road {
    pub class: RoadClass,
    pub points: Vec<Xy>,
}

/// The network: roads, park polygons and the river's centre line.
#[derive(Clone, Debug)]
pub struct Network {
    /// The network covers `-half_size_m..half_size_m` east and north of the centre.
    pub half_size_m: f64,
    pub roads: Vec<Road>,
    pub parks: Vec<Vec<Xy>>,
    pub river: Vec<Xy>,
    pub river_width_m: f64,
}

/// Spacing of the arterial mesh.
const ARTERIAL_SPACING_M: f64 = 1000.0;
/// Points per residential street across a cell (enough for its curve to look smooth).
const STREET_SAMPLES: usize = 10;

/// A bowed mesh edge from `a` to `b`: the straight line plus a sideways sine bump.
#[derive(Clone, Copy)]
struct Edge {
    a: Xy,
    b: Xy,
    bow_m: f64,
}

impl Edge {
    fn at(&self, t: f64) -> Xy {
        let p = self.a.lerp(self.b, t);
        let (dx, dy) = (self.b.x_m - self.a.x_m, self.b.y_m - self.a.y_m);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let bump = self.bow_m * (PI * t).sin();
        p.add(-dy / len * bump, dx / len * bump)
    }
}

/// A cell of the mesh: bottom and top edges run west→east, left and right edges south→north.
struct Cell {
    bottom: Edge,
    top: Edge,
    left: Edge,
    right: Edge,
}

impl Cell {
    /// The Coons patch of the four edges at (u east, v north), both 0..1.
    fn at(&self, u: f64, v: f64) -> Xy {
        let c0 = self.bottom.at(u);
        let c1 = self.top.at(u);
        let d0 = self.left.at(v);
        let d1 = self.right.at(v);
        let (p00, p10, p01, p11) = (self.bottom.a, self.bottom.b, self.top.a, self.top.b);
        let x = (1.0 - v) * c0.x_m + v * c1.x_m + (1.0 - u) * d0.x_m + u * d1.x_m
            - ((1.0 - u) * (1.0 - v) * p00.x_m
                + u * (1.0 - v) * p10.x_m
                + (1.0 - u) * v * p01.x_m
                + u * v * p11.x_m);
        let y = (1.0 - v) * c0.y_m + v * c1.y_m + (1.0 - u) * d0.y_m + u * d1.y_m
            - ((1.0 - u) * (1.0 - v) * p00.y_m
                + u * (1.0 - v) * p10.y_m
                + (1.0 - u) * v * p01.y_m
                + u * v * p11.y_m);
        Xy::new(x, y)
    }
}

/// Builds the network for `seed` over a square of `2 * half_size_m` on a side.
pub fn build(seed: u64, half_size_m: f64) -> Network {
    let mut rng = Rng::derive(seed, &[0x57_4545_5453]); // "STREETS"
    let n = ((2.0 * half_size_m / ARTERIAL_SPACING_M).round() as usize).max(1);
    let s = 2.0 * half_size_m / n as f64;
    // Mesh nodes, jittered; nodes on the border stay on it so the network is a square.
    let mut nodes = vec![vec![Xy::default(); n + 1]; n + 1];
    for (i, col) in nodes.iter_mut().enumerate() {
        for (j, node) in col.iter_mut().enumerate() {
            let jx = if i == 0 || i == n {
                0.0
            } else {
                rng.range(-0.15, 0.15) * s
            };
            let jy = if j == 0 || j == n {
                0.0
            } else {
                rng.range(-0.15, 0.15) * s
            };
            *node = Xy::new(
                -half_size_m + i as f64 * s + jx,
                -half_size_m + j as f64 * s + jy,
            );
        }
    }
    let bow = |border: bool, rng: &mut Rng| {
        if border {
            0.0
        } else {
            rng.range(-0.06, 0.06) * s
        }
    };
    // Horizontal edges h[i][j]: nodes (i,j)→(i+1,j); vertical v[i][j]: (i,j)→(i,j+1).
    let mut h = vec![vec![None; n + 1]; n];
    for (i, col) in h.iter_mut().enumerate() {
        for (j, e) in col.iter_mut().enumerate() {
            *e = Some(Edge {
                a: nodes[i][j],
                b: nodes[i + 1][j],
                bow_m: bow(j == 0 || j == n, &mut rng),
            });
        }
    }
    let mut v = vec![vec![None; n]; n + 1];
    for (i, col) in v.iter_mut().enumerate() {
        for (j, e) in col.iter_mut().enumerate() {
            *e = Some(Edge {
                a: nodes[i][j],
                b: nodes[i][j + 1],
                bow_m: bow(i == 0 || i == n, &mut rng),
            });
        }
    }
    let edge = |e: &Option<Edge>| {
        e.unwrap_or(Edge {
            a: Xy::default(),
            b: Xy::default(),
            bow_m: 0.0,
        })
    };

    let mut roads = Vec::new();
    let mut parks = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let cell = Cell {
                bottom: edge(&h[i][j]),
                top: edge(&h[i][j + 1]),
                left: edge(&v[i][j]),
                right: edge(&v[i + 1][j]),
            };
            let centre = cell.at(0.5, 0.5);
            let central = centre.x_m.hypot(centre.y_m) < 1.5 * s;
            if !central && rng.chance(0.08) {
                parks.push(park(&cell, &mut rng));
                continue;
            }
            residential(&cell, &mut rng, &mut roads);
        }
    }
    // Arterials on top of the residential streets (drawing order follows this list).
    for col in &v {
        roads.push(arterial(col.iter().map(edge)));
    }
    for j in 0..=n {
        roads.push(arterial(h.iter().map(|col| edge(&col[j]))));
    }
    roads.extend(diagonals(half_size_m, &mut rng));
    roads.push(ring(half_size_m, &mut rng));
    let river = river(half_size_m, &mut rng);
    Network {
        half_size_m,
        roads,
        parks,
        river,
        river_width_m: 45.0,
    }
}

/// A polyline along consecutive mesh edges.
fn arterial(edges: impl Iterator<Item = Edge>) -> Road {
    let mut points = Vec::new();
    for e in edges {
        let start = if points.is_empty() { 0 } else { 1 };
        points.extend((start..=8).map(|k| e.at(k as f64 / 8.0)));
    }
    Road {
        class: RoadClass::Arterial,
        points,
    }
}

/// The cell's streets: lines of constant u and of constant v at ~100–150 m, a few blocks merged
/// by leaving a stretch out (so it is not a perfect grid).
fn residential(cell: &Cell, rng: &mut Rng, roads: &mut Vec<Road>) {
    let width_m = cell.bottom.a.dist_m(cell.bottom.b);
    let height_m = cell.left.a.dist_m(cell.left.b);
    let spacing_m = rng.range(100.0, 150.0);
    let lines = |len_m: f64, rng: &mut Rng| -> Vec<f64> {
        let k = ((len_m / spacing_m).round() as usize).max(2);
        (1..k)
            .map(|i| (i as f64 + rng.range(-0.2, 0.2)) / k as f64)
            .collect()
    };
    let us = lines(width_m, rng);
    let vs = lines(height_m, rng);
    // Crossing parameters along a street: both cell edges and every crossing street.
    let stops = |cross: &[f64]| {
        let mut t = vec![0.0];
        t.extend_from_slice(cross);
        t.push(1.0);
        t
    };
    for (vertical, fixed, cross) in [(true, &us, &vs), (false, &vs, &us)] {
        let stops = stops(cross);
        for &f in fixed.iter() {
            let mut run: Vec<Xy> = Vec::new();
            for w in stops.windows(2) {
                if rng.chance(0.12) {
                    flush(&mut run, roads);
                    continue;
                }
                let from = if run.is_empty() { 0 } else { 1 };
                for k in from..=STREET_SAMPLES / 2 {
                    let t = w[0] + (w[1] - w[0]) * k as f64 / (STREET_SAMPLES / 2) as f64;
                    run.push(if vertical {
                        cell.at(f, t)
                    } else {
                        cell.at(t, f)
                    });
                }
            }
            flush(&mut run, roads);
        }
    }
}

fn flush(run: &mut Vec<Xy>, roads: &mut Vec<Road>) {
    if run.len() > 1 {
        roads.push(Road {
            class: RoadClass::Residential,
            points: std::mem::take(run),
        });
    }
    run.clear();
}

/// A park filling most of a cell.
fn park(cell: &Cell, rng: &mut Rng) -> Vec<Xy> {
    let inset = rng.range(0.04, 0.1);
    let (lo, hi) = (inset, 1.0 - inset);
    let mut ring = Vec::new();
    for k in 0..8 {
        ring.push(cell.at(lo + (hi - lo) * k as f64 / 8.0, lo));
    }
    for k in 0..8 {
        ring.push(cell.at(hi, lo + (hi - lo) * k as f64 / 8.0));
    }
    for k in 0..8 {
        ring.push(cell.at(hi - (hi - lo) * k as f64 / 8.0, hi));
    }
    for k in 0..8 {
        ring.push(cell.at(lo, hi - (hi - lo) * k as f64 / 8.0));
    }
    ring
}

/// Two gently curved roads crossing the area through near the centre (quadratic Béziers).
fn diagonals(half_m: f64, rng: &mut Rng) -> Vec<Road> {
    let mut out = Vec::new();
    for (a, b) in [
        (
            Xy::new(-half_m, -half_m * 0.7),
            Xy::new(half_m, half_m * 0.8),
        ),
        (
            Xy::new(-half_m * 0.8, half_m),
            Xy::new(half_m * 0.6, -half_m),
        ),
    ] {
        let c = Xy::new(
            rng.range(-0.15, 0.15) * half_m,
            rng.range(-0.15, 0.15) * half_m,
        );
        let points = (0..=64)
            .map(|k| {
                let t = k as f64 / 64.0;
                let p = a.lerp(c, t);
                p.lerp(c.lerp(b, t), t)
            })
            .collect();
        out.push(Road {
            class: RoadClass::Arterial,
            points,
        });
    }
    out
}

/// A wobbly ring road about halfway out.
fn ring(half_m: f64, rng: &mut Rng) -> Road {
    let r_m = half_m * rng.range(0.5, 0.6);
    let phase = rng.range(0.0, 2.0 * PI);
    let points = (0..=96)
        .map(|k| {
            let a = 2.0 * PI * k as f64 / 96.0;
            let r = r_m * (1.0 + 0.08 * (3.0 * a + phase).sin());
            Xy::new(r * a.cos(), r * a.sin())
        })
        .collect();
    Road {
        class: RoadClass::Arterial,
        points,
    }
}

/// A river winding west to east south of the centre.
fn river(half_m: f64, rng: &mut Rng) -> Vec<Xy> {
    let (p1, p2) = (rng.range(0.0, 2.0 * PI), rng.range(0.0, 2.0 * PI));
    let y0 = -half_m * rng.range(0.1, 0.25);
    (0..=160)
        .map(|k| {
            let x = -half_m + 2.0 * half_m * k as f64 / 160.0;
            let y = y0
                + 0.12 * half_m * (x / (0.45 * half_m) + p1).sin()
                + 0.05 * half_m * (x / (0.16 * half_m) + p2).sin();
            Xy::new(x, y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_network() {
        let a = build(7, 4000.0);
        let b = build(7, 4000.0);
        let c = build(8, 4000.0);
        let flat = |n: &Network| -> Vec<(f64, f64)> {
            n.roads
                .iter()
                .flat_map(|r| r.points.iter().map(|p| (p.x_m, p.y_m)))
                .collect()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
    }

    #[test]
    fn streets_are_about_a_block_apart_and_stay_in_the_square() {
        let net = build(1, 4000.0);
        let residential = net
            .roads
            .iter()
            .filter(|r| r.class == RoadClass::Residential)
            .count();
        let arterials = net.roads.len() - residential;
        // 64 cells, ~7 streets each way, split where stretches are left out.
        assert!(residential > 64 * 8, "{residential} residential streets");
        assert!(arterials >= 2 * 9, "{arterials} arterials");
        for r in &net.roads {
            for p in &r.points {
                assert!(p.x_m.abs() <= 4000.0 + 1e-6 && p.y_m.abs() <= 4000.0 * 1.1);
            }
        }
    }

    #[test]
    fn a_coons_patch_meets_its_edges() {
        let e = |a: Xy, b: Xy, bow_m| Edge { a, b, bow_m };
        let (p00, p10, p01, p11) = (
            Xy::new(0.0, 0.0),
            Xy::new(1000.0, 50.0),
            Xy::new(-30.0, 1000.0),
            Xy::new(980.0, 1020.0),
        );
        let cell = Cell {
            bottom: e(p00, p10, 40.0),
            top: e(p01, p11, -30.0),
            left: e(p00, p01, 20.0),
            right: e(p10, p11, 0.0),
        };
        for t in [0.0, 0.3, 0.5, 1.0] {
            assert!(cell.at(t, 0.0).dist_m(cell.bottom.at(t)) < 1e-6);
            assert!(cell.at(0.0, t).dist_m(cell.left.at(t)) < 1e-6);
            assert!(cell.at(1.0, t).dist_m(cell.right.at(t)) < 1e-6);
        }
    }
}
