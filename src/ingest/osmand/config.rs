//! `[osmand]`: where OsmAnd clients (the Traccar Client app) send their reports, and how they
//! prove who they are.

use crate::devices::osmand::Limits;
use crate::tls::HttpTlsConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The OsmAnd listener. Off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsmandConfig {
    /// Where clients send reports (the Traccar Client's default port is 5055); absent: off.
    pub listen: Option<SocketAddr>,
    /// HTTPS: each client then proves its device id with its per-device token.
    pub tls: Option<HttpTlsConfig>,
    /// Plain HTTP, by device id alone: only on a private network (docs/devices.md, the risk).
    pub private_network: bool,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for OsmandConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls: None,
            private_network: false,
            max_body_bytes: Limits::default().max_body_bytes,
        }
    }
}

impl OsmandConfig {
    /// Refuses a listener that would take device ids on trust without saying so.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_none() {
            return Ok(());
        }
        match (&self.tls, self.private_network) {
            (Some(_), true) => Err(
                "[osmand] sets both tls and private_network: choose HTTPS with device tokens, or plain HTTP on a private network"
                    .into(),
            ),
            (None, false) => Err(
                "[osmand] listen needs [osmand.tls] (HTTPS, each device with its token), or private_network = true on a network no stranger can reach (see docs/devices.md)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The decoder's limits with this body size.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            ..Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_needs_https_or_a_declared_private_network() {
        let mut c = OsmandConfig::default();
        assert!(c.validate().is_ok(), "off");
        c.listen = Some("127.0.0.1:5055".parse().unwrap());
        assert!(c.validate().unwrap_err().contains("private_network"));
        c.private_network = true;
        assert!(c.validate().is_ok());
        c.tls = Some(HttpTlsConfig {
            cert_file: "cert.pem".into(),
            key_file: "key.pem".into(),
            handshake_timeout_ms: 1000,
        });
        assert!(c.validate().unwrap_err().contains("both"));
        c.private_network = false;
        assert!(c.validate().is_ok());
    }
}
