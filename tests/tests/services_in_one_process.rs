#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The three example services in one process, each with its own non-global telemetry instance,
//! the message hop over the in-process channel (no broker): one trace still crosses all three.

mod support;

use std::time::{Duration, Instant};

use platform_telemetry::testing::{self, Capture, CapturedSpan};
use tracing::instrument::WithSubscriber as _;

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// Waits (polling the in-memory capture) until `capture` holds a span named `name`.
async fn span_named(capture: &Capture, name: &str) -> CapturedSpan {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(span) = capture.spans().into_iter().find(|s| s.name == name) {
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no span {name:?}: {:#?}",
            capture.spans()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_in_process_channel_carries_the_trace_like_nats_does() {
    let (gateway_t, gateway_capture) = testing::capture("gateway").unwrap();
    let (orders_t, orders_capture) = testing::capture("orders").unwrap();
    let (worker_t, worker_capture) = testing::capture("worker").unwrap();

    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(worker::consume_channel(receiver).with_subscriber(worker_t.subscriber()));
    let orders_url = serve(orders::router_for(
        orders::Events::Channel(sender),
        &orders_t,
    ))
    .await;
    let gateway_url = serve(gateway::router_for(
        gateway::Upstream::for_telemetry(orders_url, &gateway_t),
        &gateway_t,
    ))
    .await;

    let response = support::http()
        .get(format!("{gateway_url}/orders/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let consumer = span_named(&worker_capture, "process orders.viewed").await;
    let producer = span_named(&orders_capture, "publish orders.viewed").await;
    let orders_server = span_named(&orders_capture, "GET /orders/{id}").await;
    let client = span_named(&gateway_capture, "GET").await;
    let gateway_server = span_named(&gateway_capture, "GET /orders/{id}").await;

    for span in [&consumer, &producer, &orders_server, &client] {
        assert_eq!(span.trace_id, gateway_server.trace_id, "{}", span.name);
    }
    assert_eq!(consumer.parent_span_id.as_ref(), Some(&producer.span_id));
    assert_eq!(
        producer.parent_span_id.as_ref(),
        Some(&orders_server.span_id)
    );
    assert_eq!(orders_server.parent_span_id.as_ref(), Some(&client.span_id));
    assert_eq!(
        client.parent_span_id.as_ref(),
        Some(&gateway_server.span_id)
    );
    assert_eq!(consumer.kind, "Consumer");
    assert_eq!(producer.attributes["messaging.system"], "in_process");

    let processed = worker_capture
        .log_records()
        .into_iter()
        .find(|l| l.body == "order event processed")
        .expect("the worker logged");
    assert_eq!(processed.trace_id.as_ref(), Some(&gateway_server.trace_id));
    assert!(
        gateway_t
            .scrape_metrics(None)
            .body
            .contains("http_client_request_duration_seconds")
    );
    assert!(
        orders_t
            .scrape_metrics(None)
            .body
            .contains(r#"http_route="/orders/{id}""#)
    );
}
