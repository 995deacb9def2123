//! Accepts tag connections and spawns a [`connection`](super::connection) task for each.

use super::connection::serve_connection;
use crate::log::CommitHandle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every connection needs.
pub struct IngestContext {
    pub commit: CommitHandle,
    pub tag_key: Vec<u8>,
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
            if let Err(e) = serve_connection(socket, &ctx).await {
                tracing::debug!(%peer, error = %e, "tag connection closed");
            }
        });
    }
}
