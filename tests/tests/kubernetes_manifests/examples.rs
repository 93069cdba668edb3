//! The example services, run with their rendered environment, describe the pod they run in.

use std::collections::BTreeMap;
use std::time::Duration;

use otlp_receiver::OtlpReceiver;
use serde_json::{Value, json};

use crate::kube::{KUSTOMIZATIONS, MULTI_TENANT, Rendered, container, rendered, repo_root};
use crate::mounts::mount;
use crate::operator::inject_sdk;
use crate::pod_env::{Env, Pod, resolve, value};
use crate::support::{
    Process, free_port, http, spawn_example, start_nats, start_postgres, start_redis, wait_ready,
};

/// Started in this order: each one's peers first.
const SERVICES: [&str; 3] = ["worker", "orders", "gateway"];

/// `KUBERNETES_VARIABLES` in crates/platform-telemetry/src/resource.rs: each downward-API
/// variable the library reads and the resource attribute it becomes.
fn library_kubernetes_variables() -> Vec<(String, String)> {
    let source =
        std::fs::read_to_string(repo_root().join("crates/platform-telemetry/src/resource.rs"))
            .unwrap();
    let table = &source[source.find("KUBERNETES_VARIABLES").expect("the table")..];
    let table = &table[..table.find("];").unwrap()];
    let pairs: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("(\"")?;
            let (var, rest) = l.split_once("\", ")?;
            let rest = rest.strip_suffix("),")?;
            // A literal ("k8s.pod.name") or a semantic-conventions constant (attr::K8S_POD_NAME,
            // whose value is its name in lower case with dots).
            let attr = match rest.strip_prefix("attr::") {
                Some(constant) => constant.to_ascii_lowercase().replace('_', "."),
                None => rest.trim_matches('"').to_string(),
            };
            Some((var.to_string(), attr))
        })
        .collect();
    assert!(
        pairs.len() >= 4,
        "cannot read KUBERNETES_VARIABLES: {pairs:?}"
    );
    pairs
}

/// The downward-API field (or the literal) each variable must carry.
fn expected_source(variable: &str, deployment: &str) -> Value {
    match variable {
        "K8S_POD_NAME" => json!({"fieldRef": "metadata.name"}),
        "K8S_POD_UID" => json!({"fieldRef": "metadata.uid"}),
        "K8S_NAMESPACE_NAME" => json!({"fieldRef": "metadata.namespace"}),
        "K8S_NODE_NAME" => json!({"fieldRef": "spec.nodeName"}),
        "K8S_CONTAINER_NAME" | "K8S_DEPLOYMENT_NAME" => json!({"value": deployment}),
        other => panic!("the library reads {other}: say here what the manifests must set it to"),
    }
}

#[test]
fn every_example_service_gets_every_downward_api_variable_the_library_reads() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        for name in SERVICES {
            let deployment = rendered.get("Deployment", name);
            let env = container(deployment, name)["env"].as_array().unwrap();
            for (variable, attribute) in library_kubernetes_variables() {
                let entry = env
                    .iter()
                    .find(|e| e["name"] == variable.as_str())
                    .unwrap_or_else(|| panic!("{dir}: {name} lacks {variable} (→ {attribute})"));
                let got = match entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some(field) => json!({"fieldRef": field}),
                    None => json!({"value": entry["value"]}),
                };
                assert_eq!(
                    got,
                    expected_source(&variable, name),
                    "{dir}: {name} {variable}"
                );
            }
        }
    }
}

/// `http://host:port` → (host, port).
fn host_port(url: &str) -> (String, u16) {
    let url = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    (
        url.host_str().unwrap().to_string(),
        url.port_or_known_default().unwrap(),
    )
}

/// The port a Service named `name` offers (its first).
fn service_port(rendered: &Rendered, name: &str) -> u16 {
    let service = rendered.get("Service", name);
    service["spec"]["ports"][0]["port"].as_u64().unwrap() as u16
}

/// The URLs of the real servers standing in for the cluster's `postgres` and `redis` Services.
struct DataStores {
    postgres_url: String,
    redis_url: String,
}

struct Running {
    processes: Vec<Process>,
    /// The files standing in for mounted Secrets (kept while the services run).
    _files: Vec<tempfile::TempDir>,
    gateway: String,
    pods: BTreeMap<&'static str, (Pod, Env)>,
}

async fn run_examples(
    dir: &'static str,
    receiver: &OtlpReceiver,
    nats_url: &str,
    stores: &DataStores,
) -> Running {
    let rendered = rendered(dir);
    let mut processes = Vec::new();
    let mut files = Vec::new();
    let mut pods = BTreeMap::new();
    let mut local_urls: BTreeMap<&str, String> = BTreeMap::new();
    for name in SERVICES {
        let deployment = rendered.get("Deployment", name);
        let declared = container(deployment, name);
        let injected = inject_sdk(rendered, deployment, declared);
        if dir == MULTI_TENANT {
            let own = resolve(rendered, declared, &Pod::of(deployment));
            assert!(
                value(&own, "OTEL_EXPORTER_OTLP_ENDPOINT").is_none(),
                "{dir}: {name} sets OTEL_EXPORTER_OTLP_ENDPOINT itself, so the Operator's would be ignored"
            );
        }
        let pod = Pod::of(deployment);
        let env = resolve(rendered, &injected, &pod);
        let container_port = declared["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "http")
            .expect("a port named http")["containerPort"]
            .as_u64()
            .unwrap();
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                declared[probe]["httpGet"]["path"], "/healthz",
                "{dir}: {name} {probe}"
            );
            assert_eq!(
                declared[probe]["httpGet"]["port"], "http",
                "{dir}: {name} {probe}"
            );
        }
        assert_eq!(
            rendered.get("Service", name)["spec"]["ports"][0]["targetPort"],
            "http",
            "{dir}: Service {name}"
        );
        let port = free_port();
        let mounts = mount(rendered, &deployment["spec"]["template"]["spec"], declared);
        let mut local: Vec<(String, String)> = Vec::new();
        for (k, v, _) in &env {
            let v = match k.as_str() {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => {
                    assert_eq!(
                        host_port(v).1,
                        4318,
                        "{dir}: {name}: OTLP/HTTP endpoint {v}"
                    );
                    assert_eq!(
                        value(&env, "OTEL_EXPORTER_OTLP_PROTOCOL"),
                        Some("http/protobuf"),
                        "{dir}: {name}"
                    );
                    receiver.http_endpoint()
                }
                k if k == format!("{}_PORT", name.to_uppercase()) => {
                    assert_eq!(
                        v,
                        &container_port.to_string(),
                        "{dir}: {name}: {k} vs containerPort"
                    );
                    port.to_string()
                }
                "NATS_URL" => {
                    assert_eq!(
                        host_port(v),
                        ("nats".to_string(), service_port(rendered, "nats")),
                        "{dir}: {name}: NATS_URL"
                    );
                    nats_url.to_string()
                }
                // The database URL, from the mounted Secret: the cluster's `postgres` Service,
                // here the real PostgreSQL, through a file as in the pod.
                "DATABASE_URL_FILE" => {
                    let file = mounts.resolve(v).unwrap_or_else(|| {
                        panic!("{dir}: {name}: {k}={v} is in no mounted volume")
                    });
                    let url = std::fs::read_to_string(&file).unwrap();
                    assert_eq!(
                        host_port(url.trim()),
                        ("postgres".to_string(), 5432),
                        "{dir}: {name}: the database URL in {v}"
                    );
                    let here = tempfile::tempdir().unwrap();
                    let path = here.path().join("database-url");
                    std::fs::write(&path, &stores.postgres_url).unwrap();
                    files.push(here);
                    path.display().to_string()
                }
                "REDIS_URL" => {
                    assert_eq!(
                        host_port(v),
                        ("redis".to_string(), 6379),
                        "{dir}: {name}: REDIS_URL"
                    );
                    stores.redis_url.clone()
                }
                "ORDERS_URL" => {
                    assert_eq!(
                        host_port(v),
                        ("orders".to_string(), service_port(rendered, "orders")),
                        "{dir}: {name}: ORDERS_URL"
                    );
                    local_urls["orders"].clone()
                }
                _ => v.clone(),
            };
            local.push((k.clone(), v));
        }
        // Export quickly (not a manifest setting: the test's own).
        local.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
        local.push(("OTEL_BLRP_SCHEDULE_DELAY".into(), "100".into()));
        let local: Vec<(&str, &str)> = local
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = spawn_example(name, &local);
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{url}/healthz"), &process).await;
        local_urls.insert(name, url);
        processes.push(process);
        pods.insert(name, (pod, env));
    }
    Running {
        gateway: local_urls["gateway"].clone(),
        processes,
        _files: files,
        pods,
    }
}

/// gateway → orders → NATS → worker, each started with its rendered environment: the spans of
/// one request arrive with each pod's k8s.* attributes, the service name and the resource
/// attributes the manifests set (in the overlay, through the Operator's injection).
#[tokio::test]
async fn the_example_services_report_the_pod_they_run_in() {
    let (_nats, nats_url) = start_nats().await;
    let (_postgres, postgres_url, _postgres_dir) = start_postgres().await;
    let (_redis, redis_url) = start_redis().await;
    let stores = DataStores {
        postgres_url,
        redis_url,
    };
    for dir in KUSTOMIZATIONS {
        let receiver = OtlpReceiver::start().await.unwrap();
        let running = run_examples(dir, &receiver, &nats_url, &stores).await;
        // A sampled parent, like obs's probe: parent-based samplers keep the whole trace.
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let response = http()
            .get(format!("{}/orders/7", running.gateway))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{dir}: {}",
            response.status()
        );
        let snapshot = receiver
            .wait_until(Duration::from_secs(30), |s| {
                SERVICES.iter().all(|svc| {
                    s.spans.iter().any(|sp| {
                        sp.trace_id_hex() == trace_id && sp.service_name().as_deref() == Some(*svc)
                    })
                })
            })
            .await
            .unwrap_or_else(|e| panic!("{dir}: not every service sent its span: {e}"));
        for (name, (pod, env)) in &running.pods {
            let span = snapshot
                .spans
                .iter()
                .find(|sp| {
                    sp.trace_id_hex() == trace_id && sp.service_name().as_deref() == Some(*name)
                })
                .unwrap();
            let expected = [
                ("service.name", name.to_string()),
                ("k8s.pod.name", pod.name.clone()),
                ("k8s.pod.uid", pod.uid.clone()),
                ("k8s.namespace.name", "observability".to_string()),
                ("k8s.node.name", pod.node.clone()),
                ("k8s.container.name", name.to_string()),
                ("k8s.deployment.name", name.to_string()),
                ("deployment.environment.name", "production".to_string()),
                ("service.namespace", "observability".to_string()),
            ];
            for (key, want) in expected {
                assert_eq!(
                    span.resource_attr(key).as_deref(),
                    Some(want.as_str()),
                    "{dir}: {name}'s resource attribute {key} (its environment: {env:?})"
                );
            }
        }
        for process in &running.processes {
            let output = process.output();
            assert!(
                !output.contains("platform_telemetry::config"),
                "{dir}: {} warned about its telemetry settings:\n{output}",
                process.name
            );
        }
    }
}
