//! One tokio runtime's stable metrics (`RuntimeMetrics`, no `tokio_unstable` needed).
//!
//! There are no semantic conventions for tokio: the names follow the
//! `opentelemetry-instrumentation-tokio` crate's (`tokio.workers`, `tokio.alive_tasks`,
//! `tokio.global_queue_depth`, `tokio.worker.busy_duration` with `tokio.worker.index`), except
//! that the busy time is in seconds (`s`, as OpenTelemetry durations are), not milliseconds.

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use tokio::runtime::Handle;

/// Registers the instruments of the runtime behind `handle`. The callbacks hold its
/// `RuntimeMetrics` (a handle, not the runtime): after the runtime is gone they report its
/// last state.
pub(super) fn register(meter: &Meter, handle: &Handle) {
    let metrics = handle.metrics();
    let m = metrics.clone();
    let _workers = meter
        .u64_observable_gauge("tokio.workers")
        .with_unit("{worker}")
        .with_description("The number of worker threads of the runtime the service runs on.")
        .with_callback(move |observer| observer.observe(count(m.num_workers()), &[]))
        .build();
    let m = metrics.clone();
    let _alive = meter
        .u64_observable_gauge("tokio.alive_tasks")
        .with_unit("{task}")
        .with_description("The number of tasks alive (spawned, not yet finished) in the runtime.")
        .with_callback(move |observer| observer.observe(count(m.num_alive_tasks()), &[]))
        .build();
    let m = metrics.clone();
    let _queue = meter
        .u64_observable_gauge("tokio.global_queue_depth")
        .with_unit("{task}")
        .with_description("The number of tasks waiting in the runtime's global (injection) queue.")
        .with_callback(move |observer| observer.observe(count(m.global_queue_depth()), &[]))
        .build();
    #[cfg(target_has_atomic = "64")]
    {
        // The worker count of a runtime never changes: one attribute set per worker, made once.
        let workers: Vec<[KeyValue; 1]> = (0..metrics.num_workers())
            .map(|i| {
                let index = i64::try_from(i).unwrap_or(i64::MAX);
                [KeyValue::new("tokio.worker.index", index)]
            })
            .collect();
        let m = metrics;
        let _busy = meter
            .f64_observable_counter("tokio.worker.busy_duration")
            .with_unit("s")
            .with_description(
                "The time each worker thread has spent busy (polling tasks); its rate is the \
                 worker's busy ratio.",
            )
            .with_callback(move |observer| {
                for (worker, attributes) in workers.iter().enumerate() {
                    let busy = m.worker_total_busy_duration(worker).as_secs_f64();
                    observer.observe(busy, attributes);
                }
            })
            .build();
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
