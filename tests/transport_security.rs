//! Transport security against the real binary: tags over TLS and the API over HTTPS, mutual TLS
//! (a tag's certificate must chain to the client CA and name its tag), per-tag credential
//! revocation and rotation (API and CLI) without a server key change or restart, and the start
//! refusing an empty or short tag key.

mod common;

use common::{add_user, bin, call, Server, ADMIN_TOKEN, TAG_KEY};
use futures::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tagstream::devices::teltonika::{DeviceCodec, DeviceMessage, Imei, ServerReply};
use tagstream::model::{Position, PositionSource, Reading, ReadingBody};
use tagstream::wire::{tag_secret, ErrorCode, Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

/// A CA and the certificates it signs, as PEM files in a directory.
struct Pki {
    dir: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca_cert,
            ca_key,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_cert.der().clone()
    }

    /// A certificate for `localhost` / 127.0.0.1; returns (cert file, key file).
    fn server(&self) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let (cert_file, key_file) = (self.dir.join("server.pem"), self.dir.join("server.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// A tag client certificate whose subject CN is `cn`.
    fn client(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

fn client_config(
    ca: CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).unwrap(),
        None => builder.with_no_client_auth(),
    })
}

async fn tls_connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// How the server answered a hello.
#[derive(Debug, PartialEq)]
enum HelloOutcome {
    Accepted,
    Refused(ErrorCode),
    /// The connection failed or closed without a frame (e.g. the TLS handshake was refused).
    Closed,
}

async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tag: &str,
    secret: &str,
) -> (HelloOutcome, Option<Framed<S, FrameCodec>>) {
    let mut framed = Framed::new(stream, FrameCodec::default());
    if framed.send(Frame::hello(tag, secret)).await.is_err() {
        return (HelloOutcome::Closed, None);
    }
    match tokio::time::timeout(Duration::from_secs(10), framed.next()).await {
        Ok(Some(Ok(Frame::HelloOk { .. }))) => (HelloOutcome::Accepted, Some(framed)),
        Ok(Some(Ok(Frame::Error { code, .. }))) => (HelloOutcome::Refused(code), None),
        Ok(other) => {
            assert!(
                !matches!(other, Some(Ok(_))),
                "unexpected answer to hello: {other:?}"
            );
            (HelloOutcome::Closed, None)
        }
        Err(_) => panic!("no answer to hello"),
    }
}

async fn tls_hello(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    tag: &str,
    secret: &str,
) -> HelloOutcome {
    match tls_connect(addr, config).await {
        Err(_) => HelloOutcome::Closed,
        Ok(stream) => hello(stream, tag, secret).await.0,
    }
}

fn fix(t_ms: i64) -> Reading {
    Reading {
        t_ms,
        battery_pct: Some(80),
        body: ReadingBody::Position(Position {
            lat_e7: 514_500_000,
            lon_e7: -25_900_000,
            precision_cm: 500,
            source: PositionSource::Gps,
            speed_ckmh: Some(0),
            heading_cdeg: Some(0),
            satellites: Some(9),
        }),
    }
}

async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, FrameCodec>,
) -> Option<Frame> {
    match tokio::time::timeout(Duration::from_secs(10), framed.next()).await {
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(_) => None,
        Err(_) => panic!("timed out waiting for a frame"),
    }
}

async fn send_acked<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, FrameCodec>,
    seq: u64,
) {
    framed
        .send(Frame::Batch {
            seq,
            readings: vec![fix(1_774_656_000_000 + seq as i64 * 60_000)],
        })
        .await
        .unwrap();
    assert_eq!(next_frame(framed).await, Some(Frame::Ack { seq }));
}

/// One HTTP/1.1 request over TLS; returns (status, body).
async fn https_get(addr: &str, config: Arc<rustls::ClientConfig>, path: &str) -> (u16, String) {
    let mut stream = tls_connect(addr, config).await.expect("HTTPS handshake");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A server may close without close_notify after `Connection: close`; what was read counts.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_upload_over_tls_and_the_api_answers_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "tagstream test CA");
    let (cert, key) = pki.server();
    let server = Server::start(
        &dir.path().join("data"),
        None,
        &[
            "--ingest-tls-cert",
            path_arg(&cert),
            "--ingest-tls-key",
            path_arg(&key),
            "--http-tls-cert",
            path_arg(&cert),
            "--http-tls-key",
            path_arg(&key),
        ],
    );
    let config = client_config(pki.ca_der(), None);
    // Clients that connect and never start the handshake hold up nobody (each handshake runs
    // in its own task, under a timeout).
    let _stalled_tag = TcpStream::connect(&server.ingest_addr).await.unwrap();
    let _stalled_http = TcpStream::connect(&server.http_addr).await.unwrap();

    let stream = tls_connect(&server.ingest_addr, config.clone())
        .await
        .expect("TLS handshake with the tag port");
    let (outcome, framed) = hello(stream, "T1", &tag_secret(TAG_KEY.as_bytes(), "T1")).await;
    assert_eq!(outcome, HelloOutcome::Accepted);
    let mut framed = framed.unwrap();
    for seq in 1..=3 {
        send_acked(&mut framed, seq).await;
    }

    // A plain-TCP hello to the TLS port gets no hello_ok.
    let plain = TcpStream::connect(&server.ingest_addr).await.unwrap();
    let (outcome, _) = hello(plain, "T1", &tag_secret(TAG_KEY.as_bytes(), "T1")).await;
    assert_eq!(outcome, HelloOutcome::Closed);

    let (status, body) = https_get(&server.http_addr, config.clone(), "/v1/stats").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = https_get(&server.http_addr, config, "/healthz").await;
    assert_eq!(status, 200);
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain_http = ureq::get(&format!("http://{}/healthz", server.http_addr))
        .timeout(Duration::from_secs(5))
        .call();
    assert!(plain_http.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_certificate_from_the_ca_that_names_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"), "tagstream test CA");
    let (cert, key) = pki.server();
    let server = Server::start(
        &dir.path().join("data"),
        None,
        &[
            "--ingest-tls-cert",
            path_arg(&cert),
            "--ingest-tls-key",
            path_arg(&key),
            "--ingest-client-ca",
            path_arg(&pki.ca_file()),
            "--require-client-cert",
        ],
    );
    let secret = |tag: &str| tag_secret(TAG_KEY.as_bytes(), tag);
    let addr = &server.ingest_addr;

    // The tag's own certificate: accepted, and it uploads.
    let t1 = client_config(pki.ca_der(), Some(pki.client("T1")));
    let stream = tls_connect(addr, t1.clone()).await.unwrap();
    let (outcome, framed) = hello(stream, "T1", &secret("T1")).await;
    assert_eq!(outcome, HelloOutcome::Accepted);
    send_acked(&mut framed.unwrap(), 1).await;

    // No certificate: refused in the handshake.
    let anonymous = client_config(pki.ca_der(), None);
    assert_eq!(
        tls_hello(addr, anonymous, "T1", &secret("T1")).await,
        HelloOutcome::Closed
    );
    // T2's certificate with T1's hello (and T1's secret): the identity does not match.
    let t2 = client_config(pki.ca_der(), Some(pki.client("T2")));
    assert_eq!(
        tls_hello(addr, t2, "T1", &secret("T1")).await,
        HelloOutcome::Refused(ErrorCode::IdentityMismatch)
    );
    // A certificate naming T1 from another CA: refused in the handshake.
    let rogue = Pki::new(&dir.path().join("rogue"), "rogue CA");
    let forged = client_config(pki.ca_der(), Some(rogue.client("T1")));
    assert_eq!(
        tls_hello(addr, forged, "T1", &secret("T1")).await,
        HelloOutcome::Closed
    );
    // The right certificate still needs the right secret.
    assert_eq!(
        tls_hello(addr, t1, "T1", &secret("T9")).await,
        HelloOutcome::Refused(ErrorCode::AuthFailed)
    );
}

/// A server with the `[section]` device listener on TLS from a new CA (`client_certs`: the CA's
/// client certificates required, as for Teltonika), and the CA.
fn with_device_listener(dir: &Path, section: &str, client_certs: bool) -> (Pki, Server) {
    let pki = Pki::new(&dir.join("pki"), "tagstream test CA");
    let (cert, key) = pki.server();
    let mut toml = format!(
        "[{section}]\nlisten = \"127.0.0.1:0\"\n[{section}.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        path_arg(&cert),
        path_arg(&key)
    );
    if client_certs {
        let ca_file = pki.ca_file();
        let ca = path_arg(&ca_file);
        toml.push_str(&format!(
            "client_ca_file = {ca:?}\nrequire_client_cert = true\n"
        ));
    }
    let config = dir.join(format!("{section}.toml"));
    std::fs::write(&config, toml).unwrap();
    let server = tokio::task::block_in_place(|| {
        Server::start(&dir.join("data"), None, &["--config", path_arg(&config)])
    });
    (pki, server)
}

/// Teltonika's IMEI handshake over TLS with `identity`: the server's answer (`None`: the TLS
/// handshake or the connection failed).
async fn teltonika_handshake(
    addr: &str,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ca: CertificateDer<'static>,
    imei: &str,
) -> Option<ServerReply> {
    let stream = tls_connect(addr, client_config(ca, identity)).await.ok()?;
    let mut framed = Framed::new(stream, DeviceCodec::default());
    let imei = Imei::from_digits(imei.as_bytes()).unwrap();
    framed.send(&DeviceMessage::Imei(imei)).await.ok()?;
    framed.next().await.and_then(Result::ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teltonika_trackers_over_mutual_tls_need_a_certificate_naming_their_bound_imei() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, server) = with_device_listener(dir.path(), "teltonika", true);
    let addr = server.teltonika_addr.clone().expect("Teltonika listener");
    let (imei, other) = ("356307042441013", "356307042441021");
    tokio::task::block_in_place(|| {
        for device in [imei, other] {
            let (status, body) = call(
                &server,
                "PUT",
                &format!("/v1/devices/teltonika/{device}"),
                Some(ADMIN_TOKEN),
                Some("fitting"),
                Some(serde_json::json!({ "tag": format!("T-{device}") })),
            );
            assert_eq!(status, 200, "{body}");
        }
    });
    let ca = Pki::ca_der;
    // Its own certificate: accepted.
    let own = Some(pki.client(imei));
    assert_eq!(
        teltonika_handshake(&addr, own, ca(&pki), imei).await,
        Some(ServerReply::ImeiAccepted)
    );
    // Another bound tracker's certificate claiming this IMEI: refused.
    let theirs = Some(pki.client(other));
    assert_eq!(
        teltonika_handshake(&addr, theirs, ca(&pki), imei).await,
        Some(ServerReply::ImeiRefused)
    );
    // No certificate, or one from another CA: the TLS handshake fails.
    assert_eq!(teltonika_handshake(&addr, None, ca(&pki), imei).await, None);
    let rogue = Pki::new(&dir.path().join("rogue"), "rogue CA");
    let forged = Some(rogue.client(imei));
    assert_eq!(
        teltonika_handshake(&addr, forged, ca(&pki), imei).await,
        None
    );
}

/// One OsmAnd report over HTTPS (`GET target`, `Connection: close`): the status code.
async fn osmand_over_https(
    addr: &str,
    ca: CertificateDer<'static>,
    target: &str,
    bearer: Option<&str>,
) -> u16 {
    let mut stream = tls_connect(addr, client_config(ca, None)).await.unwrap();
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osmand_devices_over_https_need_their_own_token() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, server) = with_device_listener(dir.path(), "osmand", false);
    let addr = server.osmand_addr.clone().expect("OsmAnd listener");
    let token_of = |device: &str, tag: &str| {
        let (status, body) = call(
            &server,
            "PUT",
            &format!("/v1/devices/osmand/{device}"),
            Some(ADMIN_TOKEN),
            Some("staff phone"),
            Some(serde_json::json!({ "tag": tag })),
        );
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let (mine, theirs) =
        tokio::task::block_in_place(|| (token_of("phone-1", "T1"), token_of("phone-2", "T2")));
    let target =
        |id: &str| format!("/?id={id}&timestamp=1772438400&lat=51.4545&lon=-2.5879&accuracy=8");
    let ca = || pki.ca_der();
    // Its own token, as a header or as the URL's token parameter: accepted.
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), Some(&mine)).await,
        200
    );
    let in_url = format!("{}&token={mine}", target("phone-1"));
    assert_eq!(osmand_over_https(&addr, ca(), &in_url, None).await, 200);
    // No token, another device's token, a made-up one: refused.
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), None).await,
        401
    );
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), Some(&theirs)).await,
        401
    );
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), Some(&"0".repeat(64))).await,
        401
    );
    // Rotating the tag's credentials changes the token: the old one stops working.
    tokio::task::block_in_place(|| {
        let (status, _) = call(
            &server,
            "POST",
            "/v1/tags/T1/credentials/rotate",
            Some(ADMIN_TOKEN),
            Some("rotate"),
            None,
        );
        assert_eq!(status, 200);
    });
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), Some(&mine)).await,
        401
    );
    let renewed = tokio::task::block_in_place(|| token_of("phone-1", "T1"));
    assert_ne!(renewed, mine);
    assert_eq!(
        osmand_over_https(&addr, ca(), &target("phone-1"), Some(&renewed)).await,
        200
    );
}

async fn plain_hello(
    addr: &str,
    tag: &str,
    secret: &str,
) -> (HelloOutcome, Option<Framed<TcpStream, FrameCodec>>) {
    hello(TcpStream::connect(addr).await.unwrap(), tag, secret).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tags_are_refused_and_rotation_replaces_the_secret_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub = add_user(&data, "hub1", "hub", &[]);
    let server = Server::start(&data, None, &[]);
    let addr = server.ingest_addr.clone();
    let old = tag_secret(TAG_KEY.as_bytes(), "T1");

    let (outcome, live) = plain_hello(&addr, "T1", &old).await;
    assert_eq!(outcome, HelloOutcome::Accepted);
    let mut live = live.unwrap();
    send_acked(&mut live, 1).await;

    // Only an admin may revoke.
    let (status, _) = call(
        &server,
        "POST",
        "/v1/tags/T1/revoke",
        Some(&hub),
        None,
        None,
    );
    assert_eq!(status, 403);
    let (status, body) = call(
        &server,
        "POST",
        "/v1/tags/T1/revoke",
        Some(ADMIN_TOKEN),
        Some("tag reported lost"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(state["revoked"].is_string(), "{body}");

    // A new hello is refused with its own code; the live session is refused at its next batch.
    assert_eq!(
        plain_hello(&addr, "T1", &old).await.0,
        HelloOutcome::Refused(ErrorCode::TagRevoked)
    );
    live.send(Frame::Batch {
        seq: 2,
        readings: vec![fix(1_774_656_300_000)],
    })
    .await
    .unwrap();
    assert!(matches!(
        next_frame(&mut live).await,
        Some(Frame::Error {
            code: ErrorCode::TagRevoked,
            ..
        })
    ));
    // Other tags are untouched.
    let other = tag_secret(TAG_KEY.as_bytes(), "T2");
    assert_eq!(
        plain_hello(&addr, "T2", &other).await.0,
        HelloOutcome::Accepted
    );

    // Rotation issues a new secret (once) and reinstates the tag; the old secret stays refused.
    let (status, body) = call(
        &server,
        "POST",
        "/v1/tags/T1/credentials/rotate",
        Some(ADMIN_TOKEN),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let rotated: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rotated["generation"], 1);
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        plain_hello(&addr, "T1", &old).await.0,
        HelloOutcome::Refused(ErrorCode::AuthFailed)
    );
    let (outcome, session) = plain_hello(&addr, "T1", &new).await;
    assert_eq!(outcome, HelloOutcome::Accepted);
    send_acked(&mut session.unwrap(), 2).await;

    // The credential state never shows the secret; both actions are audited.
    let (_, body) = call(
        &server,
        "GET",
        "/v1/tags/T1/credentials",
        Some(ADMIN_TOKEN),
        None,
        None,
    );
    assert!(!body.contains(&new), "{body}");
    let (_, audit) = call(&server, "GET", "/v1/audit", Some(ADMIN_TOKEN), None, None);
    assert!(
        audit.contains("tag.revoke") && audit.contains("tag.rotate"),
        "{audit}"
    );
    assert!(audit.contains("tag reported lost"), "{audit}");
    assert!(
        !audit.contains(&new),
        "the audit log must not hold the secret"
    );

    // While the server runs the CLI refuses to change credentials (the API does it).
    let out = Command::new(bin())
        .args(["tags", "revoke", "--tag", "T1", "--data-dir"])
        .arg(&data)
        .env("TAGSTREAM_TAG_KEY", TAG_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // The state is durable: after a restart the new secret works and the old one does not;
    // and credentials are a view of the log: a rebuild gets the same state back.
    drop(server);
    for rebuilt in [false, true] {
        if rebuilt {
            common::rebuild(&data);
        }
        let server = Server::start(&data, None, &[]);
        assert_eq!(
            plain_hello(&server.ingest_addr, "T1", &old).await.0,
            HelloOutcome::Refused(ErrorCode::AuthFailed),
            "rebuilt: {rebuilt}"
        );
        assert_eq!(
            plain_hello(&server.ingest_addr, "T1", &new).await.0,
            HelloOutcome::Accepted,
            "rebuilt: {rebuilt}"
        );
    }
}

/// Credentials a database holds from before they were log records (written here straight into
/// the table, as an old version did) are written to the log at the next start, so a rebuild
/// keeps them instead of handing the tag its first secret back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_before_the_log_survive_a_rebuild() {
    use tagstream::wire::tag_secret_at;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Server::start(&data, None, &[]));
    {
        let db = rusqlite::Connection::open(data.join("metadata.sqlite3")).unwrap();
        db.execute(
            "INSERT INTO tag_credentials (tag, generation, revoked_ms, updated_ms)
             VALUES ('T1', 2, NULL, 1000), ('T2', 0, 2000, 2000)",
            [],
        )
        .unwrap();
    }
    let key = TAG_KEY.as_bytes();
    let check = |server: Server| async move {
        let addr = server.ingest_addr.clone();
        for generation in [0, 1] {
            assert_eq!(
                plain_hello(&addr, "T1", &tag_secret_at(key, "T1", generation))
                    .await
                    .0,
                HelloOutcome::Refused(ErrorCode::AuthFailed),
                "T1 at generation {generation}"
            );
        }
        assert_eq!(
            plain_hello(&addr, "T1", &tag_secret_at(key, "T1", 2))
                .await
                .0,
            HelloOutcome::Accepted
        );
        assert_eq!(
            plain_hello(&addr, "T2", &tag_secret_at(key, "T2", 0))
                .await
                .0,
            HelloOutcome::Refused(ErrorCode::TagRevoked)
        );
        server
    };
    drop(check(Server::start(&data, None, &[])).await);
    common::rebuild(&data);
    drop(check(Server::start(&data, None, &[])).await);
}

fn tags_cli(data: &Path, action: &str, tag: &str) -> serde_json::Value {
    let out = Command::new(bin())
        .args(["tags", action, "--tag", tag, "--data-dir"])
        .arg(data)
        .env("TAGSTREAM_TAG_KEY", TAG_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_revokes_and_rotates_tags_of_a_stopped_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old = tag_secret(TAG_KEY.as_bytes(), "T1");
    assert_eq!(tags_cli(&data, "secret", "T1")["secret"], old.as_str());
    assert_eq!(tags_cli(&data, "revoke", "T1")["tag"], "T1");
    assert_eq!(tags_cli(&data, "secret", "T1")["revoked"], true);

    let server = Server::start(&data, None, &[]);
    assert_eq!(
        plain_hello(&server.ingest_addr, "T1", &old).await.0,
        HelloOutcome::Refused(ErrorCode::TagRevoked)
    );
    drop(server);

    let rotated = tags_cli(&data, "rotate", "T1");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_eq!(tags_cli(&data, "secret", "T1")["secret"], new.as_str());
    let server = Server::start(&data, None, &[]);
    assert_eq!(
        plain_hello(&server.ingest_addr, "T1", &old).await.0,
        HelloOutcome::Refused(ErrorCode::AuthFailed)
    );
    assert_eq!(
        plain_hello(&server.ingest_addr, "T1", &new).await.0,
        HelloOutcome::Accepted
    );
}

/// Starts `serve` with the tag key only in `DATA/tag.key`; returns (exit success, stderr).
fn serve_with_key_file(data: &Path, key: &str) -> (bool, String) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("tag.key"), key).unwrap();
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--ingest-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .env_remove("TAGSTREAM_TAG_KEY")
        .env("TAGSTREAM_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refused key ends the process at once; one that is accepted keeps serving.
    for _ in 0..30 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (true, String::new())
}

#[test]
fn an_empty_or_short_tag_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (name, key) in [
        ("empty", ""),
        ("blank", " \n"),
        ("short", "only-31-bytes-of-tag-key-text!!"),
    ] {
        let data = dir.path().join(name);
        let (ok, stderr) = serve_with_key_file(&data, key);
        assert!(!ok, "{name} key accepted");
        assert!(
            stderr.contains(&data.join("tag.key").display().to_string()),
            "{name}: the error names the file: {stderr}"
        );
    }
    let (ok, stderr) =
        serve_with_key_file(&dir.path().join("good"), "0123456789abcdef0123456789abcdef");
    assert!(ok, "a 32-byte key is accepted: {stderr}");
}

/// rustls's `ring` provider (deprecated only for lacking post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
