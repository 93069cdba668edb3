#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The messaging metrics `producer_span` and `consumer_span` record, as `/metrics` serves them:
//! one record per message whatever the sampling, failures split out by `error.type`, and
//! destinations that hold ids kept to their template so the series stay bounded.

use std::collections::HashMap;

use platform_telemetry::propagation::{Destination, consumer_span, producer_span};
use platform_telemetry::testing;

/// The series of `family` (e.g. `messaging_client_sent_messages_total`) in the scrape.
fn series<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn destinations_with_ids_are_counted_by_their_template_and_spans_keep_both() {
    let (telemetry, capture) = testing::capture("orders").unwrap();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        for id in 1..=50 {
            let subject = format!("orders.{id}.viewed");
            let mut headers = HashMap::new();
            producer_span(
                "nats",
                Destination::templated(&subject, "orders.{id}.viewed"),
                &mut headers,
            )
            .end();
        }
    });
    let text = capture.metrics_text();
    let sent = series(&text, "messaging_client_sent_messages_total");
    assert_eq!(sent.len(), 1, "one series for fifty subjects: {sent:?}");
    assert!(
        sent[0].contains(r#"messaging_destination_template="orders.{id}.viewed""#),
        "{}",
        sent[0]
    );
    assert!(
        !sent[0].contains("messaging_destination_name"),
        "{}",
        sent[0]
    );
    assert_eq!(value(sent[0]), 50.0);
    assert!(
        !text.contains("orders.7.viewed"),
        "an id reached the metrics"
    );
    assert_eq!(
        series(&text, "messaging_client_operation_duration_seconds_count").len(),
        1
    );

    let spans = capture.spans();
    let span = spans
        .iter()
        .find(|s| {
            s.attributes
                .get("messaging.destination.name")
                .map(String::as_str)
                == Some("orders.7.viewed")
        })
        .unwrap();
    assert_eq!(span.name, "publish orders.{id}.viewed");
    assert_eq!(span.kind, "Producer");
    assert_eq!(
        span.attributes["messaging.destination.template"],
        "orders.{id}.viewed"
    );
}

#[test]
fn a_failed_processing_is_its_own_series_and_each_message_counts_once() {
    let (telemetry, capture) = testing::capture("worker").unwrap();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        let headers: HashMap<String, String> = HashMap::new();
        for id in 0..10 {
            let span = consumer_span("nats", "orders.viewed", &headers);
            // A clone kept past `end` (as a spawned task would): still one record.
            let clone = span.clone();
            if id == 3 {
                span.set_error("order_rejected");
            }
            span.end();
            drop(clone);
        }
    });
    let text = capture.metrics_text();
    let consumed = series(&text, "messaging_client_consumed_messages_total");
    let failed: Vec<&&str> = consumed
        .iter()
        .filter(|l| l.contains(r#"error_type="order_rejected""#))
        .collect();
    let ok: Vec<&&str> = consumed
        .iter()
        .filter(|l| !l.contains("error_type"))
        .collect();
    assert_eq!((failed.len(), ok.len()), (1, 1), "{consumed:?}");
    assert_eq!(value(failed[0]), 1.0);
    assert_eq!(value(ok[0]), 9.0);
    for line in &consumed {
        assert!(line.contains(r#"messaging_system="nats""#), "{line}");
        assert!(
            line.contains(r#"messaging_operation_name="process""#),
            "{line}"
        );
        assert!(
            line.contains(r#"messaging_destination_name="orders.viewed""#),
            "{line}"
        );
    }
    let counts = series(&text, "messaging_process_duration_seconds_count");
    assert_eq!(
        counts.iter().map(|l| value(l)).sum::<f64>(),
        10.0,
        "{counts:?}"
    );
    let spans = capture.spans();
    let errors: Vec<_> = spans.iter().filter(|s| s.is_error).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].attributes["error.type"], "order_rejected");
    assert_eq!(errors[0].name, "process orders.viewed");
}

#[test]
fn unsampled_messages_are_still_measured() {
    let telemetry = platform_telemetry::builder()
        .service_name("worker")
        .env_vars([
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ])
        .log_writer(std::io::sink)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        let headers: HashMap<String, String> = HashMap::new();
        for _ in 0..4 {
            let span = consumer_span("kafka", "payments", &headers);
            assert!(!span.is_recording());
            span.end();
        }
    });
    let text = telemetry.scrape_metrics(None).body;
    let consumed = series(&text, "messaging_client_consumed_messages_total");
    assert_eq!(consumed.len(), 1, "{text}");
    assert_eq!(value(consumed[0]), 4.0);
}
