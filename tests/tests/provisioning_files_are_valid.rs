#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The files Grafana provisions from — `grafana/provisioning/**` and `dashboards/**` — are what
//! Grafana 12 accepts and what our stack needs: typed parsing of the provisioning YAML (unknown
//! keys refused), the fixed datasource uids (DESIGN.md, contract 5), correlations that point at
//! datasources that exist and survive Grafana's environment-variable expansion, and dashboards
//! whose every query parses and uses only metric names the library emits.
//!
//! The live version of the metric-name check (against a real `/metrics` scrape) comes with the
//! stack's contract tests; here the names are a constant, [`LIBRARY_METRICS`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{self as promql, Expr, LabelModifier, VectorSelector};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// What the files must agree with
// ---------------------------------------------------------------------------------------------

/// The fixed datasources: uid, plugin type, URL inside the compose network.
const FIXED_DATASOURCES: [(&str, &str, &str); 4] = [
    ("prometheus", "prometheus", "http://prometheus:9090"),
    ("loki", "loki", "http://loki:3100"),
    ("tempo", "tempo", "http://tempo:3200"),
    ("jaeger", "jaeger", "http://jaeger:16686"),
];

/// Every Prometheus name platform-telemetry emits, with its labels (besides `job` and
/// `instance`, which Prometheus adds, and `otel_scope_name`/`otel_scope_version`, which the
/// encoder adds to every instrument's series). Verified once against a live scrape of an example
/// service; the contract tests repeat that check against a real scrape, and this list must follow
/// the library when it changes.
const LIBRARY_METRICS: &[(&str, &[&str])] = &[
    (
        "http_server_request_duration_seconds_bucket",
        &[
            "http_request_method",
            "url_scheme",
            "http_route",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
            "le",
        ],
    ),
    (
        "http_server_request_duration_seconds_sum",
        &[
            "http_request_method",
            "url_scheme",
            "http_route",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
        ],
    ),
    (
        "http_server_request_duration_seconds_count",
        &[
            "http_request_method",
            "url_scheme",
            "http_route",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
        ],
    ),
    (
        "http_server_active_requests",
        &["http_request_method", "url_scheme"],
    ),
    (
        "http_client_request_duration_seconds_bucket",
        &[
            "http_request_method",
            "server_address",
            "server_port",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
            "le",
        ],
    ),
    (
        "http_client_request_duration_seconds_sum",
        &[
            "http_request_method",
            "server_address",
            "server_port",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
        ],
    ),
    (
        "http_client_request_duration_seconds_count",
        &[
            "http_request_method",
            "server_address",
            "server_port",
            "http_response_status_code",
            "error_type",
            "network_protocol_version",
        ],
    ),
    (
        "otel_sdk_processor_span_processed_total",
        &["otel_component_type", "otel_component_name", "error_type"],
    ),
    (
        "otel_sdk_processor_log_processed_total",
        &["otel_component_type", "otel_component_name", "error_type"],
    ),
    (
        "otel_sdk_exporter_span_exported_total",
        &[
            "otel_component_type",
            "otel_component_name",
            "server_address",
            "server_port",
            "error_type",
        ],
    ),
    (
        "otel_sdk_processor_span_queue_size",
        &["otel_component_type", "otel_component_name"],
    ),
    (
        "messaging_process_duration_seconds_bucket",
        &[
            "messaging_system",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
            "le",
        ],
    ),
    (
        "messaging_process_duration_seconds_sum",
        &[
            "messaging_system",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "messaging_process_duration_seconds_count",
        &[
            "messaging_system",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "messaging_client_operation_duration_seconds_bucket",
        &[
            "messaging_system",
            "messaging_operation_type",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
            "le",
        ],
    ),
    (
        "messaging_client_operation_duration_seconds_sum",
        &[
            "messaging_system",
            "messaging_operation_type",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "messaging_client_operation_duration_seconds_count",
        &[
            "messaging_system",
            "messaging_operation_type",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "messaging_client_sent_messages_total",
        &[
            "messaging_system",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "messaging_client_consumed_messages_total",
        &[
            "messaging_system",
            "messaging_operation_name",
            "messaging_destination_name",
            "messaging_destination_template",
            "error_type",
        ],
    ),
    (
        "db_client_operation_duration_seconds_bucket",
        &[
            "db_system_name",
            "db_namespace",
            "db_operation_name",
            "db_collection_name",
            "db_query_summary",
            "server_address",
            "server_port",
            "error_type",
            "le",
        ],
    ),
    (
        "db_client_operation_duration_seconds_sum",
        &[
            "db_system_name",
            "db_namespace",
            "db_operation_name",
            "db_collection_name",
            "db_query_summary",
            "server_address",
            "server_port",
            "error_type",
        ],
    ),
    (
        "db_client_operation_duration_seconds_count",
        &[
            "db_system_name",
            "db_namespace",
            "db_operation_name",
            "db_collection_name",
            "db_query_summary",
            "server_address",
            "server_port",
            "error_type",
        ],
    ),
    // Process and tokio runtime metrics (OTEL_RUST_RUNTIME_METRICS, on by default).
    ("process_cpu_time_seconds_total", &["cpu_mode"]),
    ("process_memory_usage_bytes", &[]),
    ("process_memory_virtual_bytes", &[]),
    ("process_thread_count", &[]),
    ("process_unix_file_descriptor_count", &[]),
    ("tokio_workers", &[]),
    ("tokio_alive_tasks", &[]),
    ("tokio_global_queue_depth", &[]),
    (
        "tokio_worker_busy_duration_seconds_total",
        &["tokio_worker_index"],
    ),
    // Labels are the resource's attributes: not checked.
    ("target_info", &[]),
];

/// Labels every library series has whatever the instrument.
const COMMON_LABELS: &[&str] = &["job", "instance", "otel_scope_name", "otel_scope_version"];

/// Names under these prefixes belong to the library and must be in [`LIBRARY_METRICS`].
fn is_library_metric_name(name: &str) -> bool {
    name.starts_with("http_")
        || name.starts_with("messaging_")
        || name.starts_with("db_client_")
        || name.starts_with("otel_sdk_")
        || name.starts_with("process_")
        || name.starts_with("tokio_")
        || name == "target_info"
}

fn library_metric(name: &str) -> Option<&'static [&'static str]> {
    LIBRARY_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, labels)| *labels)
}

/// Grafana's interval variables, replaced by a duration before parsing.
const GRAFANA_DURATION_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range", "__auto"];
/// Grafana's numeric interval variables.
const GRAFANA_NUMBER_VARIABLES: &[&str] = &["__interval_ms", "__range_ms", "__range_s"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------------------------
// Grafana's environment-variable expansion in provisioning files
// ---------------------------------------------------------------------------------------------

/// Expands a provisioning value the way Grafana does (`pkg/services/provisioning/values`,
/// `interpolateValue`), as the "Provision Grafana" docs describe it: the value is split on `$$`
/// (each `$$` becomes a literal `$`); in each part Grafana first replaces `${NAME}` (and the
/// `$__env{NAME}` / `$__file{PATH}` expanders), then `$NAME`, with Go's `os.ExpandEnv` rules.
/// Unset variables become the empty string — so an unescaped `${__value.raw}` disappears.
fn grafana_expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    value
        .split("$$")
        .map(|part| go_expand_env(&grafana_expanders(part, env), env))
        .collect::<Vec<_>>()
        .join("$")
}

/// Grafana's `setting.ExpandVar`: the pattern `\$(|__\w+){([^}]+)}`; an empty prefix or
/// `__env` reads the environment, `__file` reads a file (refused here: our files use neither).
fn grafana_expanders(input: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        // `(|__\w+)` prefers the empty alternative; `__\w+` must be followed by `{`.
        let prefixed = after.strip_prefix("__").and_then(|word| {
            let len = word.find(|c: char| !is_word(c)).unwrap_or(word.len());
            let body = word[len..].strip_prefix('{')?;
            (len > 0).then(|| (&after[..2 + len], body))
        });
        let candidate = match after.strip_prefix('{') {
            Some(body) => Some(("", body)),
            None => prefixed,
        };
        match candidate {
            Some((kind, body)) if body.find('}').is_some_and(|end| end > 0) => {
                let end = body.find('}').unwrap();
                let arg = &body[..end];
                match kind {
                    "" | "__env" => out.push_str(&env(arg).unwrap_or_default()),
                    "__file" => {
                        panic!("$__file{{{arg}}} in a provisioning file: not expected here")
                    }
                    // Other expanders (e.g. `__vault`) are Enterprise-only: left as written.
                    _ => out.push_str(&rest[at..at + 1 + kind.len() + 1 + end + 1]),
                }
                rest = &body[end + 1..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Go's `os.Expand` (`os.ExpandEnv`): `${name}` (anything up to `}`), `$name` (ASCII letters,
/// digits, `_`), `$` + one special character (`*#$@!?-` or a digit); a bad `${` or `${}` is
/// eaten, a `$` followed by anything else stays.
fn go_expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = s.as_bytes();
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    let alnum = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
    let mut out = String::new();
    let mut i = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[i..j]);
            let rest = &s[j + 1..];
            let r = rest.as_bytes();
            let (name, width): (&str, usize) = if r[0] == b'{' {
                if r.len() > 2 && special(r[1]) && r[2] == b'}' {
                    (&rest[1..2], 3)
                } else {
                    match rest[1..].find('}') {
                        Some(0) => ("", 2),
                        Some(end) => (&rest[1..=end], end + 2),
                        None => ("", 1),
                    }
                }
            } else if special(r[0]) {
                (&rest[..1], 1)
            } else {
                let n = r.iter().take_while(|c| alnum(**c)).count();
                (&rest[..n], n)
            };
            if name.is_empty() && width == 0 {
                out.push('$');
            } else if !name.is_empty() {
                out.push_str(&env(name).unwrap_or_default());
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    out
}

/// Expands every string in a YAML tree, recording which environment variables were asked for.
fn expand_tree(value: &Yaml, asked: &RefCell<BTreeSet<String>>) -> Yaml {
    let env = |name: &str| -> Option<String> {
        asked.borrow_mut().insert(name.to_string());
        None
    };
    match value {
        Yaml::String(s) => Yaml::String(grafana_expand(s, &env)),
        Yaml::Sequence(items) => {
            Yaml::Sequence(items.iter().map(|v| expand_tree(v, asked)).collect())
        }
        Yaml::Mapping(map) => Yaml::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), expand_tree(v, asked)))
                .collect(),
        ),
        Yaml::Tagged(tagged) => expand_tree(&tagged.value, asked),
        other => other.clone(),
    }
}

#[test]
fn grafana_env_expansion_follows_the_documented_rules() {
    let env = |name: &str| match name {
        "PORT" => Some("3000".to_string()),
        "PASSWORD" => Some("Pa$sw0rd".to_string()),
        _ => None,
    };
    let cases = [
        ("http://localhost:$PORT", "http://localhost:3000"),
        ("http://localhost:${PORT}/x", "http://localhost:3000/x"),
        ("$__env{PORT}", "3000"),
        ("Pa$$sw0rd", "Pa$sw0rd"),
        // The docs' warning: `${VAR}` is expanded twice (`$sw0rd` is read as another
        // variable), `$VAR` once.
        ("${PASSWORD}", "Pa"),
        ("$PASSWORD", "Pa$sw0rd"),
        ("${__value.raw}", ""),
        ("$${__value.raw}", "${__value.raw}"),
        ("{$__tags}", "{}"),
        ("{$$__tags}", "{$__tags}"),
        ("cost: 5$", "cost: 5$"),
        ("a $ b", "a $ b"),
        ("${}", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(grafana_expand(input, &env), expected, "expanding {input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Datasource provisioning
// ---------------------------------------------------------------------------------------------

/// A datasource provisioning file (apiVersion 1), with the keys Grafana documents
/// ("Provision Grafana" → Data sources) and reads (`configsV1`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DatasourceFile {
    api_version: i64,
    #[serde(default)]
    datasources: Vec<Datasource>,
    #[serde(default)]
    delete_datasources: Vec<DeleteDatasource>,
    #[serde(default)]
    #[allow(dead_code)]
    prune: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct DeleteDatasource {
    name: String,
    #[serde(default)]
    org_id: Option<i64>,
    #[serde(default)]
    org_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Datasource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    org_id: Option<i64>,
    #[serde(default)]
    org_name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    basic_auth: Option<bool>,
    #[serde(default)]
    basic_auth_user: Option<String>,
    #[serde(default)]
    with_credentials: Option<bool>,
    #[serde(default)]
    is_default: Option<bool>,
    #[serde(default)]
    correlations: Option<Vec<Yaml>>,
    #[serde(default)]
    json_data: Option<JsonData>,
    #[serde(default)]
    secure_json_data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    editable: Option<bool>,
}

/// The parts of `jsonData` that wire the correlations, typed after Grafana's datasource
/// options (Prometheus, Loki, Tempo, Jaeger docs and their TypeScript option types). Other
/// `jsonData` keys (HTTP, TLS, timeouts) are plugin-wide and left free.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonData {
    http_method: Option<String>,
    #[serde(default)]
    exemplar_trace_id_destinations: Vec<ExemplarDestination>,
    #[serde(default)]
    derived_fields: Vec<DerivedField>,
    traces_to_logs_v2: Option<TracesToLogs>,
    traces_to_metrics: Option<TracesToMetrics>,
    service_map: Option<UidRef>,
    node_graph: Option<NodeGraph>,
    loki_search: Option<UidRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExemplarDestination {
    name: String,
    datasource_uid: Option<String>,
    url: Option<String>,
    url_display_label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct DerivedField {
    name: String,
    matcher_regex: String,
    matcher_type: Option<String>,
    url: Option<String>,
    url_display_label: Option<String>,
    datasource_uid: Option<String>,
    target_blank: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct TracesToLogs {
    datasource_uid: String,
    #[serde(default)]
    tags: Vec<TagMapping>,
    span_start_time_shift: Option<String>,
    span_end_time_shift: Option<String>,
    #[serde(rename = "filterByTraceID")]
    filter_by_trace_id: Option<bool>,
    #[serde(rename = "filterBySpanID")]
    filter_by_span_id: Option<bool>,
    custom_query: Option<bool>,
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct TracesToMetrics {
    datasource_uid: String,
    #[serde(default)]
    tags: Vec<TagMapping>,
    #[serde(default)]
    queries: Vec<LinkedQuery>,
    span_start_time_shift: Option<String>,
    span_end_time_shift: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct TagMapping {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkedQuery {
    name: Option<String>,
    query: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UidRef {
    datasource_uid: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeGraph {
    enabled: bool,
}

const DATASOURCES_FILE: &str = "grafana/provisioning/datasources/datasources.yaml";
const DASHBOARD_PROVIDERS_FILE: &str = "grafana/provisioning/dashboards/dashboards.yaml";

/// The datasource file as Grafana would see it: env-expanded (with an empty environment),
/// then typed; also returns the variables the expansion asked for.
fn load_datasources() -> (DatasourceFile, Yaml, BTreeSet<String>) {
    let text = read(DATASOURCES_FILE);
    let raw: Yaml = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{DATASOURCES_FILE}: not valid YAML: {e}"));
    let asked = RefCell::new(BTreeSet::new());
    let expanded = expand_tree(&raw, &asked);
    let file: DatasourceFile = serde_yaml_ng::from_value(expanded.clone())
        .unwrap_or_else(|e| panic!("{DATASOURCES_FILE}: not Grafana's datasource format: {e}"));
    (file, expanded, asked.into_inner())
}

fn datasource<'a>(file: &'a DatasourceFile, uid: &str) -> &'a Datasource {
    file.datasources
        .iter()
        .find(|d| d.uid.as_deref() == Some(uid))
        .unwrap_or_else(|| panic!("{DATASOURCES_FILE}: no datasource with uid {uid:?}"))
}

fn json_data<'a>(file: &'a DatasourceFile, uid: &str) -> &'a JsonData {
    datasource(file, uid)
        .json_data
        .as_ref()
        .unwrap_or_else(|| panic!("{DATASOURCES_FILE}: datasource {uid:?} has no jsonData"))
}

#[test]
fn the_datasource_file_is_grafana_provisioning_with_the_four_fixed_uids() {
    let (file, _, asked) = load_datasources();
    let mut problems = Vec::new();
    if file.api_version != 1 {
        problems.push(format!(
            "apiVersion is {}, Grafana reads 1",
            file.api_version
        ));
    }
    if !asked.is_empty() {
        problems.push(format!(
            "the file uses environment variables {asked:?}; it is meant to need none \
             (write a literal `$` as `$$`)"
        ));
    }
    if !file.delete_datasources.is_empty() {
        problems.push(
            "deleteDatasources is not empty: Grafana deletes those names on every start".into(),
        );
    }
    for (uid, kind, url) in FIXED_DATASOURCES {
        let matching: Vec<&Datasource> = file
            .datasources
            .iter()
            .filter(|d| d.uid.as_deref() == Some(uid))
            .collect();
        if matching.len() != 1 {
            problems.push(format!(
                "uid {uid:?} is declared {} times, expected once",
                matching.len()
            ));
            continue;
        }
        let ds = matching[0];
        if ds.kind != kind {
            problems.push(format!(
                "uid {uid:?} has type {:?}, expected {kind:?}",
                ds.kind
            ));
        }
        if ds.url.as_deref() != Some(url) {
            problems.push(format!(
                "uid {uid:?} has url {:?}, expected {url:?}",
                ds.url
            ));
        }
        if ds.access.as_deref().unwrap_or("proxy") != "proxy" {
            problems.push(format!("uid {uid:?}: access must be proxy (server side)"));
        }
        if ds.editable != Some(false) {
            problems.push(format!(
                "uid {uid:?}: set editable: false, the files are the truth"
            ));
        }
    }
    let mut names = BTreeSet::new();
    for ds in &file.datasources {
        if ds.uid.as_deref().is_none_or(str::is_empty) {
            problems.push(format!("datasource {:?} has no uid", ds.name));
        }
        if !names.insert(ds.name.as_str()) {
            problems.push(format!("datasource name {:?} is used twice", ds.name));
        }
    }
    let defaults: Vec<&str> = file
        .datasources
        .iter()
        .filter(|d| d.is_default == Some(true))
        .filter_map(|d| d.uid.as_deref())
        .collect();
    if defaults != ["prometheus"] {
        problems.push(format!(
            "the default datasource must be prometheus alone, found {defaults:?}"
        ));
    }
    assert_no_problems(DATASOURCES_FILE, &problems);
}

/// Every `datasourceUid` anywhere under `value`, with its path.
fn datasource_uid_refs(value: &Yaml, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Yaml::Mapping(map) => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or("?");
                let here = format!("{path}.{key}");
                if key == "datasourceUid" {
                    out.push((
                        here.clone(),
                        v.as_str().unwrap_or("<not a string>").to_string(),
                    ));
                }
                datasource_uid_refs(v, &here, out);
            }
        }
        Yaml::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                datasource_uid_refs(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_datasource_uid_a_correlation_names_is_declared() {
    let (file, expanded, _) = load_datasources();
    let declared: BTreeSet<&str> = file
        .datasources
        .iter()
        .filter_map(|d| d.uid.as_deref())
        .collect();
    let mut refs = Vec::new();
    datasource_uid_refs(&expanded, "", &mut refs);
    assert!(
        refs.len() >= 8,
        "expected the correlations to name datasources, found {refs:?}"
    );
    let problems: Vec<String> = refs
        .iter()
        .filter(|(_, uid)| !declared.contains(uid.as_str()))
        .map(|(path, uid)| format!("{path} = {uid:?}, which no datasource declares ({declared:?})"))
        .collect();
    assert_no_problems(DATASOURCES_FILE, &problems);
}

#[test]
fn metrics_link_to_traces_through_exemplars() {
    let (file, _, _) = load_datasources();
    let prom = json_data(&file, "prometheus");
    assert_eq!(prom.http_method.as_deref(), Some("POST"));
    let to_tempo = prom
        .exemplar_trace_id_destinations
        .iter()
        .find(|d| d.datasource_uid.as_deref() == Some("tempo"))
        .expect("an exemplar destination to tempo");
    // The label the library writes on exemplars: `# {trace_id="…",span_id="…"}`.
    assert_eq!(to_tempo.name, "trace_id");
    assert!(to_tempo.url.is_none(), "an internal link needs no url");
    assert!(to_tempo.url_display_label.is_some());
}

#[test]
fn logs_link_to_traces_by_label_and_by_json_line_and_the_url_survives_expansion() {
    let (file, _, _) = load_datasources();
    let loki = json_data(&file, "loki");
    let mut names = BTreeSet::new();
    for field in &loki.derived_fields {
        // Grafana groups derived fields by name and uses the first one's matcher only.
        assert!(
            names.insert(&field.name),
            "derived field name {:?} twice",
            field.name
        );
        assert_eq!(field.datasource_uid.as_deref(), Some("tempo"), "{field:?}");
        // After Grafana's expansion the link must still carry the macro, not an empty string.
        assert_eq!(field.url.as_deref(), Some("${__value.raw}"), "{field:?}");
    }

    let by_label = loki
        .derived_fields
        .iter()
        .find(|f| f.matcher_type.as_deref() == Some("label"))
        .expect("a derived field of type label (structured metadata trace_id)");
    let label_regex = regex::Regex::new(&by_label.matcher_regex).unwrap();
    assert!(label_regex.is_match("trace_id"));
    for other in ["span_id", "service_name", "severity_text"] {
        assert!(
            !label_regex.is_match(other),
            "the label matcher also takes {other:?}"
        );
    }

    let by_line = loki
        .derived_fields
        .iter()
        .find(|f| f.matcher_type.as_deref().unwrap_or("regex") == "regex")
        .expect("a regex derived field for JSON log lines");
    let line_regex = regex::Regex::new(&by_line.matcher_regex).unwrap();
    assert_eq!(
        line_regex.captures_len(),
        2,
        "one capture group, the trace id"
    );
    // A line as the library writes it to stdout (tracing-subscriber JSON, no spaces).
    let line = r#"{"timestamp":"2025-01-01T00:00:00.000000Z","level":"INFO","fields":{"message":"order placed"},"target":"orders","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}"#;
    let captured = line_regex
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str());
    assert_eq!(captured, Some("4bf92f3577b34da6a3ce929d0e0e4736"));
}

#[test]
fn traces_link_to_logs_metrics_and_the_service_map() {
    let (file, _, _) = load_datasources();
    let service_name_tag = TagMapping {
        key: "service.name".into(),
        value: Some("service_name".into()),
    };
    for uid in ["tempo", "jaeger"] {
        let to_logs = json_data(&file, uid)
            .traces_to_logs_v2
            .as_ref()
            .unwrap_or_else(|| panic!("{uid}: no tracesToLogsV2"));
        assert_eq!(to_logs.datasource_uid, "loki", "{uid}");
        assert_eq!(to_logs.filter_by_trace_id, Some(true), "{uid}");
        assert!(
            to_logs.tags.contains(&service_name_tag),
            "{uid}: {:?}",
            to_logs.tags
        );
    }

    let tempo = json_data(&file, "tempo");
    let to_metrics = tempo
        .traces_to_metrics
        .as_ref()
        .expect("tempo: tracesToMetrics");
    assert_eq!(to_metrics.datasource_uid, "prometheus");
    let job = TagMapping {
        key: "service.name".into(),
        value: Some("job".into()),
    };
    assert!(to_metrics.tags.contains(&job), "{:?}", to_metrics.tags);
    assert!(to_metrics.queries.len() >= 2);
    let mut problems = Vec::new();
    for q in &to_metrics.queries {
        let name = q.name.as_deref().unwrap_or("<unnamed>");
        if !q.query.contains("$__tags") {
            problems.push(format!(
                "query {name:?} does not use $__tags (after expansion): {}",
                q.query
            ));
        }
        // Grafana replaces $__tags with the mapped span attributes, e.g. job="orders".
        let concrete = q.query.replace("$__tags", r#"job="orders""#);
        check_promql(
            &format!("tracesToMetrics {name:?}"),
            &concrete,
            &mut problems,
        );
    }
    assert_no_problems(DATASOURCES_FILE, &problems);

    assert_eq!(
        tempo
            .service_map
            .as_ref()
            .map(|s| s.datasource_uid.as_str()),
        Some("prometheus")
    );
    assert!(tempo.node_graph.as_ref().is_some_and(|n| n.enabled));
    assert_eq!(
        tempo
            .loki_search
            .as_ref()
            .map(|s| s.datasource_uid.as_str()),
        Some("loki")
    );
}

// ---------------------------------------------------------------------------------------------
// Dashboard provider
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderFile {
    api_version: i64,
    providers: Vec<Provider>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Provider {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    org_id: Option<i64>,
    folder: Option<String>,
    folder_uid: Option<String>,
    disable_deletion: Option<bool>,
    update_interval_seconds: Option<i64>,
    allow_ui_updates: Option<bool>,
    editable: Option<bool>,
    options: ProviderOptions,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderOptions {
    path: String,
    folders_from_files_structure: Option<bool>,
}

#[test]
fn the_dashboard_provider_loads_the_dashboards_directory_with_folders() {
    let text = read(DASHBOARD_PROVIDERS_FILE);
    let raw: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let asked = RefCell::new(BTreeSet::new());
    let file: ProviderFile =
        serde_yaml_ng::from_value(expand_tree(&raw, &asked)).unwrap_or_else(|e| {
            panic!("{DASHBOARD_PROVIDERS_FILE}: not Grafana's provider format: {e}")
        });
    assert!(
        asked.into_inner().is_empty(),
        "no environment variables expected"
    );
    assert_eq!(file.api_version, 1);
    let [provider] = file.providers.as_slice() else {
        panic!("expected one provider, found {}", file.providers.len());
    };
    assert_eq!(provider.name, "platform");
    assert_eq!(provider.kind, "file");
    assert_eq!(provider.options.path, "/var/lib/grafana/dashboards");
    assert_eq!(provider.options.folders_from_files_structure, Some(true));
    assert_eq!(provider.allow_ui_updates, Some(false));
    // With foldersFromFilesStructure the folder comes from the directory, not from these.
    assert!(provider.folder.as_deref().unwrap_or("").is_empty());
    assert!(provider.folder_uid.as_deref().unwrap_or("").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------------------------

fn dashboard_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_root().join("dashboards"), &mut files);
    files.sort();
    files
}

fn load_dashboards() -> Vec<(String, Json)> {
    let root = repo_root();
    dashboard_files()
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name}: not valid JSON: {e}"));
            (name, json)
        })
        .collect()
}

/// Panels, including those nested in collapsed rows.
fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

#[test]
fn the_platform_dashboards_exist_in_the_platform_folder() {
    let dashboards = load_dashboards();
    for (file, uid) in [
        (
            "dashboards/platform/service-overview.json",
            "platform-service-overview",
        ),
        (
            "dashboards/platform/logs-and-traces.json",
            "platform-logs-traces",
        ),
        (
            "dashboards/platform/telemetry-pipeline.json",
            "platform-telemetry-pipeline",
        ),
        ("dashboards/platform/runtime.json", "platform-runtime"),
    ] {
        let (_, json) = dashboards
            .iter()
            .find(|(name, _)| name == file)
            .unwrap_or_else(|| panic!("{file} is missing"));
        assert_eq!(json["uid"], uid, "{file}");
    }
}

#[test]
fn every_dashboard_has_a_stable_uid_title_schema_version_and_tag() {
    let dashboards = load_dashboards();
    assert!(!dashboards.is_empty());
    let mut problems = Vec::new();
    let mut uids = BTreeMap::new();
    let mut titles = BTreeMap::new();
    for (name, json) in &dashboards {
        let Some(object) = json.as_object() else {
            problems.push(format!("{name}: not a JSON object"));
            continue;
        };
        match object.get("uid").and_then(Json::as_str) {
            // Grafana limits uids to 40 characters of [a-zA-Z0-9-_].
            Some(uid)
                if !uid.is_empty()
                    && uid.len() <= 40
                    && uid
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                if let Some(other) = uids.insert(uid.to_string(), name.clone()) {
                    problems.push(format!("{name}: uid {uid:?} is also used by {other}"));
                }
            }
            other => problems.push(format!("{name}: uid {other:?} is not a valid stable uid")),
        }
        match object.get("title").and_then(Json::as_str) {
            Some(title) if !title.trim().is_empty() => {
                let folder = Path::new(name).parent().map(Path::to_path_buf);
                if let Some(other) = titles.insert((folder, title.to_string()), name.clone()) {
                    problems.push(format!(
                        "{name}: title {title:?} also used by {other} in the same folder"
                    ));
                }
            }
            other => problems.push(format!("{name}: title {other:?} is empty or missing")),
        }
        // Grafana 12 writes 41; it migrates older versions, and refuses nothing it knows.
        match object.get("schemaVersion").and_then(Json::as_i64) {
            Some(v) if (36..=42).contains(&v) => {}
            other => problems.push(format!("{name}: schemaVersion {other:?}, expected 36..=42")),
        }
        let has_tag = object
            .get("tags")
            .and_then(Json::as_array)
            .is_some_and(|tags| tags.iter().any(|t| t == "platform-telemetry"));
        if !has_tag {
            problems.push(format!("{name}: tags must include \"platform-telemetry\""));
        }
        if object.get("id").is_some_and(|id| !id.is_null()) {
            problems.push(format!(
                "{name}: remove \"id\"; Grafana assigns it, the uid is the identity"
            ));
        }
        if object.contains_key("__inputs") {
            problems.push(format!(
                "{name}: exported for sharing (__inputs); reference the fixed uids instead"
            ));
        }
        let mut ids = BTreeSet::new();
        for panel in panels(json) {
            let title = panel["title"].as_str().unwrap_or("<untitled>");
            if !panel["id"].as_i64().is_some_and(|id| ids.insert(id)) {
                problems.push(format!(
                    "{name}: panel {title:?} has a missing or duplicate id"
                ));
            }
            if !panel["gridPos"].is_object() {
                problems.push(format!("{name}: panel {title:?} has no gridPos"));
            }
        }
    }
    assert_no_problems("dashboards", &problems);
}

/// Every `"datasource"` value in a dashboard, with where it was found.
fn datasource_refs<'a>(value: &'a Json, path: String, out: &mut Vec<(String, &'a Json)>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                if k == "datasource" {
                    out.push((here.clone(), v));
                }
                datasource_refs(v, here, out);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                datasource_refs(v, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_dashboard_datasource_is_one_of_the_fixed_uids() {
    let mut problems = Vec::new();
    for (name, json) in load_dashboards() {
        let mut refs = Vec::new();
        datasource_refs(&json, String::new(), &mut refs);
        for (path, reference) in refs {
            let uid = reference["uid"].as_str();
            let kind = reference["type"].as_str();
            let known = FIXED_DATASOURCES
                .iter()
                .any(|(u, k, _)| Some(*u) == uid && Some(*k) == kind);
            if !known {
                problems.push(format!(
                    "{name}: {path} = {reference}; use {{\"type\": …, \"uid\": …}} with one of the fixed uids"
                ));
            }
        }
        // Every panel and every target names its datasource.
        for panel in panels(&json) {
            let title = panel["title"].as_str().unwrap_or("<untitled>");
            if panel["type"] == "row" {
                continue;
            }
            if !panel["datasource"].is_object() {
                problems.push(format!("{name}: panel {title:?} has no datasource"));
            }
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{name}: panel {title:?} has no targets"));
            }
            let mut ref_ids = BTreeSet::new();
            for target in targets {
                if !target["datasource"].is_object() {
                    problems.push(format!(
                        "{name}: a target of panel {title:?} has no datasource"
                    ));
                }
                if !target["refId"]
                    .as_str()
                    .is_some_and(|r| ref_ids.insert(r.to_string()))
                {
                    problems.push(format!(
                        "{name}: panel {title:?} has a missing or duplicate refId"
                    ));
                }
            }
        }
        for var in json["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] == "query" && !var["datasource"].is_object() {
                problems.push(format!(
                    "{name}: variable {} has no datasource",
                    var["name"]
                ));
            }
        }
    }
    assert_no_problems("dashboards", &problems);
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// Replaces Grafana's variables (`$name`, `${name}`, `${name:format}`, `[[name]]`) with concrete
/// values so the query language's parser can read the query: interval variables become `5m`,
/// dashboard variables the value `example`. A variable the dashboard does not define is an error.
fn substitute_variables(query: &str, defined: &BTreeSet<String>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let value_of = |name: &str| -> Result<&str, String> {
        if GRAFANA_DURATION_VARIABLES.contains(&name) {
            Ok("5m")
        } else if GRAFANA_NUMBER_VARIABLES.contains(&name) {
            Ok("300")
        } else if defined.contains(name) {
            Ok("example")
        } else {
            Err(format!("variable ${name} is not defined by the dashboard"))
        }
    };
    let mut out = String::new();
    let mut rest = query;
    loop {
        let dollar = rest.find('$');
        let bracket = rest.find("[[");
        let at = match (dollar, bracket) {
            (None, None) => break,
            (Some(d), Some(b)) => d.min(b),
            (Some(d), None) => d,
            (None, Some(b)) => b,
        };
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let (name, width) = if let Some(inner) = after.strip_prefix("[[") {
            let end = inner
                .find("]]")
                .ok_or_else(|| format!("unclosed [[ in {query:?}"))?;
            (inner[..end].split(':').next().unwrap_or_default(), end + 4)
        } else if let Some(inner) = after.strip_prefix("${") {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {query:?}"))?;
            (inner[..end].split(':').next().unwrap_or_default(), end + 3)
        } else {
            let n = after[1..]
                .find(|c: char| !is_name(c))
                .unwrap_or(after.len() - 1);
            (&after[1..=n], n + 1)
        };
        if name.is_empty() || !name.chars().all(is_name) {
            return Err(format!("a `$` that is not a variable in {query:?}"));
        }
        out.push_str(value_of(name)?);
        rest = &after[width..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The metric names a PromQL expression selects, with the label matchers used on each, and the
/// grouping labels of each aggregation over the metrics below it.
#[derive(Debug, Default)]
struct PromqlUse {
    selectors: Vec<(String, Vec<String>)>,
    groupings: Vec<(Vec<String>, BTreeSet<String>)>,
}

fn selector_use(vs: &VectorSelector, out: &mut PromqlUse) {
    let matchers: &Matchers = &vs.matchers;
    let name = vs.name.clone().or_else(|| {
        matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    });
    let labels = matchers
        .matchers
        .iter()
        .chain(matchers.or_matchers.iter().flatten())
        .map(|m| m.name.clone())
        .filter(|n| n != "__name__")
        .collect();
    out.selectors.push((name.unwrap_or_default(), labels));
}

fn promql_use(expr: &Expr, out: &mut PromqlUse) {
    match expr {
        Expr::Aggregate(agg) => {
            let mut inner = PromqlUse::default();
            promql_use(&agg.expr, &mut inner);
            if let Some(LabelModifier::Include(labels)) = &agg.modifier {
                let names = inner.selectors.iter().map(|(n, _)| n.clone()).collect();
                out.groupings.push((labels.labels.clone(), names));
            }
            out.selectors.extend(inner.selectors);
            out.groupings.extend(inner.groupings);
            if let Some(param) = &agg.param {
                promql_use(param, out);
            }
        }
        Expr::Unary(u) => promql_use(&u.expr, out),
        Expr::Binary(b) => {
            promql_use(&b.lhs, out);
            promql_use(&b.rhs, out);
        }
        Expr::Paren(p) => promql_use(&p.expr, out),
        Expr::Subquery(s) => promql_use(&s.expr, out),
        Expr::VectorSelector(vs) => selector_use(vs, out),
        Expr::MatrixSelector(ms) => selector_use(&ms.vs, out),
        Expr::Call(call) => call.args.args.iter().for_each(|a| promql_use(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Parses a concrete PromQL query and checks the library's metric names and labels in it.
/// Returns the metric names it selects.
fn check_promql(context: &str, query: &str, problems: &mut Vec<String>) -> BTreeSet<String> {
    let expr = match promql::parse(query) {
        Ok(expr) => expr,
        Err(e) => {
            problems.push(format!(
                "{context}: PromQL does not parse: {e}\n      {query}"
            ));
            return BTreeSet::new();
        }
    };
    let mut used = PromqlUse::default();
    promql_use(&expr, &mut used);
    let mut names = BTreeSet::new();
    for (name, labels) in &used.selectors {
        if name.is_empty() {
            problems.push(format!(
                "{context}: a selector without a metric name: {query}"
            ));
            continue;
        }
        names.insert(name.clone());
        if !is_library_metric_name(name) {
            continue;
        }
        let Some(known) = library_metric(name) else {
            problems.push(format!(
                "{context}: {name} is not a metric platform-telemetry emits (see LIBRARY_METRICS)"
            ));
            continue;
        };
        if name == "target_info" {
            continue;
        }
        for label in labels {
            if !known.contains(&label.as_str()) && !COMMON_LABELS.contains(&label.as_str()) {
                problems.push(format!("{context}: {name} has no label {label:?}"));
            }
        }
    }
    for (grouping, below) in &used.groupings {
        let known: Option<BTreeSet<&str>> = below
            .iter()
            .map(|n| library_metric(n).filter(|_| n != "target_info"))
            .try_fold(BTreeSet::new(), |mut acc, labels| {
                acc.extend(labels?.iter().copied());
                Some(acc)
            });
        let Some(known) = known.filter(|_| !below.is_empty()) else {
            continue;
        };
        for label in grouping {
            if !known.contains(label.as_str()) && !COMMON_LABELS.contains(&label.as_str()) {
                problems.push(format!(
                    "{context}: grouping by {label:?}, which {below:?} do not carry"
                ));
            }
        }
    }
    names
}

/// A minimal scan of a LogQL or TraceQL query: quotes (`"…"` with escapes, `` `…` ``) are
/// closed, `()`, `[]` and `{}` balance outside them. Returns the contents of each top-level
/// `{…}` (a LogQL stream selector, a TraceQL spanset filter).
fn scan_braces(query: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut blocks = Vec::new();
    let mut chars = query.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some((_, '"')) => break,
                    Some(_) => {}
                    None => return Err(format!("unclosed \" in {query:?}")),
                }
            },
            '`' => loop {
                match chars.next() {
                    Some((_, '`')) => break,
                    Some(_) => {}
                    None => return Err(format!("unclosed ` in {query:?}")),
                }
            },
            '(' | '[' | '{' => stack.push((c, i)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((o, start)) if o == open => {
                        if c == '}' && !stack.iter().any(|(o, _)| *o == '{') {
                            blocks.push(query[start + 1..i].to_string());
                        }
                    }
                    _ => return Err(format!("unbalanced {c:?} at byte {i} in {query:?}")),
                }
            }
            _ => {}
        }
    }
    if let Some((o, i)) = stack.pop() {
        return Err(format!("unclosed {o:?} at byte {i} in {query:?}"));
    }
    Ok(blocks)
}

/// LogQL: there is no maintained Rust LogQL parser on crates.io (we looked: nothing parses
/// current LogQL), so this checks what breaks most often — balance of quotes and brackets — and
/// that every stream selector matches on `service_name` only, the one stream label Loki's OTLP
/// endpoint derives from `service.name` (trace ids stay structured metadata, never labels).
fn check_logql(context: &str, query: &str, problems: &mut Vec<String>) {
    let selectors = match scan_braces(query) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{context}: LogQL {e}"));
            return;
        }
    };
    if selectors.is_empty() {
        problems.push(format!(
            "{context}: LogQL without a stream selector: {query}"
        ));
    }
    for selector in selectors {
        let matchers: Vec<&str> = selector
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        if matchers.is_empty() {
            problems.push(format!("{context}: empty stream selector in {query}"));
        }
        for matcher in matchers {
            let name_len = matcher
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(matcher.len());
            let (name, rest) = matcher.split_at(name_len);
            let rest = rest.trim_start();
            let value = ["=~", "!~", "!=", "="]
                .iter()
                .find_map(|op| rest.strip_prefix(op))
                .map(str::trim);
            let quoted = value.is_some_and(|v| {
                v.len() >= 2
                    && ((v.starts_with('"') && v.ends_with('"'))
                        || (v.starts_with('`') && v.ends_with('`')))
            });
            if name.is_empty() || !quoted {
                problems.push(format!(
                    "{context}: malformed matcher {matcher:?} in {query}"
                ));
            } else if name != "service_name" {
                problems.push(format!(
                    "{context}: stream selector uses label {name:?}; only service_name is a stream label"
                ));
            }
        }
    }
}

/// TraceQL: no Rust parser exists either; check quotes and brackets, and that there is a
/// spanset filter.
fn check_traceql(context: &str, query: &str, problems: &mut Vec<String>) {
    match scan_braces(query) {
        Ok(blocks) if !blocks.is_empty() => {}
        Ok(_) => problems.push(format!(
            "{context}: TraceQL without a {{ … }} filter: {query}"
        )),
        Err(e) => problems.push(format!("{context}: TraceQL {e}")),
    }
}

/// The argument of `label_values(…)` or `query_result(…)` that is PromQL, if the variable query
/// is one of Grafana's Prometheus variable functions.
fn variable_promql(query: &str) -> Option<String> {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        // label_values(label) or label_values(metric_selector, label)
        let (selector, _label) = args.rsplit_once(',')?;
        return Some(selector.trim().to_string());
    }
    query
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
        .map(str::to_string)
}

#[test]
fn every_dashboard_query_parses_and_uses_only_emitted_metric_names() {
    let mut problems = Vec::new();
    let mut promql_count = 0;
    let mut logql_count = 0;
    let mut traceql_count = 0;
    for (name, json) in load_dashboards() {
        let variables = json["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let defined: BTreeSet<String> = variables
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();

        for var in &variables {
            let var_name = var["name"].as_str().unwrap_or("?");
            let context = format!("{name}: variable ${var_name}");
            match var["datasource"]["type"].as_str() {
                Some("prometheus") => {
                    let query = var["query"]
                        .as_str()
                        .or_else(|| var["query"]["query"].as_str())
                        .unwrap_or_default();
                    match variable_promql(query) {
                        Some(promql) => match substitute_variables(&promql, &defined) {
                            Ok(concrete) => {
                                check_promql(&context, &concrete, &mut problems);
                                promql_count += 1;
                            }
                            Err(e) => problems.push(format!("{context}: {e}")),
                        },
                        None => problems.push(format!(
                            "{context}: {query:?} is not label_values(metric, label) or query_result(…)"
                        )),
                    }
                }
                Some("loki") => {
                    let label = var["query"]["label"].as_str().unwrap_or_default();
                    if label != "service_name" {
                        problems.push(format!(
                            "{context}: Loki label values of {label:?}, expected service_name"
                        ));
                    }
                    if let Some(stream) = var["query"]["stream"].as_str().filter(|s| !s.is_empty())
                    {
                        check_logql(&context, stream, &mut problems);
                    }
                }
                _ => {}
            }
        }

        for panel in panels(&json) {
            let title = panel["title"].as_str().unwrap_or("<untitled>");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let context = format!("{name}: panel {title:?} {}", target["refId"]);
                let (field, kind) = match target["datasource"]["type"].as_str() {
                    Some("prometheus") => ("expr", "prometheus"),
                    Some("loki") => ("expr", "loki"),
                    Some("tempo") => ("query", "tempo"),
                    _ => continue,
                };
                let Some(query) = target[field].as_str().filter(|q| !q.trim().is_empty()) else {
                    problems.push(format!("{context}: no {field}"));
                    continue;
                };
                let concrete = match substitute_variables(query, &defined) {
                    Ok(q) => q,
                    Err(e) => {
                        problems.push(format!("{context}: {e}"));
                        continue;
                    }
                };
                match kind {
                    "prometheus" => {
                        let metrics = check_promql(&context, &concrete, &mut problems);
                        promql_count += 1;
                        // Latency panels show exemplars, the jump from a spike to its trace.
                        let latency = metrics
                            .contains("http_server_request_duration_seconds_bucket")
                            || metrics.contains("messaging_process_duration_seconds_bucket")
                            || metrics.contains("db_client_operation_duration_seconds_bucket");
                        if latency && panel["type"] == "timeseries" && target["exemplar"] != true {
                            problems.push(format!(
                                "{context}: latency target without \"exemplar\": true"
                            ));
                        }
                    }
                    "loki" => {
                        check_logql(&context, &concrete, &mut problems);
                        logql_count += 1;
                    }
                    _ => {
                        if target["queryType"] != "traceql" {
                            problems.push(format!(
                                "{context}: Tempo target should be queryType traceql"
                            ));
                        }
                        check_traceql(&context, &concrete, &mut problems);
                        traceql_count += 1;
                    }
                }
            }
        }
    }
    assert_no_problems("dashboard queries", &problems);
    assert!(
        promql_count >= 10,
        "only {promql_count} PromQL queries found"
    );
    assert!(
        logql_count >= 1 && traceql_count >= 1,
        "LogQL {logql_count}, TraceQL {traceql_count}"
    );
}

#[test]
fn the_query_checks_catch_what_they_are_for() {
    let defined = BTreeSet::from(["service".to_string()]);
    let check = |query: &str| {
        let mut problems = Vec::new();
        match substitute_variables(query, &defined) {
            Ok(q) => {
                check_promql("t", &q, &mut problems);
            }
            Err(e) => problems.push(e),
        }
        problems
    };
    let ok = r#"histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{job="$service"}[$__rate_interval])))"#;
    assert_eq!(check(ok), Vec::<String>::new());
    // Unknown library name, wrong label, wrong grouping label, undefined variable, bad syntax.
    for bad in [
        r#"rate(http_server_requests_total{job="$service"}[5m])"#,
        r#"rate(http_server_request_duration_seconds_count{http_status_code="500"}[5m])"#,
        r#"sum by (route) (rate(http_server_request_duration_seconds_count[5m]))"#,
        r#"rate(http_server_request_duration_seconds_count{job="$servce"}[5m])"#,
        r#"sum(rate(http_server_request_duration_seconds_count[5m])"#,
    ] {
        assert!(!check(bad).is_empty(), "not caught: {bad}");
    }
    // Names outside the library's prefixes are not the library's business.
    assert_eq!(
        check("sum(rate(otelcol_exporter_sent_spans_total[5m]))"),
        Vec::<String>::new()
    );

    let logql = |query: &str| {
        let mut problems = Vec::new();
        check_logql("t", query, &mut problems);
        problems
    };
    assert!(logql(r#"{service_name="orders"} |= "x""#).is_empty());
    assert!(
        logql(r#"sum by (severity_text) (count_over_time({service_name="orders"}[5m]))"#)
            .is_empty()
    );
    assert!(!logql(r#"{service_name="orders", trace_id="abc"}"#).is_empty());
    assert!(!logql(r#"{job="orders"}"#).is_empty());
    assert!(!logql(r#"{service_name="orders"} |= "x"#).is_empty());
    assert!(!logql(r#"count_over_time({service_name="orders"}[5m]"#).is_empty());
}
