//! OsmAnd over HTTP: what the Traccar Client phone app (and OsmAnd's own live tracking) sends,
//! either as query parameters (GET, or POST with the query string or a form body) or as a JSON
//! body. A pure library: the listener, HTTPS and the per-device token are `ingest::osmand`.
//! `docs/devices.md` describes what is decoded and how it is mapped.

pub mod device_id;
pub mod encode;
pub mod error;
pub mod fields;
pub mod json;
pub mod limits;
pub mod mapping;
pub mod query;
pub mod report;
pub mod request;
pub mod time;
pub mod urlencoded;

pub use encode::encode_query;
pub use error::{OsmandEncodeError, OsmandError};
pub use limits::Limits;
pub use mapping::MappingConfig;
pub use report::Report;
pub use request::{decode_request, OsmandMessage};

#[cfg(test)]
mod hostile_requests;
#[cfg(test)]
mod public_vectors;
