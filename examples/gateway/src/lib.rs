//! `gateway`: the public entry point. `GET /orders/{id}` calls the orders service over HTTP;
//! the traced client carries the trace to it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

/// Where the orders service is, and the client that calls it.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Base URL of the orders service, e.g. `http://orders:8081`.
    pub orders_url: String,
    /// The traced client.
    pub client: reqwest_middleware::ClientWithMiddleware,
}

async fn get_order(
    State(upstream): State<Upstream>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    tracing::info!(order.id = id, "fetching order from orders");
    let url = format!("{}/orders/{id}", upstream.orders_url.trim_end_matches('/'));
    let bad_gateway = |e: String| (StatusCode::BAD_GATEWAY, e);
    let response = upstream
        .client
        .get(&url)
        .send()
        .await
        .map_err(|e| bad_gateway(format!("GET {url}: {e}")))?;
    if response.status() == StatusCode::NOT_FOUND {
        return Err((StatusCode::NOT_FOUND, format!("no order {id}")));
    }
    if !response.status().is_success() {
        return Err(bad_gateway(format!("GET {url}: {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| bad_gateway(format!("GET {url}: {e}")))?;
    let order: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| bad_gateway(format!("GET {url}: not JSON: {e}")))?;
    Ok(Json(
        serde_json::json!({ "order": order, "via": "gateway" }),
    ))
}

fn routes(upstream: Upstream) -> axum::Router {
    axum::Router::new()
        .route("/orders/{id}", get(get_order))
        .with_state(upstream)
}

/// The service's routes, instrumented, with `/metrics` and `/healthz`.
pub fn router(upstream: Upstream) -> axum::Router {
    routes(upstream)
        .merge(platform_telemetry::endpoints())
        .layer(platform_telemetry::http::server_layer())
}

/// The same routes for a non-global telemetry instance (several services in one process); the
/// upstream client should come from [`Upstream::for_telemetry`].
pub fn router_for(upstream: Upstream, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    routes(upstream).merge(telemetry.endpoints()).layer(
        platform_telemetry::http::ServerLayer::for_telemetry(telemetry),
    )
}

impl Upstream {
    /// An upstream whose client reports to a non-global instance.
    pub fn for_telemetry(orders_url: String, telemetry: &platform_telemetry::Telemetry) -> Self {
        let client = platform_telemetry::http::client_for(telemetry);
        Self { orders_url, client }
    }
}

/// `gateway` service. Env: `GATEWAY_PORT` (8080), `ORDERS_URL` (`http://127.0.0.1:8081`),
/// plus the `OTEL_*` variables.
///
/// Installs telemetry globally (the guard flushes when this returns) and serves until SIGINT or
/// SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    use anyhow::Context as _;

    let _telemetry = platform_telemetry::builder!().init()?;
    let port: u16 = std::env::var("GATEWAY_PORT")
        .ok()
        .map(|p| p.parse().context("GATEWAY_PORT must be a port number"))
        .transpose()?
        .unwrap_or(8080);
    let upstream = crate::Upstream {
        orders_url: std::env::var("ORDERS_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into()),
        client: platform_telemetry::http::client(),
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port} (GATEWAY_PORT)"))?;
    tracing::info!(server.port = port, url.full = %upstream.orders_url, "gateway listening");
    axum::serve(listener, crate::router(upstream))
        .with_graceful_shutdown(orders::shutdown_signal())
        .await?;
    Ok(())
}
