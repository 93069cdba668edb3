//! The smallest service using `platform_telemetry::init()`.
//!
//! ```text
//! cargo run -p quickstart                                  # JSON logs on stdout; OTLP to localhost:4318
//! OTEL_SDK_DISABLED=true cargo run -p quickstart           # logs only
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 cargo run -p quickstart
//! ```

use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Reads OTEL_* (and RUST_LOG, LOG_FORMAT); the guard flushes every signal when dropped.
    let telemetry = platform_telemetry::builder!().init()?;
    tracing::info!(service = telemetry.service_name(), "service started");

    let orders = telemetry
        .meter("quickstart")
        .u64_counter("orders.placed")
        .with_description("Orders placed")
        .build();

    for order_id in 1..=3u64 {
        place_order(order_id).await;
        orders.add(1, &[]);
    }

    print!("{}", telemetry.scrape_metrics(None).body);
    Ok(())
}

#[tracing::instrument]
async fn place_order(order_id: u64) {
    tracing::info!(order_id, "order placed"); // carries this span's trace_id and span_id
    tokio::time::sleep(Duration::from_millis(5)).await;
}
