use std::sync::Arc;

use opentelemetry::logs::{AnyValue, LogRecord as _};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::logs::{LogProcessor as _, SdkLogRecord};
use opentelemetry_sdk::trace::SpanData;
use proptest::prelude::*;

use super::log_records::blank_log_record;
use super::truncate::{
    any_value_exceeds, limited_any_value, truncate_span, truncate_str, truncate_string_value,
    truncation_point,
};
use super::*;

fn resolve_from(pairs: &[(&str, &str)]) -> (Limits, Vec<crate::config::ConfigWarning>) {
    let env = Env::from_pairs(pairs.iter().copied());
    let mut warnings = Warnings::default();
    let limits = resolve(&env, None, &mut warnings);
    (limits, warnings.into_vec())
}

#[test]
fn defaults_are_the_specifications() {
    let (limits, warnings) = resolve_from(&[]);
    assert_eq!(limits, Limits::default());
    assert!(warnings.is_empty());
    let sdk = limits.span.sdk();
    assert_eq!(sdk.max_attributes_per_span, 128);
    assert_eq!(sdk.max_events_per_span, 128);
    assert_eq!(sdk.max_links_per_span, 128);
    assert_eq!(sdk.max_attributes_per_event, 128);
    assert_eq!(sdk.max_attributes_per_link, 128);
    assert_eq!(limits.span.attribute_value_length, None);
    assert_eq!(limits.log_record.attribute_value_length, None);
    assert_eq!(limits.metric_cardinality, 2000);
}

#[test]
fn the_general_limits_apply_where_no_model_specific_one_is_set() {
    let (limits, warnings) = resolve_from(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "7"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "20"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3"),
        ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "5"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "0"),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(limits.span.attribute_count, 3);
    assert_eq!(limits.span.attribute_value_length, Some(20));
    assert_eq!(limits.span.event_count, 0, "0 is a valid limit");
    assert_eq!(limits.span.link_count, 128, "not an attribute limit");
    assert_eq!(limits.span.event_attribute_count, 7);
    assert_eq!(limits.span.link_attribute_count, 7);
    assert_eq!(limits.log_record.attribute_count, 7);
    assert_eq!(limits.log_record.attribute_value_length, Some(5));
}

#[test]
fn out_of_range_values_warn_once_naming_the_variable() {
    let (limits, warnings) = resolve_from(&[
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "100000"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "-1"),
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "99999999999999999999999",
        ),
        ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "long"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "12"),
    ]);
    assert_eq!(
        limits.span.attribute_count, 65_536,
        "above the maximum: the maximum"
    );
    assert_eq!(
        limits.span.event_attribute_count, 128,
        "malformed general: default"
    );
    assert_eq!(limits.span.attribute_value_length, Some(i32::MAX as usize));
    assert_eq!(
        limits.log_record.attribute_value_length,
        Some(12),
        "malformed specific: the general one"
    );
    let find = |name: &str| {
        let hits: Vec<_> = warnings.iter().filter(|w| w.variable == name).collect();
        assert_eq!(hits.len(), 1, "{name}: {warnings:?}");
        hits[0].clone()
    };
    assert_eq!(find("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT").using, "65536");
    assert_eq!(find("OTEL_ATTRIBUTE_COUNT_LIMIT").using, "128");
    assert_eq!(
        find("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT").using,
        "2147483647"
    );
    let long = find("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT");
    assert_eq!(long.using, "12");
    assert_eq!(long.value, "long");
    assert_eq!(warnings.len(), 4);

    let (_, warnings) = resolve_from(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1.5")]);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].using, "no limit");
}

#[test]
fn the_cardinality_limit_comes_from_env_then_builder_then_default() {
    let limit = |pairs: &[(&str, &str)], code: Option<usize>| {
        let env = Env::from_pairs(pairs.iter().copied());
        let mut warnings = Warnings::default();
        let n = metric_cardinality_limit(&env, code, &mut warnings);
        (n, warnings.into_vec())
    };
    assert_eq!(limit(&[], None), (2000, vec![]));
    assert_eq!(limit(&[], Some(50)), (50, vec![]));
    assert_eq!(
        limit(&[(CARDINALITY_VARIABLE, "10")], Some(50)),
        (10, vec![])
    );
    let (n, w) = limit(&[(CARDINALITY_VARIABLE, "0")], Some(50));
    assert_eq!((n, w.len(), w[0].using.as_str()), (50, 1, "50"));
    let (n, w) = limit(&[(CARDINALITY_VARIABLE, "1000000")], None);
    assert_eq!((n, w[0].variable.as_str()), (65_536, CARDINALITY_VARIABLE));
    let (n, w) = limit(&[], Some(0));
    assert_eq!((n, w[0].variable.as_str()), (2000, CARDINALITY_BUILDER));
    let (n, w) = limit(&[], Some(usize::MAX));
    assert_eq!((n, w.len()), (65_536, 1));
}

#[test]
fn truncation_counts_characters_and_cuts_on_a_boundary() {
    assert_eq!(truncate_str("hello", 10), "hello");
    assert_eq!(truncate_str("hello", 5), "hello");
    assert_eq!(truncate_str("hello", 3), "hel");
    assert_eq!(truncate_str("hello", 0), "");
    // Five characters, eleven bytes: fits a limit of 5 characters.
    assert_eq!(truncate_str("héllö…", 6), "héllö…");
    assert_eq!(truncate_str("héllö…", 2), "hé");
    assert_eq!(truncate_str("🦀🦀🦀", 1), "🦀");
    assert_eq!(truncation_point("abc", 3), None);
}

#[test]
fn spans_are_truncated_in_attributes_events_and_links_and_only_strings() {
    use opentelemetry::trace::{Event, Link, SpanContext};
    let long = "x".repeat(50);
    let mut span = SpanData {
        span_context: SpanContext::empty_context(),
        parent_span_id: opentelemetry::trace::SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: opentelemetry::trace::SpanKind::Internal,
        name: "s".into(),
        start_time: std::time::SystemTime::UNIX_EPOCH,
        end_time: std::time::SystemTime::UNIX_EPOCH,
        attributes: vec![
            KeyValue::new("s", long.clone()),
            KeyValue::new("static", "a static string longer than ten"),
            KeyValue::new("n", 1_234_567_890_123_i64),
            KeyValue::new(
                "arr",
                Value::Array(Array::String(vec![
                    StringValue::from(long.clone()),
                    StringValue::from("short"),
                ])),
            ),
        ],
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: opentelemetry::trace::Status::Unset,
        instrumentation_scope: InstrumentationScope::default(),
    };
    span.events.events.push(Event::new(
        "e",
        std::time::SystemTime::UNIX_EPOCH,
        vec![KeyValue::new("e", long.clone())],
        0,
    ));
    span.links.links.push(Link::new(
        SpanContext::empty_context(),
        vec![KeyValue::new("l", long.clone())],
        0,
    ));
    truncate_span(&mut span, 10);
    let ten = "x".repeat(10);
    assert_eq!(span.attributes[0].value.as_str(), ten.as_str());
    assert_eq!(span.attributes[1].value.as_str(), "a static s");
    assert_eq!(span.attributes[2].value, Value::I64(1_234_567_890_123));
    assert_eq!(
        span.attributes[3].value,
        Value::Array(Array::String(vec![
            StringValue::from(ten.clone()),
            StringValue::from("short")
        ]))
    );
    assert_eq!(
        span.events.events[0].attributes[0].value.as_str(),
        ten.as_str()
    );
    assert_eq!(
        span.links.links[0].attributes[0].value.as_str(),
        ten.as_str()
    );
}

fn record_with(attributes: usize, value: &str) -> SdkLogRecord {
    let mut record = blank_log_record();
    record.set_event_name("event");
    record.set_target("target");
    record.set_timestamp(std::time::SystemTime::UNIX_EPOCH);
    record.set_observed_timestamp(std::time::SystemTime::UNIX_EPOCH);
    record.set_trace_context(
        opentelemetry::trace::TraceId::from(7_u128),
        opentelemetry::trace::SpanId::from(9_u64),
        Some(opentelemetry::trace::TraceFlags::SAMPLED),
    );
    record.set_severity_text("WARN");
    record.set_severity_number(opentelemetry::logs::Severity::Warn);
    record.set_body(AnyValue::from(value.to_string()));
    for i in 0..attributes {
        record.add_attribute(format!("a{i}"), value.to_string());
    }
    record
}

fn processor(count: usize, length: Option<usize>) -> LogRecordLimitsProcessor {
    LogRecordLimitsProcessor::new(
        LogRecordLimits {
            attribute_count: count,
            attribute_value_length: length,
        },
        Arc::default(),
    )
}

#[test]
fn a_rebuilt_log_record_keeps_every_field() {
    let record = record_with(8, "value");
    // Within the limits, rebuilding is the identity: no field of the SDK's record is lost.
    assert_eq!(processor(128, None).limited(&record), record);
    let mut same = record.clone();
    processor(8, Some(5)).emit(&mut same, &InstrumentationScope::default());
    assert_eq!(same, record, "nothing over a limit: untouched");
}

#[test]
fn log_records_keep_the_first_attributes_and_truncate_values_but_not_the_body() {
    let p = processor(3, Some(4));
    let mut record = record_with(6, "ünïcödé");
    p.emit(&mut record, &InstrumentationScope::default());
    let attributes: Vec<_> = record
        .attributes_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(
        attributes,
        ["a0", "a1", "a2"].map(|k| (k.to_string(), AnyValue::from("ünïc".to_string())))
    );
    assert_eq!(
        record.body(),
        Some(&AnyValue::from("ünïcödé".to_string())),
        "the body is not an attribute"
    );
    assert_eq!(record.severity_text(), Some("WARN"));
    assert_eq!(p.counts.log_attributes_dropped(), 3);

    // Nested values and bytes are truncated too.
    let nested = AnyValue::ListAny(Box::new(vec![
        AnyValue::from("abcdef".to_string()),
        AnyValue::Bytes(Box::new(vec![1, 2, 3, 4, 5, 6])),
        AnyValue::Int(123_456),
    ]));
    assert!(any_value_exceeds(&nested, 4));
    assert_eq!(
        limited_any_value(&nested, 4),
        AnyValue::ListAny(Box::new(vec![
            AnyValue::from("abcd".to_string()),
            AnyValue::Bytes(Box::new(vec![1, 2, 3, 4])),
            AnyValue::Int(123_456),
        ]))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    /// Whatever the text and the limit: a prefix, at most `limit` characters, and the whole
    /// string when it fits.
    #[test]
    fn truncation_is_a_short_enough_prefix(s in any::<String>(), limit in 0_usize..64) {
        let t = truncate_str(&s, limit);
        prop_assert!(s.starts_with(t));
        prop_assert!(t.chars().count() <= limit);
        if s.chars().count() <= limit {
            prop_assert_eq!(t, s.as_str());
        } else {
            prop_assert_eq!(t.chars().count(), limit);
        }
        let mut v = StringValue::from(s.clone());
        truncate_string_value(&mut v, limit);
        prop_assert_eq!(v.as_str(), t);
    }
}
