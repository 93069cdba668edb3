//! The client side: a reqwest client (through `reqwest-middleware`) that opens a CLIENT span
//! per request, injects its context into the request headers, and records
//! `http.client.request.duration`.
//!
//! The CLIENT span is started with the SDK tracer of the instance (the one given, else the one
//! whose subscriber is current, else the global one) as a child of the current context, and
//! its attributes are built only when it records.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};

use crate::http::{DURATION_BUCKETS, method_name};
use crate::propagation::{inject_with, with_propagator};
use crate::redact::Redaction;
use crate::semconv::{attr, metric};
use crate::telemetry::current_tracer;
use crate::{Telemetry, global};

/// The instrument name, as the semantic conventions give it.
pub const CLIENT_DURATION: &str = metric::HTTP_CLIENT_REQUEST_DURATION;

/// A reqwest client for the global instance whose requests carry the current trace.
///
/// ```no_run
/// # #[cfg(feature = "http-client")]
/// # async fn call() -> Result<(), reqwest_middleware::Error> {
/// let client = platform_telemetry::http::client();
/// let body = client.get("http://orders:8081/orders/7").send().await?.text().await?;
/// # Ok(()) }
/// ```
///
/// A client built before [`init()`](crate::init) traces and measures the requests sent once
/// telemetry is installed (see [`TracingMiddleware`]).
pub fn client() -> reqwest_middleware::ClientWithMiddleware {
    build_client(None)
}

/// Like [`client`], for a non-global instance (several services in one process).
pub fn client_for(telemetry: &Telemetry) -> reqwest_middleware::ClientWithMiddleware {
    build_client(Some(telemetry.clone()))
}

fn build_client(telemetry: Option<Telemetry>) -> reqwest_middleware::ClientWithMiddleware {
    // reqwest is built without a bundled crypto provider; ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new(telemetry))
        .build()
}

/// The middleware behind [`client`]; add it to your own `reqwest_middleware::ClientBuilder`.
///
/// Built for the global instance (`None`) before [`init()`](crate::init), it looks the instance
/// up again at each request until one is installed: requests sent before `init()` are
/// neither traced nor measured, those sent after it are both.
#[derive(Clone, Debug)]
pub struct TracingMiddleware {
    telemetry: Option<Telemetry>,
    /// `http.client.request.duration`, made from the instance's meter once there is one.
    duration: Arc<OnceLock<Histogram<f64>>>,
    redaction: Arc<Redaction>,
}

fn duration_histogram(telemetry: &Telemetry) -> Histogram<f64> {
    telemetry
        .library_meter()
        .f64_histogram(CLIENT_DURATION)
        .with_unit("s")
        .with_description("Duration of HTTP client requests")
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

impl TracingMiddleware {
    /// For an instance (`None`: the global one from [`init()`](crate::init), whenever it is
    /// installed).
    pub fn new(telemetry: Option<Telemetry>) -> Self {
        Self {
            telemetry,
            duration: Arc::new(OnceLock::new()),
            redaction: Arc::new(Redaction::default()),
        }
    }

    /// The duration histogram, once there is an instance to record into.
    fn duration(&self) -> Option<&Histogram<f64>> {
        if let Some(histogram) = self.duration.get() {
            return Some(histogram);
        }
        let telemetry = match &self.telemetry {
            Some(t) => t.clone(),
            None => global()?,
        };
        Some(self.duration.get_or_init(|| duration_histogram(&telemetry)))
    }

    /// Uses this redaction policy for `url.full`.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = Arc::new(redaction);
        self
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let method = method_name(request.method());
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().map(i64::from);
        let tracer = match &self.telemetry {
            Some(t) => t.tracer().cloned(),
            None => current_tracer(),
        };
        let parent = opentelemetry::Context::current();
        let cx = match tracer {
            Some(tracer) => {
                let builder = tracer.span_builder(method).with_kind(SpanKind::Client);
                crate::traces::start_child(&tracer, builder, &parent, |span| {
                    span.set_attribute(KeyValue::new(attr::HTTP_REQUEST_METHOD, method));
                    span.set_attribute(KeyValue::new(
                        attr::URL_FULL,
                        self.redaction.url(url.as_str()),
                    ));
                    span.set_attribute(KeyValue::new(attr::SERVER_ADDRESS, host.clone()));
                    if let Some(port) = port {
                        span.set_attribute(KeyValue::new(attr::SERVER_PORT, port));
                    }
                })
            }
            None => parent,
        };
        with_propagator(self.telemetry.as_ref(), |p| {
            inject_with(p, &cx, request.headers_mut());
        });
        let started = Instant::now();
        let result = next.run(request, extensions).with_context(cx.clone()).await;
        let elapsed = started.elapsed().as_secs_f64();
        let span = cx.span();
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(attr::HTTP_REQUEST_METHOD, method));
        attributes.push(KeyValue::new(attr::SERVER_ADDRESS, host));
        if let Some(port) = port {
            attributes.push(KeyValue::new(attr::SERVER_PORT, port));
        }
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                let status_attribute =
                    KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
                // The version the response came in (recommended on span and duration).
                let version = KeyValue::new(
                    attr::NETWORK_PROTOCOL_VERSION,
                    crate::http::protocol_version(response.version()),
                );
                if span.is_recording() {
                    span.set_attribute(status_attribute.clone());
                    span.set_attribute(version.clone());
                }
                attributes.push(status_attribute);
                attributes.push(version);
                if status >= 400 {
                    let error = KeyValue::new(attr::ERROR_TYPE, status.to_string());
                    if span.is_recording() {
                        span.set_attribute(error.clone());
                        span.set_status(Status::error(""));
                    }
                    attributes.push(error);
                }
            }
            Err(error) => {
                let error = KeyValue::new(attr::ERROR_TYPE, error_type(error));
                if span.is_recording() {
                    span.set_attribute(error.clone());
                    span.set_status(Status::error(""));
                }
                attributes.push(error);
            }
        }
        span.end();
        if let Some(duration) = self.duration() {
            duration.record(elapsed, &attributes);
        }
        result
    }
}

fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        _ => "_OTHER",
    }
}
