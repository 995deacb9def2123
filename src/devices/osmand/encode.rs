//! A reading → the OsmAnd query request the Traccar Client would send for it (`/?id=…`), for
//! the simulator. Positions carry `lat`, `lon`, `accuracy` (the precision turned back into a
//! 68% radius by the mapping's factor), and `speed` (knots) and `bearing` when known; a
//! `Charging` event is a request with `charge=true` and no location. The time is Unix seconds
//! as the app sends it, or milliseconds when the reading's time is not a whole second.
//!
//! Numbers are written with enough decimals that decoding gives back the same reading, for
//! precisions within the mapping's floor and cap. OsmAnd has no place for satellites, a
//! position's source, alcohol or RF readings, or other events: those are refused.

use super::device_id::check_device_id;
use super::error::OsmandEncodeError;
use super::fields::CKMH_PER_KNOT;
use super::limits::Limits;
use super::mapping::MappingConfig;
use crate::model::{DeviceEvent, PositionSource, Reading, ReadingBody};
use std::fmt::Write;

/// The request target (path and query) for one reading.
pub fn encode_query(
    device_id: &str,
    reading: &Reading,
    mapping: &MappingConfig,
) -> Result<String, OsmandEncodeError> {
    check_device_id(device_id, Limits::default().max_device_id_chars)
        .map_err(|e| OsmandEncodeError::DeviceId(e.to_string()))?;
    // Device ids are restricted to characters a query needs not escape.
    let mut out = format!("/?id={device_id}&timestamp=");
    // Seconds as the app sends them, unless the decoder would read them as milliseconds
    // (from 2038-01-19, Traccar's rule) or they would lose the milliseconds.
    if reading.t_ms % 1000 == 0 && reading.t_ms / 1000 < i64::from(i32::MAX) {
        let _ = write!(out, "{}", reading.t_ms / 1000);
    } else {
        let _ = write!(out, "{}", reading.t_ms);
    }
    match reading.body {
        ReadingBody::Position(p) => {
            if p.source != PositionSource::Gps {
                return Err(OsmandEncodeError::NotGps {
                    source_name: p.source.as_str(),
                });
            }
            let accuracy_m = f64::from(p.precision_cm) * 10.0
                / f64::from(mapping.precision_per_accuracy_permille);
            let _ = write!(
                out,
                "&lat={}&lon={}&accuracy={accuracy_m:.6}",
                e7_decimal(p.lat_e7),
                e7_decimal(p.lon_e7)
            );
            if let Some(ckmh) = p.speed_ckmh {
                let _ = write!(out, "&speed={:.6}", f64::from(ckmh) / CKMH_PER_KNOT);
            }
            if let Some(cdeg) = p.heading_cdeg {
                let _ = write!(out, "&bearing={}.{:02}", cdeg / 100, cdeg % 100);
            }
        }
        ReadingBody::Event(DeviceEvent::Charging) => out.push_str("&charge=true"),
        ReadingBody::Event(other) => {
            return Err(OsmandEncodeError::NotCarried {
                what: other.as_str(),
            })
        }
        ReadingBody::Tac(_) => return Err(OsmandEncodeError::NotCarried { what: "alcohol" }),
        ReadingBody::Rf { .. } => return Err(OsmandEncodeError::NotCarried { what: "RF" }),
    }
    if let Some(pct) = reading.battery_pct {
        let _ = write!(out, "&batt={pct}");
    }
    Ok(out)
}

/// Degrees × 1e7 as exact decimal degrees (`-0.1278000`), written from the integer so that no
/// float rounding is involved.
fn e7_decimal(e7: i32) -> String {
    let sign = if e7 < 0 { "-" } else { "" };
    let abs = e7.unsigned_abs();
    format!("{sign}{}.{:07}", abs / 10_000_000, abs % 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;

    #[test]
    fn a_position_is_written_as_the_app_would() {
        let reading = Reading {
            t_ms: 1_700_000_000_000,
            battery_pct: Some(87),
            body: ReadingBody::Position(Position {
                lat_e7: 515_074_000,
                lon_e7: -1_278_000,
                precision_cm: 811,
                source: PositionSource::Gps,
                speed_ckmh: Some(7_408),
                heading_cdeg: Some(905),
                satellites: None,
            }),
        };
        assert_eq!(
            encode_query("tag-1", &reading, &MappingConfig::default()).unwrap(),
            "/?id=tag-1&timestamp=1700000000&lat=51.5074000&lon=-0.1278000&accuracy=5.003085\
             &speed=40.000000&bearing=9.05&batt=87"
        );
    }

    #[test]
    fn what_osmand_cannot_carry_is_refused() {
        let config = MappingConfig::default();
        let event = |event| Reading {
            t_ms: 1_700_000_000_123,
            battery_pct: None,
            body: ReadingBody::Event(event),
        };
        assert_eq!(
            encode_query("1", &event(DeviceEvent::Charging), &config).unwrap(),
            "/?id=1&timestamp=1700000000123&charge=true"
        );
        assert_eq!(
            encode_query(
                "1",
                &Reading {
                    t_ms: 2_147_483_647_000,
                    ..event(DeviceEvent::Charging)
                },
                &config
            )
            .unwrap(),
            "/?id=1&timestamp=2147483647000&charge=true",
            "2038-01-19T03:14:07Z: seconds would read as milliseconds"
        );
        assert_eq!(
            encode_query("1", &event(DeviceEvent::StrapOpen), &config),
            Err(OsmandEncodeError::NotCarried { what: "strap_open" })
        );
        assert!(matches!(
            encode_query("a b", &event(DeviceEvent::Charging), &config),
            Err(OsmandEncodeError::DeviceId(_))
        ));
    }
}
