#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The stack as code — `docker-compose.yml`, `collector/`, `stack/`, the `Dockerfile`s, the
//! `Makefile`, `.env.example` and `stack/README.md` — holds together, checked without a Docker
//! engine: every claim the compose file makes about another file (a config it mounts, a port it
//! calls, a binary its healthcheck runs) is read back from that file.
//!
//! What "listens" where is derived from each component's own config: the collector's receivers
//! and extensions, Tempo's, Loki's and Jaeger's server and receiver blocks, Prometheus's and NATS's
//! command lines, and the services' port variables. Every endpoint a service or component is
//! configured with must name a compose service and a port that service listens on, with the
//! protocol the caller speaks.
//!
//! The metric contract of DESIGN.md against a live scrape is its own test,
//! `dashboards_on_a_live_prometheus`.
//!
//! One module per subject; `support` reads files and the compose file, `listeners` derives who
//! listens where.

mod backends;
mod collector;
mod compose;
mod dockerfile;
mod endpoints;
mod listeners;
mod makefile;
mod prometheus;
mod stack_readme;
mod support;
