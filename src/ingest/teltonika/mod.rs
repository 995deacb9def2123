//! The Teltonika listener: trackers speaking Codec 8 / 8 Extended over TCP (`devices::teltonika`
//! decodes them) connect here, plain on a declared private network or over mutual TLS, and are
//! accepted only as a device bound to a tag (`credentials`). Their records reach the same log,
//! with the same durability, as the native tags' batches: rules and replay do not know which
//! protocol a reading came by. Connection limits are the tag port's (one `ConnectionSlots`).

pub mod config;
pub mod connection;

pub use config::TeltonikaConfig;
pub use connection::{serve_tracker, TrackerError};

use super::accept::{accept_with_backoff, AcceptStats};
use super::listener::IngestContext;
use super::transport::IngestTransport;
use crate::devices::teltonika::MappingConfig;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the Teltonika listener counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct TeltonikaCounters {
    /// Handshakes accepted.
    pub sessions: AtomicU64,
    /// Handshakes from an IMEI bound to no tag (answered 0x00).
    pub unknown_devices: AtomicU64,
    /// Other refused handshakes: a malformed IMEI, a certificate not naming it, a revoked tag;
    /// and sessions ended because the device was unbound or its tag revoked.
    pub refused_handshakes: AtomicU64,
    /// AVL packets stored (or holding no reading) and acknowledged.
    pub packets: AtomicU64,
    /// Their records.
    pub records: AtomicU64,
    /// Packets refused (acknowledged with 0 records, or the connection closed).
    pub refused_packets: AtomicU64,
    /// Resends of the last stored packet, acknowledged again without storing.
    pub resent_packets: AtomicU64,
}

/// Per tag: the last session epoch a connection opened and the last packet stored.
#[derive(Debug, Default, Clone, Copy)]
struct DeviceSession {
    epoch: u32,
    last_stored: Option<u64>,
}

/// What every tracker connection shares.
pub struct TeltonikaContext {
    pub transport: IngestTransport,
    pub max_data_bytes: usize,
    pub mapping: MappingConfig,
    pub counters: Arc<TeltonikaCounters>,
    pub accept: AcceptStats,
    sessions: Mutex<HashMap<String, DeviceSession>>,
}

impl TeltonikaContext {
    pub fn new(config: &TeltonikaConfig, transport: IngestTransport) -> Self {
        Self {
            transport,
            max_data_bytes: config.max_data_bytes,
            mapping: MappingConfig::default(),
            counters: Arc::default(),
            accept: AcceptStats::default(),
            sessions: Mutex::default(),
        }
    }

    /// Opens a session of `tag`: the epoch above both the log's current one and any a
    /// connection opened before (two connections racing never share one).
    pub(crate) fn open_session(&self, tag: &str, log_epoch: u32) -> u32 {
        let mut sessions = self.sessions.lock();
        let session = sessions.entry(tag.to_string()).or_default();
        session.epoch = session.epoch.max(log_epoch).saturating_add(1);
        session.epoch
    }

    /// Whether `fingerprint` is the last packet stored for `tag` (a resend).
    pub(crate) fn is_last_stored(&self, tag: &str, fingerprint: u64) -> bool {
        self.sessions
            .lock()
            .get(tag)
            .is_some_and(|s| s.last_stored == Some(fingerprint))
    }

    pub(crate) fn note_stored(&self, tag: &str, fingerprint: u64) {
        if let Some(session) = self.sessions.lock().get_mut(tag) {
            session.last_stored = Some(fingerprint);
        }
    }
}

/// Accepts tracker connections forever (accept errors survived with backoff), each served by its
/// own task within the tag port's connection limits.
pub async fn run_teltonika_listener(
    listener: TcpListener,
    ctx: Arc<IngestContext>,
    devices: Arc<TeltonikaContext>,
) -> std::convert::Infallible {
    loop {
        let (socket, peer) = accept_with_backoff(&listener, "teltonika", &devices.accept).await;
        let _ = socket.set_nodelay(true);
        ctx.connections.fetch_add(1, Ordering::Relaxed);
        let slot = match ctx.slots.try_admit() {
            Ok(slot) => slot,
            Err(_) => {
                // The protocol has no "busy" answer: closing makes the device retry later.
                ctx.counters.refused_total.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let (ctx, devices) = (ctx.clone(), devices.clone());
        tokio::spawn(async move {
            let (stream, identity) = match devices.transport.accept(socket).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "tracker transport refused");
                    return;
                }
            };
            if let Err(e) = serve_tracker(stream, &identity, &ctx, &devices, slot).await {
                tracing::debug!(%peer, error = %e, "tracker connection closed");
            }
        });
    }
}
