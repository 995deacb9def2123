//! The pipeline as every command builds it: the standard rules over a starting set of people,
//! activations and orders, and the dispatcher with its partitions, run inline on the caller's
//! thread. The server's start-up (which then turns it live), `tagstream replay` and the offline
//! people export (through replay) all build it here, so they run the same code and give the same
//! bytes; only the input they feed it and what they do at its end differ.

use crate::model::OrdersFile;
use crate::orders::OrderBook;
use crate::pipeline::driver::InlineDriver;
use crate::pipeline::snapshot::SnapshotError;
use crate::pipeline::{PipelineConfig, Sink};
use crate::rules::{RulesConfig, StandardRules};

/// What the pipeline is built from.
pub struct PipelineDesc<'a> {
    /// People, activations and orders known before the input's first record (a recording
    /// without control records); the log's control records change them as they come. Empty for
    /// a data directory's log, which holds its own.
    pub start: &'a OrdersFile,
    pub pipeline: PipelineConfig,
    pub rules: RulesConfig,
    pub partitions: usize,
}

impl PipelineDesc<'_> {
    /// The dispatcher and partitions, registered with `sink`, ready to be fed in log order.
    pub fn build(&self, sink: &mut dyn Sink) -> InlineDriver {
        let book = OrderBook::from_document(self.start);
        let factory = Box::new(StandardRules::new(
            self.pipeline,
            self.rules.clone(),
            self.start,
        ));
        InlineDriver::from_book(book, self.pipeline, factory, self.partitions, sink)
    }

    /// The driver a snapshot of one built from this description holds (see
    /// [`InlineDriver::restore`]), ready to be fed the records after it.
    pub fn restore(&self, snapshot: &[u8]) -> Result<InlineDriver, SnapshotError> {
        let factory = Box::new(StandardRules::new(
            self.pipeline,
            self.rules.clone(),
            self.start,
        ));
        InlineDriver::restore(snapshot, self.pipeline, factory, self.partitions)
    }
}
