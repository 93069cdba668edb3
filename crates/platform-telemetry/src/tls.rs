//! TLS for the OTLP exporters: the CA certificates to trust and the client certificate for
//! mTLS, read from the files `OTEL_EXPORTER_OTLP_[SIGNAL_]CERTIFICATE`, `..._CLIENT_KEY` and
//! `..._CLIENT_CERTIFICATE` name (bounded, see [`crate::files`]), and the rustls (HTTP) and
//! tonic (gRPC) client configurations built from them.
//!
//! A file that cannot be used is a warning naming its variable; the exporter then trusts the
//! platform's roots only, or presents no client certificate. A server that insists on what is
//! missing refuses the handshake, and each refused export is counted as failed.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfiguredFile, Signal, TlsFiles, Warnings};
use crate::files::read_bounded;

/// A client certificate chain and its key, as PEM (tonic) and parsed (rustls).
pub(crate) struct ClientIdentity {
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    cert_pem: Vec<u8>,
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What the TLS files held, validated.
#[derive(Default)]
pub(crate) struct TlsMaterial {
    /// Extra roots, as PEM (tonic) and parsed (rustls).
    ca_pem: Option<Vec<u8>>,
    ca: Vec<CertificateDer<'static>>,
    identity: Option<ClientIdentity>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsMaterial")
            .field("extra_roots", &self.ca.len())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

fn read(file: &ConfiguredFile, using: &str, warnings: &mut Warnings) -> Option<Vec<u8>> {
    match read_bounded(&file.path) {
        Ok(content) => Some(content),
        Err(problem) => {
            warnings.push(
                &file.variable,
                &file.path.display().to_string(),
                problem.to_string(),
                using,
            );
            None
        }
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the file holds no PEM certificate".into());
    }
    Ok(certs)
}

/// Reads and checks the files for one signal's exporter. Called only for `https://` endpoints.
pub(crate) fn load(files: &TlsFiles, signal: Signal, warnings: &mut Warnings) -> TlsMaterial {
    let mut material = TlsMaterial::default();
    if let Some(file) = &files.certificate {
        let roots_only = "the platform's trusted roots only";
        if let Some(pem) = read(file, roots_only, warnings) {
            match certificates(&pem) {
                Ok(ca) => {
                    material.ca = ca;
                    material.ca_pem = Some(pem);
                }
                Err(problem) => warnings.push(
                    &file.variable,
                    &file.path.display().to_string(),
                    format!("{problem} ({} exporter)", signal.as_str()),
                    roots_only,
                ),
            }
        }
    }
    let no_client_cert = "no client certificate";
    match (&files.client_key, &files.client_certificate) {
        (None, None) => {}
        (Some(set), None) | (None, Some(set)) => {
            let missing = if files.client_key.is_some() {
                "CLIENT_CERTIFICATE"
            } else {
                "CLIENT_KEY"
            };
            warnings.push(
                &set.variable,
                &set.path.display().to_string(),
                format!(
                    "a client certificate needs both a key and a certificate; \
                     set OTEL_EXPORTER_OTLP_{missing} (or its per-signal form) too"
                ),
                no_client_cert,
            );
        }
        (Some(key_file), Some(cert_file)) => {
            let key_pem = read(key_file, no_client_cert, warnings);
            let cert_pem = read(cert_file, no_client_cert, warnings);
            if let (Some(key_pem), Some(cert_pem)) = (key_pem, cert_pem) {
                let chain = certificates(&cert_pem).map_err(|p| (cert_file, p));
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| (key_file, format!("no usable PEM private key: {e}")));
                match (chain, key) {
                    (Ok(chain), Ok(key)) => {
                        material.identity = Some(ClientIdentity {
                            cert_pem,
                            key_pem,
                            chain,
                            key,
                        });
                    }
                    (Err((file, problem)), _) | (_, Err((file, problem))) => warnings.push(
                        &file.variable,
                        &file.path.display().to_string(),
                        problem,
                        no_client_cert,
                    ),
                }
            }
        }
    }
    material
}

/// The rustls configuration of the HTTP exporter: the platform's roots plus the configured CA,
/// and the client certificate when there is one.
pub(crate) fn rustls_client_config(
    material: &TlsMaterial,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for cert in &material.ca {
        roots.add(cert.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match &material.identity {
        Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The tonic TLS configuration of the gRPC exporter.
#[cfg(feature = "grpc")]
pub(crate) fn tonic_client_config(
    material: &TlsMaterial,
) -> opentelemetry_otlp::tonic_types::transport::ClientTlsConfig {
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(pem) = &material.ca_pem {
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let Some(id) = &material.identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    tls
}
