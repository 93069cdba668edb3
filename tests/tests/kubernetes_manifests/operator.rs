//! The OpenTelemetry Operator's SDK injection, modelled for the tests: what its webhook does to a
//! container of a pod that asks for it.

use serde_json::{Value, json};

use crate::kube::Rendered;

/// What the OpenTelemetry Operator's webhook adds to a container of a pod annotated
/// `instrumentation.opentelemetry.io/inject-sdk: <name>`, as its SDK-injection e2e expectations
/// show (tests/e2e-instrumentation/instrumentation-sdk in opentelemetry-operator): a variable the
/// container sets is kept; `spec.env`, OTEL_SERVICE_NAME (the workload's name),
/// OTEL_EXPORTER_OTLP_ENDPOINT, the OTEL_RESOURCE_ATTRIBUTES_* downward-API variables,
/// OTEL_PROPAGATORS and the sampler are added; OTEL_RESOURCE_ATTRIBUTES is moved last and gets
/// the k8s.* attributes it lacks, referring to those variables.
pub fn inject_sdk(rendered: &Rendered, deployment: &Value, container: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let Some(wanted) =
        template["metadata"]["annotations"]["instrumentation.opentelemetry.io/inject-sdk"].as_str()
    else {
        return container.clone();
    };
    let inst = rendered.get("Instrumentation", wanted);
    let spec = &inst["spec"];
    let mut env: Vec<Value> = container["env"].as_array().cloned().unwrap_or_default();
    let has = |env: &[Value], n: &str| env.iter().any(|e| e["name"] == n);
    let add = |env: &mut Vec<Value>, entry: Value| {
        if !has(env, entry["name"].as_str().unwrap()) {
            env.push(entry);
        }
    };
    for entry in spec["env"].as_array().cloned().unwrap_or_default() {
        add(&mut env, entry);
    }
    let name = deployment["metadata"]["name"].as_str().unwrap();
    let field =
        |n: &str, path: &str| json!({"name": n, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    add(
        &mut env,
        json!({"name": "OTEL_SERVICE_NAME", "value": name}),
    );
    add(
        &mut env,
        json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": spec["exporter"]["endpoint"]}),
    );
    add(
        &mut env,
        field("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "metadata.name"),
    );
    add(
        &mut env,
        field("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "spec.nodeName"),
    );
    let uids = spec["resource"]["addK8sUIDAttributes"] == true;
    if uids {
        add(
            &mut env,
            field("OTEL_RESOURCE_ATTRIBUTES_POD_UID", "metadata.uid"),
        );
    }
    if let Some(p) = spec["propagators"].as_array() {
        let p: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        add(
            &mut env,
            json!({"name": "OTEL_PROPAGATORS", "value": p.join(",")}),
        );
    }
    if let Some(t) = spec["sampler"]["type"].as_str() {
        add(&mut env, json!({"name": "OTEL_TRACES_SAMPLER", "value": t}));
        add(
            &mut env,
            json!({"name": "OTEL_TRACES_SAMPLER_ARG", "value": spec["sampler"]["argument"]}),
        );
    }
    let existing = env
        .iter()
        .position(|e| e["name"] == "OTEL_RESOURCE_ATTRIBUTES")
        .map(|i| {
            env.remove(i)["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let mut attributes: Vec<String> = existing
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    let container_name = container["name"].as_str().unwrap();
    let mut injected = vec![
        ("k8s.container.name", container_name.to_string()),
        ("k8s.deployment.name", name.to_string()),
        ("k8s.namespace.name", namespace.to_string()),
        (
            "k8s.node.name",
            "$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME)".to_string(),
        ),
        (
            "k8s.pod.name",
            "$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME)".to_string(),
        ),
    ];
    if uids {
        injected.push((
            "k8s.pod.uid",
            "$(OTEL_RESOURCE_ATTRIBUTES_POD_UID)".to_string(),
        ));
    }
    for (k, v) in injected {
        if !attributes.iter().any(|a| a.starts_with(&format!("{k}="))) {
            attributes.push(format!("{k}={v}"));
        }
    }
    env.push(json!({"name": "OTEL_RESOURCE_ATTRIBUTES", "value": attributes.join(",")}));
    let mut container = container.clone();
    container["env"] = Value::Array(env);
    container
}
