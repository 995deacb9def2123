//! The HTTP API: health, readiness, Prometheus metrics, and authenticated JSON routes.
//! Every `/v1` route requires a bearer token.

pub mod auth;
pub mod routes;

pub use routes::{router, ApiState};
