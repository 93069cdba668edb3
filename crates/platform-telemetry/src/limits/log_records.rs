//! The log record limits, applied by the first processor of the logger provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::LogRecord as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};

use super::truncate::{any_value_exceeds, limited_any_value};
use super::{LimitCounts, LogRecordLimits};

/// An empty log record. The SDK's record has no public constructor and no way to remove or
/// replace an attribute, so a record over a limit is rebuilt from this one.
pub(super) fn blank_log_record() -> SdkLogRecord {
    use opentelemetry::logs::{Logger as _, LoggerProvider as _};
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
    let _ = provider.shutdown();
    provider.logger("platform-telemetry").create_log_record()
}

/// Applies `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT` and `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`.
/// Registered first on the logger provider: what it changes, every later processor (the gated
/// OTLP batch, the test capture) sees. A record within the limits costs one pass over its
/// attributes and no allocation; one over a limit is rebuilt once (the SDK's record cannot drop
/// an attribute in place), keeping the first attributes in order.
pub(crate) struct LogRecordLimitsProcessor {
    limits: LogRecordLimits,
    blank: SdkLogRecord,
    pub(super) counts: Arc<LimitCounts>,
}

impl fmt::Debug for LogRecordLimitsProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRecordLimitsProcessor")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LogRecordLimitsProcessor {
    pub(crate) fn new(limits: LogRecordLimits, counts: Arc<LimitCounts>) -> Self {
        Self {
            limits,
            blank: blank_log_record(),
            counts,
        }
    }

    /// True when the defaults (128 attributes, no length limit) could ever change a record:
    /// always, since 128 is a limit too.
    fn over_limits(&self, record: &SdkLogRecord) -> (bool, usize) {
        let mut n: usize = 0;
        let mut too_long = false;
        for (_, value) in record.attributes_iter() {
            n += 1;
            if !too_long && let Some(limit) = self.limits.attribute_value_length {
                too_long = any_value_exceeds(value, limit);
            }
        }
        let dropped = n.saturating_sub(self.limits.attribute_count);
        (too_long || dropped > 0, dropped)
    }

    /// `record` within the limits: every field copied, attributes kept up to the count limit
    /// and truncated to the length limit.
    pub(super) fn limited(&self, record: &SdkLogRecord) -> SdkLogRecord {
        let mut out = self.blank.clone();
        if let Some(name) = record.event_name() {
            out.set_event_name(name);
        }
        if let Some(target) = record.target() {
            out.set_target(target.clone());
        }
        if let Some(t) = record.timestamp() {
            out.set_timestamp(t);
        }
        if let Some(t) = record.observed_timestamp() {
            out.set_observed_timestamp(t);
        }
        if let Some(tc) = record.trace_context() {
            out.set_trace_context(tc.trace_id, tc.span_id, tc.trace_flags);
        }
        if let Some(text) = record.severity_text() {
            out.set_severity_text(text);
        }
        if let Some(number) = record.severity_number() {
            out.set_severity_number(number);
        }
        if let Some(body) = record.body() {
            out.set_body(body.clone());
        }
        for (key, value) in record.attributes_iter().take(self.limits.attribute_count) {
            let value = match self.limits.attribute_value_length {
                Some(limit) => limited_any_value(value, limit),
                None => value.clone(),
            };
            out.add_attribute(key.clone(), value);
        }
        out
    }
}

impl LogProcessor for LogRecordLimitsProcessor {
    fn emit(&self, data: &mut SdkLogRecord, _instrumentation: &InstrumentationScope) {
        let (over, dropped) = self.over_limits(data);
        if over {
            *data = self.limited(data);
            self.counts.add_log_attributes_dropped(dropped);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
