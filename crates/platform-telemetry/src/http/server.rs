//! The server side: a tower [`Layer`](tower_layer::Layer) for axum 0.8.
//!
//! Per request it extracts the caller's context, opens a SERVER span named
//! `{method} {route}` (the matched route template, never the raw path), records
//! `http.server.request.duration` and `http.server.active_requests`, remembers the trace as the
//! series' exemplar, marks 5xx as errors, and answers with a `traceresponse` header (W3C Trace
//! Context level 2). `/metrics` and `/healthz` are neither traced nor measured.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::http::{DURATION_BUCKETS, method_name, protocol_version};
use crate::propagation::{extract_with, with_propagator};
use crate::redact::Redaction;
use crate::{Telemetry, global};

/// The instrument name, as the semantic conventions give it.
pub const SERVER_DURATION: &str = "http.server.request.duration";
/// The instrument name, as the semantic conventions give it.
pub const SERVER_ACTIVE_REQUESTS: &str = "http.server.active_requests";
/// Paths the layer leaves alone (the endpoints' own).
pub const UNTRACED_PATHS: &[&str] = &["/metrics", "/healthz"];

/// A layer for the global instance (from [`init()`](crate::init)). Without one, spans go to
/// whatever `tracing` subscriber is set and metrics to the global meter provider.
///
/// ```
/// # #[cfg(feature = "http-server")] {
/// let app: axum::Router = axum::Router::new()
///     .route("/orders/{id}", axum::routing::get(|| async { "order" }))
///     .merge(platform_telemetry::endpoints())
///     .layer(platform_telemetry::http::server_layer());
/// # }
/// ```
pub fn server_layer() -> ServerLayer {
    ServerLayer::build(global())
}

/// See [`server_layer`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    telemetry: Option<Telemetry>,
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    redaction: Redaction,
}

fn meter(telemetry: Option<&Telemetry>) -> Meter {
    match telemetry {
        Some(t) => t.meter("platform-telemetry"),
        None => opentelemetry::global::meter("platform-telemetry"),
    }
}

impl ServerLayer {
    /// A layer for a non-global instance: its spans, metrics and propagator are used, and
    /// requests run under its subscriber.
    pub fn for_telemetry(telemetry: &Telemetry) -> Self {
        Self::build(Some(telemetry.clone()))
    }

    fn build(telemetry: Option<Telemetry>) -> Self {
        let meter = meter(telemetry.as_ref());
        let duration = meter
            .f64_histogram(SERVER_DURATION)
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let active = meter
            .i64_up_down_counter(SERVER_ACTIVE_REQUESTS)
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests")
            .build();
        Self {
            shared: Arc::new(Shared {
                telemetry,
                duration,
                active,
                redaction: Redaction::default(),
            }),
        }
    }

    /// Uses this redaction policy (which headers to capture, which query values to hide).
    pub fn with_redaction(self, redaction: Redaction) -> Self {
        let shared = &self.shared;
        Self {
            shared: Arc::new(Shared {
                telemetry: shared.telemetry.clone(),
                duration: shared.duration.clone(),
                active: shared.active.clone(),
                redaction,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ServerLayer`] wraps around each route.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower_service::Service<http::Request<B>> for ServerService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    RB: 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned());
        if route
            .as_deref()
            .is_some_and(|r| UNTRACED_PATHS.contains(&r))
        {
            return Box::pin(self.inner.call(request));
        }
        let shared = self.shared.clone();
        let dispatch = shared.telemetry.as_ref().map(Telemetry::subscriber);
        let (span, future) = match &dispatch {
            Some(d) => tracing::dispatcher::with_default(d, || {
                start(&shared, route, request, &mut self.inner)
            }),
            None => start(&shared, route, request, &mut self.inner),
        };
        let finished = finish(shared, span, future);
        match dispatch {
            Some(d) => Box::pin(finished.with_subscriber(d)),
            None => Box::pin(finished),
        }
    }
}

struct Started<F> {
    future: F,
    started: Instant,
    method: &'static str,
    route: Option<String>,
    scheme: &'static str,
}

fn start<S, B, RB>(
    shared: &Shared,
    route: Option<String>,
    request: http::Request<B>,
    inner: &mut S,
) -> (tracing::Span, Started<S::Future>)
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
{
    let method = method_name(request.method());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let uri = request.uri();
    let scheme = if uri.scheme_str() == Some("https") {
        "https"
    } else {
        "http"
    };
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route.as_deref(),
        url.path = uri.path(),
        url.scheme = scheme,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    let parent = with_propagator(shared.telemetry.as_ref(), |p| {
        extract_with(p, request.headers())
    });
    let _ = span.set_parent(parent);
    if let Some(query) = uri.query() {
        span.set_attribute("url.query", shared.redaction.query(query));
    }
    let headers = request.headers();
    let header = |name: http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(host) = header(http::header::HOST).or(uri.host()) {
        let (address, port) = match host.rsplit_once(':') {
            Some((a, p)) if p.parse::<u16>().is_ok() => (a, p.parse::<i64>().ok()),
            _ => (host, None),
        };
        span.set_attribute("server.address", address.to_string());
        if let Some(port) = port {
            span.set_attribute("server.port", port);
        }
    }
    if let Some(agent) = header(http::header::USER_AGENT) {
        span.set_attribute("user_agent.original", agent.to_string());
    }
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        span.set_attribute("client.address", info.0.ip().to_string());
        span.set_attribute("network.peer.port", i64::from(info.0.port()));
    }
    span.set_attribute(
        "network.protocol.version",
        protocol_version(request.version()),
    );
    for name in shared.redaction.headers_to_capture() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if !values.is_empty() {
            span.set_attribute(
                format!("http.request.header.{name}"),
                opentelemetry::Value::Array(
                    values
                        .into_iter()
                        .map(Into::into)
                        .collect::<Vec<opentelemetry::StringValue>>()
                        .into(),
                ),
            );
        }
    }
    shared.active.add(
        1,
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
        ],
    );
    let started = Instant::now();
    let future = span.in_scope(|| inner.call(request));
    (
        span,
        Started {
            future,
            started,
            method,
            route,
            scheme,
        },
    )
}

async fn finish<F, RB, E>(
    shared: Arc<Shared>,
    span: tracing::Span,
    started: Started<F>,
) -> Result<http::Response<RB>, E>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    let Started {
        future,
        started,
        method,
        route,
        scheme,
    } = started;
    let result = future.instrument(span.clone()).await;
    let elapsed = started.elapsed().as_secs_f64();
    shared.active.add(
        -1,
        &[
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
        ],
    );
    let mut attributes = vec![KeyValue::new("http.request.method", method)];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let cx = span.context();
    let span_context = cx.span().span_context().clone();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.to_string());
                attributes.push(KeyValue::new("error.type", status.to_string()));
            }
            shared.duration.record(elapsed, &attributes);
            if let Some(t) = shared.telemetry.clone().or_else(global) {
                t.exemplars()
                    .record(SERVER_DURATION, &attributes, elapsed, &span_context);
            }
            if span_context.is_valid() {
                let value = format!(
                    "00-{}-{}-{:02x}",
                    span_context.trace_id(),
                    span_context.span_id(),
                    span_context.trace_flags().to_u8()
                );
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    response.headers_mut().insert("traceresponse", value);
                }
            }
            Ok(response)
        }
        Err(error) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", "_OTHER");
            attributes.push(KeyValue::new("error.type", "_OTHER"));
            shared.duration.record(elapsed, &attributes);
            Err(error)
        }
    }
}
