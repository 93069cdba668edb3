//! The checks of Loki: each probe hop's log lines found by trace id, and the links Grafana
//! follows between Tempo and Loki (from the datasource files) run against the real Loki.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::poll::{poll, wait_ready};
use super::probe::{DOWNSTREAM, Probe, UPSTREAM};
use super::report::{Check, Finding, Reason};
use super::settings::DatasourceFiles;
use crate::backends::loki::Loki;
use crate::backends::{Backend, Http};
use crate::grafana::correlations::{derived_value, render_traces_to_logs};
use crate::grafana::files;

/// The name of the Tempo → Loki link check.
pub const TRACES_TO_LOGS: &str = "Tempo traces → Loki logs link";
/// The name of the Loki → Tempo derived field check.
pub const LOGS_TO_TRACES: &str = "Loki logs → Tempo derived field";

fn ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The time range the queries cover, Unix nanoseconds.
#[derive(Clone, Copy)]
struct Range {
    start: u128,
    end: u128,
}

/// Every Loki check, polled until `deadline`.
pub async fn checks(
    loki: &Loki,
    http: &Http,
    probe: &Probe,
    datasources: &DatasourceFiles,
    deadline: Instant,
) -> Vec<Check> {
    if let Err(finding) = wait_ready(deadline, || loki.ready(http)).await {
        return vec![Check::fail(
            Backend::Loki,
            "probe logs by trace id",
            finding,
        )];
    }
    let range = Range {
        start: ns(probe.started).saturating_sub(300_000_000_000),
        end: ns(SystemTime::now()).saturating_add(3_600_000_000_000),
    };
    let mut checks = Vec::new();
    for service in [UPSTREAM, DOWNSTREAM] {
        let query = format!(
            "{{service_name=\"{service}\"}} | trace_id=\"{}\"",
            probe.trace_id
        );
        let (outcome, visible) = poll(deadline, || async {
            match loki.query_range(http, &query, range.start, range.end).await {
                Ok(lines) if !lines.is_empty() => Ok(format!("{} line(s) for {query}", lines.len())),
                Ok(_) => {
                    // Tell "no logs at all" from "logs without trace id".
                    let any = format!("{{service_name=\"{service}\"}} |= \"obs probe\"");
                    match loki.query_range(http, &any, range.start, range.end).await {
                        Ok(lines) if !lines.is_empty() => Err(Finding::new(
                            Reason::Incomplete,
                            format!(
                                "logs of {service} arrive but without trace_id {} as structured metadata ({query} found nothing)",
                                probe.trace_id
                            ),
                        )),
                        _ => Err(Finding::new(
                            Reason::Absent,
                            format!("reachable but no logs of {service} for this trace ({query})"),
                        )),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })
        .await;
        checks.push(Check::from_outcome(
            Backend::Loki,
            &format!("logs of {service}"),
            outcome,
            visible,
        ));
    }
    match datasources {
        DatasourceFiles::Dir(dir) => {
            checks.extend(correlations(dir, loki, http, probe, deadline, range).await);
        }
        DatasourceFiles::Skip(why) => {
            for name in [TRACES_TO_LOGS, LOGS_TO_TRACES] {
                checks.push(Check::skipped(
                    Backend::Grafana,
                    name,
                    Finding::new(Reason::CannotCheck, why.clone()),
                ));
            }
        }
    }
    checks
}

/// Follows the provisioned links as Grafana would: Tempo's traces→logs query, run on Loki, and
/// Loki's derived field applied to a probe log line.
async fn correlations(
    dir: &Path,
    loki: &Loki,
    http: &Http,
    probe: &Probe,
    deadline: Instant,
    range: Range,
) -> Vec<Check> {
    let lookup = |name: &str| std::env::var(name).ok();
    let datasources = match files::load_datasources(dir, &lookup) {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::fail(
                Backend::Grafana,
                "correlations",
                Finding::new(Reason::CannotCheck, format!("{e:#}")),
            )];
        }
    };
    let mut checks = Vec::new();
    let tempo = datasources
        .datasources
        .iter()
        .find(|(_, d)| d.kind == "tempo");
    match tempo {
        Some((_, tempo)) => {
            let v2 = tempo
                .json_data
                .as_ref()
                .and_then(|j| j.get("tracesToLogsV2"))
                .cloned()
                .unwrap_or(Value::Null);
            let query = render_traces_to_logs(&v2, UPSTREAM, &probe.trace_id);
            let (outcome, visible) = poll(deadline, || async {
                match loki.query_range(http, &query, range.start, range.end).await {
                    Ok(lines) if !lines.is_empty() => {
                        Ok(format!("{query} finds {} probe line(s)", lines.len()))
                    }
                    Ok(_) => Err(Finding::new(
                        Reason::LinkBroken,
                        format!("Grafana's Tempo → logs link would run {query} and find nothing"),
                    )),
                    Err(e) => Err(e.into()),
                }
            })
            .await;
            checks.push(Check::from_outcome(
                Backend::Grafana,
                TRACES_TO_LOGS,
                outcome,
                visible,
            ));
        }
        None => checks.push(Check::skipped(
            Backend::Grafana,
            TRACES_TO_LOGS,
            Finding::new(
                Reason::CannotCheck,
                format!("no datasource of type tempo in {}", dir.display()),
            ),
        )),
    }
    let loki_ds = datasources
        .datasources
        .iter()
        .find(|(_, d)| d.kind == "loki");
    let Some((_, loki_ds)) = loki_ds else {
        checks.push(Check::skipped(
            Backend::Grafana,
            LOGS_TO_TRACES,
            Finding::new(
                Reason::CannotCheck,
                format!("no datasource of type loki in {}", dir.display()),
            ),
        ));
        return checks;
    };
    let fields = loki_ds
        .json_data
        .as_ref()
        .and_then(|j| j.get("derivedFields"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let query = format!(
        "{{service_name=\"{UPSTREAM}\"}} | trace_id=\"{}\"",
        probe.trace_id
    );
    let lines = match loki.query_range(http, &query, range.start, range.end).await {
        Ok(lines) => lines,
        Err(e) => {
            checks.push(Check::fail(Backend::Grafana, LOGS_TO_TRACES, e.into()));
            return checks;
        }
    };
    let found = lines.iter().any(|line| {
        fields
            .iter()
            .any(|field| derived_value(field, line).as_deref() == Some(probe.trace_id.as_str()))
    });
    checks.push(if lines.is_empty() {
        Check::skipped(
            Backend::Grafana,
            LOGS_TO_TRACES,
            Finding::new(Reason::CannotCheck, "no probe log line to apply it to"),
        )
    } else if found {
        Check::pass(
            Backend::Grafana,
            LOGS_TO_TRACES,
            None,
            "the derived field extracts the probe's trace id from its log line",
        )
    } else {
        Check::fail(
            Backend::Grafana,
            LOGS_TO_TRACES,
            Finding::new(
                Reason::LinkBroken,
                format!(
                    "no derived field in {} extracts trace id {} from the probe's log line: users would get no link to the trace",
                    dir.display(),
                    probe.trace_id
                ),
            ),
        )
    });
    checks
}
