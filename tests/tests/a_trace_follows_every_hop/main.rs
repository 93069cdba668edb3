#![allow(clippy::unwrap_used, clippy::expect_used)]
//! gateway → (HTTP) → orders → (real NATS) → worker, each its own process configured by env
//! (and orders → real PostgreSQL and Redis in `data_stores`),
//! observed on a real OTLP receiver: one trace across every hop, parents intact, kinds and names
//! as the semantic conventions say, logs of every hop in the trace, nothing secret recorded.

#[path = "../support/mod.rs"]
mod support;

mod data_stores;
mod shop;

use std::collections::HashSet;

use otlp_receiver::Snapshot;
use shop::{
    Shop, WAIT, find, kind, points_of, spans_of, start_shop, start_shop_with,
    traceresponse_trace_id,
};
use support::http;

/// Waits for the whole trace (the worker's consumer span is the last hop) and checks it.
async fn assert_full_trace(shop: &Shop, trace_id: &str, remote_parent: Option<&str>) {
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            // Each service exports on its own schedule: wait for all five spans.
            s.spans
                .iter()
                .filter(|sp| sp.trace_id_hex() == trace_id)
                .count()
                >= 5
                && s.log_records
                    .iter()
                    .filter(|l| l.trace_id_hex().as_deref() == Some(trace_id))
                    .count()
                    >= 3
        })
        .await
        .unwrap_or_else(|e| panic!("trace {trace_id} incomplete: {e}"));
    let spans = spans_of(&snapshot, trace_id);

    // SpanKind in OTLP: 2 server, 3 client, 4 producer, 5 consumer.
    let gateway_server = find(&spans, "gateway", "GET /orders/{id}");
    let gateway_client = find(&spans, "gateway", "GET");
    let orders_server = find(&spans, "orders", "GET /orders/{id}");
    let producer = find(&spans, "orders", "publish orders.viewed");
    let consumer = find(&spans, "worker", "process orders.viewed");
    assert_eq!(kind(gateway_server), 2);
    assert_eq!(kind(gateway_client), 3);
    assert_eq!(kind(orders_server), 2);
    assert_eq!(kind(producer), 4);
    assert_eq!(kind(consumer), 5);

    // Parent links: every hop's parent is the previous hop.
    assert_eq!(
        gateway_server.parent_span_id_hex().as_deref(),
        remote_parent,
        "the gateway continues the caller's context (or starts the trace)"
    );
    assert_eq!(
        gateway_client.parent_span_id_hex(),
        Some(gateway_server.span_id_hex())
    );
    assert_eq!(
        orders_server.parent_span_id_hex(),
        Some(gateway_client.span_id_hex())
    );
    assert_eq!(
        producer.parent_span_id_hex(),
        Some(orders_server.span_id_hex())
    );
    assert_eq!(consumer.parent_span_id_hex(), Some(producer.span_id_hex()));
    assert_eq!(
        consumer
            .span
            .links
            .first()
            .map(|l| otlp_receiver::hex(&l.span_id)),
        Some(producer.span_id_hex()),
        "the consumer links to the producer"
    );

    // No orphans: every parent in the trace exists in it (the remote caller aside).
    let ids: HashSet<String> = spans.iter().map(|s| s.span_id_hex()).collect();
    for span in &spans {
        if let Some(parent) = span.parent_span_id_hex() {
            assert!(
                ids.contains(&parent) || Some(parent.as_str()) == remote_parent,
                "orphan span {} (parent {parent})",
                span.name()
            );
        }
    }

    // Semantic-convention attributes on the server span; route template, never the raw path.
    assert_eq!(
        gateway_server.attr("http.route").as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(
        gateway_server.attr("http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        gateway_server.attr("url.path").as_deref(),
        Some("/orders/7")
    );
    assert_eq!(gateway_server.attr("url.scheme").as_deref(), Some("http"));
    assert_eq!(
        gateway_server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        gateway_server.attr("network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        gateway_server.attr("server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(producer.attr("messaging.system").as_deref(), Some("nats"));
    assert_eq!(
        producer.attr("messaging.destination.name").as_deref(),
        Some("orders.viewed")
    );

    // Logs of every hop carry the trace id.
    for (service, message) in [
        ("gateway", "fetching order from orders"),
        ("orders", "order looked up"),
        ("worker", "order event processed"),
    ] {
        let record = snapshot.log_records.iter().find(|l| {
            l.service_name().as_deref() == Some(service)
                && l.body_text().as_deref() == Some(message)
                && l.trace_id_hex().as_deref() == Some(trace_id)
        });
        assert!(
            record.is_some(),
            "{service}: no log {message:?} in trace {trace_id}"
        );
    }
}

#[tokio::test]
async fn one_trace_crosses_gateway_orders_nats_and_worker() {
    let shop = start_shop().await;
    let client = http();

    // No incoming context: the gateway starts the trace.
    let response = client
        .get(format!("{}/orders/7", shop.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace_id = traceresponse_trace_id(&response);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["order"]["id"], 7);
    assert_full_trace(&shop, &trace_id, None).await;

    // A caller's traceparent is continued.
    let given_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let given_parent = "00f067aa0ba902b7";
    let response = client
        .get(format!("{}/orders/7", shop.gateway))
        .header("traceparent", format!("00-{given_trace}-{given_parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(traceresponse_trace_id(&response), given_trace);
    assert_full_trace(&shop, given_trace, Some(given_parent)).await;

    // The RED histogram is labelled by route template, never by raw path.
    let metrics = client
        .get(format!("{}/metrics", shop.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = metrics
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(r#"http_route="/orders/{id}""#)
                && l.contains(r#"http_request_method="GET""#)
                && l.contains(r#"http_response_status_code="200""#)
        })
        .unwrap_or_else(|| panic!("no route series in:\n{metrics}"));
    assert!(count.ends_with(" 2"), "{count}");
    assert!(!metrics.contains("/orders/7"));
    assert!(metrics.contains("http_client_request_duration_seconds_count{"));
    // /metrics and /healthz are not traced.
    let snapshot = shop.receiver.snapshot();
    assert!(
        snapshot
            .spans
            .iter()
            .all(|s| !s.name().contains("/metrics") && !s.name().contains("/healthz"))
    );
}

#[tokio::test]
async fn credentials_in_headers_and_query_are_never_recorded() {
    let shop = start_shop().await;
    let response = http()
        .get(format!(
            "{}/orders/9?token=s3cr3t-token&password=hunter2&view=full",
            shop.gateway
        ))
        .header("authorization", "Bearer s3cr3t-bearer")
        .header("cookie", "session=s3cr3t-cookie")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trace_id = traceresponse_trace_id(&response);
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            s.spans
                .iter()
                .filter(|sp| sp.trace_id_hex() == trace_id)
                .count()
                >= 5
                && s.log_records
                    .iter()
                    .filter(|l| l.trace_id_hex().as_deref() == Some(trace_id.as_str()))
                    .count()
                    >= 3
        })
        .await
        .unwrap();
    let server = snapshot
        .spans
        .iter()
        .find(|s| {
            s.trace_id_hex() == trace_id
                && s.service_name().as_deref() == Some("gateway")
                && s.name() == "GET /orders/{id}"
        })
        .unwrap();
    assert_eq!(
        server.attr("url.query").as_deref(),
        Some("token=REDACTED&password=REDACTED&view=full")
    );
    let everything = format!("{snapshot:?}");
    for secret in ["s3cr3t", "hunter2"] {
        assert!(!everything.contains(secret), "{secret} was exported");
    }
    let metrics = http()
        .get(format!("{}/metrics", shop.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("s3cr3t") && !metrics.contains("hunter2"));
}

#[tokio::test]
async fn a_rejected_order_is_a_failed_consumer_span_and_a_failed_processing_metric() {
    let shop = start_shop_with(&[
        ("OTEL_METRICS_EXPORTER", "otlp"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ])
    .await;
    let client = http();
    // The worker rejects ids that are a multiple of 10; 7 goes through.
    let mut traces = Vec::new();
    for id in [7, 10] {
        let response = client
            .get(format!("{}/orders/{id}", shop.gateway))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the HTTP path does not fail");
        traces.push(traceresponse_trace_id(&response));
    }
    let (accepted, rejected) = (traces[0].clone(), traces[1].clone());

    let failed_processing = |s: &Snapshot| {
        points_of(s, "worker", "messaging.process.duration")
            .iter()
            .any(|p| p.attr("error.type") == Some("order_rejected"))
    };
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            let consumers = s
                .spans
                .iter()
                .filter(|sp| sp.name() == "process orders.viewed")
                .count();
            consumers >= 2 && failed_processing(s)
        })
        .await
        .unwrap_or_else(|e| panic!("no failed processing arrived: {e}"));

    // The span: an error with error.type, in the order's trace; the accepted one is not.
    let consumer = |trace: &str| {
        let spans = spans_of(&snapshot, trace);
        find(&spans, "worker", "process orders.viewed").clone()
    };
    let failed = consumer(&rejected);
    // Status code in OTLP: 2 is error.
    assert_eq!(failed.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(failed.attr("error.type").as_deref(), Some("order_rejected"));
    let ok = consumer(&accepted);
    assert_ne!(ok.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(ok.attr("error.type"), None);

    // The metrics: processing split by outcome, with the semantic conventions' attributes.
    let processed = points_of(&snapshot, "worker", "messaging.process.duration");
    let failed_point = processed
        .iter()
        .find(|p| p.attr("error.type") == Some("order_rejected"))
        .unwrap();
    assert_eq!(failed_point.count, Some(1));
    assert_eq!(failed_point.attr("messaging.system"), Some("nats"));
    assert_eq!(
        failed_point.attr("messaging.destination.name"),
        Some("orders.viewed")
    );
    assert_eq!(
        failed_point.attr("messaging.operation.name"),
        Some("process")
    );
    assert!(
        processed
            .iter()
            .any(|p| p.attr("error.type").is_none() && p.count >= Some(1)),
        "the accepted order is a successful processing: {processed:?}"
    );
    let consumed = points_of(&snapshot, "worker", "messaging.client.consumed.messages");
    assert!(
        consumed
            .iter()
            .any(|p| p.attr("error.type") == Some("order_rejected") && p.value == Some(1.0)),
        "{consumed:?}"
    );
    // The producer side: two messages sent, none failed.
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            points_of(s, "orders", "messaging.client.sent.messages")
                .iter()
                .any(|p| p.value == Some(2.0))
        })
        .await
        .unwrap_or_else(|e| panic!("orders never reported two sent messages: {e}"));
    let sent = points_of(&snapshot, "orders", "messaging.client.sent.messages");
    assert!(
        sent.iter().all(|p| p.attr("error.type").is_none()),
        "{sent:?}"
    );
    assert!(
        !points_of(&snapshot, "orders", "messaging.client.operation.duration").is_empty(),
        "the publish duration is recorded"
    );
}
