//! Grafana: the HTTP client, the provisioning files, provisioning itself, and the links between
//! the stores as Grafana follows them.

pub mod client;
pub mod correlations;
pub mod files;
pub mod provision;
