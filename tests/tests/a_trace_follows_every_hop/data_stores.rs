//! orders on a real PostgreSQL and Redis: the request's trace goes gateway → orders → Redis /
//! PostgreSQL → NATS → worker with every parent present, the cache hit skips the database, the
//! query text is recorded without its values, and a store going away is a failed span (the
//! cache's costs nothing but its span; the database's is the request's error).

use otlp_receiver::{ReceivedSpan, Snapshot};

use crate::shop::{
    WAIT, find, kind, points_of, spans_of, start_shop_with_stores, traceresponse_trace_id,
};
use crate::support::http;

/// OTLP span kind CLIENT, and status code ERROR.
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

const METRICS_OVER_OTLP: [(&str, &str); 2] = [
    ("OTEL_METRICS_EXPORTER", "otlp"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
];

/// Waits until the trace holds `count` spans, and returns them.
async fn trace(shop: &crate::shop::Shop, trace_id: &str, count: usize) -> Snapshot {
    shop.receiver
        .wait_until(WAIT, |s| {
            s.spans
                .iter()
                .filter(|sp| sp.trace_id_hex() == trace_id)
                .count()
                >= count
        })
        .await
        .unwrap_or_else(|e| panic!("trace {trace_id} never held {count} spans: {e}"))
}

async fn get(shop: &crate::shop::Shop, id: u64) -> (u16, String) {
    let response = http()
        .get(format!("{}/orders/{id}", shop.gateway))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        traceresponse_trace_id(&response),
    )
}

fn names(spans: &[&ReceivedSpan]) -> Vec<String> {
    let mut names: Vec<String> = spans.iter().map(|s| s.name().to_string()).collect();
    names.sort();
    names
}

fn is_error(span: &ReceivedSpan) -> bool {
    span.span.status.as_ref().map(|s| s.code) == Some(STATUS_ERROR)
}

#[tokio::test]
async fn one_trace_crosses_http_postgres_redis_and_nats_with_every_parent_present() {
    let shop = start_shop_with_stores(&METRICS_OVER_OTLP).await;
    let stores = shop.stores.as_ref().unwrap();
    let postgres_port = stores
        .postgres_url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let redis_port = stores.redis_url.rsplit(':').next().unwrap().to_string();

    // A cold cache: Redis GET misses, PostgreSQL answers, Redis SET fills the cache.
    let (status, cold) = get(&shop, 7).await;
    assert_eq!(status, 200);
    let snapshot = trace(&shop, &cold, 8).await;
    let spans = spans_of(&snapshot, &cold);
    let orders_server = find(&spans, "orders", "GET /orders/{id}");
    let cache_get = find(&spans, "orders", "GET");
    let select = find(&spans, "orders", "SELECT orders");
    let cache_set = find(&spans, "orders", "SET");
    let producer = find(&spans, "orders", "publish orders.viewed");
    let consumer = find(&spans, "worker", "process orders.viewed");

    // Every data-store span is a CLIENT child of the request it serves, in the order it ran.
    for span in [cache_get, select, cache_set] {
        assert_eq!(kind(span), CLIENT, "{}", span.name());
        assert_eq!(
            span.parent_span_id_hex(),
            Some(orders_server.span_id_hex()),
            "{} is a child of the orders request",
            span.name()
        );
        assert!(!is_error(span), "{} failed", span.name());
    }
    assert!(cache_get.span.end_time_unix_nano <= select.span.start_time_unix_nano);
    assert!(select.span.end_time_unix_nano <= cache_set.span.start_time_unix_nano);
    assert!(cache_set.span.end_time_unix_nano <= producer.span.start_time_unix_nano);
    assert_eq!(
        producer.parent_span_id_hex(),
        Some(orders_server.span_id_hex())
    );
    assert_eq!(consumer.parent_span_id_hex(), Some(producer.span_id_hex()));
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id_hex()).collect();
    for span in &spans {
        if let Some(parent) = span.parent_span_id_hex() {
            assert!(
                ids.contains(&parent),
                "orphan {} (parent {parent})",
                span.name()
            );
        }
    }

    // The semantic conventions' attributes, and the query text without the id bound to it.
    assert_eq!(select.attr("db.system.name").as_deref(), Some("postgresql"));
    assert_eq!(select.attr("db.namespace").as_deref(), Some("postgres"));
    assert_eq!(select.attr("db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(select.attr("db.collection.name").as_deref(), Some("orders"));
    assert_eq!(
        select.attr("db.query.text").as_deref(),
        Some("SELECT id, status FROM orders WHERE id = $1")
    );
    assert_eq!(select.attr("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(select.attr("server.port"), Some(postgres_port));
    for span in [cache_get, cache_set] {
        assert_eq!(span.attr("db.system.name").as_deref(), Some("redis"));
        assert_eq!(span.attr("db.namespace").as_deref(), Some("0"));
        assert_eq!(span.attr("server.port"), Some(redis_port.clone()));
        // A command store's keys and values are never recorded.
        assert_eq!(span.attr("db.query.text"), None);
        for attribute in &span.span.attributes {
            let value = format!("{:?}", attribute.value);
            assert!(
                !value.contains("order:7") && !value.contains("shipped"),
                "{}: {} = {value}",
                span.name(),
                attribute.key
            );
        }
    }

    // A warm cache: the same order is a Redis GET and no database query.
    let (status, warm) = get(&shop, 7).await;
    assert_eq!(status, 200);
    let snapshot = trace(&shop, &warm, 6).await;
    let spans = spans_of(&snapshot, &warm);
    assert_eq!(
        names(&spans),
        [
            "GET",
            "GET",
            "GET /orders/{id}",
            "GET /orders/{id}",
            "process orders.viewed",
            "publish orders.viewed",
        ],
        "a cache hit reads neither PostgreSQL nor writes Redis"
    );

    // An order that does not exist: a successful query that found nothing, a 404 end to end.
    let (status, missing) = get(&shop, 5000).await;
    assert_eq!(status, 404);
    let snapshot = trace(&shop, &missing, 5).await;
    let spans = spans_of(&snapshot, &missing);
    assert!(!is_error(find(&spans, "orders", "SELECT orders")));
    assert!(
        spans
            .iter()
            .all(|s| s.name() != "SET" && s.name() != "publish orders.viewed"),
        "nothing is cached or published for a missing order: {:?}",
        names(&spans)
    );

    // db.client.operation.duration: by system, operation and collection; no query text.
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            let points = points_of(s, "orders", "db.client.operation.duration");
            points
                .iter()
                .any(|p| p.attr("db.operation.name") == Some("SELECT") && p.count >= Some(2))
                && points
                    .iter()
                    .any(|p| p.attr("db.operation.name") == Some("GET") && p.count >= Some(3))
        })
        .await
        .unwrap_or_else(|e| panic!("no db.client.operation.duration for the lookups: {e}"));
    let points = points_of(&snapshot, "orders", "db.client.operation.duration");
    let select_point = points
        .iter()
        .find(|p| p.attr("db.operation.name") == Some("SELECT"))
        .unwrap();
    assert_eq!(select_point.attr("db.system.name"), Some("postgresql"));
    assert_eq!(select_point.attr("db.collection.name"), Some("orders"));
    assert!(
        points
            .iter()
            .all(|p| p.attr("db.query.text").is_none() && p.attr("error.type").is_none()),
        "{points:?}"
    );
    assert!(
        points
            .iter()
            .any(|p| p.attr("db.system.name") == Some("redis")
                && p.attr("db.operation.name") == Some("SET")),
        "{points:?}"
    );
}

#[tokio::test]
async fn a_store_going_away_is_a_failed_span_the_cache_degrades_and_the_database_fails_the_lookup()
{
    let mut shop = start_shop_with_stores(&[]).await;
    let (status, _) = get(&shop, 3).await;
    assert_eq!(status, 200, "the shop works with both stores");

    // Without Redis the lookup still answers, from PostgreSQL; the cache's spans say it failed.
    drop(shop.stores.as_mut().unwrap().redis.take());
    let (status, no_cache) = get(&shop, 8).await;
    assert_eq!(status, 200, "the cache is not a dependency");
    let snapshot = trace(&shop, &no_cache, 8).await;
    let spans = spans_of(&snapshot, &no_cache);
    let cache_get = find(&spans, "orders", "GET");
    assert!(is_error(cache_get), "the failed GET is an error span");
    let error_type = cache_get.attr("error.type").unwrap_or_default();
    assert!(
        ["io_error", "timeout"].contains(&error_type.as_str()),
        "error.type {error_type:?}"
    );
    assert!(!is_error(find(&spans, "orders", "SELECT orders")));

    // Without PostgreSQL the lookup fails: the query span and the request say so.
    drop(shop.stores.as_mut().unwrap().postgres.take());
    let (status, no_database) = get(&shop, 9).await;
    assert_eq!(status, 502, "the gateway reports the upstream's 503");
    let snapshot = shop
        .receiver
        .wait_until(WAIT, |s| {
            s.spans
                .iter()
                .any(|sp| sp.trace_id_hex() == no_database && sp.name() == "SELECT orders")
        })
        .await
        .unwrap_or_else(|e| panic!("no SELECT span for the failed lookup: {e}"));
    let spans = spans_of(&snapshot, &no_database);
    let select = find(&spans, "orders", "SELECT orders");
    assert!(is_error(select), "the failed query is an error span");
    let error_type = select.attr("error.type").unwrap_or_default();
    assert!(
        ["io", "pool_timed_out"].contains(&error_type.as_str()),
        "error.type {error_type:?}"
    );
    assert_eq!(
        find(&spans, "orders", "GET /orders/{id}")
            .attr("http.response.status_code")
            .as_deref(),
        Some("503")
    );
}

#[tokio::test]
async fn orders_starts_without_its_cache_and_serves_from_the_database() {
    let (_postgres, postgres_url, _dir) = crate::support::start_postgres().await;
    // A port nobody listens on: Redis is down when orders starts.
    let redis_url = format!("redis://127.0.0.1:{}/0", crate::support::free_port());
    let shop =
        crate::shop::start_shop_with(&[("DATABASE_URL", &postgres_url), ("REDIS_URL", &redis_url)])
            .await;
    let (status, trace_id) = get(&shop, 4).await;
    assert_eq!(status, 200, "orders serves without its cache");
    let snapshot = trace(&shop, &trace_id, 8).await;
    let spans = spans_of(&snapshot, &trace_id);
    let cache_get = find(&spans, "orders", "GET");
    assert!(is_error(cache_get), "the cache lookup is a failed span");
    assert!(!is_error(find(&spans, "orders", "SELECT orders")));
    // Bounded: the failed cache command cost at most its timeout.
    let took = cache_get.span.end_time_unix_nano - cache_get.span.start_time_unix_nano;
    assert!(took < 1_000_000_000, "the failed GET took {took} ns");
}

/// A TCP listener that accepts connections and never answers: a Redis that hangs.
fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    (port, handle)
}

#[tokio::test]
async fn a_cache_that_hangs_costs_a_lookup_at_most_its_timeout() {
    let (_postgres, postgres_url, _dir) = crate::support::start_postgres().await;
    let (port, _hole) = black_hole();
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let shop =
        crate::shop::start_shop_with(&[("DATABASE_URL", &postgres_url), ("REDIS_URL", &redis_url)])
            .await;
    let started = std::time::Instant::now();
    let (status, trace_id) = get(&shop, 6).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "orders answers from the database");
    assert!(
        took < std::time::Duration::from_secs(2),
        "the lookup took {took:?}"
    );
    let snapshot = trace(&shop, &trace_id, 8).await;
    let spans = spans_of(&snapshot, &trace_id);
    for command in ["GET", "SET"] {
        let span = find(&spans, "orders", command);
        assert!(is_error(span), "{command} is a failed span");
        assert_eq!(
            span.attr("error.type").as_deref(),
            Some("timeout"),
            "{command}"
        );
        let nanos = span.span.end_time_unix_nano - span.span.start_time_unix_nano;
        assert!(
            nanos < 600_000_000,
            "{command} took {nanos} ns, past its 250 ms bound"
        );
    }
}
