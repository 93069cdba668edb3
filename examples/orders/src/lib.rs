//! `orders`: answers `GET /orders/{id}` and publishes an `order.viewed` event for each lookup.
//!
//! An order is read from the cache (Redis, when `REDIS_URL` is set), else from the store
//! (PostgreSQL, when `DATABASE_URL` is set; memory otherwise), which then fills the cache. Each
//! command and query is a CLIENT span under the request span (`platform_telemetry::db`). The
//! event carries the trace context in its headers, so the worker that consumes it continues the
//! same trace. It goes over NATS when `NATS_URL` is set, else over an in-process channel
//! carrying the same headers.

mod cache;
mod events;
mod faults;
mod settings;
mod store;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

pub use cache::{CACHE_TTL_SECONDS, CacheError, OrderCache, redis_failure};
pub use events::{Events, Message, NatsHeaders, OrderViewed, SUBJECT};
pub use faults::Faults;
pub use store::{Order, OrderStore, SEEDED_ORDERS, StoreError, sqlx_failure};

/// The service: where its events go, where it reads orders, and the failures it injects.
///
/// ```
/// # async fn example() -> anyhow::Result<()> {
/// let (sender, _events) = tokio::sync::mpsc::channel(16);
/// let app = orders::Service::new(orders::Events::Channel(sender))
///     .store(orders::OrderStore::InMemory)
///     .cache(orders::OrderCache::None)
///     .router();
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Service {
    events: Events,
    store: OrderStore,
    cache: OrderCache,
    faults: std::sync::Arc<Faults>,
}

impl Service {
    /// Orders in memory, no cache, no injected failures.
    pub fn new(events: Events) -> Self {
        Self {
            events,
            store: OrderStore::InMemory,
            cache: OrderCache::None,
            faults: std::sync::Arc::new(Faults::default()),
        }
    }

    /// Reads orders from `store`.
    pub fn store(mut self, store: OrderStore) -> Self {
        self.store = store;
        self
    }

    /// Caches orders in `cache`.
    pub fn cache(mut self, cache: OrderCache) -> Self {
        self.cache = cache;
        self
    }

    /// Fails lookups as `faults` says.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = std::sync::Arc::new(faults);
        self
    }

    fn routes(self) -> axum::Router {
        axum::Router::new()
            .route("/orders/{id}", get(get_order))
            .with_state(self)
    }

    /// The service's routes, instrumented, with `/metrics` and `/healthz`.
    pub fn router(self) -> axum::Router {
        self.routes()
            .merge(platform_telemetry::endpoints())
            .layer(platform_telemetry::http::server_layer())
    }

    /// The same routes for a non-global telemetry instance (several services in one process).
    pub fn router_for(self, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
        self.routes().merge(telemetry.endpoints()).layer(
            platform_telemetry::http::ServerLayer::for_telemetry(telemetry),
        )
    }

    /// The order: from the cache, else from the store (which then fills the cache).
    async fn lookup(&self, id: u64) -> Result<Option<Order>, StoreError> {
        if let Some(order) = self.cache.get(id).await {
            return Ok(Some(order));
        }
        let found = self.store.find(id).await?;
        if let Some(order) = &found {
            self.cache.put(order).await;
        }
        Ok(found)
    }
}

async fn get_order(
    State(service): State<Service>,
    Path(id): Path<u64>,
) -> Result<Json<Order>, (StatusCode, String)> {
    tracing::info!(order.id = id, "order looked up");
    if service.faults.fail_next() {
        tracing::error!(order.id = id, "injected fault (ORDERS_FAULT_RATIO)");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "injected fault (ORDERS_FAULT_RATIO)".to_string(),
        ));
    }
    let order = match service.lookup(id).await {
        Ok(Some(order)) => order,
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("no order {id}"))),
        Err(error) => {
            tracing::error!(error = %error, order.id = id, "order store failed");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the order store is unavailable".to_string(),
            ));
        }
    };
    if let Err(error) = service.events.publish(&OrderViewed { order_id: id }).await {
        tracing::error!(%error, "could not publish order.viewed");
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("event not published: {error}"),
        ));
    }
    Ok(Json(order))
}

/// The service's routes, instrumented, with `/metrics` and `/healthz` (orders in memory, no
/// cache).
pub fn router(events: Events) -> axum::Router {
    Service::new(events).router()
}

/// [`router`], failing as `faults` says.
pub fn router_with_faults(events: Events, faults: Faults) -> axum::Router {
    Service::new(events).faults(faults).router()
}

/// The same routes for a non-global telemetry instance (several services in one process).
pub fn router_for(events: Events, telemetry: &platform_telemetry::Telemetry) -> axum::Router {
    Service::new(events).router_for(telemetry)
}

/// Resolves on SIGINT or SIGTERM (what `docker stop` sends), so `main` returns and the telemetry
/// guard flushes.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `orders` service. Env: `ORDERS_PORT` (8081), `DATABASE_URL` (`postgres://…`; unset: orders
/// `1..=1000` in memory), `REDIS_URL` (`redis://…`; unset: no cache), each of the two also as
/// `*_FILE` (a file holding it, such as a mounted Secret), `NATS_URL` (unset: events
/// go to an in-process channel that nobody consumes), `ORDERS_FAULT_RATIO` (unset: none; `0.25`
/// answers every fourth lookup 503, to prove alerts fire), plus the `OTEL_*` variables.
///
/// Installs telemetry globally (the guard flushes when this returns) and serves until SIGINT or
/// SIGTERM.
pub async fn run_from_env() -> anyhow::Result<()> {
    use anyhow::Context as _;

    let _telemetry = platform_telemetry::builder!().init()?;
    let faults = crate::Faults::from_env()?;
    let port: u16 = std::env::var("ORDERS_PORT")
        .ok()
        .map(|p| p.parse().context("ORDERS_PORT must be a port number"))
        .transpose()?
        .unwrap_or(8081);
    let events = match std::env::var("NATS_URL") {
        Ok(url) => crate::Events::Nats(
            async_nats::connect(&url)
                .await
                .with_context(|| format!("cannot connect to NATS at NATS_URL={url}"))?,
        ),
        Err(_) => {
            tracing::warn!("NATS_URL is unset: events go over an in-process channel to nowhere");
            let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(async move { while receiver.recv().await.is_some() {} });
            crate::Events::Channel(sender)
        }
    };
    let var = |name: &str| std::env::var(name).ok();
    let store = match settings::credential_setting("DATABASE_URL", var)? {
        Some(url) => crate::OrderStore::postgres(&url).await?,
        None => {
            tracing::warn!("DATABASE_URL is unset: orders 1..=1000 are kept in memory");
            crate::OrderStore::InMemory
        }
    };
    let cache = match settings::credential_setting("REDIS_URL", var)? {
        Some(url) => crate::OrderCache::redis(&url).await?,
        None => {
            tracing::info!("REDIS_URL is unset: orders are not cached");
            crate::OrderCache::None
        }
    };
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port} (ORDERS_PORT)"))?;
    tracing::info!(server.port = port, "orders listening");
    let service = crate::Service::new(events)
        .store(store)
        .cache(cache)
        .faults(faults);
    axum::serve(listener, service.router())
        .with_graceful_shutdown(crate::shutdown_signal())
        .await?;
    Ok(())
}
