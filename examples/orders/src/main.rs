//! `orders` service. Env: `ORDERS_PORT` (8081), `NATS_URL` (unset: events go to an in-process
//! channel that nobody consumes), plus the `OTEL_*` variables.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orders::run_from_env().await
}
