//! Output stores: what the pipeline produced, held for the API and exports.

pub mod alert_book;

pub use alert_book::AlertBook;
