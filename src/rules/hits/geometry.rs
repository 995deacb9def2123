//! The geometry of a path against a crime's vicinity circle, in a local metric plane centred on
//! the crime (so the crime is the origin). A path is fixes joined by straight segments; each
//! point of a segment has a position and a precision interpolated linearly between its ends.
//!
//! Three questions, each over a segment clipped to the crime window:
//! - closest approach: the point of the segment nearest the origin (closed form);
//! - overlap / containment: is there a point whose confidence circle overlaps the vicinity
//!   (`d - p ≤ r`), or lies wholly inside it (`d + p ≤ r`)? `d(s)` is convex along a segment and
//!   `p(s)` is linear, so both `d - p` and `d + p` are convex: a golden-section search finds their
//!   minima exactly enough (1 mm) in a few dozen steps;
//! - time inside: the part of the segment with `d ≤ r`, a quadratic in the segment parameter.

/// A point of a path in the local plane: time, x east and y north (metres), precision (metres).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathPoint {
    pub t_ms: i64,
    pub x_m: f64,
    pub y_m: f64,
    pub precision_m: f64,
}

impl PathPoint {
    pub fn distance_m(&self) -> f64 {
        self.x_m.hypot(self.y_m)
    }

    /// The point a fraction `s` (0..=1) of the way to `b`.
    pub fn lerp(&self, b: &PathPoint, s: f64) -> PathPoint {
        PathPoint {
            t_ms: self.t_ms + ((b.t_ms - self.t_ms) as f64 * s).round() as i64,
            x_m: self.x_m + (b.x_m - self.x_m) * s,
            y_m: self.y_m + (b.y_m - self.y_m) * s,
            precision_m: self.precision_m + (b.precision_m - self.precision_m) * s,
        }
    }
}

/// A segment from `a` to `b`, restricted to parameters `s0..=s1` (the part inside the window).
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub a: PathPoint,
    pub b: PathPoint,
    pub s0: f64,
    pub s1: f64,
}

impl Segment {
    /// The segment from `a` to `b` clipped to `[from_ms, to_ms]`; `None` if it lies outside.
    pub fn clipped(a: PathPoint, b: PathPoint, from_ms: i64, to_ms: i64) -> Option<Segment> {
        if b.t_ms <= a.t_ms || b.t_ms < from_ms || a.t_ms > to_ms {
            return None;
        }
        let span = (b.t_ms - a.t_ms) as f64;
        let s0 = ((from_ms - a.t_ms) as f64 / span).clamp(0.0, 1.0);
        let s1 = ((to_ms - a.t_ms) as f64 / span).clamp(0.0, 1.0);
        Some(Segment { a, b, s0, s1 })
    }

    pub fn at(&self, s: f64) -> PathPoint {
        self.a.lerp(&self.b, s)
    }

    /// The parameter of the point nearest the origin.
    pub fn closest_s(&self) -> f64 {
        let (dx, dy) = (self.b.x_m - self.a.x_m, self.b.y_m - self.a.y_m);
        let len2 = dx * dx + dy * dy;
        if len2 == 0.0 {
            return self.s0;
        }
        let s = -(self.a.x_m * dx + self.a.y_m * dy) / len2;
        s.clamp(self.s0, self.s1)
    }

    /// Minimum over the clipped segment of `d(s) + sign·p(s)` (a convex function).
    pub fn min_distance_with_precision(&self, sign: f64) -> f64 {
        let f = |s: f64| {
            let p = self.at(s);
            p.distance_m() + sign * p.precision_m
        };
        let (mut lo, mut hi) = (self.s0, self.s1);
        const INV_PHI: f64 = 0.618_033_988_749_895;
        let mut c = hi - (hi - lo) * INV_PHI;
        let mut d = lo + (hi - lo) * INV_PHI;
        let (mut fc, mut fd) = (f(c), f(d));
        for _ in 0..60 {
            if hi - lo < 1e-6 {
                break;
            }
            if fc < fd {
                hi = d;
                d = c;
                fd = fc;
                c = hi - (hi - lo) * INV_PHI;
                fc = f(c);
            } else {
                lo = c;
                c = d;
                fc = fd;
                d = lo + (hi - lo) * INV_PHI;
                fd = f(d);
            }
        }
        f(self.s0).min(f(self.s1)).min(fc).min(fd)
    }

    /// Milliseconds of the clipped segment with `d ≤ radius_m`.
    pub fn time_inside_ms(&self, radius_m: f64) -> f64 {
        let (dx, dy) = (self.b.x_m - self.a.x_m, self.b.y_m - self.a.y_m);
        let (ax, ay) = (self.a.x_m, self.a.y_m);
        // |a + s·d|² ≤ r²  ⇔  A s² + B s + C ≤ 0
        let qa = dx * dx + dy * dy;
        let qb = 2.0 * (ax * dx + ay * dy);
        let qc = ax * ax + ay * ay - radius_m * radius_m;
        let span_ms = (self.b.t_ms - self.a.t_ms) as f64;
        let (lo, hi) = if qa == 0.0 {
            if qc <= 0.0 {
                (self.s0, self.s1)
            } else {
                return 0.0;
            }
        } else {
            let disc = qb * qb - 4.0 * qa * qc;
            if disc < 0.0 {
                return 0.0;
            }
            let root = disc.sqrt();
            (
                ((-qb - root) / (2.0 * qa)).max(self.s0),
                ((-qb + root) / (2.0 * qa)).min(self.s1),
            )
        };
        if hi <= lo {
            0.0
        } else {
            (hi - lo) * span_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t_s: i64, x: f64, y: f64, p: f64) -> PathPoint {
        PathPoint {
            t_ms: t_s * 1000,
            x_m: x,
            y_m: y,
            precision_m: p,
        }
    }

    #[test]
    fn closest_approach_of_a_walk_past() {
        let seg = Segment::clipped(
            pt(0, -300.0, 40.0, 5.0),
            pt(120, 300.0, 40.0, 5.0),
            0,
            120_000,
        )
        .unwrap();
        let s = seg.closest_s();
        assert!((s - 0.5).abs() < 1e-12);
        assert!((seg.at(s).distance_m() - 40.0).abs() < 1e-9);
        assert_eq!(seg.at(s).t_ms, 60_000);
        assert!((seg.min_distance_with_precision(1.0) - 45.0).abs() < 1e-3);
        assert!((seg.min_distance_with_precision(-1.0) - 35.0).abs() < 1e-3);
        // inside for |x| ≤ sqrt(100² − 40²) = 91.65 m of 600 m walked in 120 s
        let inside = seg.time_inside_ms(100.0);
        assert!(
            (inside - 2.0 * 91.651_513_9 / 600.0 * 120_000.0).abs() < 1.0,
            "{inside}"
        );
    }

    #[test]
    fn clipping_to_the_window_limits_the_segment() {
        let seg =
            Segment::clipped(pt(0, -300.0, 0.0, 5.0), pt(120, 300.0, 0.0, 5.0), 0, 30_000).unwrap();
        // by 30 s the walker is at x = -150: still 150 m away
        assert!((seg.at(seg.closest_s()).distance_m() - 150.0).abs() < 1e-9);
        assert_eq!(seg.time_inside_ms(100.0), 0.0);
        assert!(
            Segment::clipped(pt(0, 0.0, 0.0, 5.0), pt(60, 1.0, 0.0, 5.0), 61_000, 90_000).is_none()
        );
    }

    #[test]
    fn standing_still_inside_counts_the_whole_segment() {
        let seg =
            Segment::clipped(pt(0, 10.0, 0.0, 5.0), pt(60, 10.0, 0.0, 5.0), 0, 60_000).unwrap();
        assert_eq!(seg.time_inside_ms(100.0), 60_000.0);
        assert_eq!(seg.time_inside_ms(5.0), 0.0);
    }
}
