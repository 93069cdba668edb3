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
/// worker with their own telemetry each (the last hop over an in-process channel carrying the
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match demo::run(args.requests, args.keep).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::from(1)
        }
    }
}
