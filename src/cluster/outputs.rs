//! The outputs stream, `<stream>_OUT` (issue 15 item 4): where processing nodes publish their
//! rules' outputs — alert changes, sober days, purges — for every node to materialise. This
//! module is its transport (subjects, message ids, the ordered read, the purge of one
//! activation's messages); what a message holds is `topology::outputs_link`'s business.
//!
//! A node owning some partitions (`[log.jetstream] own_partitions`) runs the rules only for
//! those partitions' tags; every node reads this stream into its alert book, so the API of any
//! node serves every partition's alerts. Each message carries its activation and its *ordinal*:
//! the n-th rule output of that activation (from 1). The rules are a deterministic function of
//! the log and one partition's clock, so the n-th output of an activation is the same whichever
//! node computes it and however often: a node that restarts (or takes a partition over)
//! re-derives the same sequence and publishes only past the highest ordinal the stream holds,
//! with the message id `<activation>#<ordinal>` besides (JetStream drops a re-sent one within
//! the duplicate window), and readers apply an output only past the highest ordinal they
//! applied for its activation.
//!
//! A hit found by the node owning its activation goes to the same subject as its standing (its
//! form, and its withdrawal if withdrawn), with the message id `<activation>#<hit>@<n>`, `n`
//! counted by the publisher from a start of its own: a hit's later standing replaces its
//! earlier one, so readers take the latest, and a standing re-sent after a failed publish is
//! harmless.
//!
//! Subjects are `<prefix>.out.a.<activation>` (the activation id encoded as tag ids are), so a
//! purge deletes exactly one activation's outputs ([`OutputsStream::purge_activation`]); the
//! purge's own output (an activation id, nothing else) goes to `<prefix>.out.purged`, which no
//! purge deletes, so every reader drops the activation's alerts even if it reads after the
//! deletion.

use super::jetstream::JetStreamConfig;
use super::subject::encode_tag;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use std::time::Duration;

/// One message: an activation's `ordinal`-th output, or the standing of one of its hits,
/// already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub activation: String,
    /// A rule output's ordinal; a hit's: the publisher's own count, unique per publisher.
    pub ordinal: u64,
    /// The activation's purge (published where no purge deletes it).
    pub purged: bool,
    /// A hit's standing: the hit's id (hits are state, not numbered per activation).
    pub hit: Option<String>,
    pub payload: Vec<u8>,
}

impl OutMessage {
    fn message_id(&self) -> String {
        match &self.hit {
            None => format!("{}#{}", self.activation, self.ordinal),
            Some(hit) => format!("{}#{hit}@{}", self.activation, self.ordinal),
        }
    }
}

/// What went wrong with the outputs stream.
#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    #[error("outputs stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("outputs stream {stream}: publishing {id}: {message}")]
    Publish {
        stream: String,
        id: String,
        message: String,
    },
}

/// How long a bounded read waits for its next message before it ends.
const BOUNDED_IDLE: Duration = Duration::from_secs(2);

/// The outputs stream of the cluster a [`JetStreamConfig`] names.
#[derive(Clone)]
pub struct OutputsStream {
    js: jetstream::Context,
    name: String,
    prefix: String,
}

/// The outputs stream's name for a cluster's stream.
pub fn stream_name(config: &JetStreamConfig) -> String {
    format!("{}_OUT", config.stream)
}

impl OutputsStream {
    /// Opens (creating if needed) the outputs stream beside the cluster's stream: as many
    /// replicas, the same duplicate window.
    pub async fn open(
        js: &jetstream::Context,
        config: &JetStreamConfig,
    ) -> Result<Self, OutputsError> {
        let name = stream_name(config);
        let err = |e: &dyn std::fmt::Display| OutputsError::Stream {
            stream: name.clone(),
            message: e.to_string(),
        };
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.out.>", config.subject_prefix)],
            num_replicas: config.replicas,
            duplicate_window: Duration::from_secs(config.duplicate_window_s),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
        Ok(Self {
            js: js.clone(),
            name,
            prefix: config.subject_prefix.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn activation_subject(&self, activation: &str) -> String {
        format!("{}.out.a.{}", self.prefix, encode_tag(activation))
    }

    fn subject(&self, message: &OutMessage) -> String {
        match message.purged {
            true => format!("{}.out.purged", self.prefix),
            false => self.activation_subject(&message.activation),
        }
    }

    /// Publishes `outputs` in order and returns once the stream holds every one (re-sent ones
    /// it already held are dropped by their message ids). Publishes are pipelined on one
    /// connection, so the stream keeps their order; the first failure is returned and nothing
    /// after it is waited for.
    pub async fn publish_all(&self, messages: &[OutMessage]) -> Result<(), OutputsError> {
        let mut pending = Vec::with_capacity(messages.len().min(4096));
        for chunk in messages.chunks(4096) {
            for message in chunk {
                let id = message.message_id();
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                let ack = self
                    .js
                    .publish_with_headers(
                        self.subject(message),
                        headers,
                        message.payload.clone().into(),
                    )
                    .await
                    .map_err(|e| OutputsError::Publish {
                        stream: self.name.clone(),
                        id: id.clone(),
                        message: e.to_string(),
                    })?;
                pending.push((id, ack));
            }
            for (id, ack) in pending.drain(..) {
                ack.await.map_err(|e| OutputsError::Publish {
                    stream: self.name.clone(),
                    id,
                    message: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    /// The sequence the next message will have (1 for an empty stream).
    pub async fn next_sequence(&self) -> Result<u64, OutputsError> {
        let mut stream = self.stream().await?;
        let info = stream.info().await.map_err(|e| self.err(&e))?;
        Ok(info.state.last_sequence + 1)
    }

    async fn stream(&self) -> Result<stream::Stream, OutputsError> {
        self.js
            .get_stream(&self.name)
            .await
            .map_err(|e| self.err(&e))
    }

    fn err(&self, e: &dyn std::fmt::Display) -> OutputsError {
        OutputsError::Stream {
            stream: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// Reads the stream in order from `from_sequence`, as `(sequence, payload)`; with
    /// `end_sequence`, up to (not including) it and then ends, otherwise waits for more.
    /// Sequences a purge deleted are skipped.
    pub async fn read(
        &self,
        from_sequence: u64,
        end_sequence: Option<u64>,
    ) -> Result<
        impl futures::Stream<Item = Result<(u64, bytes::Bytes), OutputsError>> + Send + use<>,
        OutputsError,
    > {
        let from_sequence = from_sequence.max(1);
        let stream = self.stream().await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from_sequence,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| self.err(&e))?;
        let messages = consumer.messages().await.map_err(|e| self.err(&e))?;
        let name = self.name.clone();
        let done = end_sequence.is_some_and(|end| from_sequence >= end);
        let state = (messages, name, end_sequence, done);
        Ok(futures::stream::unfold(
            state,
            |(mut messages, name, end, done)| async move {
                if done {
                    return None;
                }
                let err = |e: &dyn std::fmt::Display| OutputsError::Stream {
                    stream: name.clone(),
                    message: e.to_string(),
                };
                // A bounded read whose remaining sequences were all deleted (purges) would wait
                // for ever: it ends when nothing comes (the caller follows on from what it read).
                let item = match end {
                    None => messages.next().await?,
                    Some(_) => tokio::time::timeout(BOUNDED_IDLE, messages.next())
                        .await
                        .ok()??,
                };
                let read = item.map_err(|e| err(&e)).and_then(|message| {
                    let info = message.info().map_err(|e| err(&e))?;
                    Ok((info.stream_sequence, info.pending, message.payload.clone()))
                });
                match read {
                    Ok((sequence, pending, payload)) => {
                        let finished = end.is_some_and(|e| sequence + 1 >= e || pending == 0);
                        Some((Ok((sequence, payload)), (messages, name, end, finished)))
                    }
                    // An error ends the read after it is handed out.
                    Err(e) => Some((Err(e), (messages, name, end, true))),
                }
            },
        ))
    }

    /// Deletes every output of `activation`: retention purged it.
    pub async fn purge_activation(&self, activation: &str) -> Result<u64, OutputsError> {
        let stream = self.stream().await?;
        let purged = stream
            .purge()
            .filter(self.activation_subject(activation))
            .await
            .map_err(|e| self.err(&e))?;
        Ok(purged.purged)
    }
}
