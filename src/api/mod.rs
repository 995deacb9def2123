//! The HTTP API: health, readiness, Prometheus metrics, the OpenAPI description, and the
//! authenticated `/v1` routes. `auth` decides who may see what; `audit` records every read of a
//! person's data with its purpose.

pub mod admin;
pub mod alcohol;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod breach_report;
pub mod crimes;
pub mod decision;
pub mod devices;
pub mod documents;
pub mod download;
pub mod error;
pub mod hits;
pub mod limits;
pub mod people;
pub mod retention;
pub mod routes;
pub mod sober_day_report;
pub mod trails;

pub use routes::{router, ApiState};
