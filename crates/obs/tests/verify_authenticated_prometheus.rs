#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs verify` against a real Prometheus (Debian package) behind basic auth and mutual TLS
//! (`--web.config.file`: `basic_auth_users` with a bcrypt hash, `tls_server_config` requiring
//! a client certificate of the test CA), while the probe exports over mutual TLS to an OTLP
//! receiver with a tenant and a bearer token in `OTEL_EXPORTER_OTLP_HEADERS`.
//!
//! The right settings pass; a wrong password or none is `unauthorized` (exit 4) naming the
//! setting; no client certificate or no CA is a TLS failure naming the TLS settings; no secret
//! is ever printed.

mod support;

use std::process::Command;

use otlp_receiver::OtlpReceiver;
use otlp_receiver::tls::{PkiFiles, TestPki};
use serde_json::Value;
use support::{Run, repo};

/// The basic-auth password of the test user `obs`.
const PASSWORD: &str = "obs-test-password";
/// bcrypt (cost 10) of [`PASSWORD`], made once with libxcrypt:
/// `perl -e 'print crypt("obs-test-password", "\$2b\$10\$abcdefghijklmnopqrstuu")'`.
const PASSWORD_BCRYPT: &str = "$2b$10$abcdefghijklmnopqrstuuitr83X70BxAC9aSYYCbJZ7VYIDs0D3u";
/// The bearer token the probe sends to the OTLP endpoint.
const OTLP_TOKEN: &str = "otlp-secret-token-value";

struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus behind basic auth and mutual TLS, scraping `127.0.0.1:{target_port}`
/// every second and evaluating the shipped rules, with an Alertmanager configured.
fn prometheus(files: &PkiFiles, target_port: u16) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  obs: '{PASSWORD_BCRYPT}'\n",
            files.server_cert.display(),
            files.server_key.display(),
            files.ca.display()
        ),
    )
    .unwrap();
    let alertmanager = api_doubles::reserve_port().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: ['{}/*.yml']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager}']\nscrape_configs:\n  - job_name: obs\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
            repo().join("stack/prometheus/rules").display()
        ),
    )
    .unwrap();
    let port = api_doubles::reserve_port().unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.config.file={}", web.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is not installed: run scripts/test.sh (apt-get install prometheus)");
    Prometheus {
        child,
        url: format!("https://localhost:{port}"),
        _dir: dir,
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn report(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

fn check(run: &Run, backend: &str, name: &str) -> Value {
    report(run)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == backend && c["check"].as_str().unwrap().starts_with(name))
        .cloned()
        .unwrap_or_else(|| panic!("no check {backend}/{name}: {run:?}"))
}

async fn verify(args: Vec<String>, env: Vec<(String, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<&str> = vec!["verify", "--format=json", "--datasources="];
        all.extend(args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::obs(&all, &env, None)
    })
    .await
    .unwrap()
}

fn no_secret_in(run: &Run) {
    for secret in [PASSWORD, OTLP_TOKEN, "wrong-password-value"] {
        assert!(!run.output().contains(secret), "{secret} printed: {run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_behind_basic_auth_and_mtls_passes_with_the_settings_and_says_what_is_missing()
{
    let pki = TestPki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write_to(dir.path()).unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let receiver = OtlpReceiver::start_tls(pki.mtls_settings()).await.unwrap();
    let metrics_port = api_doubles::reserve_port().unwrap();
    let prometheus = prometheus(&files, metrics_port);

    let otlp_env = vec![
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE".to_string(),
            path(&files.ca),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE".to_string(),
            path(&files.client_cert),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY".to_string(),
            path(&files.client_key),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
            format!("X-Scope-OrgID=team-a,Authorization=Bearer%20{OTLP_TOKEN}"),
        ),
    ];
    let base = |timeout: &str| {
        vec![
            "--otlp-endpoint".to_string(),
            receiver.http_endpoint(),
            "--prometheus".to_string(),
            prometheus.url.clone(),
            "--timeout".to_string(),
            timeout.to_string(),
        ]
    };
    let tls = vec![
        "--prometheus-ca-file".to_string(),
        path(&files.ca),
        "--prometheus-client-cert".to_string(),
        path(&files.client_cert),
        "--prometheus-client-key".to_string(),
        path(&files.client_key),
    ];
    let mut right = base("45s");
    right.extend(tls.clone());
    right.extend([
        "--probe-metrics-listen".to_string(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    let mut right_env = otlp_env.clone();
    right_env.extend([
        ("OBS_PROMETHEUS_USER".to_string(), "obs".to_string()),
        (
            "OBS_PROMETHEUS_PASSWORD_FILE".to_string(),
            path(&password_file),
        ),
    ]);
    let run = verify(right, right_env.clone()).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    no_secret_in(&run);
    for name in [
        "probe metric",
        "scrape targets up",
        "alert rules loaded and healthy",
    ] {
        assert_eq!(check(&run, "prometheus", name)["status"], "pass", "{run:?}");
    }
    assert_eq!(
        check(&run, "probe", "OTLP export")["status"],
        "pass",
        "{run:?}"
    );
    let requests = receiver.snapshot().requests;
    assert!(!requests.is_empty(), "the probe exported over mutual TLS");
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-scope-orgid") == Some("team-a")
                && r.header("authorization") == Some(&format!("Bearer {OTLP_TOKEN}"))),
        "every export carries the tenant and the token of OTEL_EXPORTER_OTLP_HEADERS: {:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // A wrong password: 401 at once (no waiting for the timeout), naming what was sent.
    let mut wrong = base("20s");
    wrong.extend(tls.clone());
    let mut wrong_env = otlp_env.clone();
    wrong_env.extend([
        ("OBS_PROMETHEUS_USER".to_string(), "obs".to_string()),
        (
            "OBS_PROMETHEUS_PASSWORD".to_string(),
            "wrong-password-value".to_string(),
        ),
    ]);
    let run = verify(wrong, wrong_env).await;
    assert_eq!(run.code, Some(4), "{run:?}");
    no_secret_in(&run);
    let probe_metric = check(&run, "prometheus", "probe metric");
    assert_eq!(probe_metric["reason"], "unauthorized", "{run:?}");
    let detail = probe_metric["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Prometheus answered 401")
            && detail.contains("rejected basic auth as user \"obs\"")
            && detail.contains("OBS_PROMETHEUS_PASSWORD"),
        "{detail}"
    );
    assert!(
        run.elapsed < std::time::Duration::from_secs(15),
        "a refusal does not wait for the timeout: {run:?}"
    );

    // No credentials at all: the diagnosis names the settings to set.
    let mut none = base("20s");
    none.extend(tls.clone());
    let run = verify(none, otlp_env.clone()).await;
    assert_eq!(run.code, Some(4), "{run:?}");
    let detail = check(&run, "prometheus", "probe metric")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("obs sent none")
            && detail.contains("--prometheus-token (OBS_PROMETHEUS_TOKEN)")
            && detail.contains("--prometheus-user (OBS_PROMETHEUS_USER)"),
        "{detail}"
    );

    // Credentials but no client certificate: a TLS failure naming the client-certificate
    // settings; without the CA file, one naming the CA setting.
    let mut no_cert = base("3s");
    no_cert.extend(tls[..2].iter().cloned());
    let run = verify(no_cert, right_env.clone()).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    no_secret_in(&run);
    let probe_metric = check(&run, "prometheus", "probe metric");
    assert_eq!(probe_metric["reason"], "unreachable", "{run:?}");
    let detail = probe_metric["detail"].as_str().unwrap();
    assert!(
        detail.contains("TLS failed") && detail.contains("--prometheus-client-cert"),
        "{detail}"
    );
    let mut no_ca = base("3s");
    no_ca.extend(tls[2..].iter().cloned());
    let run = verify(no_ca, right_env).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let detail = check(&run, "prometheus", "probe metric")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("TLS failed")
            && detail.contains("the system's roots only")
            && detail.contains("--prometheus-ca-file (OBS_PROMETHEUS_CA_FILE)"),
        "{detail}"
    );
}
