//! `tagstream inspect`: a JSON summary of what is durably stored in a data directory — the log
//! (segments, records, readings per kind, tags, damaged ranges and records lost) and the
//! people, activations and orders its control records leave — or, in cluster mode, in the
//! JetStream stream a configuration names (the stream's servers and replicas, records, damaged
//! messages). `main` exits non-zero when the log has damage.

use crate::cluster::jetstream::{JetStreamConfig, JetStreamError, JetStreamLog, StreamDescription};
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

/// The same for a cluster's stream.
#[derive(Debug, Serialize)]
pub struct StreamInspectSummary {
    pub stream: StreamDescription,
    /// Records, readings and tags as in a data directory's summary (no segments or torn tail:
    /// the stream has none; `total_bytes` is the stream's).
    pub log: LogSummary,
    /// Messages that fail their checksum or do not decode: a node stops at the first.
    pub damaged: Vec<StreamDamage>,
    pub people: usize,
    pub activations: usize,
    pub orders: usize,
    pub clock: Option<crate::pipeline::DispatchStats>,
}

/// One message of the stream that is not a record.
#[derive(Debug, Serialize)]
pub struct StreamDamage {
    pub sequence: u64,
    pub subject: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0} is not a tagstream data directory (no log/ inside)")]
    NotADataDir(String),
    #[error("log: {0}")]
    Log(#[from] crate::log::LogError),
    #[error("log stream: {0}")]
    Stream(#[from] JetStreamError),
}

pub fn inspect(data_dir: &Path) -> Result<InspectSummary, InspectError> {
    let log_dir = data_dir.join("log");
    if !log_dir.is_dir() {
        return Err(InspectError::NotADataDir(data_dir.display().to_string()));
    }
    let log = summarize(&log_dir)?;
    // People, activations and orders as the log's control records leave them.
    let mut routing = Routing::new();
    for item in crate::log::LogReader::open(&log_dir)? {
        let (_, entry) = item?;
        routing.feed(&entry);
    }
    let (people, activations, orders, clock) = routing.finish();
    Ok(InspectSummary {
        data_dir: data_dir.display().to_string(),
        log,
        people,
        activations,
        orders,
        clock: Some(clock),
    })
}

/// Reads the stream `config` names from its first record to its end now.
pub async fn inspect_stream(
    config: &JetStreamConfig,
) -> Result<StreamInspectSummary, InspectError> {
    use futures::StreamExt;
    let log = JetStreamLog::open(config.clone()).await?;
    let stream = log.describe().await?;
    let end = log.next_record().await?;
    let mut summary = LogSummary {
        total_bytes: stream.bytes,
        ..LogSummary::default()
    };
    let mut damaged = Vec::new();
    let mut routing = Routing::new();
    if end > 0 {
        let mut records = Box::pin(log.read_until(0, end).await?);
        while let Some(item) = records.next().await {
            let position = match item {
                Ok((record, entry)) => {
                    summary.note(&entry);
                    routing.feed(&entry);
                    record
                }
                // A node stops here; the summary goes on to show what else is there.
                Err(JetStreamError::Damaged {
                    sequence,
                    subject,
                    message,
                }) => {
                    damaged.push(StreamDamage {
                        sequence,
                        subject,
                        reason: message,
                    });
                    sequence.saturating_sub(1)
                }
                Err(e) => return Err(e.into()),
            };
            if position + 1 >= end {
                break;
            }
        }
    }
    let (people, activations, orders, clock) = routing.finish();
    Ok(StreamInspectSummary {
        stream,
        log: summary,
        damaged,
        people,
        activations,
        orders,
        clock: Some(clock),
    })
}

/// The dispatcher (the clock, the routing and the control records, no rules) run over a log.
struct Routing {
    dispatcher: crate::pipeline::Dispatcher,
}

impl Routing {
    fn new() -> Self {
        // Routing only: the rules are never run, so none are built.
        let config = crate::pipeline::PipelineConfig::default();
        let book = crate::orders::OrderBook::default();
        let factory = Box::new(crate::rules::StandardRules::empty(
            config,
            Default::default(),
        ));
        Self {
            dispatcher: crate::pipeline::Dispatcher::new(book, factory, 1, config),
        }
    }

    fn feed(&mut self, entry: &crate::model::LogEntry) {
        // Only the book and the counters are wanted: the stores' share is dropped.
        let _stores = self.dispatcher.dispatch(entry, |_, _| {});
    }

    /// (people, activations, orders) the control records leave, and the clock's counters.
    fn finish(self) -> (usize, usize, usize, crate::pipeline::DispatchStats) {
        let document = self.dispatcher.book().document();
        (
            document.people.len(),
            document.activations.len(),
            document.orders.len(),
            self.dispatcher.stats(),
        )
    }
}
