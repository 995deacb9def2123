//! Ingest: the TCP listener tags connect to and one task per connection (tags authenticate
//! with their per-tag secret, `wire::secret`).
//! A batch is acknowledged only after the durable log has it.

pub mod connection;
pub mod listener;

pub use listener::{run_listener, IngestContext};
