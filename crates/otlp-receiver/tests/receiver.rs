//! End-to-end tests over real loopback sockets.
#![allow(clippy::unwrap_used)] // test helpers may panic

use std::io::Write;
use std::time::Duration;

use logs_service_client::LogsServiceClient;
use metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::{logs::v1::*, metrics::v1::*, trace::v1::*};
use otlp_receiver::{Behavior, MetricKind, OtlpReceiver, Signal, Snapshot, Transport};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use trace_service_client::TraceServiceClient;

const RESOURCE: &str =
    r#""resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]}"#;

/// Builds a request from OTLP/JSON with `$R` standing for the shared resource.
fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(&json.replace("$R", RESOURCE)).unwrap()
}

fn traces(name: &str) -> ExportTraceServiceRequest {
    from_json(
        &r#"{"resourceSpans":[{$R,"scopeSpans":[{"spans":[{"name":"NAME",
        "traceId":"abababababababababababababababab","spanId":"0102030405060708",
        "attributes":[{"key":"http.route","value":{"stringValue":"/pay"}}]}]}]}]}"#
            .replace("NAME", name),
    )
}

fn logs(body: &str) -> ExportLogsServiceRequest {
    from_json(
        &r#"{"resourceLogs":[{$R,"scopeLogs":[{"logRecords":[{"body":{"stringValue":"BODY"},
        "attributes":[{"key":"user","value":{"stringValue":"ada"}}]}]}]}]}"#
            .replace("BODY", body),
    )
}

fn metrics() -> ExportMetricsServiceRequest {
    from_json(
        r#"{"resourceMetrics":[{$R,"scopeMetrics":[{"metrics":[
        {"name":"requests","sum":{"isMonotonic":true,"dataPoints":[{"asInt":"3",
            "attributes":[{"key":"code","value":{"stringValue":"200"}}]}]}},
        {"name":"latency","histogram":{"dataPoints":[{"count":"2","sum":7.5,
            "bucketCounts":["1","1"],"explicitBounds":[5.0]}]}}]}]}]}"#,
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

type Headers = &'static [(&'static str, &'static str)];
const PROTOBUF: &str = "application/x-protobuf";
const PB: Headers = &[("content-type", PROTOBUF), ("x-tenant", "t1")];
const PB_GZIP: Headers = &[("content-type", PROTOBUF), ("content-encoding", "gzip")];
const JSON: Headers = &[("content-type", "application/json")];

/// POSTs `body` with `headers` to `path` on the receiver's HTTP endpoint.
/// The workspace's reqwest has rustls without a built-in provider (platform-telemetry brings
/// ring): install it before building a client.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

async fn send(rx: &OtlpReceiver, path: &str, headers: Headers, body: Vec<u8>) -> reqwest::Response {
    let mut request = client().post(format!("{}{path}", rx.http_endpoint()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.unwrap()
}

async fn status(rx: &OtlpReceiver, path: &str, headers: Headers, body: Vec<u8>) -> u16 {
    send(rx, path, headers, body).await.status().as_u16()
}

async fn start() -> (OtlpReceiver, TraceServiceClient<Channel>) {
    let rx = OtlpReceiver::start().await.unwrap();
    let client = TraceServiceClient::connect(rx.grpc_endpoint()).await;
    (rx, client.unwrap())
}

#[tokio::test]
async fn grpc_exports_are_decoded_with_metadata_and_gzip() {
    let (rx, client) = start().await;
    let mut request = tonic::Request::new(traces("pay"));
    request
        .metadata_mut()
        .insert("x-tenant", "t1".parse().unwrap());
    let mut client = client.send_compressed(CompressionEncoding::Gzip);
    let response = client.export(request).await.unwrap().into_inner();
    assert_eq!(response.partial_success, None);
    let endpoint = rx.grpc_endpoint();
    let mut logs_client = LogsServiceClient::connect(endpoint.clone()).await.unwrap();
    logs_client.export(logs("hello")).await.unwrap();
    let mut metrics_client = MetricsServiceClient::connect(endpoint).await.unwrap();
    metrics_client.export(metrics()).await.unwrap();

    let all_three = |s: &Snapshot| s.requests.len() == 3;
    let snap = rx
        .wait_until(Duration::from_secs(5), all_three)
        .await
        .unwrap();
    let span = &snap.spans[0];
    assert_eq!((span.name(), span.transport), ("pay", Transport::Grpc));
    assert_eq!(span.trace_id_hex(), "ab".repeat(16));
    assert_eq!(span.span_id_hex(), "0102030405060708");
    assert_eq!(span.parent_span_id_hex(), None);
    assert_eq!(span.attr("http.route").as_deref(), Some("/pay"));
    assert_eq!(span.service_name().as_deref(), Some("checkout"));
    let req = &snap.requests[0];
    assert_eq!((req.signal, req.item_count), (Signal::Traces, 1));
    assert_eq!(req.header("X-Tenant"), Some("t1"));
    assert!(req.path.ends_with("collector.trace.v1.TraceService/Export"));
    assert_eq!(req.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(snap.requests[1].content_encoding, None);
    let log = &snap.log_records[0];
    assert_eq!(log.body_text().as_deref(), Some("hello"));
    assert_eq!(log.trace_id_hex(), None);
    assert_eq!(snap.metrics.len(), 2);
}

#[tokio::test]
async fn http_protobuf_and_gzip_bodies_are_decoded() {
    let (rx, _) = start().await;
    let response = send(&rx, "/v1/traces", PB, traces("plain").encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let body = response.bytes().await.unwrap();
    let body = ExportTraceServiceResponse::decode(body).unwrap();
    assert_eq!(body.partial_success, None);
    let zipped = gzip(&logs("zipped").encode_to_vec());
    assert_eq!(status(&rx, "/v1/logs", PB_GZIP, zipped).await, 200);
    let metrics = metrics().encode_to_vec();
    assert_eq!(status(&rx, "/v1/metrics", PB, metrics).await, 200);

    let snap = rx.snapshot();
    assert_eq!(snap.spans[0].name(), "plain");
    assert_eq!(snap.spans[0].transport, Transport::Http);
    assert_eq!(snap.requests[0].path, "/v1/traces");
    assert_eq!(snap.requests[0].header("x-tenant"), Some("t1"));
    assert_eq!(snap.requests[1].content_encoding.as_deref(), Some("gzip"));
    let log = &snap.log_records[0];
    assert_eq!(log.body_text().as_deref(), Some("zipped"));
    assert_eq!(log.attr("user").as_deref(), Some("ada"));
    let (counter, histogram) = (&snap.metrics[0], &snap.metrics[1]);
    assert_eq!(
        (counter.name(), counter.kind()),
        ("requests", MetricKind::Sum)
    );
    assert!(counter.is_monotonic());
    let point = counter.points().remove(0);
    assert_eq!((point.value, point.attr("code")), (Some(3.0), Some("200")));
    assert_eq!(histogram.kind(), MetricKind::Histogram);
    let point = histogram.points().remove(0);
    assert_eq!((point.count, point.sum), (Some(2), Some(7.5)));
    assert_eq!(point.bucket_counts, vec![1, 1]);
    assert_eq!(point.explicit_bounds, vec![5.0]);
}

#[tokio::test]
async fn http_errors_follow_the_spec() {
    let (rx, _) = start().await;
    assert_eq!(status(&rx, "/v1/traces", PB, vec![0xff; 3]).await, 400);
    assert_eq!(status(&rx, "/v1/logs", PB_GZIP, vec![1, 2]).await, 400);
    assert_eq!(status(&rx, "/v1/traces", JSON, b"{}".to_vec()).await, 415);
    assert_eq!(status(&rx, "/v1/profiles", PB, Vec::new()).await, 404);
    let huge = vec![0u8; otlp_receiver::MAX_BODY_BYTES + 1];
    assert_eq!(status(&rx, "/v1/metrics", PB, huge).await, 413);
    assert!(rx.snapshot().requests.is_empty());
}

#[tokio::test]
async fn reject_stores_nothing_and_partial_success_is_reported() {
    let (rx, mut grpc) = start().await;
    let http_status = 503;
    rx.set_behavior(Behavior::Reject {
        grpc: tonic::Code::Unavailable,
        http_status,
    });
    let err = grpc.export(traces("no")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let body = traces("no").encode_to_vec();
    assert_eq!(status(&rx, "/v1/traces", PB, body).await, 503);
    assert!(rx.snapshot().spans.is_empty());

    let message = "too many attributes".to_string();
    rx.set_behavior(Behavior::PartialSuccess {
        rejected: 2,
        message,
    });
    let response = grpc.export(traces("partial")).await.unwrap();
    let partial = response.into_inner().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert_eq!(partial.error_message, "too many attributes");
    let http = send(&rx, "/v1/logs", PB, logs("partial").encode_to_vec()).await;
    let body = ExportLogsServiceResponse::decode(http.bytes().await.unwrap()).unwrap();
    assert_eq!(body.partial_success.unwrap().rejected_log_records, 2);
    let snap = rx.snapshot();
    assert_eq!((snap.spans.len(), snap.log_records.len()), (1, 1));
}

#[tokio::test]
async fn hang_makes_clients_time_out() {
    let (rx, mut grpc) = start().await;
    rx.set_behavior(Behavior::Hang);
    let limit = Duration::from_millis(300);
    let grpc_result = tokio::time::timeout(limit, grpc.export(traces("hung"))).await;
    assert!(
        grpc_result.is_err(),
        "gRPC export should hang: {grpc_result:?}"
    );
    install_crypto_provider();
    let client = reqwest::Client::builder().timeout(limit).build().unwrap();
    let url = format!("{}/v1/traces", rx.http_endpoint());
    let body = traces("hung").encode_to_vec();
    let request = client.post(url).header("content-type", PROTOBUF).body(body);
    let err = request.send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(rx.snapshot().spans.is_empty());
}

#[tokio::test]
async fn wait_until_wakes_on_requests_and_times_out_with_counts() {
    let (rx, mut grpc) = start().await;
    let late = |s: &Snapshot| s.spans.iter().any(|s| s.name() == "late");
    let waiter = rx.wait_until(Duration::from_secs(5), late);
    let sender = async {
        grpc.export(traces("early")).await.unwrap();
        grpc.export(traces("late")).await.unwrap();
    };
    let (snap, ()) = tokio::join!(waiter, sender);
    assert_eq!(snap.unwrap().spans.len(), 2);

    let has_metrics = |s: &Snapshot| !s.metrics.is_empty();
    let err = rx
        .wait_until(Duration::from_millis(50), has_metrics)
        .await
        .unwrap_err();
    assert_eq!(err.snapshot.spans.len(), 2);
    let message = err.to_string();
    let counts = "2 requests, 2 spans, 0 log records, 0 metrics";
    assert!(message.contains(counts), "{message}");
}

#[tokio::test]
async fn dropping_the_receiver_ends_pending_exports() {
    let (rx, mut grpc) = start().await;
    rx.set_behavior(Behavior::Hang);
    let export = tokio::spawn(async move { grpc.export(traces("hung")).await });
    rx.wait_until(Duration::from_secs(5), |_| true)
        .await
        .unwrap();
    drop(rx);
    let result = tokio::time::timeout(Duration::from_secs(5), export)
        .await
        .unwrap();
    assert_eq!(
        result.unwrap().unwrap_err().code(),
        tonic::Code::Unavailable
    );
}
