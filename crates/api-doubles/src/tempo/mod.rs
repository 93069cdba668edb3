//! A double of Grafana Tempo 3's query API, fed by real OTLP.
//!
//! Followed: the "Tempo HTTP API" page (`/ready`, `GET /api/traces/<traceID>`,
//! `GET /api/v2/traces/<traceID>`, `GET /api/search?q=&start=&end=&limit=&spss=`, `/api/echo`),
//! Tempo's `pkg/util/traceid.go` (ids: hex, case-insensitive, left-padded to 128 bits, at most 32
//! digits; search answers them without leading zeros) and `pkg/api/http.go` (parameter errors),
//! and the answers recorded from Tempo 3.1.0-dev in `shared/upstream-samples`:
//! `tempo_v2_trace_found.json` (`{"trace":{"resourceSpans":[…]},"metrics":{}}`, base64 ids, enum
//! names, nanoseconds as strings), `tempo_v2_trace_missing.txt` (**200**
//! `{"trace":{},"metrics":{}}`),
//! `tempo_v1_trace_found.json` (`{"batches":[…]}`), `tempo_v1_trace_missing.txt` (404, empty
//! body), `tempo_search_traceql.json`, `tempo_ready.txt` (`ready\n`). Invalid ids and queries
//! answer 400 in plain text with Tempo's messages (`trace IDs can only contain hex characters: …`,
//! `invalid TraceQL query: parse error at line 1, col N: …`); TraceQL subset (file `traceql.rs`):
//! one spanset of comparisons joined by `&&`/`||` on `resource.`/`span.`/`.` attributes and the
//! intrinsics `name`, `status`, `kind`, `duration`, `statusMessage`.
//!
//! Intake: a real OTLP receiver (crate `otlp-receiver`: gRPC, and HTTP with protobuf bodies) on
//! its own ports, as Tempo's distributor listens on 4317/4318. Real search lags by-id by about
//! 30 s: [`TempoDouble::visible_after`] and [`TempoDouble::searchable_after`] are separate.
//!
//! Search parameters are checked as `pkg/api/http.go` and its tests do (`invalid limit: must be a
//! positive number`, `invalid spss: …`, `invalid request: can't specify tags and q in the same
//! query`, `http parameter start must be before end. …`); search by `tags=`, `minDuration` or
//! `maxDuration` is refused with a 400 saying it is not modelled rather than answered wrongly.
//!
//! Start it with [`TempoDouble::start`] (single-tenant, plain HTTP, free ports) or with
//! [`TempoDouble::builder`]:
//!
//! ```no_run
//! use api_doubles::tempo::TempoDouble;
//! use api_doubles::tls::TlsMode;
//! let tempo = TempoDouble::builder()
//!     .multi_tenant() // X-Scope-OrgID required, tenants kept apart
//!     .require_bearer("t0k") // a gateway in front: 401 without it
//!     .tls(TlsMode::ClientCert) // HTTPS with a test CA, client certificate required
//!     .path_prefix("/tempo") // served under /tempo, 404 outside
//!     .start()?;
//! let ca = tempo.ca().expect("TLS is on"); // ca.ca_path(), ca.client_cert_path(), …
//! # Ok::<(), api_doubles::Error>(())
//! ```
//!
//! Multi-tenancy ([`TempoBuilder::multi_tenant`], Tempo's `multitenancy_enabled: true`; see
//! [`crate::tenancy`]): trace-by-id (v1, v2) and search without `X-Scope-OrgID` answer 401
//! `no org id` (`tempo_mt_query_no_org_id.txt`); another tenant's trace answers exactly as a
//! missing one (v2: 200 `{"trace":{},"metrics":{}}`, `tempo_mt_wrong_tenant.txt`; v1: 404) and
//! search does not find it; `/ready` and `/api/echo` need no tenant. The OTLP intake is then the
//! double's own (`intake.rs`): a push without the header is refused with 503 / UNAVAILABLE
//! `no org id` (`tempo_mt_otlp_push_no_org_id.txt`). Off (the default), everything is stored and
//! queried as Tempo's `single-tenant` tenant and the header is ignored.
//!
//! The gateway ([`crate::gateway`]: credentials, path prefix) is in front of the query port
//! only: a gateway for queries does not front the distributor's 4317/4318. TLS
//! ([`crate::tls`]) covers the OTLP ports too, with the same CA and mode: the multi-tenant
//! intake at `https://127.0.0.1:<port>`, the single-tenant shared receiver at
//! `https://localhost:<port>` (the name `otlp-receiver` gives its TLS endpoints).
//!
//! Not modelled: OTLP/HTTP JSON intake (the receiver answers 415), `Accept: application/protobuf`,
//! the by-id `start`/`end` window, cross-tenant queries (`a|b`, refused with 400), tag endpoints, TraceQL
//! metrics, search's `metrics` beyond plausible counters, and
//! HTTP/2 on the query port. Queries answer even while `/ready` says 503; its 503 body (Tempo
//! 3 has no ingesters) is a guess, settable with [`TempoDouble::set_not_ready_reason`]. While
//! "down", the query port is closed and OTLP exports are refused with UNAVAILABLE / 503.

mod intake;
mod traceql;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use otlp_receiver::{OtlpReceiver, ReceivedSpan};
use serde_json::{Value, json};

use crate::chassis::{self, Error, FaultState, FaultSwitches, Faults, Running, Sealed, Served};
use crate::common::{self, RecordedRequest, Requests, lock};
use crate::otlp_json::{self, TEMPO};
use crate::setup::{Setup, builder_methods};
use crate::tenancy::{self, TEMPO_SINGLE_TENANT, Tenancy, Tenant};
use crate::tls::TestCa;
use crate::trace_store::{TraceStore, parse_hex_id};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) traces: Mutex<TraceStore>,
    faults: Arc<FaultState>,
    searchable_after: Mutex<Duration>,
    pub(crate) tenancy: Tenancy,
}

impl Shared {
    fn new(tenancy: Tenancy) -> Self {
        Self {
            traces: Mutex::default(),
            faults: Arc::default(),
            searchable_after: Mutex::default(),
            tenancy,
        }
    }
}

/// How a [`TempoDouble`] starts: port, tenancy, the gateway in front, TLS. Made by
/// [`TempoDouble::builder`]; [`start`](Self::start) starts it.
#[derive(Debug, Default)]
pub struct TempoBuilder {
    setup: Setup,
}

impl TempoBuilder {
    builder_methods!("Tempo");

    /// Starts the double.
    pub fn start(self) -> Result<TempoDouble, Error> {
        TempoDouble::start_with(self.setup)
    }
}

type AppState = State<Arc<Shared>>;

/// A running Tempo double; dropping it stops it and frees its ports. Its fault switches are
/// [`FaultSwitches`].
#[derive(Debug)]
pub struct TempoDouble {
    shared: Arc<Shared>,
    requests: Requests,
    /// The shared receiver (single-tenant), or the double's own intake's endpoints.
    intake: Intake,
    url: String,
    ca: Option<Arc<TestCa>>,
    running: Running,
}

/// Where OTLP goes in.
#[derive(Debug)]
enum Intake {
    Receiver(Arc<OtlpReceiver>),
    Own { grpc: String, http: String },
}

impl TempoDouble {
    /// Starts single-tenant, over plain HTTP, on free ports of `127.0.0.1`.
    pub fn start() -> Result<Self, Error> {
        Self::start_on(0)
    }

    /// Starts with the query API on `port` (see [`crate::reserve_port`]); OTLP on free ports.
    pub fn start_on(port: u16) -> Result<Self, Error> {
        Self::builder().port(port).start()
    }

    /// A builder for the other settings: multi-tenancy, a gateway in front, TLS, a prefix.
    pub fn builder() -> TempoBuilder {
        TempoBuilder::default()
    }

    fn start_with(setup: Setup) -> Result<Self, Error> {
        let (listener, port) = chassis::bind(setup.port)?;
        let tenancy = if setup.multi_tenant {
            Tenancy::Multi
        } else {
            Tenancy::Single(TEMPO_SINGLE_TENANT)
        };
        let shared = Arc::new(Shared::new(tenancy));
        let requests = Requests::default();
        let front = setup.front("Tempo", listener, port, router(&shared), &requests)?;
        let faults = Arc::clone(&shared.faults);
        let (running, intake) = if setup.multi_tenant {
            let (grpc_app, http_app) = intake::routers(&shared);
            let (grpc_listener, grpc_port) = chassis::bind(0)?;
            let (http_listener, http_port) = chassis::bind(0)?;
            // With TLS, the intake serves it too (same CA and mode): gRPC offers ALPN `h2`.
            let (grpc_tls, http_tls, scheme) = match (&front.ca, &setup.tls) {
                (Some(ca), Some(choice)) => (
                    Some(ca.server_config(choice.mode, &[b"h2"])?),
                    Some(ca.server_config(choice.mode, &[b"http/1.1"])?),
                    "https",
                ),
                _ => (None, None, "http"),
            };
            let intake_port = |listener, app, tls, h2| Served {
                listener,
                app,
                tls,
                h2,
                stays_up: true,
            };
            let ports = vec![
                front.served,
                intake_port(grpc_listener, grpc_app, grpc_tls, true),
                intake_port(http_listener, http_app, http_tls, false),
            ];
            let running = chassis::run("tempo", ports, faults)?;
            let grpc = format!("{scheme}://127.0.0.1:{grpc_port}");
            let http = format!("{scheme}://127.0.0.1:{http_port}");
            (running, Intake::Own { grpc, http })
        } else {
            let store = Arc::clone(&shared);
            let sink: chassis::Sink = Box::new(move |batch| {
                lock(&store.traces).ingest(TEMPO_SINGLE_TENANT, batch.spans);
            });
            let tls = match (&front.ca, &setup.tls) {
                (Some(ca), Some(choice)) => Some(match choice.mode {
                    crate::tls::TlsMode::ServerOnly => ca.pki().server_only_settings(),
                    crate::tls::TlsMode::ClientCert => ca.pki().mtls_settings(),
                }),
                _ => None,
            };
            let (running, receiver) =
                chassis::run_with_intake("tempo", vec![front.served], sink, tls, faults)?;
            (running, Intake::Receiver(receiver))
        };
        Ok(Self {
            shared,
            requests,
            intake,
            url: front.url,
            ca: front.ca,
            running,
        })
    }

    /// The query API, `http://127.0.0.1:<port>` (Tempo's 3200; `https` with TLS, followed by the
    /// path prefix if any), without a trailing slash.
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

    /// The OTLP/gRPC endpoint (Tempo's 4317), `http://127.0.0.1:<port>` (with TLS: `https`;
    /// single-tenant with TLS: `https://localhost:<port>`, the shared receiver's name).
    pub fn otlp_grpc_endpoint(&self) -> String {
        match &self.intake {
            Intake::Receiver(receiver) => receiver.grpc_endpoint(),
            Intake::Own { grpc, .. } => grpc.clone(),
        }
    }

    /// The OTLP/HTTP base endpoint (Tempo's 4318), without `/v1/traces`.
    pub fn otlp_http_endpoint(&self) -> String {
        match &self.intake {
            Intake::Receiver(receiver) => receiver.http_endpoint(),
            Intake::Own { http, .. } => http.clone(),
        }
    }

    /// Search finds a span only this long after it arrived (default: at once; real Tempo lags
    /// trace-by-id by about 30 s). Trace-by-id follows [`FaultSwitches::visible_after`].
    pub fn searchable_after(&self, lag: Duration) {
        *lock(&self.shared.searchable_after) = lag;
    }

    /// The 503 body of `/ready` (default `Ingester not ready: waiting for 15s after being ready`).
    pub fn set_not_ready_reason(&self, reason: &str) {
        self.shared.faults.set_not_ready_reason(reason);
    }

    /// Loses every stored and future span for which `predicate` holds.
    pub fn drop_spans(&self, predicate: impl Fn(&ReceivedSpan) -> bool + Send + Sync + 'static) {
        lock(&self.shared.traces).drop_spans(Box::new(predicate));
    }

    /// Loses every stored and future span of trace `id` (hex, leading zeros optional).
    /// Returns `false` when `id` is not a trace id.
    pub fn forget_trace(&self, id: &str) -> bool {
        parse_hex_id(id)
            .map(|id| lock(&self.shared.traces).forget(id))
            .is_some()
    }

    /// Every span stored (visible yet or not, of every tenant), oldest first.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.shared.traces).all()
    }

    /// Every span stored for `tenant` (single-tenant: `single-tenant`), oldest first.
    pub fn spans_of(&self, tenant: &str) -> Vec<ReceivedSpan> {
        lock(&self.shared.traces).of_tenant(tenant)
    }

    /// Every query request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
}

impl Sealed for TempoDouble {}

impl FaultSwitches for TempoDouble {
    fn faults(&self) -> &Faults {
        &self.running.faults
    }
}

fn router(shared: &Arc<Shared>) -> Router {
    let gate = tenancy::Gate {
        double: "Tempo",
        tenancy: shared.tenancy.clone(),
        open_paths: &["/ready", "/api/echo"],
    };
    Router::new()
        .route("/ready", get(ready))
        .route("/api/echo", get(async || "echo"))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/search", get(search))
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            tenancy::require_tenant,
        ))
        .fallback(async || common::text(404, "404 page not found\n"))
        .with_state(Arc::clone(shared))
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

/// Tempo's `HexStringToTraceID`: hex digits only, at most 128 bits, left-padded with zeros.
fn parse_trace_id(id: &str) -> Result<[u8; 16], String> {
    if let Some((i, c)) = id.chars().enumerate().find(|(_, c)| !c.is_ascii_hexdigit()) {
        let position = i + 1;
        return Err(format!(
            "trace IDs can only contain hex characters: invalid character '{c}' at position {position}"
        ));
    }
    let digits = if id.len() % 2 == 1 {
        format!("0{id}")
    } else {
        id.to_owned()
    };
    if digits.len() > 32 {
        return Err("trace IDs can't be larger than 128 bits".into());
    }
    parse_hex_id(&digits).ok_or_else(|| "trace IDs can't be empty".into())
}

/// The trace's `resourceSpans`, or Tempo's 400 message for a malformed id.
fn by_id(s: &Shared, tenant: &Tenant, id: &str) -> Result<Vec<Value>, String> {
    let id = parse_trace_id(id)?;
    let lag = s.faults.visible_after();
    let traces = lock(&s.traces);
    let spans = traces.trace(&tenant.0, &id, lag);
    Ok(otlp_json::resource_spans(&spans, TEMPO))
}

async fn trace_v2(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Response {
    match by_id(&s, &tenant, &id) {
        Err(message) => common::text(400, format!("{message}\n")),
        // Byte for byte as recorded (`tempo_v2_trace_missing.txt`, `tempo_mt_wrong_tenant.txt`):
        // Tempo's key order, which a `serde_json::Map` would sort.
        Ok(batches) if batches.is_empty() => {
            let body = r#"{"trace":{},"metrics":{}}"#;
            let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
            axum::response::IntoResponse::into_response((json, body))
        }
        Ok(batches) => {
            let body = json!({ "trace": { "resourceSpans": batches }, "metrics": {} });
            common::json(200, &body)
        }
    }
}

async fn trace_v1(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Response {
    match by_id(&s, &tenant, &id) {
        Err(message) => common::text(400, format!("{message}\n")),
        Ok(batches) if batches.is_empty() => common::text(404, ""),
        Ok(batches) => common::json(200, &json!({ "batches": batches })),
    }
}

/// Parses an optional integer parameter as Tempo does (`invalid <name>: strconv…`).
fn int_param(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, String> {
    let Some(raw) = common::param(pairs, name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    raw.parse::<i64>().map(Some).map_err(|_| {
        let func = if name == "limit" || name == "spss" {
            "Atoi"
        } else {
            "ParseInt"
        };
        format!("invalid {name}: strconv.{func}: parsing {raw:?}: invalid syntax\n")
    })
}

async fn search(
    State(s): AppState,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = common::query_pairs(raw.as_deref());
    let given = |name| common::param(&pairs, name).is_some_and(|v| !v.is_empty());
    if given("tags") && given("q") {
        let message = "invalid request: can't specify tags and q in the same query\n";
        return common::text(400, message);
    }
    if let Some(name) = ["tags", "minDuration", "maxDuration"]
        .into_iter()
        .find(|n| given(n))
    {
        let message = format!("not modelled by the Tempo double (search by {name}): use q\n");
        return common::text(400, message);
    }
    let query = match traceql::parse(common::param(&pairs, "q").unwrap_or_default()) {
        Ok(query) => query,
        Err(message) => return common::text(400, format!("{message}\n")),
    };
    let params = (|| {
        let limit = int_param(&pairs, "limit")?;
        let spss = int_param(&pairs, "spss")?;
        Ok::<_, String>((
            limit,
            spss,
            int_param(&pairs, "start")?,
            int_param(&pairs, "end")?,
        ))
    })();
    let (limit, spss, start, end) = match params {
        Ok(params) => params,
        Err(message) => return common::text(400, message),
    };
    if limit.is_some_and(|l| l <= 0) {
        return common::text(400, "invalid limit: must be a positive number\n");
    }
    if spss.is_some_and(|l| l <= 0) {
        return common::text(400, "invalid spss: must be a positive number\n");
    }
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        let message =
            format!("http parameter start must be before end. received start={start} end={end}\n");
        return common::text(400, message);
    }
    let limit = usize::try_from(limit.unwrap_or(20)).unwrap_or(20);
    let spss = usize::try_from(spss.unwrap_or(3)).unwrap_or(3);
    let lag = *lock(&s.searchable_after);
    let store = lock(&s.traces);
    let mut traces: BTreeMap<&[u8], Vec<&ReceivedSpan>> = BTreeMap::new();
    for span in store.visible(&tenant.0, lag) {
        traces.entry(&span.span.trace_id).or_default().push(span);
    }
    let window = |spans: &[&ReceivedSpan]| {
        let first = spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap_or_default();
        let last = spans
            .iter()
            .map(|s| s.span.end_time_unix_nano)
            .max()
            .unwrap_or_default();
        let secs = |ns: u64| i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
        start.is_none_or(|start| secs(last) >= start) && end.is_none_or(|end| secs(first) <= end)
    };
    let mut found: Vec<(u64, Value)> = traces
        .values()
        .filter(|spans| window(spans))
        .filter_map(|spans| {
            let start = spans
                .iter()
                .map(|s| s.span.start_time_unix_nano)
                .min()
                .unwrap_or_default();
            traceql::trace_result(&query, spans, spss).map(|t| (start, t))
        })
        .collect();
    found.sort_by_key(|t| std::cmp::Reverse(t.0));
    let inspected: usize = store
        .visible(&tenant.0, lag)
        .map(|s| prost::Message::encoded_len(&s.span))
        .sum();
    let traces: Vec<Value> = found.into_iter().take(limit).map(|(_, t)| t).collect();
    let metrics =
        json!({ "inspectedBytes": inspected.to_string(), "completedJobs": 1, "totalJobs": 1 });
    common::json(200, &json!({ "traces": traces, "metrics": metrics }))
}
