//! Waiting for data: retry with backoff until a check passes or the deadline passes, and tell
//! "down" from "not ready yet".

use std::future::Future;
use std::time::{Duration, Instant};

use super::report::{Finding, Outcome, Reason};
use crate::backends::Readiness;

/// Retries `attempt` with backoff (200 ms doubling to 3 s) until it passes or the deadline
/// passes; returns the last outcome and the time it took. A refusal (401, 403, no tenant) ends
/// the polling at once: only a setting fixes it.
pub async fn poll<F, Fut>(deadline: Instant, mut attempt: F) -> (Outcome, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let result = attempt().await;
        let denied = result.as_ref().is_err_and(|f| f.reason.is_denial());
        if result.is_ok() || denied || Instant::now() + delay >= deadline {
            return (result, started.elapsed());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// Waits for a store to be ready; the finding says whether it was down or still starting.
pub async fn wait_ready<F, Fut>(deadline: Instant, mut probe: F) -> Result<(), Finding>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Readiness>,
{
    let (result, _) = poll(deadline, || {
        let f = probe();
        async move {
            match f.await {
                Readiness::Ready => Ok(String::new()),
                Readiness::NotReady(why) => Err(Finding::new(
                    Reason::NotReady,
                    format!("reachable but not ready: {why}"),
                )),
                Readiness::Unreachable(why) => Err(Finding::new(
                    Reason::Unreachable,
                    format!("unreachable: {why}"),
                )),
                Readiness::Denied(why) => Err(Finding::from(why)),
            }
        }
    })
    .await;
    result.map(|_| ())
}
