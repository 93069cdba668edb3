//! Prometheus: instant queries and exemplars through the HTTP API.

use serde_json::Value;

use super::{Http, Readiness, StoreError, StoreUrl};
use crate::redact;

/// Labels of one series.
pub type Labels = serde_json::Map<String, Value>;

/// A Prometheus server.
#[derive(Clone, Debug)]
pub struct Prometheus {
    base: StoreUrl,
}

impl Prometheus {
    /// Prometheus at `base` (`http://prometheus:9090`, or below a path prefix).
    pub fn new(base: StoreUrl) -> Self {
        Self { base }
    }

    /// Where it is (redacted).
    pub fn base(&self) -> &StoreUrl {
        &self.base
    }

    /// `/-/ready`; where that is 404, `/api/v1/status/buildinfo`: Prometheus-compatible stores
    /// such as Mimir serve the Prometheus API below a prefix (`http://mimir/prometheus`) with
    /// their readiness elsewhere (`/ready` at the root).
    pub async fn ready(&self, http: &Http) -> Readiness {
        match http.readiness(self.base.join(&["-", "ready"])).await {
            Readiness::NotReady(StoreError::Status { status: 404, .. }) => {
                http.readiness(self.base.join(&["api", "v1", "status", "buildinfo"]))
                    .await
            }
            other => other,
        }
    }

    /// The `data` of an API answer; `status: error` answers are errors with their message.
    async fn api(
        &self,
        http: &Http,
        endpoint: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, StoreError> {
        let url = self.base.join(&["api", "v1", endpoint]);
        let shown = redact::url(url.as_str());
        let (status, text) = http.get(url, query).await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !(200..300).contains(&status) || body["status"] != "success" {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message");
            return Err(StoreError::Status {
                url: shown,
                status,
                body: redact::text(message),
            });
        }
        Ok(body["data"].clone())
    }

    /// An instant vector query: each series' labels and value.
    pub async fn query(&self, http: &Http, promql: &str) -> Result<Vec<(Labels, f64)>, StoreError> {
        let data = self.api(http, "query", &[("query", promql)]).await?;
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["metric"].as_object().cloned().unwrap_or_default(),
                    s["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect())
    }

    /// Exemplar label sets for `promql` between two Unix times (seconds).
    pub async fn exemplars(
        &self,
        http: &Http,
        promql: &str,
        start_s: f64,
        end_s: f64,
    ) -> Result<Vec<Labels>, StoreError> {
        let (start, end) = (start_s.to_string(), end_s.to_string());
        let data = self
            .api(
                http,
                "query_exemplars",
                &[("query", promql), ("start", &start), ("end", &end)],
            )
            .await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["labels"].as_object().cloned())
            .collect())
    }
}

/// One rule as `/api/v1/rules` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHealth {
    /// The group's file.
    pub file: String,
    /// The alert or the recorded series.
    pub name: String,
    /// `ok`, `err` or `unknown` (not evaluated yet).
    pub health: String,
    /// The last evaluation error, if any.
    pub last_error: Option<String>,
}

impl Prometheus {
    /// Every loaded rule with its health (`/api/v1/rules`).
    pub async fn rules(&self, http: &Http) -> Result<Vec<RuleHealth>, StoreError> {
        let data = self.api(http, "rules", &[]).await?;
        let mut rules = Vec::new();
        for group in data["groups"].as_array().into_iter().flatten() {
            let file = group["file"].as_str().unwrap_or_default().to_string();
            for rule in group["rules"].as_array().into_iter().flatten() {
                rules.push(RuleHealth {
                    file: file.clone(),
                    name: rule["name"].as_str().unwrap_or_default().to_string(),
                    health: rule["health"].as_str().unwrap_or_default().to_string(),
                    last_error: rule["lastError"]
                        .as_str()
                        .filter(|e| !e.is_empty())
                        .map(redact::text),
                });
            }
        }
        Ok(rules)
    }

    /// The Alertmanagers Prometheus sends to (`/api/v1/alertmanagers`, active ones), redacted.
    pub async fn active_alertmanagers(&self, http: &Http) -> Result<Vec<String>, StoreError> {
        let data = self.api(http, "alertmanagers", &[]).await?;
        Ok(data["activeAlertmanagers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["url"].as_str().map(redact::url))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::StoreUrl;

    #[tokio::test]
    async fn a_store_without_prometheus_readiness_is_ready_when_its_api_answers() {
        // Like Mimir: the Prometheus API below /prometheus, no /prometheus/-/ready.
        let app = axum::Router::new().route(
            "/prometheus/api/v1/status/buildinfo",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"status": "success", "data": {"version": "2.x"}}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = Http::new(std::time::Duration::from_secs(5)).unwrap();
        let mimir = Prometheus::new(
            StoreUrl::parse("--prometheus", &format!("http://{address}/prometheus"), "").unwrap(),
        );
        assert_eq!(mimir.ready(&http).await, Readiness::Ready);
        let nothing = Prometheus::new(
            StoreUrl::parse("--prometheus", &format!("http://{address}/nothing"), "").unwrap(),
        );
        assert!(matches!(nothing.ready(&http).await, Readiness::NotReady(_)));
    }
}
