//! Tempo (3.x, and 2.x through the v1 fallback): trace by id and TraceQL search.
//!
//! Traps, from recorded answers: `/api/v2/traces/{id}` answers **200 with an empty trace** when
//! the trace is absent (judge the body), ids come as base64, and search returns trace ids with
//! their **leading zeros stripped**.

use serde_json::Value;

use super::{
    Lookup, Readiness, Trace, normalize_id, readiness, spans_from_otlp_json, transport_error,
};

/// Tempo's readiness (`/ready`: 503 while starting).
pub async fn ready(client: &reqwest::Client, base: &str) -> Readiness {
    readiness(client, &format!("{}/ready", base.trim_end_matches('/'))).await
}

/// The trace by id: `/api/v2/traces/{id}`, falling back to `/api/traces/{id}` on 404 (Tempo 2).
pub async fn trace(client: &reqwest::Client, base: &str, trace_id: &str) -> Lookup {
    let base = base.trim_end_matches('/');
    let v2 = format!("{base}/api/v2/traces/{trace_id}");
    match client.get(&v2).send().await {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(body) => found_or_absent(spans_from_otlp_json(&body["trace"]["resourceSpans"]), &v2),
            Err(e) => Lookup::Failed(format!("{v2}: unreadable answer: {e}")),
        },
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            let v1 = format!("{base}/api/traces/{trace_id}");
            match client.get(&v1).send().await {
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                    Lookup::Absent(format!("{v1} answered 404"))
                }
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(body) => found_or_absent(spans_from_otlp_json(&body["batches"]), &v1),
                    Err(e) => Lookup::Failed(format!("{v1}: unreadable answer: {e}")),
                },
                Ok(r) => Lookup::Failed(format!("{v1} answered {}", r.status())),
                Err(e) => Lookup::Failed(format!("{v1}: {}", transport_error(&e))),
            }
        }
        Ok(r) => Lookup::Failed(format!("{v2} answered {}", r.status())),
        Err(e) => Lookup::Failed(format!("{v2}: {}", transport_error(&e))),
    }
}

fn found_or_absent(spans: Vec<super::Span>, url: &str) -> Lookup {
    if spans.is_empty() {
        Lookup::Absent(format!("{url} answered without the trace"))
    } else {
        Lookup::Found(Trace { spans })
    }
}

/// True when a TraceQL search finds the trace (ids compared as 32 hex digits).
pub async fn search_finds(
    client: &reqwest::Client,
    base: &str,
    traceql: &str,
    trace_id: &str,
    start_s: u64,
    end_s: u64,
) -> Result<bool, String> {
    let url = format!("{}/api/search", base.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(&[
            ("q", traceql.to_string()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
            ("limit", "50".to_string()),
        ])
        .send()
        .await
        .map_err(|e| format!("{url}: {}", transport_error(&e)))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {body}"));
    }
    Ok(body["traces"].as_array().into_iter().flatten().any(|t| {
        t["traceID"]
            .as_str()
            .and_then(|i| normalize_id(i, 32))
            .as_deref()
            == Some(trace_id)
    }))
}
