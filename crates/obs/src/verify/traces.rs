//! The checks of a trace store ([`TraceStore`]: Tempo, Jaeger): the probe's trace by id, judged
//! complete, and, where the store has a search users rely on, found by search.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::judge::judge_trace;
use super::poll::{poll, wait_ready};
use super::probe::Probe;
use super::report::{Check, Finding, Reason};
use crate::backends::{Http, Lookup, TraceStore, Window};

/// The name of the trace-by-id check.
pub const BY_ID: &str = "trace by id";
/// The name of the search check.
pub const BY_SEARCH: &str = "TraceQL search";

fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every check of `store`, polled until `deadline`.
pub async fn checks<S: TraceStore>(
    store: &S,
    http: &Http,
    probe: &Probe,
    target_services: &[String],
    max_clock_skew: std::time::Duration,
    deadline: Instant,
) -> Vec<Check> {
    let backend = store.backend();
    if let Err(finding) = wait_ready(deadline, || store.ready(http)).await {
        return vec![Check::fail(backend, BY_ID, finding)];
    }
    let (outcome, visible) = poll(deadline, || async {
        match store.trace(http, &probe.trace_id).await {
            Lookup::Found(trace) => judge_trace(&trace, probe, target_services, max_clock_skew),
            Lookup::Absent(why) => Err(Finding::new(
                Reason::Absent,
                format!("reachable but trace absent ({why})"),
            )),
            Lookup::Failed(e) => Err(e.into()),
        }
    })
    .await;
    let mut checks = vec![Check::from_outcome(backend, BY_ID, outcome, visible)];
    if let Some(query) = store.search_query(&probe.run_id) {
        let window = Window {
            start_s: unix_s(probe.started).saturating_sub(300),
            end_s: unix_s(SystemTime::now()).saturating_add(3600),
        };
        let (outcome, visible) = poll(deadline, || async {
            match store.search(http, &query, &probe.trace_id, window).await {
                Ok(true) => Ok(format!("found by {query}")),
                Ok(false) => Err(Finding::new(
                    Reason::Absent,
                    format!(
                        "fetchable by id but not found by TraceQL {query} (search indexes lag; users find traces by search)"
                    ),
                )),
                Err(e) => Err(e.into()),
            }
        })
        .await;
        checks.push(Check::from_outcome(backend, BY_SEARCH, outcome, visible));
    }
    checks
}
