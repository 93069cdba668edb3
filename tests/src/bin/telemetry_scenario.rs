//! A service-like program the wire tests run as a separate process: it calls
//! `platform_telemetry::init()` with whatever environment the test gives it, does one scripted
//! thing, and exits (dropping the guard, which flushes).
//!
//! Usage: `telemetry-scenario <scenario> [count]`. Facts the test needs that are not on the wire
//! (timings, counters) are printed as one JSON line prefixed with `SCENARIO-RESULT ` on stderr.

use std::time::Instant;

use serde_json::json;

use opentelemetry::KeyValue;
use tracing::{info, info_span};

fn report(value: serde_json::Value) {
    eprintln!("SCENARIO-RESULT {value}");
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A checkout: root span with a child, a log line in each, and metric points.
fn checkout(telemetry: &platform_telemetry::Telemetry) {
    let orders = telemetry
        .meter("scenario")
        .u64_counter("scenario.orders")
        .with_description("Orders the scenario placed")
        .build();
    let latency = telemetry
        .meter("scenario")
        .f64_histogram("scenario.latency")
        .with_unit("s")
        .build();
    let root = info_span!("checkout", order.id = 42);
    let _root = root.enter();
    info!(step = "begin", "checkout started");
    {
        let charge = info_span!("charge", payment.method = "card");
        let _charge = charge.enter();
        info!(amount = 1999u64, "card charged");
    }
    orders.add(3, &[KeyValue::new("order.kind", "retail")]);
    latency.record(0.25, &[KeyValue::new("order.kind", "retail")]);
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "checkout".to_string());
    let count: u64 = args.next().and_then(|c| c.parse().ok()).unwrap_or(100_000);

    match scenario.as_str() {
        "checkout" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let guard = platform_telemetry::init()?;
                checkout(&guard);
                print!("{}", guard.scrape_metrics(None).body);
                anyhow::Ok(())
            })?;
        }
        "checkout-current-thread" => {
            // The guard is dropped inside a current_thread runtime: the classic deadlock.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let started = runtime.block_on(async {
                let guard = platform_telemetry::init()?;
                checkout(&guard);
                tokio::task::yield_now().await;
                let started = Instant::now();
                drop(guard);
                anyhow::Ok(started)
            })?;
            report(json!({ "shutdown_ms": started.elapsed().as_secs_f64() * 1000.0 }));
        }
        "flood" => {
            // Emits `count` spans as fast as possible; the endpoint is expected to be absent.
            let guard = platform_telemetry::init()?;
            let rss_before = rss_kib();
            let started = Instant::now();
            for i in 0..count {
                let span = info_span!("flood", i);
                let _e = span.enter();
            }
            let emit = started.elapsed();
            let rss_after = rss_kib();
            let stats = guard.pipeline_stats();
            let scrape = guard.scrape_metrics(None).body;
            let shutdown_started = Instant::now();
            let telemetry = guard.telemetry().clone();
            let shutdown = guard.shutdown();
            let shutdown_ms = shutdown_started.elapsed().as_secs_f64() * 1000.0;
            let after = telemetry.pipeline_stats().spans;
            let queue_full_line = scrape
                .lines()
                .find(|l| {
                    l.starts_with("otel_sdk_processor_span_processed_total")
                        && l.contains("queue_full")
                })
                .unwrap_or("")
                .to_string();
            report(json!({
                "count": count,
                "emit_ns_per_span": emit.as_nanos() as f64 / count as f64,
                "rss_growth_kib": rss_after - rss_before,
                "dropped": stats.spans.dropped,
                "queued": stats.spans.queued,
                "capacity": stats.spans.capacity,
                "shutdown_ms": shutdown_ms,
                "shutdown": format!("{shutdown:?}"),
                "exported_after_shutdown": after.exported,
                "failed_after_shutdown": after.failed,
                "queue_full_metric": queue_full_line,
            }));
        }
        "panic" => {
            let _guard = platform_telemetry::init()?;
            let span = info_span!("doomed");
            let _e = span.enter();
            let items: Vec<u32> = Vec::new();
            let index = count as usize;
            // An out-of-bounds index, as real panics are.
            let _ = items[index];
        }
        "init-twice" => {
            let _guard = platform_telemetry::init()?;
            let second = platform_telemetry::init();
            let second = match second {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            report(json!({ "second_init": second }));
        }
        "warnings" => {
            let guard = platform_telemetry::init()?;
            report(json!({
                "warnings": guard.config_warnings().len(),
                "sdk_disabled": guard.is_sdk_disabled(),
            }));
        }
        "inject" => {
            // Prints the headers the global propagator writes for a span with baggage.
            use opentelemetry::baggage::BaggageExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let _guard = platform_telemetry::init()?;
            let span = info_span!("outgoing");
            let cx = span
                .context()
                .with_baggage([KeyValue::new("tenant", "acme")]);
            let mut headers = std::collections::HashMap::<String, String>::new();
            platform_telemetry::propagation::inject_context(&cx, &mut headers);
            let headers: std::collections::BTreeMap<_, _> = headers.into_iter().collect();
            report(json!({ "headers": headers }));
        }
        "linger" => {
            // A service that stays up for `count` milliseconds with a metric recorded.
            let guard = platform_telemetry::init()?;
            checkout(&guard);
            std::thread::sleep(std::time::Duration::from_millis(count));
        }
        // --- library hardening (issue 13): misuse after shutdown ---
        "emit-after-shutdown" => {
            // `let _ = init()` done by hand: the guard is gone before the work starts.
            let guard = platform_telemetry::init()?;
            let telemetry = guard.telemetry().clone();
            let before = telemetry.pipeline_stats();
            drop(guard);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                for i in 0..count {
                    let span = info_span!("after_shutdown", i);
                    let _e = span.enter();
                    info!(i, "emitted after shutdown");
                }
            });
            let after = telemetry.pipeline_stats();
            let again = match platform_telemetry::init() {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            report(json!({
                "exported_before": before.spans.exported + before.logs.exported,
                "spans_dropped_after_shutdown": after.spans.dropped_after_shutdown,
                "spans_dropped": after.spans.dropped,
                "spans_exported": after.spans.exported,
                "logs_dropped_after_shutdown": after.logs.dropped_after_shutdown,
                "logs_dropped": after.logs.dropped,
                "init_again": again,
            }));
        }
        "checkout-report" => {
            // A checkout, then an explicit shutdown whose outcome and counts are reported.
            let guard = platform_telemetry::init()?;
            checkout(&guard);
            let telemetry = guard.telemetry().clone();
            let started = Instant::now();
            let shutdown = match guard.shutdown() {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            };
            let stats = telemetry.pipeline_stats();
            report(json!({
                "shutdown": shutdown,
                "shutdown_ms": started.elapsed().as_secs_f64() * 1000.0,
                "spans_exported": stats.spans.exported,
                "spans_failed": stats.spans.failed,
                "logs_exported": stats.logs.exported,
                "logs_failed": stats.logs.failed,
                "warnings": telemetry
                    .config_warnings()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            }));
        }
        other => anyhow::bail!(
            "unknown scenario {other:?}; known: checkout, checkout-current-thread, flood, panic, \
             init-twice, warnings, inject, linger, emit-after-shutdown, checkout-report"
        ),
    }
    Ok(())
}
