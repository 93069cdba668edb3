#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The stack as code — `docker-compose.yml`, `collector/`, `stack/`, the `Dockerfile`s, the
//! `Makefile`, `.env.example` and `stack/README.md` — holds together, checked without a Docker
//! engine: every claim the compose file makes about another file (a config it mounts, a port it
//! calls, a binary its healthcheck runs) is read back from that file.
//!
//! What "listens" where is derived from each component's own config: the collector's receivers
//! and extensions, Tempo's, Loki's and Jaeger's server and receiver blocks, Prometheus's and NATS's
//! command lines, and the services' port variables. Every endpoint a service or component is
//! configured with must name a compose service and a port that service listens on, with the
//! protocol the caller speaks.
//!
//! The last test is the metric contract of DESIGN.md against a live scrape: the example services
//! run in-process, serve a request, and every `http_*` metric the dashboards query is in their
//! `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self as promql, Expr, VectorSelector};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn parse_yaml(relative: &str, text: &str) -> Yaml {
    let mut value: Yaml =
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{relative} is not YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{relative}: bad merge key: {e}"));
    value
}

fn yaml(relative: &str) -> Yaml {
    parse_yaml(relative, &read(relative))
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A scalar as text (YAML numbers and booleans too).
fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().filter_map(text).collect())
        .unwrap_or_default()
}

fn keys(value: &Yaml) -> Vec<String> {
    value
        .as_mapping()
        .map(|m| m.keys().filter_map(text).collect())
        .unwrap_or_default()
}

const COMPOSE: &str = "docker-compose.yml";
const COLLECTOR: &str = "collector/otel-collector.yaml";
const DATASOURCES: &str = "grafana/provisioning/datasources/datasources.yaml";

// ---------------------------------------------------------------------------------------------
// Compose interpolation: `${VAR:-default}` everywhere, `$$` for a literal `$`
// ---------------------------------------------------------------------------------------------

/// A `${…}` reference in a compose value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    name: String,
    /// `Some` for `${NAME:-default}`, the only form the stack uses.
    default: Option<String>,
    raw: String,
}

/// Splits `value` into literal text and references, as Compose reads it.
fn references(value: &str) -> Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            return Err(format!(
                "`${}` without braces in {value:?}: write ${{NAME:-default}}",
                after.chars().take(12).collect::<String>()
            ));
        };
        let end = inner
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
        let body = &inner[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default.to_string())),
            None => (body, None),
        };
        out.push(Reference {
            name: name.to_string(),
            default,
            raw: format!("${{{body}}}"),
        });
        rest = &inner[end + 1..];
    }
    Ok(out)
}

/// The value Compose uses when no variable is set: every reference replaced by its default.
fn interpolate(value: &str) -> String {
    let mut out = value.replace("$$", "\u{0}");
    for reference in references(value).unwrap_or_default() {
        out = out.replacen(
            &reference.raw,
            reference.default.as_deref().unwrap_or_default(),
            1,
        );
    }
    out.replace('\u{0}', "$")
}

fn interpolate_tree(value: &Yaml) -> Yaml {
    match value {
        Yaml::String(s) => Yaml::String(interpolate(s)),
        Yaml::Sequence(items) => Yaml::Sequence(items.iter().map(interpolate_tree).collect()),
        Yaml::Mapping(map) => Yaml::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), interpolate_tree(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every string scalar in the tree, with its path.
fn string_scalars(value: &Yaml, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Yaml::String(s) => out.push((path.to_string(), s.clone())),
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                string_scalars(item, &format!("{path}[{i}]"), out);
            }
        }
        Yaml::Mapping(map) => {
            for (k, v) in map {
                string_scalars(v, &format!("{path}.{}", text(k).unwrap_or_default()), out);
            }
        }
        _ => {}
    }
}

/// The compose file as written (references intact).
fn compose_raw() -> Yaml {
    yaml(COMPOSE)
}

/// The compose file as Compose resolves it with no variable set.
fn compose() -> Yaml {
    interpolate_tree(&compose_raw())
}

fn services(compose: &Yaml) -> Vec<(String, Yaml)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (text(k).unwrap(), v.clone()))
        .collect()
}

fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Mapping(map) => map
            .iter()
            .map(|(k, v)| (text(k).unwrap(), text(v).unwrap_or_default()))
            .collect(),
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(text)
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `command` or `entrypoint` as a list (the stack writes them as lists).
fn argv(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => strings(other),
    }
}

/// `--flag=value` or `--flag value` (or `-flag=value`) in an argument list.
fn flag(args: &[String], names: &[&str]) -> Option<String> {
    for (i, arg) in args.iter().enumerate() {
        for name in names {
            if let Some(value) = arg.strip_prefix(&format!("{name}=")) {
                return Some(value.to_string());
            }
            if arg == name
                && let Some(next) = args.get(i + 1)
            {
                return Some(next.clone());
            }
        }
    }
    None
}

/// Splits on `:` outside `${…}`.
fn split_colons(spec: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'{') => {
                depth += 1;
                parts.last_mut().unwrap().push(c);
            }
            '}' if depth > 0 => {
                depth -= 1;
                parts.last_mut().unwrap().push(c);
            }
            ':' if depth == 0 => parts.push(String::new()),
            _ => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// A published port.
#[derive(Debug, Clone)]
struct Published {
    service: String,
    ip: String,
    host: u16,
    container: u16,
    /// The variable that sets the host port, and its default.
    host_variable: Option<(String, String)>,
}

fn published_ports(raw: &Yaml) -> Vec<Published> {
    let mut out = Vec::new();
    for (name, service) in services(raw) {
        for spec in strings(&service["ports"]) {
            let spec_no_proto = spec.split('/').next().unwrap().to_string();
            let parts = split_colons(&spec_no_proto);
            let (ip, host, container) = match parts.as_slice() {
                [ip, host, container] => (interpolate(ip), host.clone(), container.clone()),
                [host, container] => ("0.0.0.0".to_string(), host.clone(), container.clone()),
                [container] => ("0.0.0.0".to_string(), container.clone(), container.clone()),
                _ => panic!("{name}: cannot read port {spec:?}"),
            };
            let host_variable = references(&host)
                .unwrap()
                .first()
                .map(|r| (r.name.clone(), r.default.clone().unwrap_or_default()));
            let parse = |p: &str| -> u16 {
                interpolate(p)
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: port {spec:?} is not a number"))
            };
            out.push(Published {
                service: name.clone(),
                ip,
                host: parse(&host),
                container: parse(&container),
                host_variable,
            });
        }
    }
    out
}

/// A mount: (host source or volume name, container target, is a bind mount).
fn mounts(service: &Yaml) -> Vec<(String, String, bool)> {
    service["volumes"]
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Yaml::String(spec) => {
                        let parts: Vec<&str> = spec.split(':').collect();
                        let source = parts[0].to_string();
                        let target = parts.get(1).map_or(source.clone(), |t| (*t).to_string());
                        let bind = source.starts_with('.') || source.starts_with('/');
                        (source, target, bind)
                    }
                    long => (
                        text(&long["source"]).unwrap_or_default(),
                        text(&long["target"]).unwrap_or_default(),
                        text(&long["type"]).as_deref() == Some("bind"),
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The repository file a service mounts at `container_path`.
fn mounted_file(service_name: &str, service: &Yaml, container_path: &str) -> String {
    mounts(service)
        .into_iter()
        .find(|(_, target, bind)| *bind && target == container_path)
        .map(|(source, _, _)| source.trim_start_matches("./").to_string())
        .unwrap_or_else(|| panic!("{service_name} reads {container_path}, which nothing mounts"))
}

/// The repository file a service's command names as its config.
fn config_file_of(compose: &Yaml, service_name: &str) -> String {
    let service = &compose["services"][service_name];
    let command = argv(&service["command"]);
    let path = flag(
        &command,
        &["-config.file", "--config.file", "--config", "-config"],
    )
    .unwrap_or_else(|| panic!("{service_name}'s command names no config file: {command:?}"));
    mounted_file(service_name, service, &path)
}

fn healthcheck(service: &Yaml) -> Vec<String> {
    strings(&service["healthcheck"]["test"])
}

fn image_of(service: &Yaml) -> Option<String> {
    text(&service["image"])
}

// ---------------------------------------------------------------------------------------------
// Who listens where, from each component's own config
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    /// A plain HTTP server (APIs, /metrics, health, OTLP on a backend's HTTP server).
    Http,
    /// An OTLP/HTTP receiver.
    OtlpHttp,
    /// An OTLP/gRPC receiver.
    OtlpGrpc,
    /// Another gRPC server.
    Grpc,
    /// NATS client protocol.
    Nats,
}

/// A listener: its port, protocol, bind address, and where it was declared.
#[derive(Debug, Clone)]
struct Listener {
    port: u16,
    proto: Proto,
    bind: String,
    source: String,
}

fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let without_scheme = endpoint.split("://").last()?;
    let authority = without_scheme.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

fn listener(endpoint: &str, proto: Proto, source: &str) -> Listener {
    let (bind, port) = host_port(endpoint)
        .unwrap_or_else(|| panic!("{source}: listen address {endpoint:?} has no host:port"));
    Listener {
        port,
        proto,
        bind,
        source: source.to_string(),
    }
}

/// The OTLP receiver endpoints of a collector-style config (the collector, Tempo, Jaeger).
fn otlp_receivers(otlp: &Yaml, source: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for (protocol, proto) in [("grpc", Proto::OtlpGrpc), ("http", Proto::OtlpHttp)] {
        let block = &otlp["protocols"][protocol];
        if block.is_null()
            && !otlp["protocols"]
                .as_mapping()
                .is_some_and(|m| m.contains_key(Yaml::String(protocol.to_string())))
        {
            continue;
        }
        let endpoint = text(&block["endpoint"]).unwrap_or_else(|| {
            panic!("{source}: the OTLP {protocol} receiver has no explicit endpoint (the default is localhost)")
        });
        out.push(listener(
            &endpoint,
            proto,
            &format!("{source} receivers.otlp.protocols.{protocol}"),
        ));
    }
    out
}

/// `service.telemetry.metrics.readers[].pull.exporter.prometheus` of a collector-style config.
fn telemetry_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    config["service"]["telemetry"]["metrics"]["readers"]
        .as_sequence()
        .map(|readers| {
            readers
                .iter()
                .filter_map(|r| {
                    let prom = &r["pull"]["exporter"]["prometheus"];
                    let host = text(&prom["host"])?;
                    let port = text(&prom["port"])?;
                    Some(listener(
                        &format!("{host}:{port}"),
                        Proto::Http,
                        &format!("{source} service.telemetry.metrics"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn collector_listeners(config: &Yaml) -> Vec<Listener> {
    let mut out = otlp_receivers(&config["receivers"]["otlp"], COLLECTOR);
    if let Some(endpoint) = text(&config["extensions"]["health_check"]["endpoint"]) {
        out.push(listener(
            &endpoint,
            Proto::Http,
            &format!("{COLLECTOR} extensions.health_check"),
        ));
    }
    out.extend(telemetry_listeners(config, COLLECTOR));
    out
}

fn tempo_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let server = &config["server"];
    let bind = |key: &str| text(&server[key]).unwrap_or_default();
    let mut out = vec![
        listener(
            &format!(
                "{}:{}",
                bind("http_listen_address"),
                text(&server["http_listen_port"]).expect("tempo server.http_listen_port")
            ),
            Proto::Http,
            &format!("{source} server.http_listen_port"),
        ),
        listener(
            &format!(
                "{}:{}",
                bind("grpc_listen_address"),
                text(&server["grpc_listen_port"]).unwrap_or_else(|| "9095".into())
            ),
            Proto::Grpc,
            &format!("{source} server.grpc_listen_port"),
        ),
    ];
    out.extend(otlp_receivers(
        &config["distributor"]["receivers"]["otlp"],
        source,
    ));
    out
}

fn loki_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let server = &config["server"];
    vec![
        listener(
            &format!(
                "{}:{}",
                text(&server["http_listen_address"]).unwrap_or_default(),
                text(&server["http_listen_port"]).expect("loki server.http_listen_port")
            ),
            Proto::Http,
            &format!("{source} server.http_listen_port"),
        ),
        listener(
            &format!(
                "{}:{}",
                text(&server["grpc_listen_address"]).unwrap_or_default(),
                text(&server["grpc_listen_port"]).unwrap_or_else(|| "9095".into())
            ),
            Proto::Grpc,
            &format!("{source} server.grpc_listen_port"),
        ),
    ]
}

fn jaeger_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let mut out = otlp_receivers(&config["receivers"]["otlp"], source);
    let extensions = &config["extensions"];
    for (path, value, proto) in [
        (
            "extensions.jaeger_query.http",
            &extensions["jaeger_query"]["http"]["endpoint"],
            Proto::Http,
        ),
        (
            "extensions.jaeger_query.grpc",
            &extensions["jaeger_query"]["grpc"]["endpoint"],
            Proto::Grpc,
        ),
        (
            "extensions.healthcheckv2.http",
            &extensions["healthcheckv2"]["http"]["endpoint"],
            Proto::Http,
        ),
    ] {
        let endpoint = text(value).unwrap_or_else(|| {
            panic!("{source}: {path} has no explicit endpoint (Jaeger's default is localhost)")
        });
        out.push(listener(&endpoint, proto, &format!("{source} {path}")));
    }
    out.extend(telemetry_listeners(config, source));
    out
}

/// Every service's listeners, keyed by compose service name.
fn listeners(compose: &Yaml) -> BTreeMap<String, Vec<Listener>> {
    let mut out = BTreeMap::new();
    for (name, service) in services(compose) {
        let env = environment(&service);
        let command = argv(&service["command"]);
        let from_env = |var: &str| {
            let value = env
                .get(var)
                .unwrap_or_else(|| panic!("{name}: {var} is not set"));
            vec![listener(
                &format!("0.0.0.0:{}", value.rsplit(':').next().unwrap()),
                Proto::Http,
                &format!("{COMPOSE} {name}.environment.{var}"),
            )]
        };
        let found = match name.as_str() {
            "otel-collector" => collector_listeners(&yaml(&config_file_of(compose, &name))),
            "tempo" => {
                let file = config_file_of(compose, &name);
                tempo_listeners(&yaml(&file), &file)
            }
            "loki" => {
                let file = config_file_of(compose, &name);
                loki_listeners(&yaml(&file), &file)
            }
            "jaeger" => {
                let file = config_file_of(compose, &name);
                jaeger_listeners(&yaml(&file), &file)
            }
            "prometheus" => vec![listener(
                &flag(&command, &["--web.listen-address"]).unwrap_or_else(|| "0.0.0.0:9090".into()),
                Proto::Http,
                &format!("{COMPOSE} prometheus.command"),
            )],
            "alertmanager" => vec![listener(
                &flag(&command, &["--web.listen-address"]).unwrap_or_else(|| "0.0.0.0:9093".into()),
                Proto::Http,
                &format!("{COMPOSE} alertmanager.command"),
            )],
            "grafana" => vec![listener(
                &format!(
                    "{}:{}",
                    env.get("GF_SERVER_HTTP_ADDR").cloned().unwrap_or_default(),
                    env.get("GF_SERVER_HTTP_PORT")
                        .cloned()
                        .unwrap_or_else(|| "3000".into())
                ),
                Proto::Http,
                &format!("{COMPOSE} grafana.environment"),
            )],
            "nats" => vec![
                listener(
                    &format!(
                        "0.0.0.0:{}",
                        flag(&command, &["--port", "-p"]).unwrap_or_else(|| "4222".into())
                    ),
                    Proto::Nats,
                    &format!("{COMPOSE} nats.command"),
                ),
                listener(
                    &format!(
                        "0.0.0.0:{}",
                        flag(&command, &["--http_port", "-m"])
                            .unwrap_or_else(|| panic!("nats: no --http_port: no monitoring"))
                    ),
                    Proto::Http,
                    &format!("{COMPOSE} nats.command"),
                ),
            ],
            "obs" => from_env("OBS_LISTEN"),
            "gateway" => from_env("GATEWAY_PORT"),
            "orders" => from_env("ORDERS_PORT"),
            "worker" => from_env("WORKER_PORT"),
            other => panic!("no listener model for compose service {other}: add one here"),
        };
        out.insert(name, found);
    }
    out
}

/// The host and port an endpoint names (a URL without a port: its scheme's default).
fn endpoint_host_port(endpoint: &str) -> Option<(String, u16)> {
    if let Some(found) = host_port(endpoint) {
        return Some(found);
    }
    let (scheme, rest) = endpoint.split_once("://")?;
    let host = rest.split(['/', ':']).next()?.to_string();
    let port = match scheme {
        "http" => 80,
        "https" => 443,
        "nats" => 4222,
        _ => return None,
    };
    Some((host, port))
}

/// Whether the host an endpoint names is a compose service listening on its port with a
/// protocol in `accepted`; the problem otherwise.
fn reaches(
    listeners: &BTreeMap<String, Vec<Listener>>,
    caller: &str,
    endpoint: &str,
    accepted: &[Proto],
) -> Result<(), String> {
    let Some((host, port)) = endpoint_host_port(endpoint) else {
        return Err(format!("{caller}: {endpoint:?} names no host and port"));
    };
    let Some(found) = listeners.get(&host) else {
        return Err(format!(
            "{caller}: {endpoint:?} names host {host:?}, which is not a compose service"
        ));
    };
    match found.iter().find(|l| l.port == port) {
        None => Err(format!(
            "{caller}: {endpoint:?}: {host} listens on {:?}, not {port}",
            found.iter().map(|l| l.port).collect::<BTreeSet<_>>()
        )),
        Some(l) if !accepted.contains(&l.proto) => Err(format!(
            "{caller}: {endpoint:?}: {host}:{port} speaks {:?} ({}), the caller speaks {accepted:?}",
            l.proto, l.source
        )),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The compose file
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Endpoints: every URL points at a service and a port it listens on, in its protocol
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------------

/// The components a pipeline list names.
fn pipeline_components(config: &Yaml) -> BTreeMap<String, BTreeMap<&'static str, Vec<String>>> {
    let mut out = BTreeMap::new();
    for pipeline in keys(&config["service"]["pipelines"]) {
        let p = &config["service"]["pipelines"][pipeline.as_str()];
        let mut kinds = BTreeMap::new();
        for kind in ["receivers", "processors", "exporters"] {
            kinds.insert(kind, strings(&p[kind]));
        }
        out.insert(pipeline, kinds);
    }
    out
}

/// Problems with a collector-style config's wiring: undefined or unused components.
fn wiring_problems(config: &Yaml, source: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let pipelines = pipeline_components(config);
    if pipelines.is_empty() {
        problems.push(format!("{source}: no pipelines"));
    }
    let mut used: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (pipeline, kinds) in &pipelines {
        for (kind, names) in kinds {
            if *kind != "processors" && names.is_empty() {
                problems.push(format!("{source}: pipeline {pipeline} has no {kind}"));
            }
            for name in names {
                if !keys(&config[*kind]).contains(name) {
                    problems.push(format!(
                        "{source}: pipeline {pipeline} uses {kind} {name}, which is not defined"
                    ));
                }
                used.entry(kind).or_default().insert(name.clone());
            }
        }
    }
    for kind in ["receivers", "processors", "exporters"] {
        for name in keys(&config[kind]) {
            if !used.get(kind).is_some_and(|u| u.contains(&name)) {
                problems.push(format!(
                    "{source}: {kind} {name} is defined but no pipeline uses it"
                ));
            }
        }
    }
    let enabled: BTreeSet<String> = strings(&config["service"]["extensions"])
        .into_iter()
        .collect();
    let defined: BTreeSet<String> = keys(&config["extensions"]).into_iter().collect();
    for name in enabled.difference(&defined) {
        problems.push(format!(
            "{source}: extension {name} is enabled but not defined"
        ));
    }
    for name in defined.difference(&enabled) {
        problems.push(format!(
            "{source}: extension {name} is defined but not enabled"
        ));
    }
    if !config["connectors"].is_null() {
        problems.push(format!(
            "{source}: connectors are not checked here: add them"
        ));
    }
    problems
}

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

// ---------------------------------------------------------------------------------------------
// Loki, Tempo, Jaeger, Prometheus
// ---------------------------------------------------------------------------------------------

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

/// Prometheus's scrape targets by job.
fn scrape_targets() -> BTreeMap<String, Vec<String>> {
    let compose = compose();
    let file = mounted_file(
        "prometheus",
        &compose["services"]["prometheus"],
        &flag(
            &argv(&compose["services"]["prometheus"]["command"]),
            &["--config.file"],
        )
        .unwrap(),
    );
    let config = yaml(&file);
    let mut out = BTreeMap::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        let name = text(&job["job_name"]).unwrap();
        let targets = job["static_configs"]
            .as_sequence()
            .map(|s| s.iter().flat_map(|c| strings(&c["targets"])).collect())
            .unwrap_or_default();
        out.insert(name, targets);
    }
    out
}

#[test]
fn prometheus_scrapes_the_services_obs_and_the_stack_where_they_listen_with_exemplars() {
    let compose = compose();
    let listeners = listeners(&compose);
    let jobs = scrape_targets();
    let mut problems = Vec::new();
    for (job, service) in [
        ("gateway", "gateway"),
        ("orders", "orders"),
        ("worker", "worker"),
        ("obs", "obs"),
        ("otel-collector", "otel-collector"),
        ("tempo", "tempo"),
        ("loki", "loki"),
    ] {
        match jobs.get(job) {
            None => problems.push(format!("no scrape job {job}")),
            Some(targets)
                if !targets
                    .iter()
                    .any(|t| t.starts_with(&format!("{service}:"))) =>
            {
                problems.push(format!("job {job} scrapes {targets:?}, not {service}"));
            }
            Some(_) => {}
        }
    }
    for (job, targets) in &jobs {
        for target in targets {
            let url = if target.starts_with("localhost:") {
                // Prometheus scraping itself.
                format!("http://{}", target.replace("localhost", "prometheus"))
            } else {
                format!("http://{target}")
            };
            if let Err(e) = reaches(
                &listeners,
                &format!("scrape job {job}"),
                &url,
                &[Proto::Http],
            ) {
                problems.push(e);
            }
        }
    }
    let args = argv(&compose["services"]["prometheus"]["command"]);
    if !args.contains(&"--enable-feature=exemplar-storage".to_string()) {
        problems.push("Prometheus runs without --enable-feature=exemplar-storage".into());
    }
    // Exemplars only travel in OpenMetrics: it must be the preferred protocol if one is set.
    let config = yaml("stack/prometheus/prometheus.yml");
    let protocols = strings(&config["global"]["scrape_protocols"]);
    if protocols
        .first()
        .is_some_and(|p| !p.starts_with("OpenMetricsText"))
    {
        problems.push(format!(
            "scrape_protocols {protocols:?} do not prefer OpenMetrics"
        ));
    }
    assert_no_problems("Prometheus", &problems);
}

// ---------------------------------------------------------------------------------------------
// Documentation, Dockerfile, Makefile
// ---------------------------------------------------------------------------------------------

/// The rows of stack/README.md's ports table: (service, variable, default host port, container
/// port).
fn documented_ports() -> BTreeSet<(String, String, u16, u16)> {
    let readme = read("stack/README.md");
    let section = readme
        .split("## Ports")
        .nth(1)
        .expect("stack/README.md has a ## Ports section");
    let section = section.split("\n## ").next().unwrap();
    let tick = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let service = tick(cells[1]).first().cloned().unwrap();
        let host = tick(cells[2]);
        let container = tick(cells[3]);
        assert_eq!(host.len(), 2, "host cell `VAR` = `port` in {line}");
        out.insert((
            service,
            host[0].clone(),
            host[1].parse().unwrap(),
            container[0].parse().unwrap(),
        ));
    }
    out
}

#[test]
fn the_ports_documented_in_stack_readme_match_compose() {
    let documented = documented_ports();
    let published: BTreeSet<(String, String, u16, u16)> = published_ports(&compose_raw())
        .into_iter()
        .map(|p| {
            let (var, default) = p.host_variable.unwrap_or_default();
            assert_eq!(default.parse::<u16>().ok(), Some(p.host));
            (p.service, var, p.host, p.container)
        })
        .collect();
    let mut problems = Vec::new();
    for row in documented.difference(&published) {
        problems.push(format!(
            "stack/README.md documents {row:?}, compose does not publish it"
        ));
    }
    for row in published.difference(&documented) {
        problems.push(format!(
            "compose publishes {row:?}, stack/README.md does not document it"
        ));
    }
    assert_no_problems("ports table", &problems);
}

/// The binaries compose runs from the app image: each service's entrypoint, or obs (the image's).
fn binaries_compose_runs() -> BTreeSet<String> {
    let compose = compose();
    services(&compose)
        .into_iter()
        .filter(|(_, s)| text(&s["build"]["context"]).as_deref() == Some("."))
        .map(|(_, s)| {
            argv(&s["entrypoint"])
                .first()
                .map_or("obs".to_string(), |e| {
                    e.rsplit('/').next().unwrap().to_string()
                })
        })
        .collect()
}

/// The Dockerfile's stages: (FROM line, instructions).
fn dockerfile_stages(text: &str) -> Vec<(String, Vec<String>)> {
    // Join continuation lines, drop comments.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for instruction in instructions {
        if instruction.starts_with("FROM ") {
            stages.push((instruction, Vec::new()));
        } else if let Some(stage) = stages.last_mut() {
            stage.1.push(instruction);
        }
    }
    stages
}

#[test]
fn the_dockerfile_builds_every_binary_compose_runs_with_a_cached_dependency_layer() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile_stages(&dockerfile);
    let mut problems = Vec::new();
    if stages.len() < 2 {
        problems.push("not a multi-stage build".into());
    }
    let runs = binaries_compose_runs();
    assert!(
        runs.contains("obs") && runs.len() == 4,
        "compose runs {runs:?}"
    );
    // Every cargo build builds exactly what compose runs, locked, in release.
    let builds: Vec<&String> = stages
        .iter()
        .flat_map(|(_, i)| i)
        .filter(|i| i.contains("cargo build"))
        .collect();
    if builds.len() < 2 {
        problems.push("expected a dependency build and a source build".into());
    }
    for build in &builds {
        let build = build[build.find("cargo build").unwrap()..]
            .split("&&")
            .next()
            .unwrap()
            .trim();
        let packages: BTreeSet<String> = build
            .split(" -p ")
            .skip(1)
            .map(|p| p.split_whitespace().next().unwrap().to_string())
            .collect();
        if packages != runs {
            problems.push(format!(
                "`{build}` builds {packages:?}, compose runs {runs:?}"
            ));
        }
        if !build.contains("--release") || !build.contains("--locked") {
            problems.push(format!("`{build}` is not --release --locked"));
        }
    }
    // The dependency build runs before the real sources are copied into the same stage.
    let builder = stages
        .iter()
        .find(|(_, i)| i.iter().filter(|l| l.contains("cargo build")).count() == 2)
        .map(|(_, i)| i);
    match builder {
        None => problems.push("no stage builds dependencies, then sources".into()),
        Some(instructions) => {
            let first_build = instructions
                .iter()
                .position(|i| i.contains("cargo build"))
                .unwrap();
            let sources = instructions
                .iter()
                .position(|i| i.starts_with("COPY crates"));
            if sources.is_none_or(|s| s < first_build) {
                problems
                    .push("the sources are copied before the dependency build: no cache".into());
            }
            if !instructions.iter().any(|i| i.contains("touch")) {
                problems.push("the real sources are not touched: cargo may keep the stubs".into());
            }
        }
    }
    // The skeleton covers every workspace member.
    let cargo: toml_like::Members = toml_like::members(&read("Cargo.toml"));
    for member in cargo {
        if !dockerfile.contains(&format!("{member}/Cargo.toml")) {
            problems.push(format!(
                "workspace member {member} has no stub in the Dockerfile"
            ));
        }
    }
    // The runtime stage gets each binary.
    let (from, runtime) = stages.last().unwrap();
    for binary in &runs {
        if !dockerfile.contains(&format!("target/release/{binary}")) {
            problems.push(format!("{binary} is never copied out of the build"));
        }
    }
    if !from.contains("RUNTIME_IMAGE") && !from.contains("slim") && !from.contains("distroless") {
        problems.push(format!("the runtime stage is not a small image: {from}"));
    }
    if !runtime.iter().any(|i| i.starts_with("COPY --from=builder")) {
        problems.push("the runtime stage copies nothing from the builder".into());
    }
    assert_no_problems("Dockerfile", &problems);
}

/// Just enough TOML to read the workspace members.
mod toml_like {
    pub type Members = Vec<String>;

    pub fn members(cargo_toml: &str) -> Members {
        let start = cargo_toml.find("members").expect("workspace members");
        let list = &cargo_toml[start..];
        let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
        list.split(',')
            .map(|m| m.trim().trim_matches('"').to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

#[test]
fn the_app_image_runs_as_non_root_and_healthchecks_obs() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile_stages(&dockerfile);
    let (_, runtime) = stages.last().unwrap();
    let mut problems = Vec::new();
    match runtime.iter().rev().find_map(|i| i.strip_prefix("USER ")) {
        None => problems.push("the runtime stage has no USER: it runs as root".into()),
        Some(user) => {
            let name = user.split(':').next().unwrap().trim();
            if name == "root" || name == "0" {
                problems.push(format!("USER {user} is root"));
            }
        }
    }
    match runtime.iter().find(|i| i.starts_with("HEALTHCHECK")) {
        None => problems.push("no HEALTHCHECK".into()),
        Some(h) if !h.contains("obs\", \"health\"") => {
            problems.push(format!("the HEALTHCHECK does not run `obs health`: {h}"));
        }
        Some(_) => {}
    }
    // obs reads the repository's provisioning files from the image, where OBS_* points.
    for (var, source) in [
        ("OBS_DATASOURCES", "grafana/provisioning/datasources"),
        ("OBS_DASHBOARDS", "dashboards"),
    ] {
        let env = runtime
            .iter()
            .find(|i| i.starts_with("ENV") && i.contains(var))
            .unwrap_or_else(|| panic!("no ENV {var}"));
        let path = env
            .split(&format!("{var}="))
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        if !runtime
            .iter()
            .any(|i| *i == format!("COPY {source} {path}"))
        {
            problems.push(format!("{var}={path}, but {source} is not copied there"));
        }
    }
    // The build context keeps what the build copies.
    let ignored = read(".dockerignore");
    for needed in [
        "crates",
        "examples",
        "tests",
        "grafana",
        "dashboards",
        "stack",
        "Cargo.lock",
    ] {
        if ignored
            .lines()
            .any(|l| l.trim() == needed || l.trim() == format!("{needed}/"))
        {
            problems.push(format!(
                ".dockerignore drops {needed}, which the build copies"
            ));
        }
    }
    assert_no_problems("Dockerfile runtime stage", &problems);
}

#[test]
fn the_makefile_has_the_targets_users_expect() {
    let makefile = read("Makefile");
    let mut problems = Vec::new();
    let recipe = |target: &str| -> Option<String> {
        let start = makefile
            .lines()
            .position(|l| l.starts_with(&format!("{target}:")))?;
        Some(
            makefile
                .lines()
                .skip(start + 1)
                .take_while(|l| l.starts_with('\t'))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    for (target, wanted) in [
        ("up", "up"),
        ("down", "down"),
        ("logs", "logs"),
        ("ps", "ps"),
        ("verify", "obs verify"),
    ] {
        match recipe(target) {
            None => problems.push(format!("no `{target}` target")),
            Some(r)
                if !(r.contains("$(COMPOSE)") || r.contains("docker compose"))
                    || !r.contains(wanted) =>
            {
                problems.push(format!(
                    "`make {target}` does not run docker compose {wanted}: {r:?}"
                ));
            }
            Some(_) => {}
        }
    }
    if !makefile.contains("COMPOSE ?= docker compose") {
        problems.push("COMPOSE is not docker compose (v2)".into());
    }
    let phony = makefile
        .lines()
        .find(|l| l.starts_with(".PHONY:"))
        .unwrap_or_default();
    for target in ["up", "down", "logs", "ps", "verify"] {
        if !phony.split_whitespace().any(|t| t == target) {
            problems.push(format!("{target} is not .PHONY"));
        }
    }
    assert_no_problems("Makefile", &problems);
}

// ---------------------------------------------------------------------------------------------
// The metric contract against a live scrape
// ---------------------------------------------------------------------------------------------

fn selector_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

fn metric_names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::VectorSelector(vs) => out.extend(selector_name(vs)),
        Expr::MatrixSelector(ms) => out.extend(selector_name(&ms.vs)),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Grafana's variables replaced by values PromQL accepts.
fn concrete(query: &str) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').unwrap();
            (inner[..end].split(':').next().unwrap(), end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        out.push_str(match name {
            "__rate_interval" | "__interval" | "__range" => "5m",
            "__interval_ms" | "__range_s" | "__range_ms" => "300",
            _ => "example",
        });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Every PromQL query of the dashboards (panel targets and query variables on the prometheus
/// datasource).
fn dashboard_promql() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    fn is_prometheus(ds: &Json) -> bool {
        ds["uid"] == "prometheus" || ds["type"] == "prometheus" || ds == "prometheus"
    }
    fn panels<'a>(value: &'a Json, out: &mut Vec<&'a Json>) {
        for panel in value["panels"].as_array().into_iter().flatten() {
            out.push(panel);
            panels(panel, out);
        }
    }
    let mut files = Vec::new();
    walk(&repo_root().join("dashboards"), &mut files);
    let mut out = Vec::new();
    for file in files {
        let json: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut all = Vec::new();
        panels(&json, &mut all);
        for panel in all {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let ds = if target["datasource"].is_null() {
                    &panel["datasource"]
                } else {
                    &target["datasource"]
                };
                if is_prometheus(ds)
                    && let Some(expr) = target["expr"].as_str()
                {
                    out.push((format!("{name}: {}", panel["title"]), expr.to_string()));
                }
            }
        }
        for var in json["templating"]["list"].as_array().into_iter().flatten() {
            if !is_prometheus(&var["datasource"]) {
                continue;
            }
            let query = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap_or_default();
            if let Some(args) = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                && let Some((selector, _)) = args.rsplit_once(',')
            {
                out.push((
                    format!("{name}: variable {}", var["name"]),
                    selector.trim().to_string(),
                ));
            }
        }
    }
    out
}

/// The metric families in a Prometheus text exposition.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn family_of(series: &str) -> String {
    ["_bucket", "_sum", "_count", "_created"]
        .iter()
        .find_map(|s| series.strip_suffix(s))
        .unwrap_or(series)
        .to_string()
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn quiet_telemetry(service: &str) -> platform_telemetry::Telemetry {
    platform_telemetry::builder()
        .service_name(service)
        .env_vars([
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .log_writer(std::io::sink)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_http_metric_the_dashboards_query_is_in_a_live_scrape_of_the_examples() {
    // The names the dashboards select (http_* is what the library's HTTP layer emits).
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    let queries = dashboard_promql();
    assert!(
        queries.len() >= 10,
        "found only {} PromQL queries",
        queries.len()
    );
    for (context, query) in &queries {
        let expr =
            promql::parse(&concrete(query)).unwrap_or_else(|e| panic!("{context}: {query}: {e}"));
        let mut names = BTreeSet::new();
        metric_names(&expr, &mut names);
        for name in names.into_iter().filter(|n| n.starts_with("http_")) {
            wanted
                .entry(family_of(&name))
                .or_insert_with(|| context.clone());
        }
    }
    assert!(
        wanted.contains_key("http_server_request_duration_seconds"),
        "the dashboards do not query the RED histogram: {wanted:?}"
    );

    // gateway → orders → (in-process channel), each with its own instance, as in the stack.
    let gateway_t = quiet_telemetry("gateway");
    let orders_t = quiet_telemetry("orders");
    let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while receiver.recv().await.is_some() {} });
    let orders_url = serve(orders::router_for(
        orders::Events::Channel(sender),
        &orders_t,
    ))
    .await;
    let gateway_url = serve(gateway::router_for(
        gateway::Upstream::for_telemetry(orders_url.clone(), &gateway_t),
        &gateway_t,
    ))
    .await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("{gateway_url}/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let mut scraped = BTreeSet::new();
    for url in [&gateway_url, &orders_url] {
        let body = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        scraped.extend(families(&body));
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(family, _)| !scraped.contains(*family))
        .map(|(family, context)| format!("{family} (queried by {context})"))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboards query metrics the examples do not expose:\n  - {}\nscraped families: {scraped:?}",
        missing.join("\n  - ")
    );
}
