//! The probe: a real trace across two services over loopback HTTP, emitted through
//! `platform-telemetry` exactly as a service would, with a log line in each hop and a metric.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use opentelemetry::trace::TraceContextExt as _;
use platform_telemetry::Telemetry;
use platform_telemetry::http::ServerLayer;
use tracing::Instrument as _;
use tracing::instrument::WithSubscriber as _;

/// `service.name` of the probe's first hop.
pub const UPSTREAM: &str = "obs-probe";
/// `service.name` of the probe's second hop.
pub const DOWNSTREAM: &str = "obs-probe-downstream";
/// The root span's name.
pub const ROOT_SPAN: &str = "obs verify probe";
/// The downstream server span's name.
pub const DOWNSTREAM_SPAN: &str = "GET /probe/{step}";
/// The log line each hop writes.
pub const UPSTREAM_LOG: &str = "obs probe: upstream hop";
/// The log line each hop writes.
pub const DOWNSTREAM_LOG: &str = "obs probe: downstream hop";
/// The metric the probe records (Prometheus name `obs_probe_last_run_timestamp_seconds`).
pub const METRIC: &str = "obs.probe.last_run.timestamp";

fn context_of(span: &tracing::Span) -> opentelemetry::Context {
    tracing_opentelemetry::OpenTelemetrySpanExt::context(span)
}

/// What the probe did, for the checks.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The trace, 32 lowercase hex digits.
    pub trace_id: String,
    /// A random id for this run (span attribute `obs.probe.run`).
    pub run_id: String,
    /// When the probe started.
    pub started: SystemTime,
    /// When it finished (flushed).
    pub finished: SystemTime,
    /// `(service, span name)` the trace must hold.
    pub expected_spans: Vec<(String, String)>,
    /// Problems exporting the probe's own telemetry (the backend refused data).
    pub export_problems: Vec<String>,
    /// Where the probe exported, and which flag or variable said so (URLs redacted).
    pub export_endpoints: String,
    /// What the telemetry library could not use of the `OTEL_EXPORTER_OTLP_*` settings (a
    /// certificate file it cannot read, a malformed header): each names its variable, never a
    /// header value.
    pub export_warnings: Vec<String>,
    /// The target's answer, with `--target`.
    pub target_status: Option<Result<u16, String>>,
    /// Keeps the probe's `/metrics` served while the checks run (with `metrics_listen`).
    pub metrics_server: Option<std::sync::Arc<MetricsServer>>,
}

/// The probe's `/metrics` endpoint, served until dropped, so a Prometheus that scrapes it sees
/// the probe's metric.
#[derive(Debug)]
pub struct MetricsServer {
    /// Where it listens.
    pub address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
    telemetry: Telemetry,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.telemetry.shutdown();
    }
}

/// The probe's settings.
#[derive(Clone, Debug, Default)]
pub struct ProbeSettings {
    /// The general OTLP endpoint (per-signal `OTEL_EXPORTER_OTLP_*_ENDPOINT` still win).
    pub otlp_endpoint: Option<String>,
    /// A real service to call inside the probe's trace.
    pub target: Option<String>,
    /// Serve the probe's `/metrics` here while the checks run (for Prometheus to scrape).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The environment the probe's telemetry reads: the process's, with the probe's service name
/// and sampling forced, and `--otlp-endpoint` as the general endpoint.
fn probe_env(settings: &ProbeSettings) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.remove("OTEL_SERVICE_NAME");
    if let Some(attrs) = env.get_mut("OTEL_RESOURCE_ATTRIBUTES") {
        *attrs = attrs
            .split(',')
            .filter(|kv| !kv.trim().starts_with("service.name="))
            .collect::<Vec<_>>()
            .join(",");
    }
    env.insert("OTEL_SDK_DISABLED".into(), "false".into());
    env.insert("OTEL_TRACES_SAMPLER".into(), "always_on".into());
    env.insert("OTEL_TRACES_EXPORTER".into(), "otlp".into());
    env.insert("OTEL_LOGS_EXPORTER".into(), "otlp".into());
    env.entry("OTEL_METRICS_EXPORTER".into())
        .or_insert_with(|| "otlp,prometheus".into());
    env.insert("RUST_LOG".into(), "info".into());
    if let Some(endpoint) = &settings.otlp_endpoint {
        env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint.clone());
        if endpoint.ends_with(":4317") && !env.contains_key("OTEL_EXPORTER_OTLP_PROTOCOL") {
            env.insert("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into());
        }
    }
    env
}

/// Where each signal of the probe goes, and the flag or variable that decided it.
fn describe_endpoints(env: &BTreeMap<String, String>, settings: &ProbeSettings) -> String {
    let source = |signal: &str| {
        let own = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
        if let Some(url) = env.get(&own) {
            format!("{} ({own})", crate::redact::url(url))
        } else if let Some(url) = &settings.otlp_endpoint {
            format!(
                "{} (--otlp-endpoint / OBS_OTLP_ENDPOINT)",
                crate::redact::url(url)
            )
        } else if let Some(url) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            format!("{} (OTEL_EXPORTER_OTLP_ENDPOINT)", crate::redact::url(url))
        } else {
            "the default http://localhost:4318 (set --otlp-endpoint / OBS_OTLP_ENDPOINT)"
                .to_string()
        }
    };
    let (traces, logs) = (source("TRACES"), source("LOGS"));
    if traces == logs {
        traces
    } else {
        format!("traces: {traces}; logs: {logs}")
    }
}

fn instance(name: &str, env: &BTreeMap<String, String>) -> anyhow::Result<Telemetry> {
    platform_telemetry::builder()
        .service_name(name)
        .env_vars(env.clone())
        .log_writer(std::io::sink)
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .with_context(|| format!("cannot build the probe's telemetry ({name})"))
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs the probe and flushes everything it emitted.
pub async fn run(settings: &ProbeSettings) -> anyhow::Result<Probe> {
    let env = probe_env(settings);
    let export_endpoints = describe_endpoints(&env, settings);
    let upstream = instance(UPSTREAM, &env)?;
    let downstream = instance(DOWNSTREAM, &env)?;
    let export_warnings: Vec<String> = upstream
        .config_warnings()
        .iter()
        .filter(|w| w.variable.starts_with("OTEL_EXPORTER_OTLP"))
        .map(|w| crate::redact::text(&format!("{}: {}; using {}", w.variable, w.problem, w.using)))
        .collect();
    let run_id = format!("{:016x}", rand::random::<u64>());
    let started = SystemTime::now();

    let app = axum::Router::new()
        .route(
            "/probe/{step}",
            axum::routing::get(|| async {
                tracing::info!(obs.probe.hop = "downstream", "{DOWNSTREAM_LOG}");
                "ok"
            }),
        )
        .layer(ServerLayer::for_telemetry(&downstream));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the probe's downstream on loopback")?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = platform_telemetry::http::client_for(&upstream);
    let target = settings.target.clone();
    let gauge = upstream
        .meter("obs")
        .f64_gauge(METRIC)
        .with_unit("s")
        .with_description("When obs last ran its verification probe")
        .build();
    let run_for_span = run_id.clone();
    let (trace_id, downstream_result, target_status) = async move {
        let root = tracing::info_span!(
            "probe",
            otel.name = ROOT_SPAN,
            obs.probe.run = %run_for_span,
        );
        let trace_id = context_of(&root)
            .span()
            .span_context()
            .trace_id()
            .to_string();
        let work = async {
            tracing::info!(obs.probe.hop = "upstream", "{UPSTREAM_LOG}");
            let downstream = client
                .get(format!("http://{address}/probe/hop"))
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("answered {}", r.status()))
                    }
                });
            let target_status = match &target {
                Some(url) => Some(
                    client
                        .get(url)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .map_err(|e| crate::redact::text(&format!("{e:#}"))),
                ),
                None => None,
            };
            (downstream, target_status)
        };
        let (downstream, target_status) = work.instrument(root).await;
        (trace_id, downstream, target_status)
    }
    .with_subscriber(upstream.subscriber())
    .await;
    gauge.record(unix_seconds(started), &[]);
    server.abort();
    if let Err(e) = downstream_result {
        anyhow::bail!("the probe's own downstream call on loopback failed: {e}");
    }

    let mut export_problems = Vec::new();
    for (name, telemetry) in [(UPSTREAM, &upstream), (DOWNSTREAM, &downstream)] {
        if let Err(e) = telemetry.force_flush() {
            export_problems.push(format!("{name}: {e}"));
        }
        let stats = telemetry.pipeline_stats();
        for (signal, s) in [("spans", stats.spans), ("log records", stats.logs)] {
            if s.failed > 0 || s.dropped > 0 {
                export_problems.push(format!(
                    "{name}: {} {signal} failed to export and {} were dropped (is the OTLP endpoint reachable and accepting? One that wants a tenant or credentials takes them from OTEL_EXPORTER_OTLP_HEADERS, e.g. X-Scope-OrgID=team-a,Authorization=Bearer%20TOKEN; a private CA from OTEL_EXPORTER_OTLP_CERTIFICATE)",
                    s.failed, s.dropped
                ));
            }
        }
    }
    for warning in super::exporter_warnings::take() {
        export_problems.push(format!(
            "the backend accepted the export but rejected part of it (partial success): {warning}"
        ));
    }
    let _ = downstream.shutdown();
    let metrics_server = match settings.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (--probe-metrics-listen)"))?;
            let address = listener.local_addr()?;
            let app: axum::Router = upstream.endpoints();
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Some(std::sync::Arc::new(MetricsServer {
                address,
                task,
                telemetry: upstream,
            }))
        }
        None => {
            let _ = upstream.shutdown();
            None
        }
    };

    let mut expected_spans = vec![
        (UPSTREAM.to_string(), ROOT_SPAN.to_string()),
        (UPSTREAM.to_string(), "GET".to_string()),
        (DOWNSTREAM.to_string(), DOWNSTREAM_SPAN.to_string()),
    ];
    expected_spans.dedup();
    Ok(Probe {
        trace_id,
        run_id,
        started,
        finished: SystemTime::now(),
        expected_spans,
        export_problems,
        export_endpoints,
        export_warnings,
        target_status,
        metrics_server,
    })
}
