//! Loki 3: log lines of a trace through `query_range` (log queries need `query_range`; `query`
//! answers 400 for them). With native OTLP ingestion, `service.name` is the index label
//! `service_name` and `trace_id` is structured metadata.

use serde_json::Value;

use super::{Http, Readiness, StoreError, StoreUrl};

/// One log line Loki returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Stream labels and structured metadata, as Loki returns them together.
    pub fields: serde_json::Map<String, Value>,
    /// The log line.
    pub line: String,
}

/// A Loki read path.
#[derive(Clone, Debug)]
pub struct Loki {
    base: StoreUrl,
}

impl Loki {
    /// Loki at `base` (`http://loki:3100`, or below a path prefix).
    pub fn new(base: StoreUrl) -> Self {
        Self { base }
    }

    /// Where it is (redacted).
    pub fn base(&self) -> &StoreUrl {
        &self.base
    }

    /// `/ready`: 503 "Ingester not ready" for ~15 s after start.
    pub async fn ready(&self, http: &Http) -> Readiness {
        http.readiness(self.base.join(&["ready"])).await
    }

    /// Runs a LogQL log query over `[start_ns, end_ns]`.
    pub async fn query_range(
        &self,
        http: &Http,
        logql: &str,
        start_ns: u128,
        end_ns: u128,
    ) -> Result<Vec<Line>, StoreError> {
        let (start, end) = (start_ns.to_string(), end_ns.to_string());
        let body = http
            .get_json(
                self.base.join(&["loki", "api", "v1", "query_range"]),
                &[
                    ("query", logql),
                    ("start", &start),
                    ("end", &end),
                    ("limit", "100"),
                    ("direction", "forward"),
                ],
            )
            .await?;
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
}
