//! Geometry on the WGS84 sphere for trails: great-circle distance and named places (circles
//! and polygons) to say whether a point is at a known address or inside a zone.

use serde::{Deserialize, Serialize};

/// Mean Earth radius used for distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two (lat, lon) points in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// A named place: a circle (an address with a radius) or a polygon (a zone), in degrees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Place {
    Circle {
        name: String,
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    Polygon {
        name: String,
        /// Vertices as (lat, lon); closed implicitly.
        ring: Vec<(f64, f64)>,
    },
}

impl Place {
    pub fn name(&self) -> &str {
        match self {
            Place::Circle { name, .. } | Place::Polygon { name, .. } => name,
        }
    }

    /// Whether the point (degrees) is inside.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match self {
            Place::Circle {
                lat: clat,
                lon: clon,
                radius_m,
                ..
            } => haversine_m(lat, lon, *clat, *clon) <= *radius_m,
            Place::Polygon { ring, .. } => {
                // Even-odd ray casting in (lon, lat); fine at zone scale.
                let mut inside = false;
                let n = ring.len();
                for i in 0..n {
                    let (ya, xa) = ring[i];
                    let (yb, xb) = ring[(i + n - 1) % n];
                    if (ya > lat) != (yb > lat) && lon < (xb - xa) * (lat - ya) / (yb - ya) + xa {
                        inside = !inside;
                    }
                }
                inside
            }
        }
    }
}

/// The first place containing the point, if any.
pub fn place_at(places: &[Place], lat: f64, lon: f64) -> Option<&Place> {
    places.iter().find(|p| p.contains(lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = haversine_m(51.0, -1.0, 52.0, -1.0);
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
        assert_eq!(haversine_m(51.5, -0.1, 51.5, -0.1), 0.0);
    }

    #[test]
    fn circles_and_polygons() {
        let home = Place::Circle {
            name: "home".into(),
            lat: 51.5,
            lon: -0.1,
            radius_m: 50.0,
        };
        assert!(home.contains(51.5003, -0.1));
        assert!(!home.contains(51.5006, -0.1));
        let zone = Place::Polygon {
            name: "zone".into(),
            ring: vec![(51.0, -1.0), (51.0, 0.0), (52.0, 0.0), (52.0, -1.0)],
        };
        assert!(zone.contains(51.5, -0.5));
        assert!(!zone.contains(51.5, 0.5));
        assert_eq!(
            place_at(&[home, zone], 51.5, -0.5).map(|p| p.name()),
            Some("zone")
        );
    }
}
