#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The alerting part of the stack as code: Prometheus loads the shipped rules from where compose
//! mounts them and sends to the Alertmanager service; Alertmanager runs the shipped, valid
//! configuration and delivers to a receiver that listens (the obs sidecar's webhook); Grafana
//! sees both; obs verifies the path; a dashboard lists firing alerts.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Yaml {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join(path)).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The repository path compose mounts at `target` in `service`, from `./path:target[:ro]`.
fn mounted(compose: &Yaml, service: &str, target: &str) -> Option<String> {
    strings(&compose["services"][service]["volumes"])
        .into_iter()
        .find_map(|v| {
            let mut parts = v.split(':');
            let (source, at) = (parts.next()?, parts.next()?);
            (at == target).then(|| source.trim_start_matches("./").to_string())
        })
}

#[test]
fn prometheus_loads_the_shipped_rules_and_sends_to_the_alertmanager_service() {
    let compose = yaml("docker-compose.yml");
    let prometheus = yaml("stack/prometheus/prometheus.yml");
    let globs = strings(&prometheus["rule_files"]);
    assert_eq!(globs, ["/etc/prometheus/rules/*.yml"], "rule_files");
    assert_eq!(
        mounted(&compose, "prometheus", "/etc/prometheus/rules").as_deref(),
        Some("stack/prometheus/rules"),
        "the rules directory is mounted where rule_files looks"
    );
    let targets =
        strings(&prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]);
    assert_eq!(targets, ["alertmanager:9093"]);
    let am = &compose["services"]["alertmanager"];
    assert!(
        strings(&am["command"]).contains(&"--web.listen-address=0.0.0.0:9093".to_string()),
        "Alertmanager listens where Prometheus sends"
    );
    let image = am["image"].as_str().unwrap();
    assert!(
        image.contains("prom/alertmanager:v0."),
        "a pinned Alertmanager image: {image}"
    );
    assert!(
        am["healthcheck"]["test"].as_sequence().is_some(),
        "a healthcheck"
    );
    assert!(
        prometheus["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|j| j["job_name"] == "alertmanager"),
        "Alertmanager is scraped (ScrapeTargetDown covers it)"
    );
}

#[test]
fn alertmanager_runs_the_shipped_valid_config_and_delivers_to_a_listening_receiver() {
    let compose = yaml("docker-compose.yml");
    let am = &compose["services"]["alertmanager"];
    assert!(
        strings(&am["command"])
            .contains(&"--config.file=/etc/alertmanager/alertmanager.yml".to_string())
    );
    assert_eq!(
        mounted(
            &compose,
            "alertmanager",
            "/etc/alertmanager/alertmanager.yml"
        )
        .as_deref(),
        Some("stack/alertmanager/alertmanager.yml")
    );
    let check = std::process::Command::new("amtool")
        .args(["check-config"])
        .arg(repo().join("stack/alertmanager/alertmanager.yml"))
        .output()
        .expect("amtool is not installed: run scripts/test.sh (apt-get install prometheus-alertmanager)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let config = yaml("stack/alertmanager/alertmanager.yml");
    let obs_listen = compose["services"]["obs"]["environment"]["OBS_LISTEN"]
        .as_str()
        .unwrap();
    let obs_port = obs_listen.rsplit(':').next().unwrap();
    for receiver in config["receivers"].as_sequence().unwrap() {
        for hook in receiver["webhook_configs"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let url = hook["url"].as_str().unwrap();
            assert_eq!(
                url,
                format!("http://obs:{obs_port}/alerts"),
                "{}: the shipped receiver is the obs sidecar's webhook",
                receiver["name"].as_str().unwrap_or_default()
            );
        }
    }
    let watchdog_route = config["route"]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| {
            strings(&r["matchers"])
                .iter()
                .any(|m| m.contains("Watchdog"))
        });
    assert!(watchdog_route.is_some(), "the Watchdog has its own route");
}

#[test]
fn grafana_sees_the_rules_and_alertmanager_and_obs_verifies_the_path() {
    let datasources = yaml("grafana/provisioning/datasources/datasources.yaml");
    let list = datasources["datasources"].as_sequence().unwrap();
    let by_uid = |uid: &str| {
        list.iter()
            .find(|d| d["uid"] == uid)
            .unwrap_or_else(|| panic!("no datasource {uid}"))
    };
    let am = by_uid("alertmanager");
    assert_eq!(am["type"], "alertmanager");
    assert_eq!(am["url"], "http://alertmanager:9093");
    assert_eq!(am["jsonData"]["implementation"], "prometheus");
    let prometheus = by_uid("prometheus");
    assert_eq!(prometheus["jsonData"]["manageAlerts"], true);
    assert_eq!(prometheus["jsonData"]["alertmanagerUid"], "alertmanager");

    let compose = yaml("docker-compose.yml");
    let obs = &compose["services"]["obs"];
    assert_eq!(
        obs["environment"]["OBS_ALERTMANAGER"],
        "http://alertmanager:9093"
    );
    assert_eq!(
        obs["environment"]["OBS_PROMETHEUS"],
        "http://prometheus:9090"
    );
    assert_eq!(
        obs["depends_on"]["alertmanager"]["condition"], "service_healthy",
        "obs starts verifying once Alertmanager is up"
    );

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/platform/telemetry-pipeline.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        dashboard["panels"].as_array().unwrap().iter().any(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("ALERTS{alertstate=\"firing\"}"))
            })
        }),
        "a panel lists the firing alerts"
    );
}
