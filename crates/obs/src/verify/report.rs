//! What a verification found: one [`Check`] per question, each with a [`Status`] and, when it
//! did not pass, a [`Reason`] a program can act on and a detail a person can read; the
//! [`Report`] renders as a table or as JSON.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::backends::{Backend, Denial, StoreError};
use crate::redact;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Proven.
    Pass,
    /// Not proven before the deadline.
    Fail,
    /// Not run; the reason says why.
    Skipped,
}

/// Why a check did not pass, in a word a program can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The store did not answer (refused, unreachable, timed out).
    Unreachable,
    /// The store answered that it is not ready (still starting).
    NotReady,
    /// The store answered with an error, or with something its API does not document.
    StoreError,
    /// The store answered, without the data.
    Absent,
    /// The data is there but incomplete (spans or services missing).
    Incomplete,
    /// A hop did not continue the trace (orphans, extra roots).
    PropagationBroken,
    /// Timestamps too far from obs's clock.
    ClockSkew,
    /// A link Grafana would follow finds nothing.
    LinkBroken,
    /// The OTLP endpoint or the collector refused or dropped the probe's data.
    Dropped,
    /// Not asked to check this (its flag was not given).
    NotRequested,
    /// Could not be checked: a file it needs is missing, or what it checks is absent.
    CannotCheck,
    /// The store answered 401: obs sent no credentials, or ones it rejects.
    Unauthorized,
    /// The store answered 403: the credentials (or the tenant) may not do this.
    Forbidden,
    /// The store is multi-tenant and saw no tenant ("no org id").
    NoTenant,
}

impl Reason {
    /// True for the refusals a setting fixes (401, 403, no tenant): `obs verify` exits 4.
    pub fn is_denial(self) -> bool {
        matches!(
            self,
            Reason::Unauthorized | Reason::Forbidden | Reason::NoTenant
        )
    }
}

/// Why a check did not pass: the reason and the diagnosis in plain words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// In a word.
    pub reason: Reason,
    /// In plain words, with the fix where there is one.
    pub detail: String,
}

impl Finding {
    /// A finding.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<StoreError> for Finding {
    fn from(e: StoreError) -> Self {
        let reason = match e.denial() {
            Some(Denial::Unauthorized) => Reason::Unauthorized,
            Some(Denial::Forbidden) => Reason::Forbidden,
            Some(Denial::NoTenant) => Reason::NoTenant,
            None if e.is_unreachable() => Reason::Unreachable,
            None => Reason::StoreError,
        };
        Finding::new(reason, e.to_string())
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// What a polled check found: the detail of a pass, or why not.
pub type Outcome = Result<String, Finding>;

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What the check is about.
    pub backend: Backend,
    /// What was checked.
    pub check: String,
    /// The outcome.
    pub status: Status,
    /// Why it did not pass (`null` on a pass).
    pub reason: Option<Reason>,
    /// Seconds from the probe's flush until the data was visible.
    pub visible_after_seconds: Option<f64>,
    /// What was found, or the diagnosis in plain words. Never holds a credential.
    pub detail: String,
}

impl Check {
    /// A passed check.
    pub fn pass(
        backend: Backend,
        check: &str,
        visible: Option<Duration>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(backend, check, Status::Pass, None, visible, detail.into())
    }

    /// A failed check.
    pub fn fail(backend: Backend, check: &str, finding: Finding) -> Self {
        Self::new(
            backend,
            check,
            Status::Fail,
            Some(finding.reason),
            None,
            finding.detail,
        )
    }

    /// A check that did not run, and why.
    pub fn skipped(backend: Backend, check: &str, finding: Finding) -> Self {
        Self::new(
            backend,
            check,
            Status::Skipped,
            Some(finding.reason),
            None,
            finding.detail,
        )
    }

    /// A polled outcome: a pass with the time it took to be visible, or a failure.
    pub fn from_outcome(
        backend: Backend,
        check: &str,
        outcome: Outcome,
        visible: Duration,
    ) -> Self {
        match outcome {
            Ok(detail) => Self::pass(backend, check, Some(visible), detail),
            Err(finding) => Self::fail(backend, check, finding),
        }
    }

    fn new(
        backend: Backend,
        check: &str,
        status: Status,
        reason: Option<Reason>,
        visible: Option<Duration>,
        detail: String,
    ) -> Self {
        Self {
            backend,
            check: check.to_string(),
            status,
            reason,
            visible_after_seconds: visible.map(|d| (d.as_secs_f64() * 100.0).round() / 100.0),
            detail: redact::text(&detail),
        }
    }
}

/// The whole report (`--format json` prints it; schema in `obs verify --help`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The probe's trace id, to look it up by hand.
    pub trace_id: String,
    /// The probe's run id (span attribute `obs.probe.run`).
    pub run_id: String,
    /// True when every check that ran passed and at least one store was checked.
    pub passed: bool,
    /// The verdict in one sentence: what was proven, and what was not checked.
    pub verdict: String,
    /// Seconds the whole verification took.
    pub elapsed_seconds: f64,
    /// Every check.
    pub checks: Vec<Check>,
}

impl Report {
    /// The report of `checks`; the verdict claims only what was checked.
    pub fn new(trace_id: String, run_id: String, elapsed: Duration, checks: Vec<Check>) -> Self {
        let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
        let stores: Vec<Backend> = {
            let mut ran: Vec<Backend> = checks
                .iter()
                .filter(|c| c.status != Status::Skipped)
                .map(|c| c.backend)
                .filter(|b| {
                    matches!(
                        b,
                        Backend::Tempo | Backend::Jaeger | Backend::Loki | Backend::Prometheus
                    )
                })
                .collect();
            ran.dedup();
            ran
        };
        let skipped = checks
            .iter()
            .filter(|c| c.status == Status::Skipped)
            .count();
        let passed = failed == 0 && !stores.is_empty();
        let checked = stores
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let verdict = if failed > 0 {
            format!("Telemetry is broken: {failed} check(s) failed, see the FAIL lines")
        } else if stores.is_empty() {
            "Only the OTLP export was checked: no store was asked, so nothing proves the data arrived"
                .to_string()
        } else if skipped > 0 {
            format!(
                "Telemetry reaches {checked}: every check that ran passed ({skipped} not run, see the skip lines)"
            )
        } else {
            format!("Telemetry reaches {checked}: every check passed")
        };
        Self {
            trace_id,
            run_id,
            passed,
            verdict,
            elapsed_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            checks,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Probe trace {} (run {})", self.trace_id, self.run_id)?;
        writeln!(
            f,
            "  {:<11} {:<34} {:<7} {:>8}  detail",
            "backend", "check", "status", "visible"
        )?;
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            let visible = c
                .visible_after_seconds
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_default();
            writeln!(
                f,
                "  {:<11} {:<34} {:<7} {:>8}  {}",
                c.backend.as_str(),
                c.check,
                status,
                visible,
                c.detail
            )?;
        }
        writeln!(f, "{} in {:.1} s", self.verdict, self.elapsed_seconds)
    }
}
