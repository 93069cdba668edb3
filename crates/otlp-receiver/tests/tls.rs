//! TLS and mutual TLS over real loopback sockets, on both transports, with the test PKI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_receiver::tls::{TestPki, TlsSettings};
use otlp_receiver::{OtlpReceiver, ReceiverError, Snapshot, Transport};
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const PROTOBUF: &str = "application/x-protobuf";
const WAIT: Duration = Duration::from_secs(10);

fn traces(name: &str) -> ExportTraceServiceRequest {
    let span = Span {
        name: name.into(),
        trace_id: vec![0xab; 16],
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        ..Default::default()
    };
    let scope_spans = vec![ScopeSpans {
        spans: vec![span],
        ..Default::default()
    }];
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans,
            ..Default::default()
        }],
    }
}

/// reqwest is built with rustls but no provider of its own: install ring as the default.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTPS client trusting `ca_pem` only, presenting `identity_pem` (cert + key) if given.
fn https_client(ca_pem: &str, identity_pem: Option<String>) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(WAIT);
    match identity_pem {
        Some(pem) => builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap()),
        None => builder,
    }
}

async fn post_traces(
    client: reqwest::ClientBuilder,
    rx: &OtlpReceiver,
    name: &str,
) -> reqwest::Result<reqwest::Response> {
    let url = format!("{}/v1/traces", rx.http_endpoint());
    let body = traces(name).encode_to_vec();
    let request = client.build().unwrap().post(url);
    request
        .header("content-type", PROTOBUF)
        .body(body)
        .send()
        .await
}

/// Exports one span over OTLP/gRPC with `tls`; the error, if any, as text.
async fn grpc_export(rx: &OtlpReceiver, tls: ClientTlsConfig, name: &str) -> Result<(), String> {
    let endpoint = Channel::from_shared(rx.grpc_endpoint()).unwrap();
    let endpoint = endpoint.tls_config(tls).unwrap().timeout(WAIT);
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let mut client = TraceServiceClient::new(channel);
    let response = client.export(traces(name)).await;
    let response = response.map_err(|e| format!("{e:?}"))?.into_inner();
    assert_eq!(response, ExportTraceServiceResponse::default());
    Ok(())
}

fn grpc_tls(ca_pem: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost")
}

async fn mtls_receiver() -> (TestPki, OtlpReceiver) {
    let pki = TestPki::generate().unwrap();
    let rx = OtlpReceiver::start_tls(pki.mtls_settings()).await.unwrap();
    (pki, rx)
}

/// Waits until at least `n` handshakes have failed; returns the last failure's reason.
async fn handshake_failures(rx: &OtlpReceiver, n: u64) -> String {
    let failed = |s: &Snapshot| s.tls_handshake_failures >= n;
    let snapshot = rx.wait_until(WAIT, failed).await.unwrap();
    assert_eq!(rx.tls_handshake_failures(), snapshot.tls_handshake_failures);
    snapshot.last_tls_error.unwrap()
}

#[tokio::test]
async fn endpoints_are_https_on_localhost_and_plain_start_is_unchanged() {
    let (_pki, rx) = mtls_receiver().await;
    for endpoint in [rx.grpc_endpoint(), rx.http_endpoint()] {
        let port = endpoint.strip_prefix("https://localhost:").unwrap();
        port.parse::<u16>().unwrap();
    }
    assert_ne!(rx.grpc_endpoint(), rx.http_endpoint());
    assert_eq!(
        (rx.tls_handshake_failures(), rx.last_tls_error()),
        (0, None)
    );

    let plain = OtlpReceiver::start().await.unwrap();
    assert!(plain.grpc_endpoint().starts_with("http://127.0.0.1:"));
    assert!(plain.http_endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(plain.tls_handshake_failures(), 0);
}

#[tokio::test]
async fn http_export_with_a_client_certificate_is_stored_over_h2_and_http1() {
    let (pki, rx) = mtls_receiver().await;
    let identity = || Some(pki.client_identity_pem());

    let response = post_traces(https_client(&pki.ca_pem, identity()), &rx, "h2")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let client = https_client(&pki.ca_pem, identity()).http1_only();
    let response = post_traces(client, &rx, "http1").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.headers()["content-type"], PROTOBUF);

    let snapshot = rx.wait_until(WAIT, |s| s.spans.len() == 2).await.unwrap();
    let names: Vec<_> = snapshot
        .spans
        .iter()
        .map(|s| s.span.name.as_str())
        .collect();
    assert_eq!(names, ["h2", "http1"]);
    assert!(
        snapshot
            .spans
            .iter()
            .all(|s| s.transport == Transport::Http)
    );
    assert_eq!(snapshot.requests[0].path, "/v1/traces");
    assert_eq!(snapshot.tls_handshake_failures, 0);
}

#[tokio::test]
async fn http_client_without_a_certificate_is_refused_at_the_handshake() {
    let (pki, rx) = mtls_receiver().await;
    let result = post_traces(https_client(&pki.ca_pem, None), &rx, "anonymous").await;
    assert!(result.is_err(), "{result:?}");
    let reason = handshake_failures(&rx, 1).await;
    assert!(
        reason.starts_with("Http listener, client 127.0.0.1:"),
        "{reason}"
    );
    assert!(reason.ends_with("peer sent no certificates"), "{reason}");
    assert!(rx.snapshot().requests.is_empty());
}

#[tokio::test]
async fn http_client_with_a_certificate_of_another_ca_is_refused() {
    let (pki, rx) = mtls_receiver().await;
    let client = https_client(&pki.ca_pem, Some(pki.other_client_identity_pem()));
    let result = post_traces(client, &rx, "stranger").await;
    assert!(result.is_err(), "{result:?}");
    let reason = handshake_failures(&rx, 1).await;
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert!(rx.snapshot().requests.is_empty());
}

#[tokio::test]
async fn http_client_trusting_the_wrong_ca_fails_and_the_server_counts_it() {
    let (pki, rx) = mtls_receiver().await;
    let client = https_client(&pki.other_ca_pem, Some(pki.client_identity_pem()));
    let error = post_traces(client, &rx, "distrust").await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    let reason = handshake_failures(&rx, 1).await;
    assert!(
        reason.ends_with("received fatal alert: UnknownCA"),
        "{reason}"
    );
    assert!(rx.snapshot().requests.is_empty());
}

#[tokio::test]
async fn grpc_export_with_a_client_certificate_is_stored() {
    let (pki, rx) = mtls_receiver().await;
    let identity = Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem);
    let tls = grpc_tls(&pki.ca_pem).identity(identity);
    grpc_export(&rx, tls, "over-grpc").await.unwrap();

    let snapshot = rx.wait_until(WAIT, |s| s.spans.len() == 1).await.unwrap();
    let span = &snapshot.spans[0];
    assert_eq!(
        (span.span.name.as_str(), span.transport),
        ("over-grpc", Transport::Grpc)
    );
    assert!(snapshot.requests[0].path.ends_with("TraceService/Export"));
    assert_eq!(snapshot.tls_handshake_failures, 0);
}

#[tokio::test]
async fn grpc_clients_without_a_valid_certificate_or_trusting_the_wrong_ca_fail() {
    let (pki, rx) = mtls_receiver().await;
    let no_cert = grpc_export(&rx, grpc_tls(&pki.ca_pem), "anonymous").await;
    assert!(no_cert.is_err());
    let reason = handshake_failures(&rx, 1).await;
    assert!(
        reason.starts_with("Grpc listener, client 127.0.0.1:"),
        "{reason}"
    );
    assert!(reason.ends_with("peer sent no certificates"), "{reason}");

    let stranger = Identity::from_pem(&pki.other_client_cert_pem, &pki.other_client_key_pem);
    let tls = grpc_tls(&pki.ca_pem).identity(stranger);
    assert!(grpc_export(&rx, tls, "stranger").await.is_err());
    let reason = handshake_failures(&rx, 2).await;
    assert!(
        reason.ends_with("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );

    let identity = Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem);
    let tls = grpc_tls(&pki.other_ca_pem).identity(identity);
    assert!(grpc_export(&rx, tls, "distrust").await.is_err());
    let reason = handshake_failures(&rx, 3).await;
    assert!(
        reason.ends_with("received fatal alert: UnknownCA"),
        "{reason}"
    );
    assert!(rx.snapshot().requests.is_empty());
}

#[tokio::test]
async fn without_client_ca_no_client_certificate_is_needed() {
    let pki = TestPki::generate().unwrap();
    let rx = OtlpReceiver::start_tls(pki.server_only_settings())
        .await
        .unwrap();
    let response = post_traces(https_client(&pki.ca_pem, None), &rx, "http")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    grpc_export(&rx, grpc_tls(&pki.ca_pem), "grpc")
        .await
        .unwrap();
    let snapshot = rx.wait_until(WAIT, |s| s.spans.len() == 2).await.unwrap();
    assert_eq!(snapshot.tls_handshake_failures, 0);
}

#[tokio::test]
async fn plaintext_and_silent_clients_count_as_handshake_failures() {
    let (pki, rx) = mtls_receiver().await;
    install_crypto_provider();
    let http_url = rx.http_endpoint().replace("https://", "http://");
    let plaintext = reqwest::Client::new()
        .post(format!("{http_url}/v1/traces"))
        .header("content-type", PROTOBUF)
        .body(traces("plain").encode_to_vec())
        .timeout(WAIT)
        .send()
        .await;
    assert!(plaintext.is_err(), "{plaintext:?}");
    handshake_failures(&rx, 1).await;

    // A client that connects and leaves without a word.
    let port = rx.grpc_endpoint().rsplit(':').next().unwrap().to_owned();
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    drop(tcp);
    let reason = handshake_failures(&rx, 2).await;
    assert!(reason.starts_with("Grpc listener"), "{reason}");

    // The listeners still serve well-behaved clients.
    let client = https_client(&pki.ca_pem, Some(pki.client_identity_pem()));
    let response = post_traces(client, &rx, "after").await.unwrap();
    assert_eq!(response.status(), 200);
}

/// The paused clock jumps ahead while the runtime is idle, so the 10 s timeout passes at once.
#[tokio::test(start_paused = true)]
async fn a_client_silent_after_connecting_is_dropped_at_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let (_pki, rx) = mtls_receiver().await;
    let port = rx.http_endpoint().rsplit(':').next().unwrap().to_owned();
    let mut tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let timed_out = |s: &Snapshot| s.tls_handshake_failures == 1;
    let snapshot = rx.wait_until(Duration::from_secs(3600), timed_out).await;
    let reason = snapshot.unwrap().last_tls_error.unwrap();
    assert!(reason.ends_with("no TLS handshake within 10s"), "{reason}");
    assert_eq!(
        tcp.read(&mut [0; 16]).await.unwrap(),
        0,
        "the server closed it"
    );
}

#[tokio::test]
async fn invalid_tls_settings_are_typed_errors() {
    let pki = TestPki::generate().unwrap();
    let no_cert = TlsSettings {
        server_cert_pem: String::new(),
        ..pki.server_only_settings()
    };
    let error = OtlpReceiver::start_tls(no_cert).await.unwrap_err();
    assert!(matches!(
        error,
        ReceiverError::TlsNoCertificate {
            what: "server certificate"
        }
    ));

    let no_key = TlsSettings {
        server_key_pem: "garbage".into(),
        ..pki.server_only_settings()
    };
    let error = OtlpReceiver::start_tls(no_key).await.unwrap_err();
    assert!(
        matches!(
            error,
            ReceiverError::TlsPem {
                what: "server key",
                ..
            }
        ),
        "{error}"
    );
    assert!(std::error::Error::source(&error).is_some());

    let wrong_key = TlsSettings {
        server_key_pem: pki.client_key_pem.clone(),
        ..pki.server_only_settings()
    };
    let error = OtlpReceiver::start_tls(wrong_key).await.unwrap_err();
    assert!(matches!(error, ReceiverError::TlsConfig { .. }), "{error}");

    let no_ca = TlsSettings {
        client_ca_pem: Some("no PEM here".into()),
        ..pki.server_only_settings()
    };
    let error = OtlpReceiver::start_tls(no_ca).await.unwrap_err();
    assert!(matches!(
        error,
        ReceiverError::TlsNoCertificate { what: "client CA" }
    ));
}

#[tokio::test]
async fn the_pki_is_written_as_files_that_a_receiver_can_load() {
    let pki = TestPki::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("otlp-receiver-pki-{}", std::process::id()));
    let files = pki.write_to(&dir.join("nested")).unwrap();
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
    assert_eq!(read(&files.ca), pki.ca_pem);
    assert_eq!(read(&files.client_cert), pki.client_cert_pem);
    assert_eq!(read(&files.client_key), pki.client_key_pem);
    assert_eq!(read(&files.other_ca), pki.other_ca_pem);
    assert_eq!(read(&files.other_client_cert), pki.other_client_cert_pem);
    assert_eq!(read(&files.other_client_key), pki.other_client_key_pem);
    assert!(
        pki.client_key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let settings = TlsSettings {
        server_cert_pem: read(&files.server_cert),
        server_key_pem: read(&files.server_key),
        client_ca_pem: Some(read(&files.ca)),
    };
    assert_eq!(settings, pki.mtls_settings());
    assert!(!format!("{settings:?}").contains("PRIVATE KEY"));
    assert!(!format!("{pki:?}").contains("PRIVATE KEY"));
    std::fs::remove_dir_all(&dir).unwrap();

    let rx = OtlpReceiver::start_tls(settings).await.unwrap();
    let client = https_client(&pki.ca_pem, Some(pki.client_identity_pem()));
    assert_eq!(
        post_traces(client, &rx, "files").await.unwrap().status(),
        200
    );
    // Every call makes new keys.
    assert_ne!(TestPki::generate().unwrap().ca_pem, pki.ca_pem);
}
