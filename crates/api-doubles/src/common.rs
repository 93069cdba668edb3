//! What the trace and log store doubles share: their thread and runtime, a query listener that
//! can go down (closing the port and every kept-alive connection) and come back on the same port,
//! readiness counters, request recording, OTLP intake pumping, and small parsing helpers.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use otlp_receiver::{OtlpReceiver, ReceivedLogRecord, ReceivedSpan};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};

pub use crate::grafana::RecordedRequest;

/// Why a trace or log store double could not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    /// The embedded OTLP receiver (crate `otlp-receiver`) could not start.
    #[error("cannot start the {double} double's OTLP receiver: {message}")]
    Receiver {
        /// Which double.
        double: &'static str,
        /// The receiver's error.
        message: String,
    },
}

/// Locks ignoring poisoning: a panicking handler must not take the double down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_nanos() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// `/ready` as dskit-based servers answer it: not ready for the next `not_ready_calls` calls,
/// then whatever `ready` says.
#[derive(Debug)]
pub(crate) struct Readiness {
    pub(crate) ready: bool,
    pub(crate) not_ready_calls: u32,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: true,
            not_ready_calls: 0,
        }
    }
}

impl Readiness {
    /// Whether this call answers "ready" (consumes one not-ready call).
    pub(crate) fn check(&mut self) -> bool {
        if self.not_ready_calls > 0 {
            self.not_ready_calls -= 1;
            return false;
        }
        self.ready
    }
}

/// A double's own thread and current-thread runtime; dropping it stops both.
#[derive(Debug)]
pub(crate) struct DoubleThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DoubleThread {
    /// Runs `main()` on a new thread until it ends or this handle is dropped.
    pub(crate) fn spawn<F, Fut>(double: &'static str, main: F) -> Result<Self, StoreError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let runtime_error = |source| StoreError::Runtime { double, source };
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

/// Binds `127.0.0.1:port` (0: any free port) now, so the port is known before the double runs.
pub(crate) fn bind(port: u16) -> Result<(StdListener, u16), StoreError> {
    let bind_error = |source| StoreError::Bind { port, source };
    let listener = StdListener::bind(("127.0.0.1", port)).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, bound))
}

/// Counts open listeners and connections, so going down or up can wait until it took effect.
#[derive(Debug, Default)]
struct Gauge {
    open: Mutex<usize>,
    changed: Condvar,
}

/// One open listener or connection; dropping it closes the count.
#[derive(Debug)]
pub(crate) struct Open(Arc<Gauge>);

impl Open {
    fn new(gauge: &Arc<Gauge>) -> Self {
        *lock(&gauge.open) += 1;
        gauge.changed.notify_all();
        Self(Arc::clone(gauge))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut open = lock(&self.0.open);
        *open = open.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

/// Takes a double's listeners down (ports closed, connections dropped) and back up.
#[derive(Debug)]
pub(crate) struct Switch {
    down: watch::Sender<bool>,
    gauge: Arc<Gauge>,
    listeners: usize,
}

/// What [`serve`] needs from the [`Switch`] for one listener.
#[derive(Debug)]
pub(crate) struct Port {
    down: watch::Receiver<bool>,
    gauge: Arc<Gauge>,
    open: Open,
}

impl Switch {
    pub(crate) fn new() -> Self {
        Self {
            down: watch::Sender::new(false),
            gauge: Arc::default(),
            listeners: 0,
        }
    }

    /// Registers one more (already bound, hence open) listener.
    pub(crate) fn port(&mut self) -> Port {
        self.listeners += 1;
        Port {
            down: self.down.subscribe(),
            gauge: Arc::clone(&self.gauge),
            open: Open::new(&self.gauge),
        }
    }

    /// Closes every listener and connection; returns once they are closed (at most 5 s).
    pub(crate) fn set_down(&self) {
        self.down.send_replace(true);
        self.wait(|open| open == 0);
    }

    /// Binds the same ports again; returns once they listen (at most 5 s).
    pub(crate) fn set_up(&self) {
        self.down.send_replace(false);
        self.wait(|open| open >= self.listeners);
    }

    fn wait(&self, done: impl Fn(usize) -> bool) {
        let guard = lock(&self.gauge.open);
        let timeout = Duration::from_secs(5);
        let _ = self
            .gauge
            .changed
            .wait_timeout_while(guard, timeout, |open| !done(*open));
    }
}

/// Serves `app` on `listener` (HTTP/1.1) while the [`Switch`] is up. Going down closes the
/// listener and drops every open connection (clients see "connection refused" or a reset, as
/// with a stopped server); coming back up binds the same port anew.
pub(crate) async fn serve(listener: StdListener, app: Router, port: Port) {
    let Port {
        mut down,
        gauge,
        open,
    } = port;
    let number = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut current = tokio::net::TcpListener::from_std(listener)
        .ok()
        .map(|l| (l, open));
    loop {
        if let Some((up, open)) = current.take() {
            let connections = down.clone();
            loop {
                tokio::select! {
                    accepted = up.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let open = Open::new(&gauge);
                            let down = connections.clone();
                            tokio::spawn(connection(stream, app.clone(), down, open));
                        }
                    }
                    _ = down.wait_for(|d| *d) => break,
                }
            }
            drop((up, open));
        }
        if down.wait_for(|d| !*d).await.is_err() {
            return;
        }
        current = rebind(number).await.map(|l| (l, Open::new(&gauge)));
    }
}

async fn rebind(port: u16) -> Option<tokio::net::TcpListener> {
    for _ in 0..50 {
        let socket = TcpSocket::new_v4().ok()?;
        let _ = socket.set_reuseaddr(true);
        if socket.bind(([127, 0, 0, 1], port).into()).is_ok()
            && let Ok(listener) = socket.listen(1024)
        {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn connection(stream: TcpStream, app: Router, mut down: watch::Receiver<bool>, open: Open) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    let io = hyper_util::rt::TokioIo::new(stream);
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        _ = conn => {}
        _ = down.wait_for(|d| *d) => {}
    }
    drop(open);
}

/// The requests a double answered, shared with its recording middleware.
pub(crate) type Requests = Arc<Mutex<Vec<RecordedRequest>>>;

/// Middleware recording every answered request (method, path, status).
pub(crate) async fn record(
    State(requests): State<Requests>,
    request: Request,
    next: Next,
) -> Response {
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_owned(),
    );
    let response = next.run(request).await;
    let status = response.status().as_u16();
    lock(&requests).push(RecordedRequest {
        method,
        path,
        status,
    });
    response
}

/// Decoded `key=value` pairs of a query string (`+` is a space), in order.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The first value of `key` among `pairs`.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Receives what arrives at `receiver` and hands each new batch to `sink`, until the runtime
/// stops. Every span and log record reaches `sink` exactly once.
pub(crate) async fn pump(
    receiver: Arc<OtlpReceiver>,
    mut sink: impl FnMut(&[ReceivedSpan], &[ReceivedLogRecord]),
) {
    let (mut spans_seen, mut logs_seen) = (0, 0);
    loop {
        let news = |s: &otlp_receiver::Snapshot| {
            s.spans.len() != spans_seen || s.log_records.len() != logs_seen
        };
        let Ok(snapshot) = receiver.wait_until(Duration::from_secs(3600), news).await else {
            continue;
        };
        let spans = snapshot.spans.get(spans_seen..).unwrap_or_default();
        let logs = snapshot.log_records.get(logs_seen..).unwrap_or_default();
        sink(spans, logs);
        (spans_seen, logs_seen) = (snapshot.spans.len(), snapshot.log_records.len());
    }
}

/// Starts an [`OtlpReceiver`] on the current (double's) runtime and hands it back to the
/// starting thread through `reply`; returns it for the double's own use.
pub(crate) async fn start_receiver(
    double: &'static str,
    reply: std::sync::mpsc::Sender<Result<Arc<OtlpReceiver>, StoreError>>,
) -> Option<Arc<OtlpReceiver>> {
    match OtlpReceiver::start().await {
        Ok(receiver) => {
            let receiver = Arc::new(receiver);
            let _ = reply.send(Ok(Arc::clone(&receiver)));
            Some(receiver)
        }
        Err(e) => {
            let message = e.to_string();
            let _ = reply.send(Err(StoreError::Receiver { double, message }));
            None
        }
    }
}

/// Waits (bounded) for the receiver started by [`start_receiver`].
pub(crate) fn await_receiver(
    double: &'static str,
    reply: &std::sync::mpsc::Receiver<Result<Arc<OtlpReceiver>, StoreError>>,
) -> Result<Arc<OtlpReceiver>, StoreError> {
    match reply.recv_timeout(Duration::from_secs(10)) {
        Ok(result) => result,
        Err(e) => Err(StoreError::Receiver {
            double,
            message: format!("no answer from the double's thread: {e}"),
        }),
    }
}

/// A plain-text answer, as Go's `http.Error` writes it.
pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [
        (
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        ),
        (
            axum::http::header::HeaderName::from_static("x-content-type-options"),
            "nosniff",
        ),
    ];
    axum::response::IntoResponse::into_response((status, headers, body.into()))
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: &serde_json::Value) -> Response {
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    axum::response::IntoResponse::into_response((status, axum::Json(body)))
}

/// `time.Time` as Go's JSON encoding writes it in UTC (RFC 3339, nanoseconds, no trailing zeros).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    };
    let (h, m, sec) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}{frac}Z")
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 time (`2026-11-22T13:30:21.5Z`, `…+01:00`) into Unix nanoseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i128> {
    let num = |range: std::ops::Range<usize>| s.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let ok = s.get(4..5) == Some("-") && s.get(7..8) == Some("-") && s.get(13..14) == Some(":");
    if !ok || !matches!(s.get(10..11), Some("T" | "t" | " ")) || s.get(16..17) != Some(":") {
        return None;
    }
    let rest = s.get(19..)?;
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit())?),
        None => ("", rest),
    };
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").get(..9)?.parse().ok()?
    };
    let offset = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = match z.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = (
                z.get(1..3)?.parse::<i64>().ok()?,
                z.get(4..6)?.parse::<i64>().ok()?,
            );
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_795_354_221, 5_000);
        assert_eq!(rfc3339(t), "2026-11-22T13:30:21.000005Z");
        let ns = 1_795_354_221_000_005_000_i128;
        assert_eq!(parse_rfc3339("2026-11-22T13:30:21.000005Z"), Some(ns));
        assert_eq!(parse_rfc3339("2026-11-22T14:30:21.000005+01:00"), Some(ns));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
