//! TLS for the tag port and the HTTP API (rustls with the `ring` provider): loading certificate
//! and key PEM files named in the config into a server configuration, optional client
//! certificates checked against a CA (mutual TLS for tags), the identity a client certificate
//! names, and [`TlsListener`], an `axum` listener that serves HTTPS.
//!
//! Plain TCP stays the default; TLS is on when the config names a certificate and key
//! (`[ingest.tls]`, `[http.tls]`, see `docs/formats.md`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Default limit on a TLS handshake: a client that has not finished it by then is dropped, so
/// half-open handshakes cannot pile up.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// TLS on the tag port (`[ingest.tls]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IngestTlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that tag client certificates must chain to. Set: a tag presenting
    /// a certificate must present one from this CA, naming its tag id (CN or DNS SAN).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: refuse tags without a client certificate (mutual TLS required).
    #[serde(default)]
    pub require_client_cert: bool,
    /// How long a tag may take to finish the TLS handshake.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

/// HTTPS on the API (`[http.tls]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
    /// How long a client may take to finish the TLS handshake.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading certificates from {path}: {message}")]
    Certificates { path: PathBuf, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("reading the private key from {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("client CA {path}: {message}")]
    ClientCa { path: PathBuf, message: String },
    #[error("require_client_cert needs client_ca_file (the CA tag certificates must chain to)")]
    RequireWithoutCa,
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The `ring` provider: it builds with just a C compiler (aws-lc-rs wants cmake). rustls marks
/// it deprecated only because it lacks post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Certificates {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A rustls server configuration from PEM files; with `client_ca`, client certificates are
/// verified against it (required if `require_client_cert`, else optional).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None if require_client_cert => return Err(TlsError::RequireWithoutCa),
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let ca_err = |message: String| TlsError::ClientCa {
                path: ca_path.to_path_buf(),
                message,
            };
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca_path)? {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| ca_err(e.to_string()))?)
        }
    };
    Ok(builder.with_single_cert(certs, key)?)
}

/// The tag port's acceptor from `[ingest.tls]`.
pub fn ingest_acceptor(config: &IngestTlsConfig) -> Result<TlsAcceptor, TlsError> {
    server_config(
        &config.cert_file,
        &config.key_file,
        config.client_ca_file.as_deref(),
        config.require_client_cert,
    )
    .map(|config| TlsAcceptor::from(Arc::new(config)))
}

/// The API's acceptor from `[http.tls]` (HTTP/1.1 over TLS).
pub fn http_acceptor(config: &HttpTlsConfig) -> Result<TlsAcceptor, TlsError> {
    let mut server = server_config(&config.cert_file, &config.key_file, None, false)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The names a verified client certificate gives its holder: the subject's common names and
/// the DNS names of its subject alternative names. Empty when there is no certificate (or it
/// cannot be parsed, which the verifier would already have refused).
pub fn certificate_identities(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_string());
            }
        }
    }
    names
}

/// The identities of the verified client certificate on a server-side TLS stream, if any.
pub fn peer_identities<IO>(stream: &TlsStream<IO>) -> Option<Vec<String>> {
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(certificate_identities)
}

/// Handshakes that may be in progress at once on a [`TlsListener`]; more wait for a slot.
const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// An `axum` listener serving HTTPS over an inner listener (e.g. `ingest::HttpListener`, which
/// bounds connections and survives accept errors): a task takes the inner listener's
/// connections and runs each handshake in its own task under a timeout, so one slow client never
/// holds up the others; finished sessions are handed to `axum::serve` through
/// [`axum::serve::Listener::accept`].
pub struct TlsListener<Io> {
    sessions: mpsc::Receiver<(TlsStream<Io>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl<Io> TlsListener<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new<L>(
        mut inner: L,
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    ) -> std::io::Result<Self>
    where
        L: axum::serve::Listener<Io = Io, Addr = SocketAddr>,
    {
        let local_addr = inner.local_addr()?;
        let (tx, sessions) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (io, peer) = inner.accept().await;
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            sessions,
            local_addr,
        })
    }
}

impl<Io> axum::serve::Listener for TlsListener<Io>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsStream<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.sessions.recv().await {
            Some(session) => session,
            // The accept task only ends when this listener is dropped; never resolve otherwise.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(cn: &str, dns: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn identities_are_the_common_name_and_dns_alternative_names() {
        let names = certificate_identities(&cert_with("T1", &["tag-t1.example", "T1b"]));
        assert_eq!(names, vec!["T1", "tag-t1.example", "T1b"]);
        let identity = crate::ingest::PeerIdentity::Certificate(names);
        assert!(identity.permits("T1"));
        assert!(identity.permits("T1b"));
        assert!(!identity.permits("T2"));
        assert!(!identity.permits("t1"));
        assert!(crate::ingest::PeerIdentity::Anonymous.permits("T2"));
        assert!(certificate_identities(&CertificateDer::from(vec![1u8, 2, 3])).is_empty());
    }

    #[test]
    fn the_config_names_tls_under_ingest_and_http() {
        let config: crate::config::ServerConfig = toml::from_str(
            "[ingest]\nhello_timeout_ms = 5000\n[ingest.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\nrequire_client_cert = true\n[http.tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
        )
        .unwrap();
        let ingest = config.ingest.tls.unwrap();
        assert_eq!(ingest.client_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(ingest.require_client_cert);
        assert_eq!(ingest.handshake_timeout_ms, DEFAULT_HANDSHAKE_TIMEOUT_MS);
        assert_eq!(config.http.tls.unwrap().key_file, PathBuf::from("k.pem"));
        assert!(crate::config::ServerConfig::default().ingest.tls.is_none());
    }

    #[test]
    fn missing_files_and_require_without_ca_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = server_config(&missing, &missing, None, false).unwrap_err();
        assert!(err.to_string().contains("none.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(
            server_config(&empty, &empty, None, false),
            Err(TlsError::NoCertificate { .. })
        ));
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key, None, false).is_ok());
        assert!(matches!(
            server_config(&cert, &key, None, true),
            Err(TlsError::RequireWithoutCa)
        ));
        assert!(server_config(&cert, &key, Some(&cert), true).is_ok());
    }
}
