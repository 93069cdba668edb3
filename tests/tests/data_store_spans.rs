#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `platform_telemetry::db` against real servers (Debian's PostgreSQL through sqlx, Debian's
//! redis-server through redis), observed on a real OTLP receiver: CLIENT spans named from the
//! query summary with the database semantic conventions' attributes, query text without its
//! literals and never the bound parameters, failures marked on the span and on
//! `db.client.operation.duration`.

mod support;

use std::borrow::Cow;
use std::time::Duration;

use otlp_receiver::{OtlpReceiver, ReceivedSpan, Snapshot};
use platform_telemetry::db::{DbFailure, DbOperation};
use support::{start_postgres, start_redis};
use tracing::instrument::WithSubscriber as _;

const WAIT: Duration = Duration::from_secs(30);

fn telemetry(receiver: &OtlpReceiver, service: &str) -> platform_telemetry::Telemetry {
    platform_telemetry::builder()
        .service_name(service)
        .env_vars([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                receiver.http_endpoint().as_str(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ])
        .log_writer(std::io::sink)
        .build()
        .unwrap()
}

fn span<'a>(snapshot: &'a Snapshot, name: &str) -> &'a ReceivedSpan {
    snapshot
        .spans
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = snapshot.spans.iter().map(|s| s.name()).collect();
            panic!("no span {name:?}; spans: {names:?}")
        })
}

/// Every attribute value of every span and metric point, for "never recorded" checks.
fn everything_recorded(snapshot: &Snapshot) -> String {
    let mut all = String::new();
    for span in &snapshot.spans {
        all.push_str(span.name());
        for kv in &span.span.attributes {
            all.push_str(&format!(
                " {}={}",
                kv.key,
                span.attr(&kv.key).unwrap_or_default()
            ));
        }
        all.push('\n');
    }
    for metric in &snapshot.metrics {
        for point in metric.points() {
            all.push_str(&format!("{} {:?}\n", metric.name(), point.attributes));
        }
    }
    all
}

/// The SQLSTATE of a database error (`42P01`), else sqlx's error kind: a low-cardinality
/// `error.type`.
/// The SQLSTATE as `db.response.status_code` (and `error.type`), as orders classifies it.
fn sqlstate(error: &sqlx::Error) -> DbFailure {
    match error.as_database_error().and_then(|e| e.code()) {
        Some(code) => DbFailure::status_code(code.into_owned()),
        None => DbFailure::from("sqlx_error"),
    }
}

#[tokio::test]
async fn postgres_queries_through_sqlx_are_client_spans_without_their_literals() {
    let (_postgres, url, _dir) = start_postgres().await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = telemetry(&receiver, "orders");
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();

    async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        let db = |sql| {
            DbOperation::sql("postgresql", sql)
                .namespace("postgres")
                .server("127.0.0.1", port)
        };
        const CREATE: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL)";
        db(CREATE)
            .run_with(sqlx::query(CREATE).execute(&pool), sqlstate)
            .await
            .unwrap();
        const INSERT: &str = "INSERT INTO orders (id, email) VALUES ($1, $2)";
        db(INSERT)
            .run_with(
                sqlx::query(INSERT)
                    .bind(7_i64)
                    .bind("bound-secret@example.com")
                    .execute(&pool),
                sqlstate,
            )
            .await
            .unwrap();
        // A literal in the text itself: recorded as `?`.
        const SELECT: &str =
            "SELECT id, email FROM orders WHERE email = 'inline-secret@example.com' OR id = 7";
        let rows = db(SELECT)
            .run_with(sqlx::query(SELECT).fetch_all(&pool), sqlstate)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        const MISSING: &str = "SELECT * FROM invoices WHERE id = 1";
        let failed = db(MISSING)
            .run_with(sqlx::query(MISSING).fetch_all(&pool), sqlstate)
            .await;
        assert!(failed.is_err(), "the table does not exist");
        pool.close().await;
    }
    .with_subscriber(telemetry.subscriber())
    .await;

    let snapshot = receiver
        .wait_until(WAIT, |s| {
            s.spans
                .iter()
                .filter(|sp| sp.name().starts_with("SELECT"))
                .count()
                >= 2
                && s.metrics.iter().any(|m| {
                    m.name() == "db.client.operation.duration"
                        && m.points()
                            .iter()
                            .any(|p| p.attr("error.type") == Some("42P01"))
                })
        })
        .await
        .unwrap_or_else(|e| panic!("the database spans and metric never arrived: {e}"));

    let insert = span(&snapshot, "INSERT orders");
    // SpanKind in OTLP: 3 is CLIENT.
    assert_eq!(insert.span.kind, 3);
    assert_eq!(insert.attr("db.system.name").as_deref(), Some("postgresql"));
    assert_eq!(insert.attr("db.namespace").as_deref(), Some("postgres"));
    assert_eq!(insert.attr("db.operation.name").as_deref(), Some("INSERT"));
    assert_eq!(insert.attr("db.collection.name").as_deref(), Some("orders"));
    assert_eq!(
        insert.attr("db.query.summary").as_deref(),
        Some("INSERT orders")
    );
    assert_eq!(insert.attr("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(insert.attr("server.port"), Some(port.to_string()));
    assert_eq!(
        insert.attr("db.query.text").as_deref(),
        Some("INSERT INTO orders (id, email) VALUES ($1, $2)")
    );
    let select = span(&snapshot, "SELECT orders");
    assert_eq!(
        select.attr("db.query.text").as_deref(),
        Some("SELECT id, email FROM orders WHERE email = ? OR id = ?")
    );
    let missing = span(&snapshot, "SELECT invoices");
    // Status code in OTLP: 2 is error.
    assert_eq!(missing.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(missing.attr("error.type").as_deref(), Some("42P01"));
    assert_eq!(
        missing.attr("db.response.status_code").as_deref(),
        Some("42P01"),
        "the SQLSTATE is the response status code"
    );
    assert_eq!(
        span(&snapshot, "CREATE orders")
            .attr("db.operation.name")
            .as_deref(),
        Some("CREATE")
    );

    // The names and labels the service overview's data-store panels select, on /metrics.
    let scrape = telemetry.scrape_metrics(None).body;
    let bucket = scrape
        .lines()
        .find(|l| {
            l.starts_with("db_client_operation_duration_seconds_bucket{")
                && l.contains(r#"db_system_name="postgresql""#)
                && l.contains(r#"db_operation_name="INSERT""#)
                && l.contains(r#"db_collection_name="orders""#)
        })
        .unwrap_or_else(|| panic!("no INSERT orders bucket on /metrics:\n{scrape}"));
    assert!(!bucket.contains("db_query_text"), "{bucket}");
    // Exemplars: the OpenMetrics scrape links each series to a span that measured it, the
    // succeeded one and the failed one alike.
    let open_metrics = telemetry
        .scrape_metrics(Some("application/openmetrics-text"))
        .body;
    for (series, span_name) in [
        (r#"db_operation_name="INSERT""#, "INSERT orders"),
        (r#"error_type="42P01""#, "SELECT invoices"),
    ] {
        let trace_id = span(&snapshot, span_name).trace_id_hex();
        assert!(
            open_metrics.lines().any(|l| {
                l.starts_with("db_client_operation_duration_seconds_bucket{")
                    && l.contains(series)
                    && l.contains(&format!(r#"# {{trace_id="{trace_id}""#))
            }),
            "no exemplar of {span_name} (trace {trace_id}):\n{open_metrics}"
        );
    }
    assert!(
        scrape.contains(r#"error_type="42P01""#),
        "the failure is its own series:\n{scrape}"
    );

    let recorded = everything_recorded(&snapshot);
    for secret in ["bound-secret", "inline-secret"] {
        assert!(
            !recorded.contains(secret),
            "{secret} was recorded:\n{recorded}"
        );
    }

    let points: Vec<_> = snapshot
        .metrics
        .iter()
        .filter(|m| m.name() == "db.client.operation.duration")
        .flat_map(|m| m.points())
        .collect();
    let failed = points
        .iter()
        .find(|p| p.attr("error.type") == Some("42P01"))
        .unwrap();
    assert_eq!(failed.attr("db.system.name"), Some("postgresql"));
    assert_eq!(failed.attr("db.response.status_code"), Some("42P01"));
    assert_eq!(failed.attr("db.collection.name"), Some("invoices"));
    assert_eq!(
        failed.attr("db.query.text"),
        None,
        "query text stays off the metric"
    );
    assert!(
        points
            .iter()
            .any(|p| p.attr("db.query.summary") == Some("INSERT orders") && p.count >= Some(1)),
        "{points:?}"
    );
}

#[tokio::test]
async fn redis_commands_are_client_spans_named_by_command_without_keys_or_values() {
    let (_redis, url) = start_redis().await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let telemetry = telemetry(&receiver, "orders");
    let port = url.rsplit(':').next().unwrap().parse::<u16>().unwrap();

    async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let cmd = |name| {
            DbOperation::command("redis", name)
                .namespace("0")
                .server("127.0.0.1", port)
        };
        let _: () = cmd("SET")
            .run(
                redis::cmd("SET")
                    .arg("order:7:email")
                    .arg("cached-secret@example.com")
                    .query_async(&mut conn),
            )
            .await
            .unwrap();
        let value: Option<String> = cmd("GET")
            .run(
                redis::cmd("GET")
                    .arg("order:7:email")
                    .query_async(&mut conn),
            )
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("cached-secret@example.com"));
        // INCR on a string that is not a number: Redis answers an error.
        let failed: Result<i64, _> = cmd("INCR")
            .run_with(
                redis::cmd("INCR")
                    .arg("order:7:email")
                    .query_async(&mut conn),
                |e: &redis::RedisError| Cow::Owned(e.code().unwrap_or("redis_error").to_string()),
            )
            .await;
        assert!(failed.is_err());
    }
    .with_subscriber(telemetry.subscriber())
    .await;

    let snapshot = receiver
        .wait_until(WAIT, |s| s.spans.iter().any(|sp| sp.name() == "INCR"))
        .await
        .unwrap_or_else(|e| panic!("the redis spans never arrived: {e}"));
    let get = span(&snapshot, "GET");
    assert_eq!(get.span.kind, 3);
    assert_eq!(get.attr("db.system.name").as_deref(), Some("redis"));
    assert_eq!(get.attr("db.operation.name").as_deref(), Some("GET"));
    assert_eq!(get.attr("db.namespace").as_deref(), Some("0"));
    assert_eq!(get.attr("server.port"), Some(port.to_string()));
    assert_eq!(get.attr("db.query.text"), None);
    let incr = span(&snapshot, "INCR");
    assert_eq!(incr.span.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(incr.attr("error.type").as_deref(), Some("ERR"));
    let recorded = everything_recorded(&snapshot);
    assert!(!recorded.contains("cached-secret"), "{recorded}");
    assert!(!recorded.contains("order:7"), "keys hold ids: {recorded}");
}
