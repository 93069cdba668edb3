//! One client per store `obs verify` reads: Tempo, Jaeger, Loki and Prometheus. Each answers in
//! its own dialect; this module turns traces into one shape ([`Trace`]) so the checks are written
//! once.

pub mod jaeger;
pub mod loki;
pub mod prometheus;
pub mod tempo;

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// What a readiness probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Answered ready.
    Ready,
    /// Answered, but not ready yet (e.g. Tempo and Loki for ~15 s after start).
    NotReady(String),
    /// Could not be reached at all.
    Unreachable(String),
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

/// The HTTP client the store clients share: bounded per call.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("obs/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// GETs `url` and reports readiness: 2xx ready, another answer not ready, no answer unreachable.
pub async fn readiness(client: &reqwest::Client, url: &str) -> Readiness {
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Readiness::Ready,
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            Readiness::NotReady(format!("{url} answered {status}: {}", body.trim()))
        }
        Err(e) => Readiness::Unreachable(format!("{url}: {}", transport_error(&e))),
    }
}

/// A transport error in plain words.
pub fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer before the timeout".into()
    } else if e.is_connect() {
        "connection refused or host unreachable".into()
    } else {
        e.to_string()
    }
}

/// What a trace lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The trace, with at least one span.
    Found(Trace),
    /// The store answered, without the trace.
    Absent(String),
    /// The store could not be asked.
    Failed(String),
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
