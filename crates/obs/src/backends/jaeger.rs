//! Jaeger v2: `/api/v3/traces/{id}` (OTLP JSON behind a gRPC gateway: each streamed chunk is
//! `{"result":{"resourceSpans":…}}`, several may follow each other; ids hex or base64; 404 when
//! absent), falling back to the older `/api/traces/{id}`.

use serde_json::Value;

use super::{
    Lookup, Readiness, Span, Trace, normalize_id, readiness, spans_from_otlp_json, transport_error,
};

/// Readiness: the query service's `/api/v3/services` answers once it is up.
pub async fn ready(client: &reqwest::Client, base: &str) -> Readiness {
    readiness(
        client,
        &format!("{}/api/v3/services", base.trim_end_matches('/')),
    )
    .await
}

/// Every JSON value in `text`, which may hold several objects back to back.
fn json_values(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .collect()
}

/// The trace by id.
pub async fn trace(client: &reqwest::Client, base: &str, trace_id: &str) -> Lookup {
    let base = base.trim_end_matches('/');
    let v3 = format!("{base}/api/v3/traces/{trace_id}");
    match client.get(&v3).send().await {
        Ok(r) if r.status().is_success() => {
            let text = r.text().await.unwrap_or_default();
            let spans: Vec<Span> = json_values(&text)
                .iter()
                .flat_map(|v| {
                    let rs = v.get("result").unwrap_or(v);
                    spans_from_otlp_json(&rs["resourceSpans"])
                })
                .collect();
            if spans.is_empty() {
                Lookup::Absent(format!("{v3} answered without spans"))
            } else {
                Lookup::Found(Trace { spans })
            }
        }
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            let legacy = format!("{base}/api/traces/{trace_id}");
            match client.get(&legacy).send().await {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(body) => {
                        let spans = legacy_spans(&body);
                        if spans.is_empty() {
                            Lookup::Absent(format!("{v3} and {legacy}: trace not found"))
                        } else {
                            Lookup::Found(Trace { spans })
                        }
                    }
                    Err(e) => Lookup::Failed(format!("{legacy}: unreadable answer: {e}")),
                },
                Ok(_) => Lookup::Absent(format!("{v3} and {legacy}: trace not found")),
                Err(e) => Lookup::Failed(format!("{legacy}: {}", transport_error(&e))),
            }
        }
        Ok(r) => Lookup::Failed(format!("{v3} answered {}", r.status())),
        Err(e) => Lookup::Failed(format!("{v3}: {}", transport_error(&e))),
    }
}

/// The older `{"data":[{"spans":[…],"processes":{…}}]}` format.
fn legacy_spans(body: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    for trace in body["data"].as_array().into_iter().flatten() {
        for span in trace["spans"].as_array().into_iter().flatten() {
            let (Some(trace_id), Some(span_id)) = (
                span["traceID"].as_str().and_then(|i| normalize_id(i, 32)),
                span["spanID"].as_str().and_then(|i| normalize_id(i, 16)),
            ) else {
                continue;
            };
            let parent = span["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|r| {
                    (r["refType"] == "CHILD_OF")
                        .then(|| r["spanID"].as_str().and_then(|i| normalize_id(i, 16)))?
                });
            let process = span["processID"].as_str().unwrap_or_default();
            let start_us = span["startTime"].as_u64().unwrap_or(0);
            let duration_us = span["duration"].as_u64().unwrap_or(0);
            spans.push(Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                name: span["operationName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                service: trace["processes"][process]["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                start_ns: u128::from(start_us) * 1000,
                end_ns: u128::from(start_us + duration_us) * 1000,
            });
        }
    }
    spans
}
