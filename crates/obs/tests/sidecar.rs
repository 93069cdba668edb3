#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs sidecar`, run as the binary: ready only after Grafana is provisioned, verification
//! results on `/metrics` after passing and failing rounds, and a clean SIGTERM.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_doubles::FaultSwitches;
use api_doubles::collector::CollectorDouble;
use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};
use api_doubles::loki::LokiDouble;
use api_doubles::tempo::TempoDouble;

use support::repo;

struct Sidecar {
    child: Child,
    url: String,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sidecar(grafana_url: &str, env: &[(&str, &str)]) -> Sidecar {
    let port = api_doubles::reserve_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_obs"))
        .arg("sidecar")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OBS_LISTEN", &listen)
        .env("OBS_GRAFANA_URL", grafana_url)
        .env("OBS_GRAFANA_TOKEN", "sidecar-token")
        .env(
            "OBS_DATASOURCES",
            repo().join("grafana/provisioning/datasources"),
        )
        .env("OBS_DASHBOARDS", repo().join("dashboards"))
        .env("OBS_INTERVAL", "1s")
        .env("OBS_TIMEOUT", "4s")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Sidecar {
        child,
        url: format!("http://{listen}"),
    }
}

fn get(url: &str) -> Option<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.unwrap_or_default()))
    })
}

/// Polls until `condition` holds for the answer of `url`, or panics after `within`.
fn eventually(
    url: &str,
    within: Duration,
    what: &str,
    condition: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((status, body)) = get(url) {
            if condition(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: never true for {url}; last answer {last:?}");
}

fn metric(body: &str, name: &str, labels: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn readiness_flips_only_after_grafana_is_provisioned() {
    let port = api_doubles::reserve_port().unwrap();
    let grafana_url = format!("http://127.0.0.1:{port}");
    let sidecar = sidecar(&grafana_url, &[("OBS_OTLP_ENDPOINT", "http://127.0.0.1:9")]);
    eventually(
        &format!("{}/healthz", sidecar.url),
        Duration::from_secs(20),
        "alive",
        |s, _| s == 200,
    );
    let (status, _) = get(&format!("{}/readyz", sidecar.url)).unwrap();
    assert_eq!(status, 503, "not ready before Grafana is provisioned");

    let grafana = GrafanaDouble::start_on(
        port,
        GrafanaConfig::default().with_token("sidecar-token", Role::Admin),
    )
    .unwrap();
    eventually(
        &format!("{}/readyz", sidecar.url),
        Duration::from_secs(60),
        "ready",
        |s, _| s == 200,
    );
    assert_eq!(grafana.datasources().len(), 5);
    let metrics = eventually(
        &format!("{}/metrics", sidecar.url),
        Duration::from_secs(10),
        "provision metric",
        |_, b| metric(b, "obs_provision_last_success_timestamp_seconds", "").is_some(),
    );
    assert!(metric(&metrics, "obs_provision_last_success_timestamp_seconds", "").unwrap() > 1.7e9);
}

#[test]
fn metrics_show_a_passing_round_then_a_failing_one_and_sigterm_stops_it_cleanly() {
    let tempo = TempoDouble::start().unwrap();
    let loki = LokiDouble::start().unwrap();
    let collector = CollectorDouble::start(Some(&tempo), None, Some(&loki)).unwrap();
    let otlp = collector.http_endpoint();
    let mut sidecar = sidecar(
        "http://127.0.0.1:9",
        &[
            ("OBS_NO_PROVISION", "true"),
            ("OBS_OTLP_ENDPOINT", &otlp),
            ("OBS_TEMPO", tempo.url()),
            ("OBS_LOKI", loki.url()),
        ],
    );
    let metrics_url = format!("{}/metrics", sidecar.url);
    let passing = eventually(
        &metrics_url,
        Duration::from_secs(60),
        "a passing round",
        |_, b| metric(b, "obs_verify_runs_total", "result=\"pass\"").is_some_and(|v| v >= 1.0),
    );
    assert_eq!(
        metric(&passing, "obs_verify_success", "backend=\"tempo\""),
        Some(1.0),
        "{passing}"
    );
    assert_eq!(
        metric(&passing, "obs_backend_up", "backend=\"loki\""),
        Some(1.0),
        "{passing}"
    );
    assert!(
        passing.contains("obs_verify_visible_seconds_bucket"),
        "{passing}"
    );
    let (status, body) = get(&format!("{}/status", sidecar.url)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"trace_id\""), "{body}");

    tempo.set_down();
    let failing = eventually(
        &metrics_url,
        Duration::from_secs(60),
        "a failing round",
        |_, b| metric(b, "obs_verify_success", "backend=\"tempo\"") == Some(0.0),
    );
    assert_eq!(
        metric(&failing, "obs_backend_up", "backend=\"tempo\""),
        Some(0.0),
        "{failing}"
    );
    assert!(metric(&failing, "obs_verify_runs_total", "result=\"fail\"").is_some_and(|v| v >= 1.0));
    assert_eq!(
        metric(&failing, "obs_verify_success", "backend=\"loki\""),
        Some(1.0),
        "loki still passes"
    );

    let pid = sidecar.child.id().to_string();
    let started = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = sidecar.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGTERM did not stop the sidecar within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_listen_address_that_cannot_be_bound_is_a_usage_error_naming_the_flag() {
    // 192.0.2.1 (TEST-NET-1) is never a local address.
    let run = support::obs(
        &["sidecar", "--no-provision"],
        &[
            ("OBS_LISTEN", "192.0.2.1:9464"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
        None,
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("--listen") && run.stderr.contains("OBS_LISTEN"),
        "{run:?}"
    );
}

#[test]
fn every_command_documents_its_exit_codes() {
    for command in ["provision", "verify", "sidecar", "health"] {
        let help = support::obs(&[command, "--help"], &[], None);
        assert_eq!(help.code, Some(0), "{help:?}");
        for code in ["  0  ", "  1  ", "  2  "] {
            assert!(
                help.stdout.contains("Exit codes:") && help.stdout.contains(code),
                "{command} --help documents exit code{code}: {help:?}"
            );
        }
    }
}

fn post(url: &str, body: Vec<u8>) -> Option<u16> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    })
}

#[test]
fn alertmanager_webhooks_are_counted_and_bounded() {
    let sidecar = sidecar("http://127.0.0.1:9", &[("OBS_NO_PROVISION", "true")]);
    eventually(
        &format!("{}/readyz", sidecar.url),
        Duration::from_secs(20),
        "ready",
        |s, _| s == 200,
    );
    let alerts = format!("{}/alerts", sidecar.url);
    let payload = serde_json::json!({
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "SLOAvailabilityFastBurn", "job": "orders", "severity": "critical"}, "annotations": {"summary": "orders is burning"}},
            {"status": "firing", "labels": {"alertname": "Watchdog", "severity": "none"}, "annotations": {}}
        ]
    });
    assert_eq!(post(&alerts, payload.to_string().into_bytes()), Some(200));
    assert_eq!(post(&alerts, b"not json".to_vec()), Some(400));
    assert_eq!(
        post(&alerts, vec![b' '; 2 * 1024 * 1024]),
        Some(413),
        "a body above 1 MiB is refused"
    );
    let metrics = eventually(
        &format!("{}/metrics", sidecar.url),
        Duration::from_secs(10),
        "alert counter",
        |_, b| metric(b, "obs_alerts_received_total", "SLOAvailabilityFastBurn").is_some(),
    );
    assert_eq!(
        metric(
            &metrics,
            "obs_alerts_received_total",
            "alertname=\"SLOAvailabilityFastBurn\""
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "obs_alerts_received_total",
            "alertname=\"Watchdog\""
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn the_sidecar_reads_each_store_as_its_tenant_and_reports_a_missing_one() {
    use api_doubles::collector::TenantHeader;
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let loki = LokiDouble::builder().multi_tenant().start().unwrap();
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .loki(&loki)
        .tenant_header(TenantHeader::FromRequest)
        .start()
        .unwrap();
    let otlp = collector.http_endpoint();
    // Loki's tenant is given, Tempo's is not.
    let sidecar = sidecar(
        "http://127.0.0.1:9",
        &[
            ("OBS_NO_PROVISION", "true"),
            ("OBS_OTLP_ENDPOINT", &otlp),
            ("OTEL_EXPORTER_OTLP_HEADERS", "X-Scope-OrgID=team-a"),
            ("OBS_TEMPO", tempo.url()),
            ("OBS_LOKI", loki.url()),
            ("OBS_LOKI_TENANT", "team-a"),
        ],
    );
    let metrics = eventually(
        &format!("{}/metrics", sidecar.url),
        Duration::from_secs(60),
        "a round with Loki passing",
        |_, b| metric(b, "obs_verify_success", "backend=\"loki\"") == Some(1.0),
    );
    assert_eq!(
        metric(&metrics, "obs_verify_success", "backend=\"tempo\""),
        Some(0.0),
        "{metrics}"
    );
    let (status, body) = get(&format!("{}/status", sidecar.url)).unwrap();
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tempo_check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == "tempo")
        .cloned()
        .unwrap();
    assert_eq!(tempo_check["reason"], "no_tenant", "{body}");
    assert!(
        tempo_check["detail"]
            .as_str()
            .unwrap()
            .contains("--tempo-tenant (OBS_TEMPO_TENANT)"),
        "{body}"
    );
}
