//! [`RequestSpan`]: the handle a handler uses to add to the request's SERVER span.

use std::borrow::Cow;
use std::convert::Infallible;

use opentelemetry::trace::{SpanContext, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

/// The request's SERVER span, as [`server_layer`](super::server_layer) started it. Take it as
/// an axum extractor (or call [`RequestSpan::current`]) to add attributes, events or a status
/// to the span that represents the whole request.
///
/// ```
/// use opentelemetry::KeyValue;
/// use platform_telemetry::http::RequestSpan;
///
/// async fn place_order(span: RequestSpan) -> &'static str {
///     span.set_attribute(KeyValue::new("order.id", 42_i64));
///     if span.is_recording() {
///         // only pay for expensive attributes when the request is sampled
///         span.set_attribute(KeyValue::new("order.items", "book,pen"));
///     }
///     "placed"
/// }
/// # let _app: axum::Router = axum::Router::new()
/// #     .route("/orders", axum::routing::post(place_order))
/// #     .layer(platform_telemetry::http::server_layer());
/// ```
///
/// What else a handler sees:
/// - The request span is an OpenTelemetry span, not a `tracing` span. Inside the handler,
///   `opentelemetry::Context::current()` holds it, and `tracing` spans the handler opens
///   (`#[tracing::instrument]`, `info_span!`) become its children; log events carry its
///   `trace_id` and `span_id`.
/// - `tracing::Span::current()` at the top of a handler is the *disabled* span (there is no
///   `tracing` span for the request), so `record()` and `OpenTelemetrySpanExt::set_attribute`
///   on it do nothing. Inside a `tracing` span of your own, it is that span. Use this type for
///   the request span.
/// - When the request is not sampled the span does not record: every method here is a cheap
///   no-op, and [`is_recording`](Self::is_recording) says so.
#[derive(Clone, Debug)]
pub struct RequestSpan {
    cx: Context,
}

impl RequestSpan {
    pub(crate) fn new(cx: Context) -> Self {
        Self { cx }
    }

    /// The span current on this thread: in a handler outside any `tracing` span of its own,
    /// the request span; inside one, that span (the extractor always gives the request span).
    pub fn current() -> Self {
        Self {
            cx: Context::current(),
        }
    }

    /// Adds (or replaces) an attribute on the span.
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Adds an event (a timestamped annotation) to the span.
    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.cx.span().add_event(name, attributes);
    }

    /// Marks the request as failed, whatever its status code (the layer marks 5xx answers
    /// itself).
    pub fn set_error(&self, description: impl Into<Cow<'static, str>>) {
        self.cx.span().set_status(Status::error(description));
    }

    /// Marks the request as succeeded, even if its status code is a 5xx (`Ok` is final).
    pub fn set_ok(&self) {
        self.cx.span().set_status(Status::Ok);
    }

    /// True when the span records (the request is sampled or recorded by the sampler).
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// The span's ids and flags (what `traceresponse` and log lines carry).
    pub fn span_context(&self) -> SpanContext {
        self.cx.span().span_context().clone()
    }

    /// The OpenTelemetry context holding the span, e.g. to start a child span with the SDK or
    /// to inject it into outgoing headers with
    /// [`propagation::inject_context`](crate::propagation::inject_context).
    pub fn context(&self) -> &Context {
        &self.cx
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestSpan {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Infallible> {
        // The layer stores the span for recording requests only; an unsampled request's span
        // is the current context while the handler runs.
        Ok(parts
            .extensions
            .get::<RequestSpan>()
            .cloned()
            .unwrap_or_else(RequestSpan::current))
    }
}
