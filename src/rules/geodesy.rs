//! Distances for the location rules, in metres.
//!
//! Choice: a **local equirectangular projection** around a reference point (a curfew address or a
//! zone's centre): x = Δlon·cos(lat₀)·R·π/180, y = Δlat·R·π/180 with the mean Earth radius
//! R = 6,371,008.8 m. Over the few kilometres a curfew address or a zone spans, its error against
//! the great-circle distance is far below GPS precision (under 0.1% within 10 km in Great Britain),
//! it is a handful of multiplications per fix, and polygons become plain planar geometry for `geo`.
//! Curfew presence uses the same projection around each address (a fix kilometres away is far
//! outside any radius whatever the small error). [`haversine_m`] is kept for tests and checks.

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Metres per degree of latitude on the mean sphere.
pub const M_PER_DEG_LAT: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

/// Great-circle distance between two WGS84 points, metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// A local metric plane around `(lat0, lon0)`: x east, y north, metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalProjection {
    pub lat0: f64,
    pub lon0: f64,
    m_per_deg_lon: f64,
}

impl LocalProjection {
    pub fn new(lat0: f64, lon0: f64) -> Self {
        Self {
            lat0,
            lon0,
            m_per_deg_lon: M_PER_DEG_LAT * lat0.to_radians().cos(),
        }
    }

    /// Projects a WGS84 point to metres east and north of the origin.
    pub fn to_xy(&self, lat: f64, lon: f64) -> (f64, f64) {
        (
            (lon - self.lon0) * self.m_per_deg_lon,
            (lat - self.lat0) * M_PER_DEG_LAT,
        )
    }
}

/// Half-sizes in degrees (lat, lon) of a square of half-side `r_m` metres centred at `lat`:
/// a degree of longitude shrinks with cos(lat), so the longitude half-size grows.
pub fn metres_to_degrees(lat: f64, r_m: f64) -> (f64, f64) {
    let dlat = r_m / M_PER_DEG_LAT;
    let cos = lat.to_radians().cos().max(1e-6);
    (dlat, dlat / cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_agrees_with_haversine_at_city_scale() {
        let p = LocalProjection::new(51.4545, -2.5879);
        let (lat, lon) = (51.4700, -2.5500);
        let (x, y) = p.to_xy(lat, lon);
        let planar = (x * x + y * y).sqrt();
        let great = haversine_m(51.4545, -2.5879, lat, lon);
        assert!((planar - great).abs() / great < 1e-3, "{planar} vs {great}");
        let (dlat, dlon) = metres_to_degrees(51.5, 1000.0);
        assert!((dlat - 0.008993).abs() < 1e-5);
        assert!((dlon - 0.014447).abs() < 1e-4, "{dlon}");
    }
}
