//! A Teltonika record → the project's readings.
//!
//! - The GNSS element becomes a GPS position (satellites, speed, heading) when it holds a fix:
//!   not with 0 satellites, not at 0,0 (what devices send before their first fix), not outside
//!   the globe, and not when the GNSS status element (69) says there is no fix.
//! - Codec 8 carries no precision. It is taken from the HDOP element (182, HDOP × 10) as
//!   `HDOP × range_error_cm_per_hdop`, clamped to a floor and a cap, or a default when the
//!   device sends no HDOP (see [`MappingConfig`] and docs/devices.md for the numbers and why).
//! - Battery level (113) becomes every reading's `battery_pct`.
//! - Device events come only from records the device made *because* an element changed
//!   (`event_io_id`), as Teltonika marks them: external voltage (66) rising to a charger's →
//!   `Charging`; battery level (113) falling to the low threshold → `BatteryLow`, to 0 →
//!   `BatteryDead`. Movement (240), ignition (239), GSM signal (21), battery voltage (67) and
//!   power removed have no fitting event kind in the model: they stay in the record, listed by
//!   [`unmapped_io`].

use super::avl::{AvlRecord, IoElement};
use crate::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};

/// IO element ids of the FMB series whose meaning is standard.
pub mod io_id {
    pub const GSM_SIGNAL: u16 = 21;
    pub const EXTERNAL_VOLTAGE_MV: u16 = 66;
    pub const BATTERY_VOLTAGE_MV: u16 = 67;
    /// 0 off, 1 on with fix, 2 on without fix, 3 asleep.
    pub const GNSS_STATUS: u16 = 69;
    pub const BATTERY_LEVEL_PCT: u16 = 113;
    /// PDOP × 10.
    pub const PDOP: u16 = 181;
    /// HDOP × 10.
    pub const HDOP: u16 = 182;
    pub const IGNITION: u16 = 239;
    pub const MOVEMENT: u16 = 240;
}

/// The GNSS status value that means "on, with a fix".
const GNSS_STATUS_FIX: u64 = 1;

/// The ids this mapping reads; every other element is reported by [`unmapped_io`].
const MAPPED_IDS: [u16; 4] = [
    io_id::EXTERNAL_VOLTAGE_MV,
    io_id::GNSS_STATUS,
    io_id::BATTERY_LEVEL_PCT,
    io_id::HDOP,
];

/// The numbers of the mapping. docs/devices.md says why each default is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingConfig {
    /// The 95% horizontal error per unit of HDOP (a receiver's user-equivalent range error
    /// scaled to a 95% radius): 5 m.
    pub range_error_cm_per_hdop: u32,
    /// No fix is reported better than this: 3 m.
    pub min_precision_cm: u32,
    /// Nor worse than this: 500 m.
    pub max_precision_cm: u32,
    /// The precision of a fix sent without HDOP: 30 m.
    pub default_precision_cm: u32,
    /// External voltage from which the device counts as on its charger: 4.5 V (USB gives 5 V).
    pub charger_min_mv: u64,
    /// Battery level at or below which a battery-level record is `BatteryLow`: 20%.
    pub low_battery_pct: u8,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            range_error_cm_per_hdop: 500,
            min_precision_cm: 300,
            max_precision_cm: 50_000,
            default_precision_cm: 3_000,
            charger_min_mv: 4_500,
            low_battery_pct: 20,
        }
    }
}

/// The readings one record gives: its position if it has a fix, then its device events, all at
/// the record's time with its battery level. A record with neither gives none.
pub fn readings_of(record: &AvlRecord, config: &MappingConfig) -> Vec<Reading> {
    let battery_pct = battery_pct_of(record);
    let reading = |body| Reading {
        t_ms: record.t_ms,
        battery_pct,
        body,
    };
    position_of(record, config)
        .map(ReadingBody::Position)
        .into_iter()
        .chain(event_of(record, config).map(ReadingBody::Event))
        .map(reading)
        .collect()
}

/// The record's GPS position, if it holds a fix.
pub fn position_of(record: &AvlRecord, config: &MappingConfig) -> Option<Position> {
    let gps = &record.gps;
    let no_fix_status = record
        .io_value(io_id::GNSS_STATUS)
        .and_then(|v| v.as_u64())
        .is_some_and(|status| status != GNSS_STATUS_FIX);
    let at_origin = gps.latitude_e7 == 0 && gps.longitude_e7 == 0;
    let on_globe = gps.latitude_e7.unsigned_abs() <= 900_000_000
        && gps.longitude_e7.unsigned_abs() <= 1_800_000_000;
    if gps.satellites == 0 || no_fix_status || at_origin || !on_globe {
        return None;
    }
    Some(Position {
        lat_e7: gps.latitude_e7,
        lon_e7: gps.longitude_e7,
        precision_cm: precision_cm_of(record, config),
        source: PositionSource::Gps,
        speed_ckmh: gps.speed_kmh.checked_mul(100),
        heading_cdeg: (gps.angle_deg < 360).then(|| gps.angle_deg * 100),
        satellites: Some(gps.satellites),
    })
}

/// The 95% radius of the record's fix, from its HDOP element or the default.
pub fn precision_cm_of(record: &AvlRecord, config: &MappingConfig) -> u32 {
    let hdop_tenths = record
        .io_value(io_id::HDOP)
        .and_then(|v| v.as_u64())
        .filter(|tenths| *tenths > 0); // 0 is what devices send without a fix: no HDOP.
    match hdop_tenths {
        Some(tenths) => {
            let precision_cm =
                tenths.saturating_mul(u64::from(config.range_error_cm_per_hdop)) / 10;
            precision_cm.clamp(
                u64::from(config.min_precision_cm),
                u64::from(config.max_precision_cm),
            ) as u32
        }
        None => config.default_precision_cm,
    }
}

/// The battery level element, if sent and a percentage.
pub fn battery_pct_of(record: &AvlRecord) -> Option<u8> {
    record
        .io_value(io_id::BATTERY_LEVEL_PCT)
        .and_then(|v| v.as_u64())
        .filter(|pct| *pct <= 100)
        .map(|pct| pct as u8)
}

/// The device event of a record made because a standard element changed, where the model has
/// a fitting kind.
pub fn event_of(record: &AvlRecord, config: &MappingConfig) -> Option<DeviceEvent> {
    let value = record.io_value(record.event_io_id)?.as_u64()?;
    match record.event_io_id {
        io_id::EXTERNAL_VOLTAGE_MV if value >= config.charger_min_mv => Some(DeviceEvent::Charging),
        io_id::BATTERY_LEVEL_PCT if value == 0 => Some(DeviceEvent::BatteryDead),
        io_id::BATTERY_LEVEL_PCT if value <= u64::from(config.low_battery_pct) => {
            Some(DeviceEvent::BatteryLow)
        }
        _ => None,
    }
}

/// The record's IO elements this mapping does not read: kept as sent, for whoever needs them.
pub fn unmapped_io(record: &AvlRecord) -> impl Iterator<Item = &IoElement> {
    record.io.iter().filter(|e| !MAPPED_IDS.contains(&e.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::teltonika::avl::{GpsElement, IoValue, Priority};

    fn record_with(io: Vec<(u16, IoValue)>) -> AvlRecord {
        AvlRecord {
            t_ms: 1_700_000_000_000,
            priority: Priority::Low,
            gps: GpsElement {
                longitude_e7: -1_278_000,
                latitude_e7: 515_074_000,
                altitude_m: 20,
                angle_deg: 90,
                satellites: 9,
                speed_kmh: 4,
            },
            event_io_id: 0,
            io: io
                .into_iter()
                .map(|(id, value)| IoElement { id, value })
                .collect(),
        }
    }

    fn precision_for(hdop: Option<IoValue>) -> u32 {
        let io = hdop.map(|v| vec![(io_id::HDOP, v)]).unwrap_or_default();
        precision_cm_of(&record_with(io), &MappingConfig::default())
    }

    #[test]
    fn precision_is_hdop_times_five_metres_within_floor_and_cap() {
        assert_eq!(precision_for(Some(IoValue::U16(10))), 500, "HDOP 1.0");
        assert_eq!(precision_for(Some(IoValue::U16(23))), 1_150, "HDOP 2.3");
        assert_eq!(precision_for(Some(IoValue::U8(255))), 12_750, "HDOP 25.5");
        assert_eq!(
            precision_for(Some(IoValue::U16(5))),
            300,
            "HDOP 0.5: floor 3 m"
        );
        assert_eq!(
            precision_for(Some(IoValue::U16(9_999))),
            50_000,
            "cap 500 m"
        );
        assert_eq!(precision_for(Some(IoValue::U64(u64::MAX))), 50_000);
        assert_eq!(
            precision_for(Some(IoValue::U16(0))),
            3_000,
            "HDOP 0: default"
        );
        assert_eq!(precision_for(None), 3_000, "no HDOP: default 30 m");
    }

    #[test]
    fn a_fix_becomes_a_gps_position() {
        let position = position_of(&record_with(vec![]), &MappingConfig::default()).unwrap();
        assert_eq!(position.lat_e7, 515_074_000);
        assert_eq!(position.lon_e7, -1_278_000);
        assert_eq!(position.source, PositionSource::Gps);
        assert_eq!(position.speed_ckmh, Some(400));
        assert_eq!(position.heading_cdeg, Some(9_000));
        assert_eq!(position.satellites, Some(9));
    }

    #[test]
    fn no_fix_gives_no_position() {
        let config = MappingConfig::default();
        let mut no_satellites = record_with(vec![]);
        no_satellites.gps.satellites = 0;
        let mut at_origin = record_with(vec![]);
        at_origin.gps.latitude_e7 = 0;
        at_origin.gps.longitude_e7 = 0;
        let mut off_globe = record_with(vec![]);
        off_globe.gps.latitude_e7 = 900_000_001;
        let status_without_fix = record_with(vec![(io_id::GNSS_STATUS, IoValue::U8(2))]);
        for record in [no_satellites, at_origin, off_globe, status_without_fix] {
            assert_eq!(position_of(&record, &config), None, "{record:?}");
            assert_eq!(readings_of(&record, &config), vec![]);
        }
        let status_with_fix = record_with(vec![(io_id::GNSS_STATUS, IoValue::U8(1))]);
        assert!(position_of(&status_with_fix, &config).is_some());
    }

    #[test]
    fn speed_and_heading_out_of_range_are_left_out() {
        let mut record = record_with(vec![]);
        record.gps.speed_kmh = 656; // 65,600 hundredths do not fit a u16
        record.gps.angle_deg = 360;
        let position = position_of(&record, &MappingConfig::default()).unwrap();
        assert_eq!(position.speed_ckmh, None);
        assert_eq!(position.heading_cdeg, None);
    }

    #[test]
    fn battery_level_goes_on_every_reading() {
        let config = MappingConfig::default();
        let mut record = record_with(vec![(io_id::BATTERY_LEVEL_PCT, IoValue::U8(15))]);
        record.event_io_id = io_id::BATTERY_LEVEL_PCT;
        let readings = readings_of(&record, &config);
        assert_eq!(readings.len(), 2);
        assert!(readings.iter().all(|r| r.battery_pct == Some(15)));
        assert!(matches!(readings[0].body, ReadingBody::Position(_)));
        assert_eq!(
            readings[1].body,
            ReadingBody::Event(DeviceEvent::BatteryLow)
        );
        let over = record_with(vec![(io_id::BATTERY_LEVEL_PCT, IoValue::U8(101))]);
        assert_eq!(battery_pct_of(&over), None);
    }

    #[test]
    fn events_come_only_from_records_made_by_that_element() {
        let config = MappingConfig::default();
        let event = |id: u16, value: IoValue, trigger: bool| {
            let mut record = record_with(vec![(id, value)]);
            if trigger {
                record.event_io_id = id;
            }
            event_of(&record, &config)
        };
        let ext = io_id::EXTERNAL_VOLTAGE_MV;
        let level = io_id::BATTERY_LEVEL_PCT;
        assert_eq!(
            event(ext, IoValue::U16(5_000), true),
            Some(DeviceEvent::Charging)
        );
        assert_eq!(
            event(ext, IoValue::U16(5_000), false),
            None,
            "periodic record"
        );
        assert_eq!(
            event(ext, IoValue::U16(4_499), true),
            None,
            "power removed: no kind fits"
        );
        assert_eq!(
            event(level, IoValue::U8(20), true),
            Some(DeviceEvent::BatteryLow)
        );
        assert_eq!(event(level, IoValue::U8(21), true), None);
        assert_eq!(
            event(level, IoValue::U8(0), true),
            Some(DeviceEvent::BatteryDead)
        );
        assert_eq!(event(level, IoValue::U8(5), false), None);
        assert_eq!(event(io_id::MOVEMENT, IoValue::U8(1), true), None);
        assert_eq!(event(io_id::IGNITION, IoValue::U8(1), true), None);
    }

    #[test]
    fn unmapped_io_lists_what_the_mapping_does_not_read() {
        let record = record_with(vec![
            (io_id::MOVEMENT, IoValue::U8(1)),
            (io_id::HDOP, IoValue::U16(12)),
            (io_id::GSM_SIGNAL, IoValue::U8(4)),
            (io_id::BATTERY_VOLTAGE_MV, IoValue::U16(4_100)),
            (io_id::BATTERY_LEVEL_PCT, IoValue::U8(80)),
        ]);
        let ids: Vec<u16> = unmapped_io(&record).map(|e| e.id).collect();
        assert_eq!(
            ids,
            [
                io_id::MOVEMENT,
                io_id::GSM_SIGNAL,
                io_id::BATTERY_VOLTAGE_MV
            ]
        );
    }
}
