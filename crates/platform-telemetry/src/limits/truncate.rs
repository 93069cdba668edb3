//! Value length limits: strings cut to a number of characters on a character boundary.

use std::time::Duration;

use opentelemetry::logs::AnyValue;
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

/// Where `s` must be cut to keep at most `limit` characters; `None` when it already fits. Costs
/// one comparison for a string of at most `limit` bytes.
pub(crate) fn truncation_point(s: &str, limit: usize) -> Option<usize> {
    if s.len() <= limit {
        // At least one byte per character.
        return None;
    }
    s.char_indices().nth(limit).map(|(at, _)| at)
}

/// The longest prefix of `s` with at most `limit` characters.
#[cfg(test)]
pub(crate) fn truncate_str(s: &str, limit: usize) -> &str {
    match truncation_point(s, limit) {
        Some(at) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

/// Truncates in place; allocates only when the value is too long and was not owned.
pub(super) fn truncate_string_value(value: &mut StringValue, limit: usize) {
    let Some(at) = truncation_point(value.as_str(), limit) else {
        return;
    };
    let mut s = String::from(std::mem::replace(value, StringValue::from("")));
    // `at` is a character boundary.
    s.truncate(at);
    *value = StringValue::from(s);
}

fn truncate_value(value: &mut Value, limit: usize) {
    match value {
        Value::String(s) => truncate_string_value(s, limit),
        Value::Array(Array::String(items)) => {
            for s in items {
                truncate_string_value(s, limit);
            }
        }
        _ => {}
    }
}

fn truncate_attributes(attributes: &mut [KeyValue], limit: usize) {
    for kv in attributes {
        truncate_value(&mut kv.value, limit);
    }
}

/// Applies a value length limit to a span's attributes and its events' and links' attributes.
pub(crate) fn truncate_span(span: &mut SpanData, limit: usize) {
    truncate_attributes(&mut span.attributes, limit);
    for event in &mut span.events.events {
        truncate_attributes(&mut event.attributes, limit);
    }
    for link in &mut span.links.links {
        truncate_attributes(&mut link.attributes, limit);
    }
}

/// Applies the span attribute value length limit before the span reaches `inner`. Put in front
/// of each exporter's processor (the SDK hands every processor its own copy of the span).
#[derive(Debug)]
pub(crate) struct ValueLengthLimit<P> {
    pub(crate) inner: P,
    /// `None`: no limit, the span passes untouched.
    pub(crate) limit: Option<usize>,
}

impl<P: SpanProcessor> SpanProcessor for ValueLengthLimit<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if let Some(limit) = self.limit {
            truncate_span(&mut span, limit);
        }
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

/// True when a value length limit would change `value`.
pub(super) fn any_value_exceeds(value: &AnyValue, limit: usize) -> bool {
    match value {
        AnyValue::String(s) => truncation_point(s.as_str(), limit).is_some(),
        AnyValue::Bytes(b) => b.len() > limit,
        AnyValue::ListAny(items) => items.iter().any(|v| any_value_exceeds(v, limit)),
        AnyValue::Map(map) => map.values().any(|v| any_value_exceeds(v, limit)),
        _ => false,
    }
}

/// A copy of `value` within the value length limit; copies only the kept part of a string.
pub(super) fn limited_any_value(value: &AnyValue, limit: usize) -> AnyValue {
    match value {
        AnyValue::String(s) => match truncation_point(s.as_str(), limit) {
            Some(at) => AnyValue::String(StringValue::from(
                s.as_str().get(..at).unwrap_or_default().to_string(),
            )),
            None => value.clone(),
        },
        AnyValue::Bytes(b) if b.len() > limit => {
            AnyValue::Bytes(Box::new(b.get(..limit).unwrap_or_default().to_vec()))
        }
        AnyValue::ListAny(items) => AnyValue::ListAny(Box::new(
            items.iter().map(|v| limited_any_value(v, limit)).collect(),
        )),
        AnyValue::Map(map) => AnyValue::Map(Box::new(
            map.iter()
                .map(|(k, v)| (k.clone(), limited_any_value(v, limit)))
                .collect(),
        )),
        _ => value.clone(),
    }
}
