//! The alert service: what becomes of the pipeline's alerts and sober days once they leave it.
//! It owns their numbering and publishing (the live alert book, [`LiveAlerts`]: one event
//! number per change, published to SSE subscribers), the in-memory books that tell a changed
//! alert or sober day from an unchanged one ([`AlertBook`], [`SoberDayBook`]), the writer that
//! stores published changes behind the book ([`alert_writer`]), and the durable alert store
//! (alerts, reviews, events, number reservations, delivery cursors: [`alert_store`]).
//! Webhooks (`delivery`) and the API read from here; the pipeline never does.

pub mod alert_book;
pub mod alert_store;
pub mod alert_writer;
pub mod live_alerts;
pub mod sober_day_book;

pub use alert_book::AlertBook;
pub use live_alerts::LiveAlerts;
pub use sober_day_book::SoberDayBook;
