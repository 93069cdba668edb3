//! What the demo's (`cargo run -p demo`) embedded receiver (this crate) does with hostile exports: random bytes,
//! damaged valid requests, any content type, a gzip bomb, an oversized gRPC message. It answers
//! every one with a 4xx (OTLP/HTTP) or an error status (gRPC), never a 5xx or a hang, keeps
//! nothing from them, and still accepts a good export afterwards.
//!
//! Inputs tried per run: 768 HTTP requests (`PROPTEST_CASES` changes it) plus the fixed cases.
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
    #![proptest_config(ProptestConfig::with_cases(256))]

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

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_gzip_bomb_is_refused_without_inflating_it() {
    // 256 MiB of zeros, compressed to about 256 KiB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0_u8; 1 << 20];
    for _ in 0..256 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
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
    let huge = request("x".repeat(MAX_BODY_BYTES)).encode_to_vec();
    let status = post("/v1/traces", Some("application/x-protobuf"), None, huge);
    assert_eq!(status, 413);
    still_accepts_a_good_export("after-oversized-body");
}

#[test]
fn an_oversized_grpc_message_is_an_error_status_and_the_server_goes_on() {
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
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    let response: ExportTraceServiceResponse = small.unwrap().into_inner();
    assert!(response.partial_success.is_none());
}
