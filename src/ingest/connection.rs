//! One tag connection: hello (authenticated by the tag's current secret and, over mutual TLS,
//! its certificate), then pipelined batches, each acknowledged in order once durable. A tag
//! revoked or rotated while connected is refused at its next batch. Malformed input gets an error frame naming what was wrong, then the connection
//! closes; other tags are unaffected.

use super::listener::IngestContext;
use super::transport::PeerIdentity;
use crate::log::AppendOutcome;
use crate::model::Batch;
use crate::wire::{ErrorCode, Frame, FrameCodec, WireError, PROTOCOL_VERSION};
use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// Batches a connection may have waiting for durability before it stops reading.
const MAX_IN_FLIGHT: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection: {0}")]
    Wire(#[from] WireError),
    #[error("protocol error sent to tag: {0}")]
    Rejected(String),
    #[error("durable log failed: {0}")]
    Log(String),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn reject<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, FrameCodec>,
    ctx: &IngestContext,
    code: ErrorCode,
    message: String,
) -> ConnectionError {
    ctx.rejected_frames.fetch_add(1, Ordering::Relaxed);
    let _ = framed
        .send(Frame::Error {
            code,
            message: message.clone(),
        })
        .await;
    ConnectionError::Rejected(message)
}

/// Serves a tag with no client certificate (plain TCP, or TLS without one).
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    ctx: &IngestContext,
) -> Result<(), ConnectionError> {
    serve_connection_as(socket, &PeerIdentity::Anonymous, ctx).await
}

/// Serves a tag whose transport established `peer` (a verified client certificate must name
/// the hello's tag).
pub async fn serve_connection_as<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    peer: &PeerIdentity,
    ctx: &IngestContext,
) -> Result<(), ConnectionError> {
    let mut framed = Framed::new(
        socket,
        FrameCodec::with_max_frame_bytes(ctx.max_frame_bytes),
    );

    let (tag, generation) = match framed.next().await {
        None => return Ok(()),
        Some(Err(e)) => return Err(reject(&mut framed, ctx, e.code(), e.to_string()).await),
        Some(Ok(Frame::Hello {
            protocol_version,
            tag,
            secret,
        })) => {
            if protocol_version != PROTOCOL_VERSION {
                let msg = format!("protocol version {protocol_version} is not supported (server speaks {PROTOCOL_VERSION})");
                return Err(reject(&mut framed, ctx, ErrorCode::UnsupportedVersion, msg).await);
            }
            if !peer.permits(&tag) {
                let msg = format!("the client certificate does not name tag '{tag}'");
                return Err(reject(&mut framed, ctx, ErrorCode::IdentityMismatch, msg).await);
            }
            match ctx.credentials.authenticate(&tag, &secret) {
                Ok(generation) => (tag, generation),
                Err(refusal) => {
                    let code = refusal.code();
                    return Err(reject(&mut framed, ctx, code, refusal.to_string()).await);
                }
            }
        }
        Some(Ok(other)) => {
            let msg = format!(
                "expected a hello frame first, got {}",
                other.frame_type().as_str()
            );
            return Err(reject(&mut framed, ctx, ErrorCode::BatchBeforeHello, msg).await);
        }
    };
    framed
        .send(Frame::HelloOk {
            last_seq: ctx.commit.last_seq(&tag),
        })
        .await?;

    let mut in_flight = FuturesOrdered::new();
    let mut reading_open = true;
    loop {
        tokio::select! {
            frame = framed.next(), if reading_open && in_flight.len() < MAX_IN_FLIGHT => match frame {
                None => reading_open = false,
                Some(Err(e)) => return Err(reject(&mut framed, ctx, e.code(), e.to_string()).await),
                Some(Ok(Frame::Batch { seq, readings })) => {
                    if let Err(refusal) = ctx.credentials.still_valid(&tag, generation) {
                        let code = refusal.code();
                        return Err(reject(&mut framed, ctx, code, refusal.to_string()).await);
                    }
                    let batch = Batch { tag: tag.clone(), seq, arrival_ms: now_ms(), readings };
                    let commit = ctx.commit.clone();
                    in_flight.push_back(async move { (seq, commit.append(batch).await) });
                }
                Some(Ok(Frame::Hello { .. })) => {
                    let msg = "a second hello on one connection".to_string();
                    return Err(reject(&mut framed, ctx, ErrorCode::SecondHello, msg).await);
                }
                Some(Ok(other)) => {
                    let msg = format!("a tag may not send a {} frame", other.frame_type().as_str());
                    return Err(reject(&mut framed, ctx, ErrorCode::UnexpectedFrame, msg).await);
                }
            },
            Some((seq, outcome)) = in_flight.next(), if !in_flight.is_empty() => match outcome {
                Ok(outcome) => {
                    if outcome == AppendOutcome::Duplicate {
                        ctx.duplicate_batches.fetch_add(1, Ordering::Relaxed);
                    }
                    framed.send(Frame::Ack { seq }).await?;
                }
                Err(e) => {
                    let msg = format!("batch {seq} could not be stored: {e}");
                    let _ = reject(&mut framed, ctx, ErrorCode::Internal, msg.clone()).await;
                    return Err(ConnectionError::Log(msg));
                }
            },
            else => return Ok(()),
        }
    }
}
