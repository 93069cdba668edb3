//! A real OTLP receiver for tests.
//!
//! [`OtlpReceiver::start`] binds two loopback listeners: OTLP/gRPC (tonic, gzip accepted) and
//! OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`, gzip accepted).
//! Every accepted export is decoded with `opentelemetry-proto`, flattened into one entry per
//! span, log record or metric, and kept until the receiver is dropped. [`Behavior`] makes the
//! receiver reject, hang or partially accept, for failure-path tests.

mod accessors;
mod server;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::watch;

pub use accessors::{MetricKind, MetricPoint, any_value_to_string, hex};
/// The proto crate the received data is expressed in, so users need not match its version.
pub use opentelemetry_proto;

/// At most this many items are kept per signal (and this many requests); older ones are dropped.
pub const MAX_ITEMS_PER_SIGNAL: usize = 200_000;
/// Largest accepted request body, compressed or decompressed (HTTP answers 413 beyond it).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A running OTLP receiver; dropping it shuts both servers down and releases hung requests.
#[derive(Debug)]
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    grpc_endpoint: String,
    http_endpoint: String,
}

/// How the receiver answers exports, for both transports, from the next request on.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Behavior {
    /// Store the data and answer success.
    #[default]
    Accept,
    /// Answer every export with this failure and store nothing.
    Reject {
        /// The gRPC status code.
        grpc: tonic::Code,
        /// The HTTP status code.
        http_status: u16,
    },
    /// Accept the request and never answer (until the receiver is dropped). Stores nothing.
    Hang,
    /// Store the data but report partial success with this many rejected items and message.
    PartialSuccess {
        /// The `rejected_<signal>` count.
        rejected: i64,
        /// The `error_message`.
        message: String,
    },
}

/// Everything received so far.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Accepted export requests, oldest first.
    pub requests: Vec<RequestInfo>,
    /// Received spans, oldest first.
    pub spans: Vec<ReceivedSpan>,
    /// Received log records, oldest first.
    pub log_records: Vec<ReceivedLogRecord>,
    /// Received metrics (one entry per metric, not per point), oldest first.
    pub metrics: Vec<ReceivedMetric>,
    /// Items and requests dropped because of [`MAX_ITEMS_PER_SIGNAL`].
    pub dropped: usize,
}

/// An OTLP signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

/// The transport an export arrived on: OTLP/gRPC or OTLP/HTTP with protobuf bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Transport {
    Grpc,
    Http,
}

/// One accepted export request.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The signal exported.
    pub signal: Signal,
    /// The transport used.
    pub transport: Transport,
    /// The HTTP path, or the gRPC method path.
    pub path: String,
    /// Headers (gRPC: metadata), names lowercase, one entry per value.
    pub headers: Vec<(String, String)>,
    /// `Some("gzip")` when the body was compressed (`content-encoding` / `grpc-encoding`).
    pub content_encoding: Option<String>,
    /// Number of spans, log records or metrics in the request.
    pub item_count: usize,
}

impl RequestInfo {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A received span with its resource, instrumentation scope and transport.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedSpan {
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub span: Span,
    pub transport: Transport,
}

/// A received log record with its resource, instrumentation scope and transport.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedLogRecord {
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub record: LogRecord,
    pub transport: Transport,
}

/// A received metric (with all its points), its resource, instrumentation scope and transport.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedMetric {
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub metric: Metric,
    pub transport: Transport,
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// A listener could not be bound on 127.0.0.1.
    #[error("cannot bind the OTLP {transport:?} listener on 127.0.0.1: {source}")]
    #[allow(missing_docs)]
    Bind {
        transport: Transport,
        source: std::io::Error,
    },
}

/// [`OtlpReceiver::wait_until`] gave up after `timeout`; `snapshot` is what had been received.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "timed out after {timeout:?} waiting for the OTLP receiver condition; received so far: \
     {} requests, {} spans, {} log records, {} metrics ({} dropped)",
    .snapshot.requests.len(), .snapshot.spans.len(), .snapshot.log_records.len(),
    .snapshot.metrics.len(), .snapshot.dropped
)]
#[allow(missing_docs)]
pub struct WaitTimeout {
    pub timeout: Duration,
    pub snapshot: Snapshot,
}

impl OtlpReceiver {
    /// Binds both listeners on `127.0.0.1:0` and serves them on the current tokio runtime.
    pub async fn start() -> Result<OtlpReceiver, ReceiverError> {
        Self::start_on(0, 0).await
    }

    /// Like [`start`](Self::start), on the given loopback ports (`0`: any free port).
    ///
    /// Outage tests use it to bring an endpoint back on the port a service was configured with,
    /// after dropping the receiver that served it.
    pub async fn start_on(grpc_port: u16, http_port: u16) -> Result<OtlpReceiver, ReceiverError> {
        let shared = Arc::new(Shared {
            behavior: Mutex::new(Behavior::Accept),
            store: Mutex::new(Snapshot::default()),
            changed: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        });
        let (grpc, http) = server::spawn(&shared, grpc_port, http_port).await?;
        let (grpc_endpoint, http_endpoint) = (endpoint(grpc), endpoint(http));
        Ok(OtlpReceiver {
            shared,
            grpc_endpoint,
            http_endpoint,
        })
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        self.grpc_endpoint.clone()
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:PORT` (without `/v1/...`).
    pub fn http_endpoint(&self) -> String {
        self.http_endpoint.clone()
    }

    /// Sets how both transports answer, from the next request on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// A copy of everything received so far.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.store).clone()
    }

    /// Waits until `predicate` holds for the received data, re-checking on every request.
    ///
    /// The predicate runs with the store locked: it must not call back into this receiver.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl Fn(&Snapshot) -> bool,
    ) -> Result<Snapshot, WaitTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let store = lock(&self.shared.store);
                if predicate(&store) {
                    return Ok(store.clone());
                }
            }
            let woke = tokio::time::timeout_at(deadline, changed.changed()).await;
            if !matches!(woke, Ok(Ok(()))) {
                let snapshot = self.snapshot();
                return Err(WaitTimeout { timeout, snapshot });
            }
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// State shared by the receiver handle and both servers.
#[derive(Debug)]
struct Shared {
    behavior: Mutex<Behavior>,
    store: Mutex<Snapshot>,
    /// Bumped whenever the store changes; `wait_until` listens to it.
    changed: watch::Sender<u64>,
    /// Set to `true` when the receiver is dropped.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn behavior(&self) -> Behavior {
        lock(&self.behavior).clone()
    }

    /// Applies `add` (which returns how many items it dropped) then wakes `wait_until`.
    fn store(&self, add: impl FnOnce(&mut Snapshot) -> usize) {
        {
            let mut store = lock(&self.store);
            let dropped = add(&mut store);
            store.dropped += dropped;
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Resolves once the receiver is dropped.
    fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the sender is gone: shut down as well.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Appends `items`, then drops the oldest beyond the cap; returns how many were dropped.
fn push_capped<T>(store: &mut Vec<T>, items: Vec<T>) -> usize {
    store.extend(items);
    let excess = store.len().saturating_sub(MAX_ITEMS_PER_SIGNAL);
    store.drain(..excess);
    excess
}

fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Locks ignoring poisoning: the data stays consistent enough for a test receiver.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
