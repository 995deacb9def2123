//! British National Grid (EPSG:27700, OSGB36 Transverse Mercator) to and from WGS84.
//!
//! Police crime batches carry either WGS84 latitude/longitude or BNG eastings/northings. This module
//! converts with the standard Ordnance Survey formulas: Transverse Mercator on the Airy 1830
//! ellipsoid plus the published 7-parameter Helmert transformation between WGS84 and OSGB36.
//! Helmert is good to a few metres (OSTN15 would be centimetres, but needs a 15 MB grid); at the
//! domain page's check points it agrees to about 1e-5 degrees, and the crime vicinity is 100 m.

/// Airy 1830 semi-major / semi-minor axes (metres).
const AIRY_A: f64 = 6_377_563.396;
const AIRY_B: f64 = 6_356_256.909;
/// WGS84 / GRS80 semi-major / semi-minor axes (metres).
const WGS84_A: f64 = 6_378_137.0;
const WGS84_B: f64 = 6_356_752.314_245;
/// National Grid projection constants.
const F0: f64 = 0.999_601_271_7;
const LAT0_DEG: f64 = 49.0;
const LON0_DEG: f64 = -2.0;
const E0_M: f64 = 400_000.0;
const N0_M: f64 = -100_000.0;

/// Helmert WGS84 -> OSGB36: translations (m), rotations (arc seconds), scale (ppm).
const HELMERT_T_M: [f64; 3] = [-446.448, 125.157, -542.060];
const HELMERT_R_SEC: [f64; 3] = [-0.1502, -0.2470, -0.8421];
const HELMERT_S_PPM: f64 = 20.4894;

/// Easting and northing in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridRef {
    pub easting_m: f64,
    pub northing_m: f64,
}

fn to_cartesian(lat_deg: f64, lon_deg: f64, a: f64, b: f64) -> [f64; 3] {
    let (lat, lon) = (lat_deg.to_radians(), lon_deg.to_radians());
    let e2 = 1.0 - (b * b) / (a * a);
    let nu = a / (1.0 - e2 * lat.sin().powi(2)).sqrt();
    [
        nu * lat.cos() * lon.cos(),
        nu * lat.cos() * lon.sin(),
        (1.0 - e2) * nu * lat.sin(),
    ]
}

fn from_cartesian(p: [f64; 3], a: f64, b: f64) -> (f64, f64) {
    let e2 = 1.0 - (b * b) / (a * a);
    let pxy = (p[0] * p[0] + p[1] * p[1]).sqrt();
    let mut lat = (p[2] / (pxy * (1.0 - e2))).atan();
    for _ in 0..10 {
        let nu = a / (1.0 - e2 * lat.sin().powi(2)).sqrt();
        lat = ((p[2] + e2 * nu * lat.sin()) / pxy).atan();
    }
    (lat.to_degrees(), p[1].atan2(p[0]).to_degrees())
}

fn helmert(p: [f64; 3], sign: f64) -> [f64; 3] {
    let s = 1.0 + sign * HELMERT_S_PPM * 1e-6;
    let r = |sec: f64| sign * (sec / 3600.0).to_radians();
    let (rx, ry, rz) = (
        r(HELMERT_R_SEC[0]),
        r(HELMERT_R_SEC[1]),
        r(HELMERT_R_SEC[2]),
    );
    let t = HELMERT_T_M.map(|v| sign * v);
    [
        t[0] + s * p[0] - rz * p[1] + ry * p[2],
        t[1] + rz * p[0] + s * p[1] - rx * p[2],
        t[2] - ry * p[0] + rx * p[1] + s * p[2],
    ]
}

/// The meridional arc from the true origin to latitude `lat` (radians), Airy ellipsoid.
fn meridional_arc(lat: f64) -> f64 {
    let n = (AIRY_A - AIRY_B) / (AIRY_A + AIRY_B);
    let (n2, n3) = (n * n, n * n * n);
    let lat0 = LAT0_DEG.to_radians();
    let (dl, sl) = (lat - lat0, lat + lat0);
    AIRY_B
        * F0
        * ((1.0 + n + 1.25 * n2 + 1.25 * n3) * dl
            - (3.0 * n + 3.0 * n2 + 21.0 / 8.0 * n3) * dl.sin() * sl.cos()
            + (15.0 / 8.0 * n2 + 15.0 / 8.0 * n3) * (2.0 * dl).sin() * (2.0 * sl).cos()
            - 35.0 / 24.0 * n3 * (3.0 * dl).sin() * (3.0 * sl).cos())
}

/// WGS84 latitude/longitude (degrees) to National Grid easting/northing.
pub fn wgs84_to_bng(lat_deg: f64, lon_deg: f64) -> GridRef {
    let c = helmert(to_cartesian(lat_deg, lon_deg, WGS84_A, WGS84_B), 1.0);
    let (lat_d, lon_d) = from_cartesian(c, AIRY_A, AIRY_B);
    let (lat, lon) = (lat_d.to_radians(), lon_d.to_radians());
    let e2 = 1.0 - (AIRY_B * AIRY_B) / (AIRY_A * AIRY_A);
    let (s, c, t) = (lat.sin(), lat.cos(), lat.tan());
    let nu = AIRY_A * F0 / (1.0 - e2 * s * s).sqrt();
    let rho = AIRY_A * F0 * (1.0 - e2) / (1.0 - e2 * s * s).powf(1.5);
    let eta2 = nu / rho - 1.0;
    let m = meridional_arc(lat);
    let i = m + N0_M;
    let ii = nu / 2.0 * s * c;
    let iii = nu / 24.0 * s * c.powi(3) * (5.0 - t * t + 9.0 * eta2);
    let iiia = nu / 720.0 * s * c.powi(5) * (61.0 - 58.0 * t * t + t.powi(4));
    let iv = nu * c;
    let v = nu / 6.0 * c.powi(3) * (nu / rho - t * t);
    let vi = nu / 120.0
        * c.powi(5)
        * (5.0 - 18.0 * t * t + t.powi(4) + 14.0 * eta2 - 58.0 * t * t * eta2);
    let dl = lon - LON0_DEG.to_radians();
    GridRef {
        easting_m: E0_M + iv * dl + v * dl.powi(3) + vi * dl.powi(5),
        northing_m: i + ii * dl * dl + iii * dl.powi(4) + iiia * dl.powi(6),
    }
}

/// National Grid easting/northing to WGS84 latitude/longitude (degrees).
pub fn bng_to_wgs84(g: GridRef) -> (f64, f64) {
    let e2 = 1.0 - (AIRY_B * AIRY_B) / (AIRY_A * AIRY_A);
    let mut lat = LAT0_DEG.to_radians();
    let mut m = 0.0;
    for _ in 0..20 {
        lat += (g.northing_m - N0_M - m) / (AIRY_A * F0);
        m = meridional_arc(lat);
        if (g.northing_m - N0_M - m).abs() < 1e-5 {
            break;
        }
    }
    let (s, c, t) = (lat.sin(), lat.cos(), lat.tan());
    let nu = AIRY_A * F0 / (1.0 - e2 * s * s).sqrt();
    let rho = AIRY_A * F0 * (1.0 - e2) / (1.0 - e2 * s * s).powf(1.5);
    let eta2 = nu / rho - 1.0;
    let sec = 1.0 / c;
    let vii = t / (2.0 * rho * nu);
    let viii = t / (24.0 * rho * nu.powi(3)) * (5.0 + 3.0 * t * t + eta2 - 9.0 * t * t * eta2);
    let ix = t / (720.0 * rho * nu.powi(5)) * (61.0 + 90.0 * t * t + 45.0 * t.powi(4));
    let x = sec / nu;
    let xi = sec / (6.0 * nu.powi(3)) * (nu / rho + 2.0 * t * t);
    let xii = sec / (120.0 * nu.powi(5)) * (5.0 + 28.0 * t * t + 24.0 * t.powi(4));
    let xiia = sec / (5040.0 * nu.powi(7))
        * (61.0 + 662.0 * t * t + 1320.0 * t.powi(4) + 720.0 * t.powi(6));
    let de = g.easting_m - E0_M;
    let lat_osgb = lat - vii * de * de + viii * de.powi(4) - ix * de.powi(6);
    let lon_osgb =
        LON0_DEG.to_radians() + x * de - xi * de.powi(3) + xii * de.powi(5) - xiia * de.powi(7);
    let cart = to_cartesian(lat_osgb.to_degrees(), lon_osgb.to_degrees(), AIRY_A, AIRY_B);
    from_cartesian(helmert(cart, -1.0), WGS84_A, WGS84_B)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_domain_page_check_values() {
        for (e, n, lon, lat) in [
            (529381.0, 179534.0, -0.137433, 51.499946),
            (537209.0, 180263.0, -0.024452, 51.504652),
        ] {
            let (la, lo) = bng_to_wgs84(GridRef {
                easting_m: e,
                northing_m: n,
            });
            eprintln!(
                "{e} {n} -> {la:.6} {lo:.6} (err {:.2e} {:.2e})",
                la - lat,
                lo - lon
            );
            assert!((la - lat).abs() < 2e-5 && (lo - lon).abs() < 2e-5);
            let g = wgs84_to_bng(lat, lon);
            eprintln!("back {:.2} {:.2}", g.easting_m - e, g.northing_m - n);
            assert!((g.easting_m - e).abs() < 2.0 && (g.northing_m - n).abs() < 2.0);
        }
    }
}
