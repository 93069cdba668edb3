#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The server layer driven as a tower `Service` without a socket, on a non-global instance
//! with the `testing` capture: error marking, route templates, opt-in headers, and malformed
//! propagation headers.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt as _;
use platform_telemetry::http::ServerLayer;
use platform_telemetry::redact::Redaction;
use platform_telemetry::testing::{self, Capture};
use proptest::prelude::*;
use tower::ServiceExt as _;

fn app(layer: ServerLayer, telemetry: &platform_telemetry::Telemetry) -> Router {
    Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .merge(telemetry.endpoints())
        .layer(layer)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn setup(redaction: Redaction) -> (Router, platform_telemetry::Telemetry, Capture) {
    let (telemetry, capture) = testing::capture("shop").unwrap();
    let layer = ServerLayer::for_telemetry(&telemetry).with_redaction(redaction);
    (app(layer, &telemetry), telemetry, capture)
}

#[tokio::test]
async fn a_5xx_marks_the_span_as_error_and_labels_the_histogram() {
    let (app, telemetry, capture) = setup(Redaction::default());
    let (status, headers, _) = call(&app, Request::get("/boom").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 500);
    let span = &capture.spans()[0];
    assert_eq!(span.name, "GET /boom");
    assert_eq!(span.kind, "Server");
    assert!(span.is_error);
    assert_eq!(span.attributes["error.type"], "500");
    let traceresponse = headers["traceresponse"].to_str().unwrap();
    assert_eq!(
        traceresponse,
        format!("00-{}-{}-01", span.trace_id, span.span_id)
    );
    let metrics = telemetry.scrape_metrics(None).body;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(r#"error_type="500""#)
                && l.contains(r#"http_route="/boom""#)
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn unmatched_paths_and_the_endpoints_keep_cardinality_low() {
    let (app, telemetry, capture) = setup(Redaction::default());
    let (status, _, _) = call(
        &app,
        Request::get("/no/such/path/123")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("http_server_request_duration_seconds"));
    let (status, _, _) = call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    let spans = capture.spans();
    assert_eq!(spans.len(), 1, "only the 404 is traced: {spans:#?}");
    assert_eq!(spans[0].name, "GET");
    assert!(!spans[0].attributes.contains_key("http.route"));
    let metrics = telemetry.scrape_metrics(None).body;
    assert!(!metrics.contains("/no/such/path"));
    assert!(!metrics.contains(r#"http_route="/metrics""#));
}

#[tokio::test]
async fn captured_headers_are_opt_in_and_credentials_never_captured() {
    let (app, _telemetry, capture) = setup(
        Redaction::default()
            .capture_header("x-tenant")
            .capture_header("authorization"),
    );
    let request = Request::get("/orders/7?api_key=k3y&page=2")
        .header("x-tenant", "acme")
        .header("x-not-captured", "nope")
        .header("authorization", "Bearer t0ken")
        .body(Body::empty())
        .unwrap();
    call(&app, request).await;
    let span = &capture.spans()[0];
    assert_eq!(span.name, "GET /orders/{id}");
    assert_eq!(
        span.attributes["http.request.header.x-tenant"],
        "[\"acme\"]"
    );
    assert!(
        !span
            .attributes
            .contains_key("http.request.header.authorization")
    );
    assert!(
        !span
            .attributes
            .contains_key("http.request.header.x-not-captured")
    );
    assert_eq!(span.attributes["url.query"], "api_key=REDACTED&page=2");
    assert!(!format!("{:?}", capture.spans()).contains("t0ken"));
}

#[tokio::test]
async fn a_valid_traceparent_is_continued() {
    let (app, _telemetry, capture) = setup(Redaction::default());
    let request = Request::get("/orders/1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    call(&app, request).await;
    let span = &capture.spans()[0];
    assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
}

/// Malformed trace-context headers: wrong version, bad hex, all-zero ids, wrong lengths,
/// oversized values, arbitrary bytes.
fn malformed_traceparent() -> impl Strategy<Value = String> {
    let hex = |n: usize| proptest::string::string_regex(&format!("[0-9a-f]{{{n}}}")).unwrap();
    prop_oneof![
        (hex(32), hex(16)).prop_map(|(t, s)| format!("ff-{t}-{s}-01")),
        (hex(31), hex(16)).prop_map(|(t, s)| format!("00-{t}z-{s}-01")),
        hex(16).prop_map(|s| format!("00-00000000000000000000000000000000-{s}-01")),
        hex(32).prop_map(|t| format!("00-{t}-0000000000000000-01")),
        (hex(30), hex(16)).prop_map(|(t, s)| format!("00-{t}-{s}-01")),
        (hex(32), hex(16)).prop_map(|(t, s)| format!("00-{t}-{s}-01-{}", "x".repeat(8192))),
        "[ -~]{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn malformed_trace_context_starts_a_fresh_trace_and_never_panics(
        traceparent in malformed_traceparent(),
        tracestate in "[ -~]{0,600}",
        baggage in "[ -~]{0,600}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, _telemetry, capture) = setup(Redaction::default());
        let mut request = Request::get("/orders/1");
        for (name, value) in [("traceparent", &traceparent), ("tracestate", &tracestate), ("baggage", &baggage)] {
            if http::HeaderValue::from_str(value).is_ok() {
                request = request.header(name, value.as_str());
            }
        }
        let (status, _, _) = runtime.block_on(call(&app, request.body(Body::empty()).unwrap()));
        prop_assert_eq!(status, StatusCode::OK);
        let spans = capture.spans();
        prop_assert_eq!(spans.len(), 1);
        let span = &spans[0];
        prop_assert!(span.parent_span_id.is_none(), "{} continued {:?}", traceparent, span);
        prop_assert_ne!(span.trace_id.as_str(), "00000000000000000000000000000000");
    }
}
