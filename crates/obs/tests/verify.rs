#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs verify`, run as the binary, against doubles of Tempo 3, Jaeger 2 and Loki 3 (fed by
//! real OTLP through a collector double) and a real Prometheus (Debian package) scraping the
//! probe's metrics.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api_doubles::FaultSwitches;
use api_doubles::collector::CollectorDouble;
use api_doubles::jaeger::JaegerDouble;
use api_doubles::loki::LokiDouble;
use api_doubles::tempo::TempoDouble;
use serde_json::Value;

use support::{Run, repo};

struct Stores {
    tempo: TempoDouble,
    jaeger: JaegerDouble,
    loki: LokiDouble,
    collector: CollectorDouble,
}

fn stores() -> Stores {
    let tempo = TempoDouble::start().unwrap();
    let jaeger = JaegerDouble::start().unwrap();
    let loki = LokiDouble::start().unwrap();
    let collector = CollectorDouble::start(Some(&tempo), Some(&jaeger), Some(&loki)).unwrap();
    Stores {
        tempo,
        jaeger,
        loki,
        collector,
    }
}

/// A real Prometheus scraping `127.0.0.1:{target_port}` every second, evaluating the shipped
/// rules (stack/prometheus/rules) every second and sending to `alertmanager` (host:port) if given.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(target_port: u16) -> Prometheus {
    prometheus_sending_to(target_port, None)
}

fn prometheus_sending_to(target_port: u16, alertmanager: Option<&str>) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let rules = repo().join("stack/prometheus/rules");
    let alerting = alertmanager
        .map(|a| {
            format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{a}']\n"
            )
        })
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: ['{}/*.yml']\n{alerting}scrape_configs:\n  - job_name: obs\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n", rules.display()),
    )
    .unwrap();
    let port = api_doubles::reserve_port().unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=exemplar-storage")
        .arg("--rules.alert.resend-delay=1s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is not installed: run scripts/test.sh (apt-get install prometheus)");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// A real Alertmanager running the shipped configuration (its webhook receivers point at an
/// obs that is not there, which only costs Alertmanager failed deliveries).
struct Alertmanager {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager() -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let port = api_doubles::reserve_port().unwrap();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!(
            "--config.file={}",
            repo().join("stack/alertmanager/alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.path().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("alertmanager is not installed: run scripts/test.sh (apt-get install prometheus-alertmanager)");
    Alertmanager {
        child,
        address: format!("127.0.0.1:{port}"),
        _dir: dir,
    }
}

trait ReportOf {
    fn report(&self) -> Value;
    fn check(&self, backend: &str, check: &str) -> Value;
}

impl ReportOf for Run {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The check named `check` of `backend`.
    fn check(&self, backend: &str, check: &str) -> Value {
        self.report()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["backend"] == backend && c["check"].as_str().unwrap().starts_with(check))
            .cloned()
            .unwrap_or_else(|| panic!("no check {backend}/{check}: {self:?}"))
    }
}

fn obs_verify(args: &[&str], env: &[(&str, &str)]) -> Run {
    let datasources = repo().join("grafana/provisioning/datasources");
    let mut all_env = vec![("OBS_DATASOURCES", datasources.to_str().unwrap())];
    all_env.extend_from_slice(env);
    obs_verify_in(args, &all_env, None)
}

/// `obs verify --format=json` with only `env` (no OBS_DATASOURCES unless given), in `cwd`.
fn obs_verify_in(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Run {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    all.push("--format=json");
    support::obs(&all, env, cwd)
}

fn assert_schema(report: &Value) {
    assert_eq!(
        report["trace_id"].as_str().map(str::len),
        Some(32),
        "{report}"
    );
    assert!(report["run_id"].is_string());
    assert!(report["passed"].is_boolean());
    assert!(report["verdict"].is_string());
    assert!(report["elapsed_seconds"].is_number());
    for check in report["checks"].as_array().unwrap() {
        let keys: Vec<&str> = check
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "backend",
                "check",
                "detail",
                "reason",
                "status",
                "visible_after_seconds"
            ],
            "{check}"
        );
        assert!(["pass", "fail", "skipped"].contains(&check["status"].as_str().unwrap()));
        assert_eq!(
            check["reason"].is_null(),
            check["status"] == "pass",
            "a reason exactly when it did not pass: {check}"
        );
        assert!(
            check["visible_after_seconds"].is_null() || check["visible_after_seconds"].is_number()
        );
    }
}

#[test]
fn every_store_has_the_probe_trace_logs_metric_and_links() {
    let s = stores();
    let metrics_port = api_doubles::reserve_port().unwrap();
    let alertmanager = alertmanager();
    let prometheus = prometheus_sending_to(metrics_port, Some(&alertmanager.address));
    let listen = format!("127.0.0.1:{metrics_port}");
    let alertmanager_url = format!("http://{}", alertmanager.address);
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            s.tempo.url(),
            "--jaeger",
            s.jaeger.url(),
            "--loki",
            s.loki.url(),
            "--prometheus",
            &prometheus.url,
            "--alertmanager",
            &alertmanager_url,
            "--probe-metrics-listen",
            &listen,
            "--timeout",
            "45s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let report = run.report();
    assert_schema(&report);
    assert_eq!(report["passed"], true);
    assert_eq!(
        report["verdict"], "Telemetry reaches tempo, jaeger, loki, prometheus: every check passed",
        "{run:?}"
    );
    for (backend, check) in [
        ("probe", "OTLP export"),
        ("tempo", "trace by id"),
        ("tempo", "TraceQL search"),
        ("jaeger", "trace by id"),
        ("loki", "logs of obs-probe"),
        ("loki", "logs of obs-probe-downstream"),
        ("grafana", "Tempo traces → Loki logs link"),
        ("grafana", "Loki logs → Tempo derived field"),
        ("prometheus", "probe metric"),
        ("prometheus", "alert rules loaded and healthy"),
        ("prometheus", "sends alerts to an Alertmanager"),
        ("alertmanager", "Watchdog alert present"),
    ] {
        assert_eq!(
            run.check(backend, check)["status"],
            "pass",
            "{backend}/{check}: {run:?}"
        );
    }
    let trace_id = report["trace_id"].as_str().unwrap();
    assert!(
        s.tempo
            .spans()
            .iter()
            .any(|sp| sp.trace_id_hex() == trace_id),
        "data really travelled"
    );
}

#[test]
fn a_store_that_is_down_is_unreachable_and_the_others_still_pass() {
    let s = stores();
    s.tempo.set_down();
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            s.tempo.url(),
            "--loki",
            s.loki.url(),
            "--timeout",
            "4s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let tempo = run.check("tempo", "trace by id");
    assert_eq!(tempo["status"], "fail");
    assert!(
        tempo["detail"].as_str().unwrap().contains("unreachable"),
        "{run:?}"
    );
    assert_eq!(tempo["reason"], "unreachable", "{run:?}");
    assert_eq!(
        run.check("loki", "logs of obs-probe")["status"],
        "pass",
        "{run:?}"
    );
    for (backend, flag) in [("jaeger", "--jaeger"), ("prometheus", "--prometheus")] {
        let not_given = run.check(backend, "not checked");
        assert_eq!(not_given["status"], "skipped", "{run:?}");
        assert_eq!(not_given["reason"], "not_requested", "{run:?}");
        assert!(
            not_given["detail"].as_str().unwrap().contains(flag),
            "{run:?}"
        );
    }
    assert!(
        run.elapsed < Duration::from_secs(20),
        "bounded by --timeout: {run:?}"
    );
}

#[test]
fn a_store_without_the_data_says_trace_absent_not_down() {
    let s = stores();
    s.tempo.drop_spans(|_| true);
    s.jaeger
        .drop_spans(|span| span.service_name().as_deref() == Some("obs-probe-downstream"));
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            s.tempo.url(),
            "--jaeger",
            s.jaeger.url(),
            "--timeout",
            "4s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let tempo = run.check("tempo", "trace by id")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tempo.contains("trace absent"), "{tempo}");
    let jaeger = run.check("jaeger", "trace by id")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        jaeger.contains("spans missing") && jaeger.contains("obs-probe-downstream"),
        "{jaeger}"
    );
}

#[test]
fn a_hop_that_drops_traceparent_breaks_the_trace_and_is_named() {
    let s = stores();
    let endpoint = s.collector.http_endpoint();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A target service whose server does not read traceparent: it starts its own trace.
    let target = runtime.block_on(async {
        let telemetry = platform_telemetry::builder()
            .service_name("broken-hop")
            .env_vars([
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_PROPAGATORS", "none"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ])
            .log_writer(std::io::sink)
            .build()
            .unwrap();
        let app = axum::Router::new()
            .route("/orders/{id}", axum::routing::get(|| async { "order" }))
            .layer(platform_telemetry::http::ServerLayer::for_telemetry(
                &telemetry,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (telemetry, address)
    });
    let url = format!("http://{}/orders/7", target.1);
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &endpoint,
            "--tempo",
            s.tempo.url(),
            "--target",
            &url,
            "--target-services",
            "broken-hop",
            "--timeout",
            "5s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let detail = run.check("tempo", "trace by id")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("broken-hop") && detail.contains("traceparent"),
        "{detail}"
    );
    assert_eq!(
        run.check("probe", "target call")["status"],
        "pass",
        "{run:?}"
    );
    drop(target);
}

#[test]
fn slow_visibility_within_the_deadline_passes_and_reports_the_time() {
    let s = stores();
    s.tempo.visible_after(Duration::from_secs(3));
    s.loki.not_ready_for(3);
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            s.tempo.url(),
            "--loki",
            s.loki.url(),
            "--timeout",
            "30s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let visible = run.check("tempo", "trace by id")["visible_after_seconds"]
        .as_f64()
        .unwrap();
    assert!(visible >= 2.0, "visible after {visible} s: {run:?}");
}

#[test]
fn the_probe_honours_per_signal_endpoints_like_any_service() {
    // No collector: traces straight to Tempo's OTLP intake, logs straight to Loki's.
    let tempo = TempoDouble::start().unwrap();
    let loki = LokiDouble::start().unwrap();
    let traces = format!("{}/v1/traces", tempo.otlp_http_endpoint());
    let logs = format!("{}/v1/logs", loki.otlp_endpoint());
    let nowhere = format!("http://127.0.0.1:{}", api_doubles::reserve_port().unwrap());
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &nowhere,
            "--tempo",
            tempo.url(),
            "--loki",
            loki.url(),
            "--timeout",
            "20s",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.as_str()),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs.as_str()),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    assert_eq!(
        run.check("tempo", "trace by id")["status"],
        "pass",
        "{run:?}"
    );
    assert_eq!(
        run.check("loki", "logs of obs-probe")["status"],
        "pass",
        "{run:?}"
    );
}

#[test]
fn bad_urls_are_usage_errors() {
    let run = obs_verify(&["--tempo", "tempo:3200"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("--tempo") && run.stderr.contains("OBS_TEMPO"),
        "{run:?}"
    );
}

#[test]
fn a_backend_that_rejects_part_of_the_probe_is_reported_as_refusing_data() {
    let s = stores();
    s.collector
        .set_behavior(otlp_receiver::Behavior::PartialSuccess {
            rejected: 1,
            message: "span rejected: too old".into(),
        });
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            s.tempo.url(),
            "--timeout",
            "5s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let export = run.check("probe", "OTLP export");
    assert_eq!(export["status"], "fail", "{run:?}");
    let detail = export["detail"].as_str().unwrap();
    assert!(
        detail.contains("partial success") && detail.contains("too old"),
        "{detail}"
    );
}

#[test]
fn with_no_store_there_is_nothing_to_verify_and_it_is_a_usage_error() {
    let run = obs_verify(&["--otlp-endpoint", "http://127.0.0.1:9"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for flag in [
        "nothing to verify",
        "--tempo",
        "--jaeger",
        "--loki",
        "--prometheus",
    ] {
        assert!(run.stderr.contains(flag), "{flag}: {run:?}");
    }
}

#[test]
fn an_export_failure_names_the_endpoint_and_the_flag_to_change() {
    let s = stores();
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            "http://127.0.0.1:9",
            "--tempo",
            s.tempo.url(),
            "--timeout",
            "3s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let export = run.check("probe", "OTLP export");
    assert_eq!(export["status"], "fail", "{run:?}");
    assert_eq!(export["reason"], "dropped", "{run:?}");
    let detail = export["detail"].as_str().unwrap();
    assert!(
        detail.contains("http://127.0.0.1:9") && detail.contains("--otlp-endpoint"),
        "{detail}"
    );
}

#[test]
fn credentials_in_store_urls_are_used_but_never_printed() {
    let s = stores();
    let with_credentials = |url: &str| {
        let rest = url.strip_prefix("http://").unwrap();
        format!("http://probe:s3cr3t-pw@{rest}/?api_key=s3cr3t-key")
    };
    let tempo = with_credentials(s.tempo.url());
    let loki_down = "http://probe:s3cr3t-pw@127.0.0.1:9/?token=s3cr3t-key".to_string();
    for format in ["--format=json", "--format=text"] {
        let run = support::obs(
            &[
                "verify",
                "--otlp-endpoint",
                &s.collector.http_endpoint(),
                "--tempo",
                &tempo,
                "--loki",
                &loki_down,
                "--timeout",
                "4s",
                format,
            ],
            &[("OBS_DATASOURCES", "")],
            None,
        );
        assert_eq!(run.code, Some(1), "loki is down: {run:?}");
        assert!(
            !run.output().contains("s3cr3t"),
            "a credential was printed: {run:?}"
        );
        assert!(
            run.output().contains("api_key=REDACTED") || run.output().contains("token=REDACTED"),
            "the redaction shows: {run:?}"
        );
        if format == "--format=json" {
            assert_eq!(
                run.check("tempo", "trace by id")["status"],
                "pass",
                "the URL with userinfo and a query still reaches Tempo: {run:?}"
            );
        }
    }
}

/// A gateway that serves `upstream` below `/tempo` (as an ingress with a path prefix does).
fn path_prefix_gateway(upstream: String) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tempo/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // reqwest is built without a default crypto provider (as in obs): install ring's, or
            // the client panics when this test runs in a process of its own (nextest).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::new();
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let Some(path) = uri.path().strip_prefix("/tempo") else {
                        return (axum::http::StatusCode::NOT_FOUND, String::new());
                    };
                    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                    match client.get(format!("{upstream}{path}{query}")).send().await {
                        Ok(r) => (
                            axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap(),
                            r.text().await.unwrap_or_default(),
                        ),
                        Err(_) => (axum::http::StatusCode::BAD_GATEWAY, String::new()),
                    }
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    (url, handle)
}

#[test]
fn a_store_below_a_path_prefix_is_asked_below_it() {
    let s = stores();
    let (prefixed, _gateway) = path_prefix_gateway(s.tempo.url().trim_end_matches('/').to_string());
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--tempo",
            &prefixed,
            "--timeout",
            "20s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.check("tempo", "trace by id")["status"],
        "pass",
        "{run:?}"
    );
    assert_eq!(
        run.check("tempo", "TraceQL search")["status"],
        "pass",
        "{run:?}"
    );
}

#[test]
fn a_fragment_in_a_store_url_is_refused_clearly() {
    let run = obs_verify(&["--tempo", "http://tempo:3200/#traces"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("--tempo") && run.stderr.contains("fragment"),
        "{run:?}"
    );
}

#[test]
fn link_checks_that_cannot_run_are_reported_as_skipped_with_the_reason() {
    let s = stores();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = obs_verify_in(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--loki",
            s.loki.url(),
            "--timeout",
            "20s",
        ],
        &[],
        Some(elsewhere.path()),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let link = run.check("grafana", "Tempo traces → Loki logs link");
    assert_eq!(link["status"], "skipped", "{run:?}");
    assert_eq!(link["reason"], "cannot_check", "{run:?}");
    let detail = link["detail"].as_str().unwrap();
    assert!(
        detail.contains("grafana/provisioning/datasources")
            && detail.contains(&elsewhere.path().display().to_string()),
        "names the path and where it looked: {detail}"
    );
    assert!(
        run.report()["verdict"]
            .as_str()
            .unwrap()
            .contains("not run"),
        "the verdict does not claim the links: {run:?}"
    );

    let missing = obs_verify(
        &["--loki", s.loki.url(), "--datasources", "/nonexistent"],
        &[],
    );
    assert_eq!(
        missing.code,
        Some(2),
        "a named directory that is missing: {missing:?}"
    );
    assert!(missing.stderr.contains("--datasources"), "{missing:?}");
}

#[test]
fn a_probe_metrics_address_that_cannot_be_bound_is_a_usage_error() {
    // 192.0.2.1 (TEST-NET-1) is never a local address.
    let run = obs_verify(
        &[
            "--tempo",
            "http://127.0.0.1:9",
            "--probe-metrics-listen",
            "192.0.2.1:9465",
        ],
        &[],
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--probe-metrics-listen"), "{run:?}");
}

#[test]
fn a_prometheus_that_sends_alerts_nowhere_is_named_and_a_missing_watchdog_too() {
    let s = stores();
    let metrics_port = api_doubles::reserve_port().unwrap();
    // Rules loaded, no Alertmanager configured; and an Alertmanager nobody sends to.
    let prometheus = prometheus(metrics_port);
    let lonely = alertmanager();
    let lonely_url = format!("http://{}", lonely.address);
    let run = obs_verify(
        &[
            "--otlp-endpoint",
            &s.collector.http_endpoint(),
            "--prometheus",
            &prometheus.url,
            "--alertmanager",
            &lonely_url,
            "--timeout",
            "20s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.check("prometheus", "alert rules loaded and healthy")["status"],
        "pass",
        "the shipped rules evaluate without error: {run:?}"
    );
    let sends = run.check("prometheus", "sends alerts to an Alertmanager");
    assert_eq!(sends["status"], "fail", "{run:?}");
    assert!(
        sends["detail"]
            .as_str()
            .unwrap()
            .contains("no active Alertmanager"),
        "{run:?}"
    );
    let watchdog = run.check("alertmanager", "Watchdog alert present");
    assert_eq!(watchdog["status"], "fail", "{run:?}");
    assert_eq!(watchdog["reason"], "absent", "{run:?}");
}
