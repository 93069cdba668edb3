//! `obs verify`: emit a probe trace with logs and a metric, then prove each store has it —
//! complete, with propagation intact, findable, and linked the way Grafana will follow the links.
//!
//! One module per concern: [`settings`] (validated from the flags), [`probe`] (the trace it
//! sends), [`poll`] (waiting for data), [`judge`] (is the trace whole), one module of checks per
//! kind of store ([`traces`] for every [`TraceStore`](crate::backends::TraceStore), [`logs`],
//! [`metrics`], [`alerts`], [`collector`]), and [`report`] (what was found, as text or JSON).

pub mod alerts;
pub mod collector;
pub mod exporter_warnings;
pub mod judge;
pub mod logs;
pub mod metrics;
pub mod poll;
pub mod probe;
pub mod report;
pub mod settings;
pub mod traces;

use std::time::Instant;

use crate::backends::{Backend, Http, TraceStore};
use crate::connection::Connections;

pub use judge::judge_trace;
pub use report::{Check, Finding, Reason, Report, Status};
pub use settings::{DatasourceFiles, Settings, Targets, UsageError};

/// The probe's own checks: its OTLP export and its call to `--target`.
fn probe_checks(probe: &probe::Probe) -> Vec<Check> {
    let warnings = if probe.export_warnings.is_empty() {
        String::new()
    } else {
        format!(" (settings not used: {})", probe.export_warnings.join("; "))
    };
    let mut checks = vec![if probe.export_problems.is_empty() {
        Check::pass(
            Backend::Probe,
            "OTLP export",
            None,
            format!(
                "every span and log record was accepted by {}{warnings}",
                probe.export_endpoints
            ),
        )
    } else {
        Check::fail(
            Backend::Probe,
            "OTLP export",
            Finding::new(
                Reason::Dropped,
                format!(
                    "the OTLP endpoint refused or never received data: {} (tried {}){warnings}",
                    probe.export_problems.join("; "),
                    probe.export_endpoints
                ),
            ),
        )
    }];
    if let Some(result) = &probe.target_status {
        checks.push(match result {
            Ok(status) if *status < 500 => Check::pass(
                Backend::Probe,
                "target call",
                None,
                format!("answered {status}"),
            ),
            Ok(status) => Check::fail(
                Backend::Probe,
                "target call",
                Finding::new(Reason::StoreError, format!("answered {status}")),
            ),
            Err(e) => Check::fail(
                Backend::Probe,
                "target call",
                Finding::new(Reason::Unreachable, e.clone()),
            ),
        });
    }
    checks
}

/// A store that was not given, as a skipped line: the report says what it did not check.
fn not_requested(backend: Backend, flag: &str) -> Check {
    Check::skipped(
        backend,
        "not checked",
        Finding::new(
            Reason::NotRequested,
            format!("{flag} not given: {backend} was not checked"),
        ),
    )
}

async fn trace_store<S: TraceStore>(
    store: Option<&S>,
    flag: &str,
    backend: Backend,
    http: &Http,
    probe: &probe::Probe,
    settings: &Settings,
    deadline: Instant,
) -> Vec<Check> {
    match store {
        Some(store) => {
            traces::checks(
                store,
                http,
                probe,
                &settings.target_services,
                settings.max_clock_skew,
                deadline,
            )
            .await
        }
        None => vec![not_requested(backend, flag)],
    }
}

/// A store that answers without the probe's data may be answering for another tenant than
/// the one the data was written under: when obs read as a tenant, the detail says which.
fn name_the_tenant(check: &mut Check, connections: &Connections) {
    let Some(tenant) = connections
        .of_backend(check.backend)
        .and_then(|c| c.tenant.as_ref())
    else {
        return;
    };
    if check.status == Status::Fail
        && matches!(check.reason, Some(Reason::Absent | Reason::Incomplete))
    {
        check.detail.push_str(&format!(
            " — obs read as tenant {:?} (from {}): is the probe's data written under that tenant (the collector's or OTEL_EXPORTER_OTLP_HEADERS's X-Scope-OrgID)?",
            tenant.id, tenant.source
        ));
    }
}

/// Runs the probe and every check; a store that is down is a failed check, not an error.
pub async fn verify(settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let http = Http::new(settings.http_timeout)?;
    let c = &settings.connections;
    let timeout = settings.http_timeout;
    let (tempo_http, jaeger_http, loki_http, prometheus_http, alertmanager_http) = (
        Http::for_connection(timeout, &c.tempo)?,
        Http::for_connection(timeout, &c.jaeger)?,
        Http::for_connection(timeout, &c.loki)?,
        Http::for_connection(timeout, &c.prometheus)?,
        Http::for_connection(timeout, &c.alertmanager)?,
    );
    let collector_before = match &settings.collector {
        Some(collector) => Some(collector.counters(&http).await),
        None => None,
    };
    let probe = probe::run(&settings.probe).await?;
    let mut checks = probe_checks(&probe);
    let t = &settings.targets;
    let tempo = trace_store(
        t.tempo.as_ref(),
        "--tempo (OBS_TEMPO)",
        Backend::Tempo,
        &tempo_http,
        &probe,
        settings,
        deadline,
    );
    let jaeger = trace_store(
        t.jaeger.as_ref(),
        "--jaeger (OBS_JAEGER)",
        Backend::Jaeger,
        &jaeger_http,
        &probe,
        settings,
        deadline,
    );
    let loki = async {
        match &t.loki {
            Some(loki) => {
                logs::checks(loki, &loki_http, &probe, &settings.datasources, deadline).await
            }
            None => vec![not_requested(Backend::Loki, "--loki (OBS_LOKI)")],
        }
    };
    let prometheus = async {
        match &t.prometheus {
            Some(prometheus) => {
                metrics::checks(
                    prometheus,
                    &prometheus_http,
                    &probe,
                    settings.probe.target.is_some(),
                    deadline,
                )
                .await
            }
            None => vec![not_requested(
                Backend::Prometheus,
                "--prometheus (OBS_PROMETHEUS)",
            )],
        }
    };
    let alertmanager = async {
        match &t.alertmanager {
            Some(alertmanager) => alerts::checks(alertmanager, &alertmanager_http, deadline).await,
            None => vec![not_requested(
                Backend::Alertmanager,
                "--alertmanager (OBS_ALERTMANAGER)",
            )],
        }
    };
    let (a, b, c, d, e) = tokio::join!(tempo, jaeger, loki, prometheus, alertmanager);
    checks.extend(a.into_iter().chain(b).chain(c).chain(d).chain(e));
    for check in &mut checks {
        name_the_tenant(check, &settings.connections);
    }
    if let (Some(collector), Some(before)) = (&settings.collector, collector_before) {
        checks.push(match (before, collector.counters(&http).await) {
            (Ok(before), Ok(after)) => collector::check(&before, &after),
            (Err(e), _) | (_, Err(e)) => Check::fail(
                Backend::Collector,
                collector::PIPELINE_COUNTERS,
                Finding::new(
                    Finding::from(e.clone()).reason,
                    format!("cannot read the collector's metrics: {e}"),
                ),
            ),
        });
    }
    Ok(Report::new(
        probe.trace_id,
        probe.run_id,
        started.elapsed(),
        checks,
    ))
}
