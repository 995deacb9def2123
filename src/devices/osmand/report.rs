//! What one location report says, whichever form carried it: the query and JSON forms both
//! decode into a [`Report`] (values checked and in the model's units), and `mapping.rs` makes
//! readings of it, so both forms are mapped by the same rules.

use crate::model::TimeMs;

/// One report, checked. Fields a request did not send are `None` (or the default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    pub t_ms: TimeMs,
    /// Latitude and longitude in degrees × 1e7, on the globe.
    pub lat_lon_e7: Option<(i32, i32)>,
    pub speed_ckmh: Option<u16>,
    pub heading_cdeg: Option<u16>,
    /// The app's horizontal accuracy in metres as sent (finite): a 68% radius; negative means
    /// the app itself says the fix is invalid (as iOS does), 0 means not known.
    pub accuracy_m: Option<f64>,
    /// Horizontal dilution of precision, as sent (finite); 0 or less means not known.
    pub hdop: Option<f64>,
    pub battery_pct: Option<u8>,
    /// The app says the phone is on its charger.
    pub charging: bool,
    /// `valid=false` was sent.
    pub marked_invalid: bool,
    /// The app says the location is mocked (a fake-location app or a simulator).
    pub mock: bool,
}

impl Report {
    /// A report at `t_ms` that says nothing else yet.
    pub fn at(t_ms: TimeMs) -> Self {
        Self {
            t_ms,
            lat_lon_e7: None,
            speed_ckmh: None,
            heading_cdeg: None,
            accuracy_m: None,
            hdop: None,
            battery_pct: None,
            charging: false,
            marked_invalid: false,
            mock: false,
        }
    }
}
