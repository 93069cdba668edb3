//! The server side: a tower [`Layer`](tower_layer::Layer) for axum 0.8.
//!
//! Per request it extracts the caller's context, opens a SERVER span named
//! `{method} {route}` (the matched route template, never the raw path), records
//! `http.server.request.duration` and `http.server.active_requests`, remembers the trace as the
//! series' exemplar, marks 5xx as errors, and answers with a `traceresponse` header (W3C Trace
//! Context level 2). `/metrics` and `/healthz` are neither traced nor measured.
//!
//! The SERVER span is started with the OpenTelemetry SDK tracer directly (not through a
//! `tracing` span), and its attributes are built only when the sampler decided to record it: an
//! unsampled request pays for the sampling decision, the metrics and the context, nothing more.
//! Handlers reach the span through [`RequestSpan`]; `tracing` spans and events inside the
//! handler nest under it and carry its ids (the span's context is current on every poll).

mod future;
mod request_span;
mod routes;

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use opentelemetry::metrics::{Histogram, UpDownCounter};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::http::{DURATION_BUCKETS, method_name, protocol_version};
use crate::propagation::extract_with;
use crate::redact::Redaction;
use crate::semconv::{attr, metric};
use crate::{Telemetry, global};

pub use future::ResponseFuture;
use future::Started;
pub use request_span::RequestSpan;

/// The instrument name, as the semantic conventions give it.
pub const SERVER_DURATION: &str = metric::HTTP_SERVER_REQUEST_DURATION;
/// The instrument name, as the semantic conventions give it.
pub const SERVER_ACTIVE_REQUESTS: &str = metric::HTTP_SERVER_ACTIVE_REQUESTS;
/// Paths the layer leaves alone (the endpoints' own).
pub const UNTRACED_PATHS: &[&str] = &["/metrics", "/healthz"];

/// A layer for the global instance (from [`init()`](crate::init)).
///
/// The instance is looked up at the first request, so a layer built before `init()` traces and
/// measures once telemetry is installed; requests served before that pass through untouched.
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
    ServerLayer::build(None, Redaction::default())
}

/// See [`server_layer`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The instance given to [`ServerLayer::for_telemetry`]; `None`: the global one.
    telemetry: Option<Telemetry>,
    instruments: OnceLock<Instruments>,
    redaction: Redaction,
    routes: routes::RouteValues,
}

/// What a request records into, resolved once per layer.
#[derive(Debug)]
struct Instruments {
    telemetry: Telemetry,
    tracer: Option<SdkTracer>,
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    /// The instance's subscriber, for a non-global instance: handlers' `tracing` spans and
    /// events must reach it. The global instance's subscriber is already the default.
    dispatch: Option<tracing::Dispatch>,
}

impl Instruments {
    fn new(telemetry: Telemetry) -> Self {
        let meter = telemetry.library_meter();
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
            tracer: telemetry.tracer().cloned(),
            dispatch: (!telemetry.is_global()).then(|| telemetry.subscriber()),
            telemetry,
            duration,
            active,
        }
    }
}

impl ServerLayer {
    /// A layer for a non-global instance: its spans, metrics and propagator are used, and
    /// requests run under its subscriber.
    pub fn for_telemetry(telemetry: &Telemetry) -> Self {
        Self::build(Some(telemetry.clone()), Redaction::default())
    }

    fn build(telemetry: Option<Telemetry>, redaction: Redaction) -> Self {
        Self {
            shared: Arc::new(Shared {
                telemetry,
                instruments: OnceLock::new(),
                redaction,
                routes: routes::RouteValues::default(),
            }),
        }
    }

    /// Uses this redaction policy (which headers to capture, which query values to hide).
    pub fn with_redaction(self, redaction: Redaction) -> Self {
        Self::build(self.shared.telemetry.clone(), redaction)
    }
}

impl Shared {
    fn instruments(&self) -> Option<&Instruments> {
        if let Some(instruments) = self.instruments.get() {
            return Some(instruments);
        }
        let telemetry = self.telemetry.clone().or_else(global)?;
        Some(self.instruments.get_or_init(|| Instruments::new(telemetry)))
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

impl<S, B, RB> tower_service::Service<http::Request<B>> for ServerService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        if route.is_some_and(|r| UNTRACED_PATHS.contains(&r)) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        let Some(instruments) = self.shared.instruments() else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        let route = route.map(|r| self.shared.routes.get(r));
        let route_value = route.as_ref().map(|r| r.value.clone());
        let method = method_name(request.method());
        let scheme = if request.uri().scheme_str() == Some("https") {
            "https"
        } else {
            "http"
        };
        let cx = match &instruments.tracer {
            Some(tracer) => {
                let cx = start_span(
                    instruments,
                    tracer,
                    &self.shared.redaction,
                    &request,
                    method,
                    scheme,
                    route.as_ref(),
                );
                if cx.span().is_recording() {
                    request
                        .extensions_mut()
                        .insert(RequestSpan::new(cx.clone()));
                }
                cx
            }
            None => opentelemetry::Context::new(),
        };
        instruments
            .active
            .add(1, &active_attributes(method, scheme));
        let started = Started {
            shared: self.shared.clone(),
            cx,
            started: Instant::now(),
            method,
            scheme,
            protocol_version: protocol_version(request.version()),
            route: route_value,
        };
        let future = {
            let _dispatch = instruments
                .dispatch
                .as_ref()
                .map(tracing::dispatcher::set_default);
            let _attached = started.cx.clone().attach();
            self.inner.call(request)
        };
        ResponseFuture::instrumented(future, started)
    }
}

fn active_attributes(method: &'static str, scheme: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new(attr::HTTP_REQUEST_METHOD, method),
        KeyValue::new(attr::URL_SCHEME, scheme),
    ]
}

/// Starts the SERVER span as a child of the caller's context and returns the context that holds
/// it. The sampler sees the method as the name and no attributes; the name and attributes are
/// built only for a span that records.
fn start_span<B>(
    instruments: &Instruments,
    tracer: &SdkTracer,
    redaction: &Redaction,
    request: &http::Request<B>,
    method: &'static str,
    scheme: &'static str,
    route: Option<&routes::Route>,
) -> opentelemetry::Context {
    use opentelemetry::trace::Span as _;
    let parent = extract_with(
        instruments.telemetry.propagator(),
        &opentelemetry::Context::new(),
        request.headers(),
    );
    let builder = tracer.span_builder(method).with_kind(SpanKind::Server);
    crate::traces::start_child(tracer, builder, &parent, |span| {
        if let Some(route) = route {
            span.update_name(route.span_name(method));
        }
        let uri = request.uri();
        let headers = request.headers();
        let header = |name: http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        span.set_attribute(KeyValue::new(attr::HTTP_REQUEST_METHOD, method));
        if let Some(route) = route {
            span.set_attribute(KeyValue::new(attr::HTTP_ROUTE, route.value.clone()));
        }
        span.set_attribute(KeyValue::new(attr::URL_PATH, uri.path().to_owned()));
        span.set_attribute(KeyValue::new(attr::URL_SCHEME, scheme));
        if let Some(query) = uri.query() {
            span.set_attribute(KeyValue::new(attr::URL_QUERY, redaction.query(query)));
        }
        if let Some(host) = header(http::header::HOST).or(uri.host()) {
            let (address, port) = match host.rsplit_once(':') {
                Some((a, p)) => match p.parse::<u16>() {
                    Ok(port) => (a, Some(port)),
                    Err(_) => (host, None),
                },
                None => (host, None),
            };
            span.set_attribute(KeyValue::new(attr::SERVER_ADDRESS, address.to_owned()));
            if let Some(port) = port {
                span.set_attribute(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
            }
        }
        if let Some(agent) = header(http::header::USER_AGENT) {
            span.set_attribute(KeyValue::new(attr::USER_AGENT_ORIGINAL, agent.to_owned()));
        }
        if let Some(info) = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            span.set_attribute(KeyValue::new(attr::CLIENT_ADDRESS, info.0.ip().to_string()));
            span.set_attribute(KeyValue::new(
                attr::NETWORK_PEER_PORT,
                i64::from(info.0.port()),
            ));
        }
        span.set_attribute(KeyValue::new(
            attr::NETWORK_PROTOCOL_VERSION,
            protocol_version(request.version()),
        ));
        for name in redaction.headers_to_capture() {
            let values: Vec<StringValue> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(|v| StringValue::from(v.to_owned())))
                .collect();
            if !values.is_empty() {
                span.set_attribute(KeyValue::new(
                    format!("http.request.header.{name}"),
                    opentelemetry::Value::Array(values.into()),
                ));
            }
        }
    })
}
