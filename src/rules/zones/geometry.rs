//! Zone geometry: GeoJSON (Polygon, MultiPolygon with holes, or Point plus `radius_m`) compiled
//! into a local metric plane around the zone (see `geodesy`), and the three questions the zone
//! rule asks of it: where a fix's confidence circle lies relative to the zone, whether the straight
//! path between two fixes passes through it (and where), and the zone's envelope in degrees for
//! the R-tree.

use super::super::geodesy::{metres_to_degrees, LocalProjection};
use geo::{Contains, Coord, Distance, Euclidean, LineString, MultiPolygon, Point, Polygon};
use serde_json::Value;

/// Why a zone geometry cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("geometry has no 'type'")]
    NoType,
    #[error("geometry type must be Polygon, MultiPolygon or Point, not '{0}'")]
    UnsupportedType(String),
    #[error("a Point zone needs a positive radius_m")]
    NoRadius,
    #[error("malformed coordinates: {0}")]
    Coordinates(String),
}

/// The shape in metres around the zone's projection origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle { radius_m: f64 },
    Area(MultiPolygon<f64>),
}

/// Where a fix's confidence circle lies relative to a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The whole circle is inside the zone.
    Inside,
    /// The whole circle is outside.
    Outside,
    /// The circle crosses the boundary; `centre_inside` says on which side the fix itself lies.
    Straddling { centre_inside: bool },
}

/// A zone's geometry, ready for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneGeometry {
    pub projection: LocalProjection,
    pub shape: Shape,
    /// Envelope in degrees: [min lon, min lat], [max lon, max lat].
    pub envelope_deg: ([f64; 2], [f64; 2]),
}

fn lon_lat(v: &Value) -> Result<(f64, f64), GeometryError> {
    let pair = v
        .as_array()
        .filter(|a| a.len() >= 2)
        .ok_or_else(|| GeometryError::Coordinates(format!("expected [lon, lat], got {v}")))?;
    let lon = pair[0].as_f64().filter(|x| (-180.0..=180.0).contains(x));
    let lat = pair[1].as_f64().filter(|x| (-90.0..=90.0).contains(x));
    match (lon, lat) {
        (Some(lon), Some(lat)) => Ok((lon, lat)),
        _ => Err(GeometryError::Coordinates(format!(
            "[lon, lat] out of range: {v}"
        ))),
    }
}

/// Rings of one GeoJSON polygon as (lon, lat) lists.
fn polygon_rings(v: &Value) -> Result<Vec<Vec<(f64, f64)>>, GeometryError> {
    let rings = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| GeometryError::Coordinates("a polygon needs at least one ring".into()))?;
    rings
        .iter()
        .map(|ring| {
            let points = ring
                .as_array()
                .ok_or_else(|| GeometryError::Coordinates("a ring must be an array".into()))?
                .iter()
                .map(lon_lat)
                .collect::<Result<Vec<_>, _>>()?;
            if points.len() < 4 {
                return Err(GeometryError::Coordinates(
                    "a ring needs at least 4 positions".into(),
                ));
            }
            Ok(points)
        })
        .collect()
}

impl ZoneGeometry {
    /// Compiles a contract zone geometry (`radius_m` is used for Point zones).
    pub fn from_geojson(geometry: &Value, radius_m: Option<f64>) -> Result<Self, GeometryError> {
        let kind = geometry
            .get("type")
            .and_then(Value::as_str)
            .ok_or(GeometryError::NoType)?;
        let coords = geometry
            .get("coordinates")
            .ok_or_else(|| GeometryError::Coordinates("no 'coordinates'".into()))?;
        match kind {
            "Point" => {
                let radius_m = radius_m
                    .filter(|r| *r > 0.0 && r.is_finite())
                    .ok_or(GeometryError::NoRadius)?;
                let (lon, lat) = lon_lat(coords)?;
                let (dlat, dlon) = metres_to_degrees(lat, radius_m);
                Ok(Self {
                    projection: LocalProjection::new(lat, lon),
                    shape: Shape::Circle { radius_m },
                    envelope_deg: ([lon - dlon, lat - dlat], [lon + dlon, lat + dlat]),
                })
            }
            "Polygon" | "MultiPolygon" => {
                let polygons: Vec<Vec<Vec<(f64, f64)>>> = if kind == "Polygon" {
                    vec![polygon_rings(coords)?]
                } else {
                    coords
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .ok_or_else(|| {
                            GeometryError::Coordinates("a MultiPolygon needs polygons".into())
                        })?
                        .iter()
                        .map(polygon_rings)
                        .collect::<Result<_, _>>()?
                };
                let (mut min, mut max) = ([f64::MAX; 2], [f64::MIN; 2]);
                for (lon, lat) in polygons.iter().flat_map(|p| p[0].iter()) {
                    min = [min[0].min(*lon), min[1].min(*lat)];
                    max = [max[0].max(*lon), max[1].max(*lat)];
                }
                let projection =
                    LocalProjection::new((min[1] + max[1]) / 2.0, (min[0] + max[0]) / 2.0);
                let to_ring = |ring: &Vec<(f64, f64)>| {
                    LineString::new(
                        ring.iter()
                            .map(|(lon, lat)| {
                                let (x, y) = projection.to_xy(*lat, *lon);
                                Coord { x, y }
                            })
                            .collect(),
                    )
                };
                let mp = MultiPolygon::new(
                    polygons
                        .iter()
                        .map(|rings| {
                            Polygon::new(
                                to_ring(&rings[0]),
                                rings[1..].iter().map(to_ring).collect(),
                            )
                        })
                        .collect(),
                );
                Ok(Self {
                    projection,
                    shape: Shape::Area(mp),
                    envelope_deg: (min, max),
                })
            }
            other => Err(GeometryError::UnsupportedType(other.to_string())),
        }
    }

    /// Where the confidence circle of radius `p_m` around (lat, lon) lies.
    pub fn place(&self, lat: f64, lon: f64, p_m: f64) -> Placement {
        let (inside, dist_m) = self.side_and_distance(lat, lon);
        match (inside, dist_m >= p_m) {
            (true, true) => Placement::Inside,
            (false, true) if dist_m > p_m => Placement::Outside,
            (centre_inside, _) => Placement::Straddling { centre_inside },
        }
    }

    /// How far (lat, lon) is from the zone's boundary, in metres (on either side).
    pub fn boundary_distance_m(&self, lat: f64, lon: f64) -> f64 {
        self.side_and_distance(lat, lon).1
    }

    /// Whether (lat, lon) is inside, and its distance to the boundary.
    fn side_and_distance(&self, lat: f64, lon: f64) -> (bool, f64) {
        let (x, y) = self.projection.to_xy(lat, lon);
        match &self.shape {
            Shape::Circle { radius_m } => {
                let d = (x * x + y * y).sqrt();
                (d <= *radius_m, (d - radius_m).abs())
            }
            Shape::Area(mp) => {
                let point = Point::new(x, y);
                let inside = mp.contains(&point);
                let dist = mp
                    .iter()
                    .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                    .map(|ring| Euclidean.distance(&point, ring))
                    .fold(f64::MAX, f64::min);
                (inside, dist)
            }
        }
    }

    /// If the straight segment a→b passes through the zone, the fractions along it (0..1) where
    /// it first enters and last leaves.
    pub fn crossing(&self, a: (f64, f64), b: (f64, f64)) -> Option<(f64, f64)> {
        let (ax, ay) = self.projection.to_xy(a.0, a.1);
        let (bx, by) = self.projection.to_xy(b.0, b.1);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        if len2 == 0.0 {
            return None;
        }
        match &self.shape {
            Shape::Circle { radius_m } => {
                // |a + s·d|² = r²
                let qa = len2;
                let qb = 2.0 * (ax * dx + ay * dy);
                let qc = ax * ax + ay * ay - radius_m * radius_m;
                let disc = qb * qb - 4.0 * qa * qc;
                if disc <= 0.0 {
                    return None;
                }
                let root = disc.sqrt();
                let s0 = ((-qb - root) / (2.0 * qa)).max(0.0);
                let s1 = ((-qb + root) / (2.0 * qa)).min(1.0);
                (s0 < s1).then_some((s0, s1))
            }
            Shape::Area(mp) => {
                let mut lo = f64::MAX;
                let mut hi = f64::MIN;
                for ring in mp
                    .iter()
                    .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                {
                    for edge in ring.lines() {
                        let (ex, ey) = (edge.end.x - edge.start.x, edge.end.y - edge.start.y);
                        let denom = dx * ey - dy * ex;
                        if denom.abs() < 1e-12 {
                            continue;
                        }
                        let (wx, wy) = (edge.start.x - ax, edge.start.y - ay);
                        let s = (wx * ey - wy * ex) / denom;
                        let u = (wx * dy - wy * dx) / denom;
                        if (0.0..=1.0).contains(&s) && (0.0..=1.0).contains(&u) {
                            lo = lo.min(s);
                            hi = hi.max(s);
                        }
                    }
                }
                (lo < hi).then_some((lo, hi))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polygon_with_hole_places_fixes_with_precision() {
        // About 1.1 km square with a ~220 m square hole in the middle, in Bristol.
        let g = ZoneGeometry::from_geojson(
            &json!({"type":"Polygon","coordinates":[
                [[-2.60,51.45],[-2.584,51.45],[-2.584,51.46],[-2.60,51.46],[-2.60,51.45]],
                [[-2.5935,51.4540],[-2.5905,51.4540],[-2.5905,51.4560],[-2.5935,51.4560],[-2.5935,51.4540]]]}),
            None,
        )
        .unwrap();
        assert_eq!(g.place(51.452, -2.597, 10.0), Placement::Inside);
        assert_eq!(
            g.place(51.455, -2.592, 10.0),
            Placement::Outside,
            "in the hole"
        );
        assert_eq!(
            g.place(51.452, -2.597, 500.0),
            Placement::Straddling {
                centre_inside: true
            }
        );
        assert_eq!(g.place(51.47, -2.59, 10.0), Placement::Outside);
        let (s0, s1) = g.crossing((51.455, -2.61), (51.455, -2.575)).unwrap();
        assert!(s0 > 0.2 && s0 < 0.35 && s1 > 0.7 && s1 < 0.8, "{s0} {s1}");
        assert!(g.crossing((51.47, -2.61), (51.47, -2.575)).is_none());
    }

    #[test]
    fn point_zone_uses_metres_and_its_envelope_is_wider_in_longitude() {
        let g = ZoneGeometry::from_geojson(
            &json!({"type":"Point","coordinates":[-2.6,51.45]}),
            Some(500.0),
        )
        .unwrap();
        let (min, max) = g.envelope_deg;
        assert!((max[0] - min[0]) > (max[1] - min[1]) * 1.5);
        assert_eq!(g.place(51.45, -2.6, 10.0), Placement::Inside);
        assert_eq!(
            g.place(51.4544, -2.6, 20.0),
            Placement::Straddling {
                centre_inside: true
            }
        );
        assert!(matches!(
            ZoneGeometry::from_geojson(&json!({"type":"Point","coordinates":[-2.6,51.45]}), None),
            Err(GeometryError::NoRadius)
        ));
    }
}
