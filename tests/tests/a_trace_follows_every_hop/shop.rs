//! The shop under test: gateway → orders → NATS → worker, each its own process, exporting to
//! one real OTLP receiver; orders optionally on a real PostgreSQL and Redis.

use std::time::Duration;

use otlp_receiver::{OtlpReceiver, ReceivedSpan, Snapshot};

use crate::support::{
    Process, free_port, spawn_example, start_nats, start_postgres, start_redis, wait_ready,
};

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Shop {
    _nats: Process,
    _worker: Process,
    _orders: Process,
    _gateway: Process,
    pub gateway: String,
    pub receiver: OtlpReceiver,
    /// The data stores orders uses, when it uses them ([`start_shop_with_stores`]).
    pub stores: Option<Stores>,
}

/// A real PostgreSQL and Redis, started on free loopback ports.
pub struct Stores {
    /// `None` once a test has stopped it.
    pub postgres: Option<Process>,
    /// `postgres://…` of the database orders uses.
    pub postgres_url: String,
    _postgres_dir: tempfile::TempDir,
    /// `None` once a test has stopped it.
    pub redis: Option<Process>,
    pub redis_url: String,
}

pub async fn start_shop() -> Shop {
    start_shop_with(&[]).await
}

/// The shop with orders on a real PostgreSQL (`DATABASE_URL`) and Redis (`REDIS_URL`).
pub async fn start_shop_with_stores(extra: &[(&'static str, &str)]) -> Shop {
    let (postgres, postgres_url, postgres_dir) = start_postgres().await;
    let (redis, redis_url) = start_redis().await;
    let mut env: Vec<(&'static str, &str)> = vec![
        ("DATABASE_URL", postgres_url.as_str()),
        ("REDIS_URL", redis_url.as_str()),
    ];
    env.extend_from_slice(extra);
    let mut shop = start_shop_with(&env).await;
    shop.stores = Some(Stores {
        postgres: Some(postgres),
        postgres_url,
        _postgres_dir: postgres_dir,
        redis: Some(redis),
        redis_url,
    });
    shop
}

/// The shop, with `extra` variables for every service.
pub async fn start_shop_with(extra: &[(&'static str, &str)]) -> Shop {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (nats, nats_url) = start_nats().await;
    let otlp = receiver.http_endpoint();
    let common = |service_port: (&'static str, String)| {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100".to_string()),
            ("NATS_URL", nats_url.clone()),
            service_port,
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };
    let (worker_port, orders_port, gateway_port) = (free_port(), free_port(), free_port());

    let env = common(("WORKER_PORT", worker_port.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = spawn_example("worker", &env);
    wait_ready(&format!("http://127.0.0.1:{worker_port}/healthz"), &worker).await;

    let env = common(("ORDERS_PORT", orders_port.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let orders = spawn_example("orders", &env);
    wait_ready(&format!("http://127.0.0.1:{orders_port}/healthz"), &orders).await;

    let mut env = common(("GATEWAY_PORT", gateway_port.to_string()));
    env.push(("ORDERS_URL", format!("http://127.0.0.1:{orders_port}")));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gateway = spawn_example("gateway", &env);
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    wait_ready(&format!("{gateway_url}/healthz"), &gateway).await;

    Shop {
        _nats: nats,
        _worker: worker,
        _orders: orders,
        _gateway: gateway,
        gateway: gateway_url,
        receiver,
        stores: None,
    }
}

pub fn spans_of<'a>(snapshot: &'a Snapshot, trace_id: &str) -> Vec<&'a ReceivedSpan> {
    snapshot
        .spans
        .iter()
        .filter(|s| s.trace_id_hex() == trace_id)
        .collect()
}

/// The span with this name and service, or a failure listing what the trace holds.
pub fn find<'a>(spans: &[&'a ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.service_name().as_deref() == Some(service) && s.name() == name)
        .copied()
        .unwrap_or_else(|| {
            let have: Vec<String> = spans
                .iter()
                .map(|s| format!("{:?}/{}", s.service_name(), s.name()))
                .collect();
            panic!("no span {service}/{name:?} in the trace; it has {have:?}")
        })
}

pub fn kind(span: &ReceivedSpan) -> i32 {
    span.span.kind
}

pub fn traceresponse_trace_id(response: &reqwest::Response) -> String {
    let value = response
        .headers()
        .get("traceresponse")
        .expect("traceresponse header")
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceresponse {value}");
    assert_eq!(parts[0], "00");
    parts[1].to_string()
}

/// The points of metric `name` exported by `service`.
pub fn points_of(
    snapshot: &Snapshot,
    service: &str,
    name: &str,
) -> Vec<otlp_receiver::MetricPoint> {
    snapshot
        .metrics
        .iter()
        .filter(|m| m.service_name().as_deref() == Some(service) && m.name() == name)
        .flat_map(|m| m.points())
        .collect()
}
