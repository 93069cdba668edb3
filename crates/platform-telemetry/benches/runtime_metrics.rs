#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the process and tokio runtime metrics cost (`OTEL_RUST_RUNTIME_METRICS`, on by default).
//!
//! They are observable instruments: nothing runs between reads (no timer, no thread), and each
//! read of the metrics calls their callbacks once. So the cost is paid per read, and measured
//! per read, each pair in one run:
//!
//! - `scrape_without` / `scrape_with`: one `/metrics` render (`Telemetry::scrape_metrics`) of
//!   an instance with the library's own metrics and a small HTTP histogram (4 routes), with
//!   the runtime metrics off and on. The difference is the collection (`/proc/self` reads,
//!   tokio's counters) plus encoding their series.
//! - `otlp_export` (printed, not criterion): one OTLP/HTTP metrics export of the same two
//!   instances, each to its own loopback receiver (`SdkMeterProvider::force_flush`: collect,
//!   encode, send, wait for the answer), what the periodic reader does every
//!   `OTEL_METRIC_EXPORT_INTERVAL`; 2000 rounds taking the two in turn, medians.
//!
//! Every instance is built inside a two-worker tokio runtime, so the tokio metrics are those of
//! that runtime. Results: BENCHMARKS.md ("Runtime metrics").

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use platform_telemetry::Telemetry;

// Only `Receiver` and `bench` are used here; the rest is the other benches'.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/in_process.rs"]
mod in_process;
use common::Receiver;
use in_process::bench;

/// An instance with traces and logs off, and metrics on `/metrics` or (with a receiver) pushed
/// over OTLP/HTTP on demand only (the periodic export is an hour away).
fn instance(runtime_metrics: bool, otlp: Option<&Receiver>) -> Telemetry {
    let mut vars = vec![
        ("OTEL_SERVICE_NAME", "bench".to_string()),
        ("OTEL_TRACES_EXPORTER", "none".to_string()),
        ("OTEL_LOGS_EXPORTER", "none".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "3600000".to_string()),
    ];
    match otlp {
        Some(receiver) => vars.extend([
            ("OTEL_METRICS_EXPORTER", "otlp".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
        ]),
        None => vars.push(("OTEL_METRICS_EXPORTER", "prometheus".to_string())),
    }
    let telemetry = platform_telemetry::builder()
        .runtime_metrics(runtime_metrics)
        .env_vars(vars)
        .log_writer(std::io::sink)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .expect("telemetry");
    // What a small HTTP service has besides: a request-duration histogram, four routes.
    let histogram = telemetry
        .meter("bench")
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    for route in ["/orders", "/orders/{id}", "/healthz", "/metrics"] {
        let attributes = [
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", 200_i64),
        ];
        histogram.record(0.0123, &attributes);
    }
    telemetry
}

fn runtime_metrics(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Built in the runtime: its tokio metrics are that runtime's.
    let in_runtime = |runtime_metrics: bool, otlp: Option<&Receiver>| {
        let _entered = runtime.enter();
        instance(runtime_metrics, otlp)
    };

    let (without, with) = (in_runtime(false, None), in_runtime(true, None));
    let (a, b) = (
        without.scrape_metrics(None).body,
        with.scrape_metrics(None).body,
    );
    assert!(!a.contains("\nprocess_cpu_time_seconds_total"), "{a}");
    assert!(b.contains("\ntokio_workers{"), "{b}");
    #[cfg(target_os = "linux")]
    assert!(b.contains("\nprocess_cpu_time_seconds_total{"), "{b}");
    let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!(
        "scrape: {} samples, {} bytes without; {} samples, {} bytes with the runtime metrics",
        samples(&a),
        a.len(),
        samples(&b),
        b.len()
    );
    bench(c, "runtime_metrics/scrape_without", || {
        black_box(without.scrape_metrics(None))
    });
    bench(c, "runtime_metrics/scrape_with", || {
        black_box(with.scrape_metrics(None))
    });
    drop((without, with));

    // OTLP: one receiver each (it keeps every request it gets), and the two exports taken in
    // turn, so both see the same conditions; medians printed (criterion would run the pair
    // one after the other, the second against a fuller receiver).
    let (for_without, for_with) = (Receiver::start(), Receiver::start());
    let (without, with) = (
        in_runtime(false, Some(&for_without)),
        in_runtime(true, Some(&for_with)),
    );
    let export = |telemetry: &Telemetry| {
        let started = Instant::now();
        telemetry.meter_provider().force_flush().expect("export");
        started.elapsed()
    };
    let rounds = if std::env::args().any(|a| a == "--bench") {
        2000
    } else {
        5
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(export(&without));
        b.push(export(&with));
    }
    let median = |d: &mut Vec<Duration>| {
        d.sort_unstable();
        d[d.len() / 2]
    };
    let (a, b) = (median(&mut a), median(&mut b));
    eprintln!(
        "runtime_metrics/otlp_export (median of {rounds}, taken in turn): without {a:?}, with \
         {b:?}, difference {:?}, ratio {:.2}",
        b.saturating_sub(a),
        b.as_secs_f64() / a.as_secs_f64()
    );
}

criterion_group!(benches, runtime_metrics);
criterion_main!(benches);
