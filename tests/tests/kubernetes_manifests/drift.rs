//! What the manifests say twice stays the same: the example services' settings and image tags
//! are compose's, deploy/README.md's table of obs settings is the overlay's obs.env, and obs's
//! probe takes the services' path (their OTLP endpoint, the gateway's Service, their names).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kube::{BASE, KUSTOMIZATIONS, MULTI_TENANT, container, data, rendered, repo_root};

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// `${VAR:-default}` → `default`.
fn compose_default(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => inner
            .split_once(":-")
            .map(|(_, d)| d)
            .unwrap_or_default()
            .to_string(),
        None => value.to_string(),
    }
}

/// `scheme://user:password@rest` → `scheme://user@rest`.
fn without_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

/// The database URL `name` reads through DATABASE_URL_FILE, from the Secret mounted there.
fn database_url_in_secret(rendered: &crate::kube::Rendered, name: &str) -> String {
    let deployment = rendered.get("Deployment", name);
    let declared = container(deployment, name);
    let path = declared["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DATABASE_URL_FILE")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{name}: no DATABASE_URL_FILE (the URL holds a password)"));
    let (dir, key) = path.rsplit_once('/').unwrap();
    let mount = declared["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{name}: nothing is mounted at {dir}"));
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let secret = volume["secret"]["secretName"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {dir} is not a Secret"));
    data(rendered.named("Secret", secret))
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("Secret {secret} has no key {key}"))
        .1
}

/// Each example service's own settings (ports, peers) are compose's, and NATS is the same
/// image.
#[test]
fn the_example_services_are_configured_as_in_compose() {
    let compose = compose();
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        for name in ["gateway", "orders", "worker"] {
            let env = container(rendered.get("Deployment", name), name)["env"]
                .as_array()
                .unwrap()
                .clone();
            let compose_env = compose["services"][name]["environment"]
                .as_object()
                .unwrap();
            for (key, value) in compose_env {
                if key.starts_with("OTEL_") || key == "RUST_LOG" {
                    continue; // the collector's address and the log level differ by design
                }
                if key == "DATABASE_URL" {
                    // A credential: a file from a Secret in Kubernetes, the same URL but for
                    // the password.
                    let url = database_url_in_secret(rendered, name);
                    assert_eq!(
                        without_password(&url),
                        without_password(value.as_str().unwrap()),
                        "{dir}: {name}'s database URL differs from docker-compose.yml's"
                    );
                    continue;
                }
                let want = compose_default(value.as_str().unwrap());
                let got = env.iter().find(|e| e["name"] == key.as_str());
                assert_eq!(
                    got.and_then(|e| e["value"].as_str()),
                    Some(want.as_str()),
                    "{dir}: {name} {key} differs from docker-compose.yml"
                );
            }
        }
        let nats = container(rendered.get("Deployment", "nats"), "nats");
        let image = compose_default(compose["services"]["nats"]["image"].as_str().unwrap());
        assert_eq!(
            nats["image"],
            image.as_str(),
            "{dir}: the NATS image is compose's"
        );
    }
}

/// deploy/README.md's "exact obs settings" table names every setting of the overlay's obs.env,
/// with its value where the row names one setting.
#[test]
fn the_documented_obs_settings_are_the_overlay_settings() {
    let readme = std::fs::read_to_string(repo_root().join("deploy/README.md")).unwrap();
    let section = readme
        .split("### The exact obs settings for this setup")
        .nth(1)
        .expect("deploy/README.md has the section");
    let section = section.split("\n### ").next().unwrap();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut documented: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut patterns: Vec<String> = Vec::new();
    for row in section
        .lines()
        .filter(|l| l.starts_with("| `") || l.starts_with("| no `"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (names, values) = (ticked(cells[1]), ticked(cells[2]));
        for (i, name) in names.iter().enumerate() {
            if name.contains('<') {
                patterns.push(name.clone());
            } else {
                let value = (names.len() == values.len()).then(|| values[i].clone());
                documented.insert(name.clone(), value);
            }
        }
    }
    let settings: BTreeMap<String, String> =
        data(rendered(MULTI_TENANT).get("ConfigMap", "obs-settings"))
            .into_iter()
            .collect();
    for (name, value) in &settings {
        let by_pattern = patterns.iter().any(|p| {
            let (head, tail) = p.split_once("<STORE>").unwrap_or((p, ""));
            name.starts_with(head) && name.ends_with(tail) && name.len() > head.len() + tail.len()
        });
        match documented.get(name) {
            Some(Some(doc)) => assert_eq!(doc, value, "deploy/README.md documents {name}={doc}"),
            Some(None) => {}
            None => assert!(by_pattern, "deploy/README.md does not document {name}"),
        }
    }
    for name in documented.keys().filter(|n| n.starts_with("OBS_")) {
        let absent_by_design = section.contains(&format!("no `{name}`"));
        assert!(
            settings.contains_key(name) || absent_by_design,
            "deploy/README.md documents {name}, which {MULTI_TENANT}/obs.env does not set"
        );
    }
    // The base's settings are compose's, apart from where obs finds its files and credential.
    let base: BTreeMap<String, String> = data(rendered(BASE).get("ConfigMap", "obs-settings"))
        .into_iter()
        .collect();
    let compose = compose();
    let compose_obs = compose["services"]["obs"]["environment"]
        .as_object()
        .unwrap();
    for (key, value) in compose_obs.iter().filter(|(k, _)| k.starts_with("OBS_")) {
        if ["OBS_GRAFANA_USER", "OBS_GRAFANA_PASSWORD"].contains(&key.as_str()) {
            continue; // compose uses the admin login; Kubernetes a service-account token file
        }
        assert_eq!(
            base.get(key).map(String::as_str),
            Some(compose_default(value.as_str().unwrap()).as_str()),
            "{BASE}/obs.env: {key} differs from docker-compose.yml"
        );
    }
}

/// obs's probe enters where the services' telemetry enters (so the path it proves is theirs),
/// calls the gateway's Service, and expects exactly the services that run.
#[test]
fn obs_probes_the_path_the_services_use() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        let settings: BTreeMap<String, String> = data(rendered.get("ConfigMap", "obs-settings"))
            .into_iter()
            .collect();
        let probe_endpoint = &settings["OBS_OTLP_ENDPOINT"];
        assert_eq!(
            &settings["OTEL_EXPORTER_OTLP_ENDPOINT"], probe_endpoint,
            "{dir}: obs's own telemetry and its probe take one path"
        );
        let mut names = Vec::new();
        for name in ["gateway", "orders", "worker"] {
            let deployment = rendered.get("Deployment", name);
            let env = container(deployment, name)["env"]
                .as_array()
                .unwrap()
                .clone();
            let value = |n: &str| {
                env.iter()
                    .find(|e| e["name"] == n)
                    .and_then(|e| e["value"].as_str())
                    .map(str::to_string)
            };
            names.push(value("OTEL_SERVICE_NAME").expect("OTEL_SERVICE_NAME"));
            let endpoint = value("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| {
                // Injected by the Operator from the Instrumentation the pod names.
                let wanted = deployment["spec"]["template"]["metadata"]["annotations"]
                    ["instrumentation.opentelemetry.io/inject-sdk"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{dir}: {name} has no OTLP endpoint"));
                rendered.get("Instrumentation", wanted)["spec"]["exporter"]["endpoint"]
                    .as_str()
                    .unwrap()
                    .to_string()
            });
            // A Service name resolves in its own namespace as short or fully qualified.
            let host = |url: &str| {
                let url = reqwest::Url::parse(url).unwrap();
                let host = url.host_str().unwrap().to_string();
                (host.split('.').next().unwrap().to_string(), url.port())
            };
            assert_eq!(
                host(&endpoint),
                host(probe_endpoint),
                "{dir}: {name} exports elsewhere than the probe"
            );
        }
        let target = reqwest::Url::parse(&settings["OBS_TARGET"]).unwrap();
        let gateway = rendered.get("Service", "gateway");
        assert_eq!(target.host_str(), Some("gateway"), "{dir}: OBS_TARGET");
        assert_eq!(
            target.port().map(u64::from),
            gateway["spec"]["ports"][0]["port"].as_u64(),
            "{dir}: OBS_TARGET's port is the gateway Service's"
        );
        assert!(
            target.path().starts_with("/orders/"),
            "{dir}: a route the gateway serves"
        );
        names.sort();
        let mut expected: Vec<String> = settings["OBS_TARGET_SERVICES"]
            .split(',')
            .map(str::to_string)
            .collect();
        expected.sort();
        assert_eq!(
            names, expected,
            "{dir}: OBS_TARGET_SERVICES vs the services' names"
        );
    }
}
