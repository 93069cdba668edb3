//! The compose file.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value as Yaml;

use crate::listeners::*;
use crate::support::*;

/// Top-level and service attributes of the Compose Specification (the ones a file may use).
#[rustfmt::skip]
const COMPOSE_TOP_LEVEL: &[&str] = &[
    "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];
#[rustfmt::skip]
const COMPOSE_SERVICE_KEYS: &[&str] = &[
    "annotations", "attach", "build", "blkio_config", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "driver_opts", "entrypoint", "env_file", "environment",
    "expose", "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck",
    "hostname", "image", "init", "ipc", "isolation", "labels", "label_file", "links", "logging",
    "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models",
    "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
    "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "provider",
    "pull_policy", "read_only", "restart", "runtime", "scale", "secrets", "security_opt",
    "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls",
    "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts", "volumes",
    "volumes_from", "working_dir",
];

#[test]
fn the_compose_file_parses_as_the_compose_specification_without_a_version_key() {
    let raw = compose_raw();
    let mut problems = Vec::new();
    let top = raw.as_mapping().expect("a mapping at the top");
    if top.contains_key(Yaml::String("version".into())) {
        problems.push("`version:` is obsolete in the Compose Specification: remove it".into());
    }
    for key in keys(&raw) {
        if !key.starts_with("x-") && !COMPOSE_TOP_LEVEL.contains(&key.as_str()) {
            problems.push(format!("unknown top-level key {key:?}"));
        }
    }
    let services = services(&raw);
    assert!(services.len() >= 11, "expected the whole stack");
    for (name, service) in &services {
        for key in keys(service) {
            if !key.starts_with("x-") && !COMPOSE_SERVICE_KEYS.contains(&key.as_str()) {
                problems.push(format!("{name}: unknown service attribute {key:?}"));
            }
        }
    }
    let names: BTreeSet<String> = services.into_iter().map(|(n, _)| n).collect();
    for required in [
        "grafana",
        "tempo",
        "loki",
        "jaeger",
        "prometheus",
        "otel-collector",
        "nats",
        "obs",
        "gateway",
        "orders",
        "worker",
    ] {
        if !names.contains(required) {
            problems.push(format!("no service {required}"));
        }
    }
    assert_no_problems(COMPOSE, &problems);
}

#[test]
fn every_variable_has_a_default_and_is_named_in_env_example() {
    let raw = compose_raw();
    let mut scalars = Vec::new();
    string_scalars(&raw, "", &mut scalars);
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (path, value) in &scalars {
        match references(value) {
            Err(e) => problems.push(format!("{path}: {e}")),
            Ok(refs) => {
                for r in refs {
                    match r.default {
                        Some(default) if !default.is_empty() => {
                            if let Some(other) = used.insert(r.name.clone(), default.clone())
                                && other != default
                            {
                                problems.push(format!(
                                    "{path}: {} defaults to {default:?} here and {other:?} elsewhere",
                                    r.name
                                ));
                            }
                        }
                        _ => problems.push(format!(
                            "{path}: {} has no default: write ${{{}:-default}}",
                            r.raw, r.name
                        )),
                    }
                }
            }
        }
    }
    let example: BTreeMap<String, String> = read(".env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value lines");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    for (name, default) in &used {
        match example.get(name) {
            None => problems.push(format!(".env.example does not name {name}")),
            Some(value) if value != default => problems.push(format!(
                ".env.example sets {name}={value}, the compose default is {default}"
            )),
            Some(_) => {}
        }
    }
    for name in example.keys() {
        if !used.contains_key(name) {
            problems.push(format!(
                ".env.example names {name}, which compose never reads"
            ));
        }
    }
    assert!(
        used.len() >= 10,
        "expected the images and ports to be overridable"
    );
    for must in [
        "GRAFANA_ADMIN_PASSWORD",
        "GRAFANA_IMAGE",
        "GRAFANA_HOST_PORT",
    ] {
        if !used.contains_key(must) {
            problems.push(format!("{must} is not overridable"));
        }
    }
    assert_no_problems("compose variables", &problems);
}

#[test]
fn every_service_has_a_healthcheck_in_exec_form() {
    let mut problems = Vec::new();
    for (name, service) in services(&compose()) {
        let test = healthcheck(&service);
        if service["healthcheck"]["disable"].as_bool() == Some(true) {
            problems.push(format!("{name}: healthcheck disabled"));
        }
        match test.first().map(String::as_str) {
            // Exec form: no shell needed in the image (Tempo, Loki and the collector have none).
            Some("CMD") if test.len() > 1 => {}
            Some("CMD-SHELL") => problems.push(format!(
                "{name}: CMD-SHELL needs /bin/sh in the image; use [\"CMD\", …]"
            )),
            _ => problems.push(format!("{name}: no healthcheck test ({test:?})")),
        }
    }
    assert_no_problems("healthchecks", &problems);
}

/// What each image has for a healthcheck to run, from its base (see stack/README.md).
fn image_tools(image: &str) -> &'static [&'static str] {
    let repository = image.rsplit_once(':').map_or(image, |(r, _)| r);
    match repository {
        // Alpine-based: BusyBox wget (Grafana also ships curl).
        "grafana/grafana" | "jaegertracing/jaeger" => &["wget"],
        "nats" if image.ends_with("-alpine") => &["wget"],
        // BusyBox-based, and promtool.
        "prom/prometheus" => &["wget", "/bin/promtool"],
        // quay.io/prometheus/busybox base: BusyBox wget, and amtool beside alertmanager.
        "prom/alertmanager" => &["wget", "/bin/amtool"],
        // Distroless: only their binary.
        "grafana/tempo" => &["/tempo"],
        "grafana/loki" => &["/usr/bin/loki"],
        // The official images carry their own clients.
        "postgres" => &["pg_isready", "psql"],
        "redis" => &["redis-cli"],
        _ => &[],
    }
}

#[test]
fn no_healthcheck_runs_a_tool_its_image_lacks() {
    let compose = compose();
    let dockerfile = read("Dockerfile");
    let mut problems = Vec::new();
    for (name, service) in services(&compose) {
        let test = healthcheck(&service);
        let Some(program) = test.get(1) else { continue };
        let built_from = text(&service["build"]["context"]);
        let ok = match built_from.as_deref() {
            // The app image: obs and http-ok, both put there by the Dockerfile.
            Some(".") => {
                let binary = program.trim_start_matches("/usr/local/bin/");
                program.starts_with("/usr/local/bin/")
                    && (dockerfile.contains(&format!("target/release/{binary}"))
                        || dockerfile.contains(&format!("/usr/local/bin/{binary}")))
            }
            // The collector image: only what collector/Dockerfile copies in.
            Some(context) => {
                let file = read(&format!("{}/Dockerfile", context.trim_start_matches("./")));
                file.lines().any(|l| {
                    l.trim_start().starts_with("COPY") && l.trim_end().ends_with(program.as_str())
                })
            }
            None => {
                let image = image_of(&service).unwrap_or_default();
                image_tools(&image).contains(&program.as_str())
            }
        };
        if !ok {
            problems.push(format!(
                "{name}: the healthcheck runs {program:?}, which its image does not have"
            ));
        }
    }
    assert_no_problems("healthcheck tools", &problems);
}

#[test]
fn tempo_and_loki_healthchecks_use_their_own_health_flag_not_wget_or_curl() {
    let compose = compose();
    let mut problems = Vec::new();
    for (name, binary) in [("tempo", "/tempo"), ("loki", "/usr/bin/loki")] {
        let service = &compose["services"][name];
        let test = healthcheck(service);
        if test.iter().any(|a| {
            a.contains("wget")
                || a.contains("curl")
                || a == "sh"
                || a.ends_with("/sh")
                || a == "CMD-SHELL"
        }) {
            problems.push(format!(
                "{name}: the image is distroless (no shell, wget or curl): {test:?}"
            ));
        }
        if test.get(1).map(String::as_str) != Some(binary) || !test.contains(&"-health".into()) {
            problems.push(format!(
                "{name}: expected [\"CMD\", \"{binary}\", \"-health\", …]"
            ));
        }
        // The URL it checks is the server's own /ready.
        let file = config_file_of(&compose, name);
        let port = text(&yaml(&file)["server"]["http_listen_port"]).unwrap();
        match flag(&test, &["-health.url"]) {
            Some(url) if url == format!("http://127.0.0.1:{port}/ready") => {}
            other => problems.push(format!(
                "{name}: -health.url {other:?} is not http://127.0.0.1:{port}/ready ({file})"
            )),
        }
    }
    assert_no_problems("Tempo and Loki healthchecks", &problems);
}

#[test]
fn healthchecks_probe_ports_their_service_listens_on() {
    let compose = compose();
    let listeners = listeners(&compose);
    let mut problems = Vec::new();
    for (name, service) in services(&compose) {
        let test = healthcheck(&service);
        let own: BTreeSet<u16> = listeners[&name].iter().map(|l| l.port).collect();
        for arg in &test {
            if arg.contains("://")
                && let Some((host, port)) = host_port(arg)
            {
                if host != "127.0.0.1" && host != "localhost" {
                    problems.push(format!("{name}: healthcheck probes {arg}, not itself"));
                }
                if !own.contains(&port) {
                    problems.push(format!(
                        "{name}: healthcheck probes port {port}; it listens on {own:?}"
                    ));
                }
            }
        }
        if test.get(1).is_some_and(|p| p.ends_with("/http-ok")) {
            let port: u16 = test[2].parse().unwrap();
            if !own.contains(&port) {
                problems.push(format!(
                    "{name}: http-ok probes port {port}; it listens on {own:?}"
                ));
            }
        }
    }
    assert_no_problems("healthcheck ports", &problems);
}

/// `repository:tag` with a tag that names a version: not `latest`, and a version number or a
/// Debian release codename (`debian:bookworm-slim` follows that release's security updates only).
fn pinned(image: &str) -> Result<(), String> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else {
        return Err(format!("{image}: no tag"));
    };
    let tag = tag.split('@').next().unwrap_or(tag);
    let debian_release = ["bookworm", "trixie"]
        .iter()
        .any(|codename| tag.split('-').any(|part| part == *codename));
    if tag == "latest" || !(tag.chars().any(|c| c.is_ascii_digit()) || debian_release) {
        return Err(format!("{image}: tag {tag:?} is not a version"));
    }
    Ok(())
}

#[test]
fn every_image_is_pinned_to_a_version_or_built_here() {
    let compose = compose();
    let mut problems = Vec::new();
    for (name, service) in services(&compose) {
        let image = image_of(&service);
        let build = &service["build"];
        if build.is_null() {
            match image {
                None => problems.push(format!("{name}: neither image nor build")),
                Some(image) => {
                    if let Err(e) = pinned(&image) {
                        problems.push(format!("{name}: {e}"));
                    }
                }
            }
        } else {
            if image.as_deref().is_some_and(|i| i.ends_with(":latest")) {
                problems.push(format!("{name}: built image tagged latest"));
            }
            // The bases a build uses are pinned too.
            for (arg, value) in build["args"]
                .as_mapping()
                .map(|m| m.iter().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let (arg, value) = (text(arg).unwrap(), text(value).unwrap());
                if arg.ends_with("IMAGE")
                    && let Err(e) = pinned(&value)
                {
                    problems.push(format!("{name}: build arg {arg}: {e}"));
                }
            }
        }
    }
    for dockerfile in ["Dockerfile", "collector/Dockerfile"] {
        for line in read(dockerfile).lines() {
            if let Some(rest) = line.strip_prefix("ARG ")
                && let Some((arg, value)) = rest.split_once('=')
                && arg.ends_with("IMAGE")
                && let Err(e) = pinned(value.trim())
            {
                problems.push(format!("{dockerfile}: ARG {arg}: {e}"));
            }
            if let Some(from) = line.strip_prefix("FROM ") {
                let base = from.split_whitespace().next().unwrap();
                if !base.starts_with("${") && pinned(base).is_err() {
                    problems.push(format!("{dockerfile}: FROM {base} is not pinned"));
                }
            }
        }
    }
    assert_no_problems("image pins", &problems);
}

/// The major version in a tag such as `v3.15.0`, `3.1.0` or `2.12.12-alpine`.
fn major(image: &str) -> u32 {
    let tag = image.rsplit_once(':').unwrap().1.trim_start_matches('v');
    tag.split(['.', '-']).next().unwrap().parse().unwrap()
}

#[test]
fn the_backends_run_current_majors() {
    let compose = compose();
    let image = |service: &str| image_of(&compose["services"][service]).unwrap();
    let collector_args = &compose["services"]["otel-collector"]["build"]["args"];
    let collector = text(&collector_args["COLLECTOR_IMAGE"]).unwrap();
    let mut problems = Vec::new();
    for (service, image, wanted) in [
        ("grafana", image("grafana"), 12..=99),
        ("prometheus", image("prometheus"), 3..=3),
        ("tempo", image("tempo"), 3..=3),
        ("loki", image("loki"), 3..=3),
        ("jaeger", image("jaeger"), 2..=2),
    ] {
        if !wanted.contains(&major(&image)) {
            problems.push(format!("{service}: {image} is not major {wanted:?}"));
        }
    }
    if !collector.starts_with("otel/opentelemetry-collector-contrib:") {
        problems.push(format!(
            "the collector is {collector}, not the contrib distribution"
        ));
    }
    // The exporter names the collector config uses (otlp_grpc, otlp_http) exist from v0.144.
    let minor: u32 = collector
        .rsplit(':')
        .next()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    if minor < 144 {
        problems.push(format!(
            "{collector} predates the otlp_grpc/otlp_http exporter names"
        ));
    }
    assert_no_problems("image majors", &problems);
}

#[test]
fn every_mounted_host_path_and_build_context_exists() {
    let raw = compose_raw();
    let root = repo_root();
    let declared: BTreeSet<String> = keys(&raw["volumes"]).into_iter().collect();
    let mut problems = Vec::new();
    let mut binds = 0;
    for (name, service) in services(&compose()) {
        for (source, target, bind) in mounts(&service) {
            if bind {
                binds += 1;
                if source.starts_with('/') {
                    problems.push(format!(
                        "{name}: absolute host path {source} (not portable)"
                    ));
                } else if !root.join(&source).exists() {
                    problems.push(format!(
                        "{name}: {source} (mounted at {target}) does not exist"
                    ));
                }
            } else if !declared.contains(&source) {
                problems.push(format!(
                    "{name}: volume {source} is not declared under volumes:"
                ));
            }
        }
        if let Some(context) = text(&service["build"]["context"]) {
            let dockerfile = text(&service["build"]["dockerfile"]).unwrap_or("Dockerfile".into());
            if !root.join(&context).join(&dockerfile).is_file() {
                problems.push(format!(
                    "{name}: build {context}/{dockerfile} does not exist"
                ));
            }
        }
    }
    assert!(binds >= 6, "expected the configs to be bind-mounted");
    assert_no_problems("mounts", &problems);
}

#[test]
fn every_store_keeps_its_data_in_a_named_volume() {
    let compose = compose();
    // The path each store writes to, from its own config.
    let tempo = yaml(&config_file_of(&compose, "tempo"));
    let loki = yaml(&config_file_of(&compose, "loki"));
    let jaeger = yaml(&config_file_of(&compose, "jaeger"));
    let prometheus_args = argv(&compose["services"]["prometheus"]["command"]);
    let badger = &jaeger["extensions"]["jaeger_storage"]["backends"];
    let mut stores: Vec<(&str, Vec<String>)> = vec![
        ("grafana", vec!["/var/lib/grafana".into()]),
        (
            "prometheus",
            vec![flag(&prometheus_args, &["--storage.tsdb.path"]).expect("--storage.tsdb.path")],
        ),
        (
            "tempo",
            vec![
                text(&tempo["storage"]["trace"]["wal"]["path"]).unwrap(),
                text(&tempo["storage"]["trace"]["local"]["path"]).unwrap(),
                text(&tempo["metrics_generator"]["storage"]["path"]).unwrap(),
            ],
        ),
        (
            "loki",
            vec![
                text(&loki["common"]["path_prefix"]).unwrap(),
                text(&loki["common"]["storage"]["filesystem"]["chunks_directory"]).unwrap(),
                text(&loki["compactor"]["working_directory"]).unwrap(),
            ],
        ),
    ];
    // PostgreSQL writes its cluster to PGDATA; Redis its append-only file and snapshots to --dir.
    let postgres_env = environment(&compose["services"]["postgres"]);
    stores.push((
        "postgres",
        vec![
            postgres_env
                .get("PGDATA")
                .cloned()
                .expect("postgres: PGDATA"),
        ],
    ));
    let redis_args = argv(&compose["services"]["redis"]["command"]);
    stores.push((
        "redis",
        vec![flag(&redis_args, &["--dir"]).unwrap_or_else(|| "/data".into())],
    ));
    let mut jaeger_paths = Vec::new();
    for backend in keys(badger) {
        let dirs = &badger[backend.as_str()]["badger"]["directories"];
        assert!(
            badger[backend.as_str()]["badger"]["ephemeral"].as_bool() == Some(false),
            "Jaeger's Badger store must not be ephemeral"
        );
        jaeger_paths.push(text(&dirs["keys"]).unwrap());
        jaeger_paths.push(text(&dirs["values"]).unwrap());
    }
    assert!(!jaeger_paths.is_empty(), "Jaeger has no Badger store");
    stores.push(("jaeger", jaeger_paths));

    let mut problems = Vec::new();
    for (service, paths) in stores {
        let named: Vec<String> = mounts(&compose["services"][service])
            .into_iter()
            .filter(|(_, _, bind)| !bind)
            .map(|(_, target, _)| target)
            .collect();
        for path in paths {
            if !named
                .iter()
                .any(|t| path == *t || path.starts_with(&format!("{}/", t.trim_end_matches('/'))))
            {
                problems.push(format!(
                    "{service} writes {path}, which is in no named volume (mounted: {named:?})"
                ));
            }
        }
    }
    assert_no_problems("stores", &problems);
}

#[test]
fn every_depends_on_target_exists_and_start_order_follows_health() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose).into_iter().map(|(n, _)| n).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, service) in services(&compose) {
        let deps = match &service["depends_on"] {
            Yaml::Mapping(map) => map
                .iter()
                .map(|(k, v)| {
                    (
                        text(k).unwrap(),
                        text(&v["condition"]).unwrap_or_else(|| "service_started".into()),
                    )
                })
                .collect(),
            Yaml::Sequence(items) => items
                .iter()
                .filter_map(text)
                .map(|d| (d, "service_started".to_string()))
                .collect(),
            _ => BTreeMap::new(),
        };
        for target in deps.keys() {
            if !names.contains(target) {
                problems.push(format!(
                    "{name} depends on {target}, which is not a service"
                ));
            }
        }
        graph.insert(name, deps);
    }
    // Where order matters, the dependent waits for the dependency to be healthy.
    for (dependent, dependency) in [
        ("orders", "nats"),
        ("worker", "nats"),
        ("gateway", "orders"),
        ("orders", "otel-collector"),
        ("worker", "otel-collector"),
        ("gateway", "otel-collector"),
        ("otel-collector", "tempo"),
        ("otel-collector", "jaeger"),
        ("otel-collector", "loki"),
        ("otel-collector", "prometheus"),
        ("obs", "grafana"),
        ("obs", "otel-collector"),
        ("obs", "gateway"),
    ] {
        match graph[dependent].get(dependency).map(String::as_str) {
            Some("service_healthy") => {}
            other => problems.push(format!(
                "{dependent} must wait for {dependency} with condition: service_healthy (has {other:?})"
            )),
        }
    }
    // No cycles: Compose could not start such a stack.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        if path.iter().any(|p| p == node) {
            problems.push(format!("cycle: {} -> {node}", path.join(" -> ")));
            return;
        }
        path.push(node.to_string());
        for next in graph
            .get(node)
            .map(|d| d.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            visit(&next, graph, path, problems);
        }
        path.pop();
    }
    for name in graph.keys() {
        visit(name, &graph, &mut Vec::new(), &mut problems);
    }
    problems.dedup();
    assert_no_problems("depends_on", &problems);
}

#[test]
fn no_two_services_publish_the_same_host_port() {
    let mut seen: BTreeMap<(String, u16), String> = BTreeMap::new();
    let mut problems = Vec::new();
    let ports = published_ports(&compose_raw());
    assert!(ports.len() >= 12, "expected the documented ports");
    for p in ports {
        let all = p.ip == "0.0.0.0";
        for ((ip, port), other) in &seen {
            if *port == p.host && (all || ip == "0.0.0.0" || *ip == p.ip) {
                problems.push(format!(
                    "{} and {other} both publish host port {port}",
                    p.service
                ));
            }
        }
        seen.insert((p.ip.clone(), p.host), p.service.clone());
        if p.host_variable.is_none() {
            problems.push(format!(
                "{}: host port {} cannot be changed from .env",
                p.service, p.host
            ));
        }
    }
    assert_no_problems("published ports", &problems);
}

#[test]
fn published_container_ports_are_ports_the_service_listens_on() {
    let compose = compose();
    let listeners = listeners(&compose);
    let mut problems = Vec::new();
    for p in published_ports(&compose_raw()) {
        match listeners[&p.service].iter().find(|l| l.port == p.container) {
            None => problems.push(format!(
                "{} publishes {}, where it does not listen",
                p.service, p.container
            )),
            Some(l) if l.bind != "0.0.0.0" => problems.push(format!(
                "{} publishes {}, but {} binds it to {:?}",
                p.service, p.container, l.source, l.bind
            )),
            Some(_) => {}
        }
    }
    assert_no_problems("published ports", &problems);
}

#[test]
fn the_services_share_one_bridge_network() {
    let compose = compose();
    let networks = keys(&compose["networks"]);
    assert_eq!(networks.len(), 1, "one network: {networks:?}");
    let network = &networks[0];
    assert_eq!(
        text(&compose["networks"][network.as_str()]["driver"]).as_deref(),
        Some("bridge")
    );
    let mut problems = Vec::new();
    for (name, service) in services(&compose) {
        let joined = match &service["networks"] {
            Yaml::Sequence(_) => strings(&service["networks"]),
            map => keys(map),
        };
        if joined != [network.clone()] {
            problems.push(format!("{name} joins {joined:?}, not [{network}]"));
        }
        if !service["network_mode"].is_null() {
            problems.push(format!("{name} sets network_mode"));
        }
    }
    assert_no_problems("networks", &problems);
}
