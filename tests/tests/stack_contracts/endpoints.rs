//! Endpoints: every URL points at a service and a port it listens on, in its protocol.

use std::collections::BTreeSet;

use crate::listeners::*;
use crate::support::*;

#[test]
fn every_endpoint_in_the_services_environment_reaches_a_listener() {
    let compose = compose();
    let listeners = listeners(&compose);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, service) in services(&compose) {
        let env = environment(&service);
        // The library's default protocol (README: http/protobuf).
        let protocol = env
            .get("OTEL_EXPORTER_OTLP_PROTOCOL")
            .cloned()
            .unwrap_or_else(|| "http/protobuf".into());
        for (key, value) in &env {
            if !value.contains("://") {
                continue;
            }
            let otlp = |grpc: bool| {
                if grpc {
                    vec![Proto::OtlpGrpc]
                } else {
                    vec![Proto::OtlpHttp]
                }
            };
            let accepted = if key.starts_with("OTEL_EXPORTER_OTLP_") && key.ends_with("ENDPOINT") {
                otlp(protocol == "grpc")
            } else if key == "OBS_OTLP_ENDPOINT" {
                // obs: a :4317 endpoint means gRPC unless OTEL_EXPORTER_OTLP_PROTOCOL says so.
                let grpc = match env.get("OTEL_EXPORTER_OTLP_PROTOCOL") {
                    Some(p) => p == "grpc",
                    None => value.ends_with(":4317"),
                };
                otlp(grpc)
            } else if value.starts_with("nats://") {
                vec![Proto::Nats]
            } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
                vec![Proto::Postgres]
            } else if value.starts_with("redis://") {
                vec![Proto::Redis]
            } else {
                vec![Proto::Http]
            };
            checked += 1;
            if let Err(e) = reaches(&listeners, &format!("{name}.{key}"), value, &accepted) {
                problems.push(e);
            }
        }
    }
    assert!(checked >= 14, "only {checked} endpoints found");
    assert_no_problems("service endpoints", &problems);
}

#[test]
fn obs_is_configured_for_every_store_the_target_and_grafana() {
    let compose = compose();
    let obs = &compose["services"]["obs"];
    let env = environment(obs);
    let mut problems = Vec::new();
    for var in [
        "OBS_LISTEN",
        "OBS_GRAFANA_URL",
        "OBS_OTLP_ENDPOINT",
        "OBS_TEMPO",
        "OBS_JAEGER",
        "OBS_LOKI",
        "OBS_PROMETHEUS",
        "OBS_TARGET",
        "OBS_TARGET_SERVICES",
    ] {
        if env.get(var).is_none_or(String::is_empty) {
            problems.push(format!("obs: {var} is not set"));
        }
    }
    if argv(&obs["command"]) != ["sidecar"] {
        problems.push("obs runs `sidecar`".into());
    }
    if healthcheck(obs) != ["CMD", "/usr/local/bin/obs", "health"] {
        problems.push("obs's healthcheck is `obs health`".into());
    }
    let targets: BTreeSet<String> = env["OBS_TARGET_SERVICES"]
        .split(',')
        .map(str::to_string)
        .collect();
    for service in ["gateway", "orders", "worker"] {
        if !targets.contains(service) {
            problems.push(format!("OBS_TARGET_SERVICES misses {service}"));
        }
    }
    // The Grafana password obs logs in with is Grafana's admin password.
    let grafana = environment(&compose_raw()["services"]["grafana"]);
    let raw_obs = environment(&compose_raw()["services"]["obs"]);
    if grafana.get("GF_SECURITY_ADMIN_PASSWORD") != raw_obs.get("OBS_GRAFANA_PASSWORD")
        || grafana.get("GF_SECURITY_ADMIN_USER") != raw_obs.get("OBS_GRAFANA_USER")
    {
        problems.push("obs and Grafana disagree on the admin credentials".into());
    }
    assert_no_problems("obs", &problems);
}

#[test]
fn the_grafana_datasources_point_at_listeners() {
    let compose = compose();
    let listeners = listeners(&compose);
    let datasources = yaml(DATASOURCES);
    let mut problems = Vec::new();
    let list = datasources["datasources"]
        .as_sequence()
        .expect("datasources");
    for ds in list {
        let uid = text(&ds["uid"]).unwrap();
        let url = text(&ds["url"]).unwrap();
        if let Err(e) = reaches(
            &listeners,
            &format!("datasource {uid}"),
            &url,
            &[Proto::Http],
        ) {
            problems.push(e);
        }
    }
    assert_eq!(
        list.len(),
        5,
        "prometheus, loki, tempo, jaeger, alertmanager"
    );
    // Grafana mounts the provisioning directory and the dashboards where the provider looks.
    let grafana = &compose["services"]["grafana"];
    let provider = yaml("grafana/provisioning/dashboards/dashboards.yaml");
    let provider_path = text(&provider["providers"][0]["options"]["path"]).unwrap();
    if mounted_file("grafana", grafana, &provider_path) != "dashboards" {
        problems.push(format!(
            "grafana: ./dashboards is not mounted at {provider_path}"
        ));
    }
    if mounted_file("grafana", grafana, "/etc/grafana/provisioning") != "grafana/provisioning" {
        problems.push(
            "grafana: ./grafana/provisioning is not mounted at /etc/grafana/provisioning".into(),
        );
    }
    assert_no_problems("datasources", &problems);
}
