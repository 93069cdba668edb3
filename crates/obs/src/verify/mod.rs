//! `obs verify`: emit a probe trace with logs and a metric, then prove each store has it —
//! complete, with propagation intact, findable, and linked the way Grafana will follow the links.

pub mod exporter_warnings;
pub mod probe;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::backends::{self, Lookup, Readiness, Trace, jaeger, loki, prometheus, tempo};
use crate::grafana::files;
use probe::{DOWNSTREAM, Probe, ProbeSettings, UPSTREAM};

/// Where the stores are; each one is optional and only the given ones are checked.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// Tempo's query URL (`http://tempo:3200`).
    pub tempo: Option<String>,
    /// Jaeger's query URL (`http://jaeger:16686`).
    pub jaeger: Option<String>,
    /// Loki's URL (`http://loki:3100`).
    pub loki: Option<String>,
    /// Prometheus's URL (`http://prometheus:9090`).
    pub prometheus: Option<String>,
}

/// Everything one verification needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The stores.
    pub targets: Targets,
    /// The probe.
    pub probe: ProbeSettings,
    /// Services the `--target` call must add to the trace.
    pub target_services: Vec<String>,
    /// Grafana datasource files, to follow the correlations as Grafana would.
    pub datasources: Option<PathBuf>,
    /// Total time allowed.
    pub timeout: Duration,
    /// Per HTTP call.
    pub http_timeout: Duration,
    /// The largest accepted distance between a span's clock and ours.
    pub max_clock_skew: Duration,
    /// The collector's own Prometheus metrics (`http://collector:8888/metrics`), read before and
    /// after the probe to name the exporter that dropped it.
    pub collector_metrics: Option<String>,
}

/// Sums of the collector's counters by (metric, component), from its Prometheus text.
fn collector_counters(text: &str) -> std::collections::BTreeMap<(String, String), f64> {
    let mut sums = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("otelcol_")) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let component = labels
            .split(',')
            .find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                matches!(k.trim(), "exporter" | "receiver")
                    .then(|| v.trim_matches(['"', '}']).to_string())
            })
            .unwrap_or_default();
        *sums.entry((name.to_string(), component)).or_insert(0.0) += value;
    }
    sums
}

async fn read_collector(
    client: &reqwest::Client,
    url: &str,
) -> Result<std::collections::BTreeMap<(String, String), f64>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", backends::transport_error(&e)))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    Ok(collector_counters(&text))
}

/// What changed in the collector while the probe ran: accepted, sent, and failed per component.
fn collector_check(
    before: &std::collections::BTreeMap<(String, String), f64>,
    after: &std::collections::BTreeMap<(String, String), f64>,
) -> Check {
    let delta = |key: &(String, String)| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    let mut failed = Vec::new();
    let mut moved = Vec::new();
    for key in after.keys() {
        let d = delta(key);
        if d <= 0.0 {
            continue;
        }
        let (name, component) = key;
        if name.contains("send_failed")
            || name.contains("refused")
            || name.contains("enqueue_failed")
        {
            failed.push(format!("{component} ({name} +{d})"));
        } else if name.contains("accepted") || name.contains("sent") {
            moved.push(format!(
                "{component} {} +{d}",
                name.trim_start_matches("otelcol_")
            ));
        }
    }
    if failed.is_empty() {
        check(
            "collector",
            "pipeline counters",
            Status::Pass,
            None,
            if moved.is_empty() {
                "no counter moved while the probe ran (is the probe going through this collector?)"
                    .to_string()
            } else {
                moved.join(", ")
            },
        )
    } else {
        check(
            "collector",
            "pipeline counters",
            Status::Fail,
            None,
            format!("the collector dropped probe data at: {}", failed.join(", ")),
        )
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven.
    Pass,
    /// Not proven before the deadline.
    Fail,
    /// Not run (a store not given, or nothing to check).
    Skipped,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// `tempo`, `jaeger`, `loki`, `prometheus`, `grafana`, `probe`.
    pub backend: String,
    /// What was checked.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// Seconds from the probe's flush until the data was visible.
    pub visible_after_seconds: Option<f64>,
    /// What was found, or the diagnosis in plain words.
    pub detail: String,
}

/// The whole report (`--format json` prints it; schema in `obs verify --help`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The probe's trace id, to look it up by hand.
    pub trace_id: String,
    /// The probe's run id (span attribute `obs.probe.run`).
    pub run_id: String,
    /// True when every check that ran passed.
    pub passed: bool,
    /// Seconds the whole verification took.
    pub elapsed_seconds: f64,
    /// Every check.
    pub checks: Vec<Check>,
}

fn check(
    backend: &str,
    name: &str,
    status: Status,
    visible: Option<Duration>,
    detail: impl Into<String>,
) -> Check {
    Check {
        backend: backend.to_string(),
        check: name.to_string(),
        status,
        visible_after_seconds: visible.map(|d| (d.as_secs_f64() * 100.0).round() / 100.0),
        detail: detail.into(),
    }
}

/// A polled result as a check line: visible-after time on a pass, the diagnosis on a failure.
fn outcome(backend: &str, name: &str, result: Result<String, String>, visible: Duration) -> Check {
    match result {
        Ok(detail) => check(backend, name, Status::Pass, Some(visible), detail),
        Err(why) => check(backend, name, Status::Fail, None, why),
    }
}

/// Retries `attempt` with backoff until it returns `Ok`, or the deadline passes; returns the
/// last diagnosis then. `Ok` carries the detail to report.
async fn poll<F, Fut>(deadline: Instant, mut attempt: F) -> (Result<String, String>, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let result = attempt().await;
        if result.is_ok() || Instant::now() + delay >= deadline {
            return (result, started.elapsed());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// Waits for a store to be ready: "down" and "not ready yet" are different findings.
async fn wait_ready<F, Fut>(deadline: Instant, mut probe: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Readiness>,
{
    let (result, _) = poll(deadline, || {
        let f = probe();
        async move {
            match f.await {
                Readiness::Ready => Ok(String::new()),
                Readiness::NotReady(why) => Err(format!("reachable but not ready: {why}")),
                Readiness::Unreachable(why) => Err(format!("unreachable: {why}")),
            }
        }
    })
    .await;
    result.map(|_| ())
}

/// Judges a trace: every expected span, no orphans, sane timestamps.
pub fn judge_trace(
    trace: &Trace,
    probe: &Probe,
    target_services: &[String],
    max_skew: Duration,
) -> Result<String, String> {
    let spans: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.trace_id == probe.trace_id)
        .collect();
    let missing: Vec<String> = probe
        .expected_spans
        .iter()
        .filter(|(service, name)| {
            !spans
                .iter()
                .any(|s| &s.service == service && &s.name == name)
        })
        .map(|(service, name)| format!("{service}/{name:?}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "trace present but spans missing: {} (it has {})",
            missing.join(", "),
            spans
                .iter()
                .map(|s| format!("{}/{:?}", s.service, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let orphans: Vec<String> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id
                .as_ref()
                .is_some_and(|p| !spans.iter().any(|o| &o.span_id == p))
        })
        .map(|s| {
            format!(
                "{}/{:?} (parent {} not in the trace)",
                s.service,
                s.name,
                s.parent_span_id.clone().unwrap_or_default()
            )
        })
        .collect();
    if !orphans.is_empty() {
        return Err(format!(
            "propagation broken: orphaned spans {} — the hop before them did not pass traceparent, or its span was not exported",
            orphans.join(", ")
        ));
    }
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    if roots.len() != 1 {
        return Err(format!(
            "propagation broken: {} root spans ({}) — a hop started its own trace instead of continuing ours",
            roots.len(),
            roots
                .iter()
                .map(|s| format!("{}/{:?}", s.service, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let services: std::collections::BTreeSet<&str> =
        spans.iter().map(|s| s.service.as_str()).collect();
    let missing_services: Vec<&String> = target_services
        .iter()
        .filter(|s| !services.contains(s.as_str()))
        .collect();
    if !missing_services.is_empty() {
        return Err(format!(
            "the target's services are missing from the trace: {} (present: {}) — they did not continue the probe's traceparent or did not export",
            missing_services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            services.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    let to_ns = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    };
    let skew = max_skew.as_nanos();
    let (earliest, latest) = (
        to_ns(probe.started).saturating_sub(skew),
        to_ns(probe.finished) + skew,
    );
    let skewed: Vec<String> = spans
        .iter()
        .filter(|s| s.end_ns < s.start_ns || s.start_ns < earliest || s.start_ns > latest)
        .map(|s| format!("{}/{:?}", s.service, s.name))
        .collect();
    if !skewed.is_empty() {
        return Err(format!(
            "timestamps off by more than {max_skew:?} from obs's clock (clock skew on that host?): {}",
            skewed.join(", ")
        ));
    }
    Ok(format!(
        "{} spans from {}, every parent present",
        spans.len(),
        services.iter().copied().collect::<Vec<_>>().join(", ")
    ))
}

async fn trace_store(
    name: &'static str,
    base: String,
    client: reqwest::Client,
    probe: &Probe,
    settings: &Settings,
    deadline: Instant,
) -> Vec<Check> {
    let ready = match name {
        "tempo" => wait_ready(deadline, || tempo::ready(&client, &base)).await,
        _ => wait_ready(deadline, || jaeger::ready(&client, &base)).await,
    };
    if let Err(why) = ready {
        return vec![check(
            name,
            "trace by id",
            Status::Fail,
            None,
            format!("{base}: {why}"),
        )];
    }
    let (result, visible) = poll(deadline, || async {
        let lookup = match name {
            "tempo" => tempo::trace(&client, &base, &probe.trace_id).await,
            _ => jaeger::trace(&client, &base, &probe.trace_id).await,
        };
        match lookup {
            Lookup::Found(trace) => judge_trace(
                &trace,
                probe,
                &settings.target_services,
                settings.max_clock_skew,
            ),
            Lookup::Absent(why) => Err(format!("reachable but trace absent ({why})")),
            Lookup::Failed(why) => Err(why),
        }
    })
    .await;
    let mut checks = vec![outcome(name, "trace by id", result, visible)];
    if name == "tempo" {
        let traceql = format!("{{ span.obs.probe.run = \"{}\" }}", probe.run_id);
        let start = probe
            .started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(300);
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            + 3600;
        let (result, visible) = poll(deadline, || async {
            match tempo::search_finds(&client, &base, &traceql, &probe.trace_id, start, end).await {
                Ok(true) => Ok(format!("found by {traceql}")),
                Ok(false) => Err(format!("fetchable by id but not found by TraceQL {traceql} (search indexes lag; users find traces by search)")),
                Err(e) => Err(e),
            }
        })
        .await;
        checks.push(outcome(name, "TraceQL search", result, visible));
    }
    checks
}

fn ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn loki_checks(
    base: String,
    client: reqwest::Client,
    probe: &Probe,
    settings: &Settings,
    deadline: Instant,
) -> Vec<Check> {
    if let Err(why) = wait_ready(deadline, || loki::ready(&client, &base)).await {
        return vec![check(
            "loki",
            "probe logs by trace id",
            Status::Fail,
            None,
            format!("{base}: {why}"),
        )];
    }
    let start = ns(probe.started).saturating_sub(300_000_000_000);
    let end = ns(SystemTime::now()) + 3_600_000_000_000;
    let mut checks = Vec::new();
    for service in [UPSTREAM, DOWNSTREAM] {
        let query = format!(
            "{{service_name=\"{service}\"}} | trace_id=\"{}\"",
            probe.trace_id
        );
        let (result, visible) = poll(deadline, || async {
            match loki::query_range(&client, &base, &query, start, end).await {
                Ok(lines) if !lines.is_empty() => Ok(format!("{} line(s) for {query}", lines.len())),
                Ok(_) => {
                    // Tell "no logs at all" from "logs without trace id".
                    let any = format!("{{service_name=\"{service}\"}} |= \"obs probe\"");
                    match loki::query_range(&client, &base, &any, start, end).await {
                        Ok(lines) if !lines.is_empty() => Err(format!(
                            "logs of {service} arrive but without trace_id {} as structured metadata ({query} found nothing)",
                            probe.trace_id
                        )),
                        _ => Err(format!("reachable but no logs of {service} for this trace ({query})")),
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await;
        checks.push(outcome(
            "loki",
            &format!("logs of {service}"),
            result,
            visible,
        ));
    }
    if let Some(dir) = &settings.datasources {
        checks.extend(loki_correlations(dir, &base, &client, probe, deadline, start, end).await);
    }
    checks
}

/// Follows the provisioned links as Grafana would: Tempo's traces→logs query, run on Loki, and
/// Loki's derived field applied to a probe log line.
async fn loki_correlations(
    dir: &std::path::Path,
    base: &str,
    client: &reqwest::Client,
    probe: &Probe,
    deadline: Instant,
    start: u128,
    end: u128,
) -> Vec<Check> {
    let lookup = |name: &str| std::env::var(name).ok();
    let datasources = match files::load_datasources(dir, &lookup) {
        Ok(d) => d,
        Err(e) => {
            return vec![check(
                "grafana",
                "correlations",
                Status::Fail,
                None,
                format!("{e:#}"),
            )];
        }
    };
    let mut checks = Vec::new();
    let tempo = datasources
        .datasources
        .iter()
        .find(|(_, d)| d.kind == "tempo");
    if let Some((_, tempo)) = tempo {
        let v2 = tempo
            .json_data
            .as_ref()
            .and_then(|j| j.get("tracesToLogsV2"))
            .cloned()
            .unwrap_or(Value::Null);
        let query = render_traces_to_logs(&v2, UPSTREAM, &probe.trace_id);
        let (result, visible) = poll(deadline, || async {
            match loki::query_range(client, base, &query, start, end).await {
                Ok(lines) if !lines.is_empty() => {
                    Ok(format!("{query} finds {} probe line(s)", lines.len()))
                }
                Ok(_) => Err(format!(
                    "Grafana's Tempo → logs link would run {query} and find nothing"
                )),
                Err(e) => Err(e),
            }
        })
        .await;
        checks.push(outcome(
            "grafana",
            "Tempo traces → Loki logs link",
            result,
            visible,
        ));
    }
    let loki_ds = datasources
        .datasources
        .iter()
        .find(|(_, d)| d.kind == "loki");
    if let Some((_, loki_ds)) = loki_ds {
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
        let lines = loki::query_range(client, base, &query, start, end)
            .await
            .unwrap_or_default();
        let found = lines.iter().any(|line| {
            fields
                .iter()
                .any(|field| derived_value(field, line).as_deref() == Some(probe.trace_id.as_str()))
        });
        checks.push(if lines.is_empty() {
            check("grafana", "Loki logs → Tempo derived field", Status::Skipped, None, "no probe log line to apply it to")
        } else if found {
            check("grafana", "Loki logs → Tempo derived field", Status::Pass, None, "the derived field extracts the probe's trace id from its log line")
        } else {
            check("grafana", "Loki logs → Tempo derived field", Status::Fail, None, format!(
                "no derived field in {} extracts trace id {} from the probe's log line: users would get no link to the trace",
                dir.display(), probe.trace_id
            ))
        });
    }
    checks
}

/// The LogQL Grafana runs for a Tempo → Loki link (`tracesToLogsV2`): the custom query with
/// `${__tags}` and `${__trace.traceId}` interpolated, or else the mapped tags as the stream
/// selector and, with `filterByTraceID`, the trace id as a line filter.
pub fn render_traces_to_logs(config: &Value, service: &str, trace_id: &str) -> String {
    let mut selectors = Vec::new();
    for tag in config["tags"].as_array().into_iter().flatten() {
        let key = tag["key"].as_str().unwrap_or_default();
        let label = tag["value"]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or(key);
        if key == "service.name" {
            selectors.push(format!("{}=\"{service}\"", label.replace('.', "_")));
        }
    }
    if selectors.is_empty() {
        selectors.push(format!("service_name=\"{service}\""));
    }
    let tags = selectors.join(", ");
    if config["customQuery"].as_bool() == Some(true)
        && let Some(query) = config["query"].as_str()
    {
        return query
            .replace("${__tags}", &tags)
            .replace("${__trace.traceId}", trace_id);
    }
    let mut query = format!("{{{tags}}}");
    if config["filterByTraceID"].as_bool().unwrap_or(false) {
        query.push_str(&format!(" |=\"{trace_id}\""));
    }
    query
}

/// The value a Loki derived field extracts from a line (label matcher or regex on the line).
pub fn derived_value(field: &Value, line: &loki::Line) -> Option<String> {
    let pattern = regex::Regex::new(field["matcherRegex"].as_str()?).ok()?;
    if field["matcherType"].as_str() == Some("label") {
        line.fields
            .iter()
            .find(|(k, _)| pattern.is_match(k))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    } else {
        pattern
            .captures(&line.line)
            .and_then(|c| c.get(1).or_else(|| c.get(0)))
            .map(|m| m.as_str().to_string())
    }
}

async fn prometheus_checks(
    base: String,
    client: reqwest::Client,
    probe: &Probe,
    settings: &Settings,
    deadline: Instant,
) -> Vec<Check> {
    if let Err(why) = wait_ready(deadline, || prometheus::ready(&client, &base)).await {
        return vec![check(
            "prometheus",
            "probe metric",
            Status::Fail,
            None,
            format!("{base}: {why}"),
        )];
    }
    let started_s = probe
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let metric = "obs_probe_last_run_timestamp_seconds";
    let (result, visible) = poll(deadline, || async {
        match prometheus::query(&client, &base, metric).await {
            Ok(series) if series.iter().any(|(_, v)| *v >= started_s - 1.0) => {
                Ok(format!("{metric} = this run"))
            }
            Ok(series) if series.is_empty() => Err(format!(
                "reachable but {metric} is absent (is the probe's metric exported to Prometheus?)"
            )),
            Ok(_) => Err(format!("{metric} holds an older run only")),
            Err(e) => Err(e),
        }
    })
    .await;
    let mut checks = vec![outcome("prometheus", "probe metric", result, visible)];
    if settings.probe.target.is_some() {
        let (result, visible) = poll(deadline, || async {
            match prometheus::query(&client, &base, "http_server_request_duration_seconds_count").await {
                Ok(series) if !series.is_empty() => {
                    let jobs: std::collections::BTreeSet<String> = series.iter().filter_map(|(m, _)| m.get("job").and_then(Value::as_str).map(str::to_string)).collect();
                    Ok(format!("series from {}", jobs.into_iter().collect::<Vec<_>>().join(", ")))
                }
                Ok(_) => Err("no http_server_request_duration_seconds_count series: the target's /metrics is not scraped".to_string()),
                Err(e) => Err(e),
            }
        })
        .await;
        checks.push(outcome("prometheus", "target RED metrics", result, visible));
        let end_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            + 600.0;
        let (result, visible) = poll(deadline, || async {
            match prometheus::exemplars(
                &client,
                &base,
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
                Ok(_) => Err(format!(
                    "no exemplar with trace_id {} (exemplar storage on? OpenMetrics scrape?)",
                    probe.trace_id
                )),
                Err(e) => Err(e),
            }
        })
        .await;
        checks.push(outcome(
            "prometheus",
            "exemplar → probe trace",
            result,
            visible,
        ));
    }
    if let Ok(series) = prometheus::query(&client, &base, "up").await {
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
        checks.push(check(
            "prometheus",
            "scrape targets up",
            if down.is_empty() {
                Status::Pass
            } else {
                Status::Fail
            },
            None,
            detail,
        ));
    }
    checks
}

/// Runs the probe and every check; never fails for a missing store (that is a failed check).
pub async fn verify(settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let client = backends::http_client(settings.http_timeout)?;
    let collector_before = match &settings.collector_metrics {
        Some(url) => Some(read_collector(&client, url).await),
        None => None,
    };
    let probe = probe::run(&settings.probe).await?;
    let mut checks = Vec::new();
    checks.push(if probe.export_problems.is_empty() {
        check(
            "probe",
            "OTLP export",
            Status::Pass,
            None,
            "every span and log record was accepted by the OTLP endpoint",
        )
    } else {
        check(
            "probe",
            "OTLP export",
            Status::Fail,
            None,
            format!(
                "the backend refused or never received data: {}",
                probe.export_problems.join("; ")
            ),
        )
    });
    if let Some(result) = &probe.target_status {
        checks.push(match result {
            Ok(status) if *status < 500 => check(
                "probe",
                "target call",
                Status::Pass,
                None,
                format!("answered {status}"),
            ),
            Ok(status) => check(
                "probe",
                "target call",
                Status::Fail,
                None,
                format!("answered {status}"),
            ),
            Err(e) => check("probe", "target call", Status::Fail, None, e.clone()),
        });
    }
    let t = &settings.targets;
    let tempo = async {
        match &t.tempo {
            Some(base) => {
                trace_store(
                    "tempo",
                    base.clone(),
                    client.clone(),
                    &probe,
                    settings,
                    deadline,
                )
                .await
            }
            None => Vec::new(),
        }
    };
    let jaeger = async {
        match &t.jaeger {
            Some(base) => {
                trace_store(
                    "jaeger",
                    base.clone(),
                    client.clone(),
                    &probe,
                    settings,
                    deadline,
                )
                .await
            }
            None => Vec::new(),
        }
    };
    let loki = async {
        match &t.loki {
            Some(base) => {
                loki_checks(base.clone(), client.clone(), &probe, settings, deadline).await
            }
            None => Vec::new(),
        }
    };
    let prometheus = async {
        match &t.prometheus {
            Some(base) => {
                prometheus_checks(base.clone(), client.clone(), &probe, settings, deadline).await
            }
            None => Vec::new(),
        }
    };
    let (a, b, c, d) = tokio::join!(tempo, jaeger, loki, prometheus);
    checks.extend(a.into_iter().chain(b).chain(c).chain(d));
    if let (Some(url), Some(before)) = (&settings.collector_metrics, collector_before) {
        checks.push(match (before, read_collector(&client, url).await) {
            (Ok(before), Ok(after)) => collector_check(&before, &after),
            (Err(e), _) | (_, Err(e)) => check(
                "collector",
                "pipeline counters",
                Status::Fail,
                None,
                format!("cannot read the collector's metrics: {e}"),
            ),
        });
    }
    let passed = checks.iter().all(|c| c.status != Status::Fail);
    Ok(Report {
        trace_id: probe.trace_id,
        run_id: probe.run_id,
        passed,
        elapsed_seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        checks,
    })
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Probe trace {} (run {})", self.trace_id, self.run_id)?;
        writeln!(
            f,
            "  {:<11} {:<34} {:<7} {:>8}  detail",
            "backend", "check", "status", "visible"
        )?;
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            let visible = c
                .visible_after_seconds
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_default();
            writeln!(
                f,
                "  {:<11} {:<34} {:<7} {:>8}  {}",
                c.backend, c.check, status, visible, c.detail
            )?;
        }
        writeln!(
            f,
            "{} in {:.1} s",
            if self.passed {
                "Telemetry works: every check passed"
            } else {
                "Telemetry is broken: see the FAIL lines"
            },
            self.elapsed_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_to_logs_queries_render_as_grafana_renders_them() {
        let default = serde_json::json!({"filterByTraceID": true, "tags": [{"key": "service.name", "value": "service_name"}]});
        assert_eq!(
            render_traces_to_logs(&default, "orders", "abc"),
            "{service_name=\"orders\"} |=\"abc\""
        );
        let custom = serde_json::json!({
            "customQuery": true,
            "query": "{${__tags}} | trace_id=\"${__trace.traceId}\"",
            "tags": [{"key": "service.name", "value": "service_name"}]
        });
        assert_eq!(
            render_traces_to_logs(&custom, "orders", "abc"),
            "{service_name=\"orders\"} | trace_id=\"abc\""
        );
    }

    #[test]
    fn the_collector_check_names_the_exporter_that_dropped_data() {
        let before = collector_counters(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 10\n\
             otelcol_exporter_sent_spans_total{exporter=\"otlp/tempo\"} 10\n\
             otelcol_exporter_send_failed_spans_total{exporter=\"otlp/jaeger\"} 0\n",
        );
        let after = collector_counters(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 13\n\
             otelcol_exporter_sent_spans_total{exporter=\"otlp/tempo\"} 13\n\
             otelcol_exporter_send_failed_spans_total{exporter=\"otlp/jaeger\"} 3\n",
        );
        let c = collector_check(&before, &after);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("otlp/jaeger") && !c.detail.contains("otlp/tempo"),
            "{}",
            c.detail
        );
        let ok = collector_check(&before, &before);
        assert_eq!(ok.status, Status::Pass);
    }

    #[test]
    fn derived_fields_match_labels_or_lines() {
        let line = loki::Line {
            fields: serde_json::json!({"trace_id": "abc", "service_name": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            line: r#"{"trace_id":"def"}"#.to_string(),
        };
        let by_label = serde_json::json!({"matcherType": "label", "matcherRegex": "^trace_id$"});
        let by_regex = serde_json::json!({"matcherRegex": "\"trace_id\":\"(\\w+)\""});
        assert_eq!(derived_value(&by_label, &line).as_deref(), Some("abc"));
        assert_eq!(derived_value(&by_regex, &line).as_deref(), Some("def"));
    }
}
