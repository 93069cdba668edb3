//! Reading the stack's files: YAML, the compose file as Compose resolves it, and the helpers
//! collector-style configs and Prometheus's scrape config share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

pub(crate) fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

pub(crate) fn parse_yaml(relative: &str, text: &str) -> Yaml {
    let mut value: Yaml =
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{relative} is not YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{relative}: bad merge key: {e}"));
    value
}

pub(crate) fn yaml(relative: &str) -> Yaml {
    parse_yaml(relative, &read(relative))
}

pub(crate) fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A scalar as text (YAML numbers and booleans too).
pub(crate) fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| s.iter().filter_map(text).collect())
        .unwrap_or_default()
}

pub(crate) fn keys(value: &Yaml) -> Vec<String> {
    value
        .as_mapping()
        .map(|m| m.keys().filter_map(text).collect())
        .unwrap_or_default()
}

pub(crate) const COMPOSE: &str = "docker-compose.yml";
pub(crate) const COLLECTOR: &str = "collector/otel-collector.yaml";
pub(crate) const DATASOURCES: &str = "grafana/provisioning/datasources/datasources.yaml";

// ---------------------------------------------------------------------------------------------
// Compose interpolation: `${VAR:-default}` everywhere, `$$` for a literal `$`
// ---------------------------------------------------------------------------------------------

/// A `${…}` reference in a compose value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) name: String,
    /// `Some` for `${NAME:-default}`, the only form the stack uses.
    pub(crate) default: Option<String>,
    pub(crate) raw: String,
}

/// Splits `value` into literal text and references, as Compose reads it.
pub(crate) fn references(value: &str) -> Result<Vec<Reference>, String> {
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
pub(crate) fn interpolate(value: &str) -> String {
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

pub(crate) fn interpolate_tree(value: &Yaml) -> Yaml {
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
pub(crate) fn string_scalars(value: &Yaml, path: &str, out: &mut Vec<(String, String)>) {
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
pub(crate) fn compose_raw() -> Yaml {
    yaml(COMPOSE)
}

/// The compose file as Compose resolves it with no variable set.
pub(crate) fn compose() -> Yaml {
    interpolate_tree(&compose_raw())
}

pub(crate) fn services(compose: &Yaml) -> Vec<(String, Yaml)> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (text(k).unwrap(), v.clone()))
        .collect()
}

pub(crate) fn environment(service: &Yaml) -> BTreeMap<String, String> {
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
pub(crate) fn argv(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => strings(other),
    }
}

/// `--flag=value` or `--flag value` (or `-flag=value`) in an argument list.
pub(crate) fn flag(args: &[String], names: &[&str]) -> Option<String> {
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
pub(crate) fn split_colons(spec: &str) -> Vec<String> {
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
pub(crate) struct Published {
    pub(crate) service: String,
    pub(crate) ip: String,
    pub(crate) host: u16,
    pub(crate) container: u16,
    /// The variable that sets the host port, and its default.
    pub(crate) host_variable: Option<(String, String)>,
}

pub(crate) fn published_ports(raw: &Yaml) -> Vec<Published> {
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
pub(crate) fn mounts(service: &Yaml) -> Vec<(String, String, bool)> {
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
pub(crate) fn mounted_file(service_name: &str, service: &Yaml, container_path: &str) -> String {
    mounts(service)
        .into_iter()
        .find(|(_, target, bind)| *bind && target == container_path)
        .map(|(source, _, _)| source.trim_start_matches("./").to_string())
        .unwrap_or_else(|| panic!("{service_name} reads {container_path}, which nothing mounts"))
}

/// The repository file a service's command names as its config.
pub(crate) fn config_file_of(compose: &Yaml, service_name: &str) -> String {
    let service = &compose["services"][service_name];
    let command = argv(&service["command"]);
    let path = flag(
        &command,
        &["-config.file", "--config.file", "--config", "-config"],
    )
    .unwrap_or_else(|| panic!("{service_name}'s command names no config file: {command:?}"));
    mounted_file(service_name, service, &path)
}

pub(crate) fn healthcheck(service: &Yaml) -> Vec<String> {
    strings(&service["healthcheck"]["test"])
}

pub(crate) fn image_of(service: &Yaml) -> Option<String> {
    text(&service["image"])
}

// ---------------------------------------------------------------------------------------------
// Collector-style configs
// ---------------------------------------------------------------------------------------------

/// The components a pipeline list names.
pub(crate) fn pipeline_components(
    config: &Yaml,
) -> BTreeMap<String, BTreeMap<&'static str, Vec<String>>> {
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
pub(crate) fn wiring_problems(config: &Yaml, source: &str) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

/// Prometheus's scrape targets by job.
pub(crate) fn scrape_targets() -> BTreeMap<String, Vec<String>> {
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
