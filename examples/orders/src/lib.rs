//! `orders`: answers `GET /orders/{id}` and publishes an `order.viewed` event for each lookup.
//!
//! The event carries the trace context in its headers, so the worker that consumes it continues
//! the same trace. It goes over NATS when `NATS_URL` is set, else over an in-process channel
//! carrying the same headers.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use platform_telemetry::propagation::{MessageHeaders, producer_span};
use serde::{Deserialize, Serialize};

/// The subject (topic) events are published on.
pub const SUBJECT: &str = "orders.viewed";

/// The event the worker consumes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderViewed {
    /// The order looked up.
    pub order_id: u64,
}

/// A message as it crosses the hop: headers (with `traceparent`) and a JSON payload.
#[derive(Clone, Debug)]
pub struct Message {
    /// Header name to value.
    pub headers: HashMap<String, String>,
    /// The serialized event.
    pub payload: Vec<u8>,
}

/// NATS headers, made a propagation carrier: this is all a messaging client needs.
#[derive(Debug, Default)]
pub struct NatsHeaders(pub async_nats::HeaderMap);

impl MessageHeaders for NatsHeaders {
    fn header(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn set_header(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
    fn header_keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Where events go.
#[derive(Clone, Debug)]
pub enum Events {
    /// A NATS connection.
    Nats(async_nats::Client),
    /// An in-process channel (no broker).
    Channel(tokio::sync::mpsc::Sender<Message>),
}

impl Events {
    /// Publishes `event` inside a PRODUCER span whose context travels in the headers.
    pub async fn publish(&self, event: &OrderViewed) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(event)?;
        match self {
            Events::Nats(client) => {
                let mut headers = NatsHeaders::default();
                let span = producer_span("nats", SUBJECT, &mut headers);
                let published = span
                    .wrap(async {
                        client
                            .publish_with_headers(SUBJECT, headers.0, payload.into())
                            .await?;
                        client.flush().await?;
                        anyhow::Ok(())
                    })
                    .await;
                if published.is_err() {
                    span.set_error("publish_failed");
                }
                published
            }
            Events::Channel(sender) => {
                let mut headers = HashMap::new();
                let span = producer_span("in_process", SUBJECT, &mut headers);
                let sent = span.in_scope(|| sender.try_send(Message { headers, payload }));
                sent.map_err(|e| {
                    span.set_error("channel_full");
                    anyhow::anyhow!("in-process event channel: {e}")
                })
            }
        }
    }
}

/// The order the service returns.
#[derive(Debug, Serialize)]
pub struct Order {
    id: u64,
    status: &'static str,
}

async fn get_order(
    State(events): State<Events>,
    Path(id): Path<u64>,
) -> Result<Json<Order>, (StatusCode, String)> {
    tracing::info!(order.id = id, "order looked up");
    if let Err(error) = events.publish(&OrderViewed { order_id: id }).await {
        tracing::error!(%error, "could not publish order.viewed");
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("event not published: {error}"),
        ));
    }
    Ok(Json(Order {
        id,
        status: "shipped",
    }))
}

fn routes(events: Events) -> axum::Router {
    axum::Router::new()
        .route("/orders/{id}", get(get_order))
        .with_state(events)
}

/// The service's routes, instrumented, with `/metrics` and `/healthz`.
pub fn router(events: Events) -> axum::Router {
    routes(events)
        .merge(platform_telemetry::endpoints())
        .layer(platform_telemetry::http::server_layer())
}

/// The same routes for a non-global telemetry instance (several services in one process).
pub fn router_for(events: Events, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    routes(events).merge(telemetry.endpoints()).layer(
        platform_telemetry::http::ServerLayer::for_telemetry(telemetry),
    )
}

/// Resolves on SIGINT or SIGTERM (what `docker stop` sends), so `main` returns and the telemetry
/// guard flushes.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `orders` service. Env: `ORDERS_PORT` (8081), `NATS_URL` (unset: events go to an in-process
/// channel that nobody consumes), plus the `OTEL_*` variables.
///
/// Installs telemetry globally (the guard flushes when this returns) and serves until SIGINT or
/// SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    use anyhow::Context as _;

    let _telemetry = platform_telemetry::builder!().init()?;
    let port: u16 = std::env::var("ORDERS_PORT")
        .ok()
        .map(|p| p.parse().context("ORDERS_PORT must be a port number"))
        .transpose()?
        .unwrap_or(8081);
    let events = match std::env::var("NATS_URL") {
        Ok(url) => crate::Events::Nats(
            async_nats::connect(&url)
                .await
                .with_context(|| format!("cannot connect to NATS at NATS_URL={url}"))?,
        ),
        Err(_) => {
            tracing::warn!("NATS_URL is unset: events go over an in-process channel to nowhere");
            let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(async move { while receiver.recv().await.is_some() {} });
            crate::Events::Channel(sender)
        }
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port} (ORDERS_PORT)"))?;
    tracing::info!(port, "orders listening");
    axum::serve(listener, crate::router(events))
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    Ok(())
}
