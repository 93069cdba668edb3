//! What `benches/pipeline.rs` uses to drive requests without a socket or a runtime, and to
//! count allocations. Included by that bench only (`#[path]`), not by `common/mod.rs`.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use criterion::Criterion;

/// Polls `future` once with a no-op waker: the futures benchmarked here (an axum handler that
/// answers at once, a reqwest-middleware chain that ends in [`Answer`], a database operation
/// around a ready driver future) are ready on the first poll, so no runtime is needed and none
/// is measured.
pub fn ready_now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked request was not ready on its first poll"),
    }
}

/// Iterations counted per benchmark for the allocations-per-operation figure.
const COUNTED: u32 = 10_000;

/// Runs `op` as criterion benchmark `name`, then (outside criterion's timing) runs it
/// [`COUNTED`] more times and prints the heap allocations it made per call on this thread
/// (`alloc` + `realloc`; the export threads' and the receiver's are not counted), to stderr.
pub fn bench<R>(c: &mut Criterion, name: &str, mut op: impl FnMut() -> R) {
    c.bench_function(name, |b| b.iter(&mut op));
    let info = allocation_counter::measure(|| {
        for _ in 0..COUNTED {
            std::hint::black_box(op());
        }
    });
    eprintln!(
        "allocations {name}: {:.2} per op ({:.0} bytes per op, {COUNTED} ops)",
        info.count_total as f64 / f64::from(COUNTED),
        info.bytes_total as f64 / f64::from(COUNTED),
    );
}

/// The last middleware of the benchmarked clients: answers `200` with a small JSON body at
/// once, so the request never leaves the process and only the middleware chain is measured.
#[cfg(feature = "http-client")]
#[derive(Debug)]
pub struct Answer;

#[cfg(feature = "http-client")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Answer {
    async fn handle(
        &self,
        _request: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let response = http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(r#"{"id":7,"status":"paid"}"#)
            .map_err(|e| reqwest_middleware::Error::Middleware(e.into()))?;
        Ok(reqwest::Response::from(response))
    }
}
