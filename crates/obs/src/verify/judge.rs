//! The trace judgement `obs verify` applies to every trace store (and the demo to what its
//! receiver got): every expected span, one root, no orphans, the target's services, sane
//! timestamps. Linear in the spans (ids are looked up in a set).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::probe::Probe;
use super::report::{Finding, Outcome, Reason};
use crate::backends::Trace;

/// Judges a trace: every expected span, no orphans, sane timestamps.
pub fn judge_trace(
    trace: &Trace,
    probe: &Probe,
    target_services: &[String],
    max_skew: Duration,
) -> Outcome {
    let spans: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.trace_id == probe.trace_id)
        .collect();
    let missing: Vec<String> = probe
        .expected_spans
        .iter()
        .filter(|(service, name)| {
            !spans
                .iter()
                .any(|s| &s.service == service && &s.name == name)
        })
        .map(|(service, name)| format!("{service}/{name:?}"))
        .collect();
    if !missing.is_empty() {
        return Err(Finding::new(
            Reason::Incomplete,
            format!(
                "trace present but spans missing: {} (it has {})",
                missing.join(", "),
                spans
                    .iter()
                    .map(|s| format!("{}/{:?}", s.service, s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let orphans: Vec<String> = spans
        .iter()
        .filter(|s| {
            s.parent_span_id
                .as_deref()
                .is_some_and(|p| !ids.contains(p))
        })
        .map(|s| {
            format!(
                "{}/{:?} (parent {} not in the trace)",
                s.service,
                s.name,
                s.parent_span_id.clone().unwrap_or_default()
            )
        })
        .collect();
    if !orphans.is_empty() {
        return Err(Finding::new(
            Reason::PropagationBroken,
            format!(
                "propagation broken: orphaned spans {} — the hop before them did not pass traceparent, or its span was not exported",
                orphans.join(", ")
            ),
        ));
    }
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    if roots.len() != 1 {
        return Err(Finding::new(
            Reason::PropagationBroken,
            format!(
                "propagation broken: {} root spans ({}) — a hop started its own trace instead of continuing ours",
                roots.len(),
                roots
                    .iter()
                    .map(|s| format!("{}/{:?}", s.service, s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    let missing_services: Vec<&String> = target_services
        .iter()
        .filter(|s| !services.contains(s.as_str()))
        .collect();
    if !missing_services.is_empty() {
        return Err(Finding::new(
            Reason::Incomplete,
            format!(
                "the target's services are missing from the trace: {} (present: {}) — they did not continue the probe's traceparent or did not export",
                missing_services
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                services.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let to_ns = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    };
    let skew = max_skew.as_nanos();
    let (earliest, latest) = (
        to_ns(probe.started).saturating_sub(skew),
        to_ns(probe.finished).saturating_add(skew),
    );
    let skewed: Vec<String> = spans
        .iter()
        .filter(|s| s.end_ns < s.start_ns || s.start_ns < earliest || s.start_ns > latest)
        .map(|s| format!("{}/{:?}", s.service, s.name))
        .collect();
    if !skewed.is_empty() {
        return Err(Finding::new(
            Reason::ClockSkew,
            format!(
                "timestamps off by more than {max_skew:?} from obs's clock (clock skew on that host?): {}",
                skewed.join(", ")
            ),
        ));
    }
    Ok(format!(
        "{} spans from {}, every parent present",
        spans.len(),
        services.iter().copied().collect::<Vec<_>>().join(", ")
    ))
}
