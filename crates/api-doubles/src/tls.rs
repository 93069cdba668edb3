//! HTTPS for a double, with a throw-away test CA, optionally requiring a client certificate
//! (mutual TLS), as a TLS-terminating gateway in front of Tempo or Loki (or their own
//! `http_tls_config`, or a collector receiver's `tls:` settings) would.
//!
//! Tempo and Loki builders (`tls`, `tls_with`) put it on every port of the double: the query
//! port (URL `https://127.0.0.1:<port>`) and the OTLP intake (a multi-tenant Tempo's own intake at
//! `https://127.0.0.1:<port>`; the shared `otlp-receiver` of a single-tenant Tempo, and of the
//! collector double, at `https://localhost:<port>`, the name it gives its TLS endpoints).
//!
//! The workspace's one TLS stack: rustls with the `ring` provider, tokio-rustls, and the test
//! PKI of `otlp_receiver::tls::TestPki` (rcgen; ECDSA P-256; a CA, a server certificate for
//! `localhost` and `127.0.0.1`, a client certificate, and an unrelated CA with a client of its
//! own). [`TestCa`] adds the PEM files on disk, for a process under test that takes paths.
//! A handshake must complete within [`HANDSHAKE_TIMEOUT`]; TLS 1.3 and 1.2 (rustls' safe
//! defaults).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otlp_receiver::tls::{PkiFiles, TestPki};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use crate::chassis::Error;

/// A TLS handshake not finished within this time fails and the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a double serves TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// HTTPS with the [`TestCa`]'s server certificate; no client certificate asked for.
    ServerOnly,
    /// HTTPS, and every client must present a certificate signed by the [`TestCa`]: the
    /// handshake fails otherwise (mutual TLS).
    ClientCert,
}

/// A test CA and the certificates it signed, as PEM strings and as files in a directory of its
/// own (removed when the last handle is dropped). Share one between doubles with
/// `Arc<TestCa>` (each builder's `tls_with`), so the client under test trusts one CA.
#[derive(Debug)]
pub struct TestCa {
    pki: TestPki,
    files: PkiFiles,
    dir: PathBuf,
}

impl TestCa {
    /// Makes a fresh CA, server and client certificates, and writes them to a new directory
    /// under the system's temporary directory.
    pub fn generate() -> Result<Arc<TestCa>, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pki = TestPki::generate().map_err(|e| tls_error("test CA", e))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("api-doubles-ca-{}-{n}", std::process::id()));
        let files = pki
            .write_to(&dir)
            .map_err(|e| tls_error("test CA files", e))?;
        Ok(Arc::new(TestCa { pki, files, dir }))
    }

    /// Every PEM, as `otlp_receiver` made them (CA, server, client, the unrelated CA and its
    /// client).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// The CA certificate a client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The file holding [`ca_pem`](Self::ca_pem) (`ca.pem`).
    pub fn ca_path(&self) -> &Path {
        &self.files.ca
    }

    /// The client certificate signed by the CA (`client.pem`).
    pub fn client_cert_path(&self) -> &Path {
        &self.files.client_cert
    }

    /// Its private key (`client-key.pem`, PKCS#8).
    pub fn client_key_path(&self) -> &Path {
        &self.files.client_key
    }

    /// The client certificate followed by its key, one PEM (what `reqwest::Identity::from_pem`
    /// takes).
    pub fn client_identity_pem(&self) -> String {
        self.pki.client_identity_pem()
    }

    /// A client certificate and key signed by an unrelated CA: a double in
    /// [`TlsMode::ClientCert`] refuses it at the handshake.
    pub fn other_client_identity_pem(&self) -> String {
        self.pki.other_client_identity_pem()
    }

    /// Every file written (see `otlp_receiver::tls::PkiFiles`).
    pub fn files(&self) -> &PkiFiles {
        &self.files
    }

    /// The rustls server configuration for `mode`, offering `alpn` (most preferred first).
    pub(crate) fn server_config(
        &self,
        mode: TlsMode,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = CertificateDer::pem_slice_iter(self.pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("server certificate PEM", e))?;
        let key = PrivateKeyDer::from_pem_slice(self.pki.server_key_pem.as_bytes())
            .map_err(|e| tls_error("server key PEM", e))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?;
        let builder = match mode {
            TlsMode::ServerOnly => builder.with_no_client_auth(),
            TlsMode::ClientCert => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(self.pki.ca_pem.as_bytes()) {
                    let cert = cert.map_err(|e| tls_error("CA PEM", e))?;
                    roots
                        .add(cert)
                        .map_err(|e| tls_error("CA certificate", e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| tls_error("client certificate verifier", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| tls_error("server certificate and key", e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn tls_error(what: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Tls {
        what,
        source: Box::new(source),
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A double's TLS choice, as its builder keeps it: the mode and the CA (made at start when none
/// was given).
#[derive(Clone, Debug)]
pub(crate) struct TlsChoice {
    pub(crate) mode: TlsMode,
    pub(crate) ca: Option<Arc<TestCa>>,
}

impl TlsChoice {
    /// The CA to use, made now if none was given.
    pub(crate) fn resolve(&self) -> Result<Arc<TestCa>, Error> {
        match &self.ca {
            Some(ca) => Ok(Arc::clone(ca)),
            None => TestCa::generate(),
        }
    }
}
