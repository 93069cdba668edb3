//! The metric contract against a live scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self as promql, Expr, VectorSelector};
use serde_json::Value as Json;

use crate::support::*;

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
