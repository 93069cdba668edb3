//! The library's error type.

use std::time::Duration;

/// What can go wrong when building, installing or shutting down telemetry.
///
/// Configuration mistakes in `OTEL_*` variables are *not* errors: they are reported once as
/// [`ConfigWarning`](crate::ConfigWarning)s and the default is used, so a typo in a deployment
/// never takes a service down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `init()` was called while another instance is installed globally.
    #[error(
        "telemetry is already installed globally (init() was called twice); keep the first guard, \
         or use builder().build() for a second, non-global instance"
    )]
    AlreadyInitialized,
    /// `init()` was called after the global instance was shut down. A process installs global
    /// telemetry once: the `tracing` subscriber and the OpenTelemetry globals cannot be
    /// replaced.
    #[error(
        "telemetry was installed and then shut down in this process (its guard was dropped, or \
         shutdown() was called), and global telemetry cannot be installed twice; keep the guard \
         for the whole of main (`let _telemetry = init()?;`, not `let _ = init()`), or use \
         builder().build() for instances you create and shut down yourself"
    )]
    AlreadyShutDown,
    /// Another `tracing` subscriber was installed globally before `init()`.
    #[error(
        "a global tracing subscriber is already set by someone else; call platform_telemetry::init() \
         before any other tracing subscriber is installed, or use builder().build() and its subscriber()"
    )]
    SubscriberAlreadySet,
    /// An OTLP exporter could not be built (for example a TLS certificate that cannot be used).
    #[error("cannot build the OTLP {signal} exporter for {endpoint}")]
    Exporter {
        /// `traces`, `logs` or `metrics`.
        signal: &'static str,
        /// The endpoint the exporter was configured for.
        endpoint: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The background runtime that drives exports could not be started.
    #[error("cannot start the telemetry export runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Shutdown or flush did not complete within its bound; whatever was not exported is lost.
    #[error("telemetry {what} did not complete within {timeout:?}: {pending}")]
    Timeout {
        /// `shutdown` or `flush`.
        what: &'static str,
        /// The bound that was applied.
        timeout: Duration,
        /// Which signals were still pending.
        pending: String,
    },
    /// Flush or shutdown finished, but a signal reported a failure (for example the endpoint
    /// refused the data).
    #[error("telemetry {what} failed: {details}")]
    Export {
        /// `shutdown` or `flush`.
        what: &'static str,
        /// One entry per failing signal.
        details: String,
    },
}
