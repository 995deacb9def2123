//! One tag connection: hello (authenticated by the tag's current secret and, over mutual TLS,
//! its certificate, within the hello timeout), then pipelined batches, each acknowledged in
//! order once durable. A tag revoked or rotated while connected is refused at its next batch. Malformed input gets an error frame naming what was
//! wrong, then the connection closes; other tags are unaffected.
//!
//! Before the hello is accepted the connection can make the server buffer at most
//! [`MAX_HELLO_FRAME_BYTES`]; only an authenticated tag may send frames up to the configured
//! maximum. The stream type is generic so that TLS streams can be served the same way; the hello
//! is checked in one place, [`verify_hello`].

use super::limits::ConnectionSlot;
use super::listener::{IngestContext, ERROR_WRITE_TIMEOUT};
use super::transport::PeerIdentity;
use crate::log::{AppendOutcome, LogError};
use crate::model::Batch;
use crate::wire::{
    ErrorCode, Frame, FrameCodec, WireError, MAX_BATCH_SEQ, MAX_HELLO_FRAME_BYTES, PROTOCOL_VERSION,
};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// Batches a connection may have waiting for durability before it stops reading.
const MAX_IN_FLIGHT: usize = 128;
/// The same on a stream (cluster mode): one. The embedded committer stores a connection's
/// batches in order and stops at the first failure; concurrent publishes to a stream do not:
/// batch n could fail while n+1 is stored, and the next hello's `last_seq` (the highest stored)
/// would then tell the tag n was stored too, and it would drop it. One at a time, a failure
/// ends the connection before anything after it is published.
const MAX_IN_FLIGHT_ON_A_STREAM: usize = 1;

/// Read buffer a connection starts with; it grows only for an authenticated tag's batches.
const INITIAL_READ_BUFFER_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection: {0}")]
    Wire(#[from] WireError),
    #[error("protocol error sent to tag: {0}")]
    Rejected(String),
    #[error("durable log failed: {0}")]
    Log(String),
    #[error("timed out writing to the tag")]
    WriteTimeout,
}

/// Wall-clock milliseconds: a batch's arrival time.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A hello that passed [`verify_hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHello {
    pub tag: String,
    pub epoch: u32,
    /// The credential generation the tag authenticated at (see `credentials`).
    pub generation: u64,
    /// What `HelloOk.last_seq` tells the tag: the last durable seq of the tag in this epoch.
    pub last_seq: u64,
}

/// Why a hello was refused: the code and message of the error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloRefusal {
    pub code: ErrorCode,
    pub message: String,
}

/// Checks a hello: protocol version, that a client certificate (if any) names the tag, the tag's
/// secret at its current credential generation and that it is not revoked, and that its session
/// epoch is not older than the tag's current one. Every check a hello must pass lives here.
pub fn verify_hello(
    ctx: &IngestContext,
    peer: &PeerIdentity,
    protocol_version: u16,
    tag: &str,
    secret: &str,
    epoch: u32,
) -> Result<VerifiedHello, HelloRefusal> {
    if protocol_version != PROTOCOL_VERSION {
        return Err(HelloRefusal {
            code: ErrorCode::UnsupportedVersion,
            message: format!("protocol version {protocol_version} is not supported (server speaks {PROTOCOL_VERSION})"),
        });
    }
    if !peer.permits(tag) {
        return Err(HelloRefusal {
            code: ErrorCode::IdentityMismatch,
            message: format!("the client certificate does not name tag '{tag}'"),
        });
    }
    let generation = ctx
        .credentials
        .authenticate(tag, secret)
        .map_err(|refusal| HelloRefusal {
            code: refusal.code(),
            message: refusal.to_string(),
        })?;
    match ctx.commit.last_seq_in_epoch(tag, epoch) {
        Ok(last_seq) => Ok(VerifiedHello {
            tag: tag.to_owned(),
            epoch,
            generation,
            last_seq,
        }),
        Err(current_epoch) => {
            ctx.counters.stale_epoch.fetch_add(1, Ordering::Relaxed);
            Err(HelloRefusal {
                code: ErrorCode::StaleEpoch,
                message: format!(
                    "session epoch {epoch} of tag '{tag}' is older than its current epoch {current_epoch}"
                ),
            })
        }
    }
}

/// Runs a write to the tag, giving up after `limit` (a peer that stops reading cannot hold the
/// task).
async fn within(
    write: impl std::future::Future<Output = Result<(), WireError>>,
    limit: Option<Duration>,
) -> Result<(), ConnectionError> {
    match limit {
        Some(limit) => match tokio::time::timeout(limit, write).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ConnectionError::WriteTimeout),
        },
        None => Ok(write.await?),
    }
}

/// Sends `frame` within `limit`.
async fn send_within<S>(
    framed: &mut Framed<S, FrameCodec>,
    frame: Frame,
    limit: Option<Duration>,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(framed.send(frame), limit).await
}

/// Sends an error frame (best effort, bounded in time) and returns the error ending the session.
async fn reject<S>(
    framed: &mut Framed<S, FrameCodec>,
    counter: &AtomicU64,
    code: ErrorCode,
    message: String,
) -> ConnectionError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    counter.fetch_add(1, Ordering::Relaxed);
    let _ = send_within(
        framed,
        Frame::error(code, message.clone()),
        Some(ERROR_WRITE_TIMEOUT),
    )
    .await;
    ConnectionError::Rejected(message)
}

/// Serves one tag connection holding `slot` (given back when the connection ends), with no
/// client certificate.
pub async fn serve_connection<S>(
    socket: S,
    ctx: &IngestContext,
    slot: ConnectionSlot,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    serve_connection_as(socket, &PeerIdentity::Anonymous, ctx, slot).await
}

/// Serves one tag connection whose transport established `peer` (a verified client certificate
/// must name the hello's tag).
pub async fn serve_connection_as<S>(
    socket: S,
    peer: &PeerIdentity,
    ctx: &IngestContext,
    mut slot: ConnectionSlot,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Until the hello is accepted, frames are limited to what a hello can need.
    let mut framed = Framed::with_capacity(
        socket,
        FrameCodec::with_max_frame_bytes(MAX_HELLO_FRAME_BYTES.min(ctx.max_frame_bytes)),
        INITIAL_READ_BUFFER_BYTES,
    );
    let rejected = &ctx.rejected_frames;

    let first = match tokio::time::timeout(ctx.hello_timeout, framed.next()).await {
        Ok(first) => first,
        Err(_) => {
            let msg = format!("no hello within {} ms", ctx.hello_timeout.as_millis());
            let counter = &ctx.counters.hello_timeouts;
            return Err(reject(&mut framed, counter, ErrorCode::HelloTimeout, msg).await);
        }
    };
    let hello = match first {
        None => return Ok(()),
        Some(Err(e)) => return Err(reject(&mut framed, rejected, e.code(), e.to_string()).await),
        Some(Ok(Frame::Hello {
            protocol_version,
            tag,
            secret,
            epoch,
        })) => match verify_hello(ctx, peer, protocol_version, &tag, &secret, epoch) {
            Ok(hello) => hello,
            Err(refusal) => {
                return Err(reject(&mut framed, rejected, refusal.code, refusal.message).await)
            }
        },
        Some(Ok(other)) => {
            let msg = format!(
                "expected a hello frame first, got {}",
                other.frame_type().as_str()
            );
            return Err(reject(&mut framed, rejected, ErrorCode::BatchBeforeHello, msg).await);
        }
    };
    let VerifiedHello {
        tag,
        epoch,
        generation,
        last_seq,
    } = hello;
    framed.codec_mut().set_max_frame_bytes(ctx.max_frame_bytes);
    let (superseded, closed_others) = slot.authenticate(&tag);
    if closed_others > 0 {
        tracing::debug!(%tag, closed_others, "a new connection superseded the tag's oldest");
    }
    send_within(&mut framed, Frame::HelloOk { last_seq }, ctx.idle_timeout).await?;

    let mut in_flight = FuturesOrdered::new();
    let max_in_flight = match ctx.commit.is_remote() {
        true => MAX_IN_FLIGHT_ON_A_STREAM,
        false => MAX_IN_FLIGHT,
    };
    let mut reading_open = true;
    // Made once: a fresh `cancelled()` each turn of the loop would register and unregister a
    // waiter with the token (two lock round trips) for every frame.
    let superseded_wait = superseded.clone().cancelled_owned();
    tokio::pin!(superseded_wait);
    // Without an idle timeout the timer is never polled; any duration does.
    let idle = tokio::time::sleep(ctx.idle_timeout.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(idle);
    loop {
        if !reading_open && in_flight.is_empty() {
            return Ok(());
        }
        tokio::select! {
            frame = framed.next(), if reading_open && in_flight.len() < max_in_flight => {
                if let Some(limit) = ctx.idle_timeout {
                    idle.as_mut().reset(Instant::now() + limit);
                }
                match frame {
                    None => reading_open = false,
                    Some(Err(e)) => return Err(reject(&mut framed, rejected, e.code(), e.to_string()).await),
                    Some(Ok(Frame::Batch { seq, .. })) if seq > MAX_BATCH_SEQ => {
                        let msg = format!("batch seq {seq} is above the highest accepted, {MAX_BATCH_SEQ}; start a new session epoch");
                        let counter = &ctx.counters.seq_too_large;
                        return Err(reject(&mut framed, counter, ErrorCode::SeqTooLarge, msg).await);
                    }
                    Some(Ok(Frame::Batch { seq, readings })) => {
                        if let Err(refusal) = ctx.credentials.still_valid(&tag, generation) {
                            let code = refusal.code();
                            return Err(reject(&mut framed, rejected, code, refusal.to_string()).await);
                        }
                        let batch = Batch { tag: tag.clone(), epoch, seq, arrival_ms: now_ms(), readings };
                        let commit = ctx.commit.clone();
                        in_flight.push_back(async move { (seq, commit.append(batch).await) });
                    }
                    Some(Ok(Frame::Hello { .. })) => {
                        let msg = "a second hello on one connection".to_string();
                        return Err(reject(&mut framed, rejected, ErrorCode::SecondHello, msg).await);
                    }
                    Some(Ok(other)) => {
                        let msg = format!("a tag may not send a {} frame", other.frame_type().as_str());
                        return Err(reject(&mut framed, rejected, ErrorCode::UnexpectedFrame, msg).await);
                    }
                }
            },
            Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                // Every answer ready now goes out in one write: a group commit often completes
                // several of a connection's batches at once.
                let mut next = Some(first);
                while let Some((seq, outcome)) = next.take() {
                    match outcome {
                        Ok(outcome) => {
                            if outcome == AppendOutcome::Duplicate {
                                ctx.duplicate_batches.fetch_add(1, Ordering::Relaxed);
                            }
                            within(framed.feed(Frame::Ack { seq }), ctx.idle_timeout).await?;
                        }
                        Err(e @ LogError::StaleEpoch { .. }) => {
                            let counter = &ctx.counters.stale_epoch;
                            return Err(reject(&mut framed, counter, ErrorCode::StaleEpoch, e.to_string()).await);
                        }
                        Err(e) => {
                            let msg = format!("batch {seq} could not be stored: {e}");
                            let _ = reject(&mut framed, rejected, ErrorCode::Internal, msg.clone()).await;
                            return Err(ConnectionError::Log(msg));
                        }
                    }
                    next = in_flight.next().now_or_never().flatten();
                }
                within(SinkExt::<Frame>::flush(&mut framed), ctx.idle_timeout).await?;
            },
            _ = &mut superseded_wait => {
                let msg = format!("a newer connection of tag '{tag}' took this one's place");
                let counter = &ctx.counters.superseded;
                return Err(reject(&mut framed, counter, ErrorCode::Superseded, msg).await);
            },
            _ = &mut idle, if ctx.idle_timeout.is_some() && in_flight.is_empty() => {
                let msg = format!("nothing received for {} ms", ctx.idle_timeout.map_or(0, |t| t.as_millis()));
                let counter = &ctx.counters.idle_timeouts;
                return Err(reject(&mut framed, counter, ErrorCode::IdleTimeout, msg).await);
            },
            else => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{
        EffectiveLimits, HttpConfig, IngestConfig, IngestTransport, TagCredentials,
    };
    use crate::log::{CommitHandle, DedupState, LogResult, RemoteLog};
    use crate::model::{ControlRecord, Reading, ReadingBody};
    use crate::wire::{tag_secret, Frame, FrameCodec, PROTOCOL_VERSION};
    use std::sync::{Arc, Mutex};

    /// A stream whose publish of batch 2 fails after a while; it notes every batch it is given.
    #[derive(Default)]
    struct FlakyStream {
        published: Mutex<Vec<u64>>,
    }

    impl RemoteLog for FlakyStream {
        fn append(&self, batch: Batch) -> futures::future::BoxFuture<'_, LogResult<AppendOutcome>> {
            Box::pin(async move {
                self.published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(batch.seq);
                if batch.seq == 2 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(LogError::Remote("publish timed out".into()));
                }
                Ok(AppendOutcome::Stored {
                    record: batch.seq - 1,
                })
            })
        }

        fn append_control(
            &self,
            _control: ControlRecord,
        ) -> futures::future::BoxFuture<'_, LogResult<u64>> {
            Box::pin(async { Err(LogError::Remote("not in this test".into())) })
        }

        fn compact<'a>(
            &'a self,
            _windows: &'a crate::log::TagWindows,
        ) -> futures::future::BoxFuture<'a, LogResult<crate::log::CompactReport>> {
            Box::pin(async { Err(LogError::Remote("not in this test".into())) })
        }

        fn stored_records(
            &self,
        ) -> futures::future::BoxFuture<'_, LogResult<crate::log::committer::RecordStream<'_>>>
        {
            Box::pin(async { Err(LogError::Remote("not in this test".into())) })
        }
    }

    fn batch(seq: u64) -> Frame {
        Frame::Batch {
            seq,
            readings: vec![Reading {
                t_ms: 1_800_000_000_000 + seq as i64 * 60_000,
                battery_pct: Some(90),
                body: ReadingBody::Rf { in_range: true },
            }],
        }
    }

    /// Cluster mode: when a batch's publish fails, nothing the tag sent after it is published,
    /// so the next hello's `last_seq` (the highest stored) never passes over the lost one.
    #[tokio::test]
    async fn on_a_stream_nothing_after_a_failed_batch_is_published() {
        let key = b"connection-test-key-0123456789abcdef".to_vec();
        let stream = Arc::new(FlakyStream::default());
        let commit = CommitHandle::remote(stream.clone(), DedupState::default());
        let config = IngestConfig::default();
        let limits = EffectiveLimits::compute(&config, &HttpConfig::default(), None);
        let ctx = Arc::new(IngestContext::new(
            commit,
            TagCredentials::key_only(key.clone()),
            IngestTransport::plain(),
            1 << 20,
            &config,
            limits,
        ));
        let slot = ctx.slots.try_admit().expect("a slot");
        let (client, server) = tokio::io::duplex(1 << 16);
        let served = {
            let ctx = ctx.clone();
            tokio::spawn(async move { serve_connection(server, &ctx, slot).await })
        };
        let mut tag = Framed::new(client, FrameCodec::default());
        tag.send(Frame::Hello {
            protocol_version: PROTOCOL_VERSION,
            tag: "T1".into(),
            secret: tag_secret(&key, "T1"),
            epoch: 0,
        })
        .await
        .unwrap();
        assert!(matches!(tag.next().await, Some(Ok(Frame::HelloOk { .. }))));
        // The tag's window: three batches sent without waiting.
        for seq in 1..=3 {
            tag.send(batch(seq)).await.unwrap();
        }
        let mut answers = Vec::new();
        while let Some(Ok(frame)) = tag.next().await {
            answers.push(frame);
        }
        let _ = served.await;
        assert!(matches!(answers[0], Frame::Ack { seq: 1 }), "{answers:?}");
        assert!(
            matches!(
                answers[1],
                Frame::Error {
                    code: ErrorCode::Internal,
                    ..
                }
            ),
            "{answers:?}"
        );
        assert_eq!(answers.len(), 2, "{answers:?}");
        let published = stream.published.lock().unwrap().clone();
        assert_eq!(published, vec![1, 2], "batch 3 must not be published");
    }
}
