//! Database client spans: a CLIENT span per operation on Postgres, Redis or any store, named
//! and attributed as the database semantic conventions say, and the
//! `db.client.operation.duration` histogram.
//!
//! It needs no driver crate: describe the operation ([`DbOperation::sql`] for SQL, whose text
//! is recorded only with its literals stripped, never its parameters; [`DbOperation::command`]
//! for command stores such as Redis, recorded by command name only), then run the driver's
//! future inside it with [`DbOperation::run`]. An `Err` marks the span and the metric failed
//! (`error.type`: the error's type name, or the class you give with [`DbOperation::run_with`]).
//!
//! ```
//! use platform_telemetry::db::DbOperation;
//!
//! # async fn example() -> Result<(), std::io::Error> {
//! // With sqlx: `.run(sqlx::query_as::<_, Order>(SQL).bind(id).fetch_optional(&pool))`.
//! let found: Option<i64> = DbOperation::sql("postgresql", "SELECT id FROM orders WHERE id = $1")
//!     .namespace("shop")
//!     .server("db", 5432)
//!     .run(async { Ok::<_, std::io::Error>(Some(7)) })
//!     .await?;
//! // With redis: `.run(conn.get::<_, Option<String>>(key))`.
//! let cached: Option<String> = DbOperation::command("redis", "GET")
//!     .server("cache", 6379)
//!     .run(async { Ok::<_, std::io::Error>(None) })
//!     .await?;
//! # let _ = (found, cached); Ok(()) }
//! ```
//!
//! | Attribute | From |
//! |---|---|
//! | `db.system.name` | the first argument (`postgresql`, `redis`, …) |
//! | `db.query.summary` (also the span name) | the SQL's operations and tables (`SELECT orders`) |
//! | `db.operation.name` | the first SQL operation, or the command (`GET`) |
//! | `db.collection.name` | the table, when the SQL names exactly one; or [`DbOperation::collection`] |
//! | `db.namespace` | [`DbOperation::namespace`] (the database) |
//! | `db.query.text` | the SQL with `?` for every literal (spans only, never metrics) |
//! | `server.address`, `server.port` | [`DbOperation::server`] |
//! | `error.type` | on failure |
//! | `db.response.status_code` | on failure, when the classifier returns [`DbFailure::status_code`] |

mod describe;
mod failure;
mod metrics;
mod sql;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};

pub use self::failure::DbFailure;
pub use self::metrics::CLIENT_OPERATION_DURATION;
pub(crate) use self::metrics::DbInstruments;
use self::metrics::DbOutcome;
pub use self::sql::{MAX_QUERY_BYTES, MAX_SUMMARY_BYTES, SanitizedSql, sanitize_sql};
use crate::semconv::attr;
use crate::telemetry::current_db;

/// The longest command name, namespace, collection or server address recorded.
const MAX_NAME_BYTES: usize = 255;

/// One database operation to trace: what it is, on which store. Build it, then
/// [`run`](Self::run) the driver's future in it (or [`start`](Self::start) a span by hand).
#[derive(Clone, Debug)]
pub struct DbOperation<'a> {
    system: &'static str,
    query: Query<'a>,
    namespace: Option<&'a str>,
    collection: Option<&'a str>,
    server: Option<(&'a str, u16)>,
}

#[derive(Clone, Debug)]
enum Query<'a> {
    Sql(&'a str),
    Command(&'a str),
}

impl<'a> DbOperation<'a> {
    /// A SQL statement on `system` (`"postgresql"`, `"mysql"`, `"sqlite"`, …). Its text is
    /// recorded with every literal replaced by `?` ([`sanitize_sql`]); the values bound to its
    /// placeholders are never seen.
    pub fn sql(system: &'static str, query: &'a str) -> Self {
        Self {
            system,
            query: Query::Sql(query),
            namespace: None,
            collection: None,
            server: None,
        }
    }

    /// A command on a command store (`"redis"`, …): `command` is its name (`GET`, `HSET`),
    /// never its arguments, which hold keys and values.
    pub fn command(system: &'static str, command: &'a str) -> Self {
        Self {
            system,
            query: Query::Command(command),
            namespace: None,
            collection: None,
            server: None,
        }
    }

    /// The database (`db.namespace`): the Postgres database name, the Redis database index.
    pub fn namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// The collection (`db.collection.name`) when the query does not say it, or a command
    /// store's key space; for SQL the table is read from the statement when there is one.
    pub fn collection(mut self, collection: &'a str) -> Self {
        self.collection = Some(collection);
        self
    }

    /// The server (`server.address`, `server.port`).
    pub fn server(mut self, address: &'a str, port: u16) -> Self {
        self.server = Some((address, port));
        self
    }

    /// Runs `operation` (a driver's future) inside the span; an `Err` marks the span and the
    /// metric failed with the error's type name as `error.type`.
    pub async fn run<T, E, F>(self, operation: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.run_with(operation, |_| short_type_name::<E>()).await
    }

    /// [`run`](Self::run), with `classify` naming the class of a failure: a low-cardinality
    /// string such as `"unique_violation"` (`error.type`), or a [`DbFailure`] that also carries
    /// the database's status code (`DbFailure::status_code(sqlstate)`); never a message.
    pub async fn run_with<T, E, F, C>(
        self,
        operation: F,
        classify: impl FnOnce(&E) -> C,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        C: Into<DbFailure>,
    {
        use opentelemetry::context::FutureExt as _;
        // No DbSpan (and no shared outcome to allocate): the span and its measurement live here.
        let (cx, outcome) = self.begin();
        let result = operation.with_context(cx.clone()).await;
        if let Err(error) = &result {
            mark_failed(&cx, outcome.as_ref(), classify(error).into());
        }
        drop(outcome);
        cx.span().end();
        result
    }

    /// Starts the CLIENT span (a child of the current context) and its metric, for a driver
    /// this module cannot wrap; end it with [`DbSpan::end`].
    pub fn start(self) -> DbSpan {
        let (cx, outcome) = self.begin();
        DbSpan {
            cx,
            outcome: outcome.map(Arc::new),
        }
    }

    /// The span's context and the measurement recorded when the outcome is dropped (none
    /// without a telemetry instance).
    fn begin(self) -> (Context, Option<DbOutcome>) {
        let parent = Context::current();
        let Some((tracer, instruments)) = current_db() else {
            return (parent, None);
        };
        let recorded = describe::recorded(&self);
        let cx = match tracer {
            Some(tracer) => {
                // Name and attributes at creation: the semantic conventions ask for them there,
                // so that a sampler can decide on them.
                let builder = tracer
                    .span_builder(recorded.span_name.clone())
                    .with_kind(SpanKind::Client)
                    .with_attributes(recorded.span_attributes());
                crate::traces::start_child(&tracer, builder, &parent, |_| {})
            }
            None => parent,
        };
        let outcome = DbOutcome::new(instruments, recorded, cx.span().span_context().clone());
        (cx, Some(outcome))
    }
}

/// Span status error, `error.type` and `db.response.status_code` on the span, and on the
/// measurement when there is one.
fn mark_failed(cx: &Context, outcome: Option<&DbOutcome>, failure: DbFailure) {
    let span = cx.span();
    let (error_type, code) = failure.clone().into_parts();
    span.set_status(Status::error(error_type.clone()));
    span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type));
    if let Some(code) = code {
        span.set_attribute(KeyValue::new(attr::DB_RESPONSE_STATUS_CODE, code));
    }
    if let Some(outcome) = outcome {
        outcome.fail(failure);
    }
}

/// The last path segment of a type's name (`sqlx_core::error::Error` → `Error`), with its
/// generics dropped: a low-cardinality `error.type`.
fn short_type_name<E>() -> Cow<'static, str> {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    let module = base.rsplit("::").nth(1);
    let name = base.rsplit("::").next().unwrap_or(base);
    match module {
        // `Error` alone says little: keep its crate's module (`sqlx_core::error::Error` →
        // `error::Error` is no better, so the crate: `sqlx_core.Error`).
        Some(_) if name == "Error" => {
            let krate = base.split("::").next().unwrap_or(base);
            Cow::Owned(format!("{krate}.{name}"))
        }
        _ => Cow::Owned(name.to_string()),
    }
}

/// A database CLIENT span and the `db.client.operation.duration` it records when it ends.
#[derive(Clone, Debug)]
pub struct DbSpan {
    cx: Context,
    outcome: Option<Arc<DbOutcome>>,
}

impl DbSpan {
    /// Marks the operation failed: span status error, `error.type` on the span and the metric.
    pub fn set_error(&self, failure: impl Into<DbFailure>) {
        mark_failed(&self.cx, self.outcome.as_deref(), failure.into());
    }

    /// The OpenTelemetry context holding the span (to run the driver's future in).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Ends the span and records the duration (once, also across clones).
    pub fn end(mut self) {
        drop(self.outcome.take());
        self.cx.span().end();
    }
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn error_types_are_short_type_names() {
        assert_eq!(short_type_name::<std::io::Error>(), "std.Error");
        assert_eq!(
            short_type_name::<std::num::ParseIntError>(),
            "ParseIntError"
        );
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec");
    }
}
