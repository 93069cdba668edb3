//! Grafana: the HTTP client, its typed API, the provisioning files, provisioning itself, and
//! the links between the stores as Grafana follows them.

pub mod api;
pub mod client;
pub mod correlations;
pub mod files;
pub mod provision;
pub mod secure;
pub mod store_connections;
