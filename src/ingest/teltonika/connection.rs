//! One Teltonika tracker's connection: the IMEI handshake (the device must be bound to a tag,
//! the tag not revoked, and over mutual TLS the certificate must name the IMEI), then AVL
//! packets, each mapped to readings, appended to the log as one batch of the bound tag and
//! acknowledged with its record count only once durable.
//!
//! The protocol has no sequence numbers: a device that gets no acknowledgement sends the same
//! records again. Each connection therefore opens a new session epoch of the tag (numbering its
//! packets 1, 2, …), so a late append of a connection the device has left is refused as stale
//! and never acknowledged; and a packet equal to the last one stored for the tag (a resend after
//! a lost acknowledgement) is acknowledged again without being stored twice.

use super::TeltonikaContext;
use crate::devices::teltonika::{
    readings_of, AvlPacket, DeviceMessage, Incoming, ServerCodec, ServerReply, TeltonikaStreamError,
};
use crate::ingest::connection::now_ms;
use crate::ingest::limits::ConnectionSlot;
use crate::ingest::listener::{IngestContext, ERROR_WRITE_TIMEOUT};
use crate::ingest::transport::PeerIdentity;
use crate::log::{AppendOutcome, LogError};
use crate::model::{Batch, DeviceProtocol};
use futures::{SinkExt, StreamExt};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// Read buffer a tracker connection starts with.
const INITIAL_READ_BUFFER_BYTES: usize = 256;

/// Why a tracker's connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("tracker stream: {0}")]
    Stream(#[from] TeltonikaStreamError),
    #[error("no IMEI within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("refused: {0}")]
    Refused(String),
    #[error("nothing received for {0:?}")]
    Idle(Duration),
    #[error("records could not be stored: {0}")]
    Log(String),
    #[error("timed out writing to the tracker")]
    WriteTimeout,
}

/// A packet's identity for recognising a resend: equal packets hash equal.
fn fingerprint(packet: &AvlPacket) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    packet.hash(&mut hasher);
    hasher.finish()
}

/// Sends `reply`, giving up after `limit` (a device that stops reading cannot hold the task).
async fn send_within<S>(
    framed: &mut Framed<S, ServerCodec>,
    reply: ServerReply,
    limit: Duration,
) -> Result<(), TrackerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(limit, framed.send(reply)).await {
        Ok(sent) => Ok(sent?),
        Err(_) => Err(TrackerError::WriteTimeout),
    }
}

/// Refuses the handshake (answer 0x00, best effort) and ends the connection.
async fn refuse_imei<S>(framed: &mut Framed<S, ServerCodec>, why: String) -> TrackerError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = send_within(framed, ServerReply::ImeiRefused, ERROR_WRITE_TIMEOUT).await;
    TrackerError::Refused(why)
}

/// Serves one tracker connection holding `slot`, over a transport that established `peer`.
pub async fn serve_tracker<S>(
    socket: S,
    peer: &PeerIdentity,
    ctx: &IngestContext,
    devices: &TeltonikaContext,
    mut slot: ConnectionSlot,
) -> Result<(), TrackerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let counters = &devices.counters;
    // A small read buffer to start with (it grows to a packet's size as one arrives): an idle
    // tracker then holds little memory (Framed's default would be 8 KiB each).
    let mut framed = Framed::with_capacity(
        socket,
        ServerCodec::new(devices.max_data_bytes),
        INITIAL_READ_BUFFER_BYTES,
    );
    let first = tokio::time::timeout(ctx.hello_timeout, framed.next())
        .await
        .map_err(|_| {
            ctx.counters.hello_timeouts.fetch_add(1, Ordering::Relaxed);
            TrackerError::HandshakeTimeout(ctx.hello_timeout)
        })?;
    let imei = match first {
        None => return Ok(()),
        Some(Ok(Incoming::Message(DeviceMessage::Imei(imei)))) => imei,
        Some(Ok(other)) => {
            counters.refused_handshakes.fetch_add(1, Ordering::Relaxed);
            return Err(refuse_imei(
                &mut framed,
                format!("expected an IMEI first, got {other:?}"),
            )
            .await);
        }
        Some(Err(e)) => {
            counters.refused_handshakes.fetch_add(1, Ordering::Relaxed);
            return Err(refuse_imei(&mut framed, e.to_string()).await);
        }
    };
    let device = imei.as_str();
    if !peer.permits(device) {
        counters.refused_handshakes.fetch_add(1, Ordering::Relaxed);
        let why = format!("the client certificate does not name IMEI {device}");
        return Err(refuse_imei(&mut framed, why).await);
    }
    let protocol = DeviceProtocol::Teltonika;
    let (tag, generation) = match ctx.credentials.authenticate_device(protocol, device) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            let counter = match refusal {
                crate::ingest::CredentialRefusal::UnknownDevice { .. } => &counters.unknown_devices,
                _ => &counters.refused_handshakes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(refuse_imei(&mut framed, refusal.to_string()).await);
        }
    };
    let epoch = devices.open_session(&tag, ctx.commit.position(&tag).0);
    let (superseded, _) = slot.authenticate(&tag);
    let write_limit = ctx.idle_timeout.unwrap_or(ERROR_WRITE_TIMEOUT);
    send_within(&mut framed, ServerReply::ImeiAccepted, write_limit).await?;
    counters.sessions.fetch_add(1, Ordering::Relaxed);

    let mut seq = 0u64;
    let idle_limit = ctx.idle_timeout.unwrap_or(Duration::from_secs(3600));
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(idle_limit, framed.next()) => next,
            _ = superseded.cancelled() => {
                ctx.counters.superseded.fetch_add(1, Ordering::Relaxed);
                return Err(TrackerError::Refused("a newer connection of the device took this one's place".into()));
            }
        };
        let next = match next {
            Ok(next) => next,
            Err(_) if ctx.idle_timeout.is_some() => {
                ctx.counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(TrackerError::Idle(idle_limit));
            }
            Err(_) => continue,
        };
        let packet = match next {
            None => return Ok(()),
            Some(Ok(Incoming::Message(DeviceMessage::Avl(packet)))) => packet,
            Some(Ok(Incoming::Refused(refused))) => {
                // Framed whole, content refused: nothing stored, the device sends it again.
                counters.refused_packets.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%device, error = %refused, "AVL packet refused");
                send_within(&mut framed, ServerReply::Ack { records: 0 }, write_limit).await?;
                continue;
            }
            // (The codec yields an IMEI only before the first packet.)
            Some(Ok(Incoming::Message(DeviceMessage::Imei(_)))) => {
                counters.refused_packets.fetch_add(1, Ordering::Relaxed);
                return Err(TrackerError::Refused("a second IMEI".into()));
            }
            // Framing lost (preamble, length): close; the device reconnects and resends.
            Some(Err(e)) => {
                counters.refused_packets.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        if let Err(refusal) = ctx
            .credentials
            .device_still_valid(protocol, device, &tag, generation)
        {
            counters.refused_handshakes.fetch_add(1, Ordering::Relaxed);
            return Err(TrackerError::Refused(refusal.to_string()));
        }
        let records = u32::try_from(packet.records.len()).unwrap_or(u32::MAX);
        let print = fingerprint(&packet);
        if devices.is_last_stored(&tag, print) {
            counters.resent_packets.fetch_add(1, Ordering::Relaxed);
            send_within(&mut framed, ServerReply::Ack { records }, write_limit).await?;
            continue;
        }
        let readings: Vec<_> = packet
            .records
            .iter()
            .flat_map(|r| readings_of(r, &devices.mapping))
            .collect();
        counters.packets.fetch_add(1, Ordering::Relaxed);
        counters
            .records
            .fetch_add(u64::from(records), Ordering::Relaxed);
        if !readings.is_empty() {
            seq += 1;
            let batch = Batch {
                tag: tag.clone(),
                epoch,
                seq,
                arrival_ms: now_ms(),
                readings,
            };
            match ctx.commit.append(batch).await {
                Ok(AppendOutcome::Duplicate) => {
                    ctx.duplicate_batches.fetch_add(1, Ordering::Relaxed);
                }
                Ok(AppendOutcome::Stored { .. }) => {}
                Err(e @ LogError::StaleEpoch { .. }) => {
                    // A newer connection of the device took over: it resends what this one
                    // could not acknowledge.
                    ctx.counters.stale_epoch.fetch_add(1, Ordering::Relaxed);
                    return Err(TrackerError::Log(e.to_string()));
                }
                Err(e) => return Err(TrackerError::Log(e.to_string())),
            }
        }
        devices.note_stored(&tag, print);
        send_within(&mut framed, ServerReply::Ack { records }, write_limit).await?;
    }
}
