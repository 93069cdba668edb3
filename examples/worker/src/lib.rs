//! `worker`: consumes `order.viewed` events and continues each event's trace with a CONSUMER
//! span, from NATS or from an in-process channel.
//!
//! It rejects an order whose id is a multiple of [`REJECTED_EVERY`] (a stand-in for a business
//! rule), so a failing consumer can be seen: the CONSUMER span is an error and the processing
//! is counted as failed (`messaging_process_duration_seconds` and
//! `messaging_client_consumed_messages_total` with `error_type="order_rejected"`).

use futures_util::StreamExt as _;
use orders::{Message, NatsHeaders, OrderViewed, SUBJECT};
use platform_telemetry::propagation::{MessageHeaders, consumer_span};

/// Orders whose id is a multiple of this are rejected (`error.type` `order_rejected`).
pub const REJECTED_EVERY: u64 = 10;

/// How processing one event ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processed {
    /// The order event was handled.
    Done,
    /// The order was rejected by the worker's rule ([`REJECTED_EVERY`]).
    Rejected,
    /// The payload was not an `OrderViewed` event.
    Malformed,
}

/// True for an order the worker rejects.
pub fn rejects(order_id: u64) -> bool {
    order_id.is_multiple_of(REJECTED_EVERY)
}

/// Handles one event inside a CONSUMER span that continues the producer's trace; a rejected or
/// malformed event marks the span and the processing metrics failed.
pub fn handle(system: &'static str, headers: &impl MessageHeaders, payload: &[u8]) -> Processed {
    let span = consumer_span(system, SUBJECT, headers);
    let processed = span.in_scope(|| match serde_json::from_slice::<OrderViewed>(payload) {
        Ok(event) if rejects(event.order_id) => {
            span.set_error("order_rejected");
            tracing::warn!(
                order.id = event.order_id,
                "order rejected (id is a multiple of {REJECTED_EVERY})"
            );
            Processed::Rejected
        }
        Ok(event) => {
            tracing::info!(order.id = event.order_id, "order event processed");
            Processed::Done
        }
        Err(error) => {
            span.set_error("malformed_payload");
            tracing::warn!(%error, "malformed order event skipped");
            Processed::Malformed
        }
    });
    span.end();
    processed
}

/// Consumes from NATS until the subscription ends.
pub async fn consume_nats(mut subscriber: async_nats::Subscriber) {
    while let Some(message) = subscriber.next().await {
        let headers = NatsHeaders(message.headers.unwrap_or_default());
        handle("nats", &headers, &message.payload);
    }
}

/// Consumes from an in-process channel until every sender is gone.
pub async fn consume_channel(mut receiver: tokio::sync::mpsc::Receiver<Message>) {
    while let Some(message) = receiver.recv().await {
        handle("in_process", &message.headers, &message.payload);
    }
}

/// `/metrics` and `/healthz`.
pub fn router() -> axum::Router {
    platform_telemetry::endpoints()
}

/// `/metrics` and `/healthz` of a non-global telemetry instance (several services in one
/// process); run the consumer under `telemetry.subscriber()` so its spans and metrics are this
/// instance's.
pub fn router_for(telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    telemetry.endpoints()
}

/// `worker` service. Env: `WORKER_PORT` (8082, serves /metrics and /healthz), `NATS_URL`
/// (default `nats://127.0.0.1:4222`), plus the `OTEL_*` variables. `/healthz` answers once the
/// subscription is in place.
///
/// Installs telemetry globally (the guard flushes when this returns) and serves until SIGINT or
/// SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    use anyhow::Context as _;

    let _telemetry = platform_telemetry::builder!().init()?;
    let port: u16 = std::env::var("WORKER_PORT")
        .ok()
        .map(|p| p.parse().context("WORKER_PORT must be a port number"))
        .transpose()?
        .unwrap_or(8082);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("cannot connect to NATS at NATS_URL={url}"))?;
    let subscriber = client.subscribe(orders::SUBJECT).await?;
    client.flush().await?;
    tokio::spawn(crate::consume_nats(subscriber));
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port} (WORKER_PORT)"))?;
    tracing::info!(
        server.port = port,
        messaging.destination.name = orders::SUBJECT,
        "worker consuming"
    );
    axum::serve(listener, crate::router())
        .with_graceful_shutdown(orders::shutdown_signal())
        .await?;
    Ok(())
}
