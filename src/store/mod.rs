//! Output stores: what the pipeline produced, held for the API and exports.

pub mod alert_book;
pub mod alert_store;
pub mod alert_writer;
pub mod crime_store;
pub mod live_alerts;
pub mod metadata;
pub mod purge_target;
pub mod sober_day_book;
pub mod sqlite_schema;
pub mod tac_book;
pub mod trails;

pub use alert_book::AlertBook;
pub use live_alerts::LiveAlerts;
pub use purge_target::{PurgeTarget, TargetError};
pub use sober_day_book::SoberDayBook;
