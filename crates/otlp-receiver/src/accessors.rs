//! Small pure helpers to read received data in assertions.

use std::fmt::Write;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, number_data_point};

use crate::{ReceivedLogRecord, ReceivedMetric, ReceivedSpan};

/// Lowercase hex of `bytes` (trace and span ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Renders a value: strings as-is, numbers and bools with `to_string`, bytes as hex,
/// arrays as `[a, b]`, key-value lists as `{k: v, ...}`, an unset value as `""`.
pub fn any_value_to_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(any_value_to_string).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(kvs)) => {
            let items: Vec<String> = kvs
                .values
                .iter()
                .map(|kv| format!("{}: {}", kv.key, kv_string(kv)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(Value::StringValueStrindex(i)) => format!("strindex:{i}"),
    }
}

fn kv_string(kv: &KeyValue) -> String {
    kv.value
        .as_ref()
        .map(any_value_to_string)
        .unwrap_or_default()
}

/// The attribute `key` rendered with [`any_value_to_string`].
fn find_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).map(kv_string)
}

fn non_empty_hex(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| hex(bytes))
}

/// Resource and scope accessors shared by the three received item types.
macro_rules! resource_accessors {
    ($($t:ty),*) => {$(
        impl $t {
            /// The resource attribute `key`, rendered with [`any_value_to_string`].
            pub fn resource_attr(&self, key: &str) -> Option<String> {
                find_attr(&self.resource.attributes, key)
            }
            /// The `service.name` resource attribute.
            pub fn service_name(&self) -> Option<String> {
                self.resource_attr("service.name")
            }
        }
    )*};
}

resource_accessors!(ReceivedSpan, ReceivedLogRecord, ReceivedMetric);

impl ReceivedSpan {
    /// The trace id in lowercase hex.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.span.trace_id)
    }
    /// The span id in lowercase hex.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span.span_id)
    }
    /// The parent span id in lowercase hex, `None` for a root span.
    pub fn parent_span_id_hex(&self) -> Option<String> {
        non_empty_hex(&self.span.parent_span_id)
    }
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }
    /// The span attribute `key`, rendered with [`any_value_to_string`].
    pub fn attr(&self, key: &str) -> Option<String> {
        find_attr(&self.span.attributes, key)
    }
}

impl ReceivedLogRecord {
    /// The trace id in lowercase hex, `None` when unset.
    pub fn trace_id_hex(&self) -> Option<String> {
        non_empty_hex(&self.record.trace_id)
    }
    /// The span id in lowercase hex, `None` when unset.
    pub fn span_id_hex(&self) -> Option<String> {
        non_empty_hex(&self.record.span_id)
    }
    /// The record attribute `key`, rendered with [`any_value_to_string`].
    pub fn attr(&self, key: &str) -> Option<String> {
        find_attr(&self.record.attributes, key)
    }
    /// The body rendered with [`any_value_to_string`], `None` when there is no body.
    pub fn body_text(&self) -> Option<String> {
        self.record.body.as_ref().map(any_value_to_string)
    }
}

/// The kind of data a metric carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A sum (counter or up-down counter).
    Sum,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram.
    ExponentialHistogram,
    /// A summary.
    Summary,
    /// No data.
    Empty,
}

/// One data point, flattened; fields that do not apply to the metric kind stay empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricPoint {
    /// Point attributes rendered with [`any_value_to_string`].
    pub attributes: Vec<(String, String)>,
    /// Gauge and sum value (integers converted to `f64`).
    pub value: Option<f64>,
    /// Histogram and summary count.
    pub count: Option<u64>,
    /// Histogram and summary sum.
    pub sum: Option<f64>,
    /// Explicit-bucket histogram bucket counts.
    pub bucket_counts: Vec<u64>,
    /// Explicit-bucket histogram bounds.
    pub explicit_bounds: Vec<f64>,
}

impl MetricPoint {
    /// The point attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv_string(kv)))
        .collect()
}

fn number_point(p: &NumberDataPoint) -> MetricPoint {
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Some(d),
        Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
        None => None,
    };
    MetricPoint {
        attributes: attrs(&p.attributes),
        value,
        ..MetricPoint::default()
    }
}

impl ReceivedMetric {
    /// The metric name.
    pub fn name(&self) -> &str {
        &self.metric.name
    }
    /// The kind of data the metric carries.
    pub fn kind(&self) -> MetricKind {
        match &self.metric.data {
            Some(Data::Gauge(_)) => MetricKind::Gauge,
            Some(Data::Sum(_)) => MetricKind::Sum,
            Some(Data::Histogram(_)) => MetricKind::Histogram,
            Some(Data::ExponentialHistogram(_)) => MetricKind::ExponentialHistogram,
            Some(Data::Summary(_)) => MetricKind::Summary,
            None => MetricKind::Empty,
        }
    }
    /// True for a monotonic sum (a counter).
    pub fn is_monotonic(&self) -> bool {
        matches!(&self.metric.data, Some(Data::Sum(s)) if s.is_monotonic)
    }
    /// The data points, flattened (exponential histogram buckets are not included).
    pub fn points(&self) -> Vec<MetricPoint> {
        let count_sum = |attributes: &[KeyValue], count, sum| MetricPoint {
            attributes: attrs(attributes),
            count: Some(count),
            sum,
            ..MetricPoint::default()
        };
        match &self.metric.data {
            Some(Data::Gauge(g)) => g.data_points.iter().map(number_point).collect(),
            Some(Data::Sum(s)) => s.data_points.iter().map(number_point).collect(),
            Some(Data::Histogram(h)) => h
                .data_points
                .iter()
                .map(|p| MetricPoint {
                    bucket_counts: p.bucket_counts.clone(),
                    explicit_bounds: p.explicit_bounds.clone(),
                    ..count_sum(&p.attributes, p.count, p.sum)
                })
                .collect(),
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .iter()
                .map(|p| count_sum(&p.attributes, p.count, p.sum))
                .collect(),
            Some(Data::Summary(s)) => s
                .data_points
                .iter()
                .map(|p| count_sum(&p.attributes, p.count, Some(p.sum)))
                .collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values() {
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
        let cases = [
            (r#"{"intValue":"-3"}"#, "-3"),
            (r#"{"boolValue":true}"#, "true"),
            (r#"{"bytesValue":"Af8="}"#, "01ff"),
            (r#"{}"#, ""),
            (
                r#"{"arrayValue":{"values":[{"stringValue":"a"},{"doubleValue":1.5}]}}"#,
                "[a, 1.5]",
            ),
            (
                r#"{"kvlistValue":{"values":[{"key":"k","value":{"intValue":1}}]}}"#,
                "{k: 1}",
            ),
        ];
        for (json, expected) in cases {
            let value: AnyValue = serde_json::from_str(json).unwrap();
            assert_eq!(any_value_to_string(&value), expected, "{json}");
        }
    }
}
