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

/// Injected failures (`ORDERS_FAULT_RATIO`): this share of lookups answers 503, spread evenly
/// (a ratio of 0.25 fails every fourth request), so alerts can be proven to fire.
#[derive(Debug, Default)]
pub struct Faults {
    ratio: f64,
    requests: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// Fails `ratio` of the requests (clamped to 0..=1; NaN is 0).
    pub fn new(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Self {
            ratio,
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Reads `ORDERS_FAULT_RATIO` (unset: no faults).
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("ORDERS_FAULT_RATIO") {
            Err(_) => Ok(Self::default()),
            Ok(v) => {
                let ratio: f64 = v.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "ORDERS_FAULT_RATIO={v:?} is not a number from 0 to 1 (e.g. 0.25)"
                    )
                })?;
                anyhow::ensure!(
                    (0.0..=1.0).contains(&ratio),
                    "ORDERS_FAULT_RATIO={v:?} is not a number from 0 to 1 (e.g. 0.25)"
                );
                Ok(Self::new(ratio))
            }
        }
    }

    /// True when this request is one to fail.
    fn fail_next(&self) -> bool {
        if self.ratio <= 0.0 {
            return false;
        }
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed) as f64;
        ((n + 1.0) * self.ratio).floor() > (n * self.ratio).floor()
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

#[derive(Clone, Debug)]
struct AppState {
    events: Events,
    faults: std::sync::Arc<Faults>,
}

async fn get_order(
    State(AppState { events, faults }): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Order>, (StatusCode, String)> {
    tracing::info!(order.id = id, "order looked up");
    if faults.fail_next() {
        tracing::error!(order.id = id, "injected fault (ORDERS_FAULT_RATIO)");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "injected fault (ORDERS_FAULT_RATIO)".to_string(),
        ));
    }
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

fn routes(events: Events, faults: Faults) -> axum::Router {
    axum::Router::new()
        .route("/orders/{id}", get(get_order))
        .with_state(AppState {
            events,
            faults: std::sync::Arc::new(faults),
        })
}

/// The service's routes, instrumented, with `/metrics` and `/healthz`.
pub fn router(events: Events) -> axum::Router {
    router_with_faults(events, Faults::default())
}

/// [`router`], failing as `faults` says.
pub fn router_with_faults(events: Events, faults: Faults) -> axum::Router {
    routes(events, faults)
        .merge(platform_telemetry::endpoints())
        .layer(platform_telemetry::http::server_layer())
}

/// The same routes for a non-global telemetry instance (several services in one process).
pub fn router_for(events: Events, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    routes(events, Faults::default())
        .merge(telemetry.endpoints())
        .layer(platform_telemetry::http::ServerLayer::for_telemetry(
            telemetry,
        ))
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
/// channel that nobody consumes), `ORDERS_FAULT_RATIO` (unset: none; `0.25` answers every fourth
/// lookup 503, to prove alerts fire), plus the `OTEL_*` variables.
///
/// Installs telemetry globally (the guard flushes when this returns) and serves until SIGINT or
/// SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    use anyhow::Context as _;

    let _telemetry = platform_telemetry::builder!().init()?;
    let faults = crate::Faults::from_env()?;
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
    tracing::info!(server.port = port, "orders listening");
    axum::serve(listener, crate::router_with_faults(events, faults))
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod fault_tests {
    use super::Faults;

    #[test]
    fn a_fault_ratio_fails_that_share_of_requests_evenly() {
        let quarter = Faults::new(0.25);
        let failed: Vec<bool> = (0..8).map(|_| quarter.fail_next()).collect();
        assert_eq!(
            failed,
            [false, false, false, true, false, false, false, true]
        );
        let all = Faults::new(1.0);
        assert!((0..10).all(|_| all.fail_next()));
        let none = Faults::new(f64::NAN);
        assert!((0..10).all(|_| !none.fail_next()));
    }
}
