//! `[teltonika]`: where Teltonika trackers connect and how they prove who they are.

use crate::devices::teltonika::DEFAULT_MAX_DATA_BYTES;
use crate::tls::IngestTlsConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The Teltonika listener. Off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeltonikaConfig {
    /// Where trackers connect (Teltonika's usual port is 5027); absent: no listener.
    pub listen: Option<SocketAddr>,
    /// Mutual TLS: each tracker presents a client certificate from `client_ca_file` naming its
    /// IMEI (CN or DNS SAN), and `require_client_cert` must be true.
    pub tls: Option<IngestTlsConfig>,
    /// Accept trackers over plain TCP by IMEI alone. An IMEI travels in clear and proves
    /// nothing: only for a private network (a private APN with no route from the internet),
    /// where whoever can reach the port is already trusted. docs/devices.md states the risk.
    pub private_network: bool,
    /// The largest AVL packet data accepted, in bytes.
    pub max_data_bytes: usize,
}

impl Default for TeltonikaConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls: None,
            private_network: false,
            max_data_bytes: DEFAULT_MAX_DATA_BYTES,
        }
    }
}

impl TeltonikaConfig {
    /// Refuses a listener that would take IMEIs on trust without saying so.
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_none() {
            return Ok(());
        }
        if self.max_data_bytes < 64 {
            return Err(format!(
                "[teltonika] max_data_bytes = {} is too small for one AVL record",
                self.max_data_bytes
            ));
        }
        match (&self.tls, self.private_network) {
            (Some(_), true) => Err(
                "[teltonika] sets both tls and private_network: choose mutual TLS, or plain TCP on a private network"
                    .into(),
            ),
            (None, false) => Err(
                "[teltonika] listen needs [teltonika.tls] with client_ca_file and require_client_cert = true (an IMEI is not a credential), or private_network = true on a network no stranger can reach (see docs/devices.md)"
                    .into(),
            ),
            (Some(tls), false) if tls.client_ca_file.is_none() || !tls.require_client_cert => Err(
                "[teltonika.tls] needs client_ca_file and require_client_cert = true: each tracker proves its IMEI with a client certificate"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_needs_mutual_tls_or_a_declared_private_network() {
        let mut c = TeltonikaConfig::default();
        assert!(c.validate().is_ok(), "off");
        c.listen = Some("127.0.0.1:5027".parse().unwrap());
        assert!(c.validate().unwrap_err().contains("private_network"));
        c.private_network = true;
        assert!(c.validate().is_ok());
        let tls = IngestTlsConfig {
            cert_file: "cert.pem".into(),
            key_file: "key.pem".into(),
            client_ca_file: None,
            require_client_cert: false,
            handshake_timeout_ms: 1000,
        };
        c.tls = Some(tls.clone());
        assert!(c.validate().unwrap_err().contains("both"));
        c.private_network = false;
        assert!(c.validate().unwrap_err().contains("client_ca_file"));
        c.tls = Some(IngestTlsConfig {
            client_ca_file: Some("ca.pem".into()),
            require_client_cert: true,
            ..tls
        });
        assert!(c.validate().is_ok());
    }
}
