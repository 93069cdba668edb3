//! The collector.

use std::collections::{BTreeMap, BTreeSet};

use crate::listeners::*;
use crate::support::*;

#[test]
fn every_collector_pipeline_component_is_defined_and_every_defined_one_is_used() {
    let config = yaml(COLLECTOR);
    let pipelines = pipeline_components(&config);
    let mut problems = wiring_problems(&config, COLLECTOR);
    for signal in ["traces", "logs", "metrics"] {
        if !pipelines.contains_key(signal) {
            problems.push(format!("no {signal} pipeline"));
        }
    }
    assert_no_problems(COLLECTOR, &problems);
}

#[test]
fn every_collector_pipeline_starts_with_memory_limiter_and_batches() {
    let config = yaml(COLLECTOR);
    let mut problems = Vec::new();
    for (pipeline, kinds) in pipeline_components(&config) {
        let processors = &kinds["processors"];
        if processors.first().map(String::as_str) != Some("memory_limiter") {
            problems.push(format!(
                "{pipeline}: memory_limiter must come first: {processors:?}"
            ));
        }
        if !processors
            .iter()
            .any(|p| p == "batch" || p.starts_with("batch/"))
        {
            problems.push(format!("{pipeline}: no batch processor: {processors:?}"));
        }
    }
    let limiter = &config["processors"]["memory_limiter"];
    if limiter["check_interval"].is_null() {
        problems.push("memory_limiter needs check_interval".into());
    }
    // Percentages of a limit only mean something with a container memory limit.
    if limiter["limit_percentage"].is_null() == limiter["limit_mib"].is_null() {
        problems.push("memory_limiter: set exactly one of limit_percentage, limit_mib".into());
    }
    if !limiter["limit_percentage"].is_null()
        && compose()["services"]["otel-collector"]["mem_limit"].is_null()
    {
        problems.push("memory_limiter uses percentages but the container has no mem_limit".into());
    }
    assert_no_problems(COLLECTOR, &problems);
}

#[test]
fn every_collector_exporter_retries_from_a_queue_under_its_current_name() {
    let config = yaml(COLLECTOR);
    let mut problems = Vec::new();
    for name in keys(&config["exporters"]) {
        let exporter = &config["exporters"][name.as_str()];
        for block in ["retry_on_failure", "sending_queue"] {
            if exporter[block]["enabled"].as_bool() != Some(true) {
                problems.push(format!("{name}: {block}.enabled is not true"));
            }
        }
        if !exporter["sending_queue"]["queue_size"].is_number() {
            problems.push(format!(
                "{name}: sending_queue.queue_size is not bounded explicitly"
            ));
        }
        let kind = name.split('/').next().unwrap();
        if kind == "otlp" || kind == "otlphttp" {
            problems.push(format!(
                "{name}: `{kind}` is a deprecated alias; write otlp_grpc or otlp_http"
            ));
        }
    }
    assert_no_problems(COLLECTOR, &problems);
}

#[test]
fn every_collector_listener_binds_all_interfaces() {
    let config = yaml(COLLECTOR);
    let found = collector_listeners(&config);
    let mut problems = Vec::new();
    for l in &found {
        if l.bind != "0.0.0.0" {
            problems.push(format!("{}: binds {:?}, not 0.0.0.0", l.source, l.bind));
        }
    }
    let ports: BTreeSet<(u16, Proto)> = found.iter().map(|l| (l.port, l.proto)).collect();
    for wanted in [
        (4317, Proto::OtlpGrpc),
        (4318, Proto::OtlpHttp),
        (13133, Proto::Http),
        (8888, Proto::Http),
    ] {
        if !ports.contains(&wanted) {
            problems.push(format!("no {wanted:?} listener"));
        }
    }
    // Any other endpoint under receivers or extensions is a listener too.
    let mut scalars = Vec::new();
    string_scalars(&config["receivers"], "receivers", &mut scalars);
    string_scalars(&config["extensions"], "extensions", &mut scalars);
    for (path, value) in scalars {
        if path.ends_with(".endpoint") && !value.starts_with("0.0.0.0:") {
            problems.push(format!("{path}: {value} does not bind 0.0.0.0"));
        }
    }
    assert_no_problems(COLLECTOR, &problems);
}

#[test]
fn the_collector_exports_traces_to_tempo_and_jaeger_logs_to_loki_and_metrics_to_prometheus() {
    let compose = compose();
    let listeners = listeners(&compose);
    let config = yaml(COLLECTOR);
    let pipelines = pipeline_components(&config);
    let mut problems = Vec::new();
    let mut destinations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (pipeline, kinds) in &pipelines {
        for name in &kinds["exporters"] {
            let exporter = &config["exporters"][name.as_str()];
            let endpoint = text(&exporter["endpoint"])
                .unwrap_or_else(|| panic!("exporter {name} has no endpoint"));
            let accepted: &[Proto] = match name.split('/').next().unwrap() {
                "otlp_grpc" => &[Proto::OtlpGrpc],
                "otlp_http" => &[Proto::OtlpHttp, Proto::Http],
                other => panic!("exporter kind {other} is not modelled here"),
            };
            if let Err(e) = reaches(&listeners, &format!("exporter {name}"), &endpoint, accepted) {
                problems.push(e);
            }
            let (host, _) = host_port(&endpoint).unwrap();
            destinations
                .entry(pipeline.clone())
                .or_default()
                .insert(host);
        }
    }
    let set = |hosts: &[&str]| {
        hosts
            .iter()
            .map(|h| (*h).to_string())
            .collect::<BTreeSet<_>>()
    };
    for (pipeline, wanted) in [
        ("traces", set(&["tempo", "jaeger"])),
        ("logs", set(&["loki"])),
        ("metrics", set(&["prometheus"])),
    ] {
        if destinations.get(pipeline) != Some(&wanted) {
            problems.push(format!(
                "{pipeline} go to {:?}, expected {wanted:?}",
                destinations.get(pipeline)
            ));
        }
    }
    // Loki's native OTLP endpoint: the otlp_http exporter appends /v1/logs itself.
    let loki: Vec<String> = keys(&config["exporters"])
        .into_iter()
        .filter(|n| pipelines["logs"]["exporters"].contains(n))
        .map(|n| text(&config["exporters"][n.as_str()]["endpoint"]).unwrap())
        .collect();
    if loki != ["http://loki:3100/otlp"] {
        problems.push(format!(
            "the Loki exporter endpoint is {loki:?}, not http://loki:3100/otlp"
        ));
    }
    // Prometheus's OTLP receiver, switched on.
    let metrics: Vec<String> = pipelines["metrics"]["exporters"]
        .iter()
        .map(|n| text(&config["exporters"][n.as_str()]["endpoint"]).unwrap())
        .collect();
    if metrics != ["http://prometheus:9090/api/v1/otlp"] {
        problems.push(format!(
            "metrics go to {metrics:?}, not Prometheus's /api/v1/otlp"
        ));
    }
    let prometheus_args = argv(&compose["services"]["prometheus"]["command"]);
    if !prometheus_args.contains(&"--web.enable-otlp-receiver".to_string()) {
        problems.push("Prometheus runs without --web.enable-otlp-receiver".into());
    }
    assert_no_problems(COLLECTOR, &problems);
}

#[test]
fn the_collector_is_healthchecked_and_scraped_where_it_listens() {
    let compose = compose();
    let config = yaml(&config_file_of(&compose, "otel-collector"));
    let health = text(&config["extensions"]["health_check"]["endpoint"]).unwrap();
    let (_, health_port) = host_port(&health).unwrap();
    let test = healthcheck(&compose["services"]["otel-collector"]);
    let mut problems = Vec::new();
    if !test.iter().any(|a| a.contains(&format!(":{health_port}/"))) {
        problems.push(format!(
            "the healthcheck {test:?} does not probe health_check at {health_port}"
        ));
    }
    let scraped = scrape_targets();
    let telemetry: Vec<u16> = telemetry_listeners(&config, COLLECTOR)
        .iter()
        .map(|l| l.port)
        .collect();
    match scraped.get("otel-collector") {
        Some(targets)
            if targets.iter().any(|t| {
                telemetry
                    .iter()
                    .any(|p| t == &format!("otel-collector:{p}"))
            }) => {}
        other => problems.push(format!(
            "Prometheus scrapes the collector at {other:?}, its metrics are on {telemetry:?}"
        )),
    }
    assert_no_problems("collector", &problems);
}
