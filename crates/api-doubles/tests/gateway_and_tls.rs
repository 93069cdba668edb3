#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What sits in front of a double in production: an authenticating gateway (credentials, path
//! prefix) and TLS with a test CA, optionally requiring a client certificate; all through a real
//! HTTP client on the real socket.

use std::time::Duration;

use api_doubles::collector::CollectorDouble;
use api_doubles::gateway::{Credential, Gateway};
use api_doubles::loki::LokiDouble;
use api_doubles::sample;
use api_doubles::tempo::TempoDouble;
use api_doubles::tls::{TestCa, TlsMode};
use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

const TRACE_ID: &str = "00a1b2c3d4e5f60718293a4b5c6d7e8f";
const WAIT: Duration = Duration::from_secs(10);

fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// An HTTPS client trusting `ca_pem` only, presenting `identity_pem` (cert + key) if given.
fn https_client(ca_pem: &str, identity_pem: Option<&str>) -> reqwest::Client {
    install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(WAIT);
    let builder = match identity_pem {
        Some(pem) => builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap()),
        None => builder,
    };
    builder.build().unwrap()
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.expect("the double answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn challenges(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_bearer_gateway_answers_401_with_a_challenge_403_when_forbidden_and_lets_the_token_through()
 {
    let tempo = TempoDouble::builder()
        .require_bearer("t0k")
        .forbid_bearer("read-only")
        .start()
        .unwrap();
    let url = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    let client = client();

    let (status, headers, body) = status_of(client.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(challenges(&headers), [r#"Bearer realm="Tempo""#]);
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "text/html");
    assert!(body.contains("401 Authorization Required"), "{body}");

    let (status, headers, _) = status_of(client.get(&url).bearer_auth("wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenges(&headers),
        [r#"Bearer realm="Tempo", error="invalid_token""#]
    );
    // A basic credential is not a bearer token.
    let (status, _, _) = status_of(client.get(&url).basic_auth("t0k", Some("t0k"))).await;
    assert_eq!(status, 401);

    let (status, headers, body) = status_of(client.get(&url).bearer_auth("read-only")).await;
    assert_eq!(status, 403);
    assert!(challenges(&headers).is_empty());
    assert!(body.contains("403 Forbidden"), "{body}");

    let (status, _, body) = status_of(client.get(&url).bearer_auth("t0k")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"trace":{},"metrics":{}}"#),
        "behind the gateway, Tempo answers"
    );
    // The double records every answer, the gateway's included.
    let reached: Vec<u16> = tempo.requests().iter().map(|r| r.status).collect();
    assert_eq!(reached, [401, 401, 401, 403, 200]);
}

#[tokio::test]
async fn a_basic_auth_gateway_in_front_of_loki_guards_queries_and_the_otlp_push() {
    let loki = LokiDouble::builder()
        .require_basic("tenant-1", "s3cret")
        .start()
        .unwrap();
    let client = client();
    let labels = format!("{}/loki/api/v1/labels", loki.url());
    let (status, headers, _) = status_of(client.get(&labels)).await;
    assert_eq!(status, 401);
    assert_eq!(challenges(&headers), [r#"Basic realm="Loki""#]);
    let wrong = client.get(&labels).basic_auth("tenant-1", Some("guess"));
    assert_eq!(status_of(wrong).await.0, 401);
    let garbled = client.get(&labels).header("authorization", "Basic !!!");
    assert_eq!(status_of(garbled).await.0, 401);
    let right = client.get(&labels).basic_auth("tenant-1", Some("s3cret"));
    assert_eq!(status_of(right).await.0, 200);

    let push = |auth: bool| {
        let request = client
            .post(format!("{}/v1/logs", loki.otlp_endpoint()))
            .header("content-type", "application/json")
            .body(sample("request_otlp_logs.json"));
        if auth {
            request.basic_auth("tenant-1", Some("s3cret"))
        } else {
            request
        }
    };
    assert_eq!(status_of(push(false)).await.0, 401);
    assert!(loki.records().is_empty());
    loki.set_clock(std::time::UNIX_EPOCH + Duration::from_secs(1_795_354_300));
    assert_eq!(status_of(push(true)).await.0, 204);
    assert_eq!(loki.records().len(), 2);
}

#[tokio::test]
async fn a_gateway_may_accept_several_credentials_and_name_its_realm() {
    let gateway = Gateway::default()
        .allow(Credential::Bearer("a".into()))
        .allow(Credential::Basic {
            user: "u".into(),
            password: "p".into(),
        })
        .realm("grafana-cloud");
    let tempo = TempoDouble::builder().gateway(gateway).start().unwrap();
    let url = format!("{}/api/echo", tempo.url());
    let client = client();
    let (status, headers, _) = status_of(client.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenges(&headers),
        [
            r#"Basic realm="grafana-cloud""#,
            r#"Bearer realm="grafana-cloud""#
        ]
    );
    assert_eq!(status_of(client.get(&url).bearer_auth("a")).await.0, 200);
    let basic = base64::engine::general_purpose::STANDARD.encode("u:p");
    let request = client
        .get(&url)
        .header("authorization", format!("basic {basic}"));
    assert_eq!(
        status_of(request).await.0,
        200,
        "the scheme is case-insensitive"
    );
}

#[tokio::test]
async fn a_path_prefix_serves_the_double_under_it_and_404s_outside() {
    let tempo = TempoDouble::builder()
        .path_prefix("/tempo/")
        .start()
        .unwrap();
    assert!(tempo.url().starts_with("http://127.0.0.1:"));
    assert!(tempo.url().ends_with("/tempo"), "{}", tempo.url());
    let root = tempo.url().trim_end_matches("/tempo").to_owned();
    let client = client();
    let (status, _, body) = status_of(client.get(format!("{}/ready", tempo.url()))).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    for outside in ["/ready", "/tempox/ready", "/", "/loki/ready"] {
        let (status, headers, body) = status_of(client.get(format!("{root}{outside}"))).await;
        assert_eq!(status, 404, "{outside}");
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "text/html");
        assert!(body.contains("404 Not Found"), "{body}");
    }
    // Inside the prefix, an unknown path is the double's own 404.
    let (status, _, body) = status_of(client.get(format!("{}/nope", tempo.url()))).await;
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
    let paths: Vec<String> = tempo.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.first().map(String::as_str), Some("/tempo/ready"));

    let loki = LokiDouble::builder().path_prefix("loki").start().unwrap();
    assert!(loki.otlp_endpoint().ends_with("/loki/otlp"));
    let (status, _, _) = status_of(client.get(format!("{}/ready", loki.url()))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tls_serves_https_to_clients_that_trust_the_test_ca_only() {
    let tempo = TempoDouble::builder()
        .tls(TlsMode::ServerOnly)
        .start()
        .unwrap();
    assert!(
        tempo.url().starts_with("https://127.0.0.1:"),
        "{}",
        tempo.url()
    );
    let ca = tempo.ca().expect("a TLS double has a CA");
    assert_eq!(std::fs::read_to_string(ca.ca_path()).unwrap(), ca.ca_pem());
    let ready = format!("{}/ready", tempo.url());

    let trusting = https_client(ca.ca_pem(), None);
    let (status, _, body) = status_of(trusting.get(&ready)).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let other = https_client(&ca.pki().other_ca_pem, None);
    let refused = other.get(&ready).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    let plain = client()
        .get(ready.replace("https://", "http://"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP to the TLS port gets no answer"
    );
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_of_the_ca() {
    let ca = TestCa::generate().unwrap();
    let loki = LokiDouble::builder()
        .tls_with(TlsMode::ClientCert, &ca)
        .start()
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(loki.ca().unwrap(), &ca));
    let ready = format!("{}/ready", loki.url());

    let identity = ca.client_identity_pem();
    let with_cert = https_client(ca.ca_pem(), Some(&identity));
    assert_eq!(status_of(with_cert.get(&ready)).await.0, 200);

    let without = https_client(ca.ca_pem(), None);
    assert!(without.get(&ready).send().await.is_err());
    let other_identity = ca.other_client_identity_pem();
    let foreign = https_client(ca.ca_pem(), Some(&other_identity));
    assert!(foreign.get(&ready).send().await.is_err());

    // The files on disk are the same certificate and key.
    let from_files = format!(
        "{}{}",
        std::fs::read_to_string(ca.client_cert_path()).unwrap(),
        std::fs::read_to_string(ca.client_key_path()).unwrap()
    );
    let with_files = https_client(
        &std::fs::read_to_string(ca.ca_path()).unwrap(),
        Some(&from_files),
    );
    assert_eq!(status_of(with_files.get(&ready)).await.0, 200);
}

#[tokio::test]
async fn everything_together_multi_tenant_tempo_behind_a_bearer_gateway_with_mtls_under_a_prefix() {
    let tempo = TempoDouble::builder()
        .multi_tenant()
        .require_bearer("t0k")
        .tls(TlsMode::ClientCert)
        .path_prefix("/tempo")
        .start()
        .unwrap();
    let ca = tempo.ca().unwrap();
    let identity = ca.client_identity_pem();
    // The OTLP intake is outside the gateway (the tenant is what it checks) and serves mTLS too.
    assert!(tempo.otlp_http_endpoint().starts_with("https://127.0.0.1:"));
    let traces: ExportTraceServiceRequest =
        serde_json::from_str(&sample("request_otlp_traces.json")).unwrap();
    let no_cert = https_client(ca.ca_pem(), None)
        .post(format!("{}/v1/traces", tempo.otlp_http_endpoint()))
        .header("content-type", "application/x-protobuf")
        .header("X-Scope-OrgID", "a")
        .body(traces.encode_to_vec())
        .send()
        .await;
    assert!(no_cert.is_err(), "{no_cert:?}");
    let pushed = https_client(ca.ca_pem(), Some(&identity))
        .post(format!("{}/v1/traces", tempo.otlp_http_endpoint()))
        .header("content-type", "application/x-protobuf")
        .header("X-Scope-OrgID", "a")
        .body(traces.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 200);
    let grpc = tonic::transport::Endpoint::from_shared(tempo.otlp_grpc_endpoint())
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca.ca_pem()))
                .identity(tonic::transport::Identity::from_pem(
                    &ca.pki().client_cert_pem,
                    &ca.pki().client_key_pem,
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(traces.clone());
    request
        .metadata_mut()
        .insert("x-scope-orgid", "b".parse().unwrap());
    TraceServiceClient::new(grpc).export(request).await.unwrap();
    assert_eq!(
        (tempo.spans_of("a").len(), tempo.spans_of("b").len()),
        (3, 3)
    );

    let client = https_client(ca.ca_pem(), Some(&identity));
    let url = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    assert!(url.starts_with("https://127.0.0.1:") && url.contains("/tempo/api/v2/"));
    // The gateway answers first: no credentials, 401 whatever the tenant.
    let (status, _, _) = status_of(client.get(&url).header("X-Scope-OrgID", "a")).await;
    assert_eq!(status, 401);
    // Through the gateway, Tempo wants a tenant.
    let (status, _, body) = status_of(client.get(&url).bearer_auth("t0k")).await;
    assert_eq!((status, body.as_str()), (401, "no org id"));
    let (status, _, body) = status_of(
        client
            .get(&url)
            .bearer_auth("t0k")
            .header("X-Scope-OrgID", "a"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("resourceSpans"), "{body}");
    let (status, _, body) = status_of(
        client
            .get(&url)
            .bearer_auth("t0k")
            .header("X-Scope-OrgID", "c"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"trace":{},"metrics":{}}"#)
    );
}

#[tokio::test]
async fn a_single_tenant_tempo_with_tls_takes_otlp_over_tls_with_the_same_ca() {
    let tempo = TempoDouble::builder()
        .tls(TlsMode::ClientCert)
        .start()
        .unwrap();
    let ca = tempo.ca().unwrap();
    let endpoint = tempo.otlp_http_endpoint();
    assert!(endpoint.starts_with("https://localhost:"), "{endpoint}");
    let traces: ExportTraceServiceRequest =
        serde_json::from_str(&sample("request_otlp_traces.json")).unwrap();
    let push = |client: reqwest::Client| {
        client
            .post(format!("{endpoint}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(traces.encode_to_vec())
            .send()
    };
    assert!(push(https_client(ca.ca_pem(), None)).await.is_err());
    let identity = ca.client_identity_pem();
    let pushed = push(https_client(ca.ca_pem(), Some(&identity)))
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 200);
    // The shared receiver hands spans to the store just after answering: poll.
    let deadline = std::time::Instant::now() + WAIT;
    while tempo.spans().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spans never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tempo.spans().len(), 3);
}

#[tokio::test]
async fn the_collector_takes_otlp_over_mutual_tls_and_forwards_it() {
    let tempo = TempoDouble::start().unwrap();
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .tls(TlsMode::ClientCert)
        .start()
        .unwrap();
    let ca = collector.ca().unwrap();
    let endpoint = collector.http_endpoint();
    assert!(endpoint.starts_with("https://localhost:"), "{endpoint}");
    assert!(collector.grpc_endpoint().starts_with("https://localhost:"));
    let traces: ExportTraceServiceRequest =
        serde_json::from_str(&sample("request_otlp_traces.json")).unwrap();
    let push = |client: reqwest::Client| {
        client
            .post(format!("{endpoint}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(traces.encode_to_vec())
            .send()
    };
    let foreign = ca.other_client_identity_pem();
    assert!(
        push(https_client(ca.ca_pem(), Some(&foreign)))
            .await
            .is_err()
    );
    assert!(
        push(https_client(&ca.pki().other_ca_pem, None))
            .await
            .is_err()
    );
    let identity = ca.client_identity_pem();
    let pushed = push(https_client(ca.ca_pem(), Some(&identity)))
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + WAIT;
    while tempo.spans().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spans never reached Tempo"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
