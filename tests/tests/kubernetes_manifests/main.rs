#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deploy/kubernetes/` (the kustomize base and the multi-tenant overlay) holds together, checked
//! without a cluster:
//!
//! - `schemas`: both render with `kubectl kustomize` (kustomize v5), and every object validates
//!   against the Kubernetes 1.37 API schemas with `kubernetes-validate --strict`; the Operator's
//!   `Instrumentation` (a CRD the core schemas do not hold) is checked against its documented
//!   fields.
//! - `pod_security`: every pod meets the `restricted` Pod Security Standard the namespace
//!   enforces.
//! - `sources`: the Grafana ConfigMaps hold exactly the repository's provisioning files and
//!   dashboards (one source of truth), obs mounts them where its settings say, and
//!   `obs provision --check` accepts them in the layout Kubernetes mounts a ConfigMap with.
//! - `obs_settings`: every variable set for obs is one it reads (`obs sidecar --help` or the
//!   telemetry library), secrets reach it as mounted files only, every `*_FILE` names a key of a mounted Secret,
//!   probes and ports match `OBS_LISTEN`, and obs, with exactly the rendered environment and
//!   mounts, serves `/healthz` and becomes ready (`/readyz`) once it has provisioned Grafana.
//! - `provisioning`: obs, with exactly its rendered settings and mounts, provisions the Grafana
//!   API double from the base and then the overlay, each datasource with its store's tenant and
//!   the mounted credentials.
//! - `drift`: the example services are configured as in compose, deploy/README.md's table of
//!   obs settings is the overlay's obs.env, and obs's probe takes the services' path.
//! - `examples`: the example services, run with exactly their rendered environment (downward API
//!   resolved as the kubelet does, and in the overlay the Operator's SDK injection applied), send
//!   telemetry whose resource carries the pod's `k8s.*` attributes; `operator` models the
//!   Operator's webhook for that.
//!
//! The tests fail, never skip, when `kubectl` or `kubernetes-validate` is missing:
//! `scripts/test.sh` installs them.

#[path = "../support/mod.rs"]
mod support;

mod drift;
mod examples;
mod kube;
mod mounts;
mod obs_binary;
mod obs_settings;
mod operator;
mod pod_env;
mod pod_security;
mod provisioning;
mod schemas;
mod sources;
