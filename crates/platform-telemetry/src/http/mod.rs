//! HTTP instrumentation following the OpenTelemetry HTTP semantic conventions: a tower layer
//! for axum servers (feature `http-server`) and a reqwest client (feature `http-client`).
//!
//! ```
//! # #[cfg(all(feature = "http-server", feature = "http-client"))] {
//! async fn get_order() -> &'static str { "order" }
//!
//! let app: axum::Router = axum::Router::new()
//!     .route("/orders/{id}", axum::routing::get(get_order))
//!     .merge(platform_telemetry::endpoints())            // GET /metrics, GET /healthz
//!     .layer(platform_telemetry::http::server_layer());   // spans + RED metrics + context
//! let client = platform_telemetry::http::client();       // propagates context, measured
//! # drop((app, client));
//! # }
//! ```

#[cfg(feature = "http-client")]
pub mod client;
#[cfg(feature = "http-server")]
pub mod server;

#[cfg(feature = "http-client")]
pub use client::{TracingMiddleware, client, client_for};
#[cfg(feature = "http-server")]
pub use server::{RequestSpan, ResponseFuture, ServerLayer, ServerService, server_layer};

/// Bucket boundaries (seconds) the semantic conventions give for HTTP durations.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[cfg_attr(not(feature = "http-server"), allow(dead_code))]
/// Every value [`method_name`] returns.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];

#[cfg_attr(
    not(any(feature = "http-server", feature = "http-client")),
    allow(dead_code)
)]
/// The method as the semantic conventions record it: known methods as is, others `_OTHER`.
pub(crate) fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[cfg_attr(not(feature = "http-server"), allow(dead_code))]
/// `network.protocol.version` for an HTTP version.
pub(crate) fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "unknown",
    }
}
