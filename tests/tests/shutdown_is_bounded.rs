#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The guard's shutdown returns within its bound on every runtime flavour, with the endpoint
//! present (data arrives) or gone (nothing blocks), and a flood with no endpoint keeps memory
//! bounded and counts what it drops.

mod support;

use std::time::Duration;

use otlp_receiver::OtlpReceiver;
use support::{closed_endpoint, scenario, scenario_with};

/// The default shutdown bound (5 s) plus generous room for process start and exit.
const BOUND: Duration = Duration::from_secs(5 + 3);

#[tokio::test]
async fn dropping_the_guard_inside_a_current_thread_runtime_exports_over_grpc_and_http() {
    for grpc in [true, false] {
        let receiver = OtlpReceiver::start().await.unwrap();
        let (endpoint, protocol) = if grpc {
            (receiver.grpc_endpoint(), "grpc")
        } else {
            (receiver.http_endpoint(), "http/protobuf")
        };
        let run = scenario(
            &["checkout-current-thread"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ],
        )
        .await;
        run.assert_success();
        let snapshot = receiver.snapshot();
        assert!(
            snapshot.spans.iter().any(|s| s.name() == "charge"),
            "{protocol}: spans were flushed by the guard before the process exited"
        );
        assert!(snapshot.log_records.len() >= 2, "{protocol}");
    }
}

#[tokio::test]
async fn on_one_cpu_the_guard_flushes_over_grpc() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let run = scenario_with(
        Some(&["taskset", "-c", "0"]),
        &["checkout-current-thread"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    )
    .await;
    run.assert_success();
    assert!(
        receiver
            .snapshot()
            .spans
            .iter()
            .any(|s| s.name() == "charge")
    );
}

#[tokio::test]
async fn shutdown_with_the_endpoint_gone_returns_within_the_bound() {
    for protocol in ["grpc", "http/protobuf"] {
        let run = scenario(
            &["checkout-current-thread"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &closed_endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ],
        )
        .await;
        run.assert_success();
        let shutdown_ms = run.result()["shutdown_ms"].as_f64().unwrap_or(f64::MAX);
        assert!(
            shutdown_ms < 5_500.0,
            "{protocol}: shutdown took {shutdown_ms} ms"
        );
        assert!(
            run.elapsed < BOUND,
            "{protocol}: the process took {:?}",
            run.elapsed
        );
    }
}

#[tokio::test]
async fn shutdown_with_a_hanging_endpoint_honors_the_export_timeout() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.set_behavior(otlp_receiver::Behavior::Hang);
    let run = scenario(
        &["checkout-current-thread"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
        ],
    )
    .await;
    run.assert_success();
    // The export gives up after 300 ms, so shutdown ends well before its own 5 s bound.
    let shutdown_ms = run.result()["shutdown_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(shutdown_ms < 2_500.0, "shutdown took {shutdown_ms} ms");
}

#[tokio::test]
async fn a_flood_of_spans_with_no_endpoint_stays_fast_bounded_and_counted() {
    let run = scenario(
        &["flood", "100000"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &closed_endpoint()),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    )
    .await;
    run.assert_success();
    let r = run.result();
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    // The queue (2048 by default) bounds what is held; everything else is dropped and counted.
    assert_eq!(num("capacity"), 2048.0);
    assert!(num("queued") <= 2048.0, "{r}");
    // Every span is accounted for: dropped at the full queue, or failed in an export attempt
    // (how many batches the exporter tries against the closed port before the flood ends
    // depends on timing, so the split is not fixed; the sum is).
    assert_eq!(
        num("dropped") + num("failed_after_shutdown") + num("exported_after_shutdown"),
        100_000.0,
        "every span is counted: {r}"
    );
    assert!(
        num("dropped") >= 90_000.0,
        "most of a flood is dropped: {r}"
    );
    // Memory: 100k spans held would take far more than this (each SpanData is ~0.5 KiB).
    assert!(num("rss_growth_kib") < 32.0 * 1024.0, "{r}");
    // The emit loop never waits for the endpoint (debug build: generous bound).
    assert!(num("emit_ns_per_span") < 100_000.0, "{r}");
    assert!(num("shutdown_ms") < 5_500.0, "{r}");
    let metric = r["queue_full_metric"].as_str().unwrap_or("");
    let exposed: f64 = metric
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(exposed > 0.0, "drops are exposed on /metrics: {metric:?}");
}
