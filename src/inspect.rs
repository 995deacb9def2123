//! `tagstream inspect`: a JSON summary of what is durably stored in a data directory — the log
//! (segments, records, readings per kind, tags, damaged ranges and records lost) and the
//! people, activations and orders its control records leave. `main` exits non-zero when the log has damage.

use crate::log::{summarize, LogSummary};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct InspectSummary {
    pub data_dir: String,
    pub log: LogSummary,
    pub people: usize,
    pub activations: usize,
    pub orders: usize,
    /// The event-time clock at the end of the log and the readings it kept from the rules
    /// (`clock_ahead`, too old, before activation, unassigned), with the default `[pipeline]`
    /// settings.
    pub clock: Option<crate::pipeline::DispatchStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0} is not a tagstream data directory (no log/ inside)")]
    NotADataDir(String),
    #[error("log: {0}")]
    Log(#[from] crate::log::LogError),
}

pub fn inspect(data_dir: &Path) -> Result<InspectSummary, InspectError> {
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Err(InspectError::NotADataDir(data_dir.display().to_string()));
    }
    let log = summarize(&log_dir)?;
    // People, activations and orders as the log's control records leave them.
    let (book, clock) = clock_stats(&log_dir)?;
    let document = book.document();
    let (people, activations, orders) = (
        document.people.len(),
        document.activations.len(),
        document.orders.len(),
    );
    let clock = Some(clock);
    Ok(InspectSummary {
        data_dir: data_dir.display().to_string(),
        log,
        people,
        activations,
        orders,
        clock,
    })
}

/// Runs the dispatcher (the clock, the routing and the control records, no rules) over the log.
fn clock_stats(
    log_dir: &Path,
) -> Result<(crate::orders::OrderBook, crate::pipeline::DispatchStats), InspectError> {
    // Routing only: the rules are never run, so none are built.
    let config = crate::pipeline::PipelineConfig::default();
    let book = crate::orders::OrderBook::default();
    let factory = Box::new(crate::rules::StandardRules::empty(
        config,
        Default::default(),
    ));
    let mut dispatcher = crate::pipeline::Dispatcher::new(book, factory, 1, config);
    for item in crate::log::LogReader::open(log_dir)? {
        let (_, entry) = item?;
        // Only the book and the counters are wanted: the stores' share is dropped.
        let _stores = dispatcher.dispatch(&entry, |_, _| {});
    }
    Ok((dispatcher.book().clone(), dispatcher.stats()))
}
