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

/// `process.creation.time`: when this process started, as the registry's ISO 8601 UTC string
/// (`2026-12-03T18:17:04.120Z`); `None` where it cannot be known (not Linux, no `/proc`).
pub(crate) fn process_creation_time() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        procfs::process_start_unix_seconds().map(rfc3339_utc)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the days-to-civil conversion of Howard
/// Hinnant's date algorithms).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn rfc3339_utc(unix_seconds: f64) -> String {
    let millis_total = (unix_seconds.max(0.0) * 1000.0) as u64;
    let (secs, millis) = (millis_total / 1000, millis_total % 1000);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod creation_time_tests {
    use super::rfc3339_utc;

    #[test]
    fn unix_seconds_format_as_iso_8601_utc() {
        assert_eq!(rfc3339_utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(rfc3339_utc(1_796_320_624.12), "2026-12-03T17:57:04.120Z");
    }
}
