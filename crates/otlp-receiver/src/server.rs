//! The gRPC (tonic) and HTTP/protobuf (axum) servers, and the export logic they share.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use logs_service_server::{LogsService, LogsServiceServer};
use metrics_service_server::{MetricsService, MetricsServiceServer};
use opentelemetry_proto::tonic::collector::{logs::v1::*, metrics::v1::*, trace::v1::*};
use prost::Message;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use trace_service_server::{TraceService, TraceServiceServer};

use crate::tls::{ServerConfigs, TlsListener};
use crate::{Behavior, MAX_BODY_BYTES, ReceiverError, RequestInfo, Shared, Signal, Snapshot};
use crate::{ReceivedLogRecord, ReceivedMetric, ReceivedSpan};
use crate::{Transport, push_capped};

const PROTOBUF: &str = "application/x-protobuf";
type TraceReq = ExportTraceServiceRequest;
type LogsReq = ExportLogsServiceRequest;
type MetricsReq = ExportMetricsServiceRequest;

/// One OTLP export request type, with what both servers need to know about it.
trait Export: Message + Default + Send + 'static {
    type Response: Message + Default + Send + 'static;
    type Item;
    const SIGNAL: Signal;
    const GRPC_PATH: &'static str;
    const HTTP_PATH: &'static str;
    /// One item per span / log record / metric, with its resource and scope.
    fn flatten(self, transport: Transport) -> Vec<Self::Item>;
    /// Where the items are kept.
    fn items(store: &mut Snapshot) -> &mut Vec<Self::Item>;
    /// Where the items are counted.
    fn received(store: &mut Snapshot) -> &mut u64;
    fn response(rejected: i64, error_message: String) -> Self::Response;
}

/// Implements [`Export`] for one signal: flattens resource → scope → items.
macro_rules! export_impl {
    ($($req:ty, $resp:ident, $partial:ident.$rejected:ident, $signal:ident, $grpc:literal,
     $http:literal, $resources:ident.$scopes:ident.$items:ident, $store:ident,
     $received:ident.$field:ident;)*) => {$(
        impl Export for $req {
            type Response = $resp;
            type Item = $received;
            const SIGNAL: Signal = Signal::$signal;
            const GRPC_PATH: &'static str = $grpc;
            const HTTP_PATH: &'static str = $http;
            fn flatten(self, transport: Transport) -> Vec<$received> {
                let mut out = Vec::new();
                for r in self.$resources {
                    // Shared, not copied: one resource with many attributes and many items
                            // must not cost attributes × items.
                    let resource = Arc::new(r.resource.unwrap_or_default());
                    for s in r.$scopes {
                        let scope = Arc::new(s.scope.unwrap_or_default());
                        let schema_url: Arc<str> = s.schema_url.into();
                        out.extend(s.$items.into_iter().map(|$field| $received {
                            resource: Arc::clone(&resource),
                            scope: Arc::clone(&scope),
                            scope_schema_url: Arc::clone(&schema_url),
                            $field,
                            transport,
                        }));
                    }
                }
                out
            }
            fn items(store: &mut Snapshot) -> &mut Vec<$received> {
                &mut store.$store
            }
            fn received(store: &mut Snapshot) -> &mut u64 {
                &mut store.received.$store
            }
            fn response(rejected: i64, error_message: String) -> $resp {
                let partial = rejected != 0 || !error_message.is_empty();
                let partial_success = partial.then(|| $partial {
                    $rejected: rejected,
                    error_message,
                });
                $resp { partial_success }
            }
        }
    )*};
}

// (request, response, partial success.rejected field, signal, gRPC path, HTTP path,
//  resource list.scope list.items, Snapshot field, received type.item field)
export_impl! {
    TraceReq, ExportTraceServiceResponse, ExportTracePartialSuccess.rejected_spans, Traces,
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export", "/v1/traces",
    resource_spans.scope_spans.spans, spans, ReceivedSpan.span;
    LogsReq, ExportLogsServiceResponse, ExportLogsPartialSuccess.rejected_log_records, Logs,
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export", "/v1/logs",
    resource_logs.scope_logs.log_records, log_records, ReceivedLogRecord.record;
    MetricsReq, ExportMetricsServiceResponse, ExportMetricsPartialSuccess.rejected_data_points,
    Metrics, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", "/v1/metrics",
    resource_metrics.scope_metrics.metrics, metrics, ReceivedMetric.metric;
}

/// How an export is answered when it is not a success.
enum Failure {
    Rejected { grpc: Code, http_status: u16 },
    ShuttingDown,
}

impl Shared {
    /// Applies the current [`Behavior`] to a decoded export: stores it, or says how to fail.
    async fn export<R: Export>(
        &self,
        (transport, path): (Transport, &str),
        headers: &HeaderMap,
        encoding: Option<&str>,
        request: R,
    ) -> Result<R::Response, Failure> {
        let (rejected, message) = match self.behavior() {
            Behavior::Accept => (0, String::new()),
            Behavior::PartialSuccess { rejected, message } => (rejected, message),
            Behavior::Reject { grpc, http_status } => {
                return Err(Failure::Rejected { grpc, http_status });
            }
            Behavior::Hang => {
                self.shutdown_signal().await;
                return Err(Failure::ShuttingDown);
            }
        };
        let items = request.flatten(transport);
        let lossy = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let info = RequestInfo {
            signal: R::SIGNAL,
            transport,
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), lossy(v)))
                .collect(),
            content_encoding: encoding
                .map(str::to_ascii_lowercase)
                .filter(|e| e != "identity"),
            item_count: items.len(),
        };
        let count = u64::try_from(items.len()).unwrap_or(u64::MAX);
        self.store(|s| {
            *R::received(s) = R::received(s).saturating_add(count);
            push_capped(&mut s.requests, vec![info]) + push_capped(R::items(s), items)
        });
        Ok(R::response(rejected, message))
    }
}

/// Binds (port 0: any) and spawns both servers, plain or over TLS; returns the bound
/// `(grpc_port, http_port)`.
pub(crate) async fn spawn(
    shared: &Arc<Shared>,
    grpc_port: u16,
    http_port: u16,
    tls: Option<ServerConfigs>,
) -> Result<(u16, u16), ReceiverError> {
    let (grpc, grpc_addr) = bind(Transport::Grpc, grpc_port).await?;
    let (http, http_addr) = bind(Transport::Http, http_port).await?;

    let svc = GrpcService(Arc::clone(shared));
    macro_rules! limits {
        ($server:expr) => {
            $server
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_BODY_BYTES)
        };
    }
    let grpc_server = tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(otlp_grpc_status))
        .add_service(limits!(TraceServiceServer::new(svc.clone())))
        .add_service(limits!(LogsServiceServer::new(svc.clone())))
        .add_service(limits!(MetricsServiceServer::new(svc)));

    let app = axum::Router::new()
        .route(TraceReq::HTTP_PATH, post(http_export::<TraceReq>))
        .route(LogsReq::HTTP_PATH, post(http_export::<LogsReq>))
        .route(MetricsReq::HTTP_PATH, post(http_export::<MetricsReq>))
        .with_state(Arc::clone(shared));

    match tls {
        None => {
            let incoming = TcpIncoming::from(grpc);
            let grpc_server =
                grpc_server.serve_with_incoming_shutdown(incoming, shared.shutdown_signal());
            tokio::spawn(grpc_server);
            let http_server =
                axum::serve(http, app).with_graceful_shutdown(shared.shutdown_signal());
            tokio::spawn(async move { http_server.await });
        }
        Some(configs) => {
            let grpc = TlsListener::spawn(shared, Transport::Grpc, grpc, grpc_addr, configs.grpc);
            let incoming = grpc.into_stream();
            let grpc_server =
                grpc_server.serve_with_incoming_shutdown(incoming, shared.shutdown_signal());
            tokio::spawn(grpc_server);
            let http = TlsListener::spawn(shared, Transport::Http, http, http_addr, configs.http);
            let http_server =
                axum::serve(http, app).with_graceful_shutdown(shared.shutdown_signal());
            tokio::spawn(async move { http_server.await });
        }
    }
    Ok((grpc_addr.port(), http_addr.port()))
}

async fn bind(transport: Transport, port: u16) -> Result<(TcpListener, SocketAddr), ReceiverError> {
    let bind_err = |source| ReceiverError::Bind { transport, source };
    let loopback = (Ipv4Addr::LOCALHOST, port);
    let listener = TcpListener::bind(loopback).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    Ok((listener, addr))
}

/// Rewrites the statuses tonic gives request bodies it refuses before any handler runs, to
/// what the OTLP specification asks for: a message over the size limit is `RESOURCE_EXHAUSTED`
/// (tonic says `OUT_OF_RANGE`, which OTLP clients retry forever); a body that is not valid
/// protobuf (or not valid gzip) is `INVALID_ARGUMENT` (tonic says `INTERNAL`). Those refusals
/// are trailers-only responses, so the status is in the headers.
fn otlp_grpc_status(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let message = headers
        .get("grpc-message")
        .map(|m| String::from_utf8_lossy(m.as_bytes()).to_ascii_lowercase())
        .unwrap_or_default();
    let code = match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"11") if message.contains("too%20large") || message.contains("too large") => {
            Code::ResourceExhausted
        }
        Some(b"13") if message.contains("decod") || message.contains("decompress") => {
            Code::InvalidArgument
        }
        _ => return response,
    };
    headers.insert("grpc-status", http::HeaderValue::from(code as i32));
    response
}

#[derive(Clone)]
struct GrpcService(Arc<Shared>);

impl From<Failure> for tonic::Status {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Rejected { grpc, .. } => tonic::Status::new(grpc, REJECTED),
            Failure::ShuttingDown => tonic::Status::unavailable(SHUTTING_DOWN),
        }
    }
}

const REJECTED: &str = "rejected by the test OTLP receiver (Behavior::Reject)";
const SHUTTING_DOWN: &str = "the test OTLP receiver is shutting down";

async fn grpc_export<R: Export>(
    shared: &Shared,
    request: tonic::Request<R>,
) -> Result<tonic::Response<R::Response>, tonic::Status> {
    let headers = request.metadata().clone().into_headers();
    let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
    let (target, request) = ((Transport::Grpc, R::GRPC_PATH), request.into_inner());
    let response = shared.export(target, &headers, encoding, request).await?;
    Ok(tonic::Response::new(response))
}

/// Implements one generated gRPC service trait by delegating to [`grpc_export`].
macro_rules! grpc_service {
    ($trait:ident, $req:ty, $resp:ty) => {
        #[tonic::async_trait]
        impl $trait for GrpcService {
            async fn export(
                &self,
                request: tonic::Request<$req>,
            ) -> Result<tonic::Response<$resp>, tonic::Status> {
                grpc_export(&self.0, request).await
            }
        }
    };
}

grpc_service! { TraceService, TraceReq, ExportTraceServiceResponse }
grpc_service! { LogsService, LogsReq, ExportLogsServiceResponse }
grpc_service! { MetricsService, MetricsReq, ExportMetricsServiceResponse }

/// An HTTP failure answer: status, `google.rpc.Status` code and message.
struct HttpError(StatusCode, Code, String);

/// `google.rpc.Status`, the OTLP/HTTP error body (details omitted).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (code, message) = (self.1.into(), self.2);
        let body = RpcStatus { code, message };
        (self.0, [(CONTENT_TYPE, PROTOBUF)], body.encode_to_vec()).into_response()
    }
}

impl From<Failure> for HttpError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Rejected { grpc, http_status } => {
                let status = StatusCode::from_u16(http_status);
                let status = status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                HttpError(status, grpc, REJECTED.into())
            }
            Failure::ShuttingDown => http_error(StatusCode::SERVICE_UNAVAILABLE, SHUTTING_DOWN),
        }
    }
}

/// An [`HttpError`] whose `google.rpc.Status` code follows from the HTTP status.
fn http_error(status: StatusCode, message: impl Into<String>) -> HttpError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::InvalidArgument,
    };
    HttpError(status, code, message.into())
}

async fn http_export<R: Export>(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, HttpError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let media_type = header(CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(PROTOBUF)) {
        let msg = format!("only {PROTOBUF} is supported, got {media_type:?}");
        return Err(http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
    }
    let declared = header(http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    let body = read_body(body, declared).await?;
    let encoding = header(CONTENT_ENCODING);
    let raw = match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("identity") => body,
        Some("gzip") => gunzip(&body)?.into(),
        Some(other) => {
            let msg = format!("unknown Content-Encoding {other}");
            return Err(http_error(StatusCode::BAD_REQUEST, msg));
        }
    };
    let bad_body = |e| http_error(StatusCode::BAD_REQUEST, format!("bad protobuf body: {e}"));
    let request = R::decode(raw).map_err(bad_body)?;
    let target = (Transport::Http, R::HTTP_PATH);
    let response = shared.export(target, &headers, encoding, request).await?;
    Ok(([(CONTENT_TYPE, PROTOBUF)], response.encode_to_vec()).into_response())
}

/// How long an over-limit body is read and thrown away before the 413 is sent.
const DISCARD_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads `body`, keeping at most [`MAX_BODY_BYTES`]; beyond that (or when the declared length
/// is beyond it) answers 413.
///
/// Before answering 413 it reads and drops what the client is still sending, for at most
/// [`DISCARD_FOR`] and `2 × MAX_BODY_BYTES`: a client that writes its whole body before reading
/// the answer then gets the 413 (which OTLP clients do not retry) instead of a reset
/// connection (which they do), and a client that declares gigabytes and sends nothing holds
/// the connection for at most that second. Memory: `MAX_BODY_BYTES` per request, never more.
async fn read_body(mut body: axum::body::Body, declared: Option<u64>) -> Result<Bytes, HttpError> {
    use http_body_util::BodyExt as _;
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX);
    let mut kept = bytes::BytesMut::new();
    if declared.is_none_or(|n| n <= limit) {
        loop {
            match body.frame().await {
                None => return Ok(kept.freeze()),
                Some(Err(e)) => {
                    let msg = format!("cannot read the body: {e}");
                    return Err(http_error(StatusCode::BAD_REQUEST, msg));
                }
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    if kept.len() + data.len() > MAX_BODY_BYTES {
                        break;
                    }
                    kept.extend_from_slice(data);
                }
            }
        }
    }
    drop(kept);
    let discard = async {
        let mut seen = 0_usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > 2 * MAX_BODY_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_FOR, discard).await;
    let msg = format!("the body exceeds {MAX_BODY_BYTES} bytes");
    Err(http_error(StatusCode::PAYLOAD_TOO_LARGE, msg))
}

/// Decompresses a gzip body, refusing more than [`MAX_BODY_BYTES`] of output.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit);
    if let Err(e) = decoder.read_to_end(&mut out) {
        return Err(http_error(
            StatusCode::BAD_REQUEST,
            format!("invalid gzip body: {e}"),
        ));
    }
    if out.len() > MAX_BODY_BYTES {
        let msg = format!("decompressed body exceeds {MAX_BODY_BYTES} bytes");
        return Err(http_error(StatusCode::PAYLOAD_TOO_LARGE, msg));
    }
    Ok(out)
}
