//! Accepts tag connections and spawns a [`connection`](super::connection) task for each — or,
//! when the connection limits are reached, answers `server_busy` and closes. Accept errors
//! (e.g. out of file descriptors) are survived with backoff: the listener never stops.

use super::accept::{accept_with_backoff, AcceptStats, HttpConnectionGauge};
use super::connection::serve_connection_as;
use super::credentials::TagCredentials;
use super::limits::{optional_ms, ConnectionSlots, EffectiveLimits, IngestConfig, Refusal};
use super::transport::IngestTransport;
use crate::log::CommitHandle;
use crate::wire::{encode_frame, ErrorCode, Frame};
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Longest wait to hand a peer a refusal or closing error frame: a peer that does not read
/// cannot hold the connection open.
pub(crate) const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// What every connection needs.
pub struct IngestContext {
    pub commit: CommitHandle,
    /// The tag key and each tag's credential generation / revocation.
    pub credentials: TagCredentials,
    /// Plain TCP or TLS (with optional client certificates).
    pub transport: IngestTransport,
    pub max_frame_bytes: usize,
    /// Closes connections that do not say hello in time.
    pub hello_timeout: Duration,
    /// Closes authenticated connections idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Open connections and the per-tag registry.
    pub slots: Arc<ConnectionSlots>,
    /// Connections accepted (counter).
    pub connections: AtomicU64,
    pub rejected_frames: AtomicU64,
    pub duplicate_batches: AtomicU64,
    pub counters: IngestCounters,
    pub accept: AcceptStats,
    /// The HTTP listener's counters and open-connection gauge, for `/metrics` (set at start).
    pub http_listener: OnceLock<(Arc<AcceptStats>, HttpConnectionGauge)>,
    /// The Teltonika listener's counters, for `/metrics` (set at start if it runs).
    pub teltonika: OnceLock<Arc<super::teltonika::TeltonikaCounters>>,
    /// The OsmAnd listener's counters, for `/metrics` (set at start if it runs).
    pub osmand: OnceLock<Arc<super::osmand::OsmandCounters>>,
}

/// Why connections ended early, for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Refused at accept with `server_busy`: too many unauthenticated connections.
    pub refused_unauthenticated: AtomicU64,
    /// Refused at accept with `server_busy`: too many tag connections.
    pub refused_total: AtomicU64,
    pub hello_timeouts: AtomicU64,
    pub idle_timeouts: AtomicU64,
    /// Connections closed because a newer one of the same tag took their place.
    pub superseded: AtomicU64,
    /// Batches refused because their seq is above `MAX_BATCH_SEQ`.
    pub seq_too_large: AtomicU64,
    /// Hellos and batches refused for an epoch older than the tag's current one.
    pub stale_epoch: AtomicU64,
}

impl IngestContext {
    /// A context with the limits of `config` capped to this process's descriptor limit.
    pub fn new(
        commit: CommitHandle,
        credentials: TagCredentials,
        transport: IngestTransport,
        max_frame_bytes: usize,
        config: &IngestConfig,
        limits: EffectiveLimits,
    ) -> Self {
        Self {
            commit,
            credentials,
            transport,
            max_frame_bytes,
            hello_timeout: Duration::from_millis(config.hello_timeout_ms.max(1)),
            idle_timeout: optional_ms(config.idle_timeout_ms),
            slots: Arc::new(ConnectionSlots::new(limits)),
            connections: AtomicU64::new(0),
            rejected_frames: AtomicU64::new(0),
            duplicate_batches: AtomicU64::new(0),
            counters: IngestCounters::default(),
            accept: AcceptStats::default(),
            http_listener: OnceLock::new(),
            teltonika: OnceLock::new(),
            osmand: OnceLock::new(),
        }
    }

    /// The ingest lines of `/metrics` (Prometheus text format).
    /// Writes the connection metrics into `/metrics`.
    pub fn write_metrics(&self, e: &mut crate::metrics::exposition::Exposition) {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let limits = self.slots.limits();
        e.gauge(
            "tagstream_ingest_unauthenticated_connections",
            "Tag connections open and waiting for their hello.",
            self.slots.unauthenticated() as f64,
        );
        e.gauge(
            "tagstream_ingest_authenticated_connections",
            "Tag connections open and authenticated.",
            self.slots.authenticated() as f64,
        );
        e.gauge(
            "tagstream_ingest_max_connections",
            "The limit on tag connections in force (capped to fit the open-file limit).",
            limits.max_connections as f64,
        );
        e.gauge(
            "tagstream_ingest_max_unauthenticated_connections",
            "The limit on connections waiting for their hello in force.",
            limits.max_unauthenticated as f64,
        );
        e.counter(
            "tagstream_ingest_refused_unauthenticated_total",
            "Connections refused (server_busy) because too many were waiting for their hello.",
            g(&c.refused_unauthenticated),
        );
        e.counter(
            "tagstream_ingest_refused_connections_total",
            "Connections refused (server_busy) because the connection limit was reached.",
            g(&c.refused_total),
        );
        e.counter(
            "tagstream_ingest_hello_timeouts_total",
            "Connections closed for sending no accepted hello in time.",
            g(&c.hello_timeouts),
        );
        e.counter(
            "tagstream_ingest_idle_timeouts_total",
            "Authenticated connections closed after the idle timeout.",
            g(&c.idle_timeouts),
        );
        e.counter(
            "tagstream_ingest_superseded_total",
            "Connections closed because a newer connection of the same tag took their place.",
            g(&c.superseded),
        );
        e.counter(
            "tagstream_ingest_seq_too_large_total",
            "Batches refused for a sequence number too close to the largest.",
            g(&c.seq_too_large),
        );
        e.counter(
            "tagstream_ingest_stale_epoch_total",
            "Hellos or batches refused for an epoch older than the tag's current one.",
            g(&c.stale_epoch),
        );
        e.counter(
            "tagstream_ingest_accept_errors_total",
            "accept() errors on the tag port, survived with backoff.",
            g(&self.accept.errors),
        );
        if let Some(t) = self.teltonika.get() {
            write_teltonika_metrics(e, t);
        }
        if let Some(o) = self.osmand.get() {
            write_osmand_metrics(e, o);
        }
        if let Some((stats, gauge)) = self.http_listener.get() {
            e.gauge(
                "tagstream_http_connections",
                "HTTP connections open.",
                gauge.open() as f64,
            );
            e.gauge(
                "tagstream_http_max_connections",
                "The limit on HTTP connections in force.",
                gauge.max() as f64,
            );
            e.counter(
                "tagstream_http_accept_errors_total",
                "accept() errors on the HTTP port, survived with backoff.",
                g(&stats.errors),
            );
        }
    }
}

/// The Teltonika listener's lines of `/metrics`.
fn write_teltonika_metrics(
    e: &mut crate::metrics::exposition::Exposition,
    t: &super::teltonika::TeltonikaCounters,
) {
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    e.counter(
        "tagstream_teltonika_sessions_total",
        "Teltonika handshakes accepted (a bound IMEI whose tag is not revoked).",
        g(&t.sessions),
    );
    e.counter(
        "tagstream_teltonika_unknown_devices_total",
        "Teltonika handshakes refused because the IMEI is bound to no tag.",
        g(&t.unknown_devices),
    );
    e.counter(
        "tagstream_teltonika_refused_handshakes_total",
        "Teltonika handshakes refused otherwise (malformed IMEI, certificate not naming it, revoked tag), and sessions ended by an unbinding or revocation.",
        g(&t.refused_handshakes),
    );
    e.counter(
        "tagstream_teltonika_packets_total",
        "Teltonika AVL packets stored and acknowledged.",
        g(&t.packets),
    );
    e.counter(
        "tagstream_teltonika_records_total",
        "Records of the Teltonika AVL packets stored.",
        g(&t.records),
    );
    e.counter(
        "tagstream_teltonika_refused_packets_total",
        "Teltonika AVL packets refused (bad CRC, codec, counts or framing): nothing stored from them.",
        g(&t.refused_packets),
    );
    e.counter(
        "tagstream_teltonika_resent_packets_total",
        "Resends of the last stored Teltonika packet, acknowledged again without storing.",
        g(&t.resent_packets),
    );
}

/// The OsmAnd listener's lines of `/metrics`.
fn write_osmand_metrics(
    e: &mut crate::metrics::exposition::Exposition,
    o: &super::osmand::OsmandCounters,
) {
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    e.counter(
        "tagstream_osmand_reports_total",
        "OsmAnd reports stored (or holding no reading) and answered 200.",
        g(&o.reports),
    );
    e.counter(
        "tagstream_osmand_readings_total",
        "Readings stored from OsmAnd reports.",
        g(&o.readings),
    );
    e.counter(
        "tagstream_osmand_refused_reports_total",
        "OsmAnd reports refused as malformed: nothing stored from them.",
        g(&o.refused_reports),
    );
    e.counter(
        "tagstream_osmand_unknown_devices_total",
        "OsmAnd reports from a device id bound to no tag.",
        g(&o.unknown_devices),
    );
    e.counter(
        "tagstream_osmand_refused_devices_total",
        "OsmAnd reports refused for a missing or wrong token or a revoked tag.",
        g(&o.refused_devices),
    );
}

/// Accepts connections forever: accept errors are retried with backoff (see
/// [`accept_with_backoff`]), so no client can stop the listener.
pub async fn run_listener(
    listener: TcpListener,
    ctx: Arc<IngestContext>,
) -> std::convert::Infallible {
    loop {
        let (socket, peer) = accept_with_backoff(&listener, "ingest", &ctx.accept).await;
        let _ = socket.set_nodelay(true);
        ctx.connections.fetch_add(1, Ordering::Relaxed);
        match ctx.slots.try_admit() {
            Ok(slot) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    // The TLS handshake (if any) runs holding the unauthenticated slot.
                    let (stream, identity) = match ctx.transport.accept(socket).await {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "tag transport refused");
                            return;
                        }
                    };
                    if let Err(e) = serve_connection_as(stream, &identity, &ctx, slot).await {
                        tracing::debug!(%peer, error = %e, "tag connection closed");
                    }
                });
            }
            Err(refusal) => {
                let counter = match refusal {
                    Refusal::Unauthenticated => &ctx.counters.refused_unauthenticated,
                    Refusal::Total => &ctx.counters.refused_total,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                refuse_busy(socket, refusal);
            }
        }
    }
}

/// Tells a connection the server is busy and closes it. The frame is written without waiting
/// (a fresh socket's send buffer always has room for it), so refusing never holds a descriptor.
fn refuse_busy(socket: TcpStream, refusal: Refusal) {
    let message = match refusal {
        Refusal::Unauthenticated => "too many connections waiting to authenticate; retry later",
        Refusal::Total => "too many tag connections; retry later",
    };
    let mut out = BytesMut::new();
    encode_frame(&Frame::error(ErrorCode::ServerBusy, message), &mut out);
    let _ = socket.try_write(&out);
}
