//! A real OTLP receiver for tests.
//!
//! [`OtlpReceiver::start`] binds two loopback listeners: OTLP/gRPC (tonic, gzip accepted) and
//! OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`, gzip accepted).
//! Every accepted export is decoded with `opentelemetry-proto`, flattened into one entry per
//! span, log record or metric, and kept until the receiver is dropped. [`Behavior`] makes the
//! receiver reject, hang or partially accept, for failure-path tests.
//!
//! [`OtlpReceiver::start_tls`] serves both listeners over TLS instead, optionally requiring
//! client certificates (mutual TLS), and counts refused handshakes; [`tls::TestPki`] makes the
//! certificates for it and for the clients under test.

mod accessors;
mod server;
pub mod tls;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::watch;

use crate::tls::TlsSettings;

pub use accessors::{MetricKind, MetricPoint, any_value_to_string, hex};
/// The proto crate the received data is expressed in, so users need not match its version.
pub use opentelemetry_proto;

/// At most this many items are kept per signal (and this many requests); older ones are dropped.
pub const MAX_ITEMS_PER_SIGNAL: usize = 200_000;
/// Largest accepted request body, compressed or decompressed: HTTP answers 413 beyond it
/// (at once for a declared `content-length`, after at most a second of discarding what the
/// client still sends), gRPC `RESOURCE_EXHAUSTED`. A body that is not valid protobuf (values
/// nested deeper than prost's 100 levels included) is 400 / `INVALID_ARGUMENT`.
///
/// Memory: one request holds at most this many bytes raw, and decoded about 20 times that
/// for the densest valid input (a span with a million one-letter attributes, 5 MB on the wire,
/// grows the process by about 100 MiB); the resource and scope are shared by the items of a
/// request, never copied into each.
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
    /// Items received since the start, kept or dropped: the newest
    /// `received.spans - earlier.received.spans` spans are the ones that arrived since an
    /// earlier snapshot, even after old ones were dropped.
    pub received: Received,
    /// TLS handshakes that failed or timed out, on either listener (always 0 without TLS).
    ///
    /// A client that connects and leaves without a handshake counts too.
    pub tls_handshake_failures: u64,
    /// Why the latest TLS handshake failed: listener, client address and the rustls error.
    pub last_tls_error: Option<String>,
}

/// Counts of items received since the receiver started, including those dropped since.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Spans.
    pub spans: u64,
    /// Log records.
    pub log_records: u64,
    /// Metrics (one per metric, not per point).
    pub metrics: u64,
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
///
/// The resource and scope are shared (`Arc`) by every item of the same export request, so a
/// request with a large resource and many items costs the resource once, not once per item.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedSpan {
    pub resource: Arc<Resource>,
    pub scope: Arc<InstrumentationScope>,
    /// The schema URL its scope declared (empty when none).
    pub scope_schema_url: Arc<str>,
    pub span: Span,
    pub transport: Transport,
}

/// A received log record with its resource, instrumentation scope and transport.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedLogRecord {
    pub resource: Arc<Resource>,
    pub scope: Arc<InstrumentationScope>,
    /// The schema URL its scope declared (empty when none).
    pub scope_schema_url: Arc<str>,
    pub record: LogRecord,
    pub transport: Transport,
}

/// A received metric (with all its points), its resource, instrumentation scope and transport.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub struct ReceivedMetric {
    pub resource: Arc<Resource>,
    pub scope: Arc<InstrumentationScope>,
    /// The schema URL its scope declared (empty when none).
    pub scope_schema_url: Arc<str>,
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
    /// A PEM input of the [`TlsSettings`] could not be parsed.
    #[error("invalid {what} PEM in the TLS settings: {source}")]
    #[allow(missing_docs)]
    TlsPem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate PEM of the [`TlsSettings`] holds no certificate.
    #[error("the {what} PEM in the TLS settings holds no certificate")]
    #[allow(missing_docs)]
    TlsNoCertificate { what: &'static str },
    /// rustls refused part of the configuration (e.g. a key that does not match the
    /// certificate, or an unusable CA certificate).
    #[error("rustls refused the {what}: {source}")]
    #[allow(missing_docs)]
    TlsConfig {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built from `client_ca_pem`.
    #[error("cannot build the client certificate verifier: {source}")]
    #[allow(missing_docs)]
    ClientVerifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// [`OtlpReceiver::wait_until`] gave up after `timeout`; `snapshot` is what had been received.
#[derive(Clone, Debug, thiserror::Error)]
#[error(
    "timed out after {timeout:?} waiting for the OTLP receiver condition; received so far: \
     {} requests, {} spans, {} log records, {} metrics ({} dropped), \
     {} failed TLS handshakes",
    .snapshot.requests.len(), .snapshot.spans.len(), .snapshot.log_records.len(),
    .snapshot.metrics.len(), .snapshot.dropped, .snapshot.tls_handshake_failures
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
        Self::spawn(grpc_port, http_port, None).await
    }

    /// Like [`start`](Self::start), with both listeners serving TLS: gRPC with ALPN `h2`,
    /// HTTP with ALPN `h2` and `http/1.1`. TLS 1.3 and 1.2, rustls with the `ring` provider.
    ///
    /// With [`TlsSettings::client_ca_pem`] set, a client without a certificate signed by that
    /// CA is refused at the handshake; refused and timed-out handshakes (see
    /// [`tls::TLS_HANDSHAKE_TIMEOUT`]) are counted by
    /// [`tls_handshake_failures`](Self::tls_handshake_failures). The endpoints become
    /// `https://localhost:PORT`, the name the [`tls::TestPki`] server certificate is valid for
    /// (the listeners are still bound on 127.0.0.1).
    pub async fn start_tls(settings: TlsSettings) -> Result<OtlpReceiver, ReceiverError> {
        Self::start_tls_on(0, 0, settings).await
    }

    /// Like [`start_tls`](Self::start_tls), on the given loopback ports (`0`: any free port).
    pub async fn start_tls_on(
        grpc_port: u16,
        http_port: u16,
        settings: TlsSettings,
    ) -> Result<OtlpReceiver, ReceiverError> {
        let configs = tls::ServerConfigs::new(&settings)?;
        Self::spawn(grpc_port, http_port, Some(configs)).await
    }

    async fn spawn(
        grpc_port: u16,
        http_port: u16,
        tls: Option<tls::ServerConfigs>,
    ) -> Result<OtlpReceiver, ReceiverError> {
        let shared = Arc::new(Shared {
            behavior: Mutex::new(Behavior::Accept),
            store: Mutex::new(Snapshot::default()),
            changed: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        });
        // With TLS, the name the server certificate is valid for; the listeners stay on 127.0.0.1.
        let base = match tls {
            None => "http://127.0.0.1",
            Some(_) => "https://localhost",
        };
        let (grpc, http) = server::spawn(&shared, grpc_port, http_port, tls).await?;
        let (grpc_endpoint, http_endpoint) = (format!("{base}:{grpc}"), format!("{base}:{http}"));
        Ok(OtlpReceiver {
            shared,
            grpc_endpoint,
            http_endpoint,
        })
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT` (with TLS: `https://localhost:PORT`).
    pub fn grpc_endpoint(&self) -> String {
        self.grpc_endpoint.clone()
    }

    /// The OTLP/HTTP base endpoint, `http://127.0.0.1:PORT` (with TLS: `https://localhost:PORT`),
    /// without `/v1/...`.
    pub fn http_endpoint(&self) -> String {
        self.http_endpoint.clone()
    }

    /// TLS handshakes that failed or timed out so far, on either listener (0 without TLS).
    ///
    /// A refused client may see its error just before the count moves: wait for it with
    /// [`wait_until`](Self::wait_until) on [`Snapshot::tls_handshake_failures`].
    pub fn tls_handshake_failures(&self) -> u64 {
        lock(&self.shared.store).tls_handshake_failures
    }

    /// Why the latest TLS handshake failed, if one did.
    pub fn last_tls_error(&self) -> Option<String> {
        lock(&self.shared.store).last_tls_error.clone()
    }

    /// Sets how both transports answer, from the next request on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.shared.behavior) = behavior;
    }

    /// A copy of everything received so far.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.store).clone()
    }

    /// Waits until `predicate` holds for the received data, re-checking on every request
    /// (and every failed TLS handshake).
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

/// Locks ignoring poisoning: the data stays consistent enough for a test receiver.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
