//! HTTP doubles of the upstream services `obs` talks to, for tests.
//!
//! Each double is a real socket server on `127.0.0.1` (the binary under test is a separate
//! process), follows one stated version of the upstream's documented HTTP API, and never accepts
//! what the real server would reject. Every double runs on its own thread and runtime, so it can
//! be started from synchronous tests and from `#[tokio::test]` alike; dropping it stops it.
//!
//! - [`grafana`]: Grafana 12's HTTP API for health, data sources, folders, dashboards and search.
//! - [`tempo`]: Tempo 3's trace-by-id (v1, v2), TraceQL search and readiness, fed by real OTLP.
//! - [`loki`]: Loki 3's native OTLP intake, LogQL `query_range`, labels and readiness.
//! - [`jaeger`]: Jaeger v2's `/api/v3` and legacy `/api/traces`, its health check, fed by OTLP.
//! - [`collector`]: one OTLP intake fanning traces out to Tempo and Jaeger and logs to Loki.
//!
//! The trace and log stores run on one chassis (`chassis/`: thread and runtime, loopback
//! listeners that go down and come back, OTLP intake) and share one set of fault switches,
//! [`FaultSwitches`]: slow (`visible_after`), not ready (`set_ready`, `not_ready_for`), down
//! (`set_down`: ports closed, exports refused); each can also be made forgetful (`drop_spans`,
//! `drop_logs`, `forget_trace`). Every double's `start` fails with [`Error`] (the Grafana double
//! still has its own `grafana::DoubleError`). A query a double does not understand, or that the
//! upstream would refuse, answers 400 with the upstream's error body, never a guess.
//!
//! # Production reach: tenants, a gateway, TLS
//!
//! Tempo and Loki start as today with `start()` / `start_on(port)` (single-tenant, plain HTTP),
//! or through a builder that adds, in any combination:
//!
//! ```no_run
//! use api_doubles::collector::{CollectorDouble, TenantHeader};
//! use api_doubles::loki::LokiDouble;
//! use api_doubles::tempo::TempoDouble;
//! use api_doubles::tls::{TestCa, TlsMode};
//! let ca = TestCa::generate()?; // one CA for every double: ca.ca_path(), ca.client_cert_path()…
//! let tempo = TempoDouble::builder()
//!     .multi_tenant() // X-Scope-OrgID required (401 / 503 `no org id`), tenants kept apart
//!     .require_bearer("t0k") // an auth gateway in front: 401 + WWW-Authenticate without it
//!     .tls_with(TlsMode::ClientCert, &ca) // HTTPS, client certificate required (mTLS)
//!     .path_prefix("/tempo") // behind a gateway under /tempo; 404 outside
//!     .start()?;
//! let loki = LokiDouble::builder().multi_tenant().require_basic("u", "p").start()?;
//! // The collector passes each export's X-Scope-OrgID on (headers_setter `from_context`), or
//! // sends a fixed one (exporter `headers:`).
//! let collector = CollectorDouble::builder()
//!     .tempo(&tempo)
//!     .loki(&loki)
//!     .tenant_header(TenantHeader::FromRequest)
//!     .start()?;
//! # Ok::<(), api_doubles::Error>(())
//! ```
//!
//! - [`tenancy`]: multi-tenancy as Tempo (`multitenancy_enabled`) and Loki (`auth_enabled`)
//!   enforce it, following the recordings `upstream-samples/*_mt_*`; off, Tempo's tenant is
//!   `single-tenant` and Loki's `fake`. Jaeger has no `X-Scope-OrgID` tenancy: its double has
//!   none.
//! - [`gateway`]: a model of the authenticating reverse proxy (nginx, Grafana Cloud) in front
//!   of a double (Tempo and Loki have no authentication of their own): bearer or basic
//!   credentials, 401 with `WWW-Authenticate`, 403 for a known but forbidden credential, and a
//!   path prefix.
//! - [`tls`]: HTTPS with a test CA ([`tls::TestCa`]: PEMs and files, a client certificate, and
//!   an unrelated CA's client), optionally requiring a client certificate.

mod chassis;
pub mod collector;
mod common;
pub mod gateway;
pub mod grafana;
pub mod jaeger;
mod lexer;
pub mod loki;
mod otlp_json;
mod setup;
pub mod tempo;
pub mod tenancy;
pub mod tls;
mod trace_store;

use std::net::TcpListener;

pub use chassis::{Error, FaultSwitches, Faults};

/// A port on `127.0.0.1` that was free a moment ago, for a double started later with
/// `start_on` (for example "Grafana is slow to start": the client is pointed at the port first,
/// and connections are refused until the double starts).
pub fn reserve_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A response recorded from a real upstream server, from `crates/api-doubles/upstream-samples/`
/// (a copy of the team's `shared/upstream-samples/`, kept in the repository so a clone anywhere
/// can run the tests; see its README): `.json` files are the body; `.txt` files are the body, then a line `HTTP <status>`.
///
/// # Panics
/// When the file cannot be read: a test fixture is missing.
pub fn sample(name: &str) -> String {
    let path = format!("{}/upstream-samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read sample {path}: {e}"))
}
