//! Where orders are kept: PostgreSQL (`DATABASE_URL`, through `sqlx`), or memory.
//!
//! Every query runs inside a [`DbOperation`], so each is a CLIENT span under the request span
//! (named from the query summary, `SELECT orders`) and a `db.client.operation.duration` sample.

use std::time::Duration;

use platform_telemetry::db::{DbFailure, DbOperation};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Orders `1..=SEEDED_ORDERS` exist in every store; any other id is not found.
pub const SEEDED_ORDERS: u64 = 1000;

/// The lookup, with its id as a bound parameter (the span records this text; the id never).
const SELECT_ORDER: &str = "SELECT id, status FROM orders WHERE id = $1";

/// An order as the service returns and caches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id.
    pub id: u64,
    /// Where it is (`shipped`, …).
    pub status: String,
}

/// The store orders are read from.
#[derive(Clone, Debug, Default)]
pub enum OrderStore {
    /// No database: orders `1..=SEEDED_ORDERS`, all shipped.
    #[default]
    InMemory,
    /// A PostgreSQL database holding the `orders` table.
    Postgres(Postgres),
}

/// A PostgreSQL pool and what its spans say about the server.
#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
    host: String,
    port: u16,
    database: String,
}

/// Why a lookup failed (the store answered nothing usable).
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL at {server}: {source}")]
pub struct StoreError {
    server: String,
    #[source]
    source: sqlx::Error,
}

/// Host, port and database only: the pool's options hold the password.
impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.server())
    }
}

impl Postgres {
    fn server(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }
}

impl OrderStore {
    /// `host:port/database` of the PostgreSQL it reads, `None` in memory.
    pub fn server(&self) -> Option<String> {
        match self {
            OrderStore::InMemory => None,
            OrderStore::Postgres(postgres) => Some(postgres.server()),
        }
    }

    /// Connects to PostgreSQL at `url` (`postgres://user:password@host:5432/database`), creates
    /// the `orders` table if it is missing and seeds orders `1..=SEEDED_ORDERS` (idempotent, and
    /// safe with several replicas starting at once). Errors name the server, never the password.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        const EXPECTED: &str = "postgres://user:password@host:5432/database";
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "DATABASE_URL is not a PostgreSQL URL: it should look like {EXPECTED}"
        );
        let options: PgConnectOptions = url.parse().map_err(|e| {
            anyhow::anyhow!("DATABASE_URL is not a PostgreSQL URL ({EXPECTED}): {e}")
        })?;
        let host = options.get_host().to_string();
        let port = options.get_port();
        let database = options
            .get_database()
            .unwrap_or(options.get_username())
            .to_string();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // Bounded: a lookup waits at most this long for a connection, then fails (503).
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .with_context(|| {
                format!("cannot connect to PostgreSQL at {host}:{port}/{database} (DATABASE_URL)")
            })?;
        let postgres = Postgres {
            pool,
            host,
            port,
            database,
        };
        postgres.migrate().await.with_context(|| {
            format!(
                "cannot create and seed the orders table in {}:{}/{} (DATABASE_URL)",
                postgres.host, postgres.port, postgres.database
            )
        })?;
        Ok(Self::Postgres(postgres))
    }

    /// The order with this id, if there is one.
    pub async fn find(&self, id: u64) -> Result<Option<Order>, StoreError> {
        match self {
            OrderStore::InMemory => Ok((1..=SEEDED_ORDERS).contains(&id).then(|| Order {
                id,
                status: "shipped".into(),
            })),
            OrderStore::Postgres(postgres) => postgres.find(id).await,
        }
    }
}

impl Postgres {
    /// The schema and the seed, under an advisory lock so that replicas starting together do
    /// not race on `CREATE TABLE` (not traced: start-up, not a request).
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('orders schema'))")
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, status TEXT NOT NULL)",
        )
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO orders (id, status) SELECT n, 'shipped' FROM generate_series(1, $1) AS n \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(SEEDED_ORDERS as i64)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await
    }

    async fn find(&self, id: u64) -> Result<Option<Order>, StoreError> {
        // An id past BIGINT cannot be in the table.
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        let row: Option<(i64, String)> = DbOperation::sql("postgresql", SELECT_ORDER)
            .namespace(&self.database)
            .server(&self.host, self.port)
            .run_with(
                sqlx::query_as(SELECT_ORDER)
                    .bind(key)
                    .fetch_optional(&self.pool),
                sqlx_failure,
            )
            .await
            .map_err(|source| StoreError {
                server: self.server(),
                source,
            })?;
        Ok(row.map(|(_, status)| Order { id, status }))
    }
}

/// How a sqlx operation failed: the SQLSTATE when the server answered one (`42P01`, as both
/// `db.response.status_code` and `error.type`), else the kind of failure (`pool_timed_out`,
/// `io`, …). Never the message, which can hold values.
pub fn sqlx_failure(error: &sqlx::Error) -> DbFailure {
    if let Some(code) = error.as_database_error().and_then(|e| e.code()) {
        return DbFailure::status_code(code.into_owned());
    }
    DbFailure::from(match error {
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "sqlx_error",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_store_holds_the_seeded_orders_only() {
        let store = OrderStore::InMemory;
        assert_eq!(store.find(7).await.unwrap().unwrap().status, "shipped");
        assert_eq!(store.find(0).await.unwrap(), None);
        assert_eq!(store.find(SEEDED_ORDERS + 1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_database_url_that_is_not_postgres_is_refused_naming_the_variable() {
        let error = OrderStore::postgres("mysql://u:s3cret@db/x")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("DATABASE_URL"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
