//! The multi-tenant Tempo's own OTLP trace intake (its distributor's 4317 and 4318), which needs
//! each export's `X-Scope-OrgID`: the shared `otlp-receiver` answers every export alike, so it
//! cannot refuse one tenant-less push and take the next.
//!
//! As recorded (`tempo_mt_otlp_push_no_org_id.txt`): an OTLP/HTTP protobuf push without the
//! header answers **503** with a protobuf `google.rpc.Status` `{code: 14 UNAVAILABLE, message:
//! "no org id"}` (a retryable status for OTLP clients); with it, 200 and an empty
//! `ExportTraceServiceResponse`. Over gRPC the same error is status UNAVAILABLE `no org id` (the
//! collector receiver inside Tempo maps the error to one status for both transports; not
//! recorded). The body is checked before the tenant, as the receiver decodes before the
//! distributor looks for the tenant: a malformed body is 400 with or without a tenant.
//!
//! Like the shared receiver: protobuf bodies only (JSON answers 415: not modelled), gzip
//! accepted, bodies beyond `otlp_receiver::MAX_BODY_BYTES` refused, and while the double is
//! "down" exports are refused with UNAVAILABLE / 503 (the ports stay open).

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use otlp_receiver::{MAX_BODY_BYTES, ReceivedSpan, Transport};
use prost::Message as _;
use tonic::codec::CompressionEncoding;

use super::Shared;
use crate::common::lock;
use crate::tenancy::{NO_ORG_ID, ORG_ID_HEADER, TenantError, parse_org_id};

const PROTOBUF: &str = "application/x-protobuf";
const DOWN: &str = "the Tempo double is down";

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The gRPC (h2) and HTTP routers of the intake.
pub(super) fn routers(shared: &Arc<Shared>) -> (Router, Router) {
    let grpc = TraceServiceServer::new(Grpc(Arc::clone(shared)))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_BODY_BYTES);
    let grpc = tonic::service::Routes::new(grpc).into_axum_router();
    let http = Router::new()
        .route("/v1/traces", post(http_export))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::clone(shared));
    (grpc, http)
}

/// Why an export is refused: the gRPC code and the message.
type Refusal = (tonic::Code, String);

/// Stores `request` under the tenant `org_id` says, or says why not.
fn export(
    shared: &Shared,
    org_id: Option<&[u8]>,
    request: ExportTraceServiceRequest,
    transport: Transport,
) -> Result<(), Refusal> {
    let tenant = match parse_org_id(org_id.unwrap_or_default()) {
        Ok(tenant) => tenant,
        Err(TenantError::Missing) => return Err((tonic::Code::Unavailable, NO_ORG_ID.into())),
        Err(TenantError::NotModelled(rule)) => {
            let message = format!("not modelled by the Tempo double ({ORG_ID_HEADER}): {rule}");
            return Err((tonic::Code::InvalidArgument, message));
        }
    };
    let mut spans = Vec::new();
    for rs in request.resource_spans {
        let resource = Arc::new(rs.resource.unwrap_or_default());
        for ss in rs.scope_spans {
            let scope = Arc::new(ss.scope.unwrap_or_default());
            let schema_url: Arc<str> = ss.schema_url.into();
            spans.extend(ss.spans.into_iter().map(|span| ReceivedSpan {
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
                scope_schema_url: Arc::clone(&schema_url),
                span,
                transport,
            }));
        }
    }
    lock(&shared.traces).ingest(&tenant, &spans);
    Ok(())
}

#[derive(Debug, Clone)]
struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.0.faults.is_down() {
            return Err(tonic::Status::unavailable(DOWN));
        }
        let org_id = request
            .metadata()
            .get("x-scope-orgid")
            .map(|v| v.as_bytes().to_vec());
        match export(
            &self.0,
            org_id.as_deref(),
            request.into_inner(),
            Transport::Grpc,
        ) {
            Ok(()) => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Err((code, message)) => Err(tonic::Status::new(code, message)),
        }
    }
}

fn status(http: StatusCode, code: tonic::Code, message: impl Into<String>) -> Response {
    let body = RpcStatus {
        code: code.into(),
        message: message.into(),
    };
    (
        http,
        [(header::CONTENT_TYPE, PROTOBUF)],
        body.encode_to_vec(),
    )
        .into_response()
}

async fn http_export(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if shared.faults.is_down() {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            DOWN,
        );
    }
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let media_type = header(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(PROTOBUF)) {
        let message = format!(
            "not modelled by the Tempo double: only {PROTOBUF} is supported, got {media_type:?}"
        );
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            message,
        );
    }
    let raw = match header(header::CONTENT_ENCODING).map(str::to_ascii_lowercase) {
        None => body.to_vec(),
        Some(e) if e == "identity" => body.to_vec(),
        Some(e) if e == "gzip" => {
            let mut out = Vec::new();
            let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out);
            match read {
                Ok(_) if out.len() <= MAX_BODY_BYTES => out,
                Ok(_) => {
                    let message = format!("the body exceeds {MAX_BODY_BYTES} bytes");
                    let code = tonic::Code::ResourceExhausted;
                    return status(StatusCode::PAYLOAD_TOO_LARGE, code, message);
                }
                Err(e) => {
                    let message = format!("invalid gzip body: {e}");
                    return status(
                        StatusCode::BAD_REQUEST,
                        tonic::Code::InvalidArgument,
                        message,
                    );
                }
            }
        }
        Some(other) => {
            let message = format!("unknown Content-Encoding {other}");
            return status(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                message,
            );
        }
    };
    let request = match ExportTraceServiceRequest::decode(&raw[..]) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("bad protobuf body: {e}");
            return status(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                message,
            );
        }
    };
    let org_id = headers.get(ORG_ID_HEADER).map(|v| v.as_bytes());
    match export(&shared, org_id, request, Transport::Http) {
        Ok(()) => {
            let body = ExportTraceServiceResponse::default().encode_to_vec();
            (StatusCode::OK, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
        }
        Err((code, message)) => {
            let http = if code == tonic::Code::Unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            status(http, code, message)
        }
    }
}
