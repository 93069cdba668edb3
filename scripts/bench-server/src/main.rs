//! The load test's two processes (see `scripts/overhead.sh`):
//!
//! - `bench-server serve bare|telemetry`: one axum handler on `127.0.0.1:0`, served bare, or with
//!   `platform_telemetry::init()` (configured by the `OTEL_*` environment) and
//!   `platform_telemetry::http::server_layer()`. Prints `port <N>` on stderr once listening; on
//!   SIGTERM stops, prints the pipeline counts on stderr, and flushes. A second listener, the
//!   control port (`control <N>` on stderr), answers `GET /allocations` with the number of heap
//!   allocations (alloc + realloc, all threads) the process has made so far, as plain text; it has
//!   no layer, so reading it before and after a wrk window costs the measured server nothing.
//! - `bench-server sink`: an OTLP/HTTP endpoint on loopback (`POST /v1/traces`, `/v1/logs`,
//!   `/v1/metrics`, protobuf) that decodes every export as a collector would, counts the items
//!   and keeps nothing; prints `endpoint <url>` on stderr, and on SIGTERM what it received.
//!   (The workspace's `otlp-receiver` keeps up to 200,000 items per signal and, once full,
//!   evicts the oldest by shifting its whole `Vec` on every request: under this load it would
//!   spend a core on `memmove` and steal it from wrk.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts every allocation of every thread: `stats_alloc` adds two atomic adds per call around
/// the system allocator (under 1 ns per alloc/free pair in a loop, pinned to one CPU), the same
/// in every configuration and in the peer server.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations so far: `alloc`/`alloc_zeroed` + `realloc` calls, all threads.
async fn allocations() -> String {
    let stats = INSTRUMENTED_SYSTEM.stats();
    format!("{}\n", stats.allocations + stats.reallocations)
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
            eprintln!("bench-server: control listener failed: {e}");
        }
    });
}

/// The handler measured in every configuration.
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
    eprintln!("bench-server: {message}");
    std::process::exit(2)
}

async fn serve(mode: &str) {
    let guard = match mode {
        "bare" => None,
        "telemetry" => Some(
            platform_telemetry::init()
                .unwrap_or_else(|e| fail(&format!("platform_telemetry::init failed: {e}"))),
        ),
        other => fail(&format!(
            "unknown mode {other:?}: expected bare or telemetry"
        )),
    };
    control().await;
    let mut app = Router::new().route("/orders/{id}", get(get_order));
    if guard.is_some() {
        app = app.layer(platform_telemetry::http::server_layer());
    }
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
        eprintln!("bench-server: serve failed: {e}");
    }
    if let Some(guard) = guard {
        let stats = guard.pipeline_stats();
        eprintln!(
            "pipeline spans exported {} dropped {} failed {} queued {}",
            stats.spans.exported, stats.spans.dropped, stats.spans.failed, stats.spans.queued
        );
        if let Err(e) = guard.shutdown() {
            eprintln!("bench-server: telemetry shutdown: {e}");
        }
    }
}

/// What the sink received.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
    log_records: AtomicU64,
    metrics: AtomicU64,
    bad: AtomicU64,
}

type Sink = State<Arc<Counts>>;

/// Counts `n` items of `body` decoded as `T`; an empty protobuf body is a valid answer.
fn accept<T: prost::Message + Default>(
    counts: &Counts,
    body: &Bytes,
    items: impl Fn(&T) -> usize,
    counter: &AtomicU64,
) -> StatusCode {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    match T::decode(body.as_ref()) {
        Ok(request) => {
            counter.fetch_add(items(&request) as u64, Ordering::Relaxed);
            StatusCode::OK
        }
        Err(_) => {
            counts.bad.fetch_add(1, Ordering::Relaxed);
            StatusCode::BAD_REQUEST
        }
    }
}

async fn traces(State(c): Sink, body: Bytes) -> StatusCode {
    let items = |r: &ExportTraceServiceRequest| {
        let spans = r.resource_spans.iter().flat_map(|r| &r.scope_spans);
        spans.map(|s| s.spans.len()).sum()
    };
    accept(&c, &body, items, &c.spans)
}

async fn logs(State(c): Sink, body: Bytes) -> StatusCode {
    let items = |r: &ExportLogsServiceRequest| {
        let logs = r.resource_logs.iter().flat_map(|r| &r.scope_logs);
        logs.map(|s| s.log_records.len()).sum()
    };
    accept(&c, &body, items, &c.log_records)
}

async fn metrics(State(c): Sink, body: Bytes) -> StatusCode {
    let items = |r: &ExportMetricsServiceRequest| {
        let metrics = r.resource_metrics.iter().flat_map(|r| &r.scope_metrics);
        metrics.map(|s| s.metrics.len()).sum()
    };
    accept(&c, &body, items, &c.metrics)
}

async fn sink() {
    let counts = Arc::new(Counts::default());
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&format!("cannot bind 127.0.0.1:0: {e}")));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("no local address: {e}")));
    eprintln!("endpoint http://{address}");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(terminated())
        .await;
    if let Err(e) = served {
        eprintln!("bench-server: sink failed: {e}");
    }
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "received requests {} spans {} log_records {} metrics {} undecodable {}",
        n(&counts.requests),
        n(&counts.spans),
        n(&counts.log_records),
        n(&counts.metrics),
        n(&counts.bad)
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
        ["sink"] => sink().await,
        _ => fail("usage: bench-server serve bare|telemetry | bench-server sink"),
    }
}
