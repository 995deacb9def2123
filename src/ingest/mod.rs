//! Ingest: the TCP listener tags connect to (plain or TLS, `transport`) and one task per
//! connection (tags authenticate with their per-tag secret, `wire::secret`, at the credential
//! generation `credentials` holds, and optionally a client certificate).
//! A batch is acknowledged only after the durable log has it.

pub mod connection;
pub mod credentials;
pub mod listener;
pub mod transport;

pub use credentials::{CredentialRefusal, TagCredentials};
pub use listener::{run_listener, IngestContext};
pub use transport::{IngestTransport, PeerIdentity, TagStream};
