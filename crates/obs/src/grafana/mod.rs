//! Grafana: the HTTP client, the provisioning files, and provisioning itself.

pub mod client;
pub mod files;
pub mod provision;
