//! Runs `telemetry-scenario` as a separate process, the way a service runs: a clean
//! environment plus the variables the test chooses.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
// Each test binary uses some of them.
#[allow(unused_imports)]
pub use test_servers::{
    Process, free_port, spawn, start_nats, start_postgres, start_redis, wait_tcp,
};

/// What one run of the scenario program left behind.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The `SCENARIO-RESULT` JSON the program printed on stderr.
    pub fn result(&self) -> Value {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("SCENARIO-RESULT "))
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("no SCENARIO-RESULT line in stderr:\n{}", self.stderr))
    }

    /// The stdout lines that are JSON log objects.
    pub fn json_logs(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The JSON log line whose message is `message`.
    pub fn json_log(&self, message: &str) -> Value {
        self.json_logs()
            .into_iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no log line {message:?} in stdout:\n{}", self.stdout))
    }

    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "scenario failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `telemetry-scenario <args>` with only `env` (plus PATH) in its environment, killing it
/// after 60 s.
pub async fn scenario(args: &[&str], env: &[(&str, &str)]) -> Run {
    scenario_with(None, args, env).await
}

/// Like [`scenario`], pinned to one CPU with `taskset` when `one_cpu` is set.
pub async fn scenario_with(wrapper: Option<&[&str]>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let program = env!("CARGO_BIN_EXE_telemetry-scenario");
    let mut command = match wrapper {
        Some(wrapper) => {
            let mut c = tokio::process::Command::new(wrapper[0]);
            c.args(&wrapper[1..]).arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command.spawn().expect("spawn telemetry-scenario");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("scenario did not exit within 60 s")
        .expect("wait for scenario");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A loopback URL nothing listens on (the port was bound, then released).
pub fn closed_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Starts an example service (`gateway`, `orders`, `worker`) as its own process.
pub fn spawn_example(name: &str, env: &[(&str, &str)]) -> Process {
    spawn(name, env!("CARGO_BIN_EXE_example-service"), &[name], env)
}

/// A reqwest client (ring as the rustls provider, as in the library).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Polls `url` with backoff until it answers 2xx; panics with the process output after 30 s.
pub async fn wait_ready(url: &str, process: &Process) {
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(20);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became ready at {url}; its output:\n{}",
            process.name,
            process.output()
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// A real Prometheus (the Debian package) on a free loopback port with exemplar storage,
/// scraping each `(job, host:port)` every second. Fails (never skips) when it is not installed.
/// Keep the directory alive as long as the server.
pub async fn start_prometheus(jobs: &[(&str, String)]) -> (Process, String, tempfile::TempDir) {
    assert!(
        std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok(),
        "prometheus is not installed: run scripts/test.sh (apt-get install prometheus)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    let mut yaml =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (job, target) in jobs {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ));
    }
    std::fs::write(&config, yaml).expect("prometheus.yml");
    let port = free_port();
    let process = spawn(
        "prometheus",
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--enable-feature=exemplar-storage",
        ],
        &[],
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/-/ready"), &process).await;
    (process, url, dir)
}

/// Percent-encodes a PromQL query for a URL's query string.
pub fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
