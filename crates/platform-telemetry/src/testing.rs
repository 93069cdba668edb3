//! In-process capture for your own tests (feature `testing`): run code under a non-global
//! telemetry instance and assert on the spans, log records and metrics it produced, without a
//! collector.
//!
//! ```
//! use platform_telemetry::testing;
//!
//! let (telemetry, capture) = testing::capture("orders")?;
//! tracing::dispatcher::with_default(&telemetry.subscriber(), || {
//!     let span = tracing::info_span!("place_order", order.id = 7);
//!     let _entered = span.enter();
//!     tracing::info!(amount = 1999, "order placed");
//! });
//! telemetry.meter("orders").u64_counter("orders.placed").build().add(1, &[]);
//!
//! let span = &capture.spans()[0];
//! assert_eq!(span.name, "place_order");
//! assert_eq!(span.attributes["order.id"], "7");
//! let log = &capture.log_records()[0];
//! assert_eq!(log.body, "order placed");
//! assert_eq!(log.trace_id.as_deref(), Some(span.trace_id.as_str()));
//! assert!(capture.metrics_text().contains("orders_placed_total"));
//! # Ok::<(), platform_telemetry::Error>(())
//! ```

use std::collections::BTreeMap;

use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::logs::InMemoryLogExporter;
use opentelemetry_sdk::trace::InMemorySpanExporter;

use crate::{Error, Telemetry};

/// The in-memory exporters a capturing instance writes to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sinks {
    pub(crate) spans: InMemorySpanExporter,
    pub(crate) logs: InMemoryLogExporter,
}

/// Builds a non-global instance for `service_name` that records everything in memory (and
/// nothing to stdout or the network). The process environment is not read.
pub fn capture(service_name: &str) -> Result<(Telemetry, Capture), Error> {
    let sinks = Sinks::default();
    let telemetry = crate::builder()
        .service_name(service_name)
        .env_vars([
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("RUST_LOG", "trace"),
        ])
        .log_writer(std::io::sink)
        .capture_into(sinks.clone())
        .build()?;
    Ok((telemetry.clone(), Capture { sinks, telemetry }))
}

/// What a capturing instance recorded. See [`capture`].
#[derive(Debug)]
pub struct Capture {
    pub(crate) sinks: Sinks,
    telemetry: Telemetry,
}

/// A finished span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedSpan {
    /// The span name.
    pub name: String,
    /// Lowercase hex trace id.
    pub trace_id: String,
    /// Lowercase hex span id.
    pub span_id: String,
    /// The parent's span id, `None` for a root span.
    pub parent_span_id: Option<String>,
    /// `Internal`, `Server`, `Client`, `Producer` or `Consumer`.
    pub kind: String,
    /// Attributes, rendered as strings.
    pub attributes: BTreeMap<String, String>,
    /// True when the span's status is error.
    pub is_error: bool,
}

/// A log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedLogRecord {
    /// The message.
    pub body: String,
    /// `TRACE` … `ERROR`.
    pub severity: String,
    /// The `tracing` target.
    pub target: String,
    /// The trace the record was written in, if any.
    pub trace_id: Option<String>,
    /// The span the record was written in, if any.
    pub span_id: Option<String>,
    /// The event's fields, rendered as strings.
    pub attributes: BTreeMap<String, String>,
}

fn any_value(v: &AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

impl Capture {
    /// Finished spans, in the order they ended.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.sinks
            .spans
            .get_finished_spans()
            .unwrap_or_default()
            .into_iter()
            .map(|s| CapturedSpan {
                name: s.name.to_string(),
                trace_id: s.span_context.trace_id().to_string(),
                span_id: s.span_context.span_id().to_string(),
                parent_span_id: (s.parent_span_id != opentelemetry::trace::SpanId::INVALID)
                    .then(|| s.parent_span_id.to_string()),
                kind: format!("{:?}", s.span_kind),
                attributes: s
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect(),
                is_error: matches!(s.status, opentelemetry::trace::Status::Error { .. }),
            })
            .collect()
    }

    /// Log records, in the order they were emitted.
    pub fn log_records(&self) -> Vec<CapturedLogRecord> {
        self.sinks
            .logs
            .get_emitted_logs()
            .unwrap_or_default()
            .into_iter()
            .map(|l| {
                let r = &l.record;
                CapturedLogRecord {
                    body: r.body().map(any_value).unwrap_or_default(),
                    severity: r.severity_text().unwrap_or_default().to_string(),
                    target: r.target().map(|t| t.to_string()).unwrap_or_default(),
                    trace_id: r.trace_context().map(|t| t.trace_id.to_string()),
                    span_id: r.trace_context().map(|t| t.span_id.to_string()),
                    attributes: r
                        .attributes_iter()
                        .map(|(k, v)| (k.to_string(), any_value(v)))
                        .collect(),
                }
            })
            .collect()
    }

    /// The metrics in the Prometheus text format, as `/metrics` would serve them.
    pub fn metrics_text(&self) -> String {
        self.telemetry.scrape_metrics(None).body
    }

    /// Forgets everything captured so far.
    pub fn clear(&self) {
        self.sinks.spans.reset();
        self.sinks.logs.reset();
    }
}
