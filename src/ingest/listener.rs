//! Accepts tag connections and spawns a [`connection`](super::connection) task for each.

use super::connection::serve_connection_as;
use super::credentials::TagCredentials;
use super::transport::IngestTransport;
use crate::log::CommitHandle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every connection needs.
pub struct IngestContext {
    pub commit: CommitHandle,
    /// The tag key and each tag's credential generation / revocation.
    pub credentials: TagCredentials,
    /// Plain TCP or TLS (with optional client certificates).
    pub transport: IngestTransport,
    pub max_frame_bytes: usize,
    pub connections: AtomicU64,
    pub rejected_frames: AtomicU64,
    pub duplicate_batches: AtomicU64,
}

/// Accepts connections until the listener fails.
pub async fn run_listener(listener: TcpListener, ctx: Arc<IngestContext>) -> std::io::Result<()> {
    loop {
        let (socket, peer) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        ctx.connections.fetch_add(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let (stream, identity) = match ctx.transport.accept(socket).await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "tag transport refused");
                    return;
                }
            };
            if let Err(e) = serve_connection_as(stream, &identity, &ctx).await {
                tracing::debug!(%peer, error = %e, "tag connection closed");
            }
        });
    }
}
