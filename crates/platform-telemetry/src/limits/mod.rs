//! The specification's attribute, span and log record limits, read through the library's own
//! configuration (so `Builder::env_vars` governs them, not the SDK's direct process-env reads),
//! and the metric cardinality limit.
//!
//! Where each limit is enforced:
//!
//! - Span attribute, event, link and per-event/per-link attribute **counts**: the SDK itself,
//!   from the [`SpanLimits`] set explicitly on the tracer provider. It keeps the first `n` and
//!   reports the rest as `dropped_attributes_count` / `dropped_events_count` /
//!   `dropped_links_count` on the wire.
//! - Span attribute **value length** (span, event and link attributes alike, as in the Java
//!   SDK): [`ValueLengthLimit`], a wrapper in front of every span exporter's processor. The
//!   Rust SDK has no such limit.
//! - Log record attribute count and value length: [`LogRecordLimitsProcessor`], the first
//!   processor of the logger provider (a log processor's changes reach the processors after
//!   it). The SDK's log record has no dropped-attributes count, so OTLP log records always say
//!   0; the drops are counted in `platform_telemetry.log_record.dropped_attributes` instead.
//! - Metric cardinality: a view on the meter provider (see `metrics.rs`); streams that reach it
//!   are counted by [`LimitCounts::watch_overflow`] in `platform_telemetry.metric.overflowed_streams`.
//!
//! Value length limits truncate strings to at most that many characters (Unicode scalar values,
//! cut on a character boundary), each string of a string array separately, byte arrays to that
//! many bytes, and lists and maps of log attribute values recursively; other values are never
//! truncated. The log record body is not an attribute and is never truncated.

mod log_records;
mod overflow;
#[cfg(test)]
mod tests;
mod truncate;

pub(crate) use log_records::LogRecordLimitsProcessor;
pub(crate) use overflow::LimitCounts;
pub(crate) use truncate::ValueLengthLimit;

use std::sync::Arc;

use opentelemetry_sdk::trace::SpanLimits;

use crate::config::{Env, Warnings, parse_integer};

/// The bounds every limit is held to, whatever the environment says. A value above the maximum
/// is taken as the maximum, with a warning; a malformed one is taken as unset, with a warning.
pub(crate) mod bounds {
    /// Largest attribute, event and link count (like `MAX_QUEUE_SIZE`): the SDK keeps up to
    /// this many per span, so it bounds a span's memory.
    pub(crate) const MAX_COUNT: u64 = 65_536;
    /// Largest attribute value length, in characters (2^31 - 1).
    pub(crate) const MAX_VALUE_LENGTH: u64 = i32::MAX as u64;
    /// Largest metric cardinality limit. The SDK sizes each instrument's table of series for
    /// the limit up front (about 33 bytes a slot, per instrument and reader: 2 MiB at this
    /// bound), so it is kept well below what a misplaced digit could ask for.
    pub(crate) const MAX_CARDINALITY: u64 = 65_536;
    /// The specification's default for every count limit.
    pub(crate) const DEFAULT_COUNT: usize = 128;
    /// The SDK's default cardinality limit.
    pub(crate) const DEFAULT_CARDINALITY: usize = 2000;
}

/// The metric cardinality limit's variable. The specification has none; it names
/// language-specific variables `OTEL_{LANGUAGE}_{FEATURE}`, and the Java SDK's stable property
/// is `otel.java.metrics.cardinality.limit` (`OTEL_JAVA_METRICS_CARDINALITY_LIMIT`).
pub(crate) const CARDINALITY_VARIABLE: &str = "OTEL_RUST_METRICS_CARDINALITY_LIMIT";

/// What names the builder's cardinality limit in a warning.
const CARDINALITY_BUILDER: &str = "Builder::metric_cardinality_limit";

/// The attribute the SDK gives the series that collects measurements beyond the cardinality
/// limit (`otel.metric.overflow=true`).
pub(crate) const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// Span limits (`OTEL_SPAN_*`, `OTEL_EVENT_*`, `OTEL_LINK_*`, falling back on
/// `OTEL_ATTRIBUTE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanLimitsConfig {
    pub(crate) attribute_count: usize,
    /// `None`: no limit.
    pub(crate) attribute_value_length: Option<usize>,
    pub(crate) event_count: usize,
    pub(crate) link_count: usize,
    pub(crate) event_attribute_count: usize,
    pub(crate) link_attribute_count: usize,
}

impl SpanLimitsConfig {
    /// The SDK's form of the count limits.
    pub(crate) fn sdk(&self) -> SpanLimits {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        SpanLimits {
            max_events_per_span: n(self.event_count),
            max_attributes_per_span: n(self.attribute_count),
            max_links_per_span: n(self.link_count),
            max_attributes_per_event: n(self.event_attribute_count),
            max_attributes_per_link: n(self.link_attribute_count),
        }
    }
}

/// Log record limits (`OTEL_LOGRECORD_*`, falling back on `OTEL_ATTRIBUTE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogRecordLimits {
    pub(crate) attribute_count: usize,
    /// `None`: no limit.
    pub(crate) attribute_value_length: Option<usize>,
}

/// Every limit, resolved.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) span: SpanLimitsConfig,
    pub(crate) log_record: LogRecordLimits,
    /// Series per metric stream; see [`metric_cardinality_limit`].
    pub(crate) metric_cardinality: usize,
    /// What the limits dropped, shared by the processors that enforce them and the metrics that
    /// report them. Created with the configuration, so every provider built from it reports
    /// into one place.
    pub(crate) counts: Arc<LimitCounts>,
}

impl Default for Limits {
    /// The specification's defaults (and the SDK's cardinality limit).
    fn default() -> Self {
        Self {
            span: SpanLimitsConfig {
                attribute_count: bounds::DEFAULT_COUNT,
                attribute_value_length: None,
                event_count: bounds::DEFAULT_COUNT,
                link_count: bounds::DEFAULT_COUNT,
                event_attribute_count: bounds::DEFAULT_COUNT,
                link_attribute_count: bounds::DEFAULT_COUNT,
            },
            log_record: LogRecordLimits {
                attribute_count: bounds::DEFAULT_COUNT,
                attribute_value_length: None,
            },
            metric_cardinality: bounds::DEFAULT_CARDINALITY,
            counts: Arc::default(),
        }
    }
}

/// Equal when the limits are; the counts are not configuration.
impl PartialEq for Limits {
    fn eq(&self, other: &Self) -> bool {
        self.span == other.span
            && self.log_record == other.log_record
            && self.metric_cardinality == other.metric_cardinality
    }
}

impl Eq for Limits {}

fn count(env: &Env, name: &str, default: usize, unit: &str, warnings: &mut Warnings) -> usize {
    let n = parse_integer(
        env,
        name,
        default as u64,
        0,
        bounds::MAX_COUNT,
        unit,
        warnings,
    );
    usize::try_from(n).unwrap_or(default)
}

/// `parse_integer`'s default for a length: never a result otherwise (above the maximum).
const NOT_SET: u64 = u64::MAX;

fn describe_length(length: Option<usize>) -> String {
    match length {
        None => "no limit".to_string(),
        Some(n) => n.to_string(),
    }
}

/// A value length limit: `fallback` when unset or malformed (with a warning saying so).
fn value_length(
    env: &Env,
    name: &str,
    fallback: Option<usize>,
    warnings: &mut Warnings,
) -> Option<usize> {
    let Some(raw) = env.value(name) else {
        return fallback;
    };
    let mut own = Warnings::default();
    let n = parse_integer(
        env,
        name,
        NOT_SET,
        0,
        bounds::MAX_VALUE_LENGTH,
        "characters",
        &mut own,
    );
    let length = if n == NOT_SET {
        fallback
    } else {
        Some(usize::try_from(n).unwrap_or(usize::MAX))
    };
    // The parser's warning, saying what is really used instead of its stand-in default.
    for w in own.into_vec() {
        let using = if n == NOT_SET {
            describe_length(fallback)
        } else {
            w.using
        };
        warnings.push(name, &raw, w.problem, using);
    }
    length.or(fallback)
}

/// Reads `OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`, `OTEL_EVENT_*`, `OTEL_LINK_*` and `OTEL_LOGRECORD_*`.
/// A model-specific variable that is set (and valid) wins over the general `OTEL_ATTRIBUTE_*`
/// one; the general one applies to span, event, link and log record attributes alike.
///
/// `cardinality` is what the builder said for the metric cardinality limit (see
/// [`metric_cardinality_limit`]).
pub(crate) fn resolve(env: &Env, cardinality: Option<usize>, warnings: &mut Warnings) -> Limits {
    let w = warnings;
    let general_count = count(
        env,
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        bounds::DEFAULT_COUNT,
        "attributes",
        w,
    );
    let general_length = value_length(env, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", None, w);
    let span = SpanLimitsConfig {
        attribute_count: count(
            env,
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            general_count,
            "attributes",
            w,
        ),
        attribute_value_length: value_length(
            env,
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            general_length,
            w,
        ),
        event_count: count(
            env,
            "OTEL_SPAN_EVENT_COUNT_LIMIT",
            bounds::DEFAULT_COUNT,
            "events",
            w,
        ),
        link_count: count(
            env,
            "OTEL_SPAN_LINK_COUNT_LIMIT",
            bounds::DEFAULT_COUNT,
            "links",
            w,
        ),
        event_attribute_count: count(
            env,
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            general_count,
            "attributes",
            w,
        ),
        link_attribute_count: count(
            env,
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            general_count,
            "attributes",
            w,
        ),
    };
    let log_record = LogRecordLimits {
        attribute_count: count(
            env,
            "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
            general_count,
            "attributes",
            w,
        ),
        attribute_value_length: value_length(
            env,
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            general_length,
            w,
        ),
    };
    Limits {
        span,
        log_record,
        metric_cardinality: metric_cardinality_limit(env, cardinality, w),
        counts: Arc::default(),
    }
}

/// The metric cardinality limit: [`CARDINALITY_VARIABLE`] when set, else what the builder
/// said, else the SDK's 2000; from 1 to [`bounds::MAX_CARDINALITY`] series per stream.
pub(crate) fn metric_cardinality_limit(
    env: &Env,
    code: Option<usize>,
    warnings: &mut Warnings,
) -> usize {
    let max = bounds::MAX_CARDINALITY as usize;
    let default = match code {
        None => bounds::DEFAULT_CARDINALITY,
        Some(0) => {
            warnings.push(
                CARDINALITY_BUILDER,
                "0",
                "below the minimum of 1 series",
                bounds::DEFAULT_CARDINALITY.to_string(),
            );
            bounds::DEFAULT_CARDINALITY
        }
        Some(n) if n > max => {
            warnings.push(
                CARDINALITY_BUILDER,
                &n.to_string(),
                format!("above the maximum of {max} series"),
                max.to_string(),
            );
            max
        }
        Some(n) => n,
    };
    let n = parse_integer(
        env,
        CARDINALITY_VARIABLE,
        default as u64,
        1,
        bounds::MAX_CARDINALITY,
        "series",
        warnings,
    );
    usize::try_from(n).unwrap_or(default)
}
