//! British National Grid (EPSG:27700, OSGB36 Transverse Mercator) to WGS84 latitude/longitude.
//!
//! Police batches give a crime's location either as WGS84 latitude/longitude or as BNG
//! easting/northing; everything downstream (trails, hits) works in WGS84, so BNG rows are
//! converted here.
//!
//! The conversion uses [`proj4rs`] (a pure-Rust port of PROJ.4, only `thiserror` and a small
//! geodesic crate as dependencies) with the EPSG:27700 definition: Transverse Mercator on the Airy
//! 1830 ellipsoid, then the published 7-parameter Helmert shift to WGS84. `lonlat_bng` (OSTN15, a
//! centimetre-grade grid) was tried first and rejected: it does not build offline here (its
//! build-dependency `cbindgen` and most of its 73 transitive crates are not in the local registry
//! cache), and it drags `cbindgen`, `rayon` and `rand` plus a build script that generates a
//! ~900,000-entry PHF map from a 4.5 MB crate, a heavy price on a 2-core build. Helmert is good to
//! a few metres across Great Britain; at the domain page's two check points it is within 6e-6
//! degrees (under half a metre), well inside the 100 m crime vicinity.

use proj4rs::proj::Proj;
use std::sync::OnceLock;

/// The EPSG:27700 (OSGB36 / British National Grid) definition, with its Helmert shift to WGS84.
const BNG_PROJ4: &str = "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 \
     +y_0=-100000 +ellps=airy +towgs84=446.448,-125.157,542.06,0.15,0.247,0.842,-20.489 \
     +units=m +no_defs";
/// EPSG:4326, WGS84 longitude/latitude.
const WGS84_PROJ4: &str = "+proj=longlat +ellps=WGS84 +datum=WGS84 +no_defs";

/// Why a grid reference could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    #[error("the BNG or WGS84 projection definition did not parse: {0}")]
    Definition(String),
    #[error("easting {easting_m} m, northing {northing_m} m could not be converted: {reason}")]
    Transform {
        easting_m: f64,
        northing_m: f64,
        reason: String,
    },
}

fn projections() -> Result<&'static (Proj, Proj), ConversionError> {
    static PROJECTIONS: OnceLock<Result<(Proj, Proj), ConversionError>> = OnceLock::new();
    PROJECTIONS
        .get_or_init(|| {
            let parse = |s: &str| {
                Proj::from_proj_string(s).map_err(|e| ConversionError::Definition(e.to_string()))
            };
            Ok((parse(BNG_PROJ4)?, parse(WGS84_PROJ4)?))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// WGS84 latitude and longitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// Converts a BNG easting/northing (metres) to WGS84 latitude/longitude (degrees).
pub fn bng_to_wgs84(easting_m: f64, northing_m: f64) -> Result<LatLon, ConversionError> {
    let (bng, wgs84) = projections()?;
    let mut point = (easting_m, northing_m, 0.0);
    let failed = |reason: String| ConversionError::Transform {
        easting_m,
        northing_m,
        reason,
    };
    proj4rs::transform::transform(bng, wgs84, &mut point).map_err(|e| failed(e.to_string()))?;
    let (lon, lat) = (point.0.to_degrees(), point.1.to_degrees());
    if !(lat.is_finite() && lon.is_finite()) {
        return Err(failed("the result is not a finite position".into()));
    }
    Ok(LatLon { lat, lon })
}

/// A BNG easting and northing in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bng {
    pub easting_m: f64,
    pub northing_m: f64,
}

/// Converts WGS84 latitude/longitude (degrees) to a BNG easting/northing (metres): the inverse
/// of [`bng_to_wgs84`], for documents that give positions in both.
pub fn wgs84_to_bng(lat: f64, lon: f64) -> Result<Bng, ConversionError> {
    let (bng, wgs84) = projections()?;
    let mut point = (lon.to_radians(), lat.to_radians(), 0.0);
    let failed = |reason: String| ConversionError::Transform {
        easting_m: lon,
        northing_m: lat,
        reason: format!("(from latitude {lat}, longitude {lon}) {reason}"),
    };
    proj4rs::transform::transform(wgs84, bng, &mut point).map_err(|e| failed(e.to_string()))?;
    if !(point.0.is_finite() && point.1.is_finite()) {
        return Err(failed("the result is not a finite position".into()));
    }
    Ok(Bng {
        easting_m: point.0,
        northing_m: point.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(easting_m: f64, northing_m: f64, lon: f64, lat: f64) {
        let p = bng_to_wgs84(easting_m, northing_m).expect("converts");
        eprintln!(
            "{easting_m} {northing_m} -> lat {:.7} lon {:.7} (err {:.1e} {:.1e})",
            p.lat,
            p.lon,
            p.lat - lat,
            p.lon - lon
        );
        assert!((p.lat - lat).abs() < 1e-5, "lat {} vs {lat}", p.lat);
        assert!((p.lon - lon).abs() < 1e-5, "lon {} vs {lon}", p.lon);
    }

    #[test]
    fn westminster_check_value_from_the_domain_page() {
        check(529_381.0, 179_534.0, -0.137433, 51.499946);
    }

    #[test]
    fn wgs84_to_bng_inverts_the_conversion_within_a_metre() {
        let p = wgs84_to_bng(51.499946, -0.137433).expect("converts");
        assert!((p.easting_m - 529_381.0).abs() < 1.0, "{p:?}");
        assert!((p.northing_m - 179_534.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn canary_wharf_check_value_from_the_domain_page() {
        check(537_209.0, 180_263.0, -0.024452, 51.504652);
    }
}
