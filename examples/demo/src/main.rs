//! The `demo` binary: `cargo run -p demo`.

use std::process::ExitCode;

use clap::Parser;

const AFTER_HELP: &str = "\
What it shows:
  the trace of the first request as a tree (service, span, duration, status), the log records
  that carry its trace id (each with its severity and span id), the request count, errors and
  mean latency from each service's /metrics, and one PASS or FAIL line per request: the checks
  `obs verify` applies to Tempo and Jaeger (every expected span present, one trace, parents
  intact, timestamps sane) plus at least three correlated log records.

With a real PostgreSQL and Redis (the compose stack publishes both on localhost):
  cargo run -p demo -- --database-url postgres://orders:orders@127.0.0.1:5432/orders \\
    --redis-url redis://127.0.0.1:6379/0
  adds orders' Redis GET (and, on a cache miss, the PostgreSQL SELECT and the Redis SET) to
  each trace.

Point your own service at it:
  cargo run -p demo -- --keep
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port printed> cargo run -p quickstart
  Names and log bodies are printed with control characters escaped; malformed or circular
  traces are printed as far as they go, never trusted.

Memory: the receiver keeps at most 200,000 items per signal (oldest dropped) and refuses
request bodies over 16 MiB, compressed or inflated.

Exit codes:
  0  every check passed
  1  a check failed (the FAIL lines say which and why), or the demo could not run
  2  usage error (an unknown flag or a bad value)";

/// demo: traces, logs and metrics from three example services, received and checked in this
/// process. No Docker, no backends.
///
/// Starts an embedded OTLP receiver (gRPC and HTTP on 127.0.0.1), runs gateway → orders →
/// worker with their own telemetry each (orders on PostgreSQL and Redis when given their URLs) (the last hop over an in-process channel carrying the
/// trace context), sends a few requests through them, and prints and checks what arrived.
#[derive(Debug, Parser)]
#[command(name = "demo", version, about, long_about, after_help = AFTER_HELP)]
struct Args {
    /// How many requests to send through the services (each one is a trace to check).
    #[arg(long, env = "DEMO_REQUESTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    requests: u32,
    /// Afterwards keep the receiver listening, and print every trace and log record that
    /// arrives, until Ctrl-C. The exit code is still that of the checks.
    #[arg(long, env = "DEMO_KEEP")]
    keep: bool,
    /// orders keeps its orders in this PostgreSQL (postgres://user:password@host:5432/database;
    /// it creates and seeds an `orders` table). Without it: in memory, and no database spans.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// orders caches orders in this Redis (redis://host:6379/0). Without it: no cache spans.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    redis_url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = demo::Options {
        requests: args.requests,
        keep: args.keep,
        database_url: args.database_url,
        redis_url: args.redis_url,
    };
    match demo::run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::from(1)
        }
    }
}
