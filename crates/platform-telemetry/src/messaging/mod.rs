//! Message spans: PRODUCER and CONSUMER spans for a hop through Kafka, NATS or any broker, with
//! the trace context carried in the message's headers, and the messaging metrics of the
//! semantic conventions.
//!
//! Like the HTTP spans, they are started with the SDK tracer directly and build their
//! attributes only when they record. [`MessageSpan`] is the handle: run the publish or the
//! processing inside it ([`MessageSpan::wrap`] or [`MessageSpan::in_scope`]), so that
//! `tracing` spans and log events there nest under it and carry its ids. When it ends it
//! records, sampled or not:
//!
//! | Instrument (Prometheus name)                                                   | Who       |
//! |--------------------------------------------------------------------------------|-----------|
//! | `messaging.client.operation.duration` (`messaging_client_operation_duration_seconds`) | producer |
//! | `messaging.client.sent.messages` (`messaging_client_sent_messages_total`)      | producer  |
//! | `messaging.process.duration` (`messaging_process_duration_seconds`)            | consumer  |
//! | `messaging.client.consumed.messages` (`messaging_client_consumed_messages_total`) | consumer |
//!
//! with `messaging.system`, `messaging.operation.name` (`publish`, `process`), the destination
//! ([`Destination`]: its name, or its template when the name holds ids) and `error.type` when
//! [`MessageSpan::set_error`] marked it failed; the producer's duration also carries
//! `messaging.operation.type` (`send`).

mod metrics;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Context, KeyValue, StringValue};

pub(crate) use self::metrics::MessagingInstruments;
pub use self::metrics::{
    CLIENT_CONSUMED_MESSAGES, CLIENT_OPERATION_DURATION, CLIENT_SENT_MESSAGES, PROCESS_DURATION,
};
use self::metrics::{Outcome, Side};
use crate::propagation::{MessageHeaders, extract, inject_context};
use crate::semconv::attr;
use crate::telemetry::current_messaging;

/// Where a message goes: a queue, topic or subject.
///
/// A plain `&str` is a destination whose name is low-cardinality (`orders.viewed`): it names
/// the span and labels the metrics. When the name holds ids (`orders.42.viewed`), give its
/// template too: the span carries both (`messaging.destination.name` and
/// `messaging.destination.template`) and is named from the template, and the metrics carry
/// only the template, so their series stay bounded.
///
/// ```
/// use platform_telemetry::propagation::{Destination, producer_span};
///
/// let order_id = 42;
/// let subject = format!("orders.{order_id}.viewed");
/// let mut headers = std::collections::HashMap::new();
/// let span = producer_span("nats", Destination::templated(&subject, "orders.{id}.viewed"), &mut headers);
/// # drop(span);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination<'a> {
    name: &'a str,
    template: Option<&'static str>,
}

impl<'a> Destination<'a> {
    /// A destination whose name holds ids, with the low-cardinality template it follows (a
    /// constant of the code, like a route template).
    pub fn templated(name: &'a str, template: &'static str) -> Self {
        Self {
            name,
            template: Some(template),
        }
    }

    /// The destination's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The template, if the name holds ids.
    pub fn template(&self) -> Option<&'static str> {
        self.template
    }

    /// What names the span and labels the metrics: the template if there is one.
    fn low_cardinality(&self) -> &'a str {
        self.template.unwrap_or(self.name)
    }
}

/// The destination's name, copied once and shared (by reference count) between the span and
/// the metrics.
fn shared_name(destination: &Destination<'_>) -> StringValue {
    StringValue::from(Arc::<str>::from(destination.name))
}

impl<'a> From<&'a str> for Destination<'a> {
    fn from(name: &'a str) -> Self {
        Self {
            name,
            template: None,
        }
    }
}

impl<'a> From<&'a String> for Destination<'a> {
    fn from(name: &'a String) -> Self {
        Self::from(name.as_str())
    }
}

/// A PRODUCER or CONSUMER span, and the messaging metrics it records when it ends. It ends
/// when [`end`](Self::end) is called or when it (and every clone of it and of its
/// [`context`](Self::context)) is dropped; the metrics are recorded once, by `end` or by the
/// drop of its last clone.
#[derive(Clone, Debug)]
pub struct MessageSpan {
    cx: Context,
    outcome: Option<Arc<Outcome>>,
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

    /// Marks the publish or the processing as failed: the span's status becomes an error, and
    /// the span and the metrics it records (`messaging.process.duration`,
    /// `messaging.client.consumed.messages`, or the producer's) carry `error.type` =
    /// `error_type`: a low-cardinality class such as `timeout` or `invalid_payload`, never a
    /// message with ids in it.
    ///
    /// ```
    /// let headers = std::collections::HashMap::<String, String>::new();
    /// let span = platform_telemetry::propagation::consumer_span("nats", "orders.viewed", &headers);
    /// span.set_error("order_rejected");
    /// span.end(); // the span is an error; the processing is counted as failed
    /// ```
    pub fn set_error(&self, error_type: impl Into<Cow<'static, str>>) {
        let error_type: Cow<'static, str> = error_type.into();
        let span = self.cx.span();
        span.set_status(Status::error(error_type.clone()));
        span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
        if let Some(outcome) = &self.outcome {
            outcome.fail(error_type);
        }
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

    /// Ends the span now and records the metrics (unless another clone is still alive: then
    /// they are recorded when the last one is dropped).
    pub fn end(mut self) {
        // The metrics first, so their duration does not include the span's end.
        drop(self.outcome.take());
        self.cx.span().end();
    }
}

/// Starts a span as a child of `parent`, with its metrics; the span's attributes are built only
/// when it records.
fn start(
    side: Side,
    system: &'static str,
    destination: Destination<'_>,
    parent: &Context,
    links: Option<Vec<Link>>,
) -> MessageSpan {
    let (operation, kind, operation_type) = match side {
        Side::Producer => ("publish", SpanKind::Producer, "send"),
        Side::Consumer => ("process", SpanKind::Consumer, "process"),
    };
    let Some((tracer, instruments)) = current_messaging() else {
        return MessageSpan {
            cx: parent.clone(),
            outcome: None,
        };
    };
    // Copied at most once, only when needed: for a recording span, or for the metrics of a
    // destination without a template.
    let mut name: Option<StringValue> = None;
    let cx = match tracer {
        Some(tracer) => {
            let mut builder = tracer.span_builder(operation).with_kind(kind);
            if let Some(links) = links {
                builder = builder.with_links(links);
            }
            crate::traces::start_child(&tracer, builder, parent, |span| {
                span.update_name(format!("{operation} {}", destination.low_cardinality()));
                let shared = name
                    .get_or_insert_with(|| shared_name(&destination))
                    .clone();
                let mut attributes = Vec::with_capacity(5);
                attributes.extend([
                    KeyValue::new(attr::MESSAGING_SYSTEM, system),
                    KeyValue::new(attr::MESSAGING_DESTINATION_NAME, shared),
                    KeyValue::new(attr::MESSAGING_OPERATION_TYPE, operation_type),
                    KeyValue::new(attr::MESSAGING_OPERATION_NAME, operation),
                ]);
                if let Some(template) = destination.template {
                    attributes.push(KeyValue::new(
                        attr::MESSAGING_DESTINATION_TEMPLATE,
                        template,
                    ));
                }
                span.set_attributes(attributes);
            })
        }
        None => parent.clone(),
    };
    // The metrics name the template when there is one (no copy), else the shared name.
    let metric_destination = match destination.template {
        Some(template) => KeyValue::new(attr::MESSAGING_DESTINATION_TEMPLATE, template),
        None => KeyValue::new(
            attr::MESSAGING_DESTINATION_NAME,
            name.get_or_insert_with(|| shared_name(&destination))
                .clone(),
        ),
    };
    let outcome = Outcome::new(
        instruments,
        side,
        [
            KeyValue::new(attr::MESSAGING_SYSTEM, system),
            KeyValue::new(attr::MESSAGING_OPERATION_NAME, operation),
            metric_destination,
        ],
        cx.span().span_context().clone(),
    );
    MessageSpan {
        cx,
        outcome: Some(Arc::new(outcome)),
    }
}

/// Starts a PRODUCER span for sending a message to `destination` on `system` (`"nats"`,
/// `"kafka"`, …; the semantic conventions' `messaging.system`, a constant), as a child of the current
/// context, and writes its context into the message's `headers`. Publish inside it; on
/// failure, [`MessageSpan::set_error`]. When it ends it records
/// `messaging.client.operation.duration` and `messaging.client.sent.messages`.
///
/// ```
/// let mut headers = std::collections::HashMap::new();
/// let span = platform_telemetry::propagation::producer_span("nats", "orders.events", &mut headers);
/// // span.wrap(client.publish_with_headers(subject, headers, payload)).await
/// span.in_scope(|| tracing::info!("published"));
/// # drop(span);
/// ```
pub fn producer_span<'a, H: MessageHeaders + ?Sized>(
    system: &'static str,
    destination: impl Into<Destination<'a>>,
    headers: &mut H,
) -> MessageSpan {
    let span = start(
        Side::Producer,
        system,
        destination.into(),
        &Context::current(),
        None,
    );
    inject_context(&span.cx, headers);
    span
}

/// Starts a CONSUMER span for processing a message received from `destination`: a child of the
/// producer's context read from `headers` (so the trace continues across the message hop) and
/// linked to it. Malformed or missing headers start a fresh trace. Process inside it; on
/// failure, [`MessageSpan::set_error`]. When it ends it records `messaging.process.duration`
/// and `messaging.client.consumed.messages`.
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
pub fn consumer_span<'a, H: MessageHeaders + ?Sized>(
    system: &'static str,
    destination: impl Into<Destination<'a>>,
    headers: &H,
) -> MessageSpan {
    let parent = extract(headers);
    let producer = parent.span().span_context().clone();
    let links = producer
        .is_valid()
        .then(|| vec![Link::with_context(producer)]);
    start(Side::Consumer, system, destination.into(), &parent, links)
}
