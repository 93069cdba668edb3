//! Loki, Tempo and Jaeger.

use std::collections::BTreeSet;

use serde_yaml_ng::Value as Yaml;

use crate::listeners::*;
use crate::support::*;

fn sequence_contains_id_key(value: &Yaml) -> Vec<String> {
    let mut found = Vec::new();
    let mut scalars = Vec::new();
    string_scalars(value, "", &mut scalars);
    for (path, v) in scalars {
        let normalized = v.replace('.', "_").to_ascii_lowercase();
        if normalized == "trace_id"
            || normalized == "span_id"
            || normalized == "traceid"
            || normalized == "spanid"
        {
            found.push(format!("{path} = {v}"));
        }
    }
    found
}

#[test]
fn loki_keeps_structured_metadata_and_never_indexes_trace_or_span_ids() {
    let compose = compose();
    let file = config_file_of(&compose, "loki");
    let loki = yaml(&file);
    let mut problems = Vec::new();
    if loki["limits_config"]["allow_structured_metadata"].as_bool() != Some(true) {
        problems.push("limits_config.allow_structured_metadata is not true".into());
    }
    // Structured metadata needs the TSDB index and schema v13 on every period.
    for period in loki["schema_config"]["configs"]
        .as_sequence()
        .expect("schema_config.configs")
    {
        if text(&period["schema"]).as_deref() != Some("v13")
            || text(&period["store"]).as_deref() != Some("tsdb")
        {
            problems.push(format!(
                "schema period {:?} is not tsdb v13",
                text(&period["from"])
            ));
        }
    }
    // Index labels come from the distributor's list and limits_config.otlp_config's index_label
    // actions: neither may name an id.
    let labels = &loki["distributor"]["otlp_config"]["default_resource_attributes_as_index_labels"];
    if labels.is_null() {
        problems.push(
            "distributor.otlp_config.default_resource_attributes_as_index_labels is not set: Loki's default indexes service.instance.id"
                .into(),
        );
    }
    for hit in sequence_contains_id_key(labels) {
        problems.push(format!("index label from an id: {hit}"));
    }
    let otlp = &loki["limits_config"]["otlp_config"];
    for section in ["resource_attributes", "scope_attributes", "log_attributes"] {
        let configs = if section == "resource_attributes" {
            &otlp[section]["attributes_config"]
        } else {
            &otlp[section]
        };
        for rule in configs.as_sequence().map(Vec::as_slice).unwrap_or_default() {
            if text(&rule["action"]).as_deref() == Some("index_label") {
                for hit in sequence_contains_id_key(&rule["attributes"]) {
                    problems.push(format!(
                        "limits_config.otlp_config.{section}: index_label on {hit}"
                    ));
                }
                if !rule["regex"].is_null() {
                    problems.push(format!(
                        "limits_config.otlp_config.{section}: index_label by regex may catch trace_id/span_id"
                    ));
                }
            }
        }
    }
    let labels = strings(labels);
    if !labels.contains(&"service.name".to_string()) {
        problems.push(
            "service.name is not an index label: the datasources select on service_name".into(),
        );
    }
    for l in loki_listeners(&loki, &file) {
        if l.bind != "0.0.0.0" {
            problems.push(format!("{}: binds {:?}", l.source, l.bind));
        }
    }
    assert_no_problems(&file, &problems);
}

#[test]
fn tempo_binds_its_receivers_to_all_interfaces_and_remote_writes_to_prometheus() {
    let compose = compose();
    let file = config_file_of(&compose, "tempo");
    let tempo = yaml(&file);
    let listeners_all = listeners(&compose);
    let mut problems = Vec::new();
    let found = tempo_listeners(&tempo, &file);
    for l in &found {
        if l.bind != "0.0.0.0" {
            problems.push(format!("{}: binds {:?}, not 0.0.0.0", l.source, l.bind));
        }
    }
    if !found.iter().any(|l| l.proto == Proto::OtlpGrpc) {
        problems.push("Tempo has no OTLP gRPC receiver".into());
    }
    // Tempo 3 refuses the blocks of the removed components.
    for removed in [
        "ingester",
        "ingester_client",
        "compactor",
        "metrics_generator_client",
    ] {
        if !tempo[removed].is_null() {
            problems.push(format!("`{removed}:` was removed in Tempo 3"));
        }
    }
    let processors = strings(&tempo["overrides"]["defaults"]["metrics_generator"]["processors"]);
    for wanted in ["service-graphs", "span-metrics"] {
        if !processors.contains(&wanted.to_string()) {
            problems.push(format!(
                "the metrics-generator does not run {wanted}: {processors:?}"
            ));
        }
    }
    if processors.iter().any(|p| p == "local-blocks") {
        problems.push("local-blocks was removed in Tempo 3".into());
    }
    let writes: Vec<String> = tempo["metrics_generator"]["storage"]["remote_write"]
        .as_sequence()
        .map(|s| s.iter().filter_map(|w| text(&w["url"])).collect())
        .unwrap_or_default();
    if writes.is_empty() {
        problems.push("metrics_generator.storage.remote_write is empty".into());
    }
    for url in &writes {
        if !url.starts_with("http://prometheus:") || !url.ends_with("/api/v1/write") {
            problems.push(format!(
                "remote write to {url}, not Prometheus's /api/v1/write"
            ));
        }
        if let Err(e) = reaches(&listeners_all, "tempo remote_write", url, &[Proto::Http]) {
            problems.push(e);
        }
    }
    let prometheus_args = argv(&compose["services"]["prometheus"]["command"]);
    if !prometheus_args.contains(&"--web.enable-remote-write-receiver".to_string()) {
        problems.push("Prometheus runs without --web.enable-remote-write-receiver".into());
    }
    assert_no_problems(&file, &problems);
}

#[test]
fn jaeger_takes_otlp_on_all_interfaces_into_a_store_it_queries() {
    let compose = compose();
    let file = config_file_of(&compose, "jaeger");
    let jaeger = yaml(&file);
    let mut problems = wiring_problems(&jaeger, &file);
    for l in jaeger_listeners(&jaeger, &file) {
        if l.bind != "0.0.0.0" {
            problems.push(format!("{}: binds {:?}, not 0.0.0.0", l.source, l.bind));
        }
    }
    let backends: BTreeSet<String> = keys(&jaeger["extensions"]["jaeger_storage"]["backends"])
        .into_iter()
        .collect();
    for (what, name) in [
        (
            "jaeger_query.storage.traces",
            text(&jaeger["extensions"]["jaeger_query"]["storage"]["traces"]),
        ),
        (
            "jaeger_storage_exporter.trace_storage",
            text(&jaeger["exporters"]["jaeger_storage_exporter"]["trace_storage"]),
        ),
    ] {
        match name {
            Some(n) if backends.contains(&n) => {}
            other => problems.push(format!("{what} = {other:?} is not one of {backends:?}")),
        }
    }
    assert_no_problems(&file, &problems);
}
