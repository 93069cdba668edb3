//! Prometheus: instant queries and exemplars through the HTTP API.

use serde_json::Value;

use super::{Readiness, readiness, transport_error};

/// Prometheus's readiness (`/-/ready`).
pub async fn ready(client: &reqwest::Client, base: &str) -> Readiness {
    readiness(client, &format!("{}/-/ready", base.trim_end_matches('/'))).await
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, String)],
) -> Result<Value, String> {
    let response = client
        .get(url)
        .query(query)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", transport_error(&e)))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() || body["status"] != "success" {
        return Err(format!(
            "{url} answered {status}: {}",
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message")
        ));
    }
    Ok(body["data"].clone())
}

/// An instant vector query: each series' labels and value.
pub async fn query(
    client: &reqwest::Client,
    base: &str,
    promql: &str,
) -> Result<Vec<(serde_json::Map<String, Value>, f64)>, String> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let data = get(client, &url, &[("query", promql.to_string())]).await?;
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
    client: &reqwest::Client,
    base: &str,
    promql: &str,
    start_s: f64,
    end_s: f64,
) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let url = format!("{}/api/v1/query_exemplars", base.trim_end_matches('/'));
    let data = get(
        client,
        &url,
        &[
            ("query", promql.to_string()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
        ],
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
