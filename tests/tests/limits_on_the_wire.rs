#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The specification's attribute limits and the metric cardinality limit, given through
//! `Builder::env_vars` (the library's own configuration, not the SDK's process-env reads), as a
//! real OTLP receiver and a Prometheus scrape see them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use otlp_receiver::{OtlpReceiver, any_value_to_string};
use platform_telemetry::Telemetry;

const WAIT: Duration = Duration::from_secs(20);

/// What the instance wrote to its log output (its stdout stand-in).
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn build(receiver: &OtlpReceiver, limits: &[(&'static str, &'static str)]) -> Telemetry {
    build_logging_to(receiver, limits, LogLines::default())
}

fn build_logging_to(
    receiver: &OtlpReceiver,
    limits: &[(&'static str, &'static str)],
    lines: LogLines,
) -> Telemetry {
    let endpoint = receiver.http_endpoint();
    let mut env: Vec<(String, String)> = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
        ("OTEL_TRACES_SAMPLER".into(), "always_on".into()),
        ("OTEL_METRICS_EXPORTER".into(), "prometheus".into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into()),
        ("OTEL_BLRP_SCHEDULE_DELAY".into(), "50".into()),
    ];
    env.extend(limits.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    platform_telemetry::builder()
        .service_name("limited")
        .span_source_attributes(false)
        .env_vars(env)
        .log_writer(move || lines.clone())
        .build()
        .unwrap()
}

fn string_values(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn span_limits_truncate_values_and_count_what_they_drop() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = build(
        &receiver,
        &[
            // The general limits, and a span-specific count that wins over the general one.
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5"),
            // Span events from log lines start with tracing-opentelemetry's `level` and `target`,
            // which take two places under the limit and are then removed (not registry
            // attributes): 3 leaves one place for the event's own first field.
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "2"),
        ],
    );
    assert!(
        telemetry.config_warnings().is_empty(),
        "{:?}",
        telemetry.config_warnings()
    );
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        let span = tracing::info_span!(
            "limited",
            a = "abcdefghij",
            b = "ünïcödé",
            c = 1234567890_i64,
            d = "dropped",
            e = "dropped too",
        );
        let _entered = span.enter();
        for i in 0..4 {
            tracing::info!(
                i,
                first = "event attribute",
                second = "over the limit",
                "step"
            );
        }
    });
    telemetry.force_flush().unwrap();
    let snapshot = receiver
        .wait_until(WAIT, |s| s.spans.iter().any(|s| s.name() == "limited"))
        .await
        .unwrap();
    let span = &snapshot
        .spans
        .iter()
        .find(|s| s.name() == "limited")
        .unwrap()
        .span;

    assert_eq!(span.attributes.len(), 3, "{:?}", span.attributes);
    assert!(
        span.dropped_attributes_count >= 2,
        "{}",
        span.dropped_attributes_count
    );
    assert_eq!(span.attributes[0].key, "a");
    assert_eq!(
        string_values(&span.attributes)[..2],
        ["abcde".to_string(), "ünïcö".to_string()],
        "strings are cut to 5 characters (not bytes)"
    );
    assert_eq!(
        any_value_to_string(span.attributes[2].value.as_ref().unwrap()),
        "1234567890",
        "numbers are not truncated"
    );

    assert_eq!(span.events.len(), 2, "OTEL_SPAN_EVENT_COUNT_LIMIT");
    assert_eq!(span.dropped_events_count, 2);
    for event in &span.events {
        assert_eq!(
            event.attributes.len(),
            1,
            "the general count limit applies: {event:?}"
        );
        assert_eq!(event.attributes[0].key, "i", "{event:?}");
        assert!(event.dropped_attributes_count >= 2, "{event:?}");
        assert!(
            string_values(&event.attributes)
                .iter()
                .all(|v| v.chars().count() <= 5)
        );
    }
    telemetry.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn log_record_limits_apply_to_attributes_and_are_counted() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = build(
        &receiver,
        &[
            ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "2"),
            ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    );
    let body = "a log message longer than any limit";
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        tracing::info!(
            tenant = "acme-corp",
            user = "u-123456",
            region = "eu",
            "{body}"
        );
    });
    telemetry.force_flush().unwrap();
    let snapshot = receiver
        .wait_until(WAIT, |s| !s.log_records.is_empty())
        .await
        .unwrap();
    let record = &snapshot.log_records[0].record;
    assert_eq!(
        snapshot.log_records[0].body_text().as_deref(),
        Some(body),
        "bodies are not limited"
    );
    assert_eq!(record.attributes.len(), 2, "{:?}", record.attributes);
    assert_eq!(string_values(&record.attributes), ["acme", "u-12"]);

    let scrape = telemetry.scrape_metrics(None).body;
    let dropped = scrape
        .lines()
        .find(|l| l.starts_with("platform_telemetry_log_record_dropped_attributes"))
        .unwrap_or_else(|| panic!("the drops are counted on /metrics:\n{scrape}"));
    assert!(dropped.ends_with(" 1"), "region was dropped: {dropped}");
    telemetry.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cardinality_limit_folds_the_rest_into_one_overflow_series_and_says_so() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let lines = LogLines::default();
    let telemetry = build_logging_to(
        &receiver,
        &[
            ("OTEL_RUST_METRICS_CARDINALITY_LIMIT", "4"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
        lines.clone(),
    );
    let counter = telemetry.meter("checkout").u64_counter("orders").build();
    for tenant in 0..10 {
        counter.add(1, &[KeyValue::new("tenant", tenant.to_string())]);
    }
    let scrape = || {
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            telemetry.scrape_metrics(None).body
        })
    };
    let first = scrape();
    let scrape = scrape();
    assert_eq!(
        first
            .lines()
            .filter(|l| l.starts_with("orders_total{"))
            .count(),
        5,
        "the second scrape shows the same series: {first}"
    );
    let warnings: Vec<String> = lines
        .text()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("otel.metric.overflow=true"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per scrape: {warnings:?}"
    );
    assert!(
        warnings[0].contains("orders")
            && warnings[0].contains("OTEL_RUST_METRICS_CARDINALITY_LIMIT"),
        "it names the metric and the variable: {}",
        warnings[0]
    );
    let series: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("orders_total{"))
        .collect();
    // The SDK keeps `limit` attribute sets and adds the overflow series (the specification
    // counts the overflow series within the limit; the Rust SDK does not).
    assert_eq!(
        series.len(),
        5,
        "4 attribute sets and the overflow series:\n{scrape}"
    );
    let overflow = series
        .iter()
        .find(|l| l.contains("otel_metric_overflow=\"true\""))
        .unwrap_or_else(|| panic!("an overflow series:\n{scrape}"));
    assert!(
        overflow.ends_with(" 6"),
        "the 6 other tenants add up there: {overflow}"
    );
    assert!(
        scrape.lines().any(
            |l| l.starts_with("platform_telemetry_metric_overflowed_streams") && l.ends_with(" 1")
        ),
        "the overflowed stream is counted:\n{scrape}"
    );
    telemetry.shutdown().unwrap();
}
