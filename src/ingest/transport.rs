//! What a tag connection runs over: plain TCP (the default) or TLS, and the identity a verified
//! client certificate gives the tag. [`IngestTransport::accept`] turns an accepted `TcpStream`
//! into a [`TagStream`], running the TLS handshake under a timeout.

use crate::tls::{peer_identities, IngestTlsConfig, TlsError};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A tag's byte stream, plain or TLS.
pub enum TagStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Who the transport says the peer is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PeerIdentity {
    /// No client certificate (plain TCP, or TLS without one).
    #[default]
    Anonymous,
    /// A client certificate verified against the configured CA, naming these identities (its
    /// subject CNs and DNS subject alternative names).
    Certificate(Vec<String>),
}

impl PeerIdentity {
    /// Whether the certificate (if any) names `tag`. Without a certificate there is nothing to
    /// contradict the hello, so it is `true`; whether a certificate is required at all is the
    /// TLS handshake's decision (`require_client_cert`).
    pub fn permits(&self, tag: &str) -> bool {
        match self {
            Self::Anonymous => true,
            Self::Certificate(names) => names.iter().any(|name| name == tag),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("TLS handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
}

/// Plain or TLS, as configured for the tag port.
#[derive(Clone, Default)]
pub struct IngestTransport {
    tls: Option<(TlsAcceptor, Duration)>,
}

impl IngestTransport {
    /// Plain TCP.
    pub fn plain() -> Self {
        Self::default()
    }

    /// TLS from `[ingest.tls]` (certificate, key, optional client CA).
    pub fn tls(config: &IngestTlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            tls: Some((
                crate::tls::ingest_acceptor(config)?,
                Duration::from_millis(config.handshake_timeout_ms),
            )),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The stream to speak the tag protocol over, and who the peer's certificate says it is.
    pub async fn accept(
        &self,
        socket: TcpStream,
    ) -> Result<(TagStream, PeerIdentity), TransportError> {
        let Some((acceptor, timeout)) = &self.tls else {
            return Ok((TagStream::Plain(socket), PeerIdentity::Anonymous));
        };
        let stream = tokio::time::timeout(*timeout, acceptor.accept(socket))
            .await
            .map_err(|_| TransportError::HandshakeTimeout(*timeout))?
            .map_err(TransportError::Handshake)?;
        let identity = match peer_identities(&stream) {
            Some(names) => PeerIdentity::Certificate(names),
            None => PeerIdentity::Anonymous,
        };
        Ok((TagStream::Tls(Box::new(stream)), identity))
    }
}

impl AsyncRead for TagStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TagStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
