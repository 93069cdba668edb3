//! The PromQL of the dashboards: every panel target and query variable on the Prometheus
//! datasource, the metric names each selects, and Grafana's variables made concrete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self as promql, Expr, VectorSelector};
use serde_json::Value as Json;

/// One panel target.
#[derive(Clone, Debug)]
pub struct PanelQuery {
    /// `file: panel title [refId]`, for messages.
    pub context: String,
    /// The panel's title.
    pub panel: String,
    /// The PromQL, with Grafana's variables.
    pub expr: String,
}

/// A `label_values(selector, label)` variable.
#[derive(Clone, Debug)]
pub struct VariableQuery {
    /// `file: variable $name`.
    pub context: String,
    /// The series selector.
    pub selector: String,
    /// The label whose values the variable lists.
    pub label: String,
}

/// The repository root (the tests crate sits in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

fn dashboard_files() -> Vec<PathBuf> {
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
    let mut files = Vec::new();
    walk(&repo_root().join("dashboards"), &mut files);
    files.sort();
    files
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

/// Every Prometheus panel target and `label_values` variable of every dashboard.
pub fn dashboard_queries() -> (Vec<PanelQuery>, Vec<VariableQuery>) {
    let mut targets = Vec::new();
    let mut variables = Vec::new();
    for file in dashboard_files() {
        let json: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut all = Vec::new();
        panels(&json, &mut all);
        for panel in all {
            let title = panel["title"].as_str().unwrap_or("<untitled>").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let ds = if target["datasource"].is_null() {
                    &panel["datasource"]
                } else {
                    &target["datasource"]
                };
                if is_prometheus(ds)
                    && let Some(expr) = target["expr"].as_str()
                {
                    targets.push(PanelQuery {
                        context: format!("{name}: {title:?} [{}]", target["refId"]),
                        panel: title.clone(),
                        expr: expr.to_string(),
                    });
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
                && let Some((selector, label)) = args.rsplit_once(',')
            {
                variables.push(VariableQuery {
                    context: format!("{name}: variable ${}", var["name"].as_str().unwrap_or("?")),
                    selector: selector.trim().to_string(),
                    label: label.trim().to_string(),
                });
            }
        }
    }
    (targets, variables)
}

/// Grafana's variables replaced: `$service` by `service` (or `example` without one), interval
/// variables by `30s` (seconds-valued ones by `30`), any other by `example`.
pub fn concrete(query: &str, service: Option<&str>) -> String {
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
            "__rate_interval" | "__interval" | "__range" | "__auto" => "30s",
            "__interval_ms" | "__range_s" | "__range_ms" => "30",
            "service" => service.unwrap_or("example"),
            _ => "example",
        });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// True when the query depends on the `$service` variable.
pub fn per_service(query: &str) -> bool {
    query.contains("$service") || query.contains("${service")
}

fn selector_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

fn collect_names(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::Aggregate(a) => {
            collect_names(&a.expr, out);
            if let Some(p) = &a.param {
                collect_names(p, out);
            }
        }
        Expr::Unary(u) => collect_names(&u.expr, out),
        Expr::Binary(b) => {
            collect_names(&b.lhs, out);
            collect_names(&b.rhs, out);
        }
        Expr::Paren(p) => collect_names(&p.expr, out),
        Expr::Subquery(s) => collect_names(&s.expr, out),
        Expr::VectorSelector(vs) => out.extend(selector_name(vs)),
        Expr::MatrixSelector(ms) => out.extend(selector_name(&ms.vs)),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The metric names a query (Grafana variables allowed) selects; panics naming the query when
/// it does not parse.
pub fn metric_names(context: &str, query: &str) -> BTreeSet<String> {
    let expr =
        promql::parse(&concrete(query, None)).unwrap_or_else(|e| panic!("{context}: {query}: {e}"));
    let mut names = BTreeSet::new();
    collect_names(&expr, &mut names);
    names
}

/// Names the library emits (the metric contract of DESIGN.md).
pub fn is_library_metric(name: &str) -> bool {
    name.starts_with("http_")
        || name.starts_with("db_client_")
        || name.starts_with("messaging_")
        || name.starts_with("otel_sdk_")
        || name.starts_with("process_")
        || name.starts_with("tokio_")
        || name == "target_info"
}

/// The sample names in a Prometheus text exposition (`foo_bucket`, `foo_total`, …).
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}
