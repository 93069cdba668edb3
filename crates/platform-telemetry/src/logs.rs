//! Logs: `tracing` events written to stdout (JSON or human-readable) and exported as OTLP log
//! records, both carrying the `trace_id` and `span_id` of the span they happen in.

use std::fmt;
use std::sync::Arc;

use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;
use crate::config::{Resolved, Warnings};
use crate::exporters::{ExportRuntime, log_exporter};
use crate::limits::LogRecordLimitsProcessor;
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
    // First: what it changes, every later processor sees.
    let mut builder = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(crate::semconv::SourceEventNames)
        .with_log_processor(LogRecordLimitsProcessor::new(
            cfg.limits.log_record,
            cfg.limits.counts.clone(),
        ));
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

/// The trace and span id of the active OpenTelemetry span (the innermost entered `tracing`
/// span's, or the request span the server layer attached), kept raw: they are formatted only
/// where a line is written.
fn current_ids() -> Option<(TraceId, SpanId)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
    })
}

/// One JSON object per line: `timestamp`, `level`, `target`, the event's fields (`message`
/// among them), `span` (the current `tracing` span's name, when there is one), `trace_id` and
/// `span_id` (lowercase hex, when the event happens inside a span). A field whose name is one
/// of these keys is written as `fields.<name>`.
///
/// The line is written straight into the layer's buffer: no map, no intermediate strings.
#[derive(Debug, Default)]
pub(crate) struct JsonFormat;

const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "span",
    "trace_id",
    "span_id",
];

/// Writes `s` as the inside of a JSON string (RFC 8259 escapes).
fn write_escaped(out: &mut dyn fmt::Write, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `from..i` ends before an ASCII byte, so it is on a char boundary.
        out.write_str(s.get(from..i).unwrap_or_default())?;
        if escape.is_empty() {
            write!(out, "\\u{b:04x}")?;
        } else {
            out.write_str(escape)?;
        }
        from = i + 1;
    }
    out.write_str(s.get(from..).unwrap_or_default())
}

/// A `fmt::Write` that escapes what it is given for the inside of a JSON string.
struct Escaping<'a>(&'a mut dyn fmt::Write);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

struct JsonFields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    /// Writes `,"<key>":` for the field, renaming keys the line itself uses.
    fn key(&mut self, field: &Field) -> fmt::Result {
        let name = field.name();
        self.out.write_str(",\"")?;
        if RESERVED.contains(&name) {
            self.out.write_str("fields.")?;
        }
        write_escaped(self.out, name)?;
        self.out.write_str("\":")
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.out));
        }
    }

    fn put_str(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.put(field, |out| {
            out.write_char('"')?;
            fmt::Write::write_fmt(&mut Escaping(out), value)?;
            out.write_char('"')
        });
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            // `Debug` is the shortest form that reads back exactly, with an exponent for very
            // large or small values (`Display` would write 1e300 as 301 digits).
            self.put(field, |out| write!(out, "{value:?}"));
        } else {
            self.put(field, |out| out.write_str("null"));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |out| write!(out, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |out| write!(out, "{value}"));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, |out| write!(out, "{value}"));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, |out| write!(out, "{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |out| write!(out, "{value}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |out| {
            out.write_char('"')?;
            write_escaped(out, value)?;
            out.write_char('"')
        });
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put_str(field, format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put_str(field, format_args!("{value:?}"));
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
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_str("\",\"target\":\"")?;
        write_escaped(&mut writer, meta.target())?;
        writer.write_char('"')?;
        let mut fields = JsonFields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        // The registry's current span, whatever layers see it: this layer sees only events.
        if let Some(span) = ctx.current_span().metadata() {
            writer.write_str(",\"span\":\"")?;
            write_escaped(&mut writer, span.name())?;
            writer.write_char('"')?;
        }
        if let Some((trace_id, span_id)) = current_ids() {
            write!(
                writer,
                ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""
            )?;
        }
        writer.write_str("}\n")
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
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    /// The number a line holds for `key`, read from its text with the standard library's
    /// correctly rounded parser (serde_json's default one may be an ulp off, subnormals more).
    fn number_in(line: &str, key: &str) -> Option<f64> {
        let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
        let rest = &line[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().ok()
    }

    /// The lines `JsonFormat` writes for what `emit` logs, as text.
    fn json_text_lines(emit: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut b) = self.0.lock() {
                    b.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonFormat)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever a message or a field holds (quotes, backslashes, control characters,
        /// any Unicode), the line is one valid JSON object that gives it back unchanged.
        #[test]
        fn any_text_round_trips_through_a_json_line(
            message in any::<String>(),
            value in any::<String>(),
            number in any::<f64>(),
        ) {
            let texts = json_text_lines(|| {
                let span = tracing::info_span!("request \"quoted\"");
                let _entered = span.enter();
                tracing::info!(value = %value, debug = ?value, number, target = "shadowed", "{message}");
            });
            prop_assert_eq!(texts.len(), 1);
            let line: serde_json::Value = serde_json::from_str(&texts[0])
                .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {}", texts[0])))?;
            let line = &line;
            prop_assert_eq!(line["message"].as_str(), Some(message.as_str()));
            prop_assert_eq!(line["value"].as_str(), Some(value.as_str()));
            let debug = format!("{value:?}");
            prop_assert_eq!(line["debug"].as_str(), Some(debug.as_str()));
            if number.is_finite() {
                // Exactly the number logged, subnormals and negative zero included.
                let read = number_in(&texts[0], "number");
                prop_assert_eq!(read.map(f64::to_bits), Some(number.to_bits()), "{}", texts[0]);
            } else {
                prop_assert!(line["number"].is_null());
            }
            prop_assert_eq!(line["fields.target"].as_str(), Some("shadowed"));
            prop_assert_eq!(line["level"].as_str(), Some("INFO"));
            prop_assert_eq!(line["span"].as_str(), Some("request \"quoted\""));
        }
    }

    #[test]
    fn subnormal_and_signed_zero_numbers_are_written_exactly() {
        // -2.088e-309 once failed the property test below: serde_json's default parser, not the
        // line, was off.
        for number in [
            -2.088e-309,
            f64::from_bits(1),
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let texts = json_text_lines(|| tracing::info!(number, "n"));
            let read = number_in(&texts[0], "number");
            assert_eq!(
                read.map(f64::to_bits),
                Some(number.to_bits()),
                "{}",
                texts[0]
            );
        }
    }

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
