//! Loki 3: log lines of a trace through `query_range` (log queries need `query_range`; `query`
//! answers 400 for them). With native OTLP ingestion, `service.name` is the index label
//! `service_name` and `trace_id` is structured metadata.

use serde_json::Value;

use super::{Readiness, readiness, transport_error};

/// Loki's readiness (`/ready`: 503 "Ingester not ready" for ~15 s after start).
pub async fn ready(client: &reqwest::Client, base: &str) -> Readiness {
    readiness(client, &format!("{}/ready", base.trim_end_matches('/'))).await
}

/// One log line Loki returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Stream labels and structured metadata, as Loki returns them together.
    pub fields: serde_json::Map<String, Value>,
    /// The log line.
    pub line: String,
}

/// Runs a LogQL log query over `[start_ns, end_ns]`.
pub async fn query_range(
    client: &reqwest::Client,
    base: &str,
    logql: &str,
    start_ns: u128,
    end_ns: u128,
) -> Result<Vec<Line>, String> {
    let url = format!("{}/loki/api/v1/query_range", base.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(&[
            ("query", logql.to_string()),
            ("start", start_ns.to_string()),
            ("end", end_ns.to_string()),
            ("limit", "100".to_string()),
            ("direction", "forward".to_string()),
        ])
        .send()
        .await
        .map_err(|e| format!("{url}: {}", transport_error(&e)))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!(
            "{url} answered {status} to {logql}: {}",
            text.trim()
        ));
    }
    let body: Value =
        serde_json::from_str(&text).map_err(|e| format!("{url}: unreadable answer: {e}"))?;
    let mut lines = Vec::new();
    for stream in body["data"]["result"].as_array().into_iter().flatten() {
        let fields = stream["stream"].as_object().cloned().unwrap_or_default();
        for value in stream["values"].as_array().into_iter().flatten() {
            lines.push(Line {
                fields: fields.clone(),
                line: value[1].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(lines)
}
