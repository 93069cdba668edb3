//! [`ResponseFuture`]: runs the handler under the request's context and finishes the span and
//! the metrics when the response is ready (or when the request is dropped unfinished).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use opentelemetry::trace::{SpanContext, Status, TraceContextExt as _};
use opentelemetry::{KeyValue, StringValue};

use super::{Instruments, SERVER_DURATION, Shared, active_attributes};
use crate::semconv::attr;

pin_project_lite::pin_project! {
    /// The response future of [`ServerService`](super::ServerService).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        started: Option<Started>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("instrumented", &self.started.is_some())
            .finish_non_exhaustive()
    }
}

/// An instrumented request in flight.
pub(super) struct Started {
    pub(super) shared: Arc<Shared>,
    /// The caller's context with the SERVER span (recording) or its ids (not recording).
    pub(super) cx: opentelemetry::Context,
    pub(super) started: Instant,
    pub(super) method: &'static str,
    pub(super) scheme: &'static str,
    /// `network.protocol.version` (recommended on the duration).
    pub(super) protocol_version: &'static str,
    pub(super) route: Option<StringValue>,
}

impl Started {
    fn instruments(&self) -> Option<&Instruments> {
        self.shared.instruments.get()
    }
}

impl Drop for Started {
    /// Runs when the request ends unfinished (the connection went away, a timeout dropped the
    /// future): the request is no longer active. The span ends with the context's last clone.
    fn drop(&mut self) {
        if let Some(instruments) = self.instruments() {
            instruments
                .active
                .add(-1, &active_attributes(self.method, self.scheme));
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn passthrough(inner: F) -> Self {
        Self {
            inner,
            started: None,
        }
    }

    pub(super) fn instrumented(inner: F, started: Started) -> Self {
        Self {
            inner,
            started: Some(started),
        }
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = Result<http::Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(started) = this.started.as_ref() else {
            return this.inner.poll(task);
        };
        let result = {
            let _dispatch = started
                .instruments()
                .and_then(|i| i.dispatch.as_ref())
                .map(tracing::dispatcher::set_default);
            let _attached = started.cx.clone().attach();
            ready!(this.inner.poll(task))
        };
        if let Some(started) = this.started.take() {
            return Poll::Ready(finish(started, result));
        }
        Poll::Ready(result)
    }
}

/// Records the outcome on the span and the duration histogram, and adds `traceresponse`.
fn finish<RB, E>(
    started: Started,
    result: Result<http::Response<RB>, E>,
) -> Result<http::Response<RB>, E> {
    let elapsed = started.started.elapsed().as_secs_f64();
    let Some(instruments) = started.instruments() else {
        return result;
    };
    let span = started.cx.span();
    let span_context = span.span_context();
    let method = KeyValue::new(attr::HTTP_REQUEST_METHOD, started.method);
    // Required on `http.server.request.duration`, and recommended.
    let scheme = KeyValue::new(attr::URL_SCHEME, started.scheme);
    let version = KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, started.protocol_version);
    let route = started
        .route
        .clone()
        .map(|r| KeyValue::new(attr::HTTP_ROUTE, r));
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let status_attribute =
                KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
            let error =
                (status >= 500).then(|| KeyValue::new(attr::ERROR_TYPE, status.to_string()));
            if span.is_recording() {
                span.set_attribute(status_attribute.clone());
                if let Some(error) = &error {
                    span.set_attribute(error.clone());
                    span.set_status(Status::error(""));
                }
            }
            let mut attributes = [
                Some(method),
                Some(scheme),
                route,
                Some(status_attribute),
                error,
                Some(version),
            ];
            record(instruments, &mut attributes, elapsed, span_context);
            if span_context.is_valid()
                && let Ok(value) = http::HeaderValue::from_bytes(&traceresponse(span_context))
            {
                response.headers_mut().insert("traceresponse", value);
            }
            span.end();
            Ok(response)
        }
        Err(error) => {
            let error_type = KeyValue::new(attr::ERROR_TYPE, "_OTHER");
            if span.is_recording() {
                span.set_attribute(error_type.clone());
                span.set_status(Status::error(""));
            }
            let mut attributes = [
                Some(method),
                Some(scheme),
                route,
                None,
                Some(error_type),
                Some(version),
            ];
            record(instruments, &mut attributes, elapsed, span_context);
            span.end();
            Err(error)
        }
    }
}

/// At most this many attributes on `http.server.request.duration`: method, scheme, route,
/// status, error type, protocol version.
const ATTRIBUTES: usize = 6;

/// Records the duration with the attributes present, and the exemplar for a sampled request.
fn record(
    instruments: &Instruments,
    attributes: &mut [Option<KeyValue>; ATTRIBUTES],
    elapsed: f64,
    span_context: &SpanContext,
) {
    // The present attributes, packed into a slice without allocating.
    let mut packed: [KeyValue; ATTRIBUTES] = std::array::from_fn(|_| KeyValue::new("", false));
    let mut present = 0;
    for kv in attributes.iter_mut().filter_map(Option::take) {
        if let Some(slot) = packed.get_mut(present) {
            *slot = kv;
            present += 1;
        }
    }
    let kvs = packed.get(..present).unwrap_or_default();
    instruments.duration.record(elapsed, kvs);
    if span_context.is_sampled() {
        instruments
            .telemetry
            .exemplars()
            .record(SERVER_DURATION, kvs, elapsed, span_context);
    }
}

/// `traceresponse: 00-<trace id>-<span id>-<flags>` (W3C Trace Context level 2), formatted
/// into a fixed buffer.
fn traceresponse(span_context: &SpanContext) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 55];
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            if let Some(pair) = out.get_mut(at + 2 * i..at + 2 * i + 2) {
                pair[0] = HEX[usize::from(b >> 4)];
                pair[1] = HEX[usize::from(b & 0x0f)];
            }
        }
    };
    put(0, &[0]);
    put(3, &span_context.trace_id().to_bytes());
    put(36, &span_context.span_id().to_bytes());
    put(53, &[span_context.trace_flags().to_u8()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn traceresponse_is_the_w3c_level_2_header() {
        let sc = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0x00f067aa0ba902b7_u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        assert_eq!(
            std::str::from_utf8(&traceresponse(&sc)).ok(),
            Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01")
        );
    }
}
