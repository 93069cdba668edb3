//! The command line. Every flag also reads an `OBS_*` environment variable, so the compose file
//! needs no command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit codes, as `--help` documents them.
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// At least one object (or check) failed; the output says which and why.
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration: a flag, an environment variable, or a provisioning file.
    pub const USAGE: u8 = 2;
    /// Grafana did not become healthy before the --wait deadline.
    pub const NOT_READY: u8 = 3;
    /// Grafana refused the credentials (401/403).
    pub const AUTH: u8 = 4;
}

const EXIT_CODES: &str = "\
Exit codes:
  0  everything provisioned (created, updated, unchanged or managed by file provisioning)
  1  at least one datasource, folder or dashboard failed (each failure is explained)
  2  usage or configuration error (flag, environment variable, YAML or JSON file)
  3  Grafana was not healthy before --wait ran out
  4  Grafana refused the credentials";

/// obs: provisions Grafana from the repository's files, and proves telemetry arrives.
#[derive(Debug, Parser)]
#[command(name = "obs", version, about, long_about = None, after_help = EXIT_CODES)]
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
    #[command(after_help = EXIT_CODES)]
    Provision(ProvisionArgs),
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
    /// Timeout of each HTTP call to Grafana (e.g. 10s, 500ms).
    #[arg(long, env = "OBS_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_timeout: Duration,
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
}

/// Parses `60s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write a duration like 60s, 500ms or 2m"))
}
