#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs`'s footprint: binary size, start-up time, `obs provision` of the shipped files against
//! the Grafana double (first run, which creates everything, and a repeat, which changes
//! nothing), and the resident memory of an idle `obs sidecar` after it provisioned and passed
//! one verification round.
//!
//! `cargo bench -p obs --bench footprint` (release; about 30 s). Without `--bench` (as
//! `cargo test --benches` runs it) it does one run of each, as a smoke test of the measurement.
//!
//! Results (2-core x86_64 VM, Rust 1.95, release, 2026-11-23; more in BENCHMARKS.md): binary
//! 19.2 MiB; `obs --version` 0.94 ms; `obs provision` of the shipped files 5.7 ms first run,
//! 5.0 ms repeat; sidecar ready and verified in 0.10 s, idle RSS 15.9 MiB (peak 17.0 MiB).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api_doubles::collector::CollectorDouble;
use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};
use api_doubles::loki::LokiDouble;
use api_doubles::tempo::TempoDouble;

const TOKEN: &str = "footprint-token";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn obs() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_obs"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .stdin(Stdio::null());
    command
}

/// Wall time of `command` from spawn to exit; panics with its output if it fails.
fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let output = command.output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `obs <subcommand>` with the shipped files and the Grafana double's address and token.
fn against(grafana: &GrafanaDouble, subcommand: &str) -> Command {
    let mut command = obs();
    command
        .arg(subcommand)
        .env("OBS_GRAFANA_URL", grafana.url())
        .env("OBS_GRAFANA_TOKEN", TOKEN)
        .env(
            "OBS_DATASOURCES",
            repo().join("grafana/provisioning/datasources"),
        )
        .env("OBS_DASHBOARDS", repo().join("dashboards"));
    command
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// GETs `url` once; `None` when it does not answer.
fn get(url: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    })
}

/// Starts `obs sidecar` against doubles, waits for one passing verification round, lets it sit
/// idle, and returns (RSS KiB, peak RSS KiB, seconds to ready).
fn idle_sidecar(idle: Duration) -> (u64, u64, f64) {
    let grafana =
        GrafanaDouble::start(GrafanaConfig::default().with_token(TOKEN, Role::Admin)).unwrap();
    let tempo = TempoDouble::start().unwrap();
    let loki = LokiDouble::start().unwrap();
    let collector = CollectorDouble::start(Some(&tempo), None, Some(&loki)).unwrap();
    let port = api_doubles::reserve_port().unwrap();
    let started = Instant::now();
    let mut child = against(&grafana, "sidecar")
        .env("OBS_LISTEN", format!("127.0.0.1:{port}"))
        .env("OBS_OTLP_ENDPOINT", collector.http_endpoint())
        .env("OBS_TEMPO", tempo.url())
        .env("OBS_LOKI", loki.url())
        .env("OBS_INTERVAL", "1h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = None;
    while Instant::now() < deadline {
        let passed = get(&metrics).is_some_and(|body| {
            body.lines()
                .any(|l| l.starts_with("obs_verify_runs_total") && l.contains("result=\"pass\""))
        });
        if passed {
            ready = Some(started.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(ready) = ready else {
        let _ = child.kill();
        panic!("the sidecar never passed a verification round");
    };
    std::thread::sleep(idle);
    let rss = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    (rss, peak, ready)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { 21 } else { 1 };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let binary = Path::new(env!("CARGO_BIN_EXE_obs"));
    let size = std::fs::metadata(binary).unwrap().len();
    println!(
        "obs binary ({profile}): {:.1} MiB ({size} bytes)",
        size as f64 / 1_048_576.0
    );

    let help = (0..runs)
        .map(|_| {
            let mut command = obs();
            command.arg("--version").stdout(Stdio::null());
            timed(command)
        })
        .collect();
    println!(
        "obs --version, start to exit: median {:?} of {runs}",
        median(help)
    );

    let mut first = Vec::new();
    let mut repeat = Vec::new();
    for _ in 0..runs {
        let grafana =
            GrafanaDouble::start(GrafanaConfig::default().with_token(TOKEN, Role::Admin)).unwrap();
        first.push(timed(against(&grafana, "provision")));
        repeat.push(timed(against(&grafana, "provision")));
        assert_eq!(grafana.datasources().len(), 5, "provisioned for real");
    }
    println!(
        "obs provision (shipped files, Grafana double): first run median {:?}, repeat (no changes) median {:?}, of {runs}",
        median(first),
        median(repeat)
    );

    let idle = if full {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(200)
    };
    let (rss, peak, ready) = idle_sidecar(idle);
    println!(
        "obs sidecar: first passing verification after {ready:.2} s; idle RSS {:.1} MiB ({rss} KiB), peak {:.1} MiB, {idle:?} after it",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
