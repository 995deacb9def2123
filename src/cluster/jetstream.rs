//! The durable log on NATS JetStream: one stream (replicated, R3 in production) holding every
//! input in order — tags' batches on `<prefix>.in.<partition>.<tag>`, control records on
//! `<prefix>.ctl` (see [`super::subject`]). A message's payload is the same checksummed frame the
//! embedded log stores (`docs/formats.md`), so a node verifies every record it reads and decodes
//! it with the embedded log's code. A record's number is its stream sequence minus one (the
//! embedded log numbers from 0).
//!
//! A batch is stored once: its message id is `<tag>/<epoch>/<seq>`, and JetStream drops a
//! message whose id it has seen within the stream's duplicate window, answering "duplicate"
//! (a tag re-sending after a lost ack, or to another node after a failover). Appends return
//! only after JetStream's publish acknowledgement, which with R3 means a quorum stored it: only
//! then may the tag be acknowledged.
//!
//! A frame larger than the servers accept in one message (`max_payload`, 1 MiB by default; a
//! crime batch can be tens of MiB) is put in the stream's object store (`<stream>_RECORDS`,
//! replicated like the stream) first, and the stream gets a small message in its place naming
//! the object: the record keeps its one position in the log, so record numbers stay the stream's
//! sequences − 1 with nothing in between. A reader fetches the object and verifies the whole
//! frame's checksum as for any record.

use super::subject::{batch_subject, control_subject, stream_subjects};
use crate::log::record::{
    decode_payload, encode_batch_frame, encode_control_frame, parse_frame_header, payload_checksum,
    FRAME_HEADER_LEN,
};
use crate::log::{CompactReport, TagWindows};
use crate::model::{Batch, ControlRecord, LogEntry};
use async_nats::jetstream::{self, consumer, object_store, stream};
use futures::StreamExt;
use std::time::Duration;

/// How long a JetStream request (a publish acknowledgement, a consumer's creation) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Header of a message that stands for a record kept in the object store: the object's name.
const OBJECT_HEADER: &str = "Tagstream-Object";
/// Room left in a message for headers and protocol overhead.
const HEADER_ROOM_BYTES: usize = 16 * 1024;
/// The smallest frame kept in the stream itself; a server whose `max_payload` leaves less is
/// refused at open.
const MIN_INLINE_BYTES: usize = 16 * 1024;

/// Where the stream is and how it is kept.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://…`); the client fails over between them.
    pub urls: Vec<String>,
    /// The stream's name.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The first token of every subject.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Copies of every message (3 for a cluster; 1 for a single test server).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Partitions tags are hashed into (see [`super::partition`]); fixed for a stream's life.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How long JetStream remembers message ids to drop re-sent batches.
    #[serde(default = "default_duplicate_window_s")]
    pub duplicate_window_s: u64,
    /// Connect to the servers in the order listed (the nearest first) instead of a random one,
    /// which spreads the nodes over the servers.
    #[serde(default)]
    pub retain_server_order: bool,
    /// This node's name in leases and on its webhook POSTs (default `<hostname>-<pid>`).
    #[serde(default)]
    pub node_id: Option<String>,
    /// How long a singleton duty's lease lasts without renewal (`super::lease`).
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// The partitions whose rules this node runs (`0-31`, `0,5,9-12`); their outputs go to the
    /// outputs stream (`super::outputs`), which every node materialises. Absent: every
    /// partition, outputs kept locally (`docs/cluster.md`, "Partitioned processing").
    #[serde(default)]
    pub own_partitions: Option<String>,
}

fn default_stream() -> String {
    "TAGSTREAM".into()
}
fn default_prefix() -> String {
    "ts".into()
}
fn default_replicas() -> usize {
    3
}
fn default_partitions() -> u32 {
    64
}
fn default_lease_ttl_ms() -> u64 {
    super::lease::DEFAULT_TTL_MS
}
fn default_duplicate_window_s() -> u64 {
    // Tags buffer for hours when their link is down; a day covers a re-send after that.
    24 * 60 * 60
}

/// What went wrong talking to JetStream or reading what it holds.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("connecting to NATS at {urls}: {message}")]
    Connect { urls: String, message: String },
    #[error("creating or checking stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("stream {stream} exists with {what}; this configuration says {wanted}")]
    StreamMismatch {
        stream: String,
        what: String,
        wanted: String,
    },
    #[error("encoding the record: {0}")]
    Encode(#[from] crate::log::LogError),
    #[error("publishing to {subject}: {message}")]
    Publish { subject: String, message: String },
    #[error("the NATS server accepts messages of at most {max_payload} bytes, too few for tagstream's records (at least {needed})")]
    PayloadTooSmall { max_payload: usize, needed: usize },
    #[error("object store {bucket}: {message}")]
    Objects { bucket: String, message: String },
    #[error("reading the stream at sequence {sequence}: {message}")]
    Read { sequence: u64, message: String },
    #[error("stream sequence {sequence} on {subject}: {message}")]
    Damaged {
        sequence: u64,
        subject: String,
        message: String,
    },
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored (quorum durable) as this log record.
    Stored { record: u64 },
    /// A batch with this (tag, epoch, seq) is already in the stream: not stored again.
    Duplicate { record: u64 },
}

/// A stream as `tagstream inspect` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamDescription {
    pub name: String,
    pub replicas: usize,
    /// The NATS server leading the stream now (`None`: no cluster, or none elected).
    pub leader: Option<String>,
    pub followers: Vec<FollowerState>,
    pub messages: u64,
    pub bytes: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Frames longer than this are kept in the object store (the servers' `max_payload` less
    /// room for headers).
    pub inline_bytes: usize,
}

/// One follower replica of the stream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FollowerState {
    pub name: String,
    /// Whether it has everything the leader has.
    pub current: bool,
    pub lag_messages: u64,
}

/// A connection to the stream.
#[derive(Clone)]
pub struct JetStreamLog {
    js: jetstream::Context,
    config: JetStreamConfig,
    /// Where frames too large for a message are kept (shared: the handle is large).
    objects: std::sync::Arc<object_store::ObjectStore>,
    /// Frames longer than this go to `objects`.
    inline_bytes: usize,
}

impl JetStreamLog {
    /// Connects and creates the stream if it does not exist; an existing stream must have the
    /// subjects and replicas configured (a mismatch is refused, not silently changed).
    pub async fn open(config: JetStreamConfig) -> Result<Self, JetStreamError> {
        let urls = config.urls.join(",");
        let addresses = config
            .urls
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| JetStreamError::Connect {
                        urls: url.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut options = async_nats::ConnectOptions::new().name("tagstream");
        if config.retain_server_order {
            options = options.retain_servers_order();
        }
        let client = options
            .connect(addresses)
            .await
            .map_err(|e| JetStreamError::Connect {
                urls: urls.clone(),
                message: e.to_string(),
            })?;
        let max_payload = client.server_info().max_payload;
        let inline_bytes = max_payload.saturating_sub(HEADER_ROOM_BYTES);
        if inline_bytes < MIN_INLINE_BYTES {
            return Err(JetStreamError::PayloadTooSmall {
                max_payload,
                needed: MIN_INLINE_BYTES + HEADER_ROOM_BYTES,
            });
        }
        let mut js = jetstream::new(client);
        // A request the stream's leader does not answer (it died, a new one is being elected)
        // fails after this, so a tag's append or a node's reader tries again soon rather than
        // after the client's default.
        js.set_timeout(REQUEST_TIMEOUT);
        let stream_err = |e: &dyn std::fmt::Display| JetStreamError::Stream {
            stream: config.stream.clone(),
            message: e.to_string(),
        };
        let wanted = stream::Config {
            name: config.stream.clone(),
            subjects: stream_subjects(&config.subject_prefix),
            num_replicas: config.replicas,
            duplicate_window: Duration::from_secs(config.duplicate_window_s),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let mut existing = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| stream_err(&e))?;
        let info = existing.info().await.map_err(|e| stream_err(&e))?;
        let mismatch = |what: String, wanted: String| JetStreamError::StreamMismatch {
            stream: config.stream.clone(),
            what,
            wanted,
        };
        if info.config.num_replicas != wanted.num_replicas {
            return Err(mismatch(
                format!("{} replicas", info.config.num_replicas),
                format!("{} replicas", wanted.num_replicas),
            ));
        }
        if info.config.subjects != wanted.subjects {
            return Err(mismatch(
                format!("subjects {:?}", info.config.subjects),
                format!("subjects {:?}", wanted.subjects),
            ));
        }
        let objects = std::sync::Arc::new(open_objects(&js, &config).await?);
        Ok(Self {
            js,
            config,
            objects,
            inline_bytes,
        })
    }

    /// Frames longer than this many bytes are kept in the object store.
    pub fn inline_bytes(&self) -> usize {
        self.inline_bytes
    }

    /// The same connection, keeping frames longer than `inline_bytes` in the object store
    /// (tests: an object without a megabyte record).
    pub fn with_inline_bytes(mut self, inline_bytes: usize) -> Self {
        self.inline_bytes = inline_bytes.clamp(1, self.inline_bytes);
        self
    }

    pub fn config(&self) -> &JetStreamConfig {
        &self.config
    }

    /// The JetStream context (its key-value buckets hold the leases: `super::lease`).
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// Appends a tag's batch; returns once JetStream has it (or has it already).
    pub async fn append(&self, batch: &Batch) -> Result<Appended, JetStreamError> {
        let mut frame = Vec::new();
        encode_batch_frame(batch, &mut frame)?;
        let partition = super::partition::partition_of(&batch.tag, self.config.partitions);
        let subject = batch_subject(&self.config.subject_prefix, partition, &batch.tag);
        let id = format!("{}/{}/{}", batch.tag, batch.epoch, batch.seq);
        let ack = self.publish_frame(subject, frame, &id, true).await?;
        let record = ack.sequence.saturating_sub(1);
        Ok(if ack.duplicate {
            Appended::Duplicate { record }
        } else {
            Appended::Stored { record }
        })
    }

    /// Appends a control record; returns its log record number once JetStream has it.
    pub async fn append_control(&self, control: &ControlRecord) -> Result<u64, JetStreamError> {
        let mut frame = Vec::new();
        encode_control_frame(control, &mut frame)?;
        let subject = control_subject(&self.config.subject_prefix);
        // Control records carry no id of their own; one is needed only to name an object.
        let id = if frame.len() > self.inline_bytes {
            control_object_id()?
        } else {
            String::new()
        };
        let ack = self.publish_frame(subject, frame, &id, false).await?;
        Ok(ack.sequence.saturating_sub(1))
    }

    /// Publishes a frame as one message, or, when it is longer than `inline_bytes`, puts it
    /// in the object store (named after `id`) and publishes a message naming it. With
    /// `dedupe`, `id` is the message id, so a frame re-sent is stored once.
    async fn publish_frame(
        &self,
        subject: String,
        frame: Vec<u8>,
        id: &str,
        dedupe: bool,
    ) -> Result<jetstream::publish::PublishAck, JetStreamError> {
        let message_id = dedupe.then(|| id.to_string());
        if frame.len() <= self.inline_bytes {
            return self.publish(subject, frame.into(), message_id, None).await;
        }
        // The object first: a message never names an object that is not there. A writer that
        // dies between the two leaves an object no record names (garbage, never applied).
        let name = object_name(id);
        let objects_err = |e: &dyn std::fmt::Display| JetStreamError::Objects {
            bucket: objects_bucket(&self.config),
            message: format!("putting {name}: {e}"),
        };
        let mut reader = std::io::Cursor::new(frame);
        self.objects
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| objects_err(&e))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(OBJECT_HEADER, name.as_str());
        self.publish(subject, bytes::Bytes::new(), message_id, Some(headers))
            .await
    }

    async fn publish(
        &self,
        subject: String,
        payload: bytes::Bytes,
        id: Option<String>,
        headers: Option<async_nats::HeaderMap>,
    ) -> Result<jetstream::publish::PublishAck, JetStreamError> {
        let publish_err = |e: &dyn std::fmt::Display| JetStreamError::Publish {
            subject: subject.clone(),
            message: e.to_string(),
        };
        let mut message = jetstream::message::PublishMessage::build().payload(payload);
        // Headers first: `headers` replaces the map, and the message id is a header too.
        if let Some(headers) = headers {
            message = message.headers(headers);
        }
        if let Some(id) = id {
            message = message.message_id(id);
        }
        let pending = self
            .js
            .send_publish(subject.clone(), message)
            .await
            .map_err(|e| publish_err(&e))?;
        pending.await.map_err(|e| publish_err(&e))
    }

    /// Reads the stream in order from log record `from_record` on, as `(record, entry)`; every
    /// frame's checksum is verified (a record kept in the object store is fetched first, a
    /// record a purge replaced is read from its replacement). The stream of entries waits for
    /// new records at its end.
    pub async fn read_from(
        &self,
        from_record: u64,
    ) -> Result<impl futures::Stream<Item = Result<(u64, LogEntry), JetStreamError>>, JetStreamError>
    {
        self.read_records(from_record, None).await
    }

    /// Reads records `[from_record, end_record)` in order, as [`Self::read_from`], and ends
    /// there. Records a purge deleted at the end (no message after them yet) are read from
    /// their replacements.
    pub async fn read_until(
        &self,
        from_record: u64,
        end_record: u64,
    ) -> Result<impl futures::Stream<Item = Result<(u64, LogEntry), JetStreamError>>, JetStreamError>
    {
        self.read_records(from_record, Some(end_record + 1)).await
    }

    async fn read_records(
        &self,
        from_record: u64,
        end_sequence: Option<u64>,
    ) -> Result<impl futures::Stream<Item = Result<(u64, LogEntry), JetStreamError>>, JetStreamError>
    {
        let start_sequence = from_record + 1;
        let read_err = |e: &dyn std::fmt::Display| read_error(start_sequence, e);
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| read_err(&e))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
                ..Default::default()
            })
            .await
            .map_err(|e| read_err(&e))?;
        let messages = consumer.messages().await.map_err(|e| read_err(&e))?;
        let reading = Reading {
            messages,
            stream,
            objects: self.objects.clone(),
            next_sequence: start_sequence,
            end_sequence,
            ready: std::collections::VecDeque::new(),
        };
        Ok(futures::stream::unfold(reading, |mut reading| async move {
            let item = reading.next_item().await?;
            Some((item, reading))
        }))
    }

    /// Removes what `windows` covers from every record now in the stream, record by record
    /// with the embedded log's rule ([`TagWindows::compact_entry`]): the record's replacement
    /// is kept in the object store under its sequence, then the original message is deleted
    /// (erased by the servers) with its object, if it had one. Readers read the replacement
    /// where the message was, so record numbers stay. Idempotent: a run stopped anywhere is
    /// repeated by the next (a replacement already in place is compacted again, harmlessly).
    pub async fn compact(&self, windows: &TagWindows) -> Result<CompactReport, JetStreamError> {
        let started = std::time::Instant::now();
        let mut report = CompactReport::default();
        let end = self.next_record().await?;
        if end == 0 || windows.is_empty() {
            return Ok(report);
        }
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| read_error(0, &e))?;
        let mut records = Box::pin(self.read_until(0, end).await?);
        // Each replacement is a few requests: many at once, each in its own order.
        let mut replacing = tokio::task::JoinSet::new();
        while let Some(item) = records.next().await {
            let (record, entry) = item?;
            report.records_scanned += 1;
            let Some((replacement, removed)) = windows.compact_entry(&entry) else {
                continue;
            };
            let mut frame = Vec::new();
            match &replacement {
                LogEntry::Batch(batch) => {
                    encode_batch_frame(batch, &mut frame)?;
                    report.records_emptied += u64::from(batch.readings.is_empty());
                }
                LogEntry::Control { control, .. } => {
                    encode_control_frame(control, &mut frame)?;
                    report.controls_redacted += 1;
                }
            }
            report.readings_removed += removed;
            report.bytes_after += frame.len() as u64;
            if replacing.len() >= REPLACEMENTS_IN_FLIGHT {
                report.bytes_before += joined(replacing.join_next().await)?;
            }
            let (log, stream) = (self.clone(), stream.clone());
            replacing.spawn(async move { log.replace(&stream, record + 1, frame).await });
        }
        while let Some(done) = replacing.join_next().await {
            report.bytes_before += joined(Some(done))?;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Puts `frame` in place of the message at `sequence`: the replacement first (a reader never
    /// finds a deleted message without one), then the original deleted. Returns the bytes the
    /// original held.
    async fn replace(
        &self,
        stream: &stream::Stream,
        sequence: u64,
        frame: Vec<u8>,
    ) -> Result<u64, JetStreamError> {
        let name = replacement_name(sequence);
        let mut reader = std::io::Cursor::new(frame);
        self.objects
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| JetStreamError::Objects {
                bucket: objects_bucket(&self.config),
                message: format!("putting {name}: {e}"),
            })?;
        self.delete_original(stream, sequence).await
    }

    /// Deletes the message at `sequence` and the object it names, if any; returns the bytes it
    /// held (0 when a run before this one deleted it already).
    async fn delete_original(
        &self,
        stream: &stream::Stream,
        sequence: u64,
    ) -> Result<u64, JetStreamError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let delete_err = |e: &dyn std::fmt::Display| JetStreamError::Read {
            sequence,
            message: format!("deleting the purged original: {e}"),
        };
        let original = match stream.get_raw_message(sequence).await {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(0),
            Err(e) => return Err(delete_err(&e)),
        };
        let object = original
            .headers
            .get(OBJECT_HEADER)
            .map(|name| name.as_str().to_string());
        let mut bytes = original.payload.len() as u64;
        if let Err(e) = stream.delete_message(sequence).await {
            // Deleted meanwhile (two runs at once) is done; anything else is not.
            match stream.get_raw_message(sequence).await {
                Err(gone) if gone.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                _ => return Err(delete_err(&e)),
            }
        }
        if let Some(name) = object {
            match self.objects.info(name.as_str()).await {
                Ok(info) => bytes = info.size as u64,
                Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => {}
                Err(e) => return Err(delete_err(&e)),
            }
            match self.objects.delete(name.as_str()).await {
                Ok(()) => {}
                Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => {}
                Err(e) => return Err(delete_err(&e)),
            }
        }
        Ok(bytes)
    }

    /// The name of the NATS server that leads the stream now (`None`: no cluster, or no leader
    /// elected yet). For operators and failover tests.
    pub async fn leader(&self) -> Result<Option<String>, JetStreamError> {
        let info = self.stream_info().await?;
        Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
    }

    /// The stream's configuration and state, asked of its leader now.
    async fn stream_info(&self) -> Result<stream::Info, JetStreamError> {
        let mut stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| read_error(0, &e))?;
        let info = stream.info().await.map_err(|e| read_error(0, &e))?;
        Ok(info.clone())
    }

    /// What the stream holds and where it lives (for `tagstream inspect`).
    pub async fn describe(&self) -> Result<StreamDescription, JetStreamError> {
        let info = self.stream_info().await?;
        let cluster = info.cluster.as_ref();
        Ok(StreamDescription {
            name: info.config.name.clone(),
            replicas: info.config.num_replicas,
            leader: cluster.and_then(|c| c.leader.clone()),
            followers: cluster
                .map(|c| {
                    c.replicas
                        .iter()
                        .map(|r| FollowerState {
                            name: r.name.clone(),
                            current: r.current,
                            lag_messages: r.lag.unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_sequence: info.state.first_sequence,
            last_sequence: info.state.last_sequence,
            inline_bytes: self.inline_bytes,
        })
    }

    /// The log record the next append will get (the stream's last sequence).
    pub async fn next_record(&self) -> Result<u64, JetStreamError> {
        Ok(self.stream_info().await?.state.last_sequence)
    }
}

/// Records a purge replaces at once (each a few requests to the servers).
const REPLACEMENTS_IN_FLIGHT: usize = 32;

/// The outcome of a replacement task (`None`: none was running).
fn joined(
    done: Option<Result<Result<u64, JetStreamError>, tokio::task::JoinError>>,
) -> Result<u64, JetStreamError> {
    match done {
        None => Ok(0),
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => Err(JetStreamError::Objects {
            bucket: "replacements".into(),
            message: format!("a replacement task failed: {e}"),
        }),
    }
}

/// How long a bounded read waits for the next message before it asks the stream whether the
/// records left were deleted by a purge (nothing after them to show the gap).
const BOUNDED_IDLE: Duration = Duration::from_secs(2);

/// A read of the stream in progress: messages in order, records a purge deleted read from
/// their replacements where the sequence skips them.
struct Reading<M> {
    messages: M,
    stream: stream::Stream,
    objects: std::sync::Arc<object_store::ObjectStore>,
    /// The sequence of the next record to hand out.
    next_sequence: u64,
    /// The first sequence not to read (a bounded read), `None`: read on forever.
    end_sequence: Option<u64>,
    ready: std::collections::VecDeque<Result<(u64, LogEntry), JetStreamError>>,
}

impl<M, E> Reading<M>
where
    M: futures::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    async fn next_item(&mut self) -> Option<Result<(u64, LogEntry), JetStreamError>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let end = self.end_sequence.unwrap_or(u64::MAX);
            if self.next_sequence >= end {
                return None;
            }
            let item = match self.end_sequence {
                None => self.messages.next().await,
                Some(_) => match tokio::time::timeout(BOUNDED_IDLE, self.messages.next()).await {
                    Ok(item) => item,
                    Err(_) => {
                        self.fill_deleted_tail(end).await;
                        continue;
                    }
                },
            };
            let message = match item? {
                Ok(message) => message,
                // Sequence 0: the message did not arrive whole enough to say.
                Err(e) => return Some(Err(read_error(0, &e))),
            };
            let info = match message.info() {
                Ok(info) => (info.stream_sequence, info.pending),
                Err(e) => return Some(Err(read_error(0, &e))),
            };
            let (sequence, pending) = info;
            if sequence < self.next_sequence {
                continue; // handed out already (a consumer re-created further back)
            }
            for deleted in self.next_sequence..sequence.min(end) {
                let item = read_replacement(&self.objects, deleted).await;
                self.ready.push_back(item);
            }
            if sequence < end {
                let item = decode_message(&self.objects, &message, sequence).await;
                self.ready.push_back(item);
            }
            self.next_sequence = sequence + 1;
            if pending == 0 && self.end_sequence.is_some() && self.next_sequence < end {
                self.fill_deleted_tail(end).await;
            }
        }
    }

    /// Nothing came: the records up to `end` are either still to come or were deleted by a
    /// purge with nothing stored after them. The stream says which.
    async fn fill_deleted_tail(&mut self, end: u64) {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        while self.next_sequence < end {
            let sequence = self.next_sequence;
            match self.stream.get_raw_message(sequence).await {
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    let item = read_replacement(&self.objects, sequence).await;
                    self.ready.push_back(item);
                    self.next_sequence += 1;
                }
                // There: the consumer delivers it (or the stream is unreachable; keep waiting).
                _ => return,
            }
        }
    }
}

/// A delivered message as a record: its frame, or the frame of the object it names, verified.
async fn decode_message(
    objects: &object_store::ObjectStore,
    message: &jetstream::Message,
    sequence: u64,
) -> Result<(u64, LogEntry), JetStreamError> {
    let record = sequence.saturating_sub(1);
    let damaged = |message_text: String| JetStreamError::Damaged {
        sequence,
        subject: message.subject.to_string(),
        message: message_text,
    };
    let object = message
        .headers
        .as_ref()
        .and_then(|h| h.get(OBJECT_HEADER))
        .map(|name| name.as_str().to_string());
    let entry = match object {
        None => decode_frame(&message.payload, record).map_err(damaged)?,
        Some(name) => {
            let frame = read_object(objects, &name).await.map_err(|e| {
                // Not there at all is damage; a failed request is worth retrying.
                match e {
                    ObjectRead::Missing(why) => damaged(why),
                    ObjectRead::Failed(why) => read_error(sequence, &why),
                }
            })?;
            decode_frame(&frame, record).map_err(damaged)?
        }
    };
    Ok((record, entry))
}

/// The record a purge left where it deleted the message at `sequence`. None kept: the stream
/// lost a record, which is damage.
async fn read_replacement(
    objects: &object_store::ObjectStore,
    sequence: u64,
) -> Result<(u64, LogEntry), JetStreamError> {
    let record = sequence.saturating_sub(1);
    let name = replacement_name(sequence);
    let damaged = |why: String| JetStreamError::Damaged {
        sequence,
        subject: String::new(),
        message: format!("the message is not in the stream: {why}"),
    };
    let frame = read_object(objects, &name).await.map_err(|e| match e {
        ObjectRead::Missing(why) => damaged(why),
        ObjectRead::Failed(why) => read_error(sequence, &why),
    })?;
    Ok((record, decode_frame(&frame, record).map_err(damaged)?))
}

/// The object holding what a purge left of the record at stream sequence `sequence`.
fn replacement_name(sequence: u64) -> String {
    format!("replaced-{sequence:020}")
}

/// The object store bucket that keeps a stream's large records.
fn objects_bucket(config: &JetStreamConfig) -> String {
    format!("{}_RECORDS", config.stream)
}

/// Opens (creating if needed) the stream's object store, replicated like the stream.
async fn open_objects(
    js: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<object_store::ObjectStore, JetStreamError> {
    let bucket = objects_bucket(config);
    if let Ok(store) = js.get_object_store(&bucket).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: bucket.clone(),
        description: Some("tagstream: log records too large for one message".into()),
        num_replicas: config.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| JetStreamError::Objects {
        bucket,
        message: e.to_string(),
    })
}

/// An object's name for record id `id` (a batch's `<tag>/<epoch>/<seq>`, or a control
/// record's random id): hex, so any tag id makes a valid name, and a batch re-sent overwrites
/// its own object with the same bytes.
fn object_name(id: &str) -> String {
    format!("r-{}", hex::encode(id.as_bytes()))
}

/// Why a record's object could not be read.
enum ObjectRead {
    /// The store says it does not hold it (or holds something else).
    Missing(String),
    /// The request failed (a server moving): worth trying again.
    Failed(String),
}

async fn read_object(
    objects: &object_store::ObjectStore,
    name: &str,
) -> Result<Vec<u8>, ObjectRead> {
    use tokio::io::AsyncReadExt;
    let mut object = objects.get(name).await.map_err(|e| match e.kind() {
        object_store::GetErrorKind::NotFound => ObjectRead::Missing(format!(
            "the record's object {name} is not in the object store"
        )),
        _ => ObjectRead::Failed(format!("fetching object {name}: {e}")),
    })?;
    let mut frame = Vec::new();
    object
        .read_to_end(&mut frame)
        .await
        .map_err(|e| ObjectRead::Failed(format!("reading object {name}: {e}")))?;
    Ok(frame)
}

/// A fresh id naming a control record's object: 128 random bits, so two nodes never write the
/// same name.
fn control_object_id() -> Result<String, JetStreamError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| JetStreamError::Publish {
        subject: "a large control record".into(),
        message: format!("no random id: {e}"),
    })?;
    Ok(format!("ctl/{}", hex::encode(bytes)))
}

fn read_error(sequence: u64, e: &dyn std::fmt::Display) -> JetStreamError {
    JetStreamError::Read {
        sequence,
        message: e.to_string(),
    }
}

/// The log kept on the stream, behind the committer's handle (`log::CommitHandle::remote`).
impl crate::log::RemoteLog for JetStreamLog {
    fn append(
        &self,
        batch: Batch,
    ) -> futures::future::BoxFuture<'_, crate::log::LogResult<crate::log::AppendOutcome>> {
        Box::pin(async move {
            match JetStreamLog::append(self, &batch).await {
                Ok(Appended::Stored { record }) => Ok(crate::log::AppendOutcome::Stored { record }),
                Ok(Appended::Duplicate { .. }) => Ok(crate::log::AppendOutcome::Duplicate),
                Err(JetStreamError::Encode(e)) => Err(e),
                Err(e) => Err(crate::log::LogError::Remote(e.to_string())),
            }
        })
    }

    fn append_control(
        &self,
        control: ControlRecord,
    ) -> futures::future::BoxFuture<'_, crate::log::LogResult<u64>> {
        Box::pin(async move {
            JetStreamLog::append_control(self, &control)
                .await
                .map_err(JetStreamLog::remote_error)
        })
    }

    fn stored_records(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        crate::log::LogResult<crate::log::committer::RecordStream<'_>>,
    > {
        Box::pin(async move {
            let end = self.next_record().await.map_err(Self::remote_error)?;
            let records = self.read_until(0, end).await.map_err(Self::remote_error)?;
            Ok(records.map(|item| item.map_err(Self::remote_error)).boxed())
        })
    }

    fn compact<'a>(
        &'a self,
        windows: &'a TagWindows,
    ) -> futures::future::BoxFuture<'a, crate::log::LogResult<CompactReport>> {
        Box::pin(async move {
            JetStreamLog::compact(self, windows)
                .await
                .map_err(JetStreamLog::remote_error)
        })
    }
}

/// Retention's compaction of the stream (see [`JetStreamLog::compact`]).
impl JetStreamLog {
    fn remote_error(e: JetStreamError) -> crate::log::LogError {
        match e {
            JetStreamError::Encode(e) => e,
            e => crate::log::LogError::Remote(e.to_string()),
        }
    }
}

/// A whole frame (length, checksum, payload) decoded as log record `record`, the checksum and
/// length verified first.
fn decode_frame(frame: &[u8], record: u64) -> Result<LogEntry, String> {
    let header: &[u8; FRAME_HEADER_LEN] = frame
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| format!("{} bytes: shorter than a frame header", frame.len()))?;
    let (len, stored) = parse_frame_header(header);
    let payload = &frame[FRAME_HEADER_LEN..];
    if payload.len() != len as usize {
        return Err(format!(
            "the frame says {len} payload bytes, the message holds {}",
            payload.len()
        ));
    }
    let computed = payload_checksum(payload);
    if computed != stored {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    decode_payload(payload, record).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reading;

    #[test]
    fn a_frame_round_trips_and_a_flipped_bit_is_refused() {
        let batch = Batch {
            tag: "T.1".into(),
            epoch: 2,
            seq: 9,
            arrival_ms: 1_000,
            readings: vec![Reading {
                t_ms: 5_000,
                battery_pct: Some(80),
                body: crate::model::ReadingBody::Rf { in_range: true },
            }],
        };
        let mut frame = Vec::new();
        encode_batch_frame(&batch, &mut frame).expect("encode");
        match decode_frame(&frame, 4).expect("decode") {
            LogEntry::Batch(b) => assert_eq!(*b, batch),
            other => panic!("{other:?}"),
        }
        let last = frame.len() - 1;
        frame[last] ^= 0x10;
        let error = decode_frame(&frame, 4).expect_err("a flipped bit");
        assert!(error.contains("checksum mismatch"), "{error}");
        assert!(decode_frame(&frame[..4], 4).is_err());
    }

    #[test]
    fn object_names_are_valid_for_any_tag_and_control_ids_differ() {
        let name = object_name("T.1*>/0/7");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(
            name,
            object_name("T.1*>/0/7"),
            "a re-sent batch: the same object"
        );
        assert_ne!(control_object_id().unwrap(), control_object_id().unwrap());
    }
}
