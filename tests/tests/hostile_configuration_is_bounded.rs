#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Whatever the environment says, building telemetry returns within 1 s, allocates no more than
//! the documented bounds allow, and never panics: a property test over extreme values (0,
//! negative, u64::MAX, numbers no integer holds, NaN, 100 KB strings, special and huge files)
//! for every variable the library reads.
//!
//! `allocation-counter` is this binary's global allocator: it counts what the building thread
//! allocates (where the SDK allocates its queues). The process's peak resident memory
//! (`VmHWM`) covers the threads the SDK starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Every variable platform-telemetry reads, per-signal forms included.
fn variables() -> Vec<String> {
    let mut v: Vec<String> = [
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_RUST_METRICS_CARDINALITY_LIMIT",
        "RUST_LOG",
        "LOG_FORMAT",
    ]
    .map(String::from)
    .to_vec();
    for signal in ["", "TRACES_", "LOGS_", "METRICS_"] {
        for setting in [
            "ENDPOINT",
            "PROTOCOL",
            "HEADERS",
            "TIMEOUT",
            "COMPRESSION",
            "CERTIFICATE",
            "CLIENT_KEY",
            "CLIENT_CERTIFICATE",
            "INSECURE",
        ] {
            v.push(format!("OTEL_EXPORTER_OTLP_{signal}{setting}"));
        }
    }
    v
}

/// Files no configuration should be able to make the library read: a FIFO without a writer,
/// a 16 GiB sparse file, a directory.
struct HostileFiles {
    _dir: tempfile::TempDir,
    fifo: PathBuf,
    huge: PathBuf,
    directory: PathBuf,
}

fn hostile_files() -> HostileFiles {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) is needed");
    assert!(status.success());
    let huge = dir.path().join("huge.pem");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(16 << 30)
        .unwrap();
    let directory = dir.path().to_path_buf();
    HostileFiles {
        fifo,
        huge,
        directory: directory.clone(),
        _dir: dir,
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

fn extreme_value(files: &HostileFiles) -> impl Strategy<Value = String> {
    let fixed: Vec<String> = vec![
        "0".into(),
        "-1".into(),
        "-9223372036854775808".into(),
        "18446744073709551615".into(),
        "18446744073709551616".into(),
        "99999999999999999999999999999999".into(),
        "4294967296".into(),
        "2147483648".into(),
        "1e309".into(),
        "NaN".into(),
        "inf".into(),
        " ".into(),
        "\u{0}".into(),
        "x".repeat(100 * 1024),
        format!("k=v{}", ",k=v".repeat(20_000)),
        "/dev/zero".into(),
        "/dev/stdin".into(),
        "/dev/urandom".into(),
        "/proc/self/mem".into(),
        path_text(&files.fifo),
        path_text(&files.huge),
        path_text(&files.directory),
        "https://localhost:1".into(),
        "grpc".into(),
        "otlp,none".into(),
        "authorization=Bearer%0D%0Ax,x=%zz".into(),
        "true".into(),
    ];
    prop_oneof![
        4 => prop::sample::select(fixed),
        1 => any::<String>(),
    ]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// What one build may allocate on the calling thread. With every bound at its maximum (both
/// span queues and the log queue at 65 536 items) a build measured 49 MiB; the bound leaves
/// room for that, not for a queue sized by an unbounded variable (gigabytes before the bounds).
const MAX_BUILD_BYTES: usize = 96 << 20;
/// Peak resident memory of the whole run, every thread included.
const MAX_PEAK_RSS_KIB: u64 = 512 * 1024;
const MAX_BUILD_TIME: Duration = Duration::from_secs(1);

fn build(env: &[(String, String)]) -> (Duration, usize, usize) {
    let mut elapsed = Duration::ZERO;
    let mut warnings = 0;
    let info = allocation_counter::measure(|| {
        let started = Instant::now();
        let telemetry = platform_telemetry::builder()
            .env_vars(env.iter().cloned())
            .log_writer(std::io::sink)
            .build();
        elapsed = started.elapsed();
        if let Ok(t) = &telemetry {
            warnings = t.config_warnings().len();
        }
        // Shutdown is bounded on its own (shutdown_is_bounded.rs); a final metric push to an
        // absent endpoint retries for most of a second, so it happens off this thread.
        allocation_counter::opt_out(|| {
            std::thread::spawn(move || drop(telemetry));
        });
    });
    (elapsed, usize::try_from(info.bytes_max).unwrap(), warnings)
}

#[test]
fn every_bound_at_its_maximum_builds_quickly_and_within_memory() {
    let max: Vec<(String, String)> = [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "99999999999"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "99999999999"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "99999999999"),
        ("OTEL_TRACES_EXPORTER", "otlp,console"),
        ("OTEL_LOGS_EXPORTER", "otlp,console"),
        ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let (elapsed, bytes, warnings) = build(&max);
    eprintln!(
        "every bound at its maximum: {elapsed:?}, {:.1} MiB on the building thread, {warnings} warnings",
        bytes as f64 / (1 << 20) as f64
    );
    assert!(elapsed < MAX_BUILD_TIME, "{elapsed:?}");
    assert!(bytes < MAX_BUILD_BYTES, "{bytes} bytes");
    assert_eq!(warnings, 4, "each clamped value says so");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn any_environment_builds_within_time_and_memory(
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        values in prop::collection::vec(extreme_value(&FILES), 24),
    ) {
        let names = variables();
        let env: Vec<(String, String)> = picks
            .iter()
            .zip(values)
            .map(|(name, value)| (name.get(&names).clone(), value))
            .collect();
        let (elapsed, bytes, _) = build(&env);
        prop_assert!(elapsed < MAX_BUILD_TIME, "{elapsed:?} for {:?}", shorten(&env));
        prop_assert!(bytes < MAX_BUILD_BYTES, "{bytes} bytes for {:?}", shorten(&env));
        prop_assert!(peak_rss_kib() < MAX_PEAK_RSS_KIB, "peak RSS {} KiB", peak_rss_kib());
    }
}

static FILES: std::sync::LazyLock<HostileFiles> = std::sync::LazyLock::new(hostile_files);

fn shorten(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.clone(), v.chars().take(60).collect()))
        .collect()
}
