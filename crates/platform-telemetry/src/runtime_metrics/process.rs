//! The semantic conventions' process metrics, from `/proc/self` on Linux; nothing elsewhere.

use opentelemetry::metrics::Meter;

/// Registers `process.*` instruments (Linux), or nothing (other systems).
#[cfg(not(target_os = "linux"))]
pub(super) fn register(_meter: &Meter) {}

/// Registers `process.*` instruments whose callbacks read `/proc/self`.
#[cfg(target_os = "linux")]
pub(super) fn register(meter: &Meter) {
    use std::sync::Arc;

    use opentelemetry::KeyValue;

    use super::procfs::{self, SharedStat, Sysconf};

    let sys = Sysconf::read();
    // CPU, memory and threads all come from `/proc/self/stat`: one read per collection.
    let shared = Arc::new(SharedStat::new(SharedStat::FRESH));
    let user = [KeyValue::new("cpu.mode", "user")];
    let system = [KeyValue::new("cpu.mode", "system")];
    let reads = shared.clone();
    let _cpu = meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("Total CPU seconds broken down by CPU mode (user, system).")
        .with_callback(move |observer| {
            if let Some(stat) = reads.get() {
                let (user_s, system_s) = stat.cpu_seconds(sys);
                observer.observe(user_s, &user);
                observer.observe(system_s, &system);
            }
        })
        .build();
    let reads = shared.clone();
    let _memory = meter
        .i64_observable_up_down_counter("process.memory.usage")
        .with_unit("By")
        .with_description("The amount of physical memory in use (resident set size).")
        .with_callback(move |observer| {
            if let Some(stat) = reads.get() {
                observer.observe(gauge(stat.resident_bytes(sys)), &[]);
            }
        })
        .build();
    let reads = shared.clone();
    let _virtual = meter
        .i64_observable_up_down_counter("process.memory.virtual")
        .with_unit("By")
        .with_description("The amount of committed virtual memory.")
        .with_callback(move |observer| {
            if let Some(stat) = reads.get() {
                observer.observe(gauge(stat.virtual_bytes), &[]);
            }
        })
        .build();
    let reads = shared.clone();
    let _threads = meter
        .i64_observable_up_down_counter("process.thread.count")
        .with_unit("{thread}")
        .with_description("Process threads count.")
        .with_callback(move |observer| {
            if let Some(stat) = reads.get() {
                observer.observe(gauge(stat.threads), &[]);
            }
        })
        .build();
    let _fds = meter
        .i64_observable_up_down_counter("process.unix.file_descriptor.count")
        .with_unit("{file_descriptor}")
        .with_description(
            "Number of UNIX file descriptors in use by the process (counted up to 100000).",
        )
        .with_callback(|observer| {
            if let Some(count) = procfs::open_file_descriptors() {
                observer.observe(gauge(count), &[]);
            }
        })
        .build();
}

/// An up-down counter's value: the count, held to `i64::MAX`.
#[cfg(target_os = "linux")]
fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
