use super::*;

fn resolve_with(pairs: &[(&str, &str)]) -> (Resolved, Vec<ConfigWarning>) {
    let env = Env::from_pairs(pairs.iter().copied());
    let mut w = Warnings::default();
    let r = resolve(&env, &CodeDefaults::default(), &mut w);
    (r, w.into_vec())
}

#[test]
fn defaults_follow_the_specification() {
    let (r, w) = resolve_with(&[]);
    assert!(w.is_empty());
    assert_eq!(r.sampler, SamplerConfig::ParentBasedAlwaysOn);
    assert_eq!(r.traces_otlp.protocol, Protocol::HttpProtobuf);
    assert_eq!(r.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(r.logs_otlp.endpoint, "http://localhost:4318/v1/logs");
    assert_eq!(r.traces_otlp.timeout, Duration::from_secs(10));
    assert_eq!(r.bsp.max_queue_size, 2048);
    assert_eq!(r.bsp.schedule_delay, Duration::from_secs(5));
    assert_eq!(r.blrp.schedule_delay, Duration::from_secs(1));
    assert!(r.metrics_exporters.prometheus && !r.metrics_exporters.otlp);
    assert!(r.traces_exporters.otlp);
    assert_eq!(
        r.propagators,
        vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
    );
    assert_eq!(
        r.log_filter,
        "info,opentelemetry=warn,opentelemetry_sdk=warn"
    );
    assert_eq!(r.log_format, LogFormat::Json);
}

#[test]
fn per_signal_endpoint_wins_and_is_used_as_is() {
    let (r, w) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://loki:3100/otlp/v1/logs",
        ),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(r.traces_otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(r.logs_otlp.endpoint, "http://loki:3100/otlp/v1/logs");
}

#[test]
fn grpc_endpoint_gets_no_path() {
    let (r, _) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ]);
    if cfg!(feature = "grpc") {
        assert_eq!(r.traces_otlp.protocol, Protocol::Grpc);
        assert_eq!(r.traces_otlp.endpoint, "http://collector:4317");
    }
}

#[test]
fn every_malformed_value_warns_once_and_falls_back() {
    let (r, w) = resolve_with(&[
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "abc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc,broken"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
        ("OTEL_SDK_DISABLED", "yes"),
        ("OTEL_PROPAGATORS", "tracecontext,xray"),
        ("OTEL_METRICS_EXPORTER", "statsd"),
        ("RUST_LOG", "info,[[["),
        ("LOG_FORMAT", "yaml"),
    ]);
    let vars: Vec<&str> = w.iter().map(|w| w.variable.as_str()).collect();
    for expected in [
        "OTEL_TRACES_SAMPLER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_SDK_DISABLED",
        "OTEL_PROPAGATORS",
        "OTEL_METRICS_EXPORTER",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        assert_eq!(
            vars.iter().filter(|v| **v == expected).count(),
            1,
            "{expected} must be reported exactly once in {vars:?}"
        );
    }
    assert_eq!(r.sampler, SamplerConfig::ParentBasedAlwaysOn);
    assert_eq!(r.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(
        r.traces_otlp.headers,
        vec![("api-key".to_string(), "abc".to_string())]
    );
    assert_eq!(r.bsp.max_queue_size, 2048);
    assert!(!r.sdk_disabled);
    assert_eq!(r.propagators, vec![PropagatorKind::TraceContext]);
    assert!(r.metrics_exporters.prometheus);
    let endpoint = w
        .iter()
        .find(|w| w.variable == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(
        endpoint,
        "OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4317\": expected an http:// or https:// URL; \
         using http://localhost:4318/v1/traces"
    );
}

#[test]
fn ratio_out_of_range_is_rejected() {
    for bad in ["1.5", "-0.1", "NaN", "abc"] {
        let (r, w) = resolve_with(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", bad),
        ]);
        assert_eq!(
            r.sampler,
            SamplerConfig::ParentBasedTraceIdRatio(1.0),
            "{bad}"
        );
        assert_eq!(w.len(), 1, "{bad}: {w:?}");
        assert_eq!(w[0].variable, "OTEL_TRACES_SAMPLER_ARG");
    }
    let (r, w) = resolve_with(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ]);
    assert!(w.is_empty());
    assert_eq!(r.sampler, SamplerConfig::TraceIdRatio(0.25));
}

#[test]
fn header_warnings_never_show_values() {
    let (_, w) = resolve_with(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cr3t,x-api-key s3cr3t",
    )]);
    assert_eq!(w.len(), 1);
    let text = w[0].to_string();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("authorization=<redacted>"), "{text}");
}

#[test]
fn headers_are_percent_decoded() {
    let mut w = Warnings::default();
    let kv = parse_key_values(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Basic%20dXNlcjpwYXNz, x-tenant = a%2Cb",
        None,
        &mut w,
    );
    assert_eq!(
        kv,
        vec![
            ("authorization".into(), "Basic dXNlcjpwYXNz".into()),
            ("x-tenant".into(), "a,b".into())
        ]
    );
    assert!(w.into_vec().is_empty());
}

#[test]
fn none_disables_a_signal_and_batch_size_is_capped_by_queue() {
    let (r, w) = resolve_with(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "512"),
    ]);
    assert_eq!(r.traces_exporters, Exporters::default());
    assert!(r.metrics_exporters.otlp && r.metrics_exporters.prometheus);
    assert_eq!(r.blrp.max_export_batch_size, 100);
    assert_eq!(w.len(), 1);
    // The default batch size (512) above a small queue is capped without a warning about
    // a variable the user never set.
    let (r, w) = resolve_with(&[("OTEL_BSP_MAX_QUEUE_SIZE", "64")]);
    assert_eq!(r.bsp.max_export_batch_size, 64);
    assert!(w.is_empty(), "{w:?}");
}

/// Arbitrary values for every variable the library reads: resolution never panics, every
/// warning names a variable that was set (once), credentials in
/// `OTEL_EXPORTER_OTLP_HEADERS` never appear in a warning, and the result stays usable.
/// 2048 environments per run (`PROPTEST_CASES` raises it).
mod arbitrary_environments {
    use super::*;
    use proptest::prelude::*;

    const VARIABLES: &[&str] = &[
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_TIMEOUT",
        "RUST_LOG",
        "LOG_FORMAT",
    ];

    /// Values that look like what the variables take, mixed with anything at all.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+0-9.eE_ ]{0,24}",
            "[a-z_/:.,=%0-9\\[\\] ]{0,40}",
            "(https?|grpc|ftp)://[a-z0-9.:\\[\\]@%/-]{0,30}",
            prop::sample::select(vec![
                "always_on",
                "parentbased_traceidratio",
                "grpc",
                "http/protobuf",
                "http/json",
                "otlp,none",
                "none",
                "gzip",
                "json",
                "99999999999999999999",
                "-1",
                "0",
                "1e309",
                "NaN",
                "\u{0}",
                "tracecontext,baggage,b3multi",
            ])
            .prop_map(str::to_string),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn any_environment_resolves_with_one_clear_warning_per_bad_variable(
            vars in proptest::collection::vec((prop::sample::select(VARIABLES), value()), 0..16),
            secret in "[A-Za-z0-9]{24}",
            junk in "[ -~]{0,24}",
        ) {
            let headers = format!("authorization=Bearer%20{secret},{junk}");
            let mut pairs: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            pairs.push(("OTEL_EXPORTER_OTLP_HEADERS".into(), headers));
            let env = Env::from_pairs(pairs.iter().cloned());
            let mut warnings = Warnings::default();
            let r = resolve(&env, &CodeDefaults::default(), &mut warnings);
            let warnings = warnings.into_vec();
            for w in &warnings {
                prop_assert!(
                    pairs.iter().any(|(k, _)| *k == w.variable),
                    "warning for a variable that was not set: {w}"
                );
                prop_assert_eq!(
                    warnings.iter().filter(|o| o.variable == w.variable).count(),
                    1
                );
                prop_assert!(!w.to_string().contains(&secret), "credential leaked: {w}");
                prop_assert!(!w.problem.is_empty() && !w.using.is_empty(), "{w}");
            }
            for batch in [&r.bsp, &r.blrp] {
                prop_assert!(batch.max_queue_size as u64 <= bounds::MAX_QUEUE_SIZE);
                prop_assert!(batch.schedule_delay >= bounds::MIN_SCHEDULE_DELAY);
                prop_assert!(batch.schedule_delay <= bounds::MAX_DURATION);
                prop_assert!(batch.export_timeout <= bounds::MAX_TIMEOUT);
                prop_assert!(batch.max_queue_size > 0);
                prop_assert!(batch.max_export_batch_size > 0);
                prop_assert!(batch.max_export_batch_size <= batch.max_queue_size);
            }
            prop_assert!(r.metric_export_interval >= bounds::MIN_METRIC_INTERVAL);
            prop_assert!(r.metric_export_interval <= bounds::MAX_DURATION);
            prop_assert!(r.metric_export_timeout <= bounds::MAX_TIMEOUT);
            for otlp in [&r.traces_otlp, &r.logs_otlp, &r.metrics_otlp] {
                prop_assert!(otlp.timeout <= bounds::MAX_TIMEOUT && !otlp.timeout.is_zero());
                prop_assert!(otlp.headers.len() <= bounds::MAX_LIST_ENTRIES);
                for (k, v) in &otlp.headers {
                    prop_assert!(http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).is_ok());
                    prop_assert!(http::HeaderValue::from_str(v).is_ok(), "{:?}", v);
                }
                prop_assert!(
                    otlp.endpoint.starts_with("http://") || otlp.endpoint.starts_with("https://"),
                    "{}", otlp.endpoint
                );
            }
            prop_assert!(!r.log_filter.is_empty());
        }
    }
}

#[test]
fn counts_above_the_maximum_are_held_to_it_with_one_warning() {
    for huge in [
        "100000",
        "18446744073709551615",
        "999999999999999999999999999999",
    ] {
        let (r, w) = resolve_with(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", huge),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", huge),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", huge),
        ]);
        assert_eq!(
            r.bsp.max_queue_size as u64,
            bounds::MAX_QUEUE_SIZE,
            "{huge}"
        );
        assert_eq!(
            r.blrp.max_queue_size as u64,
            bounds::MAX_QUEUE_SIZE,
            "{huge}"
        );
        assert_eq!(r.blrp.max_export_batch_size as u64, bounds::MAX_QUEUE_SIZE);
        assert_eq!(w.len(), 3, "{w:?}");
        let text = w[0].to_string();
        assert!(
            text.starts_with("OTEL_BSP_MAX_QUEUE_SIZE=")
                && text.contains("above the maximum of 65536 items; using 65536"),
            "{text}"
        );
    }
    for invalid in ["-1", "0", "1.5", "NaN", "2k", "+"] {
        let (r, w) = resolve_with(&[("OTEL_BSP_MAX_QUEUE_SIZE", invalid)]);
        assert_eq!(r.bsp.max_queue_size, 2048, "{invalid}");
        assert_eq!(w.len(), 1, "{invalid}: {w:?}");
    }
}

#[test]
fn a_zero_timeout_is_indefinite_and_indefinite_is_the_longest_timeout() {
    let (r, w) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
    ]);
    assert!(w.is_empty(), "0 is valid for a timeout: {w:?}");
    assert_eq!(r.traces_otlp.timeout, bounds::MAX_TIMEOUT);
    assert_eq!(r.bsp.export_timeout, bounds::MAX_TIMEOUT);
    assert_eq!(r.metric_export_timeout, bounds::MAX_TIMEOUT);
    let (r, w) = resolve_with(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "86400000")]);
    assert_eq!(r.traces_otlp.timeout, bounds::MAX_TIMEOUT);
    assert_eq!(w.len(), 1);
    // A schedule delay of 0 has no meaning in the specification; below the minimum is the
    // default, with a warning (a zero delay would make the export thread spin).
    let (r, w) = resolve_with(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
    ]);
    assert_eq!(r.bsp.schedule_delay, Duration::from_secs(5));
    assert_eq!(r.metric_export_interval, Duration::from_secs(60));
    assert_eq!(w.len(), 2, "{w:?}");
}

#[test]
fn a_header_that_cannot_be_sent_is_named_without_its_value() {
    for (raw, why) in [
        ("x-tenant=acme,authorization=Bearer%0D%0As3cr3t", "CR or LF"),
        (
            "x-tenant=acme,authorization=Bearer%zzs3cr3t",
            "percent escape",
        ),
        ("x-tenant=acme,authorization=Bearer%01s3cr3t", "control"),
        (
            "x-tenant=acme,authorization=B%C3%A9arer-s3cr3t",
            "non-ASCII",
        ),
        ("x-tenant=acme,author(ization=s3cr3t", "header name"),
    ] {
        let (r, w) = resolve_with(&[("OTEL_EXPORTER_OTLP_HEADERS", raw)]);
        assert_eq!(
            r.traces_otlp.headers,
            vec![("x-tenant".to_string(), "acme".to_string())],
            "{raw}"
        );
        assert_eq!(w.len(), 1, "{raw}: {w:?}");
        let text = w[0].to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{text}");
        assert!(text.contains(why), "{raw}: {text}");
    }
}

#[test]
fn a_value_too_long_to_read_counts_as_unset_and_is_reported_without_it() {
    let huge = format!("service.name={}", "x".repeat(bounds::MAX_VALUE_BYTES));
    let env = Env::from_pairs([("OTEL_RESOURCE_ATTRIBUTES", huge.as_str())]);
    let mut w = Warnings::default();
    resolve(&env, &CodeDefaults::default(), &mut w);
    let w = w.into_vec();
    assert_eq!(w.len(), 1);
    assert!(w[0].value.len() < 100, "{}", w[0].value);
    assert!(w[0].problem.contains("65536"), "{}", w[0]);
    assert_eq!(env.value("OTEL_RESOURCE_ATTRIBUTES"), None);
}

#[test]
fn lists_are_read_up_to_their_bound() {
    let many = (0..500)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let mut w = Warnings::default();
    let kv = parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &many, None, &mut w);
    assert_eq!(kv.len(), bounds::MAX_LIST_ENTRIES);
    let w = w.into_vec();
    assert_eq!(w.len(), 1);
    assert!(w[0].problem.contains("more than 128 entries"), "{}", w[0]);
    assert!(w[0].value.len() < 300, "the shown value is shortened");
}

#[test]
fn insecure_decides_the_scheme_of_a_grpc_endpoint_given_without_one() {
    if !cfg!(feature = "grpc") {
        return;
    }
    let (r, w) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false"),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(r.traces_otlp.endpoint, "http://collector:4317");
    assert_eq!(r.logs_otlp.endpoint, "https://collector:4317");
    // Without INSECURE, TLS: the specification's default is secure.
    let (r, _) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
    ]);
    assert_eq!(r.traces_otlp.endpoint, "https://collector:4317");
    // A scheme wins, and an INSECURE that cannot apply says so.
    let (r, w) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ]);
    assert_eq!(r.traces_otlp.endpoint, "https://collector:4317");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].variable, "OTEL_EXPORTER_OTLP_INSECURE");
}

#[test]
fn tls_files_are_per_signal_first_and_unused_ones_are_reported() {
    let (r, w) = resolve_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client.key"),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/otel/client.crt",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "/etc/otel/traces.key",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://prometheus:9090/api/v1/otlp/v1/metrics",
        ),
    ]);
    let key = r.traces_otlp.tls.client_key.clone().unwrap();
    assert_eq!(key.variable, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
    assert_eq!(
        r.logs_otlp.tls.client_key.as_ref().unwrap().variable,
        "OTEL_EXPORTER_OTLP_CLIENT_KEY"
    );
    // The metrics endpoint is plain HTTP: the general files are not read for it, and that is said.
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter().all(|w| w.problem.contains("does not use TLS")),
        "{w:?}"
    );
}

#[test]
fn endpoints_in_warnings_lose_their_credentials() {
    let (r, w) = resolve_with(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://ops:pa55w0rd@collector:port/v1/traces?api_key=k3y",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://ops:pa55w0rd@collector:4318?access_token=t0k3n",
        ),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://ops:pa55w0rd@loki:3100/otlp/v1/logs",
        ),
    ]);
    assert_eq!(
        r.traces_otlp.endpoint, "https://ops:pa55w0rd@collector:4318/v1/traces?access_token=t0k3n",
        "the exporter gets the general endpoint as configured, the signal's path before its query"
    );
    let text: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                && t.contains("https://collector:port/v1/traces?api_key=REDACTED")
                && t.contains("access_token=REDACTED")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("http://loki:3100/otlp/v1/logs does not use TLS")),
        "{text:#?}"
    );
    for t in &text {
        for secret in ["pa55w0rd", "k3y", "t0k3n"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
    }
}

#[test]
fn runtime_metrics_are_on_by_default_and_the_variable_overrides_the_builder() {
    let resolve_code = |pairs: &[(&str, &str)], code: Option<bool>| {
        let env = Env::from_pairs(pairs.iter().copied());
        let code = CodeDefaults {
            runtime_metrics: code,
            ..CodeDefaults::default()
        };
        let mut w = Warnings::default();
        let r = resolve(&env, &code, &mut w);
        (r.runtime_metrics, w.into_vec())
    };
    assert_eq!(resolve_code(&[], None), (true, vec![]));
    assert_eq!(resolve_code(&[], Some(false)), (false, vec![]));
    let off = [(RUNTIME_METRICS_VARIABLE, "FALSE")];
    assert_eq!(resolve_code(&off, Some(true)), (false, vec![]));
    let on = [(RUNTIME_METRICS_VARIABLE, "true")];
    assert_eq!(resolve_code(&on, Some(false)), (true, vec![]));
    let (on, warnings) = resolve_code(&[(RUNTIME_METRICS_VARIABLE, "off")], Some(true));
    assert!(on, "a malformed value keeps the builder's setting");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].variable, RUNTIME_METRICS_VARIABLE);
}
