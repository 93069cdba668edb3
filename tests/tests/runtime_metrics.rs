#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The process and tokio runtime metrics every instance serves on `/metrics` unless turned off:
//! the semantic conventions' names and units, values that follow what the process does, the
//! runtime the instance was built in, and nothing tokio outside a runtime.

use std::time::{Duration, Instant};

use platform_telemetry::Telemetry;

/// An instance that serves its metrics on `/metrics` only (no exporter to reach).
fn telemetry(extra: &[(&str, &str)]) -> Telemetry {
    let mut vars = vec![
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "prometheus"),
    ];
    vars.extend_from_slice(extra);
    platform_telemetry::builder()
        .service_name("runtime-metrics")
        .env_vars(vars)
        .log_writer(std::io::sink)
        .build()
        .unwrap()
}

fn scrape(telemetry: &Telemetry) -> String {
    telemetry.scrape_metrics(None).body
}

/// The samples of `name` (exactly that sample name): each line's labels text and value.
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (sample, labels) = match series.split_once('{') {
                Some((sample, labels)) => (sample, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            (sample == name).then(|| (labels.to_string(), value.parse().unwrap()))
        })
        .collect()
}

/// The one value of `name` whose labels contain `label` (`""` for any).
fn value(text: &str, name: &str, label: &str) -> f64 {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(labels, _)| labels.contains(label))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one {name}{{{label}}} expected in:\n{text}");
    found[0]
}

fn cpu_seconds(text: &str) -> f64 {
    value(text, "process_cpu_time_seconds_total", r#"cpu_mode="user""#)
        + value(
            text,
            "process_cpu_time_seconds_total",
            r#"cpu_mode="system""#,
        )
}

/// Scrapes until `done` holds for the exposition, doing `work` between scrapes; fails after
/// ten seconds with the last scrape.
fn scrape_until(
    telemetry: &Telemetry,
    mut work: impl FnMut(),
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(telemetry);
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never reached:\n{text}");
        work();
    }
}

/// Burns about 20 ms of CPU on this thread.
fn busy_work() {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(20) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_have_semantic_convention_names_units_and_follow_the_process() {
    let telemetry = telemetry(&[]);
    let om = telemetry
        .scrape_metrics(Some("application/openmetrics-text"))
        .body;
    for (family, kind, unit) in [
        ("process_cpu_time_seconds", "counter", Some("seconds")),
        ("process_memory_usage_bytes", "gauge", Some("bytes")),
        ("process_memory_virtual_bytes", "gauge", Some("bytes")),
        ("process_thread_count", "gauge", None),
        ("process_unix_file_descriptor_count", "gauge", None),
    ] {
        assert!(
            om.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} is not a {kind}:\n{om}"
        );
        if let Some(unit) = unit {
            assert!(
                om.contains(&format!("# UNIT {family} {unit}\n")),
                "{family} has no unit {unit}:\n{om}"
            );
        }
    }

    let text = scrape(&telemetry);
    assert!(value(&text, "process_thread_count", "") >= 1.0);
    let resident = value(&text, "process_memory_usage_bytes", "");
    let virtual_ = value(&text, "process_memory_virtual_bytes", "");
    assert!(
        resident > 1_000_000.0 && resident <= virtual_,
        "resident {resident} B, virtual {virtual_} B"
    );

    // CPU time grows with work done (the kernel counts it in clock ticks, 10 ms here).
    let before = cpu_seconds(&text);
    scrape_until(&telemetry, busy_work, |text| {
        cpu_seconds(text) >= before + 0.05
    });

    // Open files are counted, and closing them is seen.
    let fds = || {
        value(
            &scrape(&telemetry),
            "process_unix_file_descriptor_count",
            "",
        )
    };
    let before = fds();
    let files: Vec<std::fs::File> = (0..100)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let open = fds();
    // Other tests of this binary run at the same time and may open or close a few of their own.
    assert!(
        open >= before + 90.0,
        "{before} descriptors, then {open} with 100 more files open"
    );
    drop(files);
    let closed = fds();
    assert!(
        closed <= open - 90.0,
        "{open} descriptors, then {closed} after closing 100"
    );
}

#[test]
fn tokio_metrics_describe_the_runtime_the_instance_was_built_in() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .unwrap();
    let telemetry = runtime.block_on(async { telemetry(&[]) });

    // Tasks that stay alive until told to finish.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let mut stopped = stopped.clone();
            runtime.spawn(async move { stopped.wait_for(|s| *s).await.map(|_| ()) })
        })
        .collect();

    let text = scrape(&telemetry);
    assert_eq!(value(&text, "tokio_workers", ""), 3.0, "{text}");
    assert!(value(&text, "tokio_alive_tasks", "") >= 20.0, "{text}");
    assert!(value(&text, "tokio_global_queue_depth", "") >= 0.0);
    let busy = samples(&text, "tokio_worker_busy_duration_seconds_total");
    let mut workers: Vec<&str> = busy.iter().map(|(labels, _)| labels.as_str()).collect();
    workers.sort_unstable();
    for (worker, labels) in workers.iter().enumerate() {
        assert!(
            labels.contains(&format!(r#"tokio_worker_index="{worker}""#)),
            "{busy:?}"
        );
    }
    assert_eq!(
        workers.len(),
        3,
        "one busy-time series per worker: {busy:?}"
    );
    assert!(text.contains("# TYPE tokio_worker_busy_duration_seconds_total counter\n"));

    // Busy time grows when a worker polls a task that works.
    let total = |text: &str| -> f64 {
        samples(text, "tokio_worker_busy_duration_seconds_total")
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    let before = total(&text);
    scrape_until(
        &telemetry,
        || {
            runtime
                .block_on(runtime.spawn(async { busy_work() }))
                .unwrap()
        },
        |text| total(text) >= before + 0.05,
    );

    // Finished tasks are no longer alive.
    stop.send(true).unwrap();
    for task in waiting {
        runtime.block_on(task).unwrap().unwrap();
    }
    let text = scrape_until(&telemetry, std::thread::yield_now, |text| {
        value(text, "tokio_alive_tasks", "") < 20.0
    });
    assert!(value(&text, "tokio_alive_tasks", "") < 20.0);
}

#[test]
fn outside_a_runtime_no_tokio_metric_is_registered_and_nothing_panics() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let telemetry = telemetry(&[]);
    let text = scrape(&telemetry);
    assert!(!text.lines().any(|l| l.starts_with("tokio_")), "{text}");
    #[cfg(target_os = "linux")]
    assert!(value(&text, "process_thread_count", "") >= 1.0);
}

#[test]
fn the_builder_or_the_variable_turns_them_off() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let off_by_builder = runtime.block_on(async {
        platform_telemetry::builder()
            .runtime_metrics(false)
            .env_vars([
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ])
            .log_writer(std::io::sink)
            .build()
            .unwrap()
    });
    let off_by_variable = runtime.block_on(async {
        platform_telemetry::builder()
            .runtime_metrics(true)
            .env_vars([
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("OTEL_RUST_RUNTIME_METRICS", "false"),
            ])
            .log_writer(std::io::sink)
            .build()
            .unwrap()
    });
    let on = runtime.block_on(async { telemetry(&[]) });
    for telemetry in [&off_by_builder, &off_by_variable] {
        let text = scrape(telemetry);
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("process_") || l.starts_with("tokio_")),
            "{text}"
        );
        // The rest of the library's metrics are still there.
        assert!(
            text.contains("otel_sdk_processor_span_processed_total"),
            "{text}"
        );
    }
    let text = scrape(&on);
    assert_eq!(value(&text, "tokio_workers", ""), 1.0, "{text}");
    #[cfg(target_os = "linux")]
    assert!(text.contains("process_cpu_time_seconds_total"), "{text}");
}
