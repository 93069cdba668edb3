//! # platform-telemetry
//!
//! One call gives a Rust service traces, logs and metrics on OpenTelemetry:
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let _telemetry = platform_telemetry::init()?; // reads OTEL_*; the guard flushes on drop
//!     tracing::info!(order_id = 42, "service started"); // stdout JSON + OTLP log record
//!     Ok(())
//! }
//! ```
//!
//! - **Traces**: `tracing` spans become OTLP spans (batch export, sampler from
//!   `OTEL_TRACES_SAMPLER`).
//! - **Logs**: `tracing` events are written to stdout (JSON when stdout is not a terminal) and
//!   exported as OTLP log records; inside a span both carry `trace_id` and `span_id`.
//! - **Metrics**: instruments from [`Telemetry::meter`] are served in the Prometheus formats by
//!   [`Telemetry::scrape_metrics`] and optionally pushed over OTLP.
//! - **Process and runtime metrics**: CPU time, memory, threads and file descriptors of the
//!   process (semantic-convention names, Linux) and the tokio runtime's workers, busy time,
//!   global queue depth and alive tasks, read on each scrape or export; off with
//!   `OTEL_RUST_RUNTIME_METRICS=false` or [`Builder::runtime_metrics`].
//! - **Propagation**: W3C trace context and baggage by default (`OTEL_PROPAGATORS`).
//! - **Never hurts the service**: exports run off the application's runtime, queues are bounded
//!   and every dropped item is counted ([`Telemetry::pipeline_stats`], and
//!   `otel_sdk_processor_span_processed_total{error_type="queue_full"}` on `/metrics`), shutdown
//!   is bounded, and a malformed `OTEL_*` value is a warning, never a failure.
//!
//! Configuration comes from the standard `OTEL_*` environment variables first and the
//! [`Builder`] second; see the README for the full table.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod config;
pub mod db;
#[cfg(feature = "http-server")]
mod endpoints;
mod error;
mod exporters;
mod files;
pub mod http;
mod limits;
mod logs;
pub mod messaging;
mod metrics;
mod pipeline;
pub mod propagation;
pub mod redact;
mod resource;
mod runtime_metrics;
mod semconv;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod traces;

pub use config::{ConfigWarning, LogFormat, Protocol};
#[cfg(feature = "http-server")]
pub use endpoints::endpoints;
pub use error::Error;
pub use pipeline::{PipelineStats, SignalStats};
pub use semconv::SCHEMA_URL;
pub use telemetry::{
    Builder, DEFAULT_SHUTDOWN_TIMEOUT, MetricsScrape, Telemetry, TelemetryGuard, global,
};

/// Builds telemetry from the environment and installs it globally. Equivalent to
/// `builder().init()`.
///
/// Returns an error (never panics) if telemetry or another `tracing` subscriber is already
/// installed, or if telemetry was installed and shut down before. Keep the guard alive for the
/// life of the program: dropping it shuts telemetry down, and what is emitted after that is
/// dropped and counted ([`SignalStats::dropped_after_shutdown`]). The compiler warns about a
/// result left unused:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn main() {
///     platform_telemetry::init(); // error: unused `Result` that must be used
/// }
/// ```
///
/// `let _ = init()` is the one form no compiler lint catches: it drops the guard at once. The
/// first span or log record after that is a warning that says so.
#[must_use = "dropping the guard shuts telemetry down at once; bind it: `let _telemetry = init()?;`"]
pub fn init() -> Result<TelemetryGuard, Error> {
    builder().init()
}

/// A [`Builder`] for code that must decide part of the configuration.
///
/// ```
/// let builder = platform_telemetry::builder().service_name("orders");
/// # drop(builder);
/// ```
pub fn builder() -> Builder {
    Builder::default()
}

/// A [`Builder`] whose `service.name` and `service.version` default to the calling crate's
/// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION` (the environment still overrides them).
///
/// ```
/// let builder = platform_telemetry::builder!();
/// # drop(builder);
/// ```
#[macro_export]
macro_rules! builder {
    () => {
        $crate::builder()
            .service_name(env!("CARGO_PKG_NAME"))
            .service_version(env!("CARGO_PKG_VERSION"))
    };
}
