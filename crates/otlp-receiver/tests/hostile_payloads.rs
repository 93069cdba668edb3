//! What the demo's (`cargo run -p demo`) embedded receiver (this crate) does with hostile exports: random bytes,
//! damaged valid requests, any content type, a gzip bomb, an oversized gRPC message. It answers
//! every one with a 4xx (OTLP/HTTP) or an error status (gRPC), never a 5xx or a hang, keeps
//! nothing from them, and still accepts a good export afterwards.
//!
//! The same on OTLP/gRPC, with the codes the OTLP specification gives: a body that is not valid
//! protobuf is `INVALID_ARGUMENT`, one over the size limit (declared or inflated) is
//! `RESOURCE_EXHAUSTED`. Values nested thousands deep are refused (prost stops at 100 levels);
//! a huge attribute count within the size limit is valid OTLP and accepted, its resource shared
//! by its items rather than copied into each.
//!
//! Inputs tried per run: 768 HTTP and 128 gRPC requests (`PROPTEST_CASES` changes it) plus the
//! fixed cases.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_receiver::{MAX_BODY_BYTES, OtlpReceiver};
use proptest::prelude::*;
use prost::Message;

const PATHS: [&str; 3] = ["/v1/traces", "/v1/logs", "/v1/metrics"];

fn request(span_name: String) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: span_name,
                    trace_id: vec![0xab; 16],
                    span_id: vec![1; 8],
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// One receiver and runtime for every case (a receiver per case would test start-up instead).
struct Fixture {
    runtime: tokio::runtime::Runtime,
    receiver: OtlpReceiver,
    client: reqwest::Client,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let receiver = runtime.block_on(OtlpReceiver::start()).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Fixture {
            runtime,
            receiver,
            client,
        }
    })
}

/// POSTs and returns the status; a timeout or connection error fails the test.
fn post(path: &str, content_type: Option<&str>, encoding: Option<&str>, body: Vec<u8>) -> u16 {
    let f = fixture();
    let mut request = f
        .client
        .post(format!("{}{path}", f.receiver.http_endpoint()));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    f.runtime
        .block_on(async { request.body(body).send().await })
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("no answer to a hostile POST {path}: {e}"))
}

/// The receiver still takes a good export and stores it (tests share the receiver and run in
/// parallel, so each good export carries a unique name).
fn still_accepts_a_good_export(what: &str) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "{what}-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let body = request(name.clone()).encode_to_vec();
    assert_eq!(
        post("/v1/traces", Some("application/x-protobuf"), None, body),
        200,
        "a good export after {what}"
    );
    let spans = fixture().receiver.snapshot().spans;
    assert!(spans.iter().any(|s| s.name() == name), "{name} stored");
}

/// A valid encoded request with bytes overwritten, truncated, or both.
fn damaged_request() -> impl Strategy<Value = Vec<u8>> {
    (
        "[a-z]{1,40}",
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        any::<Option<usize>>(),
    )
        .prop_map(|(name, flips, cut)| {
            let mut bytes = request(name).encode_to_vec();
            let len = bytes.len();
            for (at, value) in flips {
                bytes[at % len] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (len + 1));
            }
            bytes
        })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(Some("application/x-protobuf".to_string())),
        Just(Some("application/x-protobuf; charset=utf-8".to_string())),
        Just(Some("application/json".to_string())),
        Just(None),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

fn is_protobuf(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-protobuf"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_get_a_4xx_or_decode(
        path in prop::sample::select(PATHS.to_vec()),
        content_type in content_type(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        gzip in any::<bool>(),
    ) {
        let encoding = gzip.then_some("gzip");
        let status = post(path, content_type.as_deref(), encoding, body);
        if !is_protobuf(content_type.as_deref()) {
            prop_assert_eq!(status, 415);
        } else {
            // Random bytes can be a valid protobuf message (an empty body is one).
            prop_assert!(status == 200 || status == 400, "status {}", status);
        }
        still_accepts_a_good_export("random-bytes");
    }

    #[test]
    fn damaged_requests_get_a_4xx_or_decode(body in damaged_request()) {
        let status = post("/v1/traces", Some("application/x-protobuf"), None, body);
        prop_assert!(status == 200 || status == 400, "status {}", status);
        still_accepts_a_good_export("damaged-request");
    }

    #[test]
    fn unknown_content_encodings_are_refused(encoding in "[a-z0-9-]{1,16}") {
        prop_assume!(encoding != "gzip" && encoding != "identity");
        let body = request("x".into()).encode_to_vec();
        let status = post("/v1/traces", Some("application/x-protobuf"), Some(&encoding), body);
        prop_assert_eq!(status, 400);
        still_accepts_a_good_export("unknown-encoding");
    }
}

/// Held by the tests that measure RSS (the process's, shared by every test thread), so one's
/// allocations do not show in another's measurement.
fn measuring() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_without_inflating_it() {
    let _measuring = measuring();
    let bomb = gzip_bomb().to_vec();
    assert!(bomb.len() < MAX_BODY_BYTES / 16, "{} bytes", bomb.len());
    let before = rss_kib();
    let status = post(
        "/v1/logs",
        Some("application/x-protobuf"),
        Some("gzip"),
        bomb,
    );
    assert_eq!(status, 413, "a body that inflates past MAX_BODY_BYTES");
    // It stops inflating at the limit (16 MiB): far below the 256 MiB the bomb holds.
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    still_accepts_a_good_export("after-gzip-bomb");
}

#[test]
fn an_oversized_body_is_refused() {
    let _measuring = measuring();
    let huge = request("x".repeat(MAX_BODY_BYTES)).encode_to_vec();
    let status = post("/v1/traces", Some("application/x-protobuf"), None, huge);
    assert_eq!(status, 413);
    still_accepts_a_good_export("after-oversized-body");
}

#[test]
fn an_oversized_grpc_message_is_an_error_status_and_the_server_goes_on() {
    let _measuring = measuring();
    let f = fixture();
    let endpoint = f.receiver.grpc_endpoint();
    let result = f.runtime.block_on(async {
        let mut client = TraceServiceClient::connect(endpoint)
            .await
            .unwrap()
            .max_encoding_message_size(usize::MAX);
        let huge = client.export(request("x".repeat(MAX_BODY_BYTES))).await;
        let small = client.export(request("after-grpc".into())).await;
        (huge, small)
    });
    let (huge, small) = result;
    let status = huge.unwrap_err();
    // RESOURCE_EXHAUSTED, as OTLP says (tonic's own OUT_OF_RANGE is retried by OTLP clients).
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let response: ExportTraceServiceResponse = small.unwrap().into_inner();
    assert!(response.partial_success.is_none());
}

// ---- OTLP/gRPC with arbitrary bodies ----

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC codec that sends and receives raw bytes, so a test can send any body as a message.
#[derive(Clone, Copy, Debug, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Exports `body` as one gRPC trace message; the status code (`Ok` when accepted).
fn grpc_raw(body: Vec<u8>) -> tonic::Code {
    let f = fixture();
    let endpoint = f.receiver.grpc_endpoint();
    f.runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(TRACE_EXPORT);
        match grpc.unary(tonic::Request::new(body), path, Raw).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        }
    })
}

/// Sends one gRPC frame by hand over h2c: `flag` 1 says gzip, `declared` is the length in the
/// frame header (which may lie). Returns the HTTP status and the `grpc-status` of a
/// trailers-only answer (refusals are trailers-only).
fn grpc_frame(flag: u8, declared: u32, payload: &[u8]) -> (u16, Option<String>) {
    let f = fixture();
    let mut frame = vec![flag];
    frame.extend_from_slice(&declared.to_be_bytes());
    frame.extend_from_slice(payload);
    let url = format!("{}{TRACE_EXPORT}", f.receiver.grpc_endpoint());
    f.runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut request = client
            .post(url)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if flag == 1 {
            request = request.header("grpc-encoding", "gzip");
        }
        let response = request
            .body(frame)
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer to a hand-made gRPC frame: {e}"));
        let status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), status)
    })
}

fn still_accepts_a_good_grpc_export(what: &str) {
    let body = request(format!("grpc-{what}")).encode_to_vec();
    assert_eq!(
        grpc_raw(body),
        tonic::Code::Ok,
        "a good gRPC export after {what}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_grpc_bodies_are_invalid_argument_or_decode(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let code = grpc_raw(body);
        prop_assert!(matches!(code, tonic::Code::Ok | tonic::Code::InvalidArgument), "{:?}", code);
        still_accepts_a_good_grpc_export("random-bytes");
    }

    #[test]
    fn damaged_grpc_requests_are_invalid_argument_or_decode(body in damaged_request()) {
        let code = grpc_raw(body);
        prop_assert!(matches!(code, tonic::Code::Ok | tonic::Code::InvalidArgument), "{:?}", code);
        still_accepts_a_good_grpc_export("damaged-request");
    }
}

#[test]
fn a_truncated_grpc_request_is_invalid_argument() {
    let mut body = request("cut".into()).encode_to_vec();
    body.truncate(body.len() - 3);
    assert_eq!(grpc_raw(body), tonic::Code::InvalidArgument);
    still_accepts_a_good_grpc_export("truncated");
}

/// 256 MiB of zeros, gzipped to about 256 KiB (made once: compressing it is the slow part).
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0_u8; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&chunk).unwrap();
        }
        encoder.finish().unwrap()
    })
}

#[test]
fn a_grpc_gzip_bomb_is_resource_exhausted_without_inflating_it() {
    let _measuring = measuring();
    let bomb = gzip_bomb();
    let before = rss_kib();
    let (http, status) = grpc_frame(1, u32::try_from(bomb.len()).unwrap(), bomb);
    let grown = rss_kib().saturating_sub(before);
    eprintln!("gRPC gzip bomb: RSS grew {grown} KiB");
    assert_eq!(
        (http, status.as_deref()),
        (200, Some("8")),
        "RESOURCE_EXHAUSTED"
    );
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    still_accepts_a_good_grpc_export("gzip-bomb");
}

#[test]
fn a_grpc_frame_declaring_more_than_the_limit_is_resource_exhausted_at_once() {
    // The header claims 4 GiB; ten bytes follow. Nothing waits for (or reserves) the rest.
    let (http, status) = grpc_frame(0, u32::MAX, &[0; 10]);
    assert_eq!(
        (http, status.as_deref()),
        (200, Some("8")),
        "RESOURCE_EXHAUSTED"
    );
    still_accepts_a_good_grpc_export("declared-too-large");
}

#[test]
fn an_oversized_declared_content_length_is_413_within_a_second() {
    use std::io::{Read, Write};
    let f = fixture();
    let address = f.receiver.http_endpoint().replace("http://", "");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = "POST /v1/traces HTTP/1.1\r\nhost: receiver\r\n\
                content-type: application/x-protobuf\r\ncontent-length: 17179869184\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[0x0a; 64]).unwrap();
    let started = std::time::Instant::now();
    let mut answer = [0_u8; 64];
    let n = stream
        .read(&mut answer)
        .unwrap_or_else(|e| panic!("no answer while the declared body is unsent: {e}"));
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The receiver waits at most a second for a body it will refuse anyway.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    still_accepts_a_good_export("declared-content-length");
}

// ---- Deep nesting and huge attribute counts ----

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited protobuf field.
fn field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    varint(((tag << 3) | 2) as usize, &mut out);
    varint(payload.len(), &mut out);
    out.extend_from_slice(payload);
    out
}

/// An export holding one span whose attribute `deep` is an AnyValue nested `depth` levels,
/// alternating arrays and key-value lists (built as bytes: no recursion in the test either).
fn deeply_nested_request(depth: usize) -> Vec<u8> {
    let mut value = field(1, b"leaf"); // AnyValue { string_value }
    for level in 0..depth {
        value = if level % 2 == 0 {
            field(5, &field(1, &value)) // AnyValue { array_value: ArrayValue { values } }
        } else {
            let kv = [field(1, b"k"), field(2, &value)].concat(); // KeyValue { key, value }
            field(6, &field(1, &kv)) // AnyValue { kvlist_value: KeyValueList { values } }
        };
    }
    let attribute = [field(1, b"deep"), field(2, &value)].concat();
    let span = [
        field(1, &[0xab; 16]),
        field(2, &[2; 8]),
        field(9, &attribute),
    ]
    .concat();
    // ExportTraceServiceRequest { resource_spans: [ResourceSpans { scope_spans: [{ spans }] }] }
    field(1, &field(2, &field(2, &span)))
}

#[test]
fn values_nested_thousands_deep_are_refused_on_both_transports() {
    let body = deeply_nested_request(5_000);
    let status = post(
        "/v1/traces",
        Some("application/x-protobuf"),
        None,
        body.clone(),
    );
    assert_eq!(status, 400);
    still_accepts_a_good_export("deep-nesting");
    assert_eq!(grpc_raw(body), tonic::Code::InvalidArgument);
    still_accepts_a_good_grpc_export("deep-nesting");
    // Nesting within prost's limit is ordinary data.
    let shallow = deeply_nested_request(20);
    let status = post("/v1/traces", Some("application/x-protobuf"), None, shallow);
    assert_eq!(status, 200);
}

#[test]
fn a_resource_with_many_attributes_is_stored_once_not_once_per_span() {
    let _measuring = measuring();
    // 200,000 attributes on the resource (about 1 MiB) and 200,000 empty spans (about 400 KiB):
    // copied into each span it would be 40 billion attributes.
    let attribute = field(1, b"a"); // KeyValue { key: "a" }
    let resource = field(1, &attribute).repeat(200_000);
    let spans = field(2, &[]).repeat(200_000); // ScopeSpans { spans: [Span {}] * n }
    let resource_spans = [field(1, &resource), field(2, &spans)].concat();
    let body = field(1, &resource_spans);
    assert!(body.len() < MAX_BODY_BYTES);
    let before = rss_kib();
    let status = post("/v1/traces", Some("application/x-protobuf"), None, body);
    let grown = rss_kib().saturating_sub(before);
    eprintln!("shared resource of 200,000 attributes × 200,000 spans: RSS grew {grown} KiB");
    assert_eq!(status, 200);
    assert!(grown < 512 * 1024, "RSS grew {grown} KiB");
    still_accepts_a_good_export("huge-resource");
}

#[test]
fn a_span_with_a_million_attributes_within_the_size_limit_is_accepted() {
    let _measuring = measuring();
    let attribute = field(1, b"a");
    let span = [
        field(1, &[0xcd; 16]),
        field(2, &[3; 8]),
        field(9, &attribute).repeat(1_000_000),
    ]
    .concat();
    let body = field(1, &field(2, &field(2, &span)));
    eprintln!("a million attributes: {} bytes", body.len());
    assert!(body.len() < MAX_BODY_BYTES);
    let before = rss_kib();
    let status = post("/v1/traces", Some("application/x-protobuf"), None, body);
    let grown = rss_kib().saturating_sub(before);
    eprintln!("a span with a million attributes: RSS grew {grown} KiB");
    assert_eq!(status, 200);
    assert!(grown < 512 * 1024, "RSS grew {grown} KiB");
    still_accepts_a_good_export("million-attributes");
}
