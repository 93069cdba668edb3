//! The check of Alertmanager: the Watchdog (the always-firing alert of
//! `stack/prometheus/rules/watchdog.yml`) is there, so the path Prometheus → Alertmanager works.

use std::time::Instant;

use super::poll::{poll, wait_ready};
use super::report::{Check, Finding, Reason};
use crate::backends::alertmanager::Alertmanager;
use crate::backends::{Backend, Http};

/// The always-firing alert.
pub const WATCHDOG: &str = "Watchdog";
/// The name of the check.
pub const WATCHDOG_CHECK: &str = "Watchdog alert present";

/// Every Alertmanager check, polled until `deadline`.
pub async fn checks(alertmanager: &Alertmanager, http: &Http, deadline: Instant) -> Vec<Check> {
    if let Err(finding) = wait_ready(deadline, || alertmanager.ready(http)).await {
        return vec![Check::fail(Backend::Alertmanager, WATCHDOG_CHECK, finding)];
    }
    let (outcome, visible) = poll(deadline, || async {
        let alerts = alertmanager.alerts(http, WATCHDOG).await?;
        match alerts.iter().find(|a| a.state == "active") {
            Some(_) => Ok("the always-firing Watchdog is active: Prometheus's alerts arrive".to_string()),
            None if !alerts.is_empty() => Err(Finding::new(
                Reason::Incomplete,
                format!(
                    "the Watchdog is there but {} (silenced or inhibited): it must stay active to prove the path",
                    alerts[0].state
                ),
            )),
            None => Err(Finding::new(
                Reason::Absent,
                "no Watchdog alert: Prometheus does not load stack/prometheus/rules/watchdog.yml, or does not send to this Alertmanager",
            )),
        }
    })
    .await;
    vec![Check::from_outcome(
        Backend::Alertmanager,
        WATCHDOG_CHECK,
        outcome,
        visible,
    )]
}
