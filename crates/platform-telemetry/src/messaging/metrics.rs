//! The messaging metrics of the semantic conventions, recorded once per [`MessageSpan`]
//! (crate::messaging::MessageSpan) when it ends:
//!
//! | Instrument                              | Recorded by | Unit        |
//! |-----------------------------------------|-------------|-------------|
//! | `messaging.client.operation.duration`   | producers   | s           |
//! | `messaging.client.sent.messages`        | producers   | `{message}` |
//! | `messaging.process.duration`            | consumers   | s           |
//! | `messaging.client.consumed.messages`    | consumers   | `{message}` |
//!
//! with `messaging.system`, `messaging.operation.name`, `messaging.destination.name` (or
//! `messaging.destination.template` when the destination holds ids) and `error.type` when the
//! publish or the processing failed.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::trace::SpanContext;

use crate::metrics::ExemplarStore;
use crate::semconv::{attr, metric};

/// `messaging.client.operation.duration`: how long a publish took (producers).
pub const CLIENT_OPERATION_DURATION: &str = metric::MESSAGING_CLIENT_OPERATION_DURATION;
/// `messaging.client.sent.messages`: messages a producer attempted to publish.
pub const CLIENT_SENT_MESSAGES: &str = metric::MESSAGING_CLIENT_SENT_MESSAGES;
/// `messaging.process.duration`: how long a consumer took to process a message.
pub const PROCESS_DURATION: &str = metric::MESSAGING_PROCESS_DURATION;
/// `messaging.client.consumed.messages`: messages delivered to a consumer.
pub const CLIENT_CONSUMED_MESSAGES: &str = metric::MESSAGING_CLIENT_CONSUMED_MESSAGES;

/// Bucket boundaries (seconds) the semantic conventions advise for messaging durations (the
/// same as for HTTP).
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The four instruments of one telemetry instance, made once when it is built.
#[derive(Debug)]
pub(crate) struct MessagingInstruments {
    operation_duration: Histogram<f64>,
    sent: Counter<u64>,
    process_duration: Histogram<f64>,
    consumed: Counter<u64>,
    exemplars: Arc<ExemplarStore>,
}

impl MessagingInstruments {
    pub(crate) fn new(meter: &Meter, exemplars: Arc<ExemplarStore>) -> Self {
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let count = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit("{message}")
                .with_description(description)
                .build()
        };
        Self {
            operation_duration: duration(
                CLIENT_OPERATION_DURATION,
                "Duration of messaging operations initiated by a producer",
            ),
            sent: count(
                CLIENT_SENT_MESSAGES,
                "Number of messages producers attempted to send to the broker",
            ),
            process_duration: duration(
                PROCESS_DURATION,
                "Duration of processing operations of consumers",
            ),
            consumed: count(
                CLIENT_CONSUMED_MESSAGES,
                "Number of messages that were delivered to the application",
            ),
            exemplars,
        }
    }
}

/// Which side of the hop a span measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Producer,
    Consumer,
}

/// What one message span records when it ends: shared by every clone of the span, recorded
/// once, by [`MessageSpan::end`](crate::messaging::MessageSpan::end) or when the last clone is
/// dropped.
#[derive(Debug)]
pub(crate) struct Outcome {
    instruments: Arc<MessagingInstruments>,
    side: Side,
    started: Instant,
    /// `messaging.system`, `messaging.operation.name`, the destination's name or template, a
    /// slot for `error.type` (recorded only when the operation failed) and
    /// `messaging.operation.type` (on the producer's duration only).
    attributes: [KeyValue; 5],
    error_type: Mutex<Option<Cow<'static, str>>>,
    span_context: SpanContext,
}

impl Outcome {
    pub(crate) fn new(
        instruments: Arc<MessagingInstruments>,
        side: Side,
        attributes: [KeyValue; 3],
        span_context: SpanContext,
    ) -> Self {
        let [system, operation, destination] = attributes;
        Self {
            instruments,
            side,
            started: Instant::now(),
            attributes: [
                system,
                operation,
                destination,
                KeyValue::new(attr::ERROR_TYPE, ""),
                KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "send"),
            ],
            error_type: Mutex::new(None),
            span_context,
        }
    }

    /// Marks the operation as failed with this `error.type`.
    pub(crate) fn fail(&self, error_type: Cow<'static, str>) {
        let mut slot = self
            .error_type
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(error_type);
    }

    fn record(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let error_type = self
            .error_type
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // The attributes are recorded in place (no clone on the hot path): the count's, then
        // `messaging.operation.type` for the producer's `messaging.client.operation.duration`
        // (conditionally required there; the process duration's operation is implied).
        let attributes = &mut self.attributes;
        let present = match error_type {
            Some(error_type) => {
                attributes[3] = KeyValue::new(attr::ERROR_TYPE, error_type);
                4
            }
            None => {
                attributes.swap(3, 4);
                3
            }
        };
        let counted = attributes.get(..present).unwrap_or_default();
        let timed = match self.side {
            Side::Producer => attributes.get(..=present).unwrap_or_default(),
            Side::Consumer => counted,
        };
        let instruments = &self.instruments;
        let (duration, count, name) = match self.side {
            Side::Producer => (
                &instruments.operation_duration,
                &instruments.sent,
                CLIENT_OPERATION_DURATION,
            ),
            Side::Consumer => (
                &instruments.process_duration,
                &instruments.consumed,
                PROCESS_DURATION,
            ),
        };
        duration.record(elapsed, timed);
        count.add(1, counted);
        if self.span_context.is_sampled() {
            instruments
                .exemplars
                .record(name, timed, elapsed, &self.span_context);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.record();
    }
}
