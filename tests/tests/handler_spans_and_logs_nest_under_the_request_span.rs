#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a handler sees of the request span the server layer starts with the SDK tracer: its
//! `#[tracing::instrument]` spans and log events nest under it and carry its ids (stdout JSON and
//! OTLP, received over a real socket), it can add attributes and a status through
//! `RequestSpan`, an unsampled request still gives its logs ids and tells the next hop not to
//! sample, and message spans continue the trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::Request;
use axum::routing::get;
use opentelemetry::KeyValue;
use otlp_receiver::{OtlpReceiver, ReceivedSpan, Snapshot};
use platform_telemetry::http::{RequestSpan, ServerLayer};
use platform_telemetry::propagation::{consumer_span, inject, producer_span};
use platform_telemetry::{Telemetry, builder};
use serde_json::Value;
use tower::ServiceExt as _;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Stdout JSON lines, kept in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn line(&self, message: &str) -> Value {
        let lines = self.json();
        lines
            .iter()
            .find(|l| l["message"] == message)
            .cloned()
            .unwrap_or_else(|| panic!("no JSON line {message:?} in {lines:#?}"))
    }
}

fn instance(receiver: &OtlpReceiver, sampler: &str, lines: &Lines) -> Telemetry {
    let lines = lines.clone();
    builder()
        .service_name("shop")
        .env_vars([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
            ("OTEL_TRACES_SAMPLER", sampler.to_string()),
            ("OTEL_METRICS_EXPORTER", "prometheus".to_string()),
            ("LOG_FORMAT", "json".to_string()),
            ("RUST_LOG", "info".to_string()),
        ])
        .log_writer(move || lines.clone())
        .build()
        .unwrap()
}

#[tracing::instrument]
async fn load_order(id: u64) -> u64 {
    tracing::info!("loading order");
    tokio::task::yield_now().await;
    id
}

async fn get_order(span: RequestSpan, Path(id): Path<u64>) -> String {
    tracing::info!("handler started");
    span.set_attribute(KeyValue::new("order.id", id as i64));
    let id = load_order(id).await;
    if id == 13 {
        span.set_error("unlucky order");
    }
    let mut next_hop = HashMap::<String, String>::new();
    inject(&mut next_hop);
    let mut message = HashMap::<String, String>::new();
    let publish = producer_span("in_process", "orders.viewed", &mut message);
    publish.in_scope(|| tracing::info!("order event published"));
    publish.end();
    serde_json::json!({ "next_hop": next_hop, "message": message }).to_string()
}

fn app(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .layer(ServerLayer::for_telemetry(telemetry))
}

async fn call(app: &Router, path: &str, traceparent: Option<&str>) -> (http::HeaderMap, Value) {
    let mut request = Request::get(path);
    if let Some(tp) = traceparent {
        request = request.header("traceparent", tp);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (headers, serde_json::from_slice(&body).unwrap())
}

async fn exported(
    receiver: &OtlpReceiver,
    telemetry: &Telemetry,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    telemetry.force_flush().unwrap();
    receiver
        .wait_until(Duration::from_secs(10), done)
        .await
        .unwrap()
}

fn span<'a>(snapshot: &'a Snapshot, name: &str) -> &'a ReceivedSpan {
    snapshot
        .spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = snapshot.spans.iter().map(|s| s.name()).collect();
            panic!("no span {name:?}; received {names:?}")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrumented_spans_and_logs_in_a_handler_are_children_of_the_request_span() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let lines = Lines::default();
    let telemetry = instance(&receiver, "parentbased_always_on", &lines);
    let app = app(&telemetry);
    let (headers, _) = call(
        &app,
        "/orders/7",
        Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")),
    )
    .await;
    let snapshot = exported(&receiver, &telemetry, |s| {
        s.spans.len() >= 3 && s.log_records.len() >= 3
    })
    .await;

    let server = span(&snapshot, "GET /orders/{id}");
    assert_eq!(
        server.trace_id_hex(),
        CALLER_TRACE,
        "the caller's trace continues"
    );
    assert_eq!(server.parent_span_id_hex().as_deref(), Some(CALLER_SPAN));
    assert_eq!(
        server.attr("order.id").as_deref(),
        Some("7"),
        "set by the handler"
    );
    assert_eq!(server.attr("http.route").as_deref(), Some("/orders/{id}"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    let load = span(&snapshot, "load_order");
    assert_eq!(load.trace_id_hex(), CALLER_TRACE);
    assert_eq!(load.parent_span_id_hex(), Some(server.span_id_hex()));
    for extra in [
        "code.file.path",
        "code.module.name",
        "thread.id",
        "thread.name",
        "target",
    ] {
        assert_eq!(load.attr(extra), None, "{extra} is off by default");
    }
    let publish = span(&snapshot, "publish orders.viewed");
    assert_eq!(publish.parent_span_id_hex(), Some(server.span_id_hex()));
    assert_eq!(
        headers["traceresponse"].to_str().unwrap(),
        format!("00-{CALLER_TRACE}-{}-01", server.span_id_hex())
    );

    // Log lines carry the span they were written in: the request span at the top of the
    // handler, the instrumented function's span inside it, the producer span inside that.
    for (message, owner) in [
        ("handler started", server),
        ("loading order", load),
        ("order event published", publish),
    ] {
        let json = lines.line(message);
        assert_eq!(json["trace_id"], CALLER_TRACE, "{json}");
        assert_eq!(json["span_id"], owner.span_id_hex().as_str(), "{json}");
        let record = snapshot
            .log_records
            .iter()
            .find(|r| r.body_text().as_deref() == Some(message))
            .unwrap_or_else(|| panic!("no OTLP log record {message:?}"));
        assert_eq!(record.trace_id_hex().as_deref(), Some(CALLER_TRACE));
        assert_eq!(record.span_id_hex(), Some(owner.span_id_hex()));
    }
    assert_eq!(lines.line("loading order")["span"], "load_order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_marks_its_request_failed_through_request_span() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = instance(&receiver, "always_on", &Lines::default());
    let app = app(&telemetry);
    call(&app, "/orders/13", None).await;
    let snapshot = exported(&receiver, &telemetry, |s| {
        s.spans.iter().any(|s| s.name() == "GET /orders/{id}")
    })
    .await;
    let server = span(&snapshot, "GET /orders/{id}");
    let status = server.span.status.clone().unwrap_or_default();
    assert_eq!(
        status.code, 2,
        "STATUS_CODE_ERROR although the answer was 200"
    );
    assert_eq!(status.message, "unlucky order");
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_request_gives_its_logs_ids_and_tells_the_next_hop_not_to_sample() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let lines = Lines::default();
    let telemetry = instance(&receiver, "parentbased_always_on", &lines);
    let app = app(&telemetry);
    let (headers, body) = call(
        &app,
        "/orders/8",
        Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00")),
    )
    .await;
    let traceresponse = headers["traceresponse"].to_str().unwrap().to_string();
    assert!(
        traceresponse.starts_with(&format!("00-{CALLER_TRACE}-")) && traceresponse.ends_with("-00"),
        "{traceresponse}"
    );
    let span_id = &traceresponse[36..52];
    let next_hop = body["next_hop"]["traceparent"].as_str().unwrap();
    assert_eq!(next_hop, format!("00-{CALLER_TRACE}-{span_id}-00"));
    let message = body["message"]["traceparent"].as_str().unwrap();
    assert!(message.starts_with(&format!("00-{CALLER_TRACE}-")) && message.ends_with("-00"));
    let json = lines.line("handler started");
    assert_eq!(json["trace_id"], CALLER_TRACE);
    assert_eq!(json["span_id"], span_id);

    // Nothing of the unsampled trace is exported; a sampled request afterwards is.
    call(&app, "/orders/9", None).await;
    let snapshot = exported(&receiver, &telemetry, |s| {
        s.spans.iter().any(|s| s.name() == "GET /orders/{id}")
    })
    .await;
    assert!(
        snapshot
            .spans
            .iter()
            .all(|s| s.trace_id_hex() != CALLER_TRACE),
        "an unsampled span was exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_span_continues_the_producers_trace_and_can_be_marked_failed() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let lines = Lines::default();
    let telemetry = instance(&receiver, "parentbased_always_on", &lines);
    let mut headers = HashMap::<String, String>::new();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        producer_span("nats", "orders.viewed", &mut headers).end();
        let consume = consumer_span("nats", "orders.viewed", &headers);
        consume.in_scope(|| tracing::warn!("malformed order event skipped"));
        consume.set_error("malformed_payload");
        consume.end();
    });
    let snapshot = exported(&receiver, &telemetry, |s| s.spans.len() >= 2).await;
    let producer = span(&snapshot, "publish orders.viewed");
    let consumer = span(&snapshot, "process orders.viewed");
    assert_eq!(consumer.trace_id_hex(), producer.trace_id_hex());
    assert_eq!(consumer.parent_span_id_hex(), Some(producer.span_id_hex()));
    assert_eq!(consumer.span.links.len(), 1, "linked to the producer");
    assert_eq!(consumer.attr("messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        consumer.attr("messaging.operation.type").as_deref(),
        Some("process")
    );
    assert_eq!(
        consumer.attr("error.type").as_deref(),
        Some("malformed_payload")
    );
    assert_eq!(consumer.span.status.clone().unwrap_or_default().code, 2);
    let json = lines.line("malformed order event skipped");
    assert_eq!(json["span_id"], consumer.span_id_hex().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_attributes_of_tracing_spans_come_back_when_asked_for() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = builder()
        .service_name("shop")
        .span_source_attributes(true)
        .env_vars([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
            ("OTEL_LOGS_EXPORTER", "none".to_string()),
        ])
        .log_writer(std::io::sink)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        tracing::info_span!("checkout").in_scope(|| {});
    });
    let snapshot = exported(&receiver, &telemetry, |s| !s.spans.is_empty()).await;
    let checkout = span(&snapshot, "checkout");
    for extra in ["code.file.path", "code.line.number", "thread.id"] {
        assert!(checkout.attr(extra).is_some(), "{extra} missing");
    }
    // Not semantic-convention attributes: never recorded.
    for absent in ["target", "code.module.name", "level"] {
        assert_eq!(
            checkout.attr(absent),
            None,
            "{absent} is not a registry attribute"
        );
    }
}
