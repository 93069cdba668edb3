#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboards against what the examples really emit.
//!
//! gateway → orders → (in-process channel) → worker run in this process, each with its own
//! telemetry instance exporting to a real OTLP receiver, orders on a real PostgreSQL behind a
//! real Redis, under steady traffic in which the worker rejects every tenth order. Then:
//!
//! - the metric contract of DESIGN.md: every library metric a dashboard selects is in the
//!   services' `/metrics`;
//! - a real Prometheus (the Debian package) scrapes the three services, and every PromQL query
//!   of every dashboard runs on it for every service: a query whose metrics a service exposes
//!   must answer for it (no "No data" where there is data), ratios answer 0 when nothing failed
//!   and stay right by route and destination, and the service list holds the worker too.

#[path = "../support/mod.rs"]
mod support;

mod queries;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use otlp_receiver::OtlpReceiver;
use serde_json::Value;
use support::{Process, encode, http, start_postgres, start_prometheus, start_redis};
use tracing::instrument::WithSubscriber as _;

const SERVICES: [&str; 3] = ["gateway", "orders", "worker"];

/// The three services in one process, and the traffic through them.
struct Shop {
    /// `host:port` of each service, in [`SERVICES`] order.
    addresses: Vec<String>,
    _telemetry: Vec<platform_telemetry::Telemetry>,
    _receiver: OtlpReceiver,
    /// orders' PostgreSQL (with its data directory) and Redis.
    _stores: (Process, tempfile::TempDir, Process),
    traffic: tokio::task::JoinHandle<()>,
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.traffic.abort();
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address.to_string()
}

impl Shop {
    async fn start() -> Self {
        let receiver = OtlpReceiver::start().await.unwrap();
        let endpoint = receiver.http_endpoint();
        let telemetry = |service: &str| {
            platform_telemetry::builder()
                .service_name(service)
                .env_vars([
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                    ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
                ])
                .log_writer(std::io::sink)
                .build()
                .unwrap()
        };
        let (gateway_t, orders_t, worker_t) = (
            telemetry("gateway"),
            telemetry("orders"),
            telemetry("worker"),
        );

        let (sender, receiver_channel) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(
            worker::consume_channel(receiver_channel).with_subscriber(worker_t.subscriber()),
        );
        let worker = serve(worker::router_for(&worker_t)).await;
        let (postgres, postgres_url, postgres_dir) = start_postgres().await;
        let (redis, redis_url) = start_redis().await;
        let orders = serve(
            orders::Service::new(orders::Events::Channel(sender))
                .store(orders::OrderStore::postgres(&postgres_url).await.unwrap())
                .cache(orders::OrderCache::redis(&redis_url).await.unwrap())
                .router_for(&orders_t),
        )
        .await;
        let gateway = serve(gateway::router_for(
            gateway::Upstream::for_telemetry(format!("http://{orders}"), &gateway_t),
            &gateway_t,
        ))
        .await;

        // Steady traffic, ids 1..=1000 in turn: the worker rejects multiples of 10, a tenth of
        // the orders; each id is a cache miss (a PostgreSQL query) on its first lookup.
        let base = format!("http://{gateway}");
        let traffic = tokio::spawn(async move {
            let client = http();
            let mut ticker = tokio::time::interval(Duration::from_millis(25));
            for n in 0u64.. {
                ticker.tick().await;
                let id = n % orders::SEEDED_ORDERS + 1;
                if let Ok(response) = client.get(format!("{base}/orders/{id}")).send().await {
                    assert_eq!(response.status(), 200, "gateway answered {response:?}");
                }
            }
        });
        Self {
            addresses: vec![gateway, orders, worker],
            _telemetry: vec![gateway_t, orders_t, worker_t],
            _receiver: receiver,
            _stores: (postgres, postgres_dir, redis),
            traffic,
        }
    }

    /// Polls each service's `/metrics` until the worker has processed both an accepted and a
    /// rejected order; returns the sample names of each.
    async fn scrape_names(&self) -> BTreeMap<&'static str, BTreeSet<String>> {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut names = BTreeMap::new();
            let mut bodies = String::new();
            for (service, address) in SERVICES.iter().zip(&self.addresses) {
                let body = client
                    .get(format!("http://{address}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                names.insert(*service, queries::sample_names(&body));
                bodies.push_str(&body);
            }
            if bodies.contains(r#"error_type="order_rejected""#)
                && bodies.contains("messaging_client_sent_messages_total")
                && bodies.contains(r#"db_system_name="postgresql""#)
                && bodies.contains(r#"db_system_name="redis""#)
            {
                return names;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never reported a rejected order:\n{bodies}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn every_library_metric_the_dashboards_select_is_in_a_live_scrape_of_the_examples() {
    let (targets, variables) = queries::dashboard_queries();
    assert!(
        targets.len() >= 20,
        "found only {} PromQL targets",
        targets.len()
    );
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for query in &targets {
        for name in queries::metric_names(&query.context, &query.expr) {
            wanted.entry(name).or_insert_with(|| query.context.clone());
        }
    }
    for var in &variables {
        for name in queries::metric_names(&var.context, &var.selector) {
            wanted.entry(name).or_insert_with(|| var.context.clone());
        }
    }
    wanted.retain(|name, _| queries::is_library_metric(name));
    for family in [
        "http_server_request_duration_seconds_bucket",
        "messaging_process_duration_seconds_bucket",
        "messaging_client_sent_messages_total",
        "process_cpu_time_seconds_total",
        "tokio_worker_busy_duration_seconds_total",
        "db_client_operation_duration_seconds_bucket",
        "target_info",
    ] {
        assert!(
            wanted.contains_key(family),
            "the dashboards do not query {family}: {wanted:?}"
        );
    }

    let shop = Shop::start().await;
    let scraped: BTreeSet<String> = shop.scrape_names().await.into_values().flatten().collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, _)| !scraped.contains(*name))
        .map(|(name, context)| format!("{name} (selected by {context})"))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboards select metrics the examples do not expose:\n  - {}\nscraped: {scraped:?}",
        missing.join("\n  - ")
    );
}

/// One instant query's answer: each series' labels and value.
type Answer = Vec<(BTreeMap<String, String>, f64)>;

async fn instant(
    client: &reqwest::Client,
    prometheus: &str,
    query: &str,
) -> Result<Answer, String> {
    let url = format!("{prometheus}/api/v1/query?query={}", encode(query));
    let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    let result = &body["data"]["result"];
    let series = match body["data"]["resultType"].as_str() {
        Some("vector") => result.as_array().cloned().unwrap_or_default(),
        Some("scalar") => vec![serde_json::json!({"metric": {}, "value": result})],
        other => return Err(format!("unexpected result type {other:?}: {body}")),
    };
    Ok(series
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}

/// A query to run, and whether it must answer (the service exposes every metric it selects).
struct Check {
    context: String,
    query: String,
    must_answer: bool,
}

#[tokio::test]
async fn every_dashboard_query_answers_on_a_real_prometheus_for_every_service_with_its_metrics() {
    let shop = Shop::start().await;
    let names = shop.scrape_names().await;
    let jobs: Vec<(&str, String)> = SERVICES
        .iter()
        .zip(&shop.addresses)
        .map(|(s, a)| (*s, a.clone()))
        .collect();
    let (_process, prometheus, _dir) = start_prometheus(&jobs).await;
    let client = http();

    // The checks: each query once per service when it depends on $service.
    let (targets, variables) = queries::dashboard_queries();
    let all_names: BTreeSet<String> = names.values().flatten().cloned().collect();
    let mut checks = Vec::new();
    for target in &targets {
        let selected = queries::metric_names(&target.context, &target.expr);
        if queries::per_service(&target.expr) {
            for service in SERVICES {
                checks.push(Check {
                    context: format!("{} for {service}", target.context),
                    query: queries::concrete(&target.expr, Some(service)),
                    must_answer: selected.is_subset(&names[service]),
                });
            }
        } else {
            checks.push(Check {
                context: target.context.clone(),
                query: queries::concrete(&target.expr, None),
                must_answer: selected.is_subset(&all_names),
            });
        }
    }
    let required = checks.iter().filter(|c| c.must_answer).count();
    assert!(
        required >= 40,
        "only {required} query/service pairs have data to check: {:?}",
        checks
            .iter()
            .filter(|c| c.must_answer)
            .map(|c| &c.context)
            .collect::<Vec<_>>()
    );

    // Every query is valid PromQL to Prometheus; each one with data answers within a minute
    // (rates need two scrapes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<&Check> = Vec::new();
    for check in &checks {
        let answer = instant(&client, &prometheus, &check.query)
            .await
            .unwrap_or_else(|e| {
                panic!("{}: Prometheus refused {}: {e}", check.context, check.query)
            });
        if check.must_answer && answer.is_empty() {
            pending.push(check);
        }
    }
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut still = Vec::new();
        for check in pending {
            if instant(&client, &prometheus, &check.query)
                .await
                .unwrap()
                .is_empty()
            {
                still.push(check);
            }
        }
        pending = still;
    }
    assert!(
        pending.is_empty(),
        "panels that say \"No data\" for a service that has their metrics:\n  - {}",
        pending
            .iter()
            .map(|c| format!("{}: {}", c.context, c.query))
            .collect::<Vec<_>>()
            .join("\n  - ")
    );

    // Values: 0 where nothing failed, by route and destination; the rejection share where the
    // worker rejects.
    let panel = |title: &str, service: &str| -> String {
        let target = targets
            .iter()
            .find(|t| t.panel == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        queries::concrete(&target.expr, Some(service))
    };
    for (title, service) in [
        ("Error ratio (5xx)", "gateway"),
        ("Error ratio (5xx) by route", "gateway"),
        ("Error ratio (5xx) by route", "orders"),
        ("Publish failures by destination", "orders"),
        ("Database errors by operation", "orders"),
        ("Telemetry dropped by the SDK", "worker"),
    ] {
        let answer = instant(&client, &prometheus, &panel(title, service))
            .await
            .unwrap();
        assert!(
            !answer.is_empty() && answer.iter().all(|(_, v)| *v == 0.0),
            "{title} for {service}: expected 0, got {answer:?}"
        );
    }
    let by_route = instant(
        &client,
        &prometheus,
        &panel("Error ratio (5xx) by route", "gateway"),
    )
    .await
    .unwrap();
    assert!(
        by_route
            .iter()
            .any(|(l, _)| l.get("http_route").map(String::as_str) == Some("/orders/{id}")),
        "{by_route:?}"
    );
    // The data-store rows: orders' Redis GET and PostgreSQL SELECT, each by operation.
    let operations = instant(
        &client,
        &prometheus,
        &panel("Database operations / s by operation", "orders"),
    )
    .await
    .unwrap();
    for (system, operation) in [("redis", "GET"), ("postgresql", "SELECT")] {
        assert!(
            operations.iter().any(|(l, v)| {
                l.get("db_system_name").map(String::as_str) == Some(system)
                    && l.get("db_operation_name").map(String::as_str) == Some(operation)
                    && *v > 0.0
            }),
            "no {system} {operation} rate: {operations:?}"
        );
    }
    let failures = instant(
        &client,
        &prometheus,
        &panel("Processing failure ratio by destination", "worker"),
    )
    .await
    .unwrap();
    let viewed = failures
        .iter()
        .find(|(l, _)| {
            l.get("messaging_destination_name").map(String::as_str) == Some("orders.viewed")
        })
        .unwrap_or_else(|| panic!("no orders.viewed series: {failures:?}"));
    assert!(
        (0.03..=0.3).contains(&viewed.1),
        "a tenth of the orders is rejected; the panel says {}",
        viewed.1
    );

    // The service list holds every service that reports telemetry, the worker included.
    for var in variables.iter().filter(|v| v.label == "job") {
        let url = format!(
            "{prometheus}/api/v1/label/job/values?match[]={}",
            encode(&queries::concrete(&var.selector, None))
        );
        let bytes = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let listed: Vec<&str> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for service in SERVICES {
            assert!(
                listed.contains(&service),
                "{}: {service} is not listed: {listed:?}",
                var.context
            );
        }
    }
}
