#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Export throughput at default settings: the highest steady rate of spans (and of log records)
//! the pipeline exports to a loopback OTLP/HTTP receiver with zero drops, and what the drop
//! counter shows under overload (one thread producing as fast as it can).
//!
//! `cargo bench -p platform-telemetry --bench export_throughput` (about 2 minutes). Without
//! `--bench` (as `cargo test --benches` runs it) it does one short step of each, as a smoke test.
//!
//! Method: one thread produces at a paced rate (a burst every millisecond) for `STEP` seconds
//! under a fresh instance's subscriber; then `force_flush`, and `pipeline_stats()` gives
//! exported and dropped. The rate goes up until a step drops anything or the producer cannot
//! keep the pace. Each step has its own receiver, which decodes and stores every request on the
//! same machine: on 2 cores, the producer, the export thread and the receiver share them.
//!
//! Results (2-core x86_64 VM, Rust 1.95, release, 2026-11-23; default settings; how to read
//! them: BENCHMARKS.md):
//!
//! | Signal      | Highest zero-drop rate tried | Overload (one producer, 5 s): exported/s, dropped |
//! |-------------|------------------------------|---------------------------------------------------|
//! | spans       | 80,000/s                     | 95,554/s, 2,865,484 dropped and counted           |
//! | log records | 100,000/s                    | 150,574/s, 2,362,071 dropped and counted          |

use std::time::{Duration, Instant};

use platform_telemetry::{SignalStats, Telemetry};

mod common;
use common::{Receiver, telemetry};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    Spans,
    Logs,
}

impl Signal {
    fn stats(self, telemetry: &Telemetry) -> SignalStats {
        let stats = telemetry.pipeline_stats();
        match self {
            Signal::Spans => stats.spans,
            Signal::Logs => stats.logs,
        }
    }

    /// Produces one item: a sampled span, or a log record inside the (long-lived) current span.
    fn produce(self, i: u64) {
        match self {
            Signal::Spans => {
                let span = tracing::info_span!("bench.operation", order_id = i);
                span.in_scope(|| std::hint::black_box(&span));
            }
            Signal::Logs => tracing::info!(order_id = i, status = "paid", "order placed"),
        }
    }
}

struct Step {
    target_rate: Option<u64>,
    produced: u64,
    seconds: f64,
    exported: u64,
    dropped: u64,
    failed: u64,
}

impl Step {
    fn achieved_rate(&self) -> f64 {
        self.produced as f64 / self.seconds
    }
}

/// Produces `signal` at `rate` per second (`None`: as fast as possible) for `duration` under a
/// fresh instance and a fresh receiver, then flushes and reads the instance's pipeline counters.
///
/// A fresh receiver each step: `otlp-receiver` keeps at most 200,000 items per signal and, once
/// full, evicts by shifting its whole `Vec` on every request, which would make later steps
/// measure the receiver's `memmove` rather than the library.
fn step(signal: Signal, rate: Option<u64>, duration: Duration) -> Step {
    let receiver = Receiver::start();
    let telemetry = telemetry(&receiver, "always_on");
    let before = signal.stats(&telemetry);
    let mut produced = 0_u64;
    let started = Instant::now();
    tracing::dispatcher::with_default(&telemetry.subscriber(), || {
        // Log records are produced inside one long-lived span, so they carry trace ids.
        let request = (signal == Signal::Logs).then(|| tracing::info_span!("bench.request"));
        let _entered = request.as_ref().map(tracing::Span::enter);
        let tick = Duration::from_millis(1);
        let mut next = started;
        while started.elapsed() < duration {
            let burst = match rate {
                Some(rate) => {
                    // Catch up to where the pace says we should be, then wait for the next tick.
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    due.saturating_sub(produced).max(1)
                }
                None => 1024,
            };
            for _ in 0..burst {
                signal.produce(produced);
                produced += 1;
            }
            if rate.is_some() {
                next += tick;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let _ = telemetry.force_flush();
    let after = signal.stats(&telemetry);
    let _ = telemetry.shutdown();
    Step {
        target_rate: rate,
        produced,
        seconds,
        exported: after.exported - before.exported,
        dropped: after.dropped - before.dropped,
        failed: after.failed - before.failed,
    }
}

fn print(signal: Signal, s: &Step) {
    let target = s
        .target_rate
        .map_or_else(|| "max".to_string(), |r| r.to_string());
    println!(
        "{signal:?}\ttarget/s {target}\tachieved/s {:.0}\tproduced {}\texported {}\tdropped {}\tfailed {}\texported/s {:.0}",
        s.achieved_rate(),
        s.produced,
        s.exported,
        s.dropped,
        s.failed,
        s.exported as f64 / s.seconds,
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rates, duration): (&[u64], _) = if full {
        (
            &[
                5_000, 10_000, 20_000, 30_000, 40_000, 60_000, 80_000, 100_000, 150_000, 200_000,
            ],
            Duration::from_secs(5),
        )
    } else {
        (&[1_000], Duration::from_millis(200))
    };
    for signal in [Signal::Spans, Signal::Logs] {
        let mut best = None;
        for &rate in rates {
            let s = step(signal, Some(rate), duration);
            print(signal, &s);
            assert_eq!(
                s.exported + s.dropped + s.failed,
                s.produced,
                "every item is exported or counted"
            );
            if s.dropped > 0 || s.failed > 0 || s.achieved_rate() < 0.95 * rate as f64 {
                break;
            }
            best = Some(rate);
        }
        match best {
            Some(rate) => println!("{signal:?}: highest zero-drop rate tried: {rate}/s"),
            None => println!("{signal:?}: drops at every rate tried"),
        }
        let overload = step(signal, None, duration);
        print(signal, &overload);
    }
}
