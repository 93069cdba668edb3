//! Tempo (3.x, and 2.x through the v1 fallback): trace by id and TraceQL search.
//!
//! Traps, from recorded answers: `/api/v2/traces/{id}` answers **200 with an empty trace** when
//! the trace is absent (judge the body), ids come as base64, and search returns trace ids with
//! their **leading zeros stripped**.

use serde_json::Value;

use super::{
    Backend, Http, Lookup, Readiness, StoreError, StoreUrl, Trace, TraceStore, Window,
    normalize_id, spans_from_otlp_json, status_error,
};
use crate::redact;

/// A Tempo query frontend.
#[derive(Clone, Debug)]
pub struct Tempo {
    base: StoreUrl,
}

impl Tempo {
    /// Tempo at `base` (`http://tempo:3200`, or below a path prefix).
    pub fn new(base: StoreUrl) -> Self {
        Self { base }
    }

    /// Where it is (redacted).
    pub fn base(&self) -> &StoreUrl {
        &self.base
    }
}

fn found_or_absent(spans: Vec<super::Span>, url: &str) -> Lookup {
    if spans.is_empty() {
        Lookup::Absent(format!("{url} answered without the trace"))
    } else {
        Lookup::Found(Trace { spans })
    }
}

fn parse(url: &str, body: &str) -> Result<Value, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Unreadable {
        url: url.to_string(),
        why: e.to_string(),
    })
}

impl TraceStore for Tempo {
    fn backend(&self) -> Backend {
        Backend::Tempo
    }

    /// `/ready`: 503 while starting.
    async fn ready(&self, http: &Http) -> Readiness {
        http.readiness(self.base.join(&["ready"])).await
    }

    /// `/api/v2/traces/{id}`, falling back to `/api/traces/{id}` on 404 (Tempo 2).
    async fn trace(&self, http: &Http, trace_id: &str) -> Lookup {
        let v2 = self.base.join(&["api", "v2", "traces", trace_id]);
        let v2_shown = redact::url(v2.as_str());
        match http.get(v2, &[]).await {
            Ok((200..=299, body)) => match parse(&v2_shown, &body) {
                Ok(body) => found_or_absent(
                    spans_from_otlp_json(&body["trace"]["resourceSpans"]),
                    &v2_shown,
                ),
                Err(e) => Lookup::Failed(e),
            },
            Ok((404, _)) => {
                let v1 = self.base.join(&["api", "traces", trace_id]);
                let v1_shown = redact::url(v1.as_str());
                match http.get(v1, &[]).await {
                    Ok((404, _)) => Lookup::Absent(format!("{v1_shown} answered 404")),
                    Ok((200..=299, body)) => match parse(&v1_shown, &body) {
                        Ok(body) => {
                            found_or_absent(spans_from_otlp_json(&body["batches"]), &v1_shown)
                        }
                        Err(e) => Lookup::Failed(e),
                    },
                    Ok((status, body)) => Lookup::Failed(status_error(v1_shown, status, &body)),
                    Err(e) => Lookup::Failed(e),
                }
            }
            Ok((status, body)) => Lookup::Failed(status_error(v2_shown, status, &body)),
            Err(e) => Lookup::Failed(e),
        }
    }

    fn search_query(&self, run_id: &str) -> Option<String> {
        Some(format!("{{ span.obs.probe.run = \"{run_id}\" }}"))
    }

    /// `/api/search` with TraceQL (ids compared as 32 hex digits: Tempo strips leading zeros).
    async fn search(
        &self,
        http: &Http,
        query: &str,
        trace_id: &str,
        window: Window,
    ) -> Result<bool, StoreError> {
        let (start, end) = (window.start_s.to_string(), window.end_s.to_string());
        let body = http
            .get_json(
                self.base.join(&["api", "search"]),
                &[
                    ("q", query),
                    ("start", &start),
                    ("end", &end),
                    ("limit", "50"),
                ],
            )
            .await?;
        Ok(body["traces"].as_array().into_iter().flatten().any(|t| {
            t["traceID"]
                .as_str()
                .and_then(|i| normalize_id(i, 32))
                .as_deref()
                == Some(trace_id)
        }))
    }
}
