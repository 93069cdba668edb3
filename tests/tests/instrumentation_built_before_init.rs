#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `server_layer()` and `client()` built before `init()` (as a router is often assembled before
//! telemetry starts): requests before `init()` pass through unrecorded, requests after it are
//! traced and measured. Its own test binary, because the point is the global instance.

use axum::Router;
use axum::routing::get;

/// The sum of the samples of `series` (a `_count` of a histogram) in a Prometheus text scrape.
fn sample_sum(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_and_a_client_built_before_init_record_once_telemetry_is_installed() {
    let layer = platform_telemetry::http::server_layer();
    let client = platform_telemetry::http::client();
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let before = client.get(format!("{base}/orders/1")).send().await.unwrap();
    assert_eq!(before.status(), 200, "before init() requests pass through");

    let guard = platform_telemetry::builder()
        .service_name("built-early")
        .env_vars([
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
        ])
        .log_writer(std::io::sink)
        .init()
        .unwrap();
    for id in 2..5 {
        let after = client
            .get(format!("{base}/orders/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 200);
    }

    let scrape = guard.telemetry().scrape_metrics(None).body;
    assert_eq!(
        sample_sum(&scrape, "http_client_request_duration_seconds_count"),
        3.0,
        "the client measures the 3 requests sent after init(), not the one before:\n{scrape}"
    );
    assert_eq!(
        sample_sum(&scrape, "http_server_request_duration_seconds_count"),
        3.0,
        "the layer measures the 3 requests served after init():\n{scrape}"
    );
    guard.shutdown().unwrap();
}
