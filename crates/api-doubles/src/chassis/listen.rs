//! A double's listeners on loopback: bound before the double runs, served (HTTP/1.1, HTTP/2 for
//! gRPC, optionally over TLS) while the [`Switch`] is up, closed with every kept-alive connection
//! when it goes down, and bound again on the same port when it comes back.

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use super::{Error, Served};
use crate::common::lock;

/// Binds `127.0.0.1:port` (0: any free port) now, so the port is known before the double runs.
pub(crate) fn bind(port: u16) -> Result<(StdListener, u16), Error> {
    let bind_error = |source| Error::Bind { port, source };
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
pub(crate) async fn serve(served: Served, port: Port) {
    let Served {
        listener,
        app,
        tls,
        h2,
        stays_up: _,
    } = served;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
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
                            let (app, tls) = (app.clone(), tls.clone());
                            tokio::spawn(accepted_connection(stream, tls, h2, app, down, open));
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

/// Serves one accepted connection: after a TLS handshake (bounded by
/// [`crate::tls::HANDSHAKE_TIMEOUT`]) when `tls` is set; HTTP/1.1, and HTTP/2 too when `h2`.
async fn accepted_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    h2: bool,
    app: Router,
    down: watch::Receiver<bool>,
    open: Open,
) {
    match tls {
        None => connection(stream, h2, app, down).await,
        Some(acceptor) => {
            let mut watcher = down.clone();
            let handshake =
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                shaken = handshake => shaken.ok().and_then(Result::ok),
                _ = watcher.wait_for(|d| *d) => None,
            };
            if let Some(stream) = stream {
                connection(stream, h2, app, down).await;
            }
        }
    }
    drop(open);
}

async fn connection<I>(io: I, h2: bool, app: Router, mut down: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let io = hyper_util::rt::TokioIo::new(io);
    if h2 {
        let builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        let conn = builder.serve_connection(io, service);
        tokio::select! {
            _ = conn => {}
            _ = down.wait_for(|d| *d) => {}
        }
    } else {
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::select! {
            _ = conn => {}
            _ = down.wait_for(|d| *d) => {}
        }
    }
}
