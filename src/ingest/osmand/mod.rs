//! The OsmAnd listener: the Traccar Client app (staff phones, trials) sends reports over HTTP on
//! their own port (`devices::osmand` decodes them). A report is accepted only from a device
//! bound to a tag (`credentials`): over HTTPS with the device's token, or by id alone where the
//! configuration declares a private network. Its readings are appended to the log as one batch
//! of the tag and the request answered 200 only once durable, like a native batch.

pub mod config;
pub mod report;

pub use config::OsmandConfig;
pub use report::{serve_osmand, OsmandContext, OsmandCounters};
