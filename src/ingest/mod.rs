//! Ingest: the TCP listener tags connect to and one task per connection (tags authenticate
//! with their per-tag secret, `wire::secret`), bounded by the connection limits in `limits`;
//! `accept` holds the accept loop that survives accept errors (also used for HTTP).
//! A batch is acknowledged only after the durable log has it.

pub mod accept;
pub mod connection;
pub mod limits;
pub mod listener;

pub use accept::{AcceptStats, HttpConnectionGauge, HttpListener};
pub use connection::{serve_connection, verify_hello, HelloRefusal, VerifiedHello};
pub use limits::{ConnectionSlot, ConnectionSlots, EffectiveLimits, HttpConfig, IngestConfig};
pub use listener::{run_listener, IngestContext};
