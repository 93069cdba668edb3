#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real Prometheus (the Debian package, started here on a free port with exemplar storage)
//! scrapes an example service's `/metrics`: the RED histogram is queryable with the semantic
//! conventions' labels, and its exemplars carry the trace ids of real requests.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{encode, free_port, http, spawn_example, start_prometheus, wait_ready};

/// Polls a Prometheus API path until `accept` finds what it needs in `data`, or 30 s pass.
async fn poll(prometheus: &str, path: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{prometheus}{path}")).send().await
            && let Ok(body) = response.bytes().await
        {
            last = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if last["status"] == "success" && accept(&last["data"]) {
                return last["data"].clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Prometheus never answered {path} as expected; last answer: {last}");
}

#[tokio::test]
async fn prometheus_queries_the_route_histogram_and_its_exemplars() {
    let orders_port = free_port();
    let orders = spawn_example(
        "orders",
        &[
            ("ORDERS_PORT", &orders_port.to_string()),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    );
    let orders_url = format!("http://127.0.0.1:{orders_port}");
    wait_ready(&format!("{orders_url}/healthz"), &orders).await;

    // OpenMetrics is served when asked for, with exemplars; plain text otherwise.
    let client = http();
    let response = client
        .get(format!("{orders_url}/orders/3"))
        .send()
        .await
        .unwrap();
    let traceresponse = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_string();
    let trace_id = traceresponse.split('-').nth(1).unwrap().to_string();
    let openmetrics = client
        .get(format!("{orders_url}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        openmetrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = openmetrics.text().await.unwrap();
    assert!(text.contains(&format!("trace_id=\"{trace_id}\"")), "{text}");
    assert!(text.ends_with("# EOF\n"));

    let (_prometheus, prometheus, _dir) =
        start_prometheus(&[("orders", format!("127.0.0.1:{orders_port}"))]).await;
    // Requests while Prometheus scrapes, so exemplars land inside the query window.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut trace_ids = vec![trace_id];
    for id in 1..=5 {
        let response = client
            .get(format!("{orders_url}/orders/{id}"))
            .send()
            .await
            .unwrap();
        let value = response.headers()["traceresponse"]
            .to_str()
            .unwrap()
            .to_string();
        trace_ids.push(value.split('-').nth(1).unwrap().to_string());
    }

    let query = r#"http_server_request_duration_seconds_count{http_route="/orders/{id}",http_request_method="GET",http_response_status_code="200"}"#;
    let data = poll(
        &prometheus,
        &format!("/api/v1/query?query={}", encode(query)),
        |d| {
            d["result"]
                .as_array()
                .and_then(|r| r.first())
                .and_then(|s| s["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v >= 6.0)
        },
    )
    .await;
    assert_eq!(data["result"][0]["metric"]["job"], "orders");

    let end = started + 120.0;
    let exemplar_query = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={end}",
        encode(r#"http_server_request_duration_seconds_bucket{http_route="/orders/{id}"}"#),
        started - 120.0
    );
    let data = poll(&prometheus, &exemplar_query, |d| {
        d.as_array().is_some_and(|series| {
            series.iter().any(|s| {
                s["exemplars"].as_array().is_some_and(|e| {
                    e.iter().any(|e| {
                        e["labels"]["trace_id"]
                            .as_str()
                            .is_some_and(|t| trace_ids.iter().any(|id| id == t))
                    })
                })
            })
        })
    })
    .await;
    let exemplar = &data[0]["exemplars"][0]["labels"];
    assert_eq!(exemplar["trace_id"].as_str().map(str::len), Some(32));
    assert_eq!(exemplar["span_id"].as_str().map(str::len), Some(16));
}
