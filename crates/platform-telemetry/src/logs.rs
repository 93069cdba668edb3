//! Logs: `tracing` events written to stdout (JSON or human-readable) and exported as OTLP log
//! records, both carrying the `trace_id` and `span_id` of the span they happen in.

use std::fmt;
use std::sync::Arc;

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;
use crate::config::{Resolved, Warnings};
use crate::exporters::{ExportRuntime, log_exporter};
use crate::pipeline::{Counters, CountingExporter, GatedLogProcessor};
use crate::telemetry::CaptureSinks;

/// Event targets that belong to the export machinery itself. Their events are written to stdout
/// but never exported over OTLP or recorded on spans: exporting the exporter's own complaints
/// through the exporter is a feedback loop.
const EXPORT_MACHINERY: &[&str] = &[
    "opentelemetry",
    "hyper",
    "h2",
    "tonic",
    "tower",
    "reqwest",
    "rustls",
];

/// True for events of the export machinery (see [`EXPORT_MACHINERY`]).
pub(crate) fn is_export_machinery(target: &str) -> bool {
    EXPORT_MACHINERY.iter().any(|prefix| {
        target.starts_with(prefix)
            && matches!(
                target.as_bytes().get(prefix.len()),
                None | Some(b':' | b'_')
            )
    })
}

pub(crate) fn provider(
    cfg: &Resolved,
    resource: Resource,
    rt: &ExportRuntime,
    counters: &Arc<Counters>,
    capture: Option<&CaptureSinks>,
    warnings: &mut Warnings,
) -> Result<Option<SdkLoggerProvider>, Error> {
    let mut builder = SdkLoggerProvider::builder().with_resource(resource);
    let mut any = false;
    if cfg.logs_exporters.otlp {
        let mut otlp = cfg.logs_otlp.clone();
        otlp.timeout = otlp.timeout.min(cfg.blrp.export_timeout);
        let exporter = log_exporter(&otlp, rt, warnings)?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(cfg.blrp.max_queue_size)
            .with_max_export_batch_size(cfg.blrp.max_export_batch_size)
            .with_scheduled_delay(cfg.blrp.schedule_delay)
            .build();
        let processor = BatchLogProcessor::builder(CountingExporter {
            inner: exporter,
            counters: counters.clone(),
        })
        .with_batch_config(batch)
        .build();
        builder = builder.with_log_processor(GatedLogProcessor {
            inner: processor,
            counters: counters.clone(),
        });
        any = true;
    }
    #[cfg(feature = "testing")]
    if let Some(sinks) = capture {
        builder = builder.with_simple_exporter(sinks.logs.clone());
        any = true;
    }
    #[cfg(not(feature = "testing"))]
    let _ = capture;
    Ok(any.then(|| builder.build()))
}

/// The trace and span id of the active OpenTelemetry span, as lowercase hex.
fn current_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's fields,
/// `span` (the current span's name), `trace_id` and `span_id`.
#[derive(Debug, Default)]
pub(crate) struct JsonFormat;

const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "message",
    "span",
    "trace_id",
    "span_id",
];

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let key = match name {
            "message" => "message".to_string(),
            _ if RESERVED.contains(&name) => format!("fields.{name}"),
            _ => name.to_string(),
        };
        self.0.insert(key, value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut object = Map::new();
        object.insert("timestamp".into(), timestamp.into());
        object.insert("level".into(), meta.level().as_str().into());
        object.insert("target".into(), meta.target().into());
        event.record(&mut JsonVisitor(&mut object));
        if let Some(span) = ctx.lookup_current() {
            object.insert("span".into(), span.name().into());
        }
        if let Some((trace_id, span_id)) = current_ids() {
            object.insert("trace_id".into(), trace_id.into());
            object.insert("span_id".into(), span_id.into());
        }
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

/// Wraps tracing-subscriber's human-readable formats and starts each event with
/// `[trace_id=… span_id=…]` when it happens inside a span.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F>(pub(crate) F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some((trace_id, span_id)) = current_ids() {
            write!(writer, "[trace_id={trace_id} span_id={span_id}] ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_machinery_is_recognised_by_target_prefix() {
        for internal in [
            "opentelemetry_sdk",
            "opentelemetry",
            "opentelemetry_otlp::exporter",
            "hyper::proto",
            "h2",
            "tonic::transport",
            "reqwest::blocking",
        ] {
            assert!(is_export_machinery(internal), "{internal}");
        }
        for user in ["orders", "hyperion", "h2o_service", "app::tonic_handler"] {
            assert!(!is_export_machinery(user), "{user}");
        }
    }
}
