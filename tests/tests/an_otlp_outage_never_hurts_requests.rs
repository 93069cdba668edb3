#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `orders` example service (its own process: `init()`, `server_layer()`, a log record and a
//! producer span per request) under steady load while its OTLP endpoint goes away and comes back.
//!
//! The bounds a user can count on, asserted here (debug build, 2 shared cores):
//! - every request succeeds; none takes longer than [`MAX_REQUEST`] (below the 1 s export timeout
//!   the service is given, so a request that waited for an export would break it), and the p99
//!   during the outage stays within 2x the healthy p99 + 25 ms;
//! - the service's RSS grows by less than [`MAX_RSS_GROWTH_KIB`] during the outage (queues are
//!   bounded: 2048 spans, 2048 log records);
//! - what could not be delivered is counted on the service's own `/metrics`
//!   (`otel_sdk_exporter_*_exported_total{error_type="export_failed"}` and
//!   `otel_sdk_processor_*_processed_total{error_type="queue_full"}`);
//! - export resumes by itself once the endpoint answers again, within [`RECOVERY`].

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otlp_receiver::{Behavior, OtlpReceiver, Snapshot};
use support::{Process, free_port, http, spawn_example, wait_ready};

/// Longest any single request may take, in any phase.
const MAX_REQUEST: Duration = Duration::from_millis(900);
/// Largest RSS growth of the service from the end of the healthy phase to the end of the outage.
const MAX_RSS_GROWTH_KIB: u64 = 48 * 1024;
/// How long after the endpoint is back the first new item must have arrived.
const RECOVERY: Duration = Duration::from_secs(10);
const HEALTHY: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(4);
/// Load: this many clients, each sending one request every `PACE` (about 160 requests/s).
const CLIENTS: u64 = 4;
const PACE: Duration = Duration::from_millis(25);

/// Order ids encode the phase a request was sent in: `phase * PHASE_ID + n % PHASE_ID`, all
/// orders that exist (`orders::SEEDED_ORDERS`).
const PHASE_ID: u64 = 100;
const PHASE_HEALTHY: u64 = 1;
const PHASE_OUTAGE: u64 = 2;
const PHASE_RECOVERED: u64 = 3;
const _: () = assert!((PHASE_RECOVERED + 1) * PHASE_ID <= orders::SEEDED_ORDERS);

#[derive(Clone, Copy, Debug)]
struct Sample {
    phase: u64,
    latency: Duration,
    ok: bool,
}

/// Steady paced load on `GET /orders/{id}`, plus an RSS sampler of the service process.
struct Load {
    phase: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Highest RSS (KiB) seen per phase, index = phase.
    peak_rss_kib: Arc<Mutex<[u64; 4]>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Load {
    fn start(base_url: String, pid: u32) -> Load {
        let load = Load {
            phase: Arc::new(AtomicU64::new(PHASE_HEALTHY)),
            stop: Arc::new(AtomicBool::new(false)),
            samples: Arc::default(),
            failures: Arc::default(),
            peak_rss_kib: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        let next_id = Arc::new(AtomicU64::new(0));
        for _ in 0..CLIENTS {
            let (phase, stop, samples, failures) = (
                load.phase.clone(),
                load.stop.clone(),
                load.samples.clone(),
                load.failures.clone(),
            );
            let (client, base_url, next_id) = (http(), base_url.clone(), next_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(PACE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let phase = phase.load(Ordering::Relaxed);
                    let id = phase * PHASE_ID + next_id.fetch_add(1, Ordering::Relaxed) % PHASE_ID;
                    let started = Instant::now();
                    let result = client.get(format!("{base_url}/orders/{id}")).send().await;
                    let latency = started.elapsed();
                    let ok = match result {
                        Ok(r) if r.status().is_success() => true,
                        Ok(r) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("order {id}: {}", r.status()));
                            false
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("order {id}: {e}"));
                            false
                        }
                    };
                    samples.lock().unwrap().push(Sample { phase, latency, ok });
                }
            }));
        }
        let (phase, stop, peak) = (
            load.phase.clone(),
            load.stop.clone(),
            load.peak_rss_kib.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_kib(pid) {
                    let phase = phase.load(Ordering::Relaxed) as usize;
                    let mut peak = peak.lock().unwrap();
                    peak[phase] = peak[phase].max(rss);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
        Load { tasks, ..load }
    }

    fn enter(&self, phase: u64) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let samples = self.samples.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        let peak_rss_kib = *self.peak_rss_kib.lock().unwrap();
        Report {
            samples,
            failures,
            peak_rss_kib,
        }
    }
}

struct Report {
    samples: Vec<Sample>,
    failures: Vec<String>,
    peak_rss_kib: [u64; 4],
}

impl Report {
    fn latencies(&self, phase: u64) -> Vec<Duration> {
        let mut l: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.phase == phase && s.ok)
            .map(|s| s.latency)
            .collect();
        l.sort();
        l
    }

    fn p99(&self, phase: u64) -> Duration {
        let l = self.latencies(phase);
        assert!(!l.is_empty(), "no successful request in phase {phase}");
        l[(l.len() * 99).div_ceil(100) - 1]
    }

    /// The guarantees every test here asserts about the requests and the memory.
    fn assert_requests_and_memory_unharmed(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} requests failed, first: {:?}",
            self.failures.len(),
            &self.failures[..self.failures.len().min(5)]
        );
        // Enough requests for a p99 in the two phases compared. The recovered phase lasts only
        // until export resumes, which can take a few dozen requests: `wait_for` saw its data.
        for phase in [PHASE_HEALTHY, PHASE_OUTAGE] {
            let n = self.latencies(phase).len();
            assert!(n >= 100, "{what}: only {n} requests in phase {phase}");
        }
        let slowest = self.samples.iter().map(|s| s.latency).max().unwrap();
        assert!(
            slowest < MAX_REQUEST,
            "{what}: a request took {slowest:?} (bound {MAX_REQUEST:?})"
        );
        let (healthy, outage) = (self.p99(PHASE_HEALTHY), self.p99(PHASE_OUTAGE));
        let bound = healthy * 2 + Duration::from_millis(25);
        assert!(
            outage <= bound,
            "{what}: p99 {outage:?} during the outage, {healthy:?} healthy (bound {bound:?})"
        );
        let (before, during) = (
            self.peak_rss_kib[PHASE_HEALTHY as usize],
            self.peak_rss_kib[PHASE_OUTAGE as usize],
        );
        assert!(
            before > 0 && during > 0,
            "RSS was sampled: {before} {during}"
        );
        assert!(
            during.saturating_sub(before) < MAX_RSS_GROWTH_KIB,
            "{what}: RSS grew from {before} KiB to {during} KiB during the outage"
        );
        eprintln!(
            "{what}: {} requests; p99 healthy {healthy:?}, outage {outage:?}, slowest {slowest:?}; \
             peak RSS healthy {before} KiB, outage {during} KiB",
            self.samples.len()
        );
    }
}

/// Sum of the samples of `metric` whose labels contain `label` (Prometheus text format).
fn metric_sum(exposition: &str, metric: &str, label: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn phase_of(id: Option<String>) -> Option<u64> {
    Some(id?.parse::<u64>().ok()? / PHASE_ID)
}

fn has_log_from(s: &Snapshot, phase: u64) -> bool {
    let attr = |r: &otlp_receiver::ReceivedLogRecord| phase_of(r.attr("order.id"));
    s.log_records.iter().any(|r| attr(r) == Some(phase))
}

fn has_span_from(s: &Snapshot, phase: u64) -> bool {
    s.spans.iter().any(|span| {
        let id = span
            .attr("url.path")
            .and_then(|p| p.strip_prefix("/orders/").map(str::to_string));
        phase_of(id) == Some(phase)
    })
}

/// The `orders` service exporting over OTLP/HTTP to `127.0.0.1:otlp_http_port`, ready.
async fn start_orders(otlp_http_port: u16) -> (Process, String) {
    let port = free_port();
    let orders = spawn_example(
        "orders",
        &[
            ("ORDERS_PORT", &port.to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{otlp_http_port}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{base}/healthz"), &orders).await;
    (orders, base)
}

/// A receiver on `http_port`, retrying while the previous one's listener is still closing.
async fn receiver_on(http_port: u16) -> OtlpReceiver {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match OtlpReceiver::start_on(0, http_port).await {
            Ok(receiver) => return receiver,
            Err(e) if Instant::now() < deadline => {
                eprintln!("port {http_port} not free yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot listen on {http_port} again: {e}"),
        }
    }
}

async fn wait_for(receiver: &OtlpReceiver, phase: u64, within: Duration, what: &str) {
    let arrived = receiver
        .wait_until(within, |s| {
            has_span_from(s, phase) && has_log_from(s, phase)
        })
        .await;
    if let Err(e) = arrived {
        panic!(
            "{what}: no span and log record of phase {phase} within {within:?}: {} spans, {} log records",
            e.snapshot.spans.len(),
            e.snapshot.log_records.len()
        );
    }
}

/// The `orders` service exporting to a receiver, under load, with its healthy phase done.
struct Healthy {
    receiver: OtlpReceiver,
    otlp_port: u16,
    /// Kept alive until the test ends (dropping it kills the service).
    orders: Process,
    base: String,
    load: Load,
}

async fn healthy_service_under_load() -> Healthy {
    let receiver = OtlpReceiver::start().await.unwrap();
    let otlp_port: u16 = receiver
        .http_endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let (orders, base) = start_orders(otlp_port).await;
    let load = Load::start(base.clone(), orders.pid());
    tokio::time::sleep(HEALTHY).await;
    wait_for(&receiver, PHASE_HEALTHY, RECOVERY, "healthy").await;
    Healthy {
        receiver,
        otlp_port,
        orders,
        base,
        load,
    }
}

/// The service's own `/metrics`.
async fn scrape(base: &str) -> String {
    let response = http().get(format!("{base}/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_endpoint_is_down_requests_stay_fast_memory_bounded_drops_counted_then_export_resumes()
 {
    // `_orders`, not `_`: the service must live until the test ends.
    let Healthy {
        receiver,
        otlp_port,
        orders: _orders,
        base,
        load,
    } = healthy_service_under_load().await;

    // The endpoint goes away: nothing listens on its port any more.
    drop(receiver);
    load.enter(PHASE_OUTAGE);
    tokio::time::sleep(OUTAGE).await;
    let metrics = scrape(&base).await;

    // It comes back on the same port.
    let receiver = receiver_on(otlp_port).await;
    load.enter(PHASE_RECOVERED);
    wait_for(&receiver, PHASE_RECOVERED, RECOVERY, "after the outage").await;
    let report = load.stop().await;
    report.assert_requests_and_memory_unharmed("endpoint down");

    let failed_spans = metric_sum(
        &metrics,
        "otel_sdk_exporter_span_exported_total",
        "error_type=\"export_failed\"",
    );
    let failed_logs = metric_sum(
        &metrics,
        "otel_sdk_exporter_log_exported_total",
        "error_type=\"export_failed\"",
    );
    assert!(
        failed_spans > 0.0 && failed_logs > 0.0,
        "spans and log records lost in the outage are counted on /metrics \
         (spans {failed_spans}, logs {failed_logs}):\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_endpoint_hangs_requests_stay_fast_the_export_timeout_holds_and_export_resumes() {
    let Healthy {
        receiver,
        orders: _orders,
        base,
        load,
        ..
    } = healthy_service_under_load().await;

    // The endpoint accepts connections and requests and never answers.
    receiver.set_behavior(Behavior::Hang);
    load.enter(PHASE_OUTAGE);
    tokio::time::sleep(OUTAGE).await;
    let metrics = scrape(&base).await;

    // The hung requests stay hung (they are only released when the receiver is dropped): only
    // an exporter that gives up after OTEL_EXPORTER_OTLP_TIMEOUT gets through from here.
    receiver.set_behavior(Behavior::Accept);
    load.enter(PHASE_RECOVERED);
    wait_for(&receiver, PHASE_RECOVERED, RECOVERY, "after the hang").await;
    let report = load.stop().await;
    report.assert_requests_and_memory_unharmed("endpoint hangs");

    let lost = |signal: &str| {
        metric_sum(
            &metrics,
            &format!("otel_sdk_exporter_{signal}_exported_total"),
            "error_type=\"export_failed\"",
        ) + metric_sum(
            &metrics,
            &format!("otel_sdk_processor_{signal}_processed_total"),
            "error_type=\"queue_full\"",
        )
    };
    assert!(
        lost("span") > 0.0 && lost("log") > 0.0,
        "what the hang cost is counted on /metrics:\n{metrics}"
    );
}
