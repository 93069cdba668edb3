//! OTLP traces as JSON, in the two dialects the trace stores answer with.
//!
//! - Tempo (gogo `jsonpb`, see `tempo_v2_trace_found.json`): ids are base64 of the raw bytes,
//!   `kind` and `status.code` are enum names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`).
//! - Jaeger v2 (`pdata` JSON, see Jaeger's `apiv3/snapshots/GetTrace.json`): ids are hex, `kind`
//!   and `status.code` are numbers.
//!
//! Both: 64-bit integers (times, `intValue`) are strings, default values are left out, `status`
//! is always present (`{}` when unset), spans are grouped by resource then scope, in arrival order.

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_receiver::{ReceivedSpan, hex};
use serde_json::{Map, Value, json};

/// How ids and enums are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// Ids as base64 (Tempo, older Jaeger gateways) rather than hex.
    pub(crate) base64_ids: bool,
    /// Enums as their proto names (Tempo) rather than numbers.
    pub(crate) enum_names: bool,
}

pub(crate) const TEMPO: Dialect = Dialect {
    base64_ids: true,
    enum_names: true,
};

impl Dialect {
    fn id(self, bytes: &[u8]) -> Value {
        if self.base64_ids {
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            json!(hex(bytes))
        }
    }
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

type ScopeGroup<'a> = (&'a InstrumentationScope, Vec<&'a Span>);

/// `resourceSpans` for `spans`: one entry per distinct resource, one `scopeSpans` per scope.
pub(crate) fn resource_spans(spans: &[&ReceivedSpan], dialect: Dialect) -> Vec<Value> {
    let mut groups: Vec<(&Resource, Vec<ScopeGroup>)> = Vec::new();
    for s in spans {
        let index = match groups.iter().position(|(r, _)| **r == *s.resource) {
            Some(i) => i,
            None => {
                groups.push((&*s.resource, Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[index].1;
        match scopes.iter_mut().find(|(sc, _)| **sc == *s.scope) {
            Some((_, list)) => list.push(&s.span),
            None => scopes.push((&*s.scope, vec![&s.span])),
        }
    }
    groups
        .into_iter()
        .map(|(resource, scopes)| {
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|(scope, list)| {
                    let spans: Vec<Value> = list.iter().map(|s| span(s, dialect)).collect();
                    json!({ "scope": scope_json(scope), "spans": spans })
                })
                .collect();
            json!({ "resource": resource_json(resource), "scopeSpans": scope_spans })
        })
        .collect()
}

fn resource_json(resource: &Resource) -> Value {
    let mut out = Map::new();
    put_attributes(
        &mut out,
        &resource.attributes,
        resource.dropped_attributes_count,
    );
    Value::Object(out)
}

fn scope_json(scope: &InstrumentationScope) -> Value {
    let mut out = Map::new();
    put_str(&mut out, "name", &scope.name);
    put_str(&mut out, "version", &scope.version);
    put_attributes(&mut out, &scope.attributes, scope.dropped_attributes_count);
    Value::Object(out)
}

fn span(s: &Span, dialect: Dialect) -> Value {
    let mut out = Map::new();
    out.insert("traceId".into(), dialect.id(&s.trace_id));
    out.insert("spanId".into(), dialect.id(&s.span_id));
    put_str(&mut out, "traceState", &s.trace_state);
    if !s.parent_span_id.is_empty() {
        out.insert("parentSpanId".into(), dialect.id(&s.parent_span_id));
    }
    if s.flags != 0 {
        out.insert("flags".into(), json!(s.flags));
    }
    put_str(&mut out, "name", &s.name);
    if s.kind != 0 {
        out.insert("kind".into(), enum_value(dialect, &KINDS, s.kind));
    }
    out.insert(
        "startTimeUnixNano".into(),
        json!(s.start_time_unix_nano.to_string()),
    );
    out.insert(
        "endTimeUnixNano".into(),
        json!(s.end_time_unix_nano.to_string()),
    );
    put_attributes(&mut out, &s.attributes, s.dropped_attributes_count);
    if !s.events.is_empty() {
        let events: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                let mut ev = Map::new();
                ev.insert("timeUnixNano".into(), json!(e.time_unix_nano.to_string()));
                put_str(&mut ev, "name", &e.name);
                put_attributes(&mut ev, &e.attributes, e.dropped_attributes_count);
                Value::Object(ev)
            })
            .collect();
        out.insert("events".into(), json!(events));
    }
    put_count(&mut out, "droppedEventsCount", s.dropped_events_count);
    if !s.links.is_empty() {
        let links: Vec<Value> = s
            .links
            .iter()
            .map(|l| {
                let mut link = Map::new();
                link.insert("traceId".into(), dialect.id(&l.trace_id));
                link.insert("spanId".into(), dialect.id(&l.span_id));
                put_str(&mut link, "traceState", &l.trace_state);
                put_attributes(&mut link, &l.attributes, l.dropped_attributes_count);
                if l.flags != 0 {
                    link.insert("flags".into(), json!(l.flags));
                }
                Value::Object(link)
            })
            .collect();
        out.insert("links".into(), json!(links));
    }
    put_count(&mut out, "droppedLinksCount", s.dropped_links_count);
    let mut status = Map::new();
    if let Some(st) = &s.status {
        put_str(&mut status, "message", &st.message);
        if st.code != 0 {
            status.insert("code".into(), enum_value(dialect, &STATUS_CODES, st.code));
        }
    }
    out.insert("status".into(), Value::Object(status));
    Value::Object(out)
}

fn enum_value(dialect: Dialect, names: &[&str], value: i32) -> Value {
    let name = usize::try_from(value).ok().and_then(|i| names.get(i));
    match name {
        Some(name) if dialect.enum_names => json!(name),
        _ => json!(value),
    }
}

fn put_str(out: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        out.insert(key.into(), json!(value));
    }
}

fn put_count(out: &mut Map<String, Value>, key: &str, count: u32) {
    if count != 0 {
        out.insert(key.into(), json!(count));
    }
}

fn put_attributes(out: &mut Map<String, Value>, attributes: &[KeyValue], dropped: u32) {
    if !attributes.is_empty() {
        out.insert("attributes".into(), key_values(attributes));
    }
    put_count(out, "droppedAttributesCount", dropped);
}

/// `[{"key":…,"value":{…}}]`.
pub(crate) fn key_values(kvs: &[KeyValue]) -> Value {
    let list: Vec<Value> = kvs
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map_or(json!({}), any_value);
            json!({ "key": kv.key, "value": value })
        })
        .collect();
    Value::Array(list)
}

/// An `AnyValue` as OTLP/JSON writes it (`intValue` as a string, bytes as base64).
pub(crate) fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        None => json!({}),
        Some(Any::StringValue(s)) => json!({ "stringValue": s }),
        Some(Any::BoolValue(b)) => json!({ "boolValue": b }),
        Some(Any::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(Any::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(Any::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(Any::ArrayValue(a)) => {
            let values: Vec<Value> = a.values.iter().map(any_value).collect();
            json!({ "arrayValue": { "values": values } })
        }
        Some(Any::KvlistValue(kv)) => {
            json!({ "kvlistValue": { "values": key_values(&kv.values) } })
        }
        Some(Any::StringValueStrindex(i)) => json!({ "stringValueStrindex": i }),
    }
}

/// The attribute `key` of `attributes`.
pub(crate) fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}
