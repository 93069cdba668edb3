//! Jaeger v2: `/api/v3/traces/{id}` (OTLP JSON behind a gRPC gateway: each streamed chunk is
//! `{"result":{"resourceSpans":…}}`, several may follow each other; ids hex or base64; 404 when
//! absent), falling back to the older `/api/traces/{id}`.

use serde_json::Value;

use super::{
    Backend, Http, Lookup, Readiness, Span, StoreError, StoreUrl, Trace, TraceStore, Window,
    normalize_id, spans_from_otlp_json, status_error,
};
use crate::redact;

/// A Jaeger query service.
#[derive(Clone, Debug)]
pub struct Jaeger {
    base: StoreUrl,
}

impl Jaeger {
    /// Jaeger's query service at `base` (`http://jaeger:16686`, or below a path prefix).
    pub fn new(base: StoreUrl) -> Self {
        Self { base }
    }

    /// Where it is (redacted).
    pub fn base(&self) -> &StoreUrl {
        &self.base
    }
}

/// Every JSON value in `text`, which may hold several objects back to back.
fn json_values(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .collect()
}

impl TraceStore for Jaeger {
    fn backend(&self) -> Backend {
        Backend::Jaeger
    }

    /// The query service's `/api/v3/services` answers once it is up.
    async fn ready(&self, http: &Http) -> Readiness {
        http.readiness(self.base.join(&["api", "v3", "services"]))
            .await
    }

    async fn trace(&self, http: &Http, trace_id: &str) -> Lookup {
        let v3 = self.base.join(&["api", "v3", "traces", trace_id]);
        let v3_shown = redact::url(v3.as_str());
        match http.get(v3, &[]).await {
            Ok((200..=299, text)) => {
                let spans: Vec<Span> = json_values(&text)
                    .iter()
                    .flat_map(|v| {
                        let rs = v.get("result").unwrap_or(v);
                        spans_from_otlp_json(&rs["resourceSpans"])
                    })
                    .collect();
                if spans.is_empty() {
                    Lookup::Absent(format!("{v3_shown} answered without spans"))
                } else {
                    Lookup::Found(Trace { spans })
                }
            }
            Ok((404, _)) => {
                let legacy = self.base.join(&["api", "traces", trace_id]);
                let legacy_shown = redact::url(legacy.as_str());
                match http.get(legacy, &[]).await {
                    Ok((200..=299, body)) => match serde_json::from_str::<Value>(&body) {
                        Ok(body) => {
                            let spans = legacy_spans(&body);
                            if spans.is_empty() {
                                Lookup::Absent(format!(
                                    "{v3_shown} and {legacy_shown}: trace not found"
                                ))
                            } else {
                                Lookup::Found(Trace { spans })
                            }
                        }
                        Err(e) => Lookup::Failed(StoreError::Unreadable {
                            url: legacy_shown,
                            why: e.to_string(),
                        }),
                    },
                    Ok(_) => {
                        Lookup::Absent(format!("{v3_shown} and {legacy_shown}: trace not found"))
                    }
                    Err(e) => Lookup::Failed(e),
                }
            }
            Ok((status, body)) => Lookup::Failed(status_error(v3_shown, status, &body)),
            Err(e) => Lookup::Failed(e),
        }
    }

    /// Jaeger's search is by service and tags, not checked by `obs verify`.
    fn search_query(&self, _run_id: &str) -> Option<String> {
        None
    }

    async fn search(
        &self,
        _http: &Http,
        _query: &str,
        _trace_id: &str,
        _window: Window,
    ) -> Result<bool, StoreError> {
        Ok(false)
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
                end_ns: u128::from(start_us.saturating_add(duration_us)) * 1000,
            });
        }
    }
    spans
}
