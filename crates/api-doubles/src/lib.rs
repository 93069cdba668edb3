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
//! The trace and log stores run on one chassis (`chassis.rs`: thread and runtime, loopback
//! listeners that go down and come back, OTLP intake) and share one set of fault switches,
//! [`FaultSwitches`]: slow (`visible_after`), not ready (`set_ready`, `not_ready_for`), down
//! (`set_down`: ports closed, exports refused); each can also be made forgetful (`drop_spans`,
//! `drop_logs`, `forget_trace`). Every double's `start` fails with [`Error`] (the Grafana double
//! still has its own `grafana::DoubleError`). A query a double does not understand, or that the
//! upstream would refuse, answers 400 with the upstream's error body, never a guess.

mod chassis;
pub mod collector;
mod common;
pub mod grafana;
pub mod jaeger;
mod lexer;
pub mod loki;
mod otlp_json;
pub mod tempo;
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
