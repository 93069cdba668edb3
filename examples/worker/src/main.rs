//! `worker` service. Env: `WORKER_PORT` (8082, serves /metrics and /healthz), `NATS_URL`
//! (default `nats://127.0.0.1:4222`), plus the `OTEL_*` variables. `/healthz` answers once the
//! subscription is in place.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker::run_from_env().await
}
