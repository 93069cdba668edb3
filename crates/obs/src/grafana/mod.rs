//! Grafana: the HTTP client, its typed API, the provisioning files, and provisioning itself.

pub mod api;
pub mod client;
pub mod files;
pub mod provision;
pub mod secure;
