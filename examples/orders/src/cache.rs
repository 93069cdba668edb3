//! The order cache: Redis (`REDIS_URL`, through `redis`), or none.
//!
//! A lookup reads the cache first (`GET order:{id}`) and, on a miss, fills it from the store
//! (`SET order:{id} … EX 60`). Each command is a CLIENT span named after it (`GET`, `SET`),
//! recorded by name only: keys and values never reach telemetry. The cache is an optimisation,
//! never a dependency: when Redis fails or is slow (every command is bounded by a timeout), the
//! span is marked failed, a warning is logged and the lookup goes to the store. A Redis that is
//! down when orders starts is the same: orders starts uncached and connects when it can.

use std::time::Duration;

use platform_telemetry::db::{DbFailure, DbOperation};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::store::Order;

/// How long a cached order is kept.
pub const CACHE_TTL_SECONDS: u64 = 60;

/// The most a cache command may take, reconnecting included, before the lookup goes on without
/// it.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

/// Why a cache command gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No answer in time (Redis slow, or unreachable and being reconnected to).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis, or the connection to it, failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// The cache in front of the store.
#[derive(Clone, Debug, Default)]
pub enum OrderCache {
    /// No cache: every lookup reads the store.
    #[default]
    None,
    /// A Redis server.
    Redis(Redis),
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis({}:{}/{})", self.host, self.port, self.database)
    }
}

/// A reconnecting Redis connection and what its spans say about the server.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    host: String,
    port: u16,
    database: String,
}

impl OrderCache {
    /// `host:port/database` of the Redis it uses, `None` without a cache.
    pub fn server(&self) -> Option<String> {
        match self {
            OrderCache::None => None,
            OrderCache::Redis(redis) => {
                Some(format!("{}:{}/{}", redis.host, redis.port, redis.database))
            }
        }
    }

    /// Connects to Redis at `url` (`redis://[:password@]host:6379[/db]`). The connection
    /// reconnects by itself after a failure. Errors name the server, never the password.
    pub async fn redis(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = redis::Client::open(url).map_err(|e| {
            anyhow::anyhow!(
                "REDIS_URL is not a Redis URL (redis://[:password@]host:6379[/db]): {}",
                e.category()
            )
        })?;
        let info = client.get_connection_info();
        let (host, port) = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
            other => (other.to_string(), 0),
        };
        let database = info.redis_settings().db().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = match ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
        {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(
                    error = redis_failure(&error).error_type(),
                    "cannot connect to Redis at {host}:{port} (REDIS_URL): orders starts uncached \
                     and connects when Redis answers"
                );
                ConnectionManager::new_lazy_with_config(client, config).with_context(|| {
                    format!("cannot set up the Redis connection to {host}:{port} (REDIS_URL)")
                })?
            }
        };
        Ok(Self::Redis(Redis {
            connection,
            host,
            port,
            database,
        }))
    }

    /// The cached order, or `None` on a miss, without a cache, or when the cache failed.
    pub async fn get(&self, id: u64) -> Option<Order> {
        let OrderCache::Redis(redis) = self else {
            return None;
        };
        let mut connection = redis.connection.clone();
        let mut get = redis::cmd("GET");
        get.arg(key(id));
        let cached: Option<String> = redis
            .operation("GET")
            .run_with(bounded(get.query_async(&mut connection)), cache_failure)
            .await
            .inspect_err(
                |error| tracing::warn!(%error, "order cache: GET failed; reading the store"),
            )
            .ok()?;
        serde_json::from_str(&cached?)
            .inspect_err(|error| tracing::warn!(%error, "order cache: unreadable entry; ignored"))
            .ok()
    }

    /// Caches `order` for [`CACHE_TTL_SECONDS`]; a failure is logged and otherwise ignored.
    pub async fn put(&self, order: &Order) {
        let OrderCache::Redis(redis) = self else {
            return;
        };
        let Ok(value) = serde_json::to_string(order) else {
            return;
        };
        let mut connection = redis.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(key(order.id))
            .arg(value)
            .arg("EX")
            .arg(CACHE_TTL_SECONDS);
        let stored: Result<(), _> = redis
            .operation("SET")
            .run_with(bounded(set.query_async(&mut connection)), cache_failure)
            .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "order cache: SET failed; the order is not cached");
        }
    }
}

impl Redis {
    fn operation<'a>(&'a self, command: &'a str) -> DbOperation<'a> {
        DbOperation::command("redis", command)
            .namespace(&self.database)
            .server(&self.host, self.port)
    }
}

/// `command`, failed with [`CacheError::Timeout`] when it takes longer than [`COMMAND_TIMEOUT`].
async fn bounded<T>(command: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(CacheError::Timeout(COMMAND_TIMEOUT)),
    }
}

/// How a cache command failed: `timeout`, or [`redis_failure`].
fn cache_failure(error: &CacheError) -> DbFailure {
    match error {
        CacheError::Timeout(_) => DbFailure::from("timeout"),
        CacheError::Redis(error) => redis_failure(error),
    }
}

fn key(id: u64) -> String {
    format!("order:{id}")
}

/// How a Redis command failed: the server's error code (`WRONGTYPE`, `NOAUTH`, …, as both
/// `db.response.status_code` and `error.type`), else `timeout`, `io_error` or the client's
/// kind of failure; never its message.
pub fn redis_failure(error: &redis::RedisError) -> DbFailure {
    if error.is_timeout() {
        return DbFailure::from("timeout");
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        return DbFailure::from("io_error");
    }
    if let Some(code) = error.code() {
        // Server codes are short upper-case words; anything else is not a code to record.
        if code.len() <= 32 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return DbFailure::status_code(code.to_string());
        }
    }
    DbFailure::from(match error.kind() {
        redis::ErrorKind::AuthenticationFailed => "authentication_failed",
        redis::ErrorKind::UnexpectedReturnType => "unexpected_return_type",
        redis::ErrorKind::Parse => "parse_error",
        _ => "redis_error",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_redis_url_that_does_not_parse_is_refused_naming_the_variable() {
        let error = OrderCache::redis("http://:s3cret@cache")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("REDIS_URL"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
