//! Process and tokio runtime metrics, registered on the instance's meter when it is built
//! (`OTEL_RUST_RUNTIME_METRICS=false` or [`Builder::runtime_metrics`](crate::Builder::runtime_metrics)
//! turn them off).
//!
//! Every instrument is observable: the values are read when the metrics are (a `/metrics` scrape
//! or an OTLP export), never on a timer, so an instance nobody reads costs nothing.
//!
//! - Process ([`process`], Linux only, nothing registered elsewhere): `process.cpu.time`,
//!   `process.memory.usage`, `process.memory.virtual`, `process.thread.count` and
//!   `process.unix.file_descriptor.count`, the semantic conventions' names and units, read from
//!   `/proc/self` with bounded reads. A read that fails skips that observation.
//! - Tokio ([`tokio_runtime`]): the runtime current when the instance is built, through tokio's
//!   stable `RuntimeMetrics` (no `tokio_unstable`): `tokio.workers`, `tokio.alive_tasks`,
//!   `tokio.global_queue_depth` and `tokio.worker.busy_duration` per worker. Outside a runtime,
//!   nothing is registered.

use opentelemetry::metrics::Meter;

mod process;
#[cfg(target_os = "linux")]
mod procfs;
mod tokio_runtime;

/// Registers the process metrics and, when built inside a tokio runtime, that runtime's.
pub(crate) fn register(meter: &Meter) {
    process::register(meter);
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        tokio_runtime::register(meter, &handle);
    }
}
