//! Third-party devices bound to tags: a device (a Teltonika tracker's IMEI, an OsmAnd client's
//! device id) is only ever accepted through a binding to a tag, made through the API and held in
//! the log like the tags' own credentials. Its readings are then the tag's readings.

use serde::{Deserialize, Serialize};

/// The protocols a bound device may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceProtocol {
    /// Teltonika Codec 8 / 8 Extended over TCP, identified by IMEI.
    Teltonika,
    /// OsmAnd over HTTP (the Traccar Client app), identified by its device id.
    Osmand,
}

impl DeviceProtocol {
    pub const ALL: [DeviceProtocol; 2] = [DeviceProtocol::Teltonika, DeviceProtocol::Osmand];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceProtocol::Teltonika => "teltonika",
            DeviceProtocol::Osmand => "osmand",
        }
    }

    /// Parses a protocol name as the API and the JSON spell it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Checks a device id for this protocol: an IMEI is exactly 15 ASCII digits; an OsmAnd id is
    /// 1–64 ASCII letters, digits, `.`, `_`, `:` and `-` (what `devices::osmand` accepts: no
    /// character a log line or URL would need escaping for).
    pub fn check_device_id(self, device: &str) -> Result<(), String> {
        match self {
            DeviceProtocol::Teltonika => {
                if device.len() == 15 && device.bytes().all(|b| b.is_ascii_digit()) {
                    Ok(())
                } else {
                    Err(format!(
                        "a Teltonika device id is its IMEI, exactly 15 digits; got '{}'",
                        device.escape_debug()
                    ))
                }
            }
            DeviceProtocol::Osmand => {
                let allowed =
                    |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
                if (1..=64).contains(&device.len()) && device.chars().all(allowed) {
                    Ok(())
                } else {
                    Err(format!(
                        "an OsmAnd device id is 1–64 letters, digits, '.', '_', ':' or '-'; got '{}'",
                        device.escape_debug()
                    ))
                }
            }
        }
    }
}

impl std::fmt::Display for DeviceProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device bound to a tag: its readings are the tag's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBinding {
    pub protocol: DeviceProtocol,
    /// The IMEI (Teltonika) or device id (OsmAnd) the device names itself by.
    pub device: String,
    pub tag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_checked_per_protocol() {
        let t = DeviceProtocol::Teltonika;
        assert!(t.check_device_id("356307042441013").is_ok());
        assert!(t.check_device_id("35630704244101").is_err());
        assert!(t.check_device_id("35630704244101a").is_err());
        let o = DeviceProtocol::Osmand;
        assert!(o.check_device_id("staff-phone_1.a").is_ok());
        assert!(o.check_device_id("").is_err());
        assert!(o.check_device_id("a b").is_err());
        assert!(o.check_device_id(&"x".repeat(65)).is_err());
        assert_eq!(DeviceProtocol::parse("osmand"), Some(o));
        assert_eq!(DeviceProtocol::parse("OsmAnd"), None);
    }
}
