//! `gateway` service. Env: `GATEWAY_PORT` (8080), `ORDERS_URL` (`http://127.0.0.1:8081`),
//! plus the `OTEL_*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gateway::run_from_env().await
}
