#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The alert path end to end, with the real tools: a real Prometheus scrapes a real `orders`
//! whose failures are injected through `ORDERS_FAULT_RATIO`, evaluates the shipped rules and
//! sends to a real Alertmanager running the shipped configuration; the SLO page reaches
//! Alertmanager's API and a webhook receiver, and resolves once the fault stops.
//!
//! Time is compressed 100x so the test takes seconds, not hours: every range and `for:` of the
//! shipped rules is divided by 100 (5m → 3s, 1h → 36s, for 2m → 1.2s), the groups evaluate
//! every second, Prometheus re-sends firing alerts every second, and Alertmanager's group timers
//! are one second. Nothing else of the rules or the configuration changes (asserted below).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;
use support::{Process, free_port, http, spawn, spawn_example, wait_ready};

const COMPRESSION: f64 = 100.0;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seconds(amount: f64, unit: &str) -> f64 {
    amount
        * match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => panic!("unit {other}"),
        }
}

/// The shipped rules with every duration divided by [`COMPRESSION`], and groups evaluated every
/// second.
fn compressed(rules: &str) -> String {
    let range = Regex::new(r"\[(\d+)([smhd])\]").unwrap();
    let for_ = Regex::new(r"(?m)^(\s+for: )(\d+)([smhd])$").unwrap();
    let interval = Regex::new(r"(?m)^(\s+interval: )\S+$").unwrap();
    let ms = |amount: &str, unit: &str| {
        let ms = (seconds(amount.parse().unwrap(), unit) * 1000.0 / COMPRESSION).round();
        format!("{}ms", ms.max(1.0))
    };
    let out = range.replace_all(rules, |c: &regex::Captures<'_>| {
        format!("[{}]", ms(&c[1], &c[2]))
    });
    let out = for_.replace_all(&out, |c: &regex::Captures<'_>| {
        format!("{}{}", &c[1], ms(&c[2], &c[3]))
    });
    interval.replace_all(&out, "${1}1s").into_owned()
}

#[test]
fn compression_changes_only_durations() {
    let shipped = std::fs::read_to_string(repo().join("stack/prometheus/rules/slo.yml")).unwrap();
    let fast = compressed(&shipped);
    assert!(
        fast.contains("[36000ms]") && fast.contains("for: 1200ms"),
        "{fast}"
    );
    let strip = |s: &str| {
        Regex::new(r"\d+m?s|\d+[mhd]")
            .unwrap()
            .replace_all(s, "D")
            .into_owned()
    };
    assert_eq!(strip(&shipped), strip(&fast));
}

/// What the webhook receiver got: (status, alertname, job) per alert, in order.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

async fn webhook() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                for alert in body["alerts"].as_array().into_iter().flatten() {
                    sink.lock().unwrap().push((
                        alert["status"].as_str().unwrap_or_default().to_string(),
                        alert["labels"]["alertname"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        alert["labels"]["job"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn orders(port: u16, fault: Option<&str>) -> Process {
    let port = port.to_string();
    let mut env = vec![
        ("ORDERS_PORT", port.as_str()),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("OTEL_SERVICE_NAME", "orders"),
    ];
    if let Some(ratio) = fault {
        env.push(("ORDERS_FAULT_RATIO", ratio));
    }
    spawn_example("orders", &env)
}

/// Active alerts in Alertmanager: (alertname, job).
async fn active_alerts(alertmanager: &str) -> Vec<(String, String)> {
    let Ok(response) = http()
        .get(format!(
            "{alertmanager}/api/v2/alerts?active=true&silenced=false&inhibited=false"
        ))
        .send()
        .await
    else {
        return Vec::new();
    };
    let alerts: Value =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            (
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["labels"]["job"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Polls `condition` every 250 ms until it holds; panics with `context()` after `within`.
async fn eventually<F, Fut>(
    within: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut condition: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_slo_page_reaches_alertmanager_and_the_receiver_and_resolves_after_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules, time-compressed.
    let mut rule_paths = Vec::new();
    for entry in std::fs::read_dir(repo().join("stack/prometheus/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let out = dir.path().join(path.file_name().unwrap());
            std::fs::write(&out, compressed(&std::fs::read_to_string(&path).unwrap())).unwrap();
            rule_paths.push(out.display().to_string());
        }
    }
    // The shipped Alertmanager configuration, its receivers pointed at this test's webhook and
    // its group timers at one second.
    let (webhook_url, received) = webhook().await;
    let shipped =
        std::fs::read_to_string(repo().join("stack/alertmanager/alertmanager.yml")).unwrap();
    let am_config = Regex::new(r"(?m)^(\s+(group_wait|group_interval|repeat_interval): )\S+$")
        .unwrap()
        .replace_all(
            &shipped.replace("http://obs:9464/alerts", &webhook_url),
            "${1}1s",
        )
        .into_owned();
    let am_path = dir.path().join("alertmanager.yml");
    std::fs::write(&am_path, &am_config).unwrap();
    let check = std::process::Command::new("amtool")
        .args(["check-config", am_path.to_str().unwrap()])
        .output()
        .expect("amtool is not installed: run scripts/test.sh (apt-get install prometheus-alertmanager)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let am_port = free_port();
    let alertmanager_url = format!("http://127.0.0.1:{am_port}");
    let alertmanager = spawn(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            &format!("--config.file={}", am_path.display()),
            &format!("--storage.path={}", dir.path().join("am").display()),
            &format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=",
        ],
        &[],
    );
    wait_ready(&format!("{alertmanager_url}/-/ready"), &alertmanager).await;

    let orders_port = free_port();
    let faulty = orders(orders_port, Some("0.5"));
    let orders_url = format!("http://127.0.0.1:{orders_port}");
    wait_ready(&format!("{orders_url}/healthz"), &faulty).await;

    let prom_port = free_port();
    let prometheus_url = format!("http://127.0.0.1:{prom_port}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: {rule_paths:?}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: orders\n    static_configs:\n      - targets: ['127.0.0.1:{orders_port}']\n"
        ),
    )
    .unwrap();
    let prometheus = spawn(
        "prometheus",
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            // Firing alerts are re-sent every second (default 1m): alerts that fired before
            // Prometheus had discovered Alertmanager reach it at once.
            "--rules.alert.resend-delay=1s",
        ],
        &[],
    );
    wait_ready(&format!("{prometheus_url}/-/ready"), &prometheus).await;

    // Traffic, all along: 50 requests a second.
    let traffic = tokio::spawn({
        let url = format!("{orders_url}/orders/7");
        async move {
            let client = http();
            loop {
                let _ = client.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let started = Instant::now();
    let context = || {
        format!(
            "webhook got {:?}\nprometheus:\n{}\nalertmanager:\n{}",
            received.lock().unwrap(),
            prometheus.output(),
            alertmanager.output()
        )
    };
    let page = ("SLOAvailabilityFastBurn".to_string(), "orders".to_string());
    eventually(
        Duration::from_secs(90),
        "the SLO page in Alertmanager",
        &context,
        || async { active_alerts(&alertmanager_url).await.contains(&page) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the SLO page at the webhook",
        &context,
        || async {
            received
                .lock()
                .unwrap()
                .iter()
                .any(|(s, a, j)| s == "firing" && *a == page.0 && *j == page.1)
        },
    )
    .await;
    let fired_after = started.elapsed();
    let active = active_alerts(&alertmanager_url).await;
    assert!(
        active.iter().any(|(a, _)| a == "Watchdog"),
        "the dead man's switch fires too: {active:?}\n{}\n{}",
        http()
            .get(format!("{prometheus_url}/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        context()
    );

    // The fault stops: orders restarts healthy on the same port.
    drop(faulty);
    let healthy = orders(orders_port, None);
    wait_ready(&format!("{orders_url}/healthz"), &healthy).await;
    eventually(
        Duration::from_secs(120),
        "the page resolved at the webhook",
        &context,
        || async {
            received
                .lock()
                .unwrap()
                .iter()
                .any(|(s, a, j)| s == "resolved" && *a == page.0 && *j == page.1)
        },
    )
    .await;
    assert!(
        !active_alerts(&alertmanager_url).await.contains(&page),
        "Alertmanager no longer lists it"
    );
    traffic.abort();
    eprintln!(
        "fired after {fired_after:?}, resolved after {:?} (100x compressed)",
        started.elapsed()
    );
}
