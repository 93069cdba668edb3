//! The peer stacks of the load test (see `scripts/overhead.sh`): the handler of
//! `scripts/bench-server` (`GET /orders/{id}`, the same `format!` JSON), served with the usual
//! tracing + OpenTelemetry setup of an axum service instead of platform-telemetry.
//!
//! `peer-bench-server serve towerhttp|axumotel`:
//!
//! - both: `tracing_subscriber::registry()` + `EnvFilter` (`RUST_LOG`, else
//!   `info,otel::tracing=trace`) + `fmt::layer().json()` to stdout + `tracing_opentelemetry::layer()`
//!   (defaults) over an `SdkTracerProvider` with a batch exporter (SDK defaults: its own thread,
//!   queue 2048, batch 512) to `opentelemetry_otlp::SpanExporter` (defaults: HTTP/protobuf,
//!   reqwest blocking client; endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT`), the W3C TraceContext
//!   propagator set globally, the sampler from `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`
//!   (read by the SDK), `service.name` from `OTEL_SERVICE_NAME` (the SDK's resource detectors);
//! - `towerhttp`: `tower_http::trace::TraceLayer::new_for_http()` with
//!   `DefaultMakeSpan::new().level(Level::INFO)` on the router;
//! - `axumotel`: `axum_tracing_opentelemetry`'s `OtelInResponseLayer::default()` then
//!   `OtelAxumLayer::default()`, as its README shows. Its README initialises tracing with the
//!   opinionated `init-tracing-opentelemetry` helper but says "look at its source to make your
//!   own" and does not require it: this server keeps the same manual setup as `towerhttp`, so the
//!   two differ only in the layer.
//!
//! Like `bench-server serve`: prints `control <N>` (the `GET /allocations` listener, no layer)
//! and `port <N>` on stderr; on SIGTERM stops serving, shuts the provider down (bounded, so the
//! last batch is flushed) and prints the pipeline counts on stderr. The SDK does not count
//! exported spans: a pass-through exporter counts what the OTLP exporter sent (one atomic add per
//! batch); spans dropped on a full queue are logged by the SDK at shutdown (a JSON line with
//! `dropped_span_count` on stdout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Counts every allocation of every thread, exactly as in `bench-server`.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations so far: `alloc`/`alloc_zeroed` + `realloc` calls, all threads.
async fn allocations() -> String {
    let stats = INSTRUMENTED_SYSTEM.stats();
    format!("{}\n", stats.allocations + stats.reallocations)
}

/// The handler measured in every configuration (the same as `bench-server`'s).
async fn get_order(Path(id): Path<u64>) -> String {
    format!("{{\"id\":{id},\"status\":\"paid\"}}")
}

async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(&format!("cannot listen for SIGTERM: {e}")));
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn fail(message: &str) -> ! {
    eprintln!("peer-bench-server: {message}");
    std::process::exit(2)
}

/// What the OTLP exporter was given, and what it reported as failed.
#[derive(Debug, Default)]
struct Exported {
    spans: AtomicU64,
    failed: AtomicU64,
}

/// A pass-through exporter that counts spans per batch; everything else is the inner exporter's.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    counts: Arc<Exported>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = match result {
            Ok(()) => &self.counts.spans,
            Err(_) => &self.counts.failed,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The subscriber and the tracer provider, as the crates' documentation builds them.
fn init_telemetry(counts: Arc<Exported>) -> SdkTracerProvider {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot build the OTLP span exporter: {e}")));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(Counting {
            inner: exporter,
            counts,
        })
        .with_resource(Resource::builder().build())
        .build();
    global::set_tracer_provider(provider.clone());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,otel::tracing=trace"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().json())
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("peer-bench-server")))
        .try_init()
        .unwrap_or_else(|e| fail(&format!("cannot install the subscriber: {e}")));
    provider
}

/// The control listener (`GET /allocations`), on its own port and without any layer.
async fn control() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind the control port: {e}")));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("no local address: {e}")))
        .port();
    eprintln!("control {port}");
    let app = Router::new().route("/allocations", get(allocations));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("peer-bench-server: control listener failed: {e}");
        }
    });
}

async fn serve(mode: &str) {
    let router = Router::new().route("/orders/{id}", get(get_order));
    let app = match mode {
        "towerhttp" => router.layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
            ),
        ),
        "axumotel" => router
            .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
            .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default()),
        other => fail(&format!(
            "unknown mode {other:?}: expected towerhttp or axumotel"
        )),
    };
    let counts = Arc::new(Exported::default());
    let provider = init_telemetry(counts.clone());
    control().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind 127.0.0.1:0: {e}")));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("no local address: {e}")))
        .port();
    eprintln!("port {port}");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(terminated())
    .await;
    if let Err(e) = served {
        eprintln!("peer-bench-server: serve failed: {e}");
    }
    // Bounded: flushes the last batch, then stops the export thread. It blocks, so off the
    // runtime's worker.
    let shutdown =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5)))
            .await;
    match shutdown {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("peer-bench-server: tracer provider shutdown: {e}"),
        Err(e) => eprintln!("peer-bench-server: tracer provider shutdown panicked: {e}"),
    }
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "pipeline spans exported {} failed {} (after shutdown; drops: see dropped_span_count on stdout)",
        n(&counts.spans),
        n(&counts.failed)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", mode] => serve(mode).await,
        _ => fail("usage: peer-bench-server serve towerhttp|axumotel"),
    }
}
