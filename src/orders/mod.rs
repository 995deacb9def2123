//! The state of people, activations and orders that the log's control records build, and the
//! import that turns an orders document into the control records for what differs.
//!
//! Owns: [`OrderBook`] (apply a control record, deterministically accepting or rejecting it) and
//! [`import::changes_for`]. Imports `model` and the orders file's record checks (`formats`);
//! never the pipeline, stores or API, which all build their views from it (the pipeline's
//! dispatcher owns one book; `topology::control_view` another).

pub mod book;
pub mod import;

pub use book::{Applied, OrderBook, OrderVersion};
