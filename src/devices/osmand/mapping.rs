//! A [`Report`] → the project's readings.
//!
//! - The location becomes a GPS position (neither form says which provider made the fix; the
//!   Traccar Client asks for GPS), unless the app says it is not to be trusted (`valid=false`,
//!   `mock`, a negative accuracy) or it is 0,0 (what apps send before their first fix).
//! - Precision: the app's accuracy (a 68% radius) scaled to the model's 95% radius, or HDOP × 5 m
//!   as for Teltonika, or a default; see [`MappingConfig`] and docs/devices.md.
//! - The battery level goes on every reading; `charge=true` / `is_charging` → a `Charging` event.

use super::report::Report;
use crate::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};

/// The numbers of the mapping. docs/devices.md says why each default is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingConfig {
    /// The 95% radius per metre of a 68% radius, in thousandths: 1,621. For a circular normal
    /// error the radius holding p of the fixes is σ·√(−2 ln(1 − p)): 1.5096 σ at 68% and
    /// 2.4477 σ at 95%, a ratio of 1.621.
    pub precision_per_accuracy_permille: u32,
    /// The 95% horizontal error per unit of HDOP, without an accuracy: 5 m (as for Teltonika).
    pub range_error_cm_per_hdop: u32,
    /// No fix is reported better than this: 3 m.
    pub min_precision_cm: u32,
    /// Nor worse than this: 500 m.
    pub max_precision_cm: u32,
    /// The precision of a fix sent with neither accuracy nor HDOP: 100 m (a phone's fix may come
    /// from Wi-Fi or cells without saying so).
    pub default_precision_cm: u32,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            precision_per_accuracy_permille: 1_621,
            range_error_cm_per_hdop: 500,
            min_precision_cm: 300,
            max_precision_cm: 50_000,
            default_precision_cm: 10_000,
        }
    }
}

/// The readings a report gives: its position if it has a trusted fix, then its charging event,
/// all at the report's time with its battery level. A report with neither gives none.
pub fn readings_of(report: &Report, config: &MappingConfig) -> Vec<Reading> {
    let reading = |body| Reading {
        t_ms: report.t_ms,
        battery_pct: report.battery_pct,
        body,
    };
    position_of(report, config)
        .map(ReadingBody::Position)
        .into_iter()
        .chain(
            report
                .charging
                .then_some(ReadingBody::Event(DeviceEvent::Charging)),
        )
        .map(reading)
        .collect()
}

/// The report's GPS position, if it has a fix the app vouches for.
pub fn position_of(report: &Report, config: &MappingConfig) -> Option<Position> {
    let (lat_e7, lon_e7) = report.lat_lon_e7?;
    let app_says_invalid =
        report.marked_invalid || report.mock || report.accuracy_m.is_some_and(|m| m < 0.0);
    if app_says_invalid || (lat_e7 == 0 && lon_e7 == 0) {
        return None;
    }
    Some(Position {
        lat_e7,
        lon_e7,
        precision_cm: precision_cm_of(report, config),
        source: PositionSource::Gps,
        speed_ckmh: report.speed_ckmh,
        heading_cdeg: report.heading_cdeg,
        satellites: None,
    })
}

/// The 95% radius of the report's fix: from its accuracy, else its HDOP, else the default;
/// clamped to the floor and the cap.
pub fn precision_cm_of(report: &Report, config: &MappingConfig) -> u32 {
    // Accuracy and HDOP of 0 are what apps send when they do not know.
    let from_accuracy = report
        .accuracy_m
        .filter(|m| *m > 0.0)
        .map(|m| m * 100.0 * f64::from(config.precision_per_accuracy_permille) / 1000.0);
    let from_hdop = || {
        report
            .hdop
            .filter(|hdop| *hdop > 0.0)
            .map(|hdop| hdop * f64::from(config.range_error_cm_per_hdop))
    };
    match from_accuracy.or_else(from_hdop) {
        // f64 → u32 saturates; the clamp then brings it within floor and cap.
        Some(cm) => (cm.round() as u32).clamp(config.min_precision_cm, config.max_precision_cm),
        None => config.default_precision_cm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            lat_lon_e7: Some((515_074_000, -1_278_000)),
            ..Report::at(1_700_000_000_000)
        }
    }

    fn precision(accuracy_m: Option<f64>, hdop: Option<f64>) -> u32 {
        let r = Report {
            accuracy_m,
            hdop,
            ..report()
        };
        precision_cm_of(&r, &MappingConfig::default())
    }

    #[test]
    fn precision_is_accuracy_times_1_621_else_hdop_times_5_m_else_100_m() {
        assert_eq!(precision(Some(5.0), None), 811, "5 m at 68% → 8.1 m at 95%");
        assert_eq!(
            precision(Some(3.8), Some(9.0)),
            616,
            "accuracy wins over HDOP"
        );
        assert_eq!(precision(Some(1.0), None), 300, "floor 3 m");
        assert_eq!(precision(Some(2_000.0), None), 50_000, "cap 500 m");
        assert_eq!(precision(Some(1e300), None), 50_000);
        assert_eq!(precision(None, Some(6.0)), 3_000, "HDOP 6");
        assert_eq!(
            precision(Some(0.0), Some(2.0)),
            1_000,
            "accuracy 0: unknown"
        );
        assert_eq!(precision(None, Some(0.0)), 10_000, "HDOP 0: default");
        assert_eq!(precision(None, None), 10_000);
    }

    #[test]
    fn untrusted_fixes_give_no_position() {
        let config = MappingConfig::default();
        let cases = [
            Report {
                marked_invalid: true,
                ..report()
            },
            Report {
                mock: true,
                ..report()
            },
            Report {
                accuracy_m: Some(-1.0),
                ..report()
            },
            Report {
                lat_lon_e7: Some((0, 0)),
                ..report()
            },
            Report {
                lat_lon_e7: None,
                ..report()
            },
        ];
        for r in cases {
            assert_eq!(position_of(&r, &config), None, "{r:?}");
            assert_eq!(readings_of(&r, &config), vec![]);
        }
    }

    #[test]
    fn charging_is_an_event_and_battery_goes_on_every_reading() {
        let r = Report {
            charging: true,
            battery_pct: Some(64),
            ..report()
        };
        let readings = readings_of(&r, &MappingConfig::default());
        assert_eq!(readings.len(), 2);
        assert!(matches!(readings[0].body, ReadingBody::Position(_)));
        assert_eq!(readings[1].body, ReadingBody::Event(DeviceEvent::Charging));
        assert!(readings
            .iter()
            .all(|r| r.battery_pct == Some(64) && r.t_ms == 1_700_000_000_000));
        let no_fix = Report {
            lat_lon_e7: None,
            ..r
        };
        assert_eq!(
            readings_of(&no_fix, &MappingConfig::default())
                .iter()
                .map(|r| r.body)
                .collect::<Vec<_>>(),
            [ReadingBody::Event(DeviceEvent::Charging)]
        );
    }
}
