//! Plane geometry for the simulation: a local east/north frame in metres around the area's centre,
//! conversion to and from WGS84, distances, polygons and point-in-polygon.
//!
//! All movement and truth is computed in the local frame (equirectangular about the centre, good to
//! well under 0.5% over a police force area); coordinates are converted to WGS84 only on output.

/// A point in the local frame: metres east and north of the frame origin.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Xy {
    pub x_m: f64,
    pub y_m: f64,
}

impl Xy {
    pub const fn new(x_m: f64, y_m: f64) -> Self {
        Xy { x_m, y_m }
    }
    #[inline]
    pub fn dist_m(self, o: Xy) -> f64 {
        ((self.x_m - o.x_m).powi(2) + (self.y_m - o.y_m).powi(2)).sqrt()
    }
    #[inline]
    pub fn add(self, dx_m: f64, dy_m: f64) -> Xy {
        Xy::new(self.x_m + dx_m, self.y_m + dy_m)
    }
    #[inline]
    pub fn lerp(self, o: Xy, f: f64) -> Xy {
        Xy::new(
            self.x_m + (o.x_m - self.x_m) * f,
            self.y_m + (o.y_m - self.y_m) * f,
        )
    }
    /// Compass heading (degrees clockwise from north) from `self` to `o`.
    pub fn heading_deg(self, o: Xy) -> f64 {
        let h = (o.x_m - self.x_m).atan2(o.y_m - self.y_m).to_degrees();
        if h < 0.0 {
            h + 360.0
        } else {
            h
        }
    }
}

/// Mean Earth radius used by the local frame (metres).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The local frame: an origin and metres per degree there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub lat0_deg: f64,
    pub lon0_deg: f64,
    m_per_deg_lat: f64,
    m_per_deg_lon: f64,
}

impl Frame {
    pub fn new(lat0_deg: f64, lon0_deg: f64) -> Self {
        let m_per_deg_lat = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        Frame {
            lat0_deg,
            lon0_deg,
            m_per_deg_lat,
            m_per_deg_lon: m_per_deg_lat * lat0_deg.to_radians().cos(),
        }
    }
    /// Local point to (lat, lon) degrees.
    #[inline]
    pub fn to_latlon(&self, p: Xy) -> (f64, f64) {
        (
            self.lat0_deg + p.y_m / self.m_per_deg_lat,
            self.lon0_deg + p.x_m / self.m_per_deg_lon,
        )
    }
    /// (lat, lon) degrees to a local point.
    #[inline]
    pub fn to_xy(&self, lat_deg: f64, lon_deg: f64) -> Xy {
        Xy::new(
            (lon_deg - self.lon0_deg) * self.m_per_deg_lon,
            (lat_deg - self.lat0_deg) * self.m_per_deg_lat,
        )
    }
    /// Local point to fixed-point (lat_e7, lon_e7).
    #[inline]
    pub fn to_e7(&self, p: Xy) -> (i32, i32) {
        let (lat, lon) = self.to_latlon(p);
        ((lat * 1e7).round() as i32, (lon * 1e7).round() as i32)
    }
}

/// Great-circle distance in metres (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// Distance from `p` to the segment `a`–`b`, and the fraction along it of the closest point.
pub fn seg_dist_m(p: Xy, a: Xy, b: Xy) -> (f64, f64) {
    let (dx, dy) = (b.x_m - a.x_m, b.y_m - a.y_m);
    let len2 = dx * dx + dy * dy;
    let f = if len2 <= 0.0 {
        0.0
    } else {
        (((p.x_m - a.x_m) * dx + (p.y_m - a.y_m) * dy) / len2).clamp(0.0, 1.0)
    };
    (p.dist_m(a.lerp(b, f)), f)
}

/// A polygon: an outer ring and holes, each ring a closed or open list of points.
#[derive(Clone, Debug, Default)]
pub struct Polygon {
    pub rings: Vec<Vec<Xy>>,
}

fn ring_contains(ring: &[Xy], p: Xy) -> bool {
    let mut inside = false;
    let n = ring.len();
    if n < 3 {
        return false;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (ring[i], ring[j]);
        if (a.y_m > p.y_m) != (b.y_m > p.y_m)
            && p.x_m < (b.x_m - a.x_m) * (p.y_m - a.y_m) / (b.y_m - a.y_m) + a.x_m
        {
            inside = !inside;
        }
        j = i;
    }
    inside
}

impl Polygon {
    /// Even-odd containment over all rings (outer ring minus holes).
    pub fn contains(&self, p: Xy) -> bool {
        self.rings.iter().filter(|r| ring_contains(r, p)).count() % 2 == 1
    }
    /// Distance from `p` to the nearest edge of any ring (the boundary between inside and out).
    pub fn boundary_dist_m(&self, p: Xy) -> f64 {
        self.rings
            .iter()
            .flat_map(|r| (0..r.len()).map(move |i| (r[i], r[(i + 1) % r.len()])))
            .map(|(a, b)| seg_dist_m(p, a, b).0)
            .fold(f64::INFINITY, f64::min)
    }
    /// Bounding box (min, max) of the outer ring.
    pub fn bbox(&self) -> (Xy, Xy) {
        let mut lo = Xy::new(f64::MAX, f64::MAX);
        let mut hi = Xy::new(f64::MIN, f64::MIN);
        for p in self.rings.iter().take(1).flatten() {
            lo = Xy::new(lo.x_m.min(p.x_m), lo.y_m.min(p.y_m));
            hi = Xy::new(hi.x_m.max(p.x_m), hi.y_m.max(p.y_m));
        }
        (lo, hi)
    }
}

/// Several polygons (a GeoJSON MultiPolygon, or one Polygon).
#[derive(Clone, Debug, Default)]
pub struct MultiPolygon {
    pub polygons: Vec<Polygon>,
}

impl MultiPolygon {
    pub fn contains(&self, p: Xy) -> bool {
        self.polygons.iter().any(|poly| poly.contains(p))
    }
    pub fn bbox(&self) -> (Xy, Xy) {
        let mut lo = Xy::new(f64::MAX, f64::MAX);
        let mut hi = Xy::new(f64::MIN, f64::MIN);
        for poly in &self.polygons {
            let (a, b) = poly.bbox();
            lo = Xy::new(lo.x_m.min(a.x_m), lo.y_m.min(a.y_m));
            hi = Xy::new(hi.x_m.max(b.x_m), hi.y_m.max(b.y_m));
        }
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_agrees_with_haversine() {
        let f = Frame::new(51.4545, -2.5879);
        let p = Xy::new(3000.0, -4000.0);
        let (lat, lon) = f.to_latlon(p);
        let q = f.to_xy(lat, lon);
        assert!(p.dist_m(q) < 1e-6);
        let d = haversine_m(51.4545, -2.5879, lat, lon);
        assert!((d - 5000.0).abs() < 10.0, "{d}");
    }

    #[test]
    fn polygon_with_hole() {
        let sq = |r: f64| {
            vec![
                Xy::new(-r, -r),
                Xy::new(r, -r),
                Xy::new(r, r),
                Xy::new(-r, r),
            ]
        };
        let p = Polygon {
            rings: vec![sq(10.0), sq(2.0)],
        };
        assert!(p.contains(Xy::new(5.0, 5.0)));
        assert!(!p.contains(Xy::new(0.0, 0.0)));
        assert!(!p.contains(Xy::new(20.0, 0.0)));
    }
}
