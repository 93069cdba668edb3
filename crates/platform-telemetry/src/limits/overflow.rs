//! What the limits dropped, and the metric streams that reached the cardinality limit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};

use super::{CARDINALITY_VARIABLE, OVERFLOW_ATTRIBUTE};

/// The most metric streams remembered as overflowed (a process has far fewer instruments).
const MAX_TRACKED_OVERFLOWS: usize = 1024;

/// What the limits dropped so far.
#[derive(Debug, Default)]
pub(crate) struct LimitCounts {
    log_attributes_dropped: AtomicU64,
    /// (scope, instrument) of every metric stream seen with an overflow series.
    overflowed: Mutex<Vec<(Box<str>, Box<str>)>>,
}

impl LimitCounts {
    pub(crate) fn add_log_attributes_dropped(&self, n: usize) {
        if n > 0 {
            self.log_attributes_dropped
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Log record attributes dropped by the count limit.
    pub(crate) fn log_attributes_dropped(&self) -> u64 {
        self.log_attributes_dropped.load(Ordering::Relaxed)
    }

    /// Metric streams that reached the cardinality limit since start.
    pub(crate) fn overflowed_streams(&self) -> u64 {
        let overflowed = self
            .overflowed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        overflowed.len() as u64
    }

    /// Looks through a collection for overflow series (`otel.metric.overflow=true`); each stream
    /// seen for the first time is remembered and logged once. True when there was a new one.
    /// Cheap when nothing overflows: one look at each point's first attribute.
    pub(crate) fn watch_overflow(&self, metrics: &ResourceMetrics, limit: usize) -> bool {
        let mut found = false;
        for scope in metrics.scope_metrics() {
            for metric in scope.metrics() {
                if has_overflow_series(metric.data())
                    && self.remember(scope.scope().name(), metric.name())
                {
                    found = true;
                    tracing::warn!(
                        target: "platform_telemetry::limits",
                        metric = metric.name(),
                        scope = scope.scope().name(),
                        cardinality_limit = limit,
                        "metric {} has more than {limit} attribute sets: the rest are added up \
                         in its otel.metric.overflow=true series (raise {CARDINALITY_VARIABLE} \
                         or drop a high-cardinality attribute)",
                        metric.name()
                    );
                }
            }
        }
        found
    }

    fn remember(&self, scope: &str, metric: &str) -> bool {
        let mut overflowed = self
            .overflowed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if overflowed.len() >= MAX_TRACKED_OVERFLOWS
            || overflowed
                .iter()
                .any(|(s, m)| &**s == scope && &**m == metric)
        {
            return false;
        }
        overflowed.push((scope.into(), metric.into()));
        true
    }
}

/// The overflow series has exactly one attribute, `otel.metric.overflow`.
fn is_overflow_series<'a>(mut attributes: impl Iterator<Item = &'a KeyValue>) -> bool {
    match (attributes.next(), attributes.next()) {
        (Some(kv), None) => kv.key.as_str() == OVERFLOW_ATTRIBUTE,
        _ => false,
    }
}

fn data_has_overflow<T>(data: &MetricData<T>) -> bool {
    match data {
        MetricData::Gauge(g) => g.data_points().any(|p| is_overflow_series(p.attributes())),
        MetricData::Sum(s) => s.data_points().any(|p| is_overflow_series(p.attributes())),
        MetricData::Histogram(h) => h.data_points().any(|p| is_overflow_series(p.attributes())),
        MetricData::ExponentialHistogram(h) => {
            h.data_points().any(|p| is_overflow_series(p.attributes()))
        }
    }
}

fn has_overflow_series(data: &AggregatedMetrics) -> bool {
    match data {
        AggregatedMetrics::F64(d) => data_has_overflow(d),
        AggregatedMetrics::U64(d) => data_has_overflow(d),
        AggregatedMetrics::I64(d) => data_has_overflow(d),
    }
}
