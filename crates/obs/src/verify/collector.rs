//! The collector check: what its counters did while the probe ran, naming the component that
//! dropped data.

use crate::backends::Backend;
use crate::backends::collector::Counters;

use super::report::{Check, Finding, Reason};

/// The name of the check.
pub const PIPELINE_COUNTERS: &str = "pipeline counters";

/// What changed between `before` and `after`: accepted, sent, and failed per component.
pub fn check(before: &Counters, after: &Counters) -> Check {
    let delta = |key: &(String, String)| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    let mut failed = Vec::new();
    let mut moved = Vec::new();
    for key in after.keys() {
        let d = delta(key);
        if d <= 0.0 {
            continue;
        }
        let (name, component) = key;
        if name.contains("send_failed")
            || name.contains("refused")
            || name.contains("enqueue_failed")
        {
            failed.push(format!("{component} ({name} +{d})"));
        } else if name.contains("accepted") || name.contains("sent") {
            moved.push(format!(
                "{component} {} +{d}",
                name.trim_start_matches("otelcol_")
            ));
        }
    }
    if !failed.is_empty() {
        Check::fail(
            Backend::Collector,
            PIPELINE_COUNTERS,
            Finding::new(
                Reason::Dropped,
                format!("the collector dropped probe data at: {}", failed.join(", ")),
            ),
        )
    } else if moved.is_empty() {
        Check::skipped(
            Backend::Collector,
            PIPELINE_COUNTERS,
            Finding::new(
                Reason::CannotCheck,
                "no counter moved while the probe ran: the probe did not go through this collector (check --otlp-endpoint)",
            ),
        )
    } else {
        Check::pass(
            Backend::Collector,
            PIPELINE_COUNTERS,
            None,
            moved.join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::collector::counters;
    use crate::verify::report::Status;

    #[test]
    fn the_collector_check_names_the_exporter_that_dropped_data() {
        let before = counters(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 10\n\
             otelcol_exporter_sent_spans_total{exporter=\"otlp/tempo\"} 10\n\
             otelcol_exporter_send_failed_spans_total{exporter=\"otlp/jaeger\"} 0\n",
        );
        let after = counters(
            "otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"} 13\n\
             otelcol_exporter_sent_spans_total{exporter=\"otlp/tempo\"} 13\n\
             otelcol_exporter_send_failed_spans_total{exporter=\"otlp/jaeger\"} 3\n",
        );
        let c = check(&before, &after);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.reason, Some(Reason::Dropped));
        assert!(
            c.detail.contains("otlp/jaeger") && !c.detail.contains("otlp/tempo"),
            "{}",
            c.detail
        );
        let moved = check(
            &before,
            &after
                .iter()
                .filter(|((n, _), _)| !n.contains("failed"))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        );
        assert_eq!(moved.status, Status::Pass, "{}", moved.detail);
        let idle = check(&before, &before);
        assert_eq!(
            idle.status,
            Status::Skipped,
            "nothing moved: the collector proved nothing"
        );
    }
}
