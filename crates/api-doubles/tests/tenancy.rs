#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Multi-tenant Tempo and Loki doubles answer as the recorded multi-tenant servers did
//! (`upstream-samples/*_mt_*`), keep tenants apart, and the collector double carries the tenant
//! through; single-tenant doubles ignore the header.

use std::time::{Duration, Instant};

use api_doubles::FaultSwitches;
use api_doubles::collector::{CollectorDouble, TenantHeader};
use api_doubles::loki::LokiDouble;
use api_doubles::sample;
use api_doubles::tempo::TempoDouble;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::Value;

const TRACE_ID: &str = "00a1b2c3d4e5f60718293a4b5c6d7e8f";
const ORG: &str = "X-Scope-OrgID";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn traces_request() -> ExportTraceServiceRequest {
    serde_json::from_str(&sample("request_otlp_traces.json")).unwrap()
}

fn logs_request() -> ExportLogsServiceRequest {
    serde_json::from_str(&sample("request_otlp_logs.json")).unwrap()
}

/// A recorded `.txt` answer: (status, body).
fn recorded(name: &str) -> (u16, String) {
    let text = sample(name);
    let (body, status) = text.trim_end().rsplit_once("\nHTTP ").unwrap();
    (status.parse().unwrap(), body.to_owned())
}

/// `google.rpc.Status`, as an OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// (status, content type, body) of a GET with an optional tenant.
async fn get(url: &str, tenant: Option<&str>) -> (u16, String, String) {
    let mut request = client().get(url);
    if let Some(tenant) = tenant {
        request = request.header(ORG, tenant);
    }
    let response = request.send().await.expect("the double answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn get_json(url: &str, tenant: &str) -> Value {
    let (status, _, body) = get(url, Some(tenant)).await;
    assert_eq!(status, 200, "{url} as {tenant}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Pushes the recorded traces over OTLP/HTTP protobuf: (status, content type, body).
async fn push_traces_http(base: &str, tenant: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut request = client()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(traces_request().encode_to_vec());
    if let Some(tenant) = tenant {
        request = request.header(ORG, tenant);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn push_traces_grpc(endpoint: String, tenant: Option<&str>) -> Result<(), tonic::Status> {
    let mut traces = TraceServiceClient::connect(endpoint).await.unwrap();
    let mut request = tonic::Request::new(traces_request());
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    traces.export(request).await.map(|_| ())
}

async fn push_logs_grpc(endpoint: String, tenant: Option<&str>) {
    let mut logs = LogsServiceClient::connect(endpoint).await.unwrap();
    let mut request = tonic::Request::new(logs_request());
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-scope-orgid", tenant.parse().unwrap());
    }
    logs.export(request).await.unwrap();
}

async fn push_logs(loki: &LokiDouble, tenant: Option<&str>) -> (u16, String) {
    let mut request = client()
        .post(format!("{}/v1/logs", loki.otlp_endpoint()))
        .header("content-type", "application/json")
        .body(sample("request_otlp_logs.json"));
    if let Some(tenant) = tenant {
        request = request.header(ORG, tenant);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A Loki double on the day the samples were recorded (see `trace_and_log_stores.rs`).
fn on_sample_day(loki: LokiDouble) -> LokiDouble {
    loki.set_clock(std::time::UNIX_EPOCH + Duration::from_secs(1_795_354_300));
    loki
}

fn loki_query(loki: &LokiDouble) -> String {
    let query = format!(r#"{{service_name="orders"}} | trace_id="{TRACE_ID}""#);
    let query: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "{}/loki/api/v1/query_range?query={query}&start=1795354200&end=1795354300",
        loki.url()
    )
}

fn search_url(tempo: &TempoDouble) -> String {
    let q = "%7B%20resource.service.name%20%3D%20%22orders%22%20%7D";
    format!(
        "{}/api/search?q={q}&start=1795354200&end=1795354300",
        tempo.url()
    )
}

/// Polls `probe` until it gives a value, for at most 10 s.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn multi_tenant_tempo_refuses_queries_without_org_id_as_recorded() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    assert!(tempo.is_multi_tenant());
    let recorded = recorded("tempo_mt_query_no_org_id.txt");
    assert_eq!(recorded, (401, "no org id".to_owned()));
    for path in [
        format!("/api/v2/traces/{TRACE_ID}"),
        format!("/api/traces/{TRACE_ID}"),
        "/api/search?q=%7B%7D".to_owned(),
    ] {
        let (status, content_type, body) = get(&format!("{}{path}", tempo.url()), None).await;
        assert_eq!((status, body), recorded, "{path}");
        assert_eq!(content_type, "text/plain; charset=utf-8", "{path}");
        // An empty header is no tenant either.
        let (status, _, _) = get(&format!("{}{path}", tempo.url()), Some("")).await;
        assert_eq!(status, 401, "{path} with an empty header");
    }
    let (status, _, body) = get(&format!("{}/ready", tempo.url()), None).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, _, body) = get(&format!("{}/api/echo", tempo.url()), None).await;
    assert_eq!((status, body.as_str()), (200, "echo"));
}

#[tokio::test]
async fn multi_tenant_tempo_refuses_tenantless_pushes_as_recorded_and_takes_tenanted_ones() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    // Recorded: 503 with a protobuf google.rpc.Status, code 14 UNAVAILABLE, "no org id".
    let (recorded_status, recorded_body) = recorded("tempo_mt_otlp_push_no_org_id.txt");
    assert_eq!(recorded_status, 503);
    assert!(recorded_body.contains("code 14 UNAVAILABLE") && recorded_body.contains("no org id"));
    let (status, content_type, body) = push_traces_http(&tempo.otlp_http_endpoint(), None).await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "application/x-protobuf")
    );
    let refusal = RpcStatus::decode(&body[..]).unwrap();
    assert_eq!((refusal.code, refusal.message.as_str()), (14, "no org id"));
    let error = push_traces_grpc(tempo.otlp_grpc_endpoint(), None)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (tonic::Code::Unavailable, "no org id")
    );
    assert!(tempo.spans().is_empty(), "a refused push stores nothing");

    let (status, content_type, _) = push_traces_http(&tempo.otlp_http_endpoint(), Some("a")).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-protobuf")
    );
    push_traces_grpc(tempo.otlp_grpc_endpoint(), Some("b"))
        .await
        .unwrap();
    assert_eq!(tempo.spans_of("a").len(), 3);
    assert_eq!(tempo.spans_of("b").len(), 3);
    assert!(tempo.spans_of("single-tenant").is_empty());

    // Down, the own intake refuses exports (its ports stay open), as the shared receiver does.
    tempo.set_down();
    let (status, _, body) = push_traces_http(&tempo.otlp_http_endpoint(), Some("a")).await;
    assert_eq!(status, 503);
    assert_eq!(RpcStatus::decode(&body[..]).unwrap().code, 14);
    let error = push_traces_grpc(tempo.otlp_grpc_endpoint(), Some("a"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable);
    tempo.set_up();
    let (status, _, _) = push_traces_http(&tempo.otlp_http_endpoint(), Some("a")).await;
    assert_eq!(status, 200);
    assert_eq!(tempo.spans_of("a").len(), 6);
}

#[tokio::test]
async fn multi_tenant_tempo_shows_a_trace_to_its_tenant_only() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    push_traces_grpc(tempo.otlp_grpc_endpoint(), Some("a"))
        .await
        .unwrap();
    let v2 = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    assert_eq!(
        get_json(&v2, "a").await,
        serde_json::from_str::<Value>(&sample("tempo_v2_trace_found.json")).unwrap()
    );
    // Tenant b: exactly as recorded, indistinguishable from a missing trace.
    let (status, content_type, body) = get(&v2, Some("b")).await;
    assert_eq!((status, body), recorded("tempo_mt_wrong_tenant.txt"));
    assert_eq!(content_type, "application/json");
    let (status, _, body) = get(&format!("{}/api/traces/{TRACE_ID}", tempo.url()), Some("b")).await;
    assert_eq!((status, body.as_str()), (404, ""));
    let found = get_json(&search_url(&tempo), "a").await;
    assert_eq!(found["traces"].as_array().unwrap().len(), 1);
    let hidden = get_json(&search_url(&tempo), "b").await;
    assert_eq!(hidden["traces"], serde_json::json!([]));
}

#[tokio::test]
async fn tempo_refuses_tenant_ids_it_does_not_model_with_400() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let url = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    for bad in ["a|b", "a/b", "..", &"x".repeat(151)] {
        let (status, content_type, body) = get(&url, Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert!(
            body.starts_with("not modelled by the Tempo double (X-Scope-OrgID)"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn single_tenant_tempo_and_loki_ignore_the_header() {
    let tempo = TempoDouble::start().unwrap();
    assert!(!tempo.is_multi_tenant());
    let (status, _, _) = push_traces_http(&tempo.otlp_http_endpoint(), None).await;
    assert_eq!(status, 200);
    let v2 = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    eventually("the trace", async || {
        let (_, _, body) = get(&v2, Some("someone")).await;
        body.contains("resourceSpans").then_some(())
    })
    .await;
    let (_, _, plain) = get(&v2, None).await;
    assert!(plain.contains("resourceSpans"));
    assert_eq!(tempo.spans_of("single-tenant").len(), 3);

    let loki = on_sample_day(LokiDouble::start().unwrap());
    assert_eq!(push_logs(&loki, Some("a")).await.0, 204);
    assert_eq!(loki.records_of("fake").len(), 2);
    assert!(loki.records_of("a").is_empty());
    let result = get_json(&loki_query(&loki), "b").await;
    assert_eq!(result["data"]["result"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn multi_tenant_loki_refuses_pushes_and_queries_without_org_id_as_recorded() {
    let loki = on_sample_day(LokiDouble::builder().multi_tenant().start().unwrap());
    let push_recorded = recorded("loki_mt_push_no_org_id.txt");
    assert_eq!(push_recorded, (401, "no org id".to_owned()));
    assert_eq!(push_logs(&loki, None).await, push_recorded);
    // Refused before the body is read: even a malformed one gets the tenant's answer.
    let response = client()
        .post(format!("{}/v1/logs", loki.otlp_endpoint()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(loki.records().is_empty());

    let query_recorded = recorded("loki_mt_query_no_org_id.txt");
    for url in [
        loki_query(&loki),
        format!("{}/loki/api/v1/labels", loki.url()),
        format!("{}/loki/api/v1/label/service_name/values", loki.url()),
        format!("{}/loki/api/v1/query?query=%7Ba%3D%22b%22%7D", loki.url()),
    ] {
        let (status, content_type, body) = get(&url, None).await;
        assert_eq!((status, body), query_recorded.clone(), "{url}");
        assert_eq!(content_type, "text/plain; charset=utf-8");
    }
    let (status, _, body) = get(&format!("{}/ready", loki.url()), None).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
}

#[tokio::test]
async fn multi_tenant_loki_keeps_tenants_apart() {
    let loki = on_sample_day(LokiDouble::builder().multi_tenant().start().unwrap());
    assert_eq!(push_logs(&loki, Some("a")).await, (204, String::new()));
    assert_eq!(loki.records_of("a").len(), 2);
    let recorded: Value =
        serde_json::from_str(&sample("loki_query_range_by_trace_id.json")).unwrap();
    let mine = get_json(&loki_query(&loki), "a").await;
    assert_eq!(mine["data"]["result"], recorded["data"]["result"]);
    let theirs = get_json(&loki_query(&loki), "b").await;
    assert_eq!(theirs["status"], "success");
    assert_eq!(theirs["data"]["result"], serde_json::json!([]));
    let labels = get_json(&format!("{}/loki/api/v1/labels", loki.url()), "b").await;
    assert_eq!(labels["data"], serde_json::json!([]));
    let labels = get_json(&format!("{}/loki/api/v1/labels", loki.url()), "a").await;
    assert!(
        labels["data"]
            .as_array()
            .unwrap()
            .contains(&"service_name".into())
    );
}

#[tokio::test]
async fn the_collector_carries_each_exports_tenant_through_to_tempo_and_loki() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let loki = on_sample_day(LokiDouble::builder().multi_tenant().start().unwrap());
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .loki(&loki)
        .tenant_header(TenantHeader::FromRequest)
        .start()
        .unwrap();
    push_traces_grpc(collector.grpc_endpoint(), Some("a"))
        .await
        .unwrap();
    push_logs_grpc(collector.grpc_endpoint(), Some("a")).await;
    // Without a tenant the collector accepts, and the stores refuse its exports.
    push_traces_grpc(collector.grpc_endpoint(), None)
        .await
        .unwrap();
    push_logs_grpc(collector.grpc_endpoint(), None).await;
    let refusals = eventually("both refusals", async || {
        let refusals = collector.refusals();
        (refusals.len() == 2).then_some(refusals)
    })
    .await;
    assert_eq!(refusals, ["tempo: no org id", "loki: no org id"]);
    assert_eq!(
        (tempo.spans().len(), loki.records().len()),
        (3, 2),
        "only the tenanted exports are stored"
    );

    let v2 = format!("{}/api/v2/traces/{TRACE_ID}", tempo.url());
    assert!(get_json(&v2, "a").await["trace"]["resourceSpans"].is_array());
    assert_eq!(
        get(&v2, Some("b")).await.2,
        recorded("tempo_mt_wrong_tenant.txt").1
    );
    let logs = get_json(&loki_query(&loki), "a").await;
    assert_eq!(logs["data"]["result"].as_array().unwrap().len(), 2);
    let none = get_json(&loki_query(&loki), "b").await;
    assert_eq!(none["data"]["result"], serde_json::json!([]));
}

#[tokio::test]
async fn a_collector_with_a_fixed_tenant_stores_everything_under_it() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let single = TempoDouble::start().unwrap();
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .tenant_header(TenantHeader::Fixed("team-b".into()))
        .start()
        .unwrap();
    let plain = CollectorDouble::builder().tempo(&single).start().unwrap();
    push_traces_grpc(collector.grpc_endpoint(), Some("a"))
        .await
        .unwrap();
    push_traces_grpc(plain.grpc_endpoint(), None).await.unwrap();
    eventually("the spans", async || {
        (tempo.spans_of("team-b").len() == 3 && single.spans_of("single-tenant").len() == 3)
            .then_some(())
    })
    .await;
    assert!(tempo.spans_of("a").is_empty());
    assert!(collector.refusals().is_empty() && plain.refusals().is_empty());
}
