#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Per-operation cost with the full pipeline active.
//!
//! Each benchmark runs under the subscriber of a non-global instance built by
//! `platform_telemetry::builder().env_vars([...]).log_writer(std::io::sink).build()`, exporting
//! spans and log records over OTLP/HTTP (batch processors, default queue and batch sizes) to a
//! real `otlp-receiver` on loopback, served by a one-worker tokio runtime in this process.
//! JSON log lines are formatted in full and written to `std::io::sink`.
//!
//! Results (2-core x86_64 VM, Rust 1.95, release, 2026-11-23; criterion medians; how to read
//! them: BENCHMARKS.md):
//!
//! | Benchmark                          | Median  |
//! |------------------------------------|---------|
//! | baseline_fmt_only/span_start_end   | 243 ns  |
//! | span/start_end_sampled             | 1.26 µs |
//! | span/start_end_not_sampled         | 1.02 µs |
//! | baseline_fmt_only/event_in_span    | 830 ns  |
//! | log/event_in_sampled_span          | 1.90 µs |
//! | metrics/histogram_record           | 82 ns   |
//! | metrics/counter_add                | 73 ns   |
//! | propagation/inject_context         | 249 ns  |
//! | propagation/extract                | 294 ns  |
//!
//! `cargo bench -p platform-telemetry --bench pipeline` reruns them. The `baseline_fmt_only/*` benchmarks run the same span and event under a plain
//! `tracing_subscriber::fmt()` subscriber with no OpenTelemetry, for the ratios there.
//!
//! A tight loop produces spans far faster than one loopback export thread sends them, so the
//! bounded queue fills and most spans of a sampled run are turned away (and counted): the
//! "dropped" column. The span and log numbers are therefore the cost paid on the application's
//! thread; the sustainable export rate is measured by `benches/export_throughput.rs`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use platform_telemetry::Telemetry;

mod common;
use common::{Receiver, telemetry};

/// Prints what the pipeline did during a group, for the table above.
fn report(what: &str, telemetry: &Telemetry) {
    let _ = telemetry.force_flush();
    let stats = telemetry.pipeline_stats();
    eprintln!(
        "pipeline after {what}: spans exported {} dropped {} failed {}; logs exported {} dropped {} failed {}",
        stats.spans.exported,
        stats.spans.dropped,
        stats.spans.failed,
        stats.logs.exported,
        stats.logs.dropped,
        stats.logs.failed,
    );
}

fn spans(c: &mut Criterion) {
    let receiver = Receiver::start();
    for (name, sampler) in [
        ("start_end_sampled", "always_on"),
        ("start_end_not_sampled", "always_off"),
    ] {
        let telemetry = telemetry(&receiver, sampler);
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            c.bench_function(&format!("span/{name}"), |b| {
                b.iter(|| {
                    let span = tracing::info_span!("bench.operation", order_id = 42_u64);
                    span.in_scope(|| black_box(&span));
                });
            });
        });
        report(name, &telemetry);
    }
}

/// The same span and event under a plain `tracing_subscriber::fmt()` subscriber writing to
/// `std::io::sink`, no OpenTelemetry: what a service that only logs already pays, so the
/// pipeline's numbers read as a ratio to it.
fn baseline(c: &mut Criterion) {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("baseline_fmt_only/span_start_end", |b| {
            b.iter(|| {
                let span = tracing::info_span!("bench.operation", order_id = 42_u64);
                span.in_scope(|| black_box(&span));
            });
        });
        let span = tracing::info_span!("bench.request", order_id = 42_u64);
        let _entered = span.enter();
        c.bench_function("baseline_fmt_only/event_in_span", |b| {
            b.iter(|| {
                tracing::info!(
                    order_id = black_box(42_u64),
                    status = "paid",
                    "order placed"
                );
            });
        });
    });
}

fn logs(c: &mut Criterion) {
    let receiver = Receiver::start();
    let telemetry = telemetry(&receiver, "always_on");
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        let span = tracing::info_span!("bench.request", order_id = 42_u64);
        let _entered = span.enter();
        c.bench_function("log/event_in_sampled_span", |b| {
            b.iter(|| {
                tracing::info!(
                    order_id = black_box(42_u64),
                    status = "paid",
                    "order placed"
                );
            });
        });
    });
    report("log/event_in_sampled_span", &telemetry);
}

fn metrics(c: &mut Criterion) {
    let receiver = Receiver::start();
    let telemetry = telemetry(&receiver, "always_on");
    let meter = telemetry.meter("bench");
    let histogram = meter
        .f64_histogram("bench.request.duration")
        .with_unit("s")
        .build();
    let counter = meter.u64_counter("bench.orders").build();
    let attributes = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/orders/{id}"),
        KeyValue::new("http.response.status_code", 200_i64),
    ];
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        c.bench_function("metrics/histogram_record", |b| {
            b.iter(|| histogram.record(black_box(0.0123), &attributes));
        });
        c.bench_function("metrics/counter_add", |b| {
            b.iter(|| counter.add(black_box(1), &attributes));
        });
    });
    // The series exist and are served (the pipeline really ran).
    let scrape = telemetry.scrape_metrics(None).body;
    assert!(scrape.contains("bench_orders_total"), "{scrape}");
}

fn propagation(c: &mut Criterion) {
    let receiver = Receiver::start();
    let telemetry = telemetry(&receiver, "always_on");
    let span_context = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
        SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(span_context);
    let incoming: HashMap<String, String> = HashMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]);
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        c.bench_function("propagation/inject_context", |b| {
            b.iter(|| {
                let mut headers: HashMap<String, String> = HashMap::new();
                platform_telemetry::propagation::inject_context(&cx, &mut headers);
                black_box(headers)
            });
        });
        c.bench_function("propagation/extract", |b| {
            b.iter(|| {
                let cx = platform_telemetry::propagation::extract(black_box(&incoming));
                black_box(cx.span().span_context().is_valid())
            });
        });
    });
    // Sanity: the round trip carries the context.
    let mut headers: HashMap<String, String> = HashMap::new();
    platform_telemetry::propagation::inject_context(&cx, &mut headers);
    let back = platform_telemetry::propagation::extract(&headers);
    assert_eq!(
        back.span().span_context().trace_id(),
        cx.span().span_context().trace_id()
    );
}

criterion_group!(benches, baseline, spans, logs, metrics, propagation);
criterion_main!(benches);
