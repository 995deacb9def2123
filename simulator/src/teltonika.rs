//! What a simulated tag sends when it is a Teltonika tracker (`tagsim stream --protocol
//! teltonika`): each tag's IMEI, and each reading as the AVL record a real tracker would send —
//! a GNSS fix with its HDOP, battery level and the standard battery and charger events. A
//! tracker has no RF, alcohol or tamper sensors and no cell or Wi-Fi fixes, so those readings are
//! not sent (counted as not sendable).
//!
//! `devices.json` (written beside `orders.json`) binds every tag's IMEI to it, in the shape the
//! API's `PUT /v1/devices/teltonika/{imei}` takes.

use std::path::Path;
use tagstream::devices::teltonika::mapping::io_id;
use tagstream::devices::teltonika::{
    readings_of, AvlRecord, GpsElement, IoElement, IoValue, MappingConfig, Priority,
};
use tagstream::model::{DeviceEvent, PositionSource, Reading, ReadingBody};

/// The IMEI of a tag: "35" (the reporting body of many trackers' type allocation codes) and 13
/// digits of a hash of the tag id, so any tag has one without a registry and the same tag always
/// the same. (FNV-1a: fixed, so IMEIs do not change between builds.)
pub fn imei_of_tag(tag: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tag.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("35{:013}", hash % 10_000_000_000_000)
}

/// HDOP × 10 for a fix of precision `precision_cm` (95% radius): the inverse of the server's
/// mapping (5 m per unit of HDOP), rounded to the element's tenth. A real receiver reports the
/// HDOP its geometry gives; the simulator's precision stands for that geometry.
fn hdop_x10(precision_cm: u32, mapping: &MappingConfig) -> u16 {
    let per_tenth_cm = (mapping.range_error_cm_per_hdop / 10).max(1);
    let tenths = (precision_cm + per_tenth_cm / 2) / per_tenth_cm;
    u16::try_from(tenths.max(1)).unwrap_or(u16::MAX)
}

/// The AVL record a tracker would send for `reading`, if it can carry it.
pub fn record_of(reading: &Reading, mapping: &MappingConfig) -> Option<AvlRecord> {
    let mut io = Vec::new();
    if let Some(pct) = reading.battery_pct {
        io.push(IoElement {
            id: io_id::BATTERY_LEVEL_PCT,
            value: IoValue::U8(pct),
        });
    }
    let (gps, event_io_id) = match &reading.body {
        ReadingBody::Position(p) if p.source == PositionSource::Gps => {
            io.push(IoElement {
                id: io_id::HDOP,
                value: IoValue::U16(hdop_x10(p.precision_cm, mapping)),
            });
            let gps = GpsElement {
                longitude_e7: p.lon_e7,
                latitude_e7: p.lat_e7,
                altitude_m: 0,
                angle_deg: p.heading_cdeg.map_or(0, |h| (h + 50) / 100 % 360),
                // A fix always has satellites; the simulator's GPS reports at least 4.
                satellites: p.satellites.unwrap_or(4).max(1),
                speed_kmh: p.speed_ckmh.map_or(0, |s| (s + 50) / 100),
            };
            (gps, 0)
        }
        ReadingBody::Event(DeviceEvent::BatteryLow | DeviceEvent::BatteryDead) => {
            let pct = match reading.body {
                ReadingBody::Event(DeviceEvent::BatteryDead) => 0,
                _ => reading.battery_pct.unwrap_or(mapping.low_battery_pct),
            };
            io.retain(|e| e.id != io_id::BATTERY_LEVEL_PCT);
            io.push(IoElement {
                id: io_id::BATTERY_LEVEL_PCT,
                value: IoValue::U8(pct.min(mapping.low_battery_pct)),
            });
            (GpsElement::default(), io_id::BATTERY_LEVEL_PCT)
        }
        ReadingBody::Event(DeviceEvent::Charging) => {
            io.push(IoElement {
                id: io_id::EXTERNAL_VOLTAGE_MV,
                value: IoValue::U16(5_000),
            });
            (GpsElement::default(), io_id::EXTERNAL_VOLTAGE_MV)
        }
        _ => return None,
    };
    // Values travel grouped by width: keep the order a device's encoder would.
    io.sort_by_key(|e| match e.value {
        IoValue::U8(_) => 0,
        IoValue::U16(_) => 1,
        IoValue::U32(_) => 2,
        IoValue::U64(_) => 3,
        IoValue::Bytes(_) => 4,
    });
    Some(AvlRecord {
        t_ms: reading.t_ms,
        priority: Priority::Low,
        gps,
        event_io_id,
        io,
    })
}

/// `reading` as the server will store it after it travelled as a Teltonika record (precision
/// from the HDOP, whole km/h and degrees), or `None` if a tracker cannot send it.
/// `--device-profile teltonika` streams these over the native protocol: the same information
/// by another protocol, which is what makes the two protocols' alerts comparable.
pub fn as_reported(reading: &Reading, mapping: &MappingConfig) -> Option<Reading> {
    let record = record_of(reading, mapping)?;
    readings_of(&record, mapping).into_iter().next()
}

/// Writes `devices.json`: every tag's IMEI binding.
pub fn write_devices(dir: &Path, tags: &[&str]) -> std::io::Result<()> {
    let bindings: Vec<_> = tags
        .iter()
        .map(|tag| {
            serde_json::json!({"protocol": "teltonika", "device": imei_of_tag(tag), "tag": tag})
        })
        .collect();
    let text = serde_json::to_vec_pretty(&bindings).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("devices.json"), [text, b"\n".to_vec()].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagstream::model::Position;

    fn fix(precision_cm: u32) -> Reading {
        Reading {
            t_ms: 1_772_409_600_000,
            battery_pct: Some(71),
            body: ReadingBody::Position(Position {
                lat_e7: 514_545_123,
                lon_e7: -25_876_543,
                precision_cm,
                source: PositionSource::Gps,
                speed_ckmh: Some(512),
                heading_cdeg: Some(35_990),
                satellites: Some(9),
            }),
        }
    }

    #[test]
    fn imeis_are_fifteen_digits_stable_and_distinct() {
        let a = imei_of_tag("TAG00001");
        assert_eq!(a.len(), 15);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, imei_of_tag("TAG00001"));
        let all: std::collections::HashSet<_> =
            (0..10_000).map(|i| imei_of_tag(&format!("T{i}"))).collect();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn a_fix_arrives_with_its_place_and_precision_to_half_a_metre() {
        let mapping = MappingConfig::default();
        for precision_cm in [300, 420, 1_275, 3_000, 14_900] {
            let reported = as_reported(&fix(precision_cm), &mapping).unwrap();
            let (ReadingBody::Position(sent), ReadingBody::Position(got)) =
                (fix(precision_cm).body, reported.body)
            else {
                panic!("not a position");
            };
            assert_eq!((got.lat_e7, got.lon_e7), (sent.lat_e7, sent.lon_e7));
            assert!(
                got.precision_cm.abs_diff(precision_cm) <= 25,
                "{precision_cm} → {}",
                got.precision_cm
            );
            assert_eq!(got.speed_ckmh, Some(500));
            assert_eq!(got.heading_cdeg, Some(0), "359.9° rounds to north");
            assert_eq!(reported.battery_pct, Some(71));
            assert_eq!(reported.t_ms, 1_772_409_600_000);
        }
    }

    #[test]
    fn battery_events_travel_and_sensors_a_tracker_lacks_do_not() {
        let mapping = MappingConfig::default();
        let event = |e| Reading {
            t_ms: 1_772_409_600_000,
            battery_pct: Some(15),
            body: ReadingBody::Event(e),
        };
        for e in [
            DeviceEvent::BatteryLow,
            DeviceEvent::BatteryDead,
            DeviceEvent::Charging,
        ] {
            let got = as_reported(&event(e), &mapping).unwrap();
            assert_eq!(got.body, ReadingBody::Event(e));
        }
        assert!(as_reported(&event(DeviceEvent::StrapOpen), &mapping).is_none());
        let rf = Reading {
            body: ReadingBody::Rf { in_range: true },
            ..event(DeviceEvent::Charging)
        };
        assert!(as_reported(&rf, &mapping).is_none());
    }
}
