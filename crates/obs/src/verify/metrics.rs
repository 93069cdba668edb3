//! The checks of Prometheus: the probe's metric from this run, and with `--target` the
//! target's RED metrics and an exemplar that links its latency to the probe trace; then the
//! scrape targets' `up`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::poll::{poll, wait_ready};
use super::probe::Probe;
use super::report::{Check, Finding, Reason};
use crate::backends::prometheus::Prometheus;
use crate::backends::{Backend, Http, StoreError};

/// The name of the probe metric check.
pub const PROBE_METRIC: &str = "probe metric";
/// The name of the scrape targets check.
pub const SCRAPE_TARGETS: &str = "scrape targets up";
/// The name of the rules check.
pub const RULES: &str = "alert rules loaded and healthy";
/// The name of the Alertmanager connection check.
pub const ALERTMANAGERS: &str = "sends alerts to an Alertmanager";

/// The alert path as Prometheus sees it: rules loaded, every one evaluated without error, and
/// an Alertmanager to send to.
async fn alert_path(prometheus: &Prometheus, http: &Http, deadline: Instant) -> Vec<Check> {
    let (rules, visible) = poll(deadline, || async {
        let rules = prometheus.rules(http).await?;
        if rules.is_empty() {
            return Err(Finding::new(
                Reason::Absent,
                "no rule is loaded: Prometheus's rule_files (stack/prometheus/rules/*.yml) are missing or not mounted",
            ));
        }
        let broken: Vec<String> = rules
            .iter()
            .filter_map(|r| r.last_error.as_ref().map(|e| format!("{} ({}): {e}", r.name, r.file)))
            .collect();
        if !broken.is_empty() {
            return Err(Finding::new(
                Reason::StoreError,
                format!("{} rule(s) fail to evaluate: {}", broken.len(), broken.join("; ")),
            ));
        }
        // A rule not evaluated yet (Prometheus just started, or a slow group) has no error.
        let pending = rules.iter().filter(|r| r.health != "ok").count();
        Ok(if pending == 0 {
            format!("{} rules, every one evaluated without error", rules.len())
        } else {
            format!(
                "{} rules without error ({pending} not evaluated yet)",
                rules.len()
            )
        })
    })
    .await;
    // Prometheus-compatible stores (Mimir) have no /api/v1/alertmanagers: their ruler sends
    // to their own Alertmanager, which --alertmanager checks.
    if let Err(StoreError::Status { status: 404, .. }) = prometheus.active_alertmanagers(http).await
    {
        return vec![
            Check::from_outcome(Backend::Prometheus, RULES, rules, visible),
            Check::skipped(
                Backend::Prometheus,
                ALERTMANAGERS,
                Finding::new(
                    Reason::CannotCheck,
                    "this Prometheus-compatible store answers 404 for /api/v1/alertmanagers (Mimir's ruler sends to its own Alertmanager): check that one with --alertmanager",
                ),
            ),
        ];
    }
    let (alertmanagers, am_visible) = poll(deadline, || async {
        let active = prometheus.active_alertmanagers(http).await?;
        if active.is_empty() {
            Err(Finding::new(
                Reason::Absent,
                "Prometheus has no active Alertmanager: its alerts reach nobody (alerting.alertmanagers in prometheus.yml, and is Alertmanager up?)",
            ))
        } else {
            Ok(format!("sends to {}", active.join(", ")))
        }
    })
    .await;
    vec![
        Check::from_outcome(Backend::Prometheus, RULES, rules, visible),
        Check::from_outcome(
            Backend::Prometheus,
            ALERTMANAGERS,
            alertmanagers,
            am_visible,
        ),
    ]
}

/// Every Prometheus check, polled until `deadline`.
pub async fn checks(
    prometheus: &Prometheus,
    http: &Http,
    probe: &Probe,
    has_target: bool,
    deadline: Instant,
) -> Vec<Check> {
    if let Err(finding) = wait_ready(deadline, || prometheus.ready(http)).await {
        // Every check of this store is named, so none silently disappears from the report.
        return [PROBE_METRIC, RULES, ALERTMANAGERS]
            .into_iter()
            .map(|name| Check::fail(Backend::Prometheus, name, finding.clone()))
            .collect();
    }
    let started_s = probe
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let metric = "obs_probe_last_run_timestamp_seconds";
    let (result, visible) = poll(deadline, || async {
        match prometheus.query(http, metric).await {
            Ok(series) if series.iter().any(|(_, v)| *v >= started_s - 1.0) => {
                Ok(format!("{metric} = this run"))
            }
            Ok(series) if series.is_empty() => Err(Finding::new(
                Reason::Absent,
                format!("reachable but {metric} is absent (is the probe's metric exported to Prometheus?)"),
            )),
            Ok(_) => Err(Finding::new(Reason::Absent, format!("{metric} holds an older run only"))),
            Err(e) => Err(e.into()),
        }
    })
    .await;
    let mut checks = vec![Check::from_outcome(
        Backend::Prometheus,
        PROBE_METRIC,
        result,
        visible,
    )];
    if has_target {
        let (result, visible) = poll(deadline, || async {
            match prometheus.query(http, "http_server_request_duration_seconds_count").await {
                Ok(series) if !series.is_empty() => {
                    let jobs: std::collections::BTreeSet<String> = series.iter().filter_map(|(m, _)| m.get("job").and_then(Value::as_str).map(str::to_string)).collect();
                    Ok(format!("series from {}", jobs.into_iter().collect::<Vec<_>>().join(", ")))
                }
                Ok(_) => Err(Finding::new(Reason::Absent, "no http_server_request_duration_seconds_count series: the target's /metrics is not scraped")),
                Err(e) => Err(e.into()),
            }
        })
        .await;
        checks.push(Check::from_outcome(
            Backend::Prometheus,
            "target RED metrics",
            result,
            visible,
        ));
        let end_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            + 600.0;
        let (result, visible) = poll(deadline, || async {
            match prometheus
                .exemplars(
                    http,
                    "http_server_request_duration_seconds_bucket",
                    started_s - 60.0,
                    end_s,
                )
                .await
            {
                Ok(labels)
                    if labels.iter().any(|l| {
                        l.get("trace_id").and_then(Value::as_str) == Some(probe.trace_id.as_str())
                    }) =>
                {
                    Ok("an exemplar links the target's latency to the probe trace".to_string())
                }
                Ok(_) => Err(Finding::new(
                    Reason::Absent,
                    format!(
                        "no exemplar with trace_id {} (exemplar storage on? OpenMetrics scrape?)",
                        probe.trace_id
                    ),
                )),
                Err(e) => Err(e.into()),
            }
        })
        .await;
        checks.push(Check::from_outcome(
            Backend::Prometheus,
            "exemplar → probe trace",
            result,
            visible,
        ));
    }
    match prometheus.query(http, "up").await {
        Ok(series) => {
            let down: Vec<String> = series
                .iter()
                .filter(|(_, v)| *v < 1.0)
                .filter_map(|(m, _)| m.get("job").and_then(Value::as_str).map(str::to_string))
                .collect();
            let detail = format!(
                "{} scraped target(s); down: {}",
                series.len(),
                if down.is_empty() {
                    "none".to_string()
                } else {
                    down.join(", ")
                }
            );
            checks.push(if down.is_empty() {
                Check::pass(Backend::Prometheus, SCRAPE_TARGETS, None, detail)
            } else {
                Check::fail(
                    Backend::Prometheus,
                    SCRAPE_TARGETS,
                    Finding::new(Reason::Absent, detail),
                )
            });
        }
        Err(e) => checks.push(Check::fail(Backend::Prometheus, SCRAPE_TARGETS, e.into())),
    }
    checks.extend(alert_path(prometheus, http, deadline).await);
    checks
}
