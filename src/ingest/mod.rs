//! Ingest: the TCP listener tags connect to (plain or TLS, `transport`) and one task per
//! connection (tags authenticate with their per-tag secret, `wire::secret`, at the credential
//! generation `credentials` holds, and optionally a client certificate), bounded by the
//! connection limits in `limits`; `accept` holds the accept loop that survives accept errors
//! (also used for HTTP).
//! A batch is acknowledged only after the durable log has it.

pub mod accept;
pub mod connection;
pub mod credentials;
pub mod limits;
pub mod listener;
pub mod osmand;
pub mod teltonika;
pub mod transport;

pub use accept::{AcceptStats, HttpConnectionGauge, HttpListener};
pub use connection::{serve_connection, verify_hello, HelloRefusal, VerifiedHello};
pub use credentials::{CredentialRefusal, TagCredentials};
pub use limits::{ConnectionSlot, ConnectionSlots, EffectiveLimits, HttpConfig, IngestConfig};
pub use listener::{run_listener, IngestContext};
pub use transport::{IngestTransport, PeerIdentity, TagStream};
