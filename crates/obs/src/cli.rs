//! The command line. Every flag also reads an `OBS_*` environment variable, so the compose file
//! needs no command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::connection::{GrafanaTransportArgs, StoreConnectionArgs};
use crate::exit_code::{CommandKind, ExitCode};

/// The exit codes as numbers, for code that matches on them; [`ExitCode`] owns them.
pub mod exit {
    use crate::exit_code::ExitCode;

    /// See [`ExitCode::Ok`].
    pub const OK: u8 = ExitCode::Ok as u8;
    /// See [`ExitCode::Failed`].
    pub const FAILED: u8 = ExitCode::Failed as u8;
    /// See [`ExitCode::Usage`].
    pub const USAGE: u8 = ExitCode::Usage as u8;
    /// See [`ExitCode::NotReady`].
    pub const NOT_READY: u8 = ExitCode::NotReady as u8;
    /// See [`ExitCode::Auth`].
    pub const AUTH: u8 = ExitCode::Auth as u8;
}

/// obs: provisions Grafana from the repository's files, and proves telemetry arrives.
#[derive(Debug, Parser)]
#[command(
    name = "obs",
    version,
    about,
    long_about = None,
    after_help = "Every flag also reads the OBS_* variable shown in its help. Exit codes: see each command's --help."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update Grafana's datasources, folders and dashboards from the files, idempotently.
    ///
    /// Datasources come from Grafana's own provisioning YAML (apiVersion 1, with $VAR/${VAR}
    /// expansion); dashboards from JSON files (subdirectories become folders). Objects already
    /// as the files say are left untouched; datasources held by Grafana's file provisioning are
    /// compared, never written. Secrets are passed through, never printed.
    #[command(after_help = ExitCode::help(CommandKind::Provision))]
    Provision(ProvisionArgs),
    /// Prove that traces, logs and metrics reach Tempo, Jaeger, Loki and Prometheus, with
    /// propagation intact.
    ///
    /// Emits a probe trace across two services over loopback HTTP (obs-probe →
    /// obs-probe-downstream) through platform-telemetry, with a log line in each hop and a
    /// metric, flushes it, then polls every given store concurrently until each check passes or
    /// --timeout runs out. Only the stores you name are checked. The probe honors the standard
    /// OTEL_EXPORTER_OTLP_* variables; --otlp-endpoint sets the general endpoint and per-signal
    /// variables still override it (so traces can go straight to Tempo and logs to Loki).
    #[command(after_help = format!("{VERIFY_JSON}\n\n{}", ExitCode::help(CommandKind::Verify)))]
    Verify(VerifyArgs),
    /// Run as the stack's sidecar: provision Grafana, then verify on an interval.
    ///
    /// Serves /healthz (alive), /readyz (200 once Grafana is provisioned), /metrics
    /// (obs_verify_success, obs_verify_visible_seconds, obs_verify_runs_total,
    /// obs_backend_up, obs_provision_last_success_timestamp_seconds) and /status (the last
    /// report as JSON). A failed verification never stops it; SIGTERM does, cleanly.
    #[command(after_help = ExitCode::help(CommandKind::Sidecar))]
    Sidecar(Box<SidecarArgs>),
    /// Exit 0 when the sidecar answers ready (for container healthchecks; no curl needed).
    #[command(after_help = ExitCode::help(CommandKind::Health))]
    Health(HealthArgs),
}

const VERIFY_JSON: &str = "\
JSON output (--format json): {\"trace_id\": str, \"run_id\": str, \"passed\": bool,
  \"verdict\": str, \"elapsed_seconds\": num, \"checks\": [{\"backend\": \"probe\"|\"tempo\"|
  \"jaeger\"|\"loki\"|\"prometheus\"|\"alertmanager\"|\"grafana\"|\"collector\",
  \"check\": str,
  \"status\": \"pass\"|\"fail\"|\"skipped\", \"reason\": null|\"unreachable\"|\"not_ready\"|
  \"store_error\"|\"absent\"|\"incomplete\"|\"propagation_broken\"|\"clock_skew\"|\"link_broken\"|
  \"dropped\"|\"not_requested\"|\"cannot_check\"|\"unauthorized\"|\"forbidden\"|
  \"no_tenant\", \"visible_after_seconds\": num|null,
  \"detail\": str}]}
Stores not given appear as skipped checks (reason not_requested); credentials (in URLs, tokens,
passwords, header values) are never printed.

Production stores: each store has its own tenant (X-Scope-OrgID; Jaeger x-tenant), bearer token
or basic auth (value, variable or file), extra headers, CA file and client certificate (see the
\"... connection\" sections of --help; --tenant / OBS_TENANT is every store's default tenant). A
path prefix rides in the store's URL: OBS_LOKI=https://gw/loki calls https://gw/loki/loki/api/v1/...
The probe's export to an authenticated collector or gateway uses the standard variables, passed
through unchanged: OTEL_EXPORTER_OTLP_HEADERS for a tenant and credentials, e.g.
  X-Scope-OrgID=team-a,Authorization=Bearer%20TOKEN
OTEL_EXPORTER_OTLP_CERTIFICATE (a CA), OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and
OTEL_EXPORTER_OTLP_CLIENT_KEY (mutual TLS), and their per-signal forms.";

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// The report as JSON, for CI.
    Json,
}

/// `obs verify`.
#[derive(Debug, Args, Clone)]
pub struct VerifyArgs {
    /// The general OTLP endpoint the probe exports to (e.g. http://collector:4318; a :4317 URL
    /// selects gRPC unless OTEL_EXPORTER_OTLP_PROTOCOL says otherwise).
    #[arg(long, env = "OBS_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Tempo's query URL (e.g. http://tempo:3200).
    #[arg(long, env = "OBS_TEMPO")]
    pub tempo: Option<String>,
    /// Jaeger's query URL (e.g. http://jaeger:16686).
    #[arg(long, env = "OBS_JAEGER")]
    pub jaeger: Option<String>,
    /// Loki's URL (e.g. http://loki:3100).
    #[arg(long, env = "OBS_LOKI")]
    pub loki: Option<String>,
    /// Prometheus's URL (e.g. http://prometheus:9090). Also checks the alert path: rules loaded
    /// and healthy, an active Alertmanager.
    #[arg(long, env = "OBS_PROMETHEUS")]
    pub prometheus: Option<String>,
    /// Alertmanager's URL (e.g. http://alertmanager:9093): the always-firing Watchdog alert must
    /// be there.
    #[arg(long, env = "OBS_ALERTMANAGER")]
    pub alertmanager: Option<String>,
    /// A real service the probe calls inside its trace (e.g. http://gateway:8080/orders/7).
    #[arg(long, env = "OBS_TARGET")]
    pub target: Option<String>,
    /// Services the target must add to the trace (comma-separated, e.g. gateway,orders,worker).
    #[arg(long, env = "OBS_TARGET_SERVICES", value_delimiter = ',')]
    pub target_services: Vec<String>,
    /// Grafana datasource files: follow their correlations as Grafana would ("" to skip).
    /// [default: grafana/provisioning/datasources when that directory exists; otherwise the
    /// link checks are reported as skipped, with the reason]
    #[arg(long, env = "OBS_DATASOURCES")]
    pub datasources: Option<String>,
    /// Total time for the whole verification.
    #[arg(long, env = "OBS_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Timeout of each HTTP call.
    #[arg(long, env = "OBS_HTTP_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub http_timeout: Duration,
    /// The largest accepted distance between a span's timestamps and obs's clock.
    #[arg(long, env = "OBS_MAX_CLOCK_SKEW", default_value = "30s", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// The collector's own metrics (e.g. http://collector:8888/metrics): read before and after
    /// the probe to name the exporter that dropped it.
    #[arg(long, env = "OBS_COLLECTOR_METRICS")]
    pub collector_metrics: Option<String>,
    /// Serve the probe's /metrics on this address while checking (for a Prometheus that
    /// scrapes obs, e.g. 0.0.0.0:9465); without it the probe's metric goes out over OTLP only.
    #[arg(long, env = "OBS_PROBE_METRICS_LISTEN")]
    pub probe_metrics_listen: Option<std::net::SocketAddr>,
    /// Output format.
    #[arg(long, env = "OBS_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How obs reaches each store: tenant, credentials, headers, TLS.
    #[command(flatten)]
    pub connections: StoreConnectionArgs,
}

/// Where Grafana is and how to log in.
#[derive(Debug, Args, Clone)]
pub struct GrafanaArgs {
    /// Grafana's base URL.
    #[arg(long, env = "OBS_GRAFANA_URL", default_value = "http://localhost:3000")]
    pub grafana_url: String,
    /// Service-account token (prefer OBS_GRAFANA_TOKEN_FILE: a flag shows in `ps`).
    #[arg(long, env = "OBS_GRAFANA_TOKEN", hide_env_values = true)]
    pub grafana_token: Option<String>,
    /// File holding the service-account token.
    #[arg(long, env = "OBS_GRAFANA_TOKEN_FILE")]
    pub grafana_token_file: Option<PathBuf>,
    /// Basic-auth user (with a password), instead of a token.
    #[arg(long, env = "OBS_GRAFANA_USER")]
    pub grafana_user: Option<String>,
    /// Basic-auth password.
    #[arg(long, env = "OBS_GRAFANA_PASSWORD", hide_env_values = true)]
    pub grafana_password: Option<String>,
    /// File holding the basic-auth password.
    #[arg(long, env = "OBS_GRAFANA_PASSWORD_FILE")]
    pub grafana_password_file: Option<PathBuf>,
    /// Extra headers, CA and client certificate for Grafana.
    #[command(flatten)]
    pub transport: GrafanaTransportArgs,
}

/// `obs provision`.
#[derive(Debug, Args, Clone)]
pub struct ProvisionArgs {
    /// Grafana connection.
    #[command(flatten)]
    pub grafana: GrafanaArgs,
    /// Directory of datasource provisioning YAML.
    #[arg(
        long,
        env = "OBS_DATASOURCES",
        default_value = "grafana/provisioning/datasources"
    )]
    pub datasources: PathBuf,
    /// Directory of dashboard JSON (subdirectories become folders).
    #[arg(long, env = "OBS_DASHBOARDS", default_value = "dashboards")]
    pub dashboards: PathBuf,
    /// How long to wait for Grafana to answer healthy (it answers 503 while migrating).
    #[arg(long, env = "OBS_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Print what would be created, updated, deleted or left alone; write nothing.
    #[arg(long, env = "OBS_DRY_RUN")]
    pub dry_run: bool,
    /// Delete dashboards obs uploaded (tagged obs:managed) that are gone from the files.
    #[arg(long, env = "OBS_PRUNE")]
    pub prune: bool,
    /// Skip Grafana's own datasource test after applying.
    #[arg(long, env = "OBS_SKIP_HEALTH_CHECK")]
    pub skip_health_check: bool,
    /// Only validate the datasource and dashboard files, offline (no Grafana, no credentials):
    /// every problem is listed; exit 0 when all are valid, 2 when any is not.
    #[arg(long, env = "OBS_CHECK")]
    pub check: bool,
    /// Timeout of each HTTP call to Grafana (e.g. 10s, 500ms).
    #[arg(long, env = "OBS_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_timeout: Duration,
    /// The stores' tenants, credentials and TLS, written into the datasources obs provisions.
    #[command(flatten)]
    pub connections: StoreConnectionArgs,
}

/// `obs sidecar`.
#[derive(Debug, Args, Clone)]
pub struct SidecarArgs {
    /// Grafana connection.
    #[command(flatten)]
    pub grafana: GrafanaArgs,
    /// Directory of dashboard JSON (subdirectories become folders).
    #[arg(long, env = "OBS_DASHBOARDS", default_value = "dashboards")]
    pub dashboards: PathBuf,
    /// How long each provisioning attempt waits for Grafana to be healthy.
    #[arg(long, env = "OBS_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Do not provision Grafana; become ready at once.
    #[arg(long, env = "OBS_NO_PROVISION")]
    pub no_provision: bool,
    /// Where to serve /healthz, /readyz, /metrics and /status.
    #[arg(long, env = "OBS_LISTEN", default_value = "0.0.0.0:9464")]
    pub listen: std::net::SocketAddr,
    /// Time between verifications (jittered by ±10 %).
    #[arg(long, env = "OBS_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The verification to run on the interval.
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// `obs health`.
#[derive(Debug, Args, Clone)]
pub struct HealthArgs {
    /// Where the sidecar serves (its /readyz is checked).
    #[arg(long, env = "OBS_LISTEN", default_value = "0.0.0.0:9464")]
    pub listen: std::net::SocketAddr,
}

impl VerifyArgs {
    /// The datasource directory the sidecar provisions from: `--datasources`, else the
    /// default.
    pub fn datasources_dir(&self) -> PathBuf {
        PathBuf::from(
            self.datasources
                .as_deref()
                .unwrap_or(crate::verify::settings::DEFAULT_DATASOURCES),
        )
    }
}

/// Parses `60s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write a duration like 60s, 500ms or 2m"))
}
