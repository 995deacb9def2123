//! Each field's range and unit, checked the same way for both forms; `param` is the query
//! parameter or JSON path named in the error.
//!
//! The rule throughout: a value that is impossible (latitude 91, battery 150%, heading 400°) is
//! refused; a value the app uses to say "not known" (negative speed, heading or battery, as the
//! Traccar Client and iOS send -1) is left out; a possible value the model cannot hold (speed
//! over 655.35 km/h) is left out, as for Teltonika.

use super::error::{quoted, OsmandError};
use crate::model::to_fixed;

/// Hundredths of a km/h per knot (1 kn = 1.852 km/h).
pub const CKMH_PER_KNOT: f64 = 185.2;
/// Hundredths of a km/h per metre a second (1 m/s = 3.6 km/h).
pub const CKMH_PER_MPS: f64 = 360.0;

/// A decimal number as apps write them: optional sign, digits, optional fraction and exponent.
/// `inf`, `NaN`, hex and empty text are refused, and so is anything that overflows to infinity.
pub fn parse_number(param: &str, text: &str) -> Result<f64, OsmandError> {
    let bad = || OsmandError::BadNumber {
        param: param.to_string(),
        value: quoted(text),
    };
    let decimal_chars = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !decimal_chars || !text.bytes().any(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(bad)
}

/// Latitude in degrees → degrees × 1e7; refused beyond ±90.
pub fn latitude_e7(param: &str, deg: f64) -> Result<i32, OsmandError> {
    degrees_e7(param, deg, 90.0)
}

/// Longitude in degrees → degrees × 1e7; refused beyond ±180.
pub fn longitude_e7(param: &str, deg: f64) -> Result<i32, OsmandError> {
    degrees_e7(param, deg, 180.0)
}

fn degrees_e7(param: &str, deg: f64, max: f64) -> Result<i32, OsmandError> {
    to_fixed(deg, 1e7, -max, max)
        .and_then(|e7| i32::try_from(e7).ok())
        .ok_or_else(|| out_of_range(param, deg, -max, max))
}

/// A speed in the form's unit (`ckmh_per_unit`: [`CKMH_PER_KNOT`] or [`CKMH_PER_MPS`]) →
/// hundredths of a km/h; negative (not known) or over what a `u16` holds → left out.
pub fn speed_ckmh(value: f64, ckmh_per_unit: f64) -> Option<u16> {
    let ckmh = (value * ckmh_per_unit).round();
    (value >= 0.0 && ckmh <= f64::from(u16::MAX)).then_some(ckmh as u16)
}

/// A heading in degrees → hundredths of a degree in 0..36000; negative (not known) → left out,
/// 360 is north, beyond 360 refused.
pub fn heading_cdeg(param: &str, deg: f64) -> Result<Option<u16>, OsmandError> {
    if deg < 0.0 {
        return Ok(None);
    }
    if deg > 360.0 {
        return Err(out_of_range(param, deg, 0.0, 360.0));
    }
    Ok(Some(((deg * 100.0).round() as u32 % 36_000) as u16))
}

/// A battery level in percent → whole percent; negative (not known) → left out, over 100
/// refused.
pub fn battery_pct(param: &str, pct: f64) -> Result<Option<u8>, OsmandError> {
    if pct < 0.0 {
        return Ok(None);
    }
    if pct > 100.0 {
        return Err(out_of_range(param, pct, 0.0, 100.0));
    }
    Ok(Some(pct.round() as u8))
}

fn out_of_range(param: &str, value: f64, min: f64, max: f64) -> OsmandError {
    OsmandError::OutOfRange {
        param: param.to_string(),
        value,
        min,
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_finite_decimals() {
        assert_eq!(parse_number("lat", "60.0"), Ok(60.0));
        assert_eq!(parse_number("lat", "-0.883333"), Ok(-0.883333));
        assert_eq!(parse_number("lat", "1e2"), Ok(100.0));
        for bad in [
            "",
            "NaN",
            "nan",
            "inf",
            "-infinity",
            "0x10",
            "1,5",
            "1e400",
            ".",
            "-",
            "1 ",
        ] {
            assert!(
                matches!(parse_number("lat", bad), Err(OsmandError::BadNumber { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn coordinates_are_range_checked() {
        assert_eq!(latitude_e7("lat", 42.06288), Ok(420_628_800));
        assert_eq!(longitude_e7("lon", -180.0), Ok(-1_800_000_000));
        assert!(latitude_e7("lat", 90.0000001).is_err());
        assert!(longitude_e7("lon", 180.5).is_err());
        assert!(latitude_e7("lat", 1e300).is_err());
    }

    #[test]
    fn speed_heading_and_battery_units() {
        assert_eq!(
            speed_ckmh(40.0, CKMH_PER_KNOT),
            Some(7_408),
            "40 kn = 74.08 km/h"
        );
        assert_eq!(
            speed_ckmh(18.67, CKMH_PER_MPS),
            Some(6_721),
            "18.67 m/s = 67.21 km/h"
        );
        assert_eq!(speed_ckmh(-1.0, CKMH_PER_MPS), None);
        assert_eq!(speed_ckmh(1e300, CKMH_PER_KNOT), None);
        assert_eq!(heading_cdeg("bearing", 7.19889788244), Ok(Some(720)));
        assert_eq!(heading_cdeg("bearing", 359.999), Ok(Some(0)));
        assert_eq!(heading_cdeg("bearing", 360.0), Ok(Some(0)));
        assert_eq!(heading_cdeg("bearing", -1.0), Ok(None));
        assert!(heading_cdeg("bearing", 360.5).is_err());
        assert_eq!(battery_pct("batt", 87.0), Ok(Some(87)));
        assert_eq!(battery_pct("batt", 79.4), Ok(Some(79)));
        assert_eq!(battery_pct("batt", -1.0), Ok(None));
        assert!(battery_pct("batt", 100.5).is_err());
    }
}
