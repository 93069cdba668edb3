//! `obs sidecar`: provision Grafana (waiting and retrying), become ready, then verify every
//! store on a jittered interval — a canary for the whole pipeline — exposing the results on
//! `/metrics`, `/status`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use opentelemetry::KeyValue;
use tokio::sync::RwLock;

use crate::grafana::client::GrafanaClient;
use crate::grafana::provision::{self, Desired, Options};
use crate::verify::{self, Reason, Report, Settings, Status};

/// Shared state behind the endpoints.
#[derive(Debug, Default)]
pub struct State {
    ready: AtomicBool,
    last_report: RwLock<Option<Report>>,
}

/// What the sidecar needs.
#[derive(Debug)]
pub struct SidecarConfig {
    /// Grafana and the files; `None` skips provisioning.
    pub provision: Option<(GrafanaClient, Desired)>,
    /// How long to wait for Grafana on each provisioning attempt.
    pub grafana_wait: Duration,
    /// The verification, run on an interval; `None` (no store given) provisions only.
    pub verify: Option<Settings>,
    /// The interval between verifications (jittered by ±10 %).
    pub interval: Duration,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The HTTP endpoints.
pub fn router(state: Arc<State>, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    let ready_state = state.clone();
    let status_state = state;
    axum::Router::new()
        .route(
            "/readyz",
            axum::routing::get(move || {
                let state = ready_state.clone();
                async move {
                    if state.ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ready\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "provisioning Grafana\n").into_response()
                    }
                }
            }),
        )
        .route(
            "/status",
            axum::routing::get(move || {
                let state = status_state.clone();
                async move {
                    match &*state.last_report.read().await {
                        Some(report) => axum::Json(serde_json::json!(report)).into_response(),
                        None => {
                            (StatusCode::NOT_FOUND, "no verification has run yet\n").into_response()
                        }
                    }
                }
            }),
        )
        .route("/alerts", alerts_webhook(telemetry))
        .merge(telemetry.endpoints())
}

/// The largest webhook body accepted (Alertmanager batches alerts per group).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
/// The most alerts read from one webhook call.
pub const MAX_WEBHOOK_ALERTS: usize = 1000;

/// `POST /alerts`: Alertmanager's webhook (the shipped stack/alertmanager/alertmanager.yml
/// sends here until users point it at their own receiver). Each alert is logged and counted in
/// `obs_alerts_received_total{alertname,status}`.
fn alerts_webhook(telemetry: &platform_telemetry::Telemetry) -> axum::routing::MethodRouter {
    let received = telemetry
        .meter("obs")
        .u64_counter("obs.alerts.received")
        .with_description("Alerts received from Alertmanager's webhook, by alert and status")
        .build();
    axum::routing::post(move |body: axum::body::Bytes| {
        let received = received.clone();
        async move {
            let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return (
                    StatusCode::BAD_REQUEST,
                    "not an Alertmanager webhook payload (JSON with \"alerts\")\n",
                )
                    .into_response();
            };
            let alerts = payload["alerts"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            for alert in alerts.iter().take(MAX_WEBHOOK_ALERTS) {
                let text = |v: &serde_json::Value| {
                    v.as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect::<String>()
                };
                let name = text(&alert["labels"]["alertname"]);
                let status = text(&alert["status"]);
                let severity = text(&alert["labels"]["severity"]);
                let job = text(&alert["labels"]["job"]);
                let summary = text(&alert["annotations"]["summary"]);
                received.add(
                    1,
                    &[
                        KeyValue::new("alertname", name.clone()),
                        KeyValue::new("status", status.clone()),
                    ],
                );
                if status == "firing" && name != "Watchdog" {
                    tracing::warn!(alertname = %name, %status, %severity, %job, "alert: {summary}");
                } else {
                    tracing::info!(alertname = %name, %status, %severity, %job, "alert: {summary}");
                }
            }
            (StatusCode::OK, "ok\n").into_response()
        }
    })
    .layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// Runs until SIGINT/SIGTERM. The global telemetry must be installed (obs observes itself).
///
/// `listener` is bound by the caller, so an address that cannot be bound is a usage error
/// before anything starts.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: SidecarConfig,
    telemetry: platform_telemetry::Telemetry,
) -> anyhow::Result<()> {
    let state = Arc::new(State::default());
    let listen = listener.local_addr()?;
    tracing::info!(listen = %listen, "obs sidecar serving /healthz /readyz /metrics /status");
    let app = router(state.clone(), &telemetry);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let work = work(config, state, telemetry);
    tokio::select! {
        result = work => result?,
        _ = shutdown_signal() => tracing::info!("obs sidecar stopping"),
    }
    server.abort();
    Ok(())
}

async fn work(
    config: SidecarConfig,
    state: Arc<State>,
    telemetry: platform_telemetry::Telemetry,
) -> anyhow::Result<()> {
    let meter = telemetry.meter("obs");
    let provisioned_at = meter
        .f64_gauge("obs.provision.last_success.timestamp")
        .with_unit("s")
        .with_description("When obs last provisioned Grafana successfully")
        .build();
    let success = meter
        .u64_gauge("obs.verify.success")
        .with_description("1 when the last verification of the backend passed")
        .build();
    let backend_up = meter
        .u64_gauge("obs.backend.up")
        .with_description("1 when the backend answered (ready) in the last verification")
        .build();
    let runs = meter
        .u64_counter("obs.verify.runs")
        .with_description("Verification runs by result")
        .build();
    let visible = meter
        .f64_histogram("obs.verify.visible")
        .with_unit("s")
        .with_description("Time from the probe's flush until it was visible, per backend")
        .with_boundaries(vec![
            0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0,
        ])
        .build();
    let probe_gauge = meter
        .f64_gauge("obs.probe.last_run.timestamp")
        .with_unit("s")
        .with_description("When obs last ran its verification probe")
        .build();

    if let Some((client, desired)) = &config.provision {
        let mut delay = Duration::from_secs(2);
        loop {
            let attempt = async {
                let waited = provision::wait_healthy(client, config.grafana_wait).await?;
                provision::provision(client, desired, Options::default(), waited).await
            };
            match attempt.await {
                Ok(report) if report.succeeded() => {
                    tracing::info!(summary = %report.to_string().lines().last().unwrap_or_default(), "Grafana provisioned");
                    provisioned_at.record(now_seconds(), &[]);
                    break;
                }
                Ok(report) => {
                    tracing::error!(report = %report, "Grafana provisioning incomplete; retrying")
                }
                Err(e) => {
                    tracing::error!(error = %crate::redact::text(&e.to_string()), "Grafana provisioning failed; retrying")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
    state.ready.store(true, Ordering::SeqCst);

    let Some(settings) = &config.verify else {
        tracing::warn!(
            "no store given (--tempo, --jaeger, --loki, --prometheus): the sidecar provisioned \
             Grafana and does not verify; /status stays empty"
        );
        std::future::pending::<()>().await;
        return Ok(());
    };
    loop {
        probe_gauge.record(now_seconds(), &[]);
        match verify::verify(settings).await {
            Ok(report) => {
                runs.add(
                    1,
                    &[KeyValue::new(
                        "result",
                        if report.passed { "pass" } else { "fail" },
                    )],
                );
                let mut backends: std::collections::BTreeMap<&str, (bool, bool)> =
                    Default::default();
                // Stores that were not given are not backends of this sidecar.
                for check in report
                    .checks
                    .iter()
                    .filter(|c| c.reason != Some(Reason::NotRequested))
                {
                    let entry = backends
                        .entry(check.backend.as_str())
                        .or_insert((true, true));
                    if check.status == Status::Fail {
                        entry.0 = false;
                        if matches!(check.reason, Some(Reason::Unreachable | Reason::NotReady)) {
                            entry.1 = false;
                        }
                    }
                    if let Some(seconds) = check.visible_after_seconds {
                        visible
                            .record(seconds, &[KeyValue::new("backend", check.backend.as_str())]);
                    }
                }
                for (backend, (ok, up)) in backends {
                    success.record(u64::from(ok), &[KeyValue::new("backend", backend)]);
                    backend_up.record(u64::from(up), &[KeyValue::new("backend", backend)]);
                }
                if report.passed {
                    tracing::info!(trace_id = %report.trace_id, "verification passed");
                } else {
                    tracing::warn!(trace_id = %report.trace_id, report = %report, "verification failed");
                }
                *state.last_report.write().await = Some(report);
            }
            Err(e) => {
                runs.add(1, &[KeyValue::new("result", "error")]);
                tracing::error!(error = %crate::redact::error(&e), "verification could not run");
            }
        }
        let jitter = 0.9 + rand::random::<f64>() * 0.2;
        tokio::time::sleep(config.interval.mul_f64(jitter)).await;
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `obs health`: exit 0 when the sidecar at `listen` answers ready.
pub async fn health(listen: SocketAddr) -> bool {
    let host = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let Ok(http) = crate::backends::Http::new(Duration::from_secs(3)) else {
        return false;
    };
    let Ok(url) = url::Url::parse(&format!("http://{host}/readyz")) else {
        return false;
    };
    matches!(http.get(url, &[]).await, Ok((200..=299, _)))
}
