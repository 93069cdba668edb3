//! Message spans: PRODUCER and CONSUMER spans for a hop through Kafka, NATS or any broker, with
//! the trace context carried in the message's headers.
//!
//! Like the HTTP spans, they are started with the SDK tracer directly and build their
//! attributes only when they record. [`MessageSpan`] is the handle: run the publish or the
//! processing inside it ([`MessageSpan::wrap`] or [`MessageSpan::in_scope`]), so that
//! `tracing` spans and log events there nest under it and carry its ids.

use std::borrow::Cow;
use std::future::Future;

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use crate::propagation::{MessageHeaders, extract, inject_context};
use crate::telemetry::current_tracer;

/// A PRODUCER or CONSUMER span. It ends when [`end`](Self::end) is called or when it (and every
/// clone of its [`context`](Self::context)) is dropped.
#[derive(Clone, Debug)]
pub struct MessageSpan {
    cx: Context,
}

impl MessageSpan {
    /// Runs `f` with this span current: `tracing` spans and events inside are its children.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _attached = self.cx.clone().attach();
        f()
    }

    /// Wraps `future` so that this span is current on every poll (like `tracing`'s
    /// `Instrument::instrument`, under a name that does not clash with it).
    pub fn wrap<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(self.cx.clone())
    }

    /// Adds (or replaces) an attribute on the span.
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the publish or the processing as failed: the span's status becomes an error and
    /// `error.type` is set to `error_type` (a low-cardinality class such as `timeout` or
    /// `invalid_payload`, never a message with ids in it).
    pub fn set_error(&self, error_type: impl Into<Cow<'static, str>>) {
        let error_type: Cow<'static, str> = error_type.into();
        let span = self.cx.span();
        span.set_status(Status::error(error_type.clone()));
        span.set_attribute(KeyValue::new("error.type", error_type));
    }

    /// True when the span records (the trace is sampled).
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// The span's ids and flags.
    pub fn span_context(&self) -> SpanContext {
        self.cx.span().span_context().clone()
    }

    /// The OpenTelemetry context holding the span.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }
}

/// Starts a span as a child of `parent`; `attributes` runs only when it records.
fn start(
    name: &'static str,
    destination: &str,
    kind: SpanKind,
    parent: &Context,
    links: Option<Vec<Link>>,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Context {
    let Some(tracer) = current_tracer() else {
        return parent.clone();
    };
    let mut builder = tracer.span_builder(name).with_kind(kind);
    if let Some(links) = links {
        builder = builder.with_links(links);
    }
    crate::traces::start_child(&tracer, builder, parent, |span| {
        span.update_name(format!("{name} {destination}"));
        span.set_attributes(attributes());
    })
}

fn attributes(
    system: &str,
    destination: &str,
    operation_type: &'static str,
    operation_name: &'static str,
) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", system.to_owned()),
        KeyValue::new("messaging.destination.name", destination.to_owned()),
        KeyValue::new("messaging.operation.type", operation_type),
        KeyValue::new("messaging.operation.name", operation_name),
    ]
}

/// Starts a PRODUCER span for sending a message to `destination` on `system` (`"nats"`,
/// `"kafka"`, …; the semantic conventions' `messaging.system`), as a child of the current
/// context, and writes its context into the message's `headers`. Publish inside it.
///
/// ```
/// let mut headers = std::collections::HashMap::new();
/// let span = platform_telemetry::propagation::producer_span("nats", "orders.events", &mut headers);
/// // span.wrap(client.publish_with_headers(subject, headers, payload)).await
/// span.in_scope(|| tracing::info!("published"));
/// # drop(span);
/// ```
pub fn producer_span<H: MessageHeaders + ?Sized>(
    system: &str,
    destination: &str,
    headers: &mut H,
) -> MessageSpan {
    let cx = start(
        "publish",
        destination,
        SpanKind::Producer,
        &Context::current(),
        None,
        || attributes(system, destination, "send", "publish"),
    );
    inject_context(&cx, headers);
    MessageSpan { cx }
}

/// Starts a CONSUMER span for processing a message received from `destination`: a child of the
/// producer's context read from `headers` (so the trace continues across the message hop) and
/// linked to it. Malformed or missing headers start a fresh trace.
///
/// ```
/// let headers = std::collections::HashMap::from([(
///     "traceparent".to_string(),
///     "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".to_string(),
/// )]);
/// let span = platform_telemetry::propagation::consumer_span("nats", "orders.events", &headers);
/// span.in_scope(|| tracing::info!("processing"));
/// // on failure: span.set_error("invalid_payload");
/// # drop(span);
/// ```
pub fn consumer_span<H: MessageHeaders + ?Sized>(
    system: &str,
    destination: &str,
    headers: &H,
) -> MessageSpan {
    let parent = extract(headers);
    let producer = parent.span().span_context().clone();
    let links = producer
        .is_valid()
        .then(|| vec![Link::with_context(producer)]);
    let cx = start(
        "process",
        destination,
        SpanKind::Consumer,
        &parent,
        links,
        || attributes(system, destination, "process", "process"),
    );
    MessageSpan { cx }
}
