//! TLS for the receiver ([`TlsSettings`], used by [`OtlpReceiver::start_tls`]) and a throw-away
//! test PKI ([`TestPki`]) to feed it and the clients under test.
//!
//! Both listeners terminate TLS themselves (tokio-rustls, rustls with the `ring` provider): an
//! accept loop per listener hands every TCP connection to its own handshake task, bounded by
//! [`TLS_HANDSHAKE_TIMEOUT`] and [`MAX_TLS_CONNECTIONS`], and passes the established streams to
//! the same tonic and axum servers the plain receiver runs. A failed or timed-out handshake is
//! counted ([`Snapshot::tls_handshake_failures`]) with its reason
//! ([`Snapshot::last_tls_error`]), so a test can tell "refused at the handshake" from "refused by
//! the server".
//!
//! [`OtlpReceiver::start_tls`]: crate::OtlpReceiver::start_tls
//! [`Snapshot::tls_handshake_failures`]: crate::Snapshot::tls_handshake_failures
//! [`Snapshot::last_tls_error`]: crate::Snapshot::last_tls_error

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::{ReceiverError, Shared, Transport};

/// A TLS handshake not finished within this time fails (and counts as a handshake failure).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many TLS connections (handshaking or established) per listener; the listener
/// stops accepting while the limit is reached.
pub const MAX_TLS_CONNECTIONS: usize = 256;
/// Established connections waiting for their server to pick them up, per listener.
const HANDOFF_CAPACITY: usize = 32;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How [`OtlpReceiver::start_tls`](crate::OtlpReceiver::start_tls) serves TLS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate chain, PEM, leaf first.
    pub server_cert_pem: String,
    /// The server certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub server_key_pem: String,
    /// When set (PEM, one or more CA certificates), every client must present a certificate
    /// signed by one of them: the handshake fails otherwise (mutual TLS). When `None`, no
    /// client certificate is asked for.
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for TlsSettings {
    /// Leaves the private key out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_cert_pem", &self.server_cert_pem)
            .field("server_key_pem", &"<redacted>")
            .field("client_ca_pem", &self.client_ca_pem)
            .finish()
    }
}

/// A test PKI made by [`TestPki::generate`]: a CA, a server certificate and a client
/// certificate it signed, and an unrelated ("wrong") CA with a client certificate of its own.
///
/// All keys are ECDSA P-256 (PKCS#8 PEM); certificates are valid from 1975 to 4096, so no
/// clock matters. Every call makes fresh keys.
#[derive(Clone, PartialEq, Eq)]
pub struct TestPki {
    /// The CA certificate that signed the server and client certificates.
    pub ca_pem: String,
    /// The server certificate (serverAuth), valid for DNS `localhost` and IP `127.0.0.1`.
    pub server_cert_pem: String,
    /// The server certificate's private key.
    pub server_key_pem: String,
    /// A client certificate (clientAuth) signed by [`ca_pem`](Self::ca_pem).
    pub client_cert_pem: String,
    /// Its private key.
    pub client_key_pem: String,
    /// An unrelated CA: trusting it instead of `ca_pem` must fail against the server.
    pub other_ca_pem: String,
    /// A client certificate signed by [`other_ca_pem`](Self::other_ca_pem): a receiver that
    /// verifies clients against `ca_pem` must refuse it.
    pub other_client_cert_pem: String,
    /// Its private key.
    pub other_client_key_pem: String,
}

impl fmt::Debug for TestPki {
    /// Certificates' sizes only; no keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field(
                "server_cert_pem",
                &format_args!("{} bytes", self.server_cert_pem.len()),
            )
            .field(
                "client_cert_pem",
                &format_args!("{} bytes", self.client_cert_pem.len()),
            )
            .field(
                "other_ca_pem",
                &format_args!("{} bytes", self.other_ca_pem.len()),
            )
            .finish_non_exhaustive()
    }
}

/// Where [`TestPki::write_to`] wrote each PEM file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each field is the file of the same-named `TestPki` field
pub struct PkiFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

/// Why a [`TestPki`] could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen could not make a key or a certificate.
    #[error("cannot generate the test {what}: {source}")]
    #[allow(missing_docs)]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file (or its directory) could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    #[allow(missing_docs)]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A key and the certificate parameters it was certified with, to sign others.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// Makes a fresh PKI (see [`TestPki`]).
    pub fn generate() -> Result<TestPki, PkiError> {
        let ca = new_ca("otlp-receiver test CA")?;
        let (server_cert_pem, server_key_pem) = new_leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert_pem, client_key_pem) = new_leaf(
            &ca,
            "otlp-receiver test client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let other = new_ca("otlp-receiver unrelated test CA")?;
        let (other_client_cert_pem, other_client_key_pem) = new_leaf(
            &other,
            "otlp-receiver client of the unrelated CA",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(TestPki {
            ca_pem: ca.cert_pem,
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem: other.cert_pem,
            other_client_cert_pem,
            other_client_key_pem,
        })
    }

    /// Server settings that require a client certificate signed by [`ca_pem`](Self::ca_pem).
    pub fn mtls_settings(&self) -> TlsSettings {
        TlsSettings {
            client_ca_pem: Some(self.ca_pem.clone()),
            ..self.server_only_settings()
        }
    }

    /// Server settings that ask for no client certificate (server-authenticated TLS only).
    pub fn server_only_settings(&self) -> TlsSettings {
        TlsSettings {
            server_cert_pem: self.server_cert_pem.clone(),
            server_key_pem: self.server_key_pem.clone(),
            client_ca_pem: None,
        }
    }

    /// The client certificate followed by its key, one PEM (what `reqwest::Identity::from_pem`
    /// takes).
    pub fn client_identity_pem(&self) -> String {
        format!("{}{}", self.client_cert_pem, self.client_key_pem)
    }

    /// Like [`client_identity_pem`](Self::client_identity_pem), for the unrelated CA's client.
    pub fn other_client_identity_pem(&self) -> String {
        format!(
            "{}{}",
            self.other_client_cert_pem, self.other_client_key_pem
        )
    }

    /// Writes every PEM into `dir` (created if missing) and returns the files' paths:
    /// `ca.pem`, `server.pem`, `server-key.pem`, `client.pem`, `client-key.pem`,
    /// `other-ca.pem`, `other-client.pem`, `other-client-key.pem`. Existing files are replaced.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            match std::fs::write(&path, pem) {
                Ok(()) => Ok(path),
                Err(source) => Err(PkiError::Write { path, source }),
            }
        };
        Ok(PkiFiles {
            ca: write("ca.pem", &self.ca_pem)?,
            server_cert: write("server.pem", &self.server_cert_pem)?,
            server_key: write("server-key.pem", &self.server_key_pem)?,
            client_cert: write("client.pem", &self.client_cert_pem)?,
            client_key: write("client-key.pem", &self.client_key_pem)?,
            other_ca: write("other-ca.pem", &self.other_ca_pem)?,
            other_client_cert: write("other-client.pem", &self.other_client_cert_pem)?,
            other_client_key: write("other-client-key.pem", &self.other_client_key_pem)?,
        })
    }
}

fn new_ca(common_name: &str) -> Result<Ca, PkiError> {
    let key = KeyPair::generate().map_err(generate_err("CA key"))?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).map_err(generate_err("CA"))?;
    Ok(Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

/// A certificate signed by `ca`, and its key, as PEM.
fn new_leaf(
    ca: &Ca,
    common_name: &str,
    subject_alt_names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), PkiError> {
    let what = match usage {
        ExtendedKeyUsagePurpose::ServerAuth => "server certificate",
        _ => "client certificate",
    };
    let key = KeyPair::generate().map_err(generate_err("leaf key"))?;
    let names: Vec<String> = subject_alt_names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).map_err(generate_err(what))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(generate_err(what))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn generate_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// The rustls configurations of both listeners, made from one [`TlsSettings`].
#[derive(Debug)]
pub(crate) struct ServerConfigs {
    /// ALPN `h2` only (gRPC).
    pub(crate) grpc: Arc<ServerConfig>,
    /// ALPN `h2` and `http/1.1`.
    pub(crate) http: Arc<ServerConfig>,
}

impl ServerConfigs {
    pub(crate) fn new(settings: &TlsSettings) -> Result<ServerConfigs, ReceiverError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates("server certificate", &settings.server_cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(settings.server_key_pem.as_bytes())
            .map_err(pem_err("server key"))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(tls_err("protocol versions"))?;
        let builder = match &settings.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => builder.with_client_cert_verifier(client_verifier(pem, provider)?),
        };
        let mut grpc = builder
            .with_single_cert(chain, key)
            .map_err(tls_err("server certificate and key"))?;
        let mut http = grpc.clone();
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerConfigs {
            grpc: Arc::new(grpc),
            http: Arc::new(http),
        })
    }
}

fn client_verifier(
    ca_pem: &str,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ReceiverError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("client CA", ca_pem)? {
        roots.add(cert).map_err(tls_err("client CA certificate"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|source| ReceiverError::ClientVerifier { source })
}

/// Every certificate in `pem`; at least one.
fn certificates(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, ReceiverError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(what))?;
    if certs.is_empty() {
        return Err(ReceiverError::TlsNoCertificate { what });
    }
    Ok(certs)
}

fn pem_err(what: &'static str) -> impl FnOnce(rustls::pki_types::pem::Error) -> ReceiverError {
    move |source| ReceiverError::TlsPem { what, source }
}

fn tls_err(what: &'static str) -> impl FnOnce(rustls::Error) -> ReceiverError {
    move |source| ReceiverError::TlsConfig { what, source }
}

/// An established server-side TLS connection, holding its listener's connection permit.
#[derive(Debug)]
pub(crate) struct TlsConn {
    stream: TlsStream<TcpStream>,
    local_addr: SocketAddr,
    remote_addr: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: Some(self.local_addr),
            remote_addr: Some(self.remote_addr),
        }
    }
}

/// Established TLS connections of one listener, for `axum::serve`.
#[derive(Debug)]
pub(crate) struct TlsListener {
    established: mpsc::Receiver<TlsConn>,
    local_addr: SocketAddr,
}

impl TlsListener {
    /// Starts the accept loop of `listener` (stopped when the receiver is dropped).
    pub(crate) fn spawn(
        shared: &Arc<Shared>,
        transport: Transport,
        listener: TcpListener,
        local_addr: SocketAddr,
        config: Arc<ServerConfig>,
    ) -> TlsListener {
        let (tx, established) = mpsc::channel(HANDOFF_CAPACITY);
        let acceptor = AcceptLoop {
            shared: Arc::clone(shared),
            transport,
            acceptor: TlsAcceptor::from(config),
            permits: Arc::new(Semaphore::new(MAX_TLS_CONNECTIONS)),
            established: tx,
        };
        tokio::spawn(acceptor.run(listener));
        TlsListener {
            established,
            local_addr,
        }
    }

    /// The established connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub(crate) fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = Result<TlsConn, std::convert::Infallible>> {
        use tokio_stream::StreamExt as _;
        tokio_stream::wrappers::ReceiverStream::new(self.established).map(Ok)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        match self.established.recv().await {
            Some(conn) => {
                let remote = conn.remote_addr;
                (conn, remote)
            }
            // The accept loop has stopped: the receiver is shutting down.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Accepts TCP connections and runs each one's handshake in its own bounded task.
struct AcceptLoop {
    shared: Arc<Shared>,
    transport: Transport,
    acceptor: TlsAcceptor,
    permits: Arc<Semaphore>,
    established: mpsc::Sender<TlsConn>,
}

impl AcceptLoop {
    async fn run(self, listener: TcpListener) {
        let shutdown = self.shared.shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return,
                () = self.established.closed() => return,
                accepted = self.accept(&listener) => accepted,
            };
            match accepted {
                Some(Ok((tcp, remote, permit))) => {
                    tokio::spawn(self.handshake(tcp, remote, permit));
                }
                Some(Err(_)) => {
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
                None => return,
            }
        }
    }

    /// Waits for a connection permit, then for a connection. `None`: the semaphore is closed.
    async fn accept(
        &self,
        listener: &TcpListener,
    ) -> Option<io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)>> {
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        Some(
            listener
                .accept()
                .await
                .map(|(tcp, remote)| (tcp, remote, permit)),
        )
    }

    /// The handshake of one connection, as a task that owns what it needs.
    fn handshake(
        &self,
        tcp: TcpStream,
        remote_addr: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (shared, transport) = (Arc::clone(&self.shared), self.transport);
        let (acceptor, established) = (self.acceptor.clone(), self.established.clone());
        async move {
            let local_addr = match tcp.local_addr() {
                Ok(addr) => addr,
                Err(e) => return shared.tls_failure(transport, remote_addr, e.to_string()),
            };
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let outcome = tokio::select! {
                // The receiver is gone: drop the connection, it is no failure of the client.
                () = shared.shutdown_signal() => return,
                outcome = handshake => outcome,
            };
            match outcome {
                Ok(Ok(stream)) => {
                    let conn = TlsConn {
                        stream,
                        local_addr,
                        remote_addr,
                        _permit: permit,
                    };
                    // An error means the server has stopped; the connection is dropped.
                    let _ = established.send(conn).await;
                }
                Ok(Err(e)) => shared.tls_failure(transport, remote_addr, e.to_string()),
                Err(_) => {
                    let reason = format!("no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
                    shared.tls_failure(transport, remote_addr, reason);
                }
            }
        }
    }
}

impl Shared {
    /// Counts a failed handshake and keeps its reason.
    fn tls_failure(&self, transport: Transport, remote: SocketAddr, reason: String) {
        let reason = format!("{transport:?} listener, client {remote}: {reason}");
        self.store(|s| {
            s.tls_handshake_failures += 1;
            s.last_tls_error = Some(reason);
            0
        });
    }
}
