//! The simulated geography: a police force area polygon from the ONS boundaries GeoJSON, a centre
//! where people cluster (Bristol by default), an urban-density field, and the EMAC force that sends
//! crime batches for the area.
//!
//! No road or building data is available (no downloads), so homes and places are sampled around
//! the centre inside the force polygon, and "dense" (worse GPS, more multipath) falls off with
//! distance from the centre.

use crate::geo::{Frame, MultiPolygon, Polygon, Xy};
use crate::rng::Rng;
use std::path::Path;
use thiserror::Error;

/// Why the area could not be set up.
#[derive(Debug, Error)]
pub enum AreaError {
    #[error("cannot read force areas file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("force areas file {path} is not GeoJSON: {reason}")]
    Parse { path: String, reason: String },
    #[error("no police force area named '{name}' in {path}; known: {known}")]
    UnknownArea {
        name: String,
        path: String,
        known: String,
    },
}

/// One of the 19 EMAC forces: the identifier used in crime CSV column 0 and its batch-id code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Force {
    pub id: &'static str,
    pub code: &'static str,
    /// The force area's `PFA20NM` in the boundaries file.
    pub pfa_name: &'static str,
}

/// The 19 EMAC forces (domain page section 4).
pub const EMAC_FORCES: [Force; 19] = [
    Force {
        id: "AvonSomerset",
        code: "AVS",
        pfa_name: "Avon and Somerset",
    },
    Force {
        id: "Bedfordshire",
        code: "BFD",
        pfa_name: "Bedfordshire",
    },
    Force {
        id: "Cheshire",
        code: "CHS",
        pfa_name: "Cheshire",
    },
    Force {
        id: "CoLP",
        code: "CoLP",
        pfa_name: "London, City of",
    },
    Force {
        id: "Cumbria",
        code: "CMB",
        pfa_name: "Cumbria",
    },
    Force {
        id: "Derbyshire",
        code: "DBY",
        pfa_name: "Derbyshire",
    },
    Force {
        id: "Durham",
        code: "DUR",
        pfa_name: "Durham",
    },
    Force {
        id: "Essex",
        code: "ESX",
        pfa_name: "Essex",
    },
    Force {
        id: "Gloucestershire",
        code: "GLC",
        pfa_name: "Gloucestershire",
    },
    Force {
        id: "Gwent",
        code: "GWP",
        pfa_name: "Gwent",
    },
    Force {
        id: "Hampshire",
        code: "HAM",
        pfa_name: "Hampshire",
    },
    Force {
        id: "Hertfordshire",
        code: "HRT",
        pfa_name: "Hertfordshire",
    },
    Force {
        id: "Humberside",
        code: "HMB",
        pfa_name: "Humberside",
    },
    Force {
        id: "Kent",
        code: "KNT",
        pfa_name: "Kent",
    },
    Force {
        id: "Metropolitan",
        code: "MPS",
        pfa_name: "Metropolitan Police",
    },
    Force {
        id: "NorthWales",
        code: "NWL",
        pfa_name: "North Wales",
    },
    Force {
        id: "Nottinghamshire",
        code: "NOT",
        pfa_name: "Nottinghamshire",
    },
    Force {
        id: "Sussex",
        code: "SXP",
        pfa_name: "Sussex",
    },
    Force {
        id: "WestMidlands",
        code: "WMP",
        pfa_name: "West Midlands",
    },
];

/// Default area: Bristol, inside Avon and Somerset.
pub const DEFAULT_AREA: &str = "Avon and Somerset";
/// The 43 police force areas of England and Wales (ONS, December 2020, generalised; OGL v3.0:
/// see `simulator/data/README.md`), carried inside the binary.
const BUILTIN_FORCE_AREAS: &str = include_str!("../data/police-force-areas.geojson");
const BUILTIN_FORCE_AREAS_NAME: &str = "the built-in police force areas";
const BRISTOL_LAT: f64 = 51.4545;
const BRISTOL_LON: f64 = -2.5879;

/// The simulated area.
#[derive(Clone, Debug)]
pub struct Area {
    /// `PFA20NM` of the force area.
    pub name: String,
    /// The EMAC force sending crime batches here, if the area is an EMAC force.
    pub force: Option<Force>,
    /// Local frame, origin at the population centre.
    pub frame: Frame,
    pub polygon: MultiPolygon,
    /// Typical distance of homes from the centre (metres).
    pub spread_m: f64,
}

fn parse_ring(v: &serde_json::Value, frame: &Frame) -> Vec<Xy> {
    v.as_array()
        .map(|pts| {
            pts.iter()
                .filter_map(|p| {
                    let a = p.as_array()?;
                    Some(frame.to_xy(a.get(1)?.as_f64()?, a.first()?.as_f64()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_polygon(v: &serde_json::Value, frame: &Frame) -> Polygon {
    Polygon {
        rings: v
            .as_array()
            .map(|rings| rings.iter().map(|r| parse_ring(r, frame)).collect())
            .unwrap_or_default(),
    }
}

impl Area {
    /// Loads the area named `name` (a `PFA20NM`, case-insensitive; "Bristol" means the default)
    /// from a force areas GeoJSON file.
    pub fn load(geojson_path: &Path, name: &str) -> Result<Area, AreaError> {
        let path = geojson_path.display().to_string();
        let text = std::fs::read_to_string(geojson_path).map_err(|source| AreaError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_geojson(&text, &path, name)
    }

    /// Loads the area named `name` from the police force areas built into the binary, so that
    /// tagsim runs from any directory with nothing beside it.
    pub fn load_builtin(name: &str) -> Result<Area, AreaError> {
        Self::from_geojson(BUILTIN_FORCE_AREAS, BUILTIN_FORCE_AREAS_NAME, name)
    }

    /// Loads the area named `name` from force areas GeoJSON text; `path` names its source in errors.
    pub fn from_geojson(text: &str, path: &str, name: &str) -> Result<Area, AreaError> {
        let path = path.to_string();
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| AreaError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let features = doc["features"].as_array().ok_or_else(|| AreaError::Parse {
            path: path.clone(),
            reason: "no 'features' array".into(),
        })?;
        let wanted = if name.eq_ignore_ascii_case("bristol") {
            DEFAULT_AREA
        } else {
            name
        };
        let mut known = Vec::new();
        for f in features {
            let props = &f["properties"];
            let pfa = props["PFA20NM"].as_str().unwrap_or_default();
            known.push(pfa.to_string());
            if !pfa.eq_ignore_ascii_case(wanted) {
                continue;
            }
            let (lat0, lon0) = if pfa == DEFAULT_AREA {
                (BRISTOL_LAT, BRISTOL_LON)
            } else {
                (
                    props["LAT"].as_f64().unwrap_or(0.0),
                    props["LONG"].as_f64().unwrap_or(0.0),
                )
            };
            let frame = Frame::new(lat0, lon0);
            let geom = &f["geometry"];
            let polygons = match geom["type"].as_str() {
                Some("Polygon") => vec![parse_polygon(&geom["coordinates"], &frame)],
                Some("MultiPolygon") => geom["coordinates"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| parse_polygon(p, &frame)).collect())
                    .unwrap_or_default(),
                other => {
                    return Err(AreaError::Parse {
                        path,
                        reason: format!("area '{pfa}' has geometry type {other:?}"),
                    })
                }
            };
            let polygon = MultiPolygon { polygons };
            let (lo, hi) = polygon.bbox();
            let size_m = ((hi.x_m - lo.x_m) * (hi.y_m - lo.y_m)).max(1.0).sqrt();
            let mut area = Area {
                name: pfa.to_string(),
                force: EMAC_FORCES.iter().find(|f| f.pfa_name == pfa).copied(),
                frame,
                polygon,
                spread_m: (size_m * 0.08).clamp(300.0, 4500.0),
            };
            area.recentre();
            return Ok(area);
        }
        Err(AreaError::UnknownArea {
            name: name.to_string(),
            path,
            known: known.join(", "),
        })
    }

    /// Moves the frame origin inside the polygon if the centroid property lies outside it.
    fn recentre(&mut self) {
        if self.polygon.contains(Xy::default()) {
            return;
        }
        let (lo, hi) = self.polygon.bbox();
        let mut rng = Rng::new(0xA4EA);
        for _ in 0..100_000 {
            let p = Xy::new(rng.range(lo.x_m, hi.x_m), rng.range(lo.y_m, hi.y_m));
            if self.polygon.contains(p) {
                let (lat, lon) = self.frame.to_latlon(p);
                let old = std::mem::replace(&mut self.frame, Frame::new(lat, lon));
                for poly in &mut self.polygon.polygons {
                    for ring in &mut poly.rings {
                        for q in ring.iter_mut() {
                            let (la, lo) = old.to_latlon(*q);
                            *q = self.frame.to_xy(la, lo);
                        }
                    }
                }
                return;
            }
        }
    }

    /// Urban density in 0..1: 1 at the centre, falling off over a few spreads.
    #[inline]
    pub fn density(&self, p: Xy) -> f64 {
        let d = (p.x_m * p.x_m + p.y_m * p.y_m).sqrt();
        (-d / (1.2 * self.spread_m)).exp()
    }

    pub fn contains(&self, p: Xy) -> bool {
        self.polygon.contains(p)
    }

    /// A point near `around` (Gaussian, `sigma_m`), inside the area; falls back to `around`.
    pub fn sample_near(&self, rng: &mut Rng, around: Xy, sigma_m: f64) -> Xy {
        for _ in 0..64 {
            let p = around.add(rng.gauss(0.0, sigma_m), rng.gauss(0.0, sigma_m));
            if self.contains(p) {
                return p;
            }
        }
        around
    }

    /// A point at distance `lo_m..hi_m` from `around` in a random direction, inside the area.
    pub fn sample_ring(&self, rng: &mut Rng, around: Xy, lo_m: f64, hi_m: f64) -> Xy {
        let mut last = around;
        for _ in 0..64 {
            let r = rng.range(lo_m, hi_m);
            let a = rng.range(0.0, std::f64::consts::TAU);
            let p = around.add(r * a.cos(), r * a.sin());
            if self.contains(p) {
                return p;
            }
            last = p;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn areas() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/police-force-areas.geojson")
    }

    #[test]
    fn the_builtin_areas_are_the_shipped_file() {
        let from_file = Area::load(&areas(), "bristol").expect("file");
        let builtin = Area::load_builtin("bristol").expect("builtin");
        assert_eq!(from_file.spread_m, builtin.spread_m);
        assert!(builtin.contains(Xy::default()));
    }

    #[test]
    fn bristol_is_inside_avon_and_somerset() {
        let a = Area::load(&areas(), "bristol").expect("area");
        assert_eq!(a.force.map(|f| f.code), Some("AVS"));
        assert!(a.contains(Xy::default()));
        assert!(
            !a.contains(a.frame.to_xy(51.5074, -0.1278)),
            "London is not in Avon"
        );
        assert!(Area::load(&areas(), "Atlantis").is_err());
        let c = Area::load(&areas(), "London, City of").expect("CoLP");
        assert_eq!(c.force.map(|f| f.id), Some("CoLP"));
        assert!(c.spread_m < 1000.0);
    }
}
