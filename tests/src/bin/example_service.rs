//! Runs one of the example services (`gateway`, `orders`, `worker`) exactly as its own binary
//! does, so the workspace tests can start them as separate processes.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("gateway") => gateway::run_from_env().await,
        Some("orders") => orders::run_from_env().await,
        Some("worker") => worker::run_from_env().await,
        other => anyhow::bail!("usage: example-service gateway|orders|worker (got {other:?})"),
    }
}
