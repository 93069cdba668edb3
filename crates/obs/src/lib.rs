//! `obs`: the observability sidecar. This library target lets tests drive what the binary does.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod backends;
pub mod cli;
pub mod connection;
pub mod exit_code;
pub mod grafana;
pub mod redact;
pub mod run;
pub mod sidecar;
pub mod verify;
