#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Misusing the guard is caught or made harmless: what is emitted after shutdown is dropped,
//! counted and warned about once (not once per item), and `init()` after shutdown says why it
//! cannot work.

mod support;

use otlp_receiver::OtlpReceiver;
use support::scenario;

#[tokio::test]
async fn telemetry_after_shutdown_is_counted_as_dropped_with_one_warning() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let run = scenario(
        &["emit-after-shutdown", "500"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    run.assert_success();
    let r = run.result();
    assert_eq!(r["spans_dropped_after_shutdown"], 500, "{r}");
    assert_eq!(r["logs_dropped_after_shutdown"], 500, "{r}");
    assert_eq!(
        r["spans_dropped"], 500,
        "all drops are the post-shutdown ones: {r}"
    );
    assert_eq!(r["spans_exported"], 0, "{r}");
    assert!(
        receiver
            .snapshot()
            .spans
            .iter()
            .all(|s| s.name() != "after_shutdown"),
        "nothing emitted after shutdown is exported"
    );

    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("after telemetry was shut down"))
        .collect();
    assert_eq!(warnings.len(), 2, "one warning per signal:\n{}", run.stdout);
    for (warning, signal) in warnings.iter().zip(["logs", "spans"]) {
        assert!(
            warning.contains(&format!("pipeline_stats().{signal}.dropped_after_shutdown"))
                && warning.contains("let _telemetry"),
            "the warning says what happened and the fix: {warning}"
        );
    }
    assert!(
        !run.stdout.contains("AfterShutdown") && !run.stderr.contains("AfterShutdown"),
        "no per-item SDK warning:\n{}",
        run.stdout
    );
    // The log lines themselves still reach stdout: only export stops.
    assert_eq!(
        run.json_logs()
            .iter()
            .filter(|l| l["message"] == "emitted after shutdown")
            .count(),
        500
    );

    let again = r["init_again"].as_str().unwrap();
    assert!(
        again.contains("shut down") && again.contains("builder().build()"),
        "init() after shutdown explains itself: {again}"
    );
}
