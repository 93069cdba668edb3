//! Bounded queues that never drop silently.
//!
//! The SDK's batch processors drop on a full queue and only log it once. We put a counting gate
//! in front of each one: a span or log record enters only while fewer than `max_queue_size` are
//! in flight (queued, batched or being exported), so the batch processor's own queue can never
//! overflow, and every item we turn away is counted. The counts are exposed as the semantic
//! conventions' SDK metrics (`otel.sdk.processor.*`, `otel.sdk.exporter.*`) on `/metrics`, and
//! through [`Telemetry::pipeline_stats`](crate::Telemetry::pipeline_stats).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

/// Counters for one signal's export pipeline.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// `spans` or `log records`, for the one warning after shutdown.
    items: &'static str,
    in_flight: AtomicU64,
    capacity: AtomicU64,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    /// Set when shutdown begins: from then on every item is dropped and counted. Shared with
    /// the [`sibling`](Counters::sibling)s of the same signal.
    closed: Arc<AtomicBool>,
    dropped_after_shutdown: AtomicU64,
}

impl Counters {
    pub(crate) fn with_capacity(items: &'static str, capacity: usize) -> Arc<Self> {
        let c = Self {
            items,
            ..Self::default()
        };
        c.capacity.store(capacity as u64, Ordering::Relaxed);
        Arc::new(c)
    }

    /// Counters for another queue of the same signal (the console exporter's), closed together
    /// with these.
    pub(crate) fn sibling(&self, capacity: usize) -> Arc<Self> {
        let c = Self {
            items: self.items,
            closed: self.closed.clone(),
            ..Self::default()
        };
        c.capacity.store(capacity as u64, Ordering::Relaxed);
        Arc::new(c)
    }

    /// Turns every later item away (counted in `dropped_after_shutdown`). Returns false if
    /// it was already closed.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    /// Reserves a place in the queue; false (and counted) when it is full or shut down.
    fn try_enter(&self) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if self.dropped_after_shutdown.fetch_add(1, Ordering::Relaxed) == 0 {
                self.warn_after_shutdown();
            }
            return false;
        }
        let capacity = self.capacity.load(Ordering::Relaxed);
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn leave(&self, n: u64, ok: bool) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        if ok {
            self.exported.fetch_add(n, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// One warning, at the first item that arrives after shutdown; the rest are only counted.
    #[cold]
    fn warn_after_shutdown(&self) {
        // The warning must not be exported (and so dropped and counted) in its turn.
        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
        tracing::warn!(
            target: "platform_telemetry",
            "{} are still being emitted after telemetry was shut down: they are dropped and counted \
             (pipeline_stats().{}.dropped_after_shutdown), with no further warning. Keep the guard \
             alive for the whole of main: `let _telemetry = platform_telemetry::init()?;` \
             (`let _ = init()` drops it at once)",
            self.items,
            if self.items == "spans" { "spans" } else { "logs" },
        );
    }

    pub(crate) fn snapshot(&self) -> SignalStats {
        SignalStats {
            queued: self.in_flight.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped_after_shutdown: self.dropped_after_shutdown.load(Ordering::Relaxed),
        }
    }
}

/// What happened to one signal's telemetry so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalStats {
    /// Items waiting in the queue or being exported right now.
    pub queued: u64,
    /// The queue's bound (`OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE`).
    pub capacity: u64,
    /// Items turned away: the queue was full (the endpoint is down or slow), or telemetry was
    /// already shut down.
    pub dropped: u64,
    /// Items the endpoint accepted.
    pub exported: u64,
    /// Items in exports that failed (refused, timed out, unreachable, TLS handshake refused).
    pub failed: u64,
    /// The part of `dropped` that arrived after shutdown (counted, warned about once).
    pub dropped_after_shutdown: u64,
}

/// Export pipeline counts for spans and log records; see [`Telemetry::pipeline_stats`](crate::Telemetry::pipeline_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Spans.
    pub spans: SignalStats,
    /// Log records.
    pub logs: SignalStats,
}

/// Counting gate in front of a span processor.
pub(crate) struct GatedSpanProcessor<P> {
    pub(crate) inner: P,
    pub(crate) counters: Arc<Counters>,
}

impl<P> fmt::Debug for GatedSpanProcessor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedSpanProcessor")
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl<P: SpanProcessor> SpanProcessor for GatedSpanProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Unsampled spans are never exported; the batch processor ignores them.
        if !span.span_context.is_sampled() || self.counters.try_enter() {
            self.inner.on_end(span);
        }
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

/// Counts what leaves the queue through an exporter.
pub(crate) struct CountingExporter<E> {
    pub(crate) inner: E,
    pub(crate) counters: Arc<Counters>,
}

impl<E> fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingExporter")
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.counters.leave(n, result.is_ok());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for CountingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        self.counters.leave(n, result.is_ok());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counting gate in front of a log processor.
pub(crate) struct GatedLogProcessor<P> {
    pub(crate) inner: P,
    pub(crate) counters: Arc<Counters>,
}

impl<P> fmt::Debug for GatedLogProcessor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedLogProcessor")
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl<P: LogProcessor> LogProcessor for GatedLogProcessor<P> {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        if self.counters.try_enter() {
            self.inner.emit(data, instrumentation);
        }
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

    #[test]
    fn a_full_queue_turns_items_away_and_counts_them() {
        let c = Counters::with_capacity("spans", 2);
        assert!(c.try_enter());
        assert!(c.try_enter());
        assert!(!c.try_enter());
        c.leave(1, true);
        assert!(c.try_enter());
        c.leave(2, false);
        assert_eq!(
            c.snapshot(),
            SignalStats {
                queued: 0,
                capacity: 2,
                dropped: 1,
                exported: 1,
                failed: 2,
                dropped_after_shutdown: 0,
            }
        );
        assert!(c.close());
        assert!(!c.close());
        assert!(!c.try_enter());
        assert!(!c.try_enter());
        let s = c.snapshot();
        assert_eq!((s.dropped, s.dropped_after_shutdown), (3, 2));
    }
}
