//! `GET /metrics` (Prometheus text, OpenMetrics when the scraper asks for it) and `GET /healthz`.
//! The server layer neither traces nor measures them.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::{Telemetry, global};

/// The endpoints for the global instance; merge them into your router. `/metrics` answers 503
/// until [`init()`](crate::init) has run.
///
/// ```
/// # #[cfg(feature = "http-server")] {
/// let app: axum::Router = axum::Router::new().merge(platform_telemetry::endpoints());
/// # }
/// ```
pub fn endpoints<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes(None)
}

impl Telemetry {
    /// The endpoints for this instance; merge them into your router.
    pub fn endpoints<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        routes(Some(self.clone()))
    }
}

fn routes<S: Clone + Send + Sync + 'static>(telemetry: Option<Telemetry>) -> Router<S> {
    Router::new()
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let telemetry = telemetry.clone().or_else(global);
                async move { metrics(telemetry, &headers) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
}

fn metrics(telemetry: Option<Telemetry>, headers: &HeaderMap) -> Response {
    let Some(telemetry) = telemetry else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "telemetry is not initialized: call platform_telemetry::init() first\n",
        )
            .into_response();
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let scrape = telemetry.scrape_metrics(accept);
    ([(header::CONTENT_TYPE, scrape.content_type)], scrape.body).into_response()
}
