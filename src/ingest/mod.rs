//! Ingest: the TCP listener tags connect to, one task per connection, and tag authentication.
//! A batch is acknowledged only after the durable log has it.

pub mod connection;
pub mod listener;
pub mod tag_auth;

pub use listener::{run_listener, IngestContext};
