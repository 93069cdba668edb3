//! A double of Grafana Loki 3's native OTLP intake and query API, on one port (Loki's 3100).
//!
//! Followed: the Loki HTTP API reference (`/ready`, `GET /loki/api/v1/query_range`,
//! `/loki/api/v1/query`, `/loki/api/v1/labels`, `/loki/api/v1/label/<name>/values`), "Ingesting
//! logs to Loki using OpenTelemetry Collector" (`POST /otlp/v1/logs`, protobuf or JSON, with
//! `allow_structured_metadata: true`), Loki's `pkg/loghttp/push/otlp.go` (mapping in
//! `store.rs`) and the answers recorded from Loki main after 3.8.0 in `shared/upstream-samples`:
//! `loki_query_range_by_trace_id.json` (one stream per distinct set of index labels plus
//! structured metadata, values `[ns-string, line]`, a full `stats` object),
//! `loki_query_range_bad_query.txt` (400, plain-text parse error), `loki_instant_log_query.txt`
//! (400), `loki_ready.txt` (`ready\n`; 503 `Ingester not ready: waiting for 15s after being
//! ready` while starting), `loki_otlp_push_no_service_name.txt` (204, `service_name` becomes
//! `unknown_service`), `loki_otlp_push_malformed.txt` (400, plain text). Entries more than 10
//! minutes in the future or older than a week are refused (400) as with Loki's default limits.
//!
//! Query parameters: `start`/`end` as Loki parses them (nanoseconds, seconds when at most 10
//! digits, float seconds, or RFC 3339; default the last hour), `limit` (default 100),
//! `direction` (`backward` by default). LogQL subset (`logql.rs`): a stream selector
//! with `=`, `!=`, `=~`, `!~`, then line filters `|=`, `!=`, `|~`, `!~` and label filters
//! `| name="v"` over labels and structured metadata.
//!
//! Start it with [`LokiDouble::start`] (single-tenant, plain HTTP, a free port) or with
//! [`LokiDouble::builder`] (`.multi_tenant()`, `.require_bearer(..)` / `.require_basic(..)`,
//! `.tls(TlsMode::..)`, `.path_prefix("/loki")`, `.port(..)`, then `.start()`).
//!
//! Multi-tenancy ([`LokiBuilder::multi_tenant`], Loki's `auth_enabled: true`; see
//! [`crate::tenancy`]): every route but `/ready` needs `X-Scope-OrgID`; without it the OTLP push
//! and every query answer 401 `no org id` (`loki_mt_push_no_org_id.txt`,
//! `loki_mt_query_no_org_id.txt`), checked before the body is read, as dskit's middleware runs
//! before the handler. Each tenant sees only its own entries: another tenant's query answers an
//! empty result (and labels). Off (the default), everything belongs to tenant `fake` and the
//! header is ignored. The gateway ([`crate::gateway`]) and TLS ([`crate::tls`]) are in front of
//! the one port, OTLP intake included.
//!
//! Not modelled: the native `/loki/api/v1/push`, metric queries, `| json`/`| logfmt` and other
//! parsers, multi-tenant queries (`a|b`, refused with 400), categorized labels (`X-Loki-Response-Encoding-Flags`),
//! `/loki/api/v1/series`, `/index/*`, line-size and rate limits, OTLP over gRPC (Loki has none),
//! HTTP/2. Queries answer even while `/ready` says 503. While "down", the port is closed.

mod logql;
mod store;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use otlp_receiver::{ReceivedLogRecord, Transport};
use serde_json::{Value, json};

use crate::chassis::{self, Error, FaultState, FaultSwitches, Faults, Running, Sealed};
use crate::common::{self, RecordedRequest, Requests, lock};
use crate::setup::{Setup, builder_methods};
use crate::tenancy::{self, LOKI_SINGLE_TENANT, Tenancy, Tenant};
use crate::tls::TestCa;
use crate::trace_store::parse_hex_id;
use store::LogStore;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) logs: Mutex<LogStore>,
    faults: Arc<FaultState>,
    pub(crate) tenancy: Tenancy,
}

/// How a [`LokiDouble`] starts: port, tenancy, the gateway in front, TLS. Made by
/// [`LokiDouble::builder`]; [`start`](Self::start) starts it.
#[derive(Debug, Default)]
pub struct LokiBuilder {
    setup: Setup,
}

impl LokiBuilder {
    builder_methods!("Loki");

    /// Starts the double.
    pub fn start(self) -> Result<LokiDouble, Error> {
        LokiDouble::start_with(&self.setup)
    }
}

type AppState = State<Arc<Shared>>;
type Labels = Vec<(String, String)>;

/// A running Loki double; dropping it stops it and frees its port. Its fault switches are
/// [`FaultSwitches`] (going down closes its one port, OTLP intake included).
#[derive(Debug)]
pub struct LokiDouble {
    shared: Arc<Shared>,
    requests: Requests,
    url: String,
    ca: Option<Arc<TestCa>>,
    running: Running,
}

impl LokiDouble {
    /// Starts single-tenant, over plain HTTP, on a free port of `127.0.0.1`.
    pub fn start() -> Result<Self, Error> {
        Self::start_on(0)
    }

    /// Starts on `port` (see [`crate::reserve_port`]).
    pub fn start_on(port: u16) -> Result<Self, Error> {
        Self::builder().port(port).start()
    }

    /// A builder for the other settings: multi-tenancy, a gateway in front, TLS, a prefix.
    pub fn builder() -> LokiBuilder {
        LokiBuilder::default()
    }

    fn start_with(setup: &Setup) -> Result<Self, Error> {
        let (listener, port) = chassis::bind(setup.port)?;
        let tenancy = if setup.multi_tenant {
            Tenancy::Multi
        } else {
            Tenancy::Single(LOKI_SINGLE_TENANT)
        };
        let gate = tenancy::Gate {
            double: "Loki",
            tenancy: tenancy.clone(),
            open_paths: &["/ready"],
        };
        let shared = Arc::new(Shared {
            logs: Mutex::default(),
            faults: Arc::default(),
            tenancy,
        });
        let requests = Requests::default();
        let app = Router::new()
            .route("/ready", get(ready))
            .route("/otlp/v1/logs", post(push))
            .route("/loki/api/v1/query_range", get(query_range))
            .route("/loki/api/v1/query", get(instant_query))
            .route("/loki/api/v1/labels", get(labels))
            .route("/loki/api/v1/label/{name}/values", get(label_values))
            .route_layer(axum::middleware::from_fn_with_state(
                gate,
                tenancy::require_tenant,
            ))
            .fallback(async || common::text(404, "404 page not found\n"))
            .with_state(Arc::clone(&shared));
        let front = setup.front("Loki", listener, port, app, &requests)?;
        let running = chassis::run("loki", vec![front.served], Arc::clone(&shared.faults))?;
        Ok(Self {
            shared,
            requests,
            url: front.url,
            ca: front.ca,
            running,
        })
    }

    /// `http://127.0.0.1:<port>` (`https` with TLS, followed by the path prefix if any),
    /// without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test CA when the double serves TLS (its PEMs and files, and a client certificate).
    pub fn ca(&self) -> Option<&Arc<TestCa>> {
        self.ca.as_ref()
    }

    /// Whether multi-tenancy is on.
    pub fn is_multi_tenant(&self) -> bool {
        self.shared.tenancy == Tenancy::Multi
    }

    /// The OTLP/HTTP base endpoint an `otlphttp` exporter is given: `{url}/otlp`.
    pub fn otlp_endpoint(&self) -> String {
        format!("{}/otlp", self.url)
    }

    /// Sets the server's clock to `now` (it keeps running from there). Loki accepts entries at
    /// most a week old and 10 minutes ahead of its clock; replaying recorded samples needs the
    /// clock of the day they were recorded.
    pub fn set_clock(&self, now: std::time::SystemTime) {
        let at = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
                .unwrap_or(0)
        };
        lock(&self.shared.logs).clock_offset_ns = at(now) - at(std::time::SystemTime::now());
    }

    /// The 503 body of `/ready` (default `Ingester not ready: waiting for 15s after being ready`).
    pub fn set_not_ready_reason(&self, reason: &str) {
        self.shared.faults.set_not_ready_reason(reason);
    }

    /// Loses every stored and future log record for which `predicate` holds.
    pub fn drop_logs(
        &self,
        predicate: impl Fn(&ReceivedLogRecord) -> bool + Send + Sync + 'static,
    ) {
        lock(&self.shared.logs).drop_logs(Box::new(predicate));
    }

    /// Loses every stored and future record of trace `id` (hex); `false` when `id` is not one.
    pub fn forget_trace(&self, id: &str) -> bool {
        parse_hex_id(id)
            .map(|id| lock(&self.shared.logs).forget(id))
            .is_some()
    }

    /// Every record stored (visible yet or not, of every tenant), oldest first.
    pub fn records(&self) -> Vec<ReceivedLogRecord> {
        lock(&self.shared.logs).records()
    }

    /// Every record stored for `tenant` (single-tenant: `fake`), oldest first.
    pub fn records_of(&self, tenant: &str) -> Vec<ReceivedLogRecord> {
        lock(&self.shared.logs).records_of(tenant)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
}

impl Sealed for LokiDouble {}

impl FaultSwitches for LokiDouble {
    fn faults(&self) -> &Faults {
        &self.running.faults
    }
}

impl Shared {
    /// Stores records for `tenant` as Loki's distributor would; `Err` joins the refusals
    /// (Loki's 400 body).
    pub(crate) fn ingest(&self, tenant: &str, records: &[ReceivedLogRecord]) -> Result<(), String> {
        let mut logs = lock(&self.logs);
        let errors: Vec<String> = records
            .iter()
            .filter_map(|r| logs.push(tenant, r).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

async fn ready(State(s): AppState) -> Response {
    match s.faults.check_ready() {
        Ok(()) => common::text(200, "ready\n"),
        Err(reason) => {
            let reason = reason.as_deref();
            let reason = reason.unwrap_or("Ingester not ready: waiting for 15s after being ready");
            common::text(503, format!("{reason}\n"))
        }
    }
}

async fn push(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let body = if header("content-encoding").eq_ignore_ascii_case("gzip") {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
            Ok(_) => out,
            Err(e) => return common::text(400, e.to_string()),
        }
    } else {
        body.to_vec()
    };
    let content_type = header("content-type");
    let request = match content_type.split(';').next().map(str::trim) {
        Some("application/x-protobuf") => {
            prost::Message::decode(&body[..]).map_err(|e| format!("proto: {e}"))
        }
        Some("application/json") => serde_json::from_slice::<ExportLogsServiceRequest>(&body)
            .map_err(|e| format!("ReadObject: {e}, error found in #{} byte", e.column())),
        _ => Err(format!("content type: {content_type} is not supported")),
    };
    let request: ExportLogsServiceRequest = match request {
        Ok(request) => request,
        Err(message) => return common::text(400, message),
    };
    let mut records = Vec::new();
    for rl in request.resource_logs {
        let resource = std::sync::Arc::new(rl.resource.unwrap_or_default());
        for sl in rl.scope_logs {
            let scope = std::sync::Arc::new(sl.scope.unwrap_or_default());
            let schema_url: std::sync::Arc<str> = sl.schema_url.into();
            records.extend(sl.log_records.into_iter().map(|record| ReceivedLogRecord {
                resource: resource.clone(),
                scope: scope.clone(),
                scope_schema_url: schema_url.clone(),
                record,
                transport: Transport::Http,
            }));
        }
    }
    match s.ingest(&tenant.0, &records) {
        Ok(()) => axum::http::StatusCode::NO_CONTENT.into_response(),
        Err(message) => common::text(400, message),
    }
}

/// Loki's `parseTimestamp`, in Unix nanoseconds.
fn parse_time(value: &str) -> Option<i128> {
    if value.contains('.')
        && let Ok(secs) = value.parse::<f64>()
    {
        return Some((secs * 1e9).round() as i128);
    }
    match value.parse::<i64>() {
        Ok(n) if value.len() <= 10 => Some(i128::from(n) * 1_000_000_000),
        Ok(n) => Some(i128::from(n)),
        Err(_) => common::parse_rfc3339(value),
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    common::text(400, message)
}

async fn query_range(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = common::query_pairs(raw.as_deref());
    let q = common::param(&pairs, "query").unwrap_or_default();
    let query = match logql::parse(q) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let now = i128::from(common::now_nanos());
    let time =
        |name: &str, default: i128| match common::param(&pairs, name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => parse_time(v).ok_or_else(|| format!("invalid {name}: cannot parse {v:?}")),
        };
    let end = match time("end", now) {
        Ok(end) => end,
        Err(message) => return bad_request(message),
    };
    let start = match time("start", end - 3_600_000_000_000) {
        Ok(start) => start,
        Err(message) => return bad_request(message),
    };
    if end < start {
        return bad_request("end timestamp must not be before or equal to start time");
    }
    let limit = match common::param(&pairs, "limit")
        .filter(|v| !v.is_empty())
        .map(str::parse::<i64>)
    {
        None => 100,
        Some(Ok(limit)) if limit > 0 => limit,
        Some(_) => return bad_request("limit must be a positive value"),
    };
    let forward = match common::param(&pairs, "direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("" | "backward") => false,
        Some("forward") => true,
        Some(other) => return bad_request(format!("invalid direction '{other}'")),
    };
    let lag = s.faults.visible_after();
    let logs = lock(&s.logs);
    let mut hits: Vec<&store::Entry> = logs
        .visible(&tenant.0, lag)
        .filter(|e| {
            (start..end).contains(&i128::from(e.ts)) || (start == end && i128::from(e.ts) == start)
        })
        .filter(|e| query.matches(&e.labels, &e.metadata, &e.line))
        .collect();
    let scanned_bytes: usize = hits.iter().map(|e| e.line.len()).sum();
    let scanned_lines = hits.len();
    hits.sort_by_key(|e| e.ts);
    if !forward {
        hits.reverse();
    }
    hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut streams: Vec<(Labels, Vec<Value>)> = Vec::new();
    let mut metadata_bytes = 0;
    for e in &hits {
        let mut fields: Vec<(String, String)> = e.labels.clone();
        for (k, v) in &e.metadata {
            metadata_bytes += k.len() + v.len();
            if !fields.iter().any(|(name, _)| name == k) {
                fields.push((k.clone(), v.clone()));
            }
        }
        fields.sort();
        let value = json!([e.ts.to_string(), e.line]);
        match streams.iter_mut().find(|(f, _)| *f == fields) {
            Some((_, values)) => values.push(value),
            None => streams.push((fields, vec![value])),
        }
    }
    let result: Vec<Value> = streams
        .into_iter()
        .map(|(fields, values)| {
            let stream: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k, json!(v))).collect();
            json!({ "stream": stream, "values": values })
        })
        .collect();
    let stats = store::stats(scanned_lines, scanned_bytes, hits.len(), metadata_bytes);
    let data = json!({ "resultType": "streams", "result": result, "stats": stats });
    common::json(200, &json!({ "status": "success", "data": data }))
}

async fn instant_query(RawQuery(raw): RawQuery) -> Response {
    let pairs = common::query_pairs(raw.as_deref());
    let q = common::param(&pairs, "query").unwrap_or_default();
    if logql::is_metric_query(q) {
        return bad_request(format!(
            "not modelled by the Loki double (metric queries): {q}"
        ));
    }
    match logql::parse(q) {
        Err(message) => bad_request(message),
        Ok(_) => bad_request(
            "log queries are not supported as an instant query type, please change your query to \
             a range query type",
        ),
    }
}

fn visible_labels(s: &Shared, tenant: &Tenant) -> Vec<(String, String)> {
    let lag = s.faults.visible_after();
    let logs = lock(&s.logs);
    let set: BTreeSet<(String, String)> = logs
        .visible(&tenant.0, lag)
        .flat_map(|e| e.labels.clone())
        .collect();
    set.into_iter().collect()
}

async fn labels(State(s): AppState, Extension(tenant): Extension<Tenant>) -> Response {
    let names: BTreeSet<String> = visible_labels(&s, &tenant)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    common::json(200, &json!({ "status": "success", "data": names }))
}

async fn label_values(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    Path(name): Path<String>,
) -> Response {
    let values: BTreeSet<String> = visible_labels(&s, &tenant)
        .into_iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .collect();
    common::json(200, &json!({ "status": "success", "data": values }))
}
