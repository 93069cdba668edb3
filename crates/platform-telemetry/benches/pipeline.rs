#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Per-operation cost with the full pipeline active.
//!
//! Each benchmark runs under the subscriber of a non-global instance built by
//! `platform_telemetry::builder().env_vars([...]).log_writer(std::io::sink).build()`, exporting
//! spans and log records over OTLP/HTTP (batch processors, default queue and batch sizes) to a
//! real `otlp-receiver` on loopback, served by a one-worker tokio runtime in this process.
//! JSON log lines are formatted in full and written to `std::io::sink`.
//!
//! Results (2-core x86_64 VM, Rust 1.95, release, 2026-12-04, the VM busier than on 2026-12-03;
//! criterion medians of one run of `cargo bench -p platform-telemetry --bench pipeline --features
//! http-server,http-client -- --warm-up-time 1 --measurement-time 3`; back-to-back runs on this
//! VM differ by up to ±20 % per line, so compare lines of one run; how to read them:
//! BENCHMARKS.md). Allocations: heap allocations (`alloc` + `realloc`) per call made on the
//! benchmark's thread, counted over 10,000 calls after each benchmark (export threads and the
//! receiver not counted):
//!
//! | Benchmark                                 | Median  | Allocs/op |
//! |-------------------------------------------|---------|-----------|
//! | baseline_fmt_only/span_start_end          | 515 ns  | 4         |
//! | baseline_fmt_only/event_in_span           | 1.72 µs | 0         |
//! | span/start_end_sampled                    | 1.37 µs | 8         |
//! | span/start_end_not_sampled                | 988 ns  | 8         |
//! | log/event_in_sampled_span                 | 1.14 µs | 8.77      |
//! | log/json_line_in_span                     | 875 ns  | 6         |
//! | baseline_fmt_only/json_line_in_span       | 2.41 µs | 7         |
//! | metrics/histogram_record (sdk floor)      | 116 ns  | 0         |
//! | metrics/counter_add                       | 102 ns  | 0         |
//! | propagation/inject_context                | 413 ns  | 6         |
//! | propagation/extract                       | 547 ns  | 2         |
//! | sdk_floor/span_start_end                  | 222 ns  | 0         |
//! | sdk_floor/span_start_end_not_sampled      | 74.6 ns | 0         |
//! | sdk_floor/extract                         | 411 ns  | 4         |
//! | messaging/producer_span_sampled           | 2.14 µs | 14        |
//! | messaging/consumer_span_sampled           | 2.37 µs | 11        |
//! | sdk_floor/consumer_by_hand_sampled        | 1.38 µs | 7         |
//! | messaging/producer_span_not_sampled       | 1.42 µs | 9         |
//! | messaging/consumer_span_not_sampled       | 1.34 µs | 6         |
//! | sdk_floor/consumer_by_hand_not_sampled    | 1.11 µs | 7         |
//! | db/sql_operation_sampled                  | 1.35 µs | 4         |
//! | db/command_operation_sampled              | 1.23 µs | 4         |
//! | sdk_floor/db_by_hand_sampled              | 781 ns  | 3         |
//! | db/sql_operation_not_sampled              | 910 ns  | 3         |
//! | db/command_operation_not_sampled          | 868 ns  | 3         |
//! | sdk_floor/db_by_hand_not_sampled          | 583 ns  | 3         |
//! | http_server/request_sampled               | 3.93 µs | 36        |
//! | http_server/request_not_sampled           | 2.64 µs | 28        |
//! | baseline/http_request_bare                | 1.18 µs | 21        |
//! | http_client/request_sampled               | 3.91 µs | 28        |
//! | http_client/request_not_sampled           | 2.44 µs | 20        |
//! | baseline/http_client_bare                 | 1.44 µs | 10        |
//!
//! The `baseline_fmt_only/*` benchmarks run the same span and event under a plain
//! `tracing_subscriber::fmt()` subscriber with no OpenTelemetry (`json_line_in_span`: under
//! `fmt().json()`, against our JSON line with OTLP traces and logs off), for the ratios there.
//! `baseline/*` are the same in-process request without our layer or middleware: the layer's
//! cost is `http_server/*` minus `baseline/http_request_bare`, the middleware's is
//! `http_client/*` minus `baseline/http_client_bare`. `sdk_floor/*` is what the OpenTelemetry
//! SDK itself takes for the same span or extraction. The `http_*` benchmarks need the crate's
//! `http-server` and `http-client` features (without them they are skipped with a note); the
//! server layer and the client middleware are given a non-global instance
//! (`ServerLayer::for_telemetry`, `TracingMiddleware::new(Some(..))`), so the server layer also
//! switches to that instance's subscriber around the call and the poll, which the global
//! instance does not. Allocations are counted by `allocation-counter`, installed as this
//! binary's global allocator (a thread-local count per allocation; timings include it).
//!
//! A tight loop produces spans far faster than one loopback export thread sends them, so the
//! bounded queue fills and most spans of a sampled run are turned away (and counted: the
//! "dropped" figure each group prints to stderr). The span and log numbers are therefore the cost paid on the application's
//! thread; the sustainable export rate is measured by `benches/export_throughput.rs`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use platform_telemetry::Telemetry;

mod common;
#[path = "common/in_process.rs"]
mod in_process;
use common::{Receiver, telemetry};
use in_process::{bench, ready_now};

/// A sampled W3C parent, as a caller or a producer sends it.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

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
            bench(c, &format!("span/{name}"), || {
                let span = tracing::info_span!("bench.operation", order_id = 42_u64);
                span.in_scope(|| black_box(&span));
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
        bench(c, "baseline_fmt_only/span_start_end", || {
            let span = tracing::info_span!("bench.operation", order_id = 42_u64);
            span.in_scope(|| black_box(&span));
        });
        let span = tracing::info_span!("bench.request", order_id = 42_u64);
        let _entered = span.enter();
        bench(c, "baseline_fmt_only/event_in_span", || {
            tracing::info!(
                order_id = black_box(42_u64),
                status = "paid",
                "order placed"
            );
        });
    });
}

fn logs(c: &mut Criterion) {
    let receiver = Receiver::start();
    let telemetry = telemetry(&receiver, "always_on");
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        let span = tracing::info_span!("bench.request", order_id = 42_u64);
        let _entered = span.enter();
        bench(c, "log/event_in_sampled_span", || {
            tracing::info!(
                order_id = black_box(42_u64),
                status = "paid",
                "order placed"
            );
        });
    });
    report("log/event_in_sampled_span", &telemetry);
}

/// The stdout JSON line alone: our instance with OTLP traces and logs off
/// (`OTEL_TRACES_EXPORTER=none`, `OTEL_LOGS_EXPORTER=none`, `LOG_FORMAT=json`) against
/// `tracing_subscriber::fmt().json()`, both writing to `std::io::sink`; the same event in an
/// entered span. The target: ours at most 1.5x the plain line.
fn json_line(c: &mut Criterion) {
    let telemetry = platform_telemetry::builder()
        .env_vars([
            ("OTEL_SERVICE_NAME", "bench"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("LOG_FORMAT", "json"),
        ])
        .log_writer(std::io::sink)
        .build()
        .expect("telemetry");
    let plain = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    for (name, dispatch) in [
        ("log/json_line_in_span", telemetry.subscriber()),
        (
            "baseline_fmt_only/json_line_in_span",
            tracing::Dispatch::new(plain),
        ),
    ] {
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("bench.request", order_id = 42_u64);
            let _entered = span.enter();
            bench(c, name, || {
                tracing::info!(
                    order_id = black_box(42_u64),
                    status = "paid",
                    "order placed"
                );
            });
        });
    }
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
        // Also the SDK floor for the request duration the server layer records.
        bench(c, "metrics/histogram_record", || {
            histogram.record(black_box(0.0123), &attributes);
        });
        bench(c, "metrics/counter_add", || {
            counter.add(black_box(1), &attributes);
        });
    });
    // The series exist and are served (the pipeline really ran; one add of our own, so that a
    // run filtered to other benchmarks passes too).
    counter.add(1, &attributes);
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
    let incoming: HashMap<String, String> =
        HashMap::from([("traceparent".to_string(), TRACEPARENT.to_string())]);
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        bench(c, "propagation/inject_context", || {
            let mut headers: HashMap<String, String> = HashMap::new();
            platform_telemetry::propagation::inject_context(&cx, &mut headers);
            headers
        });
        bench(c, "propagation/extract", || {
            let cx = platform_telemetry::propagation::extract(black_box(&incoming));
            cx.span().span_context().is_valid()
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

/// What the SDK itself costs, beside ours in the same run: a SERVER span started and ended with
/// the instance's SDK tracer, and W3C extraction with the SDK's `TraceContextPropagator`
/// (`metrics/histogram_record` is the histogram floor).
fn sdk_floor(c: &mut Criterion) {
    let receiver = Receiver::start();
    for (name, sampler) in [
        ("span_start_end", "always_on"),
        ("span_start_end_not_sampled", "always_off"),
    ] {
        let telemetry = telemetry(&receiver, sampler);
        let tracer = telemetry
            .tracer_provider()
            .expect("tracer provider")
            .tracer("bench");
        let root = opentelemetry::Context::new();
        bench(c, &format!("sdk_floor/{name}"), || {
            let mut span = tracer
                .span_builder("GET /orders/{id}")
                .with_kind(SpanKind::Server)
                .start_with_context(&tracer, &root);
            span.end();
        });
        report(&format!("sdk_floor/{name}"), &telemetry);
    }
    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let incoming: HashMap<String, String> =
        HashMap::from([("traceparent".to_string(), TRACEPARENT.to_string())]);
    assert!(
        propagator
            .extract(&incoming)
            .span()
            .span_context()
            .is_valid()
    );
    bench(c, "sdk_floor/extract", || {
        let cx = propagator.extract(black_box(&incoming));
        cx.span().span_context().is_valid()
    });
}

/// A PRODUCER span (context written into a fresh header map) and a CONSUMER span (context read
/// from the producer's headers), each started, entered around a no-op and ended.
fn messaging(c: &mut Criterion) {
    use platform_telemetry::propagation::{consumer_span, producer_span};
    let receiver = Receiver::start();
    let received: HashMap<String, String> =
        HashMap::from([("traceparent".to_string(), TRACEPARENT.to_string())]);
    for (suffix, sampler) in [("sampled", "always_on"), ("not_sampled", "always_off")] {
        let telemetry = telemetry(&receiver, sampler);
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            {
                let mut headers: HashMap<String, String> = HashMap::new();
                let span = producer_span("nats", "orders.events", &mut headers);
                assert_eq!(span.is_recording(), sampler == "always_on");
                assert!(headers.contains_key("traceparent"), "{headers:?}");
                span.end();
            }
            bench(c, &format!("messaging/producer_span_{suffix}"), || {
                let mut headers: HashMap<String, String> = HashMap::new();
                let span = producer_span("nats", "orders.events", &mut headers);
                span.in_scope(|| black_box(&headers));
                span.end();
                headers
            });
            bench(c, &format!("messaging/consumer_span_{suffix}"), || {
                let span = consumer_span("nats", "orders.events", black_box(&received));
                span.in_scope(|| black_box(&span));
                span.end();
            });
        });
        // The same CONSUMER span and its two metrics written by hand on the SDK: extract with
        // the SDK's propagator, start the span with its attributes, attach it, end it, record
        // the duration histogram and the counter, as a user without our helper would.
        let tracer = telemetry
            .tracer_provider()
            .expect("tracer provider")
            .tracer("bench");
        let meter = telemetry.meter("bench");
        let duration = meter
            .f64_histogram("messaging.process.duration")
            .with_unit("s")
            .build();
        let consumed = meter
            .u64_counter("messaging.client.consumed.messages")
            .build();
        let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        bench(c, &format!("sdk_floor/consumer_by_hand_{suffix}"), || {
            let started = std::time::Instant::now();
            let parent = propagator.extract(black_box(&received));
            let span = tracer
                .span_builder("process orders.events")
                .with_kind(SpanKind::Consumer)
                .with_attributes([
                    KeyValue::new("messaging.system", "nats"),
                    KeyValue::new("messaging.destination.name", "orders.events"),
                    KeyValue::new("messaging.operation.type", "process"),
                    KeyValue::new("messaging.operation.name", "process"),
                ])
                .start_with_context(&tracer, &parent);
            let cx = parent.with_span(span);
            {
                let _attached = cx.clone().attach();
                black_box(&cx);
            }
            cx.span().end();
            let attributes = [
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.name", "process"),
                KeyValue::new("messaging.destination.name", "orders.events"),
            ];
            duration.record(started.elapsed().as_secs_f64(), &attributes);
            consumed.add(1, &attributes);
        });
        report(&format!("messaging ({suffix})"), &telemetry);
    }
}

/// A database operation as orders runs it: `DbOperation::sql` (its text stripped of literals,
/// its summary, span and duration metric) and `DbOperation::command` around a driver future
/// that is ready at once; and the same SQL span and histogram written by hand on the SDK, with
/// the text as given (what a user without the helper records, literals included).
fn data_store(c: &mut Criterion) {
    use platform_telemetry::db::DbOperation;
    const SELECT: &str = "SELECT id, status FROM orders WHERE id = $1";
    let receiver = Receiver::start();
    for (suffix, sampler) in [("sampled", "always_on"), ("not_sampled", "always_off")] {
        let telemetry = telemetry(&receiver, sampler);
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            bench(c, &format!("db/sql_operation_{suffix}"), || {
                let found: Result<Option<u64>, std::io::Error> = ready_now(
                    DbOperation::sql("postgresql", black_box(SELECT))
                        .namespace("orders")
                        .server("postgres", 5432)
                        .run(async { Ok(Some(7)) }),
                );
                found
            });
            bench(c, &format!("db/command_operation_{suffix}"), || {
                let cached: Result<Option<u64>, std::io::Error> = ready_now(
                    DbOperation::command("redis", black_box("GET"))
                        .namespace("0")
                        .server("redis", 6379)
                        .run(async { Ok(None) }),
                );
                cached
            });
        });
        let tracer = telemetry
            .tracer_provider()
            .expect("tracer provider")
            .tracer("bench");
        let duration = telemetry
            .meter("bench")
            .f64_histogram("db.client.operation.duration")
            .with_unit("s")
            .build();
        bench(c, &format!("sdk_floor/db_by_hand_{suffix}"), || {
            let started = std::time::Instant::now();
            let parent = opentelemetry::Context::current();
            let span = tracer
                .span_builder("SELECT orders")
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("db.system.name", "postgresql"),
                    KeyValue::new("db.namespace", "orders"),
                    KeyValue::new("db.operation.name", "SELECT"),
                    KeyValue::new("db.collection.name", "orders"),
                    KeyValue::new("db.query.text", black_box(SELECT)),
                    KeyValue::new("server.address", "postgres"),
                    KeyValue::new("server.port", 5432),
                ])
                .start_with_context(&tracer, &parent);
            let cx = parent.with_span(span);
            let found: Result<Option<u64>, std::io::Error> = {
                use opentelemetry::context::FutureExt as _;
                ready_now(async { Ok(Some(7)) }.with_context(cx.clone()))
            };
            cx.span().end();
            duration.record(
                started.elapsed().as_secs_f64(),
                &[
                    KeyValue::new("db.system.name", "postgresql"),
                    KeyValue::new("db.namespace", "orders"),
                    KeyValue::new("db.operation.name", "SELECT"),
                    KeyValue::new("db.collection.name", "orders"),
                    KeyValue::new("server.address", "postgres"),
                    KeyValue::new("server.port", 5432),
                ],
            );
            found
        });
        report(&format!("data store ({suffix})"), &telemetry);
    }
}

/// One `GET /orders/7` through an axum `Router` (route `/orders/{id}`), called in-process as a
/// tower `Service` and polled once (the handler answers at once): with
/// `ServerLayer::for_telemetry` on a sampled and an unsampled instance, and without the layer.
#[cfg(feature = "http-server")]
fn http_server(c: &mut Criterion) {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Path;
    use axum::routing::get;
    use platform_telemetry::http::ServerLayer;
    use tower_service::Service;

    async fn get_order(Path(id): Path<u64>) -> String {
        format!("{{\"id\":{id},\"status\":\"paid\"}}")
    }
    fn request() -> http::Request<Body> {
        http::Request::get("/orders/7")
            .header(http::header::HOST, "orders.internal:8080")
            .header(http::header::USER_AGENT, "bench/1.0")
            .body(Body::empty())
            .expect("request")
    }
    fn serve(router: &mut Router) -> http::Response<Body> {
        ready_now(std::future::poll_fn(|cx| {
            Service::<http::Request<Body>>::poll_ready(router, cx)
        }))
        .expect("ready");
        ready_now(router.call(request())).expect("response")
    }

    let receiver = Receiver::start();
    let routes = || Router::new().route("/orders/{id}", get(get_order));
    for (name, sampler) in [
        ("request_sampled", "always_on"),
        ("request_not_sampled", "always_off"),
    ] {
        let telemetry = telemetry(&receiver, sampler);
        let mut router = routes().layer(ServerLayer::for_telemetry(&telemetry));
        let response = serve(&mut router);
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("traceresponse"));
        bench(c, &format!("http_server/{name}"), || serve(&mut router));
        report(&format!("http_server/{name}"), &telemetry);
    }
    let mut router = routes();
    assert_eq!(serve(&mut router).status(), 200);
    bench(c, "baseline/http_request_bare", || serve(&mut router));
}

/// The client middleware's own cost: a reqwest-middleware client whose last middleware
/// ([`in_process::Answer`]) answers at once, with `TracingMiddleware` in front (sampled and
/// unsampled instance) and without it.
#[cfg(feature = "http-client")]
fn http_client(c: &mut Criterion) {
    use in_process::Answer;
    use platform_telemetry::http::TracingMiddleware;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

    // reqwest is built without a bundled crypto provider (the library installs ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    fn send(client: &ClientWithMiddleware) -> reqwest::Response {
        ready_now(client.get("http://orders.internal:8080/orders/7").send()).expect("response")
    }

    let receiver = Receiver::start();
    for (name, sampler) in [
        ("request_sampled", "always_on"),
        ("request_not_sampled", "always_off"),
    ] {
        let telemetry = telemetry(&receiver, sampler);
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new(Some(telemetry.clone())))
            .with(Answer)
            .build();
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            assert_eq!(send(&client).status(), 200);
            bench(c, &format!("http_client/{name}"), || send(&client));
        });
        report(&format!("http_client/{name}"), &telemetry);
    }
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Answer)
        .build();
    assert_eq!(send(&client).status(), 200);
    bench(c, "baseline/http_client_bare", || send(&client));
}

#[cfg(not(feature = "http-server"))]
fn http_server(_: &mut Criterion) {
    eprintln!("http_server/* and baseline/http_request_bare skipped: needs --features http-server");
}

#[cfg(not(feature = "http-client"))]
fn http_client(_: &mut Criterion) {
    eprintln!("http_client/* and baseline/http_client_bare skipped: needs --features http-client");
}

criterion_group!(
    benches,
    baseline,
    spans,
    logs,
    json_line,
    metrics,
    propagation,
    sdk_floor,
    messaging,
    data_store,
    http_server,
    http_client
);
criterion_main!(benches);
