#![allow(clippy::unwrap_used, clippy::expect_used)]
//! OTLP over TLS with client certificates, against a real TLS receiver that verifies them
//! (certificates generated per test): the `OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_KEY` and
//! `_CLIENT_CERTIFICATE` variables work over HTTP and gRPC, and a wrong CA or a missing client
//! certificate is a bounded failure that is counted, never a hang.

mod support;

use std::time::Duration;

use otlp_receiver::OtlpReceiver;
use otlp_receiver::tls::{PkiFiles, TestPki};
use support::scenario;

/// Shutdown bound (5 s) plus process start and exit.
const BOUND: Duration = Duration::from_secs(5 + 3);

struct Pki {
    pki: TestPki,
    files: PkiFiles,
    _dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let pki = TestPki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write_to(dir.path()).unwrap();
    Pki {
        pki,
        files,
        _dir: dir,
    }
}

fn endpoint(receiver: &OtlpReceiver, protocol: &str) -> String {
    if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_endpoint()
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn spans_and_logs_arrive_over_mtls_on_both_protocols() {
    let p = pki();
    for protocol in ["http/protobuf", "grpc"] {
        let receiver = OtlpReceiver::start_tls(p.pki.mtls_settings())
            .await
            .unwrap();
        let endpoint = endpoint(&receiver, protocol);
        assert!(endpoint.starts_with("https://"), "{endpoint}");
        let run = scenario(
            &["checkout-report"],
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&p.files.ca)),
                // Per-signal for traces, general for logs: both forms are read.
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                    &path(&p.files.client_key),
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                    &path(&p.files.client_cert),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &path(&p.files.client_key)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    &path(&p.files.client_cert),
                ),
            ],
        )
        .await;
        run.assert_success();
        let r = run.result();
        assert_eq!(r["shutdown"], "ok", "{protocol}: {r}");
        assert_eq!(
            r["warnings"].as_array().unwrap().len(),
            0,
            "{protocol}: {r}"
        );
        let snapshot = receiver.snapshot();
        assert!(
            snapshot.spans.iter().any(|s| s.name() == "charge"),
            "{protocol}: spans arrive over mTLS"
        );
        assert!(
            !snapshot.log_records.is_empty(),
            "{protocol}: logs arrive over mTLS"
        );
        assert_eq!(snapshot.tls_handshake_failures, 0, "{protocol}");
        assert_eq!(r["spans_failed"], 0, "{protocol}: {r}");
    }
}

#[tokio::test]
async fn a_wrong_ca_or_a_missing_client_certificate_fails_bounded_and_counted() {
    let p = pki();
    for protocol in ["http/protobuf", "grpc"] {
        let cases: [(&str, Vec<(&str, String)>); 2] = [
            (
                "wrong CA",
                vec![
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&p.files.other_ca)),
                    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&p.files.client_key)),
                    (
                        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                        path(&p.files.client_cert),
                    ),
                ],
            ),
            (
                "no client certificate",
                vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&p.files.ca))],
            ),
        ];
        for (case, files) in cases {
            let receiver = OtlpReceiver::start_tls(p.pki.mtls_settings())
                .await
                .unwrap();
            let endpoint = endpoint(&receiver, protocol);
            let mut env: Vec<(&str, &str)> = vec![
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ];
            env.extend(files.iter().map(|(k, v)| (*k, v.as_str())));
            let run = scenario(&["checkout-report"], &env).await;
            run.assert_success();
            assert!(run.elapsed < BOUND, "{protocol}, {case}: {:?}", run.elapsed);
            let r = run.result();
            // The server may count a refused handshake just after the client gave up on it.
            let snapshot = receiver
                .wait_until(Duration::from_secs(10), |s| s.tls_handshake_failures > 0)
                .await
                .unwrap_or_else(|e| {
                    panic!("{protocol}, {case}: not refused at the handshake: {e}")
                });
            assert!(
                snapshot.spans.is_empty(),
                "{protocol}, {case}: nothing gets through"
            );
            assert!(
                r["spans_failed"].as_u64().unwrap() > 0 && r["spans_exported"] == 0,
                "{protocol}, {case}: the refused spans are counted as failed: {r}"
            );
            assert_ne!(
                r["shutdown"], "ok",
                "{protocol}, {case}: shutdown reports it: {r}"
            );
        }
    }
}

#[tokio::test]
async fn a_client_key_without_its_certificate_is_one_warning_naming_the_missing_variable() {
    let p = pki();
    let receiver = OtlpReceiver::start_tls(p.pki.server_only_settings())
        .await
        .unwrap();
    let endpoint = receiver.http_endpoint();
    let run = scenario(
        &["checkout-report"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &path(&p.files.ca)),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &path(&p.files.client_key)),
        ],
    )
    .await;
    run.assert_success();
    let r = run.result();
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("OTEL_EXPORTER_OTLP_CLIENT_KEY=")
            && w.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{w}"
    );
    // The server does not ask for a client certificate: export still works over TLS.
    assert!(
        receiver
            .snapshot()
            .spans
            .iter()
            .any(|s| s.name() == "charge")
    );
}
