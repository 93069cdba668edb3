//! Everything set for obs is something obs reads, and obs starts with it.

use serde_json::Value;

use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};

use crate::kube::{KUSTOMIZATIONS, Rendered, container, data, rendered, repo_root};
use crate::mounts::{Mounts, mount};
use crate::obs_binary;
use crate::pod_env::{Pod, Source, resolve, value};
use crate::support;

/// The string literals `"NAME"` in platform-telemetry's sources: the variables it reads (the
/// per-signal `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_*` forms are built with `format!` from
/// the general name).
fn library_reads(name: &str) -> bool {
    fn sources(dir: &std::path::Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    static SOURCES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SOURCES.get_or_init(|| {
        let mut text = String::new();
        sources(
            &repo_root().join("crates/platform-telemetry/src"),
            &mut text,
        );
        text
    });
    let literal = |n: &str| text.contains(&format!("\"{n}\""));
    if literal(name) {
        return true;
    }
    ["TRACES_", "LOGS_", "METRICS_"].iter().any(|signal| {
        name.strip_prefix("OTEL_EXPORTER_OTLP_")
            .and_then(|rest| rest.strip_prefix(signal))
            .is_some_and(|suffix| literal(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
    })
}

/// The obs container of a rendered kustomization, its environment and its mounted volumes.
pub struct Obs<'a> {
    pub rendered: &'a Rendered,
    pub deployment: &'a Value,
    pub container: &'a Value,
    pub env: Vec<(String, String, Source)>,
    pub mounts: Mounts,
}

pub fn obs(dir: &'static str) -> Obs<'static> {
    let rendered = rendered(dir);
    let deployment = rendered.get("Deployment", "obs");
    let container = container(deployment, "obs");
    let pod = &deployment["spec"]["template"]["spec"];
    Obs {
        rendered,
        deployment,
        container,
        env: resolve(rendered, container, &Pod::of(deployment)),
        mounts: mount(rendered, pod, container),
    }
}

impl Obs<'_> {
    /// The environment with every path into a mounted volume replaced by where it is here, and
    /// `overrides` applied.
    pub fn local_env(&self, overrides: &[(&str, String)]) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v, _)| {
                let v = match overrides.iter().find(|(name, _)| name == k) {
                    Some((_, value)) => value.clone(),
                    None => match self.mounts.resolve(v) {
                        Some(local) if v.starts_with('/') => local.to_str().unwrap().to_string(),
                        _ => v.clone(),
                    },
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[test]
fn every_variable_set_for_obs_is_one_it_reads() {
    let mut unread = Vec::new();
    for dir in KUSTOMIZATIONS {
        let obs = obs(dir);
        let args: Vec<&str> = obs.container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            ["sidecar"],
            "{dir}: the Deployment runs `obs sidecar`"
        );
        assert!(obs.env.len() > 20, "{dir}: {:?}", obs.env);
        for (name, _, source) in &obs.env {
            let read = if name.starts_with("OBS_") {
                obs_binary::reads(name)
            } else if name.starts_with("OTEL_")
                || name.starts_with("K8S_")
                || name == "RUST_LOG"
                || name == "LOG_FORMAT"
            {
                library_reads(name)
            } else {
                false
            };
            if !read {
                unread.push(format!("{dir}: {name} (from {source:?})"));
            }
        }
    }
    assert!(
        unread.is_empty(),
        "variables obs does not read (neither `obs sidecar --help` nor platform-telemetry):\n  {}",
        unread.join("\n  ")
    );
}

#[test]
fn every_file_setting_names_a_key_of_a_mounted_secret() {
    for dir in KUSTOMIZATIONS {
        let obs = obs(dir);
        let files: Vec<&(String, String, Source)> = obs
            .env
            .iter()
            .filter(|(k, _, _)| k.ends_with("_FILE"))
            .collect();
        assert!(
            !files.is_empty(),
            "{dir}: obs reads its credentials from files"
        );
        for (name, path, _) in files {
            let (mount, keys) = obs
                .mounts
                .secret_keys
                .iter()
                .find(|(mount, _)| path.starts_with(&format!("{mount}/")))
                .unwrap_or_else(|| panic!("{dir}: {name}={path} is in no mounted Secret"));
            let key = &path[mount.len() + 1..];
            assert!(
                keys.iter().any(|k| k == key),
                "{dir}: {name}={path}: the Secret mounted at {mount} has no key {key} (it has {keys:?})"
            );
            let local = obs.mounts.resolve(path).unwrap();
            assert!(
                std::fs::read_to_string(&local).is_ok_and(|t| !t.is_empty()),
                "{dir}: {name}"
            );
        }
        // Secrets reach obs as files only, never as variables (which `kubectl describe`, a
        // crash dump or /proc/<pid>/environ show).
        for (name, _, source) in &obs.env {
            assert!(
                !matches!(source, Source::Secret(_)),
                "{dir}: {name} comes from a Secret as a variable: mount it and use a *_FILE setting"
            );
        }
        assert_eq!(
            obs.deployment["spec"]["template"]["spec"]["automountServiceAccountToken"],
            false
        );
    }
}

/// The port in OBS_LISTEN is the container's `http` port, the probes ask obs's /healthz and
/// /readyz there, and the Service sends its port there.
#[test]
fn probes_and_ports_match_the_listen_address() {
    for dir in KUSTOMIZATIONS {
        let obs = obs(dir);
        let listen = value(&obs.env, "OBS_LISTEN").expect("OBS_LISTEN");
        let (host, port) = listen.rsplit_once(':').expect("host:port");
        assert_eq!(
            host, "0.0.0.0",
            "{dir}: obs must listen on every interface to be probed"
        );
        let port: u64 = port.parse().unwrap();
        let ports = obs.container["ports"].as_array().unwrap();
        let http = ports
            .iter()
            .find(|p| p["name"] == "http")
            .expect("a port named http");
        assert_eq!(
            http["containerPort"], port,
            "{dir}: containerPort vs OBS_LISTEN"
        );
        let resolves = |p: &Value| p == "http" || *p == port;
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &obs.container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{dir}: {probe}");
            assert!(
                resolves(&get["port"]),
                "{dir}: {probe} port {}",
                get["port"]
            );
        }
        assert!(obs_binary::sidecar_help().contains("/healthz (alive), /readyz"));
        let service = obs.rendered.get("Service", "obs");
        let selector = service["spec"]["selector"].as_object().unwrap();
        let labels = &obs.deployment["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(&labels[k], v, "{dir}: the Service selects the obs pods");
        }
        let sp = &service["spec"]["ports"][0];
        assert!(
            resolves(&sp["targetPort"]),
            "{dir}: Service targetPort {}",
            sp["targetPort"]
        );
        let annotations = &obs.deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/port"], port.to_string());
    }
}

/// obs sidecar, started with exactly the rendered environment and mounts (only its listen
/// address moved to a free loopback port, Grafana to the API double, its export endpoints to a
/// closed port), answers /healthz, and /readyz once it has provisioned Grafana with the mounted
/// token: every value parses, every file it reads is there, and the readiness probe goes green.
#[tokio::test]
async fn obs_starts_and_becomes_ready_with_the_rendered_settings() {
    for dir in KUSTOMIZATIONS {
        let obs = obs(dir);
        let token = data(obs.rendered.get("Secret", "obs-credentials"))
            .into_iter()
            .find(|(k, _)| k == "grafana-token")
            .expect("the Secret holds grafana-token")
            .1;
        let grafana =
            GrafanaDouble::start(GrafanaConfig::default().with_token(token, Role::Admin)).unwrap();
        let port = support::free_port();
        let closed = support::closed_endpoint();
        let env = obs.local_env(&[
            ("OBS_LISTEN", format!("127.0.0.1:{port}")),
            ("OBS_GRAFANA_URL", grafana.url().to_string()),
            ("OBS_OTLP_ENDPOINT", closed.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", closed.clone()),
        ]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = support::spawn(
            "obs-sidecar",
            obs_binary::path().to_str().unwrap(),
            &["sidecar"],
            &env,
        );
        let base = format!("http://127.0.0.1:{port}");
        support::wait_ready(&format!("{base}/healthz"), &process).await;
        support::wait_ready(&format!("{base}/readyz"), &process).await;
        assert_eq!(
            grafana.dashboards().len(),
            crate::kube::shipped_dashboards(),
            "{dir}: provisioned before ready"
        );
        let output = process.output();
        assert!(
            !output.contains("platform_telemetry::config"),
            "{dir}: obs warned about its telemetry settings:\n{output}"
        );
    }
}
