#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `platform_telemetry::init()` in a separate process, configured only by `OTEL_*` variables,
//! observed on a real OTLP receiver (gRPC and HTTP/protobuf, decoded with opentelemetry-proto).

mod support;

use std::time::Duration;

use otlp_receiver::{Behavior, OtlpReceiver, Signal, Snapshot, Transport};
use support::{closed_endpoint, scenario};

const WAIT: Duration = Duration::from_secs(20);

/// Spans of the `checkout` scenario are `checkout` (root) and `charge` (child).
fn assert_checkout_trace(snapshot: &Snapshot, service: &str) -> (String, String, String) {
    let checkout = snapshot
        .spans
        .iter()
        .find(|s| s.name() == "checkout")
        .expect("checkout span arrived");
    let charge = snapshot
        .spans
        .iter()
        .find(|s| s.name() == "charge")
        .expect("charge span arrived");
    assert_eq!(checkout.trace_id_hex(), charge.trace_id_hex(), "one trace");
    assert_eq!(checkout.parent_span_id_hex(), None, "checkout is the root");
    assert_eq!(
        charge.parent_span_id_hex(),
        Some(checkout.span_id_hex()),
        "charge is checkout's child"
    );
    assert_eq!(checkout.service_name().as_deref(), Some(service));
    assert_eq!(checkout.attr("order.id").as_deref(), Some("42"));
    assert_eq!(charge.attr("payment.method").as_deref(), Some("card"));
    (
        checkout.trace_id_hex(),
        checkout.span_id_hex(),
        charge.span_id_hex(),
    )
}

fn has_checkout(s: &Snapshot) -> bool {
    s.spans.iter().any(|s| s.name() == "charge") && s.log_records.len() >= 2
}

async fn checkout_arrives(protocol: &str, transport: Transport) {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = match transport {
        Transport::Grpc => receiver.grpc_endpoint(),
        Transport::Http => receiver.http_endpoint(),
    };
    let run = scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "checkout-svc"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
        ],
    )
    .await;
    run.assert_success();
    let snapshot = receiver
        .wait_until(WAIT, |s| has_checkout(s) && !s.metrics.is_empty())
        .await
        .unwrap();
    let (trace_id, checkout_id, charge_id) = assert_checkout_trace(&snapshot, "checkout-svc");
    assert!(snapshot.requests.iter().all(|r| r.transport == transport));

    // OTLP log records carry the ids of the span they were written in.
    let started = snapshot
        .log_records
        .iter()
        .find(|l| l.body_text().as_deref() == Some("checkout started"))
        .expect("log record 'checkout started'");
    assert_eq!(started.trace_id_hex().as_deref(), Some(trace_id.as_str()));
    assert_eq!(started.span_id_hex().as_deref(), Some(checkout_id.as_str()));
    assert_eq!(started.attr("step").as_deref(), Some("begin"));
    let charged = snapshot
        .log_records
        .iter()
        .find(|l| l.body_text().as_deref() == Some("card charged"))
        .expect("log record 'card charged'");
    assert_eq!(charged.span_id_hex().as_deref(), Some(charge_id.as_str()));
    assert_eq!(charged.service_name().as_deref(), Some("checkout-svc"));

    // Stdout JSON carries the same ids.
    let line = run.json_log("card charged");
    assert_eq!(line["trace_id"], trace_id.as_str());
    assert_eq!(line["span_id"], charge_id.as_str());
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["amount"], 1999);

    // The library's own metrics (process and runtime ones included) and spans declare the
    // semantic-conventions schema their names follow.
    let library: Vec<_> = snapshot
        .metrics
        .iter()
        .filter(|m| m.scope.name == "platform-telemetry")
        .collect();
    assert!(
        library.iter().any(|m| m.name() == "process.cpu.time"),
        "{protocol}: no process metrics from the library's scope"
    );
    for metric in &library {
        assert_eq!(
            &*metric.scope_schema_url,
            platform_telemetry::SCHEMA_URL,
            "{protocol}: {} declares no schema",
            metric.name()
        );
    }

    // Metrics: pushed over OTLP and served in the Prometheus format.
    let orders = snapshot
        .metrics
        .iter()
        .find(|m| m.name() == "scenario.orders")
        .expect("scenario.orders pushed");
    assert!(orders.is_monotonic());
    assert_eq!(orders.points()[0].value, Some(3.0));
    assert_eq!(orders.points()[0].attr("order.kind"), Some("retail"));
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("scenario_orders_total{") && l.ends_with(" 3")),
        "prometheus exposition on stdout:\n{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_checkout_arrives_over_http_protobuf_with_linked_spans_logs_and_metrics() {
    checkout_arrives("http/protobuf", Transport::Http).await;
}

#[tokio::test]
async fn a_checkout_arrives_over_grpc_with_linked_spans_logs_and_metrics() {
    checkout_arrives("grpc", Transport::Grpc).await;
}

#[tokio::test]
async fn per_signal_endpoint_and_protocol_override_the_general_ones() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let traces = receiver.grpc_endpoint();
    let logs = format!("{}/v1/logs", receiver.http_endpoint());
    let nowhere = closed_endpoint();
    let run = scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.as_str()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
    )
    .await;
    run.assert_success();
    let snapshot = receiver.wait_until(WAIT, has_checkout).await.unwrap();
    for request in &snapshot.requests {
        match request.signal {
            Signal::Traces => assert_eq!(request.transport, Transport::Grpc),
            Signal::Logs => assert_eq!(request.transport, Transport::Http),
            Signal::Metrics => panic!("metrics default to prometheus only, not OTLP"),
        }
    }
}

#[tokio::test]
async fn headers_and_gzip_compression_reach_the_endpoint_on_both_protocols() {
    for (protocol, grpc) in [("http/protobuf", false), ("grpc", true)] {
        let receiver = OtlpReceiver::start().await.unwrap();
        let endpoint = if grpc {
            receiver.grpc_endpoint()
        } else {
            receiver.http_endpoint()
        };
        scenario(
            &["checkout"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-tenant=acme,authorization=Bearer%20t0ken",
                ),
                ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-tenant=logs-team"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ],
        )
        .await
        .assert_success();
        let snapshot = receiver.wait_until(WAIT, has_checkout).await.unwrap();
        for request in &snapshot.requests {
            assert_eq!(
                request.content_encoding.as_deref(),
                Some("gzip"),
                "{protocol}"
            );
            match request.signal {
                Signal::Logs => {
                    assert_eq!(request.header("x-tenant"), Some("logs-team"), "{protocol}");
                    assert_eq!(request.header("authorization"), None, "{protocol}");
                }
                _ => {
                    assert_eq!(request.header("x-tenant"), Some("acme"), "{protocol}");
                    assert_eq!(
                        request.header("authorization"),
                        Some("Bearer t0ken"),
                        "{protocol}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn resource_comes_from_service_name_resource_attributes_and_kubernetes_env() {
    let receiver = OtlpReceiver::start().await.unwrap();
    scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=loses,service.namespace=shop,deployment.environment.name=staging,team=pay%20ments",
            ),
            ("OTEL_SERVICE_NAME", "wins"),
            ("K8S_POD_NAME", "checkout-7d9f"),
            ("K8S_NAMESPACE_NAME", "shop"),
        ],
    )
    .await
    .assert_success();
    let snapshot = receiver.wait_until(WAIT, has_checkout).await.unwrap();
    let span = &snapshot.spans[0];
    assert_eq!(span.service_name().as_deref(), Some("wins"));
    for (key, value) in [
        ("service.namespace", "shop"),
        ("deployment.environment.name", "staging"),
        ("team", "pay ments"),
        ("k8s.pod.name", "checkout-7d9f"),
        ("k8s.namespace.name", "shop"),
        ("telemetry.sdk.language", "rust"),
        ("process.executable.name", "telemetry-scenario"),
    ] {
        assert_eq!(span.resource_attr(key).as_deref(), Some(value), "{key}");
    }
    assert!(span.resource_attr("service.instance.id").is_some());
    assert!(span.resource_attr("host.name").is_some());
    let log = &snapshot.log_records[0];
    assert_eq!(
        log.resource_attr("k8s.pod.name").as_deref(),
        Some("checkout-7d9f")
    );
}

#[tokio::test]
async fn samplers_from_env_decide_which_traces_are_exported_but_logs_keep_flowing() {
    for (sampler, arg, expect_spans) in [
        ("always_off", None, false),
        ("traceidratio", Some("0"), false),
        ("parentbased_traceidratio", Some("0"), false),
        ("traceidratio", Some("1"), true),
        ("always_on", None, true),
    ] {
        let receiver = OtlpReceiver::start().await.unwrap();
        let endpoint = receiver.http_endpoint();
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", sampler),
        ];
        if let Some(arg) = arg {
            env.push(("OTEL_TRACES_SAMPLER_ARG", arg));
        }
        scenario(&["checkout"], &env).await.assert_success();
        let snapshot = receiver
            .wait_until(WAIT, |s| s.log_records.len() >= 2)
            .await
            .unwrap();
        assert_eq!(
            snapshot.spans.iter().any(|s| s.name() == "checkout"),
            expect_spans,
            "{sampler} {arg:?}"
        );
        // Unsampled spans still give log records a trace id to correlate with.
        assert!(
            snapshot.log_records[0].trace_id_hex().is_some(),
            "{sampler}"
        );
    }
}

#[tokio::test]
async fn exporter_none_turns_a_signal_off_and_metrics_default_to_prometheus_only() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let run = scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_TRACES_EXPORTER", "none"),
        ],
    )
    .await;
    run.assert_success();
    let snapshot = receiver
        .wait_until(WAIT, |s| s.log_records.len() >= 2)
        .await
        .unwrap();
    assert!(snapshot.spans.is_empty());
    assert!(snapshot.metrics.is_empty());
    assert!(run.stdout.contains("scenario_orders_total{"));

    let receiver = OtlpReceiver::start().await.unwrap();
    scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_LOGS_EXPORTER", "none"),
        ],
    )
    .await
    .assert_success();
    let snapshot = receiver
        .wait_until(WAIT, |s| s.spans.len() >= 2)
        .await
        .unwrap();
    assert!(snapshot.log_records.is_empty());
}

#[tokio::test]
async fn sdk_disabled_exports_nothing_and_still_writes_stdout_logs() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let run = scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    )
    .await;
    run.assert_success();
    let line = run.json_log("card charged");
    assert!(line.get("trace_id").is_none());
    assert!(receiver.snapshot().requests.is_empty());
}

#[tokio::test]
async fn batch_sizes_from_env_shape_the_export_requests() {
    let receiver = OtlpReceiver::start().await.unwrap();
    scenario(
        &["checkout"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "1"),
        ],
    )
    .await
    .assert_success();
    let snapshot = receiver.wait_until(WAIT, has_checkout).await.unwrap();
    let traces: Vec<_> = snapshot
        .requests
        .iter()
        .filter(|r| r.signal == Signal::Traces)
        .collect();
    assert_eq!(traces.len(), 2, "two spans, one per request");
    assert!(snapshot.requests.iter().all(|r| r.item_count == 1));
}

#[tokio::test]
async fn metric_export_interval_from_env_pushes_periodically() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.http_endpoint();
    let run = tokio::spawn(async move {
        scenario(
            &["linger", "3000"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_METRICS_EXPORTER", "otlp"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ],
        )
        .await
    });
    // Three pushes while the service is still running: the interval, not the shutdown flush.
    receiver
        .wait_until(WAIT, |s| {
            s.requests
                .iter()
                .filter(|r| r.signal == Signal::Metrics)
                .count()
                >= 3
        })
        .await
        .unwrap();
    assert!(!run.is_finished(), "pushes came before shutdown");
    run.await.unwrap().assert_success();
}

#[tokio::test]
async fn propagators_from_env_choose_the_injected_headers() {
    let headers = |run: &support::Run| {
        run.result()["headers"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let nowhere = closed_endpoint();
    let base = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.as_str()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
    ];
    let run = scenario(&["inject"], &base).await;
    assert_eq!(headers(&run), ["baggage", "traceparent", "tracestate"]);
    assert_eq!(run.result()["headers"]["baggage"], "tenant=acme");

    let mut env = base.to_vec();
    env.push(("OTEL_PROPAGATORS", "tracecontext"));
    assert_eq!(
        headers(&scenario(&["inject"], &env).await),
        ["traceparent", "tracestate"]
    );

    let mut env = base.to_vec();
    env.push(("OTEL_PROPAGATORS", "none"));
    assert!(headers(&scenario(&["inject"], &env).await).is_empty());

    let mut env = base.to_vec();
    env.push(("OTEL_PROPAGATORS", "jaeger"));
    let run = scenario(&["inject"], &env).await;
    assert_eq!(
        headers(&run),
        ["baggage", "traceparent", "tracestate"],
        "falls back to the default"
    );
    let warning = run
        .json_logs()
        .into_iter()
        .find(|l| l["variable"] == "OTEL_PROPAGATORS")
        .expect("a warning names OTEL_PROPAGATORS");
    assert_eq!(warning["level"], "WARN");
    assert!(
        warning["message"]
            .as_str()
            .unwrap_or_default()
            .contains("jaeger")
    );
}

#[tokio::test]
async fn every_malformed_variable_is_one_clear_warning_and_never_a_failure() {
    let bad = [
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key s3cr3t"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "-5"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1m"),
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_LOGS_EXPORTER", "kafka"),
        ("LOG_FORMAT", "yaml"),
        ("RUST_LOG", "info,[["),
    ];
    let mut env = bad.to_vec();
    env.push(("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
    let run = scenario(&["warnings"], &env).await;
    run.assert_success();
    let warnings: Vec<_> = run
        .json_logs()
        .into_iter()
        .filter(|l| l["target"] == "platform_telemetry::config")
        .collect();
    for (variable, _) in bad {
        let named: Vec<_> = warnings
            .iter()
            .filter(|w| w["variable"] == variable)
            .collect();
        assert_eq!(
            named.len(),
            1,
            "{variable} must be warned about once: {warnings:#?}"
        );
        assert!(named[0]["message"].as_str().unwrap_or("").contains("using"));
    }
    assert_eq!(run.result()["warnings"], bad.len());
    assert!(
        !run.stdout.contains("s3cr3t"),
        "header values are never printed"
    );
}

#[tokio::test]
async fn calling_init_twice_is_an_error_not_a_panic() {
    let run = scenario(
        &["init-twice"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &closed_endpoint())],
    )
    .await;
    run.assert_success();
    let message = run.result()["second_init"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("already installed"), "{message}");
}

#[tokio::test]
async fn a_panic_is_logged_with_its_trace_context_and_flushed() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let run = scenario(
        &["panic", "3"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())],
    )
    .await;
    assert_eq!(run.code, Some(101), "the panic still ends the process");
    let snapshot = receiver
        .wait_until(WAIT, |s| !s.log_records.is_empty())
        .await
        .unwrap();
    let record = &snapshot.log_records[0];
    let message = record.attr("exception.message").unwrap_or_default();
    assert!(message.contains("index out of bounds"), "{message}");
    assert_eq!(record.attr("exception.type").as_deref(), Some("panic"));
    // Where it panicked, in the semantic conventions' names (the scenario's own source file).
    let file = record.attr("code.file.path").unwrap_or_default();
    assert!(file.ends_with("telemetry_scenario.rs"), "{file}");
    let line: i64 = record
        .attr("code.line.number")
        .and_then(|l| l.parse().ok())
        .unwrap_or_default();
    assert!(line > 0, "code.line.number {line}");
    assert!(record.attr("code.column.number").is_some());
    assert!(record.trace_id_hex().is_some());
    let line = run
        .json_logs()
        .into_iter()
        .find(|l| l["target"] == "panic")
        .expect("panic on stdout");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["span"], "doomed");
    assert_eq!(line["trace_id"].as_str(), record.trace_id_hex().as_deref());
}

#[tokio::test]
async fn a_refusing_endpoint_is_counted_as_failed_exports() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.set_behavior(Behavior::Reject {
        grpc: tonic::Code::Unavailable,
        http_status: 400,
    });
    let run = scenario(
        &["flood", "10"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
        ],
    )
    .await;
    run.assert_success();
    let result = run.result();
    // Every span is accounted for: refused by the endpoint, or turned away by the queue of 4.
    assert_eq!(result["capacity"], 4, "{result}");
    let dropped = result["dropped"].as_u64().unwrap_or(u64::MAX);
    let failed = result["failed_after_shutdown"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(dropped + failed, 10, "{result}");
    assert!(failed >= 4, "{result}");
    assert_eq!(result["exported_after_shutdown"], 0, "{result}");
    assert!(receiver.snapshot().spans.is_empty());
}

#[tokio::test]
async fn the_exporters_own_logs_never_feed_back_into_the_pipeline() {
    // Partial success makes the exporter complain; RUST_LOG=trace makes hyper, h2 and tonic talk.
    for (protocol, grpc) in [("http/protobuf", false), ("grpc", true)] {
        let receiver = OtlpReceiver::start().await.unwrap();
        receiver.set_behavior(Behavior::PartialSuccess {
            rejected: 1,
            message: "one item refused".into(),
        });
        let endpoint = if grpc {
            receiver.grpc_endpoint()
        } else {
            receiver.http_endpoint()
        };
        let run = scenario(
            &["checkout"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("RUST_LOG", "trace"),
            ],
        )
        .await;
        run.assert_success();
        let machinery_on_stdout = run
            .json_logs()
            .iter()
            .filter(|l| {
                let target = l["target"].as_str().unwrap_or("");
                ["opentelemetry", "hyper", "h2", "tonic", "reqwest"]
                    .iter()
                    .any(|m| target.starts_with(m))
            })
            .count();
        assert!(
            machinery_on_stdout > 0,
            "{protocol}: the export machinery did log (to stdout)"
        );
        let snapshot = receiver.wait_until(WAIT, has_checkout).await.unwrap();
        for record in &snapshot.log_records {
            let scope = record.scope.name.as_str();
            assert_eq!(scope, "telemetry_scenario", "{protocol}: {record:?}");
        }
        for span in &snapshot.spans {
            assert!(
                ["checkout", "charge"].contains(&span.name()),
                "{protocol}: {}",
                span.name()
            );
        }
    }
}
