//! Context propagation across HTTP and message hops, with the composite propagator chosen by
//! `OTEL_PROPAGATORS` (default `tracecontext,baggage`: W3C `traceparent`/`tracestate` and
//! `baggage`).
//!
//! # Across tasks and threads
//!
//! The current span lives in a thread-local: a task given to `tokio::spawn` or a closure given
//! to `std::thread::spawn` starts with none, so what it records opens a new trace. Carry the
//! span over explicitly: `.in_current_span()` for a task, `Span::current()` moved into the
//! closure and entered there for a thread. A non-global instance ([`Builder::build`]) also
//! needs its subscriber carried, with `.with_current_subscriber()` (the global one from
//! [`init()`] is everywhere already).
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use tracing::Instrument as _; // .in_current_span()
//! use tracing::instrument::WithSubscriber as _; // .with_current_subscriber()
//!
//! let (telemetry, capture) = platform_telemetry::testing::capture("orders")?;
//! let runtime = tokio::runtime::Runtime::new()?;
//! tracing::dispatcher::with_default(&telemetry.subscriber(), || {
//!     let request = tracing::info_span!("handle request");
//!     let _entered = request.enter();
//!
//!     // A task: the span (and, for this non-global instance, the subscriber) goes with it.
//!     let task = async { tracing::info_span!("send email").in_scope(|| {}) };
//!     runtime.block_on(async {
//!         tokio::spawn(task.in_current_span().with_current_subscriber()).await
//!     })?;
//!
//!     // A thread: move the span in and enter it there.
//!     let span = tracing::Span::current();
//!     let dispatch = tracing::dispatcher::get_default(|d| d.clone());
//!     std::thread::spawn(move || {
//!         tracing::dispatcher::with_default(&dispatch, || {
//!             span.in_scope(|| tracing::info_span!("resize image").in_scope(|| {}))
//!         })
//!     })
//!     .join()
//!     .map_err(|_| "the thread panicked")?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//!
//! let spans = capture.spans();
//! let request = spans.iter().find(|s| s.name == "handle request").ok_or("no request span")?;
//! for child in ["send email", "resize image"] {
//!     let child = spans.iter().find(|s| s.name == child).ok_or("no child span")?;
//!     assert_eq!(child.trace_id, request.trace_id, "{} is in the request's trace", child.name);
//!     assert_eq!(child.parent_span_id.as_deref(), Some(request.span_id.as_str()));
//! }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Builder::build`]: crate::Builder::build
//! [`init()`]: crate::init

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagatorKind;

// opentelemetry-zipkin marks its whole crate deprecated (the Zipkin exporter); its B3
// propagator is the maintained one in the 0.33 family.
#[cfg_attr(feature = "b3", allow(deprecated))]
pub(crate) fn composite(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
        .iter()
        .map(|kind| -> Box<dyn TextMapPropagator + Send + Sync> {
            match kind {
                PropagatorKind::TraceContext => Box::new(StrictTraceContext::default()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                #[cfg(feature = "b3")]
                PropagatorKind::B3Single => {
                    Box::new(opentelemetry_zipkin::Propagator::with_encoding(
                        opentelemetry_zipkin::B3Encoding::SingleHeader,
                    ))
                }
                #[cfg(feature = "b3")]
                PropagatorKind::B3Multi => {
                    Box::new(opentelemetry_zipkin::Propagator::with_encoding(
                        opentelemetry_zipkin::B3Encoding::MultipleHeader,
                    ))
                }
            }
        })
        .collect();
    TextMapCompositePropagator::new(propagators)
}

/// W3C Trace Context, checked to the letter before the SDK parses it: the SDK's parser accepts
/// trace and span ids of the wrong length (it left-pads them), which would let a malformed
/// `traceparent` continue a trace it never belonged to.
#[derive(Debug, Default)]
pub(crate) struct StrictTraceContext(TraceContextPropagator);

/// True when `value` is a `traceparent` the W3C Trace Context specification accepts.
pub(crate) fn is_valid_traceparent(value: &str) -> bool {
    fn lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    let value = value.trim();
    let Some(head) = value.get(..55) else {
        return false;
    };
    let mut parts = head.split('-');
    let (Some(version), Some(trace_id), Some(parent_id), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let well_formed = lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && lower_hex(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2);
    // Version 00 is exactly 55 characters; later versions may append `-…`.
    let rest_ok = match version {
        "00" => value.len() == 55,
        _ => value.len() == 55 || value.as_bytes().get(55) == Some(&b'-'),
    };
    well_formed && rest_ok
}

impl TextMapPropagator for StrictTraceContext {
    fn inject_context(
        &self,
        cx: &opentelemetry::Context,
        injector: &mut dyn opentelemetry::propagation::Injector,
    ) {
        self.0.inject_context(cx, injector);
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        match extractor.get("traceparent") {
            Some(value) if is_valid_traceparent(value) => {
                self.0.extract_with_context(cx, extractor)
            }
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.0.fields()
    }
}

/// A message's headers, so trace context can cross a message hop (Kafka, NATS, or any
/// string key/value carrier). Implemented for `HashMap<String, String>` and `http::HeaderMap`;
/// implement it for your client's header type with three small methods.
pub trait MessageHeaders {
    /// The value of `key`, if present and valid UTF-8.
    fn header(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`, replacing an existing value.
    fn set_header(&mut self, key: &str, value: String);
    /// Every key present.
    fn header_keys(&self) -> Vec<&str>;
}

impl<S: std::hash::BuildHasher> MessageHeaders for std::collections::HashMap<String, String, S> {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
    fn set_header(&mut self, key: &str, value: String) {
        self.insert(key.to_string(), value);
    }
    fn header_keys(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }
}

impl MessageHeaders for http::HeaderMap {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_str().ok())
    }
    fn set_header(&mut self, key: &str, value: String) {
        // The propagators' own keys need no allocated name.
        let name = match key {
            "traceparent" => Ok(http::header::HeaderName::from_static("traceparent")),
            "tracestate" => Ok(http::header::HeaderName::from_static("tracestate")),
            "baggage" => Ok(http::header::HeaderName::from_static("baggage")),
            other => http::header::HeaderName::from_bytes(other.as_bytes()),
        };
        if let (Ok(name), Ok(value)) = (name, http::HeaderValue::try_from(value)) {
            self.insert(name, value);
        }
    }
    fn header_keys(&self) -> Vec<&str> {
        self.keys().map(http::header::HeaderName::as_str).collect()
    }
}

struct Carrier<'a, H: ?Sized>(&'a mut H);

impl<H: MessageHeaders + ?Sized> opentelemetry::propagation::Injector for Carrier<'_, H> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set_header(key, value);
    }
}

struct ReadCarrier<'a, H: ?Sized>(&'a H);

impl<H: MessageHeaders + ?Sized> opentelemetry::propagation::Extractor for ReadCarrier<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.header(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.header_keys()
    }
}

/// Writes the current context (`traceparent`, `tracestate`, `baggage` by default: the innermost
/// entered `tracing` span's, or the request or message span the library made current) into
/// `headers` with the installed instance's propagator (`OTEL_PROPAGATORS`; W3C
/// trace context and baggage when nothing is installed). Call it where a message is produced.
///
/// ```
/// let mut headers = std::collections::HashMap::new();
/// platform_telemetry::propagation::inject(&mut headers);
/// // outside any span, nothing is written
/// assert!(headers.is_empty());
/// ```
pub fn inject<H: MessageHeaders + ?Sized>(headers: &mut H) {
    inject_context(&opentelemetry::Context::current(), headers);
}

/// Writes `cx` into `headers` (see [`inject`] for the propagator used).
pub fn inject_context<H: MessageHeaders + ?Sized>(cx: &opentelemetry::Context, headers: &mut H) {
    with_propagator(None, |p| inject_with(p, cx, headers));
}

/// Runs `f` with the instance's propagator; without one, the globally installed instance's;
/// without that, the default W3C `tracecontext,baggage` (so context still crosses hops in a
/// process that built only non-global instances).
pub(crate) fn with_propagator<R>(
    telemetry: Option<&crate::Telemetry>,
    mut f: impl FnMut(&dyn TextMapPropagator) -> R,
) -> R {
    match telemetry.cloned().or_else(crate::global) {
        Some(t) => f(t.propagator()),
        None => f(default_propagator()),
    }
}

fn default_propagator() -> &'static TextMapCompositePropagator {
    static DEFAULT: std::sync::OnceLock<TextMapCompositePropagator> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| composite(&[PropagatorKind::TraceContext, PropagatorKind::Baggage]))
}

pub(crate) fn inject_with<H: MessageHeaders + ?Sized>(
    propagator: &dyn TextMapPropagator,
    cx: &opentelemetry::Context,
    headers: &mut H,
) {
    propagator.inject_context(cx, &mut Carrier(headers));
}

/// Reads `headers` into a child of `base` (the current context for [`extract`], an empty one
/// where a request starts: a server's parent is the caller, never what this thread ran before).
pub(crate) fn extract_with<H: MessageHeaders + ?Sized>(
    propagator: &dyn TextMapPropagator,
    base: &opentelemetry::Context,
    headers: &H,
) -> opentelemetry::Context {
    propagator.extract_with_context(base, &ReadCarrier(headers))
}

/// Reads the producer's context from `headers` (see [`inject`] for the propagator used), as a
/// child of the current context. Malformed or absent headers carry no span: the consumer starts a
/// fresh trace. [`consumer_span`] does this for you; to parent a `tracing` span on it instead,
/// use `tracing_opentelemetry::OpenTelemetrySpanExt::set_parent`.
pub fn extract<H: MessageHeaders + ?Sized>(headers: &H) -> opentelemetry::Context {
    with_propagator(None, |p| {
        extract_with(p, &opentelemetry::Context::current(), headers)
    })
}

pub use crate::messaging::{Destination, MessageSpan, consumer_span, producer_span};

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };

    fn context() -> opentelemetry::Context {
        let sc = SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap_or(TraceId::INVALID),
            SpanId::from_hex("00f067aa0ba902b7").unwrap_or(SpanId::INVALID),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(sc)
    }

    #[test]
    fn context_round_trips_through_both_carriers() {
        let propagator = composite(&[PropagatorKind::TraceContext, PropagatorKind::Baggage]);
        let mut map = std::collections::HashMap::<String, String>::new();
        propagator.inject_context(&context(), &mut Carrier(&mut map));
        assert_eq!(
            map.get("traceparent").map(String::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01")
        );
        let mut headers = http::HeaderMap::new();
        for (k, v) in &map {
            headers.set_header(k, v.clone());
        }
        let cx = propagator.extract(&ReadCarrier(&headers));
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(cx.span().span_context().is_remote());
    }

    #[test]
    fn future_versions_may_append_fields() {
        assert!(is_valid_traceparent(
            "01-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01-what-comes"
        ));
        assert!(is_valid_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
        ));
    }

    #[test]
    fn malformed_traceparent_gives_an_empty_context() {
        let propagator = composite(&[PropagatorKind::TraceContext]);
        for bad in [
            "ff-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
            "00-0af7651916cd43dd8448eb211c80319z-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c8031-00f067aa0ba902b7-01",
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902-01",
            "00-0AF7651916CD43DD8448EB211C80319C-00f067aa0ba902b7-01",
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let mut map = std::collections::HashMap::<String, String>::new();
            map.insert("traceparent".into(), bad.into());
            let cx = propagator.extract(&ReadCarrier(&map));
            assert!(!cx.span().span_context().is_valid(), "{bad}");
        }
    }
}
