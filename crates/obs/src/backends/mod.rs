//! One client per store `obs verify` reads: Tempo, Jaeger, Loki and Prometheus, plus the
//! collector's own metrics. Each answers in its own dialect; this module turns traces into one
//! shape ([`Trace`]) and every failure into one type ([`StoreError`]), so the checks are
//! written once. Trace stores share the [`TraceStore`] trait.
//!
//! Every URL is built from a validated [`StoreUrl`] by path segments (never by string
//! concatenation), every answer is read with a size cap, and every URL in an error is
//! redacted.

pub mod alertmanager;
pub mod collector;
pub mod denial;
pub mod jaeger;
pub mod loki;
pub mod prometheus;
pub mod tempo;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use url::Url;

use crate::connection::Connection;
use crate::redact;

pub use denial::{Denial, denial, transport_error};
pub use jaeger::Jaeger;
pub use tempo::Tempo;

/// The largest answer read from a store (a trace of thousands of spans fits comfortably).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What a check is about: the probe itself, a store, Grafana's links, or the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The probe: its OTLP export and its call to `--target`.
    Probe,
    /// Grafana Tempo.
    Tempo,
    /// Jaeger.
    Jaeger,
    /// Grafana Loki.
    Loki,
    /// Prometheus.
    Prometheus,
    /// The links Grafana follows between the stores (from the datasource files).
    Grafana,
    /// The OpenTelemetry Collector's own metrics.
    Collector,
    /// Alertmanager: where Prometheus's alerts go.
    Alertmanager,
}

impl Backend {
    /// The name used in reports, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Probe => "probe",
            Backend::Tempo => "tempo",
            Backend::Jaeger => "jaeger",
            Backend::Loki => "loki",
            Backend::Prometheus => "prometheus",
            Backend::Grafana => "grafana",
            Backend::Collector => "collector",
            Backend::Alertmanager => "alertmanager",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URL given on the command line cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("{flag} {shown:?} is not a URL ({reason}); write it like {example}")]
    Malformed {
        /// The flag and its variable.
        flag: &'static str,
        /// The value, redacted.
        shown: String,
        /// What the URL parser said.
        reason: String,
        /// A URL of the right shape.
        example: &'static str,
    },
    /// Not http or https, or without a host.
    #[error("{flag} {shown:?} is not an http(s) URL with a host; write it like {example}")]
    NotHttp {
        /// The flag and its variable.
        flag: &'static str,
        /// The value, redacted.
        shown: String,
        /// A URL of the right shape.
        example: &'static str,
    },
    /// A `#fragment` is never sent to a server: it is a mistake.
    #[error("{flag} {shown:?} has a #fragment, which is never sent to a server; remove it")]
    Fragment {
        /// The flag and its variable.
        flag: &'static str,
        /// The value, redacted.
        shown: String,
    },
}

/// A store's base URL, validated: http(s), with a host, no fragment. A path prefix
/// (`http://gateway/tempo/`) is kept and the API paths go below it; a query
/// (`?tenant=…`) is kept and sent with every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    base: Url,
}

impl StoreUrl {
    /// Parses `raw`, given by `flag` (named in the error, with `example` as the fix).
    pub fn parse(flag: &'static str, raw: &str, example: &'static str) -> Result<Self, UrlError> {
        let shown = redact::url(raw);
        let base = Url::parse(raw.trim()).map_err(|e| UrlError::Malformed {
            flag,
            shown: shown.clone(),
            reason: e.to_string(),
            example,
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(UrlError::NotHttp {
                flag,
                shown,
                example,
            });
        }
        if base.fragment().is_some() {
            return Err(UrlError::Fragment { flag, shown });
        }
        Ok(Self { base })
    }

    /// The URL of `segments` below the base path (each segment percent-encoded as needed).
    ///
    /// ```
    /// # use obs::backends::StoreUrl;
    /// let tempo = StoreUrl::parse("--tempo", "http://gw:8080/tempo/?org=a", "").unwrap();
    /// assert_eq!(
    ///     tempo.join(&["api", "v2", "traces", "a b"]).as_str(),
    ///     "http://gw:8080/tempo/api/v2/traces/a%20b?org=a"
    /// );
    /// ```
    pub fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The base URL as it may be shown (credentials redacted).
    pub fn shown(&self) -> String {
        redact::url(self.base.as_str())
    }

    /// True when the URL carries credentials of its own (`user:password@`).
    pub fn has_userinfo(&self) -> bool {
        redact::has_userinfo(&self.base)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Why a store could not answer the question. Every URL in it is redacted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No answer: refused, unreachable, or too slow.
    #[error("{url}: {why}")]
    Unreachable {
        /// The URL asked (redacted).
        url: String,
        /// In plain words.
        why: String,
    },
    /// An answer other than success.
    #[error("{url} answered {status}{}", body_suffix(.body))]
    Status {
        /// The URL asked (redacted).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body (the store's own explanation), redacted.
        body: String,
    },
    /// The store refused obs: 401, 403, or an answer that it needs a tenant ("no org id").
    /// The hint names the setting to fix.
    #[error("{store} answered {status}{}: {hint} ({url})", quoted_body(.body))]
    Denied {
        /// The store, in prose.
        store: &'static str,
        /// The URL asked (redacted).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body (the store's own explanation), redacted.
        body: String,
        /// Which kind of refusal.
        denial: Denial,
        /// What to set, naming the flag and the variable.
        hint: String,
    },
    /// A success whose body is not what the store's API documents.
    #[error("{url}: unreadable answer: {why}")]
    Unreadable {
        /// The URL asked (redacted).
        url: String,
        /// What was wrong.
        why: String,
    },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn quoted_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(" {body:?}")
    }
}

impl StoreError {
    /// True when the store could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }

    /// How the store refused obs, when it did.
    pub fn denial(&self) -> Option<Denial> {
        match self {
            StoreError::Denied { denial, .. } => Some(*denial),
            _ => None,
        }
    }
}

/// What a readiness probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Answered ready.
    Ready,
    /// Answered, but not ready yet (e.g. Tempo and Loki for ~15 s after start).
    NotReady(StoreError),
    /// Could not be reached at all.
    Unreachable(StoreError),
    /// Refused obs (401, 403, no tenant): waiting will not help.
    Denied(StoreError),
}

/// One span, in the shape the checks use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's id, `None` for a root.
    pub parent_span_id: Option<String>,
    /// The span name.
    pub name: String,
    /// `service.name` of the span's resource.
    pub service: String,
    /// Start, Unix nanoseconds.
    pub start_ns: u128,
    /// End, Unix nanoseconds.
    pub end_ns: u128,
}

/// A trace as a store returned it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Its spans.
    pub spans: Vec<Span>,
}

/// A store's trace id or span id as lowercase hex, whether it came as hex (with or without
/// leading zeros) or as base64 of the raw bytes (Tempo, older Jaeger gateways).
pub fn normalize_id(id: &str, hex_len: usize) -> Option<String> {
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    if id.len() <= hex_len && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = format!("{id:0>hex_len$}").to_ascii_lowercase();
        return (hex.bytes().any(|b| b != b'0')).then_some(hex);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(id)
        .ok()
        .filter(|b| b.len() * 2 == hex_len)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (hex.bytes().any(|b| b != b'0')).then_some(hex)
}

fn number(value: &Value) -> u128 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().map(u128::from).unwrap_or(0),
        _ => 0,
    }
}

fn string_attr(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find_map(|kv| {
        (kv.get("key")?.as_str()? == key).then(|| {
            kv.get("value")?
                .get("stringValue")?
                .as_str()
                .map(str::to_string)
        })?
    })
}

/// Reads OTLP/JSON `resourceSpans` (Tempo v2 `trace`, Tempo v1 `batches`, Jaeger v3 `result`).
pub fn spans_from_otlp_json(resource_spans: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    for rs in resource_spans.as_array().into_iter().flatten() {
        let service =
            string_attr(&rs["resource"]["attributes"], "service.name").unwrap_or_default();
        let scopes = rs
            .get("scopeSpans")
            .or_else(|| rs.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array);
        for scope in scopes.into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let Some(trace_id) = span["traceId"].as_str().and_then(|i| normalize_id(i, 32))
                else {
                    continue;
                };
                let Some(span_id) = span["spanId"].as_str().and_then(|i| normalize_id(i, 16))
                else {
                    continue;
                };
                spans.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id: span["parentSpanId"]
                        .as_str()
                        .and_then(|i| normalize_id(i, 16)),
                    name: span["name"].as_str().unwrap_or_default().to_string(),
                    service: service.clone(),
                    start_ns: number(&span["startTimeUnixNano"]),
                    end_ns: number(&span["endTimeUnixNano"]),
                });
            }
        }
    }
    spans
}

/// The HTTP client of one store: bounded per call, answers read with a size cap, and the
/// store's [`Connection`] (tenant, credentials, headers, TLS) on every request.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    connection: Option<std::sync::Arc<Connection>>,
}

impl Http {
    /// A client without tenant or credentials, whose every call (connect included) ends
    /// within `timeout`.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            client: Self::builder(timeout).build()?,
            connection: None,
        })
    }

    /// A client for the store `connection` reaches, whose every call ends within `timeout`.
    pub fn for_connection(timeout: Duration, connection: &Connection) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = connection.apply(Self::builder(timeout))?;
        Ok(Self {
            client: builder.build().map_err(|e| {
                anyhow::anyhow!(
                    "cannot set up the HTTP client for {} ({}): {}",
                    connection.store,
                    connection.describe(),
                    redact::text(&e.to_string())
                )
            })?,
            connection: Some(std::sync::Arc::new(connection.clone())),
        })
    }

    fn builder(timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("obs/", env!("CARGO_PKG_VERSION")))
    }

    /// The connection this client uses, if it is a store's.
    pub fn connection(&self) -> Option<&Connection> {
        self.connection.as_deref()
    }

    /// GETs `url` with `query` appended; the status and at most [`MAX_ANSWER_BYTES`] of body.
    pub async fn get(&self, url: Url, query: &[(&str, &str)]) -> Result<(u16, String), StoreError> {
        let mut url = url;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let shown = redact::url(url.as_str());
        let mut response = self.client.get(url).send().await.map_err(|e| {
            let mut why = transport_error(&e);
            if why.starts_with("TLS failed")
                && let Some(connection) = self.connection.as_deref()
            {
                why.push_str(&denial::tls_hint(connection));
            }
            StoreError::Unreachable {
                url: shown.clone(),
                why,
            }
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        // A refusal's body is only an explanation: read a little of it.
        let cap = if matches!(status, 401 | 403) {
            64 * 1024
        } else {
            MAX_ANSWER_BYTES
        };
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        if cap < MAX_ANSWER_BYTES {
                            break;
                        }
                        return Err(StoreError::Unreadable {
                            url: shown,
                            why: format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(StoreError::Unreachable {
                        url: shown,
                        why: format!("the answer broke off: {}", transport_error(&e)),
                    });
                }
            }
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if let Some(denied) = denial(self.connection.as_deref(), &shown, status, &body) {
            return Err(denied);
        }
        Ok((status, body))
    }

    /// Like [`Http::get`], but anything other than 2xx is a [`StoreError::Status`].
    pub async fn get_ok(&self, url: Url, query: &[(&str, &str)]) -> Result<String, StoreError> {
        let shown = redact::url(url.as_str());
        let (status, body) = self.get(url, query).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(status_error(shown, status, &body))
        }
    }

    /// Like [`Http::get_ok`], parsed as JSON.
    pub async fn get_json(&self, url: Url, query: &[(&str, &str)]) -> Result<Value, StoreError> {
        let shown = redact::url(url.as_str());
        let body = self.get_ok(url, query).await?;
        serde_json::from_str(&body).map_err(|e| StoreError::Unreadable {
            url: shown,
            why: e.to_string(),
        })
    }

    /// GETs `url` and reports readiness: 2xx ready, another answer not ready, no answer
    /// unreachable.
    pub async fn readiness(&self, url: Url) -> Readiness {
        let shown = redact::url(url.as_str());
        match self.get(url, &[]).await {
            Ok((status, _)) if (200..300).contains(&status) => Readiness::Ready,
            Ok((status, body)) => Readiness::NotReady(status_error(shown, status, &body)),
            Err(e) if e.is_unreachable() => Readiness::Unreachable(e),
            Err(e) if e.denial().is_some() => Readiness::Denied(e),
            Err(e) => Readiness::NotReady(e),
        }
    }
}

/// The start of a body, at most 300 characters, redacted.
fn body_start(body: &str) -> String {
    let body = body.trim();
    let cut = body
        .char_indices()
        .nth(300)
        .map_or(body, |(i, _)| &body[..i]);
    redact::text(cut)
}

/// A non-success answer, with the start of its body (the store's explanation) kept.
pub fn status_error(url: String, status: u16, body: &str) -> StoreError {
    StoreError::Status {
        url,
        status,
        body: body_start(body),
    }
}

/// What a trace lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The trace, with at least one span.
    Found(Trace),
    /// The store answered, without the trace: what it answered.
    Absent(String),
    /// The store could not be asked.
    Failed(StoreError),
}

/// The time range a search covers, Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// From.
    pub start_s: u64,
    /// To.
    pub end_s: u64,
}

/// A store that holds traces: Tempo and Jaeger. `obs verify` asks each the same questions.
pub trait TraceStore: Send + Sync {
    /// Which store this is.
    fn backend(&self) -> Backend;

    /// Its readiness.
    fn ready(&self, http: &Http) -> impl Future<Output = Readiness> + Send;

    /// The trace `trace_id` (32 lowercase hex digits).
    fn trace(&self, http: &Http, trace_id: &str) -> impl Future<Output = Lookup> + Send;

    /// The query a user would search by to find the probe's trace (by its run attribute), or
    /// `None` when this store has no search `obs verify` checks.
    fn search_query(&self, run_id: &str) -> Option<String>;

    /// Whether searching by `query` over `window` finds `trace_id`.
    fn search(
        &self,
        http: &Http,
        query: &str,
        trace_id: &str,
        window: Window,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_normalised_from_hex_short_hex_and_base64() {
        let id = "00a1b2c3d4e5f60718293a4b5c6d7e8f";
        assert_eq!(normalize_id(id, 32).as_deref(), Some(id));
        assert_eq!(
            normalize_id("a1b2c3d4e5f60718293a4b5c6d7e8f", 32).as_deref(),
            Some(id)
        );
        assert_eq!(
            normalize_id("AKGyw9Tl9gcYKTpLXG1+jw==", 32).as_deref(),
            Some(id)
        );
        assert_eq!(
            normalize_id("ERERERERERE=", 16).as_deref(),
            Some("1111111111111111")
        );
        assert_eq!(normalize_id("", 16), None);
        assert_eq!(normalize_id("0000000000000000", 16), None);
    }

    #[test]
    fn every_client_keeps_the_path_prefix_of_its_base_url() {
        let base = StoreUrl::parse("--loki", "https://gw.example/loki", "").unwrap();
        assert_eq!(
            base.join(&["loki", "api", "v1", "query_range"]).as_str(),
            "https://gw.example/loki/loki/api/v1/query_range"
        );
        let base = StoreUrl::parse("--prometheus", "https://gw.example/prom/", "").unwrap();
        assert_eq!(
            base.join(&["-", "ready"]).as_str(),
            "https://gw.example/prom/-/ready"
        );
        let bare = StoreUrl::parse("--tempo", "http://tempo:3200", "").unwrap();
        assert_eq!(bare.join(&["ready"]).as_str(), "http://tempo:3200/ready");
    }

    #[test]
    fn the_recorded_tempo_trace_parses_with_its_parents() {
        let body: Value = serde_json::from_str(include_str!(
            "../../../api-doubles/upstream-samples/tempo_v2_trace_found.json"
        ))
        .unwrap();
        let spans = spans_from_otlp_json(&body["trace"]["resourceSpans"]);
        assert_eq!(spans.len(), 3);
        assert!(
            spans
                .iter()
                .all(|s| s.trace_id == "00a1b2c3d4e5f60718293a4b5c6d7e8f")
        );
        let client = spans.iter().find(|s| s.name == "GET").unwrap();
        assert_eq!(client.parent_span_id.as_deref(), Some("1111111111111111"));
        assert_eq!(client.service, "gateway");
        assert!(client.end_ns > client.start_ns);
    }
}
