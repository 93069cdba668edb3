//! The chassis every trace and log store double runs on: its own thread and current-thread
//! runtime (stopped on drop), HTTP listeners on loopback that can go down (closing the port and
//! every kept-alive connection) and come back on the same port, an optional real OTLP intake
//! whose batches reach the double's store exactly once, the fault switches tests flip
//! ([`FaultSwitches`]), and the crate's one error type ([`Error`]).
//!
//! A double describes what it serves (its routers, already bound, and what to do with arriving
//! spans and log records) and [`run`] starts it; the [`Running`] handle keeps it alive.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use otlp_receiver::tls::TlsSettings;
use otlp_receiver::{Behavior, OtlpReceiver, ReceivedLogRecord, ReceivedSpan, Signal};
use tokio::sync::oneshot;

use crate::common::lock;
use listen::{Switch, serve};

mod listen;

pub(crate) use listen::bind;

/// Why a double could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port could not be bound on 127.0.0.1.
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0: any).
        port: u16,
        /// The bind error.
        source: std::io::Error,
    },
    /// The double's thread or runtime could not be started.
    #[error("cannot start the {double} double's runtime: {source}")]
    Runtime {
        /// Which double.
        double: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A builder was given a path prefix that is not a plain path.
    #[error(
        "invalid path prefix {prefix:?} for the {double} double: use segments of letters, digits \
         and `-._~` separated by `/`, e.g. `/tempo`"
    )]
    InvalidPrefix {
        /// Which double.
        double: &'static str,
        /// The prefix given.
        prefix: String,
    },
    /// The TLS configuration could not be made (test CA, certificates, rustls).
    #[error("cannot set up TLS for a double ({what}): {source}")]
    Tls {
        /// What was being made: `test CA`, `server certificate PEM`, `client certificate
        /// verifier`, …
        what: &'static str,
        /// The underlying error (rcgen, rustls, I/O).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The embedded OTLP receiver (crate `otlp-receiver`) could not start.
    #[error("cannot start the {double} double's OTLP receiver: {message}")]
    Receiver {
        /// Which double.
        double: &'static str,
        /// The receiver's error.
        message: String,
    },
}

/// What one accepted OTLP export request brought: its headers (gRPC: metadata; names
/// lowercase) and its spans or log records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) headers: &'a [(String, String)],
    pub(crate) spans: &'a [ReceivedSpan],
    pub(crate) logs: &'a [ReceivedLogRecord],
}

impl Batch<'_> {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a double's OTLP intake hands each new export request.
pub(crate) type Sink = Box<dyn FnMut(Batch<'_>) + Send>;

/// One HTTP listener a double serves, and how.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) listener: StdListener,
    pub(crate) app: Router,
    /// Serve HTTPS with this configuration.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Speak HTTP/2 (prior knowledge, or ALPN `h2` with TLS) as well as HTTP/1.1 (gRPC).
    pub(crate) h2: bool,
    /// Not closed by `set_down` (an OTLP intake, which refuses exports instead).
    pub(crate) stays_up: bool,
}

impl From<(StdListener, Router)> for Served {
    fn from((listener, app): (StdListener, Router)) -> Self {
        Served {
            listener,
            app,
            tls: None,
            h2: false,
            stays_up: false,
        }
    }
}

/// A started double: dropping it stops its thread, listeners and intake.
#[derive(Debug)]
pub(crate) struct Running {
    /// The fault switches over this double's listeners and intake.
    pub(crate) faults: Faults,
    _thread: DoubleThread,
    /// The switch of the listeners that stay up; kept so they keep serving.
    _steady: Switch,
}

/// Starts double `name` serving each `(listener, router)` while its switch is up. `state` is
/// the double's fault state, shared with its handlers.
pub(crate) fn run(
    name: &'static str,
    ports: Vec<Served>,
    state: Arc<FaultState>,
) -> Result<Running, Error> {
    launch(name, ports, None, state).map(|(running, _)| running)
}

/// [`run`], plus a real OTLP receiver on free ports (gRPC and HTTP) whose batches go to `sink`
/// exactly once; going down makes it refuse exports. With `tls`, the receiver serves TLS
/// (`OtlpReceiver::start_tls`).
pub(crate) fn run_with_intake(
    name: &'static str,
    ports: Vec<Served>,
    sink: Sink,
    tls: Option<TlsSettings>,
    state: Arc<FaultState>,
) -> Result<(Running, Arc<OtlpReceiver>), Error> {
    let (running, receiver) = launch(name, ports, Some((sink, tls)), state)?;
    let receiver = receiver.ok_or_else(|| Error::Receiver {
        double: name,
        message: "the intake did not start".into(),
    })?;
    Ok((running, receiver))
}

fn launch(
    name: &'static str,
    ports: Vec<Served>,
    intake: Option<(Sink, Option<TlsSettings>)>,
    state: Arc<FaultState>,
) -> Result<(Running, Option<Arc<OtlpReceiver>>), Error> {
    let mut switch = Switch::new();
    let mut steady = Switch::new();
    let ports: Vec<_> = ports
        .into_iter()
        .map(|served| {
            let port = if served.stays_up {
                steady.port()
            } else {
                switch.port()
            };
            (served, port)
        })
        .collect();
    let wants_receiver = intake.is_some();
    let (reply, replied) = std::sync::mpsc::channel();
    let thread = DoubleThread::spawn(name, move || async move {
        if let Some((sink, tls)) = intake {
            let Some(receiver) = start_receiver(name, tls, reply).await else {
                return;
            };
            tokio::spawn(pump(receiver, sink));
        }
        for (served, port) in ports {
            tokio::spawn(serve(served, port));
        }
        std::future::pending::<()>().await;
    })?;
    let receiver = if wants_receiver {
        Some(await_receiver(name, &replied)?)
    } else {
        None
    };
    let faults = Faults {
        switch,
        intake: receiver.clone(),
        state,
    };
    let running = Running {
        faults,
        _thread: thread,
        _steady: steady,
    };
    Ok((running, receiver))
}

/// Receives what arrives at `receiver` and hands each new export request to `sink`, until the
/// runtime stops. Every span and log record reaches `sink` exactly once, with the headers of
/// the request that brought it (the receiver stores a request and its items together, in
/// order; past its `MAX_ITEMS_PER_SIGNAL` cap, items whose request was dropped come without
/// headers).
async fn pump(receiver: Arc<OtlpReceiver>, mut sink: Sink) {
    let (mut requests_seen, mut spans_seen, mut logs_seen) = (0, 0, 0);
    loop {
        let news = |s: &otlp_receiver::Snapshot| {
            s.requests.len() != requests_seen
                || s.spans.len() != spans_seen
                || s.log_records.len() != logs_seen
        };
        let Ok(snapshot) = receiver.wait_until(Duration::from_secs(3600), news).await else {
            continue;
        };
        for request in snapshot.requests.get(requests_seen..).unwrap_or_default() {
            let (spans, logs) = match request.signal {
                Signal::Traces => {
                    let end = (spans_seen + request.item_count).min(snapshot.spans.len());
                    let spans = snapshot.spans.get(spans_seen..end).unwrap_or_default();
                    spans_seen = end;
                    (spans, &[][..])
                }
                Signal::Logs => {
                    let end = (logs_seen + request.item_count).min(snapshot.log_records.len());
                    let logs = snapshot.log_records.get(logs_seen..end).unwrap_or_default();
                    logs_seen = end;
                    (&[][..], logs)
                }
                Signal::Metrics => continue,
            };
            sink(Batch {
                headers: &request.headers,
                spans,
                logs,
            });
        }
        let spans = snapshot.spans.get(spans_seen..).unwrap_or_default();
        let logs = snapshot.log_records.get(logs_seen..).unwrap_or_default();
        if !spans.is_empty() || !logs.is_empty() {
            sink(Batch {
                headers: &[],
                spans,
                logs,
            });
        }
        requests_seen = snapshot.requests.len();
        (spans_seen, logs_seen) = (snapshot.spans.len(), snapshot.log_records.len());
    }
}

type Reply = std::sync::mpsc::Sender<Result<Arc<OtlpReceiver>, Error>>;

/// Starts an [`OtlpReceiver`] on the current (double's) runtime and hands it back to the
/// starting thread through `reply`; returns it for the double's own use.
async fn start_receiver(
    double: &'static str,
    tls: Option<TlsSettings>,
    reply: Reply,
) -> Option<Arc<OtlpReceiver>> {
    let started = match tls {
        None => OtlpReceiver::start().await,
        Some(settings) => OtlpReceiver::start_tls(settings).await,
    };
    match started {
        Ok(receiver) => {
            let receiver = Arc::new(receiver);
            let _ = reply.send(Ok(Arc::clone(&receiver)));
            Some(receiver)
        }
        Err(e) => {
            let message = e.to_string();
            let _ = reply.send(Err(Error::Receiver { double, message }));
            None
        }
    }
}

/// Waits (bounded) for the receiver started by [`start_receiver`].
fn await_receiver(
    double: &'static str,
    reply: &std::sync::mpsc::Receiver<Result<Arc<OtlpReceiver>, Error>>,
) -> Result<Arc<OtlpReceiver>, Error> {
    match reply.recv_timeout(Duration::from_secs(10)) {
        Ok(result) => result,
        Err(e) => Err(Error::Receiver {
            double,
            message: format!("no answer from the double's thread: {e}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Fault switches
// ---------------------------------------------------------------------------------------------

/// What the fault switches set, read by a double's handlers.
#[derive(Debug)]
struct FaultSettings {
    down: bool,
    ready: bool,
    not_ready_calls: u32,
    not_ready_reason: Option<String>,
    visible_after: Duration,
}

/// The fault state a double's handlers consult: readiness (as dskit-based servers answer
/// `/ready`: not ready for the next N calls, then whatever `ready` says), the not-ready reason,
/// and how long stored data stays invisible to queries.
#[derive(Debug)]
pub(crate) struct FaultState(Mutex<FaultSettings>);

impl Default for FaultState {
    fn default() -> Self {
        Self(Mutex::new(FaultSettings {
            down: false,
            ready: true,
            not_ready_calls: 0,
            not_ready_reason: None,
            visible_after: Duration::ZERO,
        }))
    }
}

impl FaultState {
    /// Whether this readiness call answers "ready" (consumes one not-ready call); `Err` holds
    /// the reason set with `set_not_ready_reason`, if any.
    pub(crate) fn check_ready(&self) -> Result<(), Option<String>> {
        let mut s = lock(&self.0);
        if s.not_ready_calls > 0 {
            s.not_ready_calls -= 1;
            return Err(s.not_ready_reason.clone());
        }
        if s.ready {
            Ok(())
        } else {
            Err(s.not_ready_reason.clone())
        }
    }

    /// Whether the double is down (`set_down`): an intake of its own refuses exports then.
    pub(crate) fn is_down(&self) -> bool {
        lock(&self.0).down
    }

    /// How long after arrival stored data becomes visible to queries.
    pub(crate) fn visible_after(&self) -> Duration {
        lock(&self.0).visible_after
    }

    pub(crate) fn set_not_ready_reason(&self, reason: &str) {
        lock(&self.0).not_ready_reason = Some(reason.to_owned());
    }
}

/// A double's fault switches: its listeners, its OTLP intake and its fault state. Reached
/// through [`FaultSwitches`].
#[derive(Debug)]
pub struct Faults {
    switch: Switch,
    intake: Option<Arc<OtlpReceiver>>,
    state: Arc<FaultState>,
}

mod sealed {
    pub trait Sealed {}
}

pub(crate) use sealed::Sealed;

/// The faults a test can inflict on a trace or log store double (Tempo, Loki, Jaeger), the
/// same on each: import it (`use api_doubles::FaultSwitches;`) to call them.
pub trait FaultSwitches: Sealed {
    /// The double's switches (the methods below are the way to use them).
    #[doc(hidden)]
    fn faults(&self) -> &Faults;

    /// Goes down: every query port is closed (connections refused, open ones dropped) and OTLP
    /// exports are refused with UNAVAILABLE / 503. Returns once the ports are closed. Stored
    /// data is kept.
    fn set_down(&self) {
        let faults = self.faults();
        if let Some(intake) = &faults.intake {
            intake.set_behavior(Behavior::Reject {
                grpc: tonic::Code::Unavailable,
                http_status: 503,
            });
        }
        lock(&faults.state.0).down = true;
        faults.switch.set_down();
    }

    /// Comes back up on the same ports; returns once they listen.
    fn set_up(&self) {
        let faults = self.faults();
        if let Some(intake) = &faults.intake {
            intake.set_behavior(Behavior::Accept);
        }
        lock(&faults.state.0).down = false;
        faults.switch.set_up();
    }

    /// The readiness check answers ready when `true`, else 503 (the upstream's not-ready body).
    fn set_ready(&self, ready: bool) {
        lock(&self.faults().state.0).ready = ready;
    }

    /// The next `calls` readiness checks answer 503 (an upstream still starting).
    fn not_ready_for(&self, calls: u32) {
        lock(&self.faults().state.0).not_ready_calls = calls;
    }

    /// Queries show what arrived only this long after it arrived (default: at once).
    fn visible_after(&self, lag: Duration) {
        lock(&self.faults().state.0).visible_after = lag;
    }
}

// ---------------------------------------------------------------------------------------------
// Thread, listeners and connections
// ---------------------------------------------------------------------------------------------

/// A double's own thread and current-thread runtime; dropping it stops both.
#[derive(Debug)]
pub(crate) struct DoubleThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DoubleThread {
    /// Runs `main()` on a new thread until it ends or this handle is dropped.
    pub(crate) fn spawn<F, Fut>(double: &'static str, main: F) -> Result<Self, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime_error = |source| Error::Runtime { double, source };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(runtime_error)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{double}-double"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = main() => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(runtime_error)?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for DoubleThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
