//! Output stores: what the pipeline produced, held for the API and exports.

pub mod alert_book;
pub mod alert_store;
pub mod live_alerts;
pub mod metadata;

pub use alert_book::AlertBook;
pub use live_alerts::LiveAlerts;
