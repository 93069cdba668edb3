//! The semantic conventions the library follows, in one place: the version (declared as the
//! schema URL of the resource and of the library's instrumentation scopes), the attribute and
//! metric names (the `opentelemetry-semantic-conventions` constants, never string literals), and
//! the two fixes that keep `tracing`'s own vocabulary out of the exported data:
//!
//! - [`SourceEventNames`]: an OTLP log record has an event name only when the `tracing` event
//!   was given one (`tracing::info!(name: "order.placed", ...)`), not the `event file.rs:42`
//!   name `tracing` makes up from the source location for every other event.
//! - [`SpanEventHygiene`]: the span events tracing-opentelemetry records for log lines inside a
//!   `tracing` span lose its `level` and `target` attributes, and spans and span events lose
//!   `code.module.name` (none of them is a registry attribute; the level and the target are in
//!   the matching OTLP log record, as its severity and its scope name).

use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::LogRecord as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

pub(crate) use opentelemetry_semantic_conventions::attribute as attr;
pub(crate) use opentelemetry_semantic_conventions::metric;

/// The schema URL of the semantic-conventions version the library follows
/// (`https://opentelemetry.io/schemas/1.42.0`, from `opentelemetry-semantic-conventions`, pinned
/// with the rest of the OpenTelemetry crate family). Set on the resource and on the library's
/// instrumentation scopes (`platform-telemetry`: HTTP, messaging, `tracing` spans, log records).
pub const SCHEMA_URL: &str = opentelemetry_semantic_conventions::SCHEMA_URL;

/// The library's instrumentation scope `name`, with [`SCHEMA_URL`]. No version: the Prometheus
/// exposition would add it to every series as `otel_scope_version`.
pub(crate) fn scope(name: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_schema_url(SCHEMA_URL)
        .build()
}

/// The library's scope for a scope `tracing` (or a user) asked for by name: keeps its name,
/// version and attributes, adds [`SCHEMA_URL`] when it has none.
fn with_schema_url(scope: InstrumentationScope) -> InstrumentationScope {
    if scope.schema_url().is_some() {
        return scope;
    }
    let mut builder = InstrumentationScope::builder(scope.name().to_owned())
        .with_schema_url(SCHEMA_URL)
        .with_attributes(scope.attributes().cloned());
    if let Some(version) = scope.version() {
        builder = builder.with_version(version.to_owned());
    }
    builder.build()
}

/// The logger provider the `tracing` bridge gets its logger from: the SDK's, with
/// [`SCHEMA_URL`] on the logger's scope (the bridge asks for an unnamed scope; the OTLP exporter
/// names it after each record's target and keeps the schema URL).
#[derive(Debug)]
pub(crate) struct SchemaScopedLoggers(pub(crate) opentelemetry_sdk::logs::SdkLoggerProvider);

impl opentelemetry::logs::LoggerProvider for SchemaScopedLoggers {
    type Logger = opentelemetry_sdk::logs::SdkLogger;

    fn logger_with_scope(&self, scope: InstrumentationScope) -> Self::Logger {
        self.0.logger_with_scope(with_schema_url(scope))
    }
}

/// True for the name `tracing` makes up for an event without `name:`: `event <file>.rs:<line>`
/// (the `tracing` macros), or `log event` (records from the `log` crate, through tracing-log).
pub(crate) fn is_source_location_name(name: &str) -> bool {
    if name == "log event" {
        return true;
    }
    let Some(location) = name.strip_prefix("event ") else {
        return false;
    };
    match location.rsplit_once(':') {
        Some((file, line)) => {
            file.ends_with(".rs") && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Clears the event name of log records whose name is only `tracing`'s source location (see
/// [`is_source_location_name`]). The SDK's record has no way to unset the name; it is set to
/// the empty string, which OTLP's protobuf encoding leaves out, the same as no event name.
/// Registered first on the logger provider, so every later processor sees the result.
#[derive(Debug, Default)]
pub(crate) struct SourceEventNames;

impl LogProcessor for SourceEventNames {
    fn emit(&self, data: &mut SdkLogRecord, _instrumentation: &InstrumentationScope) {
        if data.event_name().is_some_and(is_source_location_name) {
            data.set_event_name("");
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Span and span-event attribute keys that tracing-opentelemetry adds and the semantic
/// conventions do not define.
const NOT_CONVENTIONS: &[&str] = &["level", "target", "code.module.name"];

fn is_convention_free(key: &opentelemetry::Key) -> bool {
    NOT_CONVENTIONS.contains(&key.as_str())
}

/// Removes [`NOT_CONVENTIONS`] keys from a span's attributes and its events' attributes.
pub(crate) fn clean_span(span: &mut SpanData) {
    span.attributes.retain(|kv| !is_convention_free(&kv.key));
    for event in &mut span.events.events {
        event.attributes.retain(|kv| !is_convention_free(&kv.key));
    }
}

/// Applies [`clean_span`] before the span reaches `inner`. Put in front of each exporter's
/// processor (the SDK hands every processor its own copy of the span).
#[derive(Debug)]
pub(crate) struct SpanEventHygiene<P> {
    pub(crate) inner: P,
}

impl<P: SpanProcessor> SpanProcessor for SpanEventHygiene<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        clean_span(&mut span);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tracing_made_up_names_are_recognized_and_given_names_are_not() {
        assert!(is_source_location_name(
            "event examples/gateway/src/lib.rs:22"
        ));
        assert!(is_source_location_name(
            "event /root/.cargo/registry/src/x/async-nats-0.51.0/src/lib.rs:1105"
        ));
        assert!(is_source_location_name("log event"));
        for given in [
            "order.placed",
            "event",
            "event ",
            "event src/lib.rs",
            "event src/lib.rs:",
            "event src/lib.rs:12a",
            "event notes.txt:3",
            "events src/lib.rs:3",
        ] {
            assert!(!is_source_location_name(given), "{given}");
        }
    }

    #[test]
    fn a_tracing_event_name_matches_what_the_macros_make() {
        // The name the `tracing` macros give an event without `name:`.
        let here = concat!("event ", file!(), ":", line!());
        assert!(is_source_location_name(here), "{here}");
    }

    proptest! {
        #[test]
        fn a_name_without_the_event_prefix_is_kept(name in "[a-z][a-z0-9_.]{0,40}") {
            prop_assume!(name != "log event");
            prop_assert!(!is_source_location_name(&name));
        }

        #[test]
        fn any_file_and_line_is_a_source_location(file in "[a-z/_.-]{1,60}", line in 0u32..100_000) {
            let name = format!("event {file}.rs:{line}");
            prop_assert!(is_source_location_name(&name));
        }
    }

    #[test]
    fn the_schema_url_names_a_version() {
        let version = SCHEMA_URL.strip_prefix("https://opentelemetry.io/schemas/");
        assert!(
            version.is_some_and(
                |v| v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok())
            ),
            "{SCHEMA_URL}"
        );
        let s = scope("platform-telemetry");
        assert_eq!(s.schema_url(), Some(SCHEMA_URL));
        let named = with_schema_url(InstrumentationScope::builder("orders").build());
        assert_eq!(
            (named.name(), named.schema_url()),
            ("orders", Some(SCHEMA_URL))
        );
    }
}

/// What the library emits, seen by the in-memory exporters after every processor.
#[cfg(all(test, feature = "testing"))]
mod emitted {
    use super::SCHEMA_URL;
    use opentelemetry::{Key, Value};

    #[test]
    fn log_records_are_named_only_when_given_a_name_and_everything_declares_the_schema() {
        let (telemetry, capture) =
            crate::testing::capture("shop").unwrap_or_else(|e| panic!("{e}"));
        tracing::dispatcher::with_default(&telemetry.subscriber(), || {
            let span = tracing::info_span!("checkout");
            let _entered = span.enter();
            tracing::info!(order.id = 7, "order placed");
            tracing::info!(name: "order.paid", amount = 7, "order paid");
        });
        let _ = telemetry.force_flush();

        let logs = capture.sinks.logs.get_emitted_logs().unwrap_or_default();
        let name_of = |body: &str| {
            logs.iter()
                .find(|l| {
                    l.record
                        .body()
                        .is_some_and(|b| matches!(b, opentelemetry::logs::AnyValue::String(s) if s.as_str() == body))
                })
                .map(|l| l.record.event_name().filter(|n| !n.is_empty()))
                .unwrap_or_else(|| panic!("no log record {body:?}"))
        };
        assert_eq!(name_of("order placed"), None, "no name: not an event");
        assert_eq!(name_of("order paid"), Some("order.paid"));
        for log in &logs {
            assert_eq!(log.instrumentation.schema_url(), Some(SCHEMA_URL));
            assert_eq!(log.resource.schema_url(), Some(SCHEMA_URL));
            assert!(
                matches!(log.resource.get(&Key::from_static_str("process.pid")), Some(Value::I64(pid)) if pid > 0),
                "process.pid is an int"
            );
        }

        let spans = capture.sinks.spans.get_finished_spans().unwrap_or_default();
        let checkout = spans
            .iter()
            .find(|s| s.name == "checkout")
            .unwrap_or_else(|| panic!("no checkout span in {spans:?}"));
        assert_eq!(
            checkout.instrumentation_scope.schema_url(),
            Some(SCHEMA_URL)
        );
        assert_eq!(
            checkout.events.events.len(),
            2,
            "log lines in a span are its events"
        );
        for event in &checkout.events.events {
            let keys: Vec<&str> = event.attributes.iter().map(|kv| kv.key.as_str()).collect();
            assert!(
                keys.contains(&"order.id") || keys.contains(&"amount"),
                "{keys:?}"
            );
            for absent in ["level", "target", "code.module.name"] {
                assert!(!keys.contains(&absent), "{absent} in {keys:?}");
            }
        }
    }
}
