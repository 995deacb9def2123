//! Readings: what a tag measured and when.
//!
//! Values are held in fixed point (1e-7 degree, centimetre, micro-g/dL, microvolt, milli-degree) so
//! that a reading decoded from the wire, parsed from JSON Lines or read back from the log is the same
//! value to the bit: the rules see identical inputs whichever way a reading arrived, which is what
//! makes live processing and `tagstream replay` agree byte for byte.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. Event time unless a name says otherwise.
pub type TimeMs = i64;

/// Where a position fix came from; GPS is strong evidence, network fixes much weaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PositionSource {
    Gps,
    Lbs,
    Wifi,
}

impl PositionSource {
    pub const ALL: [PositionSource; 3] = [Self::Gps, Self::Lbs, Self::Wifi];

    /// The source as one small number, the same in every binary form (the wire record, the
    /// trail store's blocks, the amendment tapes).
    #[inline]
    pub fn code(self) -> u8 {
        match self {
            Self::Gps => 0,
            Self::Lbs => 1,
            Self::Wifi => 2,
        }
    }

    /// The source [`Self::code`] gives, if `code` is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gps => "gps",
            Self::Lbs => "lbs",
            Self::Wifi => "wifi",
        }
    }
}

/// A device event reported by an ankle tag or its home monitoring unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEvent {
    StrapOpen,
    StrapClosed,
    BatteryLow,
    BatteryDead,
    Charging,
    HmuPowerLoss,
    HmuPowerRestored,
    HmuMoved,
    DeviceFault,
    Fitted,
    Removed,
}

impl DeviceEvent {
    pub const ALL: [DeviceEvent; 11] = [
        Self::StrapOpen,
        Self::StrapClosed,
        Self::BatteryLow,
        Self::BatteryDead,
        Self::Charging,
        Self::HmuPowerLoss,
        Self::HmuPowerRestored,
        Self::HmuMoved,
        Self::DeviceFault,
        Self::Fitted,
        Self::Removed,
    ];

    /// The contract name (section 8 of the domain page).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StrapOpen => "strap_open",
            Self::StrapClosed => "strap_closed",
            Self::BatteryLow => "battery_low",
            Self::BatteryDead => "battery_dead",
            Self::Charging => "charging",
            Self::HmuPowerLoss => "hmu_power_loss",
            Self::HmuPowerRestored => "hmu_power_restored",
            Self::HmuMoved => "hmu_moved",
            Self::DeviceFault => "device_fault",
            Self::Fitted => "fitted",
            Self::Removed => "removed",
        }
    }

    /// Wire code, 1-based in the order of [`DeviceEvent::ALL`].
    pub fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|e| *e == self)
            .map_or(0, |i| i as u8 + 1)
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}

/// A location fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub lat_e7: i32,
    pub lon_e7: i32,
    /// Radius of the ~95% confidence circle.
    pub precision_cm: u32,
    pub source: PositionSource,
    /// Hundredths of a km/h.
    pub speed_ckmh: Option<u16>,
    /// Hundredths of a degree, 0..36000.
    pub heading_cdeg: Option<u16>,
    pub satellites: Option<u8>,
}

impl Position {
    pub fn lat(&self) -> f64 {
        self.lat_e7 as f64 / 1e7
    }
    pub fn lon(&self) -> f64 {
        self.lon_e7 as f64 / 1e7
    }
    pub fn precision_m(&self) -> f64 {
        self.precision_cm as f64 / 100.0
    }
    pub fn speed_kmh(&self) -> Option<f64> {
        self.speed_ckmh.map(|v| v as f64 / 100.0)
    }
    pub fn heading_deg(&self) -> Option<f64> {
        self.heading_cdeg.map(|v| v as f64 / 100.0)
    }
}

/// A transdermal alcohol reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TacSample {
    /// Transdermal alcohol concentration in millionths of a g/dL.
    pub tac_ugdl: i32,
    /// Infrared (skin contact) voltage in microvolts.
    pub ir_uv: i32,
    /// Skin temperature in thousandths of a degree Celsius.
    pub temp_mc: i32,
}

impl TacSample {
    pub fn tac_gdl(&self) -> f64 {
        self.tac_ugdl as f64 / 1e6
    }
    pub fn ir_v(&self) -> f64 {
        self.ir_uv as f64 / 1e6
    }
    pub fn temp_c(&self) -> f64 {
        self.temp_mc as f64 / 1e3
    }
}

/// What was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadingBody {
    Position(Position),
    Tac(TacSample),
    /// Home monitoring unit presence: is the tag in RF range of the HMU.
    Rf {
        in_range: bool,
    },
    Event(DeviceEvent),
}

/// The kinds of reading, for counting and filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadingKind {
    Gps,
    Tac,
    Rf,
    Event,
}

impl ReadingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gps => "gps",
            Self::Tac => "tac",
            Self::Rf => "rf",
            Self::Event => "event",
        }
    }
}

/// One reading from one tag. The tag is carried by the batch (wire, log) or the line (JSON Lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reading {
    /// Event time: when the tag measured it.
    pub t_ms: TimeMs,
    /// Battery charge when measured, if the tag reported it.
    pub battery_pct: Option<u8>,
    pub body: ReadingBody,
}

impl Reading {
    pub fn kind(&self) -> ReadingKind {
        match self.body {
            ReadingBody::Position(_) => ReadingKind::Gps,
            ReadingBody::Tac(_) => ReadingKind::Tac,
            ReadingBody::Rf { .. } => ReadingKind::Rf,
            ReadingBody::Event(_) => ReadingKind::Event,
        }
    }
}

/// Identifies a physical tag (device). Devices are reused; compliance is keyed on activations.
pub type TagId = String;

/// Rounds a float to fixed point, refusing values that do not fit.
pub fn to_fixed(value: f64, scale: f64, min: f64, max: f64) -> Option<i64> {
    if !value.is_finite() || value < min || value > max {
        return None;
    }
    Some((value * scale).round() as i64)
}
