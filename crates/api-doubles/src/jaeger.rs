//! A double of Jaeger v2's query API and health check, fed by real OTLP.
//!
//! Followed (Jaeger is not run here; see `shared/upstream-samples/README.md`, "Jaeger"): Jaeger's
//! `cmd/jaeger/internal/extension/jaegerquery/internal/apiv3/http_gateway.go` and its snapshot
//! `apiv3/snapshots/GetTrace.json`, the `jaeger-idl` `model.TraceIDFromString` / `TraceID.String`,
//! the legacy UI handler's `structuredResponse`, and the OpenTelemetry Collector's
//! `healthcheckv2extension` (which Jaeger v2's default configuration enables on port 13133).
//!
//! - Query port (Jaeger's 16686): `GET /api/v3/traces/{trace_id}` answers the gRPC-gateway
//!   wrapper `{"result":{"resourceSpans":[…]}}` in `pdata` JSON: **numeric** `kind` and
//!   `status.code`, hex ids (base64 with [`JaegerDouble::set_base64_ids`], as older gateways),
//!   times as strings; an unknown trace is 404 `{"error":{"httpCode":404,"message":"trace not
//!   found"}}`, a malformed id 400 `{"error":{"httpCode":400,"message":"malformed parameter
//!   trace_id: …"}}` (both written by Go's `http.Error`: `text/plain`, trailing newline).
//!   `GET /api/v3/services` answers `{"services":[…]}`. The legacy `GET /api/traces/{id}` answers
//!   `{"data":[{"traceID","spans":[…],"processes":{"p1":…}}],…}` with ids as `TraceID.String()`
//!   writes them (leading zeros dropped), microsecond `startTime`/`duration`, `CHILD_OF`
//!   references, typed tags (`span.kind`, `otel.status_code`, `error`, `otel.scope.name`), and
//!   404 `{"data":null,…,"errors":[{"code":404,"msg":"trace not found"}]}`; `GET /api/services`.
//! - Health port (13133): `GET /status` as healthcheckv2 (`use_v2: true`) answers
//!   `{"start_time","healthy":true,"status":"StatusOK","status_time"}` 200, or 503 with
//!   `"status":"StatusStarting"` while not ready (`healthy` stays `true`, as the extension's
//!   default responder writes it).
//! - OTLP intake: crate `otlp-receiver` (gRPC, HTTP/protobuf), as Jaeger's 4317/4318.
//!
//! Not modelled: `GET /api/v3/traces` (search), `/api/v3/operations`, the streaming of several
//! chunks (one chunk is always written), `startTime`/`endTime`/`rawTraces` parameters (ignored),
//! span-id deduplication, the legacy search and dependencies routes, OTLP/HTTP JSON intake, and
//! the health check's `?verbose` component tree. While "down", both ports are closed and OTLP
//! exports are refused with UNAVAILABLE / 503.
//!
//! Tenancy: none. Jaeger has no `X-Scope-OrgID` tenancy (its v2 multi-tenancy is an optional
//! `tenancy` header check of the storage extensions, not modelled); the double keeps every span
//! in one store and ignores the header, as does the collector double when it feeds Jaeger.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use otlp_receiver::{OtlpReceiver, ReceivedSpan, hex};
use serde_json::{Map, Value, json};

use crate::chassis::{self, Error, FaultState, FaultSwitches, Faults, Running, Sealed};
use crate::common::{self, RecordedRequest, Requests, lock, rfc3339};
use crate::otlp_json::{self, Dialect};
use crate::trace_store::{TraceStore, parse_hex_id};

/// The one tenant the Jaeger double keeps spans under (Jaeger has no `X-Scope-OrgID` tenancy).
pub(crate) const JAEGER_TENANT: &str = "";

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) traces: Mutex<TraceStore>,
    faults: Arc<FaultState>,
    base64_ids: Mutex<bool>,
    started: SystemTime,
}

type AppState = State<Arc<Shared>>;

/// A running Jaeger v2 double; dropping it stops it and frees its ports. Its fault switches
/// are [`FaultSwitches`] (going down closes the query and health ports and refuses exports).
#[derive(Debug)]
pub struct JaegerDouble {
    shared: Arc<Shared>,
    requests: Requests,
    receiver: Arc<OtlpReceiver>,
    url: String,
    health_url: String,
    running: Running,
}

impl JaegerDouble {
    /// Starts on free ports of `127.0.0.1`.
    pub fn start() -> Result<Self, Error> {
        Self::start_on(0, 0)
    }

    /// Starts with the query API on `query_port` and the health check on `health_port`
    /// (0: any free port); OTLP on free ports.
    pub fn start_on(query_port: u16, health_port: u16) -> Result<Self, Error> {
        let (query, query_port) = chassis::bind(query_port)?;
        let (health, health_port) = chassis::bind(health_port)?;
        let shared = Arc::new(Shared {
            traces: Mutex::default(),
            faults: Arc::default(),
            base64_ids: Mutex::new(false),
            started: SystemTime::now(),
        });
        let requests = Requests::default();
        let record = axum::middleware::from_fn_with_state(Arc::clone(&requests), common::record);
        let query_app = Router::new()
            .route("/api/v3/traces/{trace_id}", get(trace_v3))
            .route("/api/v3/services", get(services_v3))
            .route("/api/traces/{id}", get(trace_legacy))
            .route("/api/services", get(services_legacy))
            .fallback(async || common::text(404, "404 page not found\n"))
            .with_state(Arc::clone(&shared))
            .layer(record.clone());
        let health_app = Router::new()
            .route("/status", get(status))
            .fallback(async || common::text(404, "404 page not found\n"))
            .with_state(Arc::clone(&shared))
            .layer(record);
        let store = Arc::clone(&shared);
        let intake: chassis::Sink =
            Box::new(move |batch| lock(&store.traces).ingest(JAEGER_TENANT, batch.spans));
        let ports = vec![(query, query_app).into(), (health, health_app).into()];
        let faults = Arc::clone(&shared.faults);
        let (running, receiver) = chassis::run_with_intake("jaeger", ports, intake, None, faults)?;
        Ok(Self {
            shared,
            requests,
            receiver,
            url: format!("http://127.0.0.1:{query_port}"),
            health_url: format!("http://127.0.0.1:{health_port}"),
            running,
        })
    }

    /// The query API (Jaeger's 16686), without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The health check base URL (Jaeger's 13133); readiness is `GET {health_url}/status`.
    pub fn health_url(&self) -> &str {
        &self.health_url
    }

    /// The OTLP/gRPC endpoint (Jaeger's 4317).
    pub fn otlp_grpc_endpoint(&self) -> String {
        self.receiver.grpc_endpoint()
    }

    /// The OTLP/HTTP base endpoint (Jaeger's 4318), without `/v1/traces`.
    pub fn otlp_http_endpoint(&self) -> String {
        self.receiver.http_endpoint()
    }

    /// `/api/v3` writes ids as base64 (older gateway builds) instead of hex.
    pub fn set_base64_ids(&self, base64: bool) {
        *lock(&self.shared.base64_ids) = base64;
    }

    /// Loses every stored and future span for which `predicate` holds.
    pub fn drop_spans(&self, predicate: impl Fn(&ReceivedSpan) -> bool + Send + Sync + 'static) {
        lock(&self.shared.traces).drop_spans(Box::new(predicate));
    }

    /// Loses every stored and future span of trace `id` (hex); `false` when `id` is not one.
    pub fn forget_trace(&self, id: &str) -> bool {
        parse_hex_id(id)
            .map(|id| lock(&self.shared.traces).forget(id))
            .is_some()
    }

    /// Every span stored (visible yet or not), oldest first.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.shared.traces).all()
    }

    /// Every request answered so far on the query and health ports, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
}

impl Sealed for JaegerDouble {}

/// Readiness is `GET {health_url}/status`: 200 `StatusOK`, or 503 `StatusStarting` while not
/// ready.
impl FaultSwitches for JaegerDouble {
    fn faults(&self) -> &Faults {
        &self.running.faults
    }
}

/// `model.TraceIDFromString`: at most 32 hex digits, high and low halves parsed as `uint64`.
fn parse_trace_id(s: &str) -> Result<[u8; 16], String> {
    if s.len() > 32 {
        return Err(format!(
            "TraceID cannot be longer than 32 hex characters: {s}"
        ));
    }
    let parse = |part: &str| {
        let ok = !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit());
        let value = ok.then(|| u64::from_str_radix(part, 16).ok()).flatten();
        value.ok_or_else(|| format!("strconv.ParseUint: parsing {part:?}: invalid syntax"))
    };
    let (high, low) = match s.len().checked_sub(16) {
        Some(split) if split > 0 => (parse(&s[..split])?, parse(&s[split..])?),
        _ => (0, parse(s)?),
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&low.to_be_bytes());
    Ok(id)
}

/// `TraceID.String()`: the high half without leading zeros, then the low half padded.
fn legacy_trace_id(id: &[u8]) -> String {
    let full = hex(id);
    match full.split_at_checked(16) {
        Some((high, low)) if high.trim_start_matches('0').is_empty() => {
            let low = low.trim_start_matches('0');
            if low.is_empty() {
                "0".into()
            } else {
                low.into()
            }
        }
        Some((high, low)) => format!("{}{low}", high.trim_start_matches('0')),
        None => full,
    }
}

fn gateway_error(status: u16, message: &str) -> Response {
    let body = json!({ "error": { "httpCode": status, "message": message } });
    common::text(status, format!("{body}\n"))
}

fn visible_trace(s: &Shared, id: &[u8; 16]) -> Vec<ReceivedSpan> {
    let lag = s.faults.visible_after();
    lock(&s.traces)
        .trace(JAEGER_TENANT, id, lag)
        .into_iter()
        .cloned()
        .collect()
}

async fn trace_v3(State(s): AppState, Path(id): Path<String>) -> Response {
    let id = match parse_trace_id(&id) {
        Ok(id) => id,
        Err(e) => return gateway_error(400, &format!("malformed parameter trace_id: {e}")),
    };
    let spans = visible_trace(&s, &id);
    if spans.is_empty() {
        return gateway_error(404, "trace not found");
    }
    let base64_ids = *lock(&s.base64_ids);
    let dialect = Dialect {
        base64_ids,
        enum_names: false,
    };
    let spans: Vec<&ReceivedSpan> = spans.iter().collect();
    let body = json!({ "result": { "resourceSpans": otlp_json::resource_spans(&spans, dialect) } });
    common::json(200, &body)
}

fn service_names(s: &Shared) -> Vec<String> {
    let lag = s.faults.visible_after();
    let traces = lock(&s.traces);
    let names: BTreeSet<String> = traces
        .visible(JAEGER_TENANT, lag)
        .filter_map(ReceivedSpan::service_name)
        .collect();
    names.into_iter().collect()
}

async fn services_v3(State(s): AppState) -> Response {
    common::json(200, &json!({ "services": service_names(&s) }))
}

async fn services_legacy(State(s): AppState) -> Response {
    let names = service_names(&s);
    let total = names.len();
    let body = json!({ "data": names, "total": total, "limit": 0, "offset": 0, "errors": null });
    common::json(200, &body)
}

fn legacy_error(status: u16, msg: &str) -> Response {
    let body = json!({
        "data": null, "total": 0, "limit": 0, "offset": 0,
        "errors": [{ "code": status, "msg": msg }],
    });
    common::json(status, &body)
}

async fn trace_legacy(State(s): AppState, Path(id): Path<String>) -> Response {
    let id = match parse_trace_id(&id) {
        Ok(id) => id,
        Err(e) => return legacy_error(400, &e),
    };
    let spans = visible_trace(&s, &id);
    if spans.is_empty() {
        return legacy_error(404, "trace not found");
    }
    let trace_id = legacy_trace_id(&id);
    let mut processes: Vec<(String, Value)> = Vec::new();
    let mut out = Vec::new();
    for rs in &spans {
        let service = rs.service_name().unwrap_or_default();
        let process_tags: Vec<KeyValue> = rs
            .resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .cloned()
            .collect();
        let process = json!({ "serviceName": service, "tags": tags(&process_tags) });
        let process_id = match processes.iter().find(|(_, p)| *p == process) {
            Some((id, _)) => id.clone(),
            None => {
                let id = format!("p{}", processes.len() + 1);
                processes.push((id.clone(), process));
                id
            }
        };
        out.push(legacy_span(rs, &trace_id, &process_id));
    }
    let processes: Map<String, Value> = processes.into_iter().collect();
    let trace =
        json!({ "traceID": trace_id, "spans": out, "processes": processes, "warnings": null });
    let body = json!({ "data": [trace], "total": 0, "limit": 0, "offset": 0, "errors": null });
    common::json(200, &body)
}

fn legacy_span(rs: &ReceivedSpan, trace_id: &str, process_id: &str) -> Value {
    let s = &rs.span;
    let micros = |ns: u64| ns / 1000;
    let mut references = Vec::new();
    if !s.parent_span_id.is_empty() {
        let parent = hex(&s.parent_span_id);
        references.push(json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": parent }));
    }
    for link in &s.links {
        let (t, sp) = (legacy_trace_id(&link.trace_id), hex(&link.span_id));
        references.push(json!({ "refType": "FOLLOWS_FROM", "traceID": t, "spanID": sp }));
    }
    let mut tags_list = tags(&s.attributes);
    let tag =
        |key: &str, kind: &str, value: Value| json!({ "key": key, "type": kind, "value": value });
    let kinds = ["", "internal", "server", "client", "producer", "consumer"];
    if let Some(kind) = usize::try_from(s.kind)
        .ok()
        .and_then(|k| kinds.get(k))
        .filter(|k| !k.is_empty())
    {
        tags_list.push(tag("span.kind", "string", json!(kind)));
    }
    if !rs.scope.name.is_empty() {
        tags_list.push(tag("otel.scope.name", "string", json!(rs.scope.name)));
    }
    if !rs.scope.version.is_empty() {
        tags_list.push(tag("otel.scope.version", "string", json!(rs.scope.version)));
    }
    if let Some(status) = &s.status {
        match status.code {
            1 => tags_list.push(tag("otel.status_code", "string", json!("OK"))),
            2 => {
                tags_list.push(tag("otel.status_code", "string", json!("ERROR")));
                tags_list.push(tag("error", "bool", json!(true)));
            }
            _ => {}
        }
        if !status.message.is_empty() {
            tags_list.push(tag(
                "otel.status_description",
                "string",
                json!(status.message),
            ));
        }
    }
    let logs: Vec<Value> = s
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", "string", json!(e.name))];
            fields.extend(tags(&e.attributes));
            json!({ "timestamp": micros(e.time_unix_nano), "fields": fields })
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": hex(&s.span_id),
        "flags": s.flags & 0xff,
        "operationName": s.name,
        "references": references,
        "startTime": micros(s.start_time_unix_nano),
        "duration": micros(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)),
        "tags": tags_list,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
    })
}

/// Jaeger's typed key-values: `string`, `bool`, `int64`, `float64`, `binary` (base64).
fn tags(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| {
            let (kind, value) = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::BoolValue(b)) => ("bool", json!(b)),
                Some(Any::IntValue(i)) => ("int64", json!(i)),
                Some(Any::DoubleValue(d)) => ("float64", json!(d)),
                Some(Any::BytesValue(b)) => (
                    "binary",
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                ),
                Some(Any::StringValue(s)) => ("string", json!(s)),
                Some(_) | None => {
                    let any = kv
                        .value
                        .as_ref()
                        .map(otlp_json::any_value)
                        .unwrap_or_default();
                    ("string", json!(any.to_string()))
                }
            };
            json!({ "key": kv.key, "type": kind, "value": value })
        })
        .collect()
}

async fn status(State(s): AppState) -> Response {
    let (ok, started) = (s.faults.check_ready().is_ok(), s.started);
    let (code, status) = if ok {
        (200, "StatusOK")
    } else {
        (503, "StatusStarting")
    };
    let body = json!({
        "start_time": rfc3339(started),
        "healthy": true,
        "status": status,
        "status_time": rfc3339(SystemTime::now()),
    });
    common::json(code, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_parsed_and_written_as_jaeger_does() {
        let id = parse_trace_id("a1b2c3d4e5f60718293a4b5c6d7e8f").ok();
        assert_eq!(
            id.map(|i| hex(&i)).as_deref(),
            Some("00a1b2c3d4e5f60718293a4b5c6d7e8f")
        );
        assert_eq!(
            legacy_trace_id(&id.unwrap_or_default()),
            "a1b2c3d4e5f60718293a4b5c6d7e8f"
        );
        assert!(parse_trace_id("zz").is_err());
        assert!(parse_trace_id(&"1".repeat(33)).is_err());
    }
}
