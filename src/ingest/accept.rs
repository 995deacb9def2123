//! Accepting connections without ever giving up: [`accept_with_backoff`] survives every
//! `accept()` error (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...), counting and logging it
//! and backing off while the error persists, and [`HttpListener`] is the HTTP server's listener
//! built on it (an axum [`Listener`]) that also bounds the number of open HTTP connections and
//! closes idle ones.
//!
//! Why: a listener that returns its error ends the server, so a client able to exhaust the
//! process's file descriptors could stop it. Running out of descriptors is a passing state
//! (connections close, timeouts free them); waiting it out is the only right answer.

use axum::serve::Listener;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// First pause after a resource error; doubled while errors persist.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct AcceptStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// `accept()` errors survived (each logged).
    pub errors: AtomicU64,
}

/// Whether an accept error concerns only the connection being accepted (the peer gave up):
/// retried at once, without backing off.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Accepts the next connection, retrying every error: at once for errors of one connection,
/// after a growing pause (up to a second) for the others, which mean the process is out of
/// something (file descriptors, buffers, memory) that closing connections will give back.
pub async fn accept_with_backoff(
    listener: &TcpListener,
    name: &'static str,
    stats: &AcceptStats,
) -> (TcpStream, SocketAddr) {
    let mut pause = FIRST_BACKOFF;
    loop {
        match listener.accept().await {
            Ok(accepted) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                return accepted;
            }
            Err(error) => {
                let errors = stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if is_connection_error(&error) {
                    tracing::debug!(listener = name, %error, "accept: connection gone");
                    continue;
                }
                tracing::warn!(
                    listener = name,
                    %error,
                    errors_total = errors,
                    pause_ms = pause.as_millis() as u64,
                    "accept failed; retrying after a pause"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The HTTP server's listener: never fails (see [`accept_with_backoff`]), holds at most a
/// configured number of connections open (further ones wait in the listen queue) and closes a
/// connection idle for longer than the idle timeout.
pub struct HttpListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    stats: Arc<AcceptStats>,
}

impl HttpListener {
    pub fn new(
        listener: TcpListener,
        max_connections: usize,
        idle_timeout: Option<Duration>,
    ) -> Self {
        let max_connections = max_connections.max(1);
        Self {
            listener,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            idle_timeout,
            stats: Arc::new(AcceptStats::default()),
        }
    }

    /// The listener's counters (shared, for `/metrics`).
    pub fn stats(&self) -> Arc<AcceptStats> {
        Arc::clone(&self.stats)
    }

    /// A handle reporting how many HTTP connections are open.
    pub fn gauge(&self) -> HttpConnectionGauge {
        HttpConnectionGauge {
            permits: Arc::clone(&self.permits),
            max_connections: self.max_connections,
        }
    }
}

/// How many HTTP connections are open, read from the listener's semaphore.
#[derive(Clone)]
pub struct HttpConnectionGauge {
    permits: Arc<Semaphore>,
    max_connections: usize,
}

impl HttpConnectionGauge {
    pub fn open(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    pub fn max(&self) -> usize {
        self.max_connections
    }
}

impl Listener for HttpListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so this always yields a permit.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        let (stream, addr) = accept_with_backoff(&self.listener, "http", &self.stats).await;
        let _ = stream.set_nodelay(true);
        let io = GuardedStream {
            stream,
            _permit: permit,
            idle_timeout: self.idle_timeout,
            idle: self.idle_timeout.map(|t| Box::pin(tokio::time::sleep(t))),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted HTTP connection: holds its connection permit until dropped, and fails its
/// pending read or write with `TimedOut` once nothing has moved for the idle timeout.
pub struct GuardedStream {
    stream: TcpStream,
    _permit: Option<OwnedSemaphorePermit>,
    idle_timeout: Option<Duration>,
    idle: Option<Pin<Box<Sleep>>>,
}

impl GuardedStream {
    fn touch(&mut self) {
        if let (Some(sleep), Some(timeout)) = (self.idle.as_mut(), self.idle_timeout) {
            sleep.as_mut().reset(Instant::now() + timeout);
        }
    }

    /// `Ready(Err)` once the idle timer has fired (it registers the waker otherwise).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(sleep) = self.idle.as_mut() else {
            return Poll::Pending;
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP connection idle for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_http_listener_bounds_connections_and_closes_idle_ones() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = HttpListener::new(inner, 1, Some(Duration::from_millis(200)));
        let gauge = listener.gauge();
        let _first_client = TcpStream::connect(addr).await.unwrap();
        let (mut first, _) = listener.accept().await;
        assert_eq!(gauge.open(), 1);
        // A second connection is not accepted while the first holds the only permit.
        let _second_client = TcpStream::connect(addr).await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(second.is_err(), "accepted beyond the connection limit");
        // The idle first connection fails its read once the idle timeout passes.
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
            .await
            .expect("idle timeout fired");
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        drop(first);
        let (mut second, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("accepted once the first closed");
        second.write_all(b"x").await.unwrap();
        assert_eq!(listener.stats.accepted.load(Ordering::Relaxed), 2);
    }
}
