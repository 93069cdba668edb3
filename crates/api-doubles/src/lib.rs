//! HTTP doubles of the upstream services `obs` talks to, for tests.
//!
//! Each double is a real socket server on `127.0.0.1` (the binary under test is a separate
//! process), follows one stated version of the upstream's documented HTTP API, and never accepts
//! what the real server would reject. Every double runs on its own thread and runtime, so it can
//! be started from synchronous tests and from `#[tokio::test]` alike; dropping it stops it.
//!
//! - [`grafana`]: Grafana 12's HTTP API for health, data sources, folders, dashboards and search.

pub mod grafana;

use std::net::TcpListener;

/// A port on `127.0.0.1` that was free a moment ago, for a double started later with
/// `start_on` (for example "Grafana is slow to start": the client is pointed at the port first,
/// and connections are refused until the double starts).
pub fn reserve_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
