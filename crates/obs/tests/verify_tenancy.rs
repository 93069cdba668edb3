#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs verify`, run as the binary, against stores as production runs them (api-doubles
//! following the recorded upstream answers): multi-tenant Tempo and Loki (401 "no org id"
//! without `X-Scope-OrgID`, tenants kept apart), an authenticating gateway (bearer and basic
//! auth, 401 and 403), HTTPS with a test CA and client certificates, and path prefixes. The
//! probe's data reaches the stores through a collector double that passes each export's
//! tenant on, as `headers_setter` does.

mod support;

use api_doubles::collector::{CollectorDouble, TenantHeader};
use api_doubles::jaeger::JaegerDouble;
use api_doubles::loki::LokiDouble;
use api_doubles::tempo::TempoDouble;
use api_doubles::tls::{TestCa, TlsMode};
use serde_json::Value;
use support::{Run, repo};

/// The probe exports as tenant `team-a` (`OTEL_EXPORTER_OTLP_HEADERS`).
const PROBE_TENANT_HEADERS: (&str, &str) = ("OTEL_EXPORTER_OTLP_HEADERS", "X-Scope-OrgID=team-a");

fn verify(args: &[&str], env: &[(&str, &str)]) -> Run {
    let datasources = repo().join("grafana/provisioning/datasources");
    let mut all = vec!["verify", "--format=json"];
    all.extend_from_slice(args);
    let mut all_env = vec![("OBS_DATASOURCES", datasources.to_str().unwrap())];
    all_env.extend_from_slice(env);
    support::obs(&all, &all_env, None)
}

fn check(run: &Run, backend: &str, name: &str) -> Value {
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["backend"] == backend && c["check"].as_str().unwrap().starts_with(name))
        .cloned()
        .unwrap_or_else(|| panic!("no check {backend}/{name}: {run:?}"))
}

fn detail(run: &Run, backend: &str, name: &str) -> String {
    check(run, backend, name)["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

fn no_secret_in(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(!run.output().contains(secret), "{secret} printed: {run:?}");
    }
}

#[test]
fn the_right_tenant_passes_a_missing_one_is_named_and_a_wrong_one_reads_as_absent() {
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let loki = LokiDouble::builder().multi_tenant().start().unwrap();
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .loki(&loki)
        .tenant_header(TenantHeader::FromRequest)
        .start()
        .unwrap();
    let endpoint = collector.http_endpoint();
    let stores = |timeout: &'static str| {
        vec![
            "--otlp-endpoint",
            endpoint.as_str(),
            "--tempo",
            tempo.url(),
            "--loki",
            loki.url(),
            "--timeout",
            timeout,
        ]
    };

    let mut right = stores("30s");
    right.extend(["--tenant", "team-a"]);
    let run = verify(&right, &[PROBE_TENANT_HEADERS]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for (backend, name) in [
        ("tempo", "trace by id"),
        ("tempo", "TraceQL search"),
        ("loki", "logs of obs-probe"),
        ("grafana", "Tempo traces → Loki logs link"),
        ("grafana", "Loki logs → Tempo derived field"),
    ] {
        assert_eq!(check(&run, backend, name)["status"], "pass", "{run:?}");
    }
    assert!(
        collector.refusals().is_empty(),
        "{:?}",
        collector.refusals()
    );
    assert!(!tempo.spans_of("team-a").is_empty());
    assert!(
        tempo.spans_of("team-b").is_empty(),
        "the data is team-a's only"
    );

    // Each store's own tenant wins over --tenant.
    let mut own = stores("30s");
    own.extend([
        "--tenant",
        "team-b",
        "--tempo-tenant",
        "team-a",
        "--loki-tenant",
        "team-a",
    ]);
    let run = verify(&own, &[PROBE_TENANT_HEADERS]);
    assert_eq!(run.code, Some(0), "{run:?}");

    // No tenant: Tempo and Loki answer 401 "no org id"; the diagnosis names the setting, at
    // once, and the exit code says a setting is missing.
    let run = verify(&stores("20s"), &[PROBE_TENANT_HEADERS]);
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.elapsed < std::time::Duration::from_secs(12), "{run:?}");
    let tempo_check = check(&run, "tempo", "trace by id");
    assert_eq!(tempo_check["reason"], "no_tenant", "{run:?}");
    let text = tempo_check["detail"].as_str().unwrap();
    assert!(
        text.starts_with("Tempo answered 401 \"no org id\": ")
            && text.contains("set --tempo-tenant (OBS_TEMPO_TENANT)")
            && text.contains("OBS_TENANT"),
        "{text}"
    );
    let loki_check = check(&run, "loki", "logs of obs-probe");
    assert_eq!(loki_check["reason"], "no_tenant", "{run:?}");
    assert!(
        loki_check["detail"]
            .as_str()
            .unwrap()
            .contains("set --loki-tenant (OBS_LOKI_TENANT)"),
        "{run:?}"
    );

    // Another tenant: the stores answer as for a missing trace; the report says which tenant
    // obs read as.
    let mut wrong = stores("4s");
    wrong.extend(["--tenant", "team-b"]);
    let run = verify(&wrong, &[PROBE_TENANT_HEADERS]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let tempo_check = check(&run, "tempo", "trace by id");
    assert_eq!(tempo_check["reason"], "absent", "{run:?}");
    assert!(
        tempo_check["detail"]
            .as_str()
            .unwrap()
            .contains("obs read as tenant \"team-b\" (from --tenant (OBS_TENANT))"),
        "{run:?}"
    );
    assert_eq!(
        check(&run, "loki", "logs of obs-probe")["reason"],
        "absent",
        "{run:?}"
    );
}

#[test]
fn a_gateway_that_wants_a_bearer_token_or_basic_auth_is_diagnosed_by_setting() {
    const TEMPO_TOKEN: &str = "tempo-gateway-token-1";
    const READ_ONLY: &str = "tempo-read-only-token-2";
    const LOKI_PASSWORD: &str = "loki-gateway-password-3";
    let tempo = TempoDouble::builder()
        .require_bearer(TEMPO_TOKEN)
        .forbid_bearer(READ_ONLY)
        .start()
        .unwrap();
    let loki = LokiDouble::builder()
        .require_basic("loki-user", LOKI_PASSWORD)
        .start()
        .unwrap();
    let jaeger = JaegerDouble::start().unwrap();
    let collector = CollectorDouble::start(Some(&tempo), Some(&jaeger), Some(&loki)).unwrap();
    let endpoint = collector.http_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tempo-token");
    std::fs::write(&token_file, format!("{TEMPO_TOKEN}\n")).unwrap();
    let token_path = token_file.display().to_string();
    let stores = |timeout: &'static str| {
        vec![
            "--otlp-endpoint",
            endpoint.as_str(),
            "--tempo",
            tempo.url(),
            "--loki",
            loki.url(),
            "--timeout",
            timeout,
        ]
    };
    let secrets = [TEMPO_TOKEN, READ_ONLY, LOKI_PASSWORD, "wrong-password-4"];

    let run = verify(
        &stores("30s"),
        &[
            ("OBS_TEMPO_TOKEN_FILE", &token_path),
            ("OBS_LOKI_USER", "loki-user"),
            ("OBS_LOKI_PASSWORD", LOKI_PASSWORD),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    no_secret_in(&run, &secrets);

    let run = verify(&stores("20s"), &[]);
    assert_eq!(run.code, Some(4), "{run:?}");
    assert_eq!(
        check(&run, "tempo", "trace by id")["reason"],
        "unauthorized"
    );
    let tempo_detail = detail(&run, "tempo", "trace by id");
    assert!(
        tempo_detail.starts_with("Tempo answered 401")
            && tempo_detail.contains("obs sent none")
            && tempo_detail.contains("--tempo-token (OBS_TEMPO_TOKEN)"),
        "{tempo_detail}"
    );
    assert!(
        detail(&run, "loki", "probe logs by trace id").contains("--loki-user (OBS_LOKI_USER)"),
        "{run:?}"
    );

    let run = verify(
        &stores("20s"),
        &[
            ("OBS_TEMPO_TOKEN", READ_ONLY),
            ("OBS_LOKI_USER", "loki-user"),
            ("OBS_LOKI_PASSWORD", "wrong-password-4"),
        ],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    no_secret_in(&run, &secrets);
    assert_eq!(
        check(&run, "tempo", "trace by id")["reason"],
        "forbidden",
        "{run:?}"
    );
    assert!(
        detail(&run, "tempo", "trace by id").contains(
            "does not allow it with the bearer token from --tempo-token (OBS_TEMPO_TOKEN)"
        ),
        "{run:?}"
    );
    // The table for people holds the same diagnosis and no secret either.
    let mut text_args = vec!["verify", "--format", "text", "--datasources="];
    text_args.extend(stores("20s"));
    let text = support::obs(
        &text_args,
        &[
            ("OBS_TEMPO_TOKEN", READ_ONLY),
            ("OBS_LOKI_USER", "loki-user"),
            ("OBS_LOKI_PASSWORD", "wrong-password-4"),
        ],
        None,
    );
    assert_eq!(text.code, Some(4), "{text:?}");
    no_secret_in(&text, &secrets);
    assert!(
        text.stdout.contains("FAIL") && text.stdout.contains("Tempo answered 403"),
        "{text:?}"
    );

    // Behind the gateway even /ready is refused: the refusal is the readiness finding.
    let loki_check = check(&run, "loki", "probe logs by trace id");
    assert_eq!(loki_check["reason"], "unauthorized", "{run:?}");
    assert!(
        loki_check["detail"]
            .as_str()
            .unwrap()
            .contains("rejected basic auth as user \"loki-user\" with the password from --loki-password (OBS_LOKI_PASSWORD)"),
        "{run:?}"
    );
}

#[test]
fn https_with_a_test_ca_a_client_certificate_and_path_prefixes() {
    let ca = TestCa::generate().unwrap();
    let tempo = TempoDouble::builder()
        .multi_tenant()
        .tls_with(TlsMode::ClientCert, &ca)
        .path_prefix("/tempo")
        .start()
        .unwrap();
    let loki = LokiDouble::builder()
        .tls_with(TlsMode::ServerOnly, &ca)
        .path_prefix("/gateway/loki")
        .start()
        .unwrap();
    assert!(tempo.url().starts_with("https://") && tempo.url().ends_with("/tempo"));
    let collector = CollectorDouble::builder()
        .tempo(&tempo)
        .loki(&loki)
        .tenant_header(TenantHeader::Fixed("team-a".into()))
        .start()
        .unwrap();
    let endpoint = collector.http_endpoint();
    let (ca_file, cert, key) = (
        ca.ca_path().display().to_string(),
        ca.client_cert_path().display().to_string(),
        ca.client_key_path().display().to_string(),
    );
    let stores = |timeout: &'static str| {
        vec![
            "--otlp-endpoint",
            endpoint.as_str(),
            "--tempo",
            tempo.url(),
            "--loki",
            loki.url(),
            "--tempo-tenant",
            "team-a",
            "--timeout",
            timeout,
        ]
    };
    let tls_env = [
        ("OBS_TEMPO_CA_FILE", ca_file.as_str()),
        ("OBS_TEMPO_CLIENT_CERT", cert.as_str()),
        ("OBS_TEMPO_CLIENT_KEY", key.as_str()),
        ("OBS_LOKI_CA_FILE", ca_file.as_str()),
    ];
    let run = verify(&stores("30s"), &tls_env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        check(&run, "loki", "logs of obs-probe")["status"],
        "pass",
        "below the path prefix: {run:?}"
    );

    // Without the client certificate Tempo refuses the handshake; Loki still passes.
    let run = verify(
        &stores("3s"),
        &tls_env[..1]
            .iter()
            .chain(&tls_env[3..])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let tempo_check = check(&run, "tempo", "trace by id");
    assert_eq!(tempo_check["reason"], "unreachable", "{run:?}");
    let text = tempo_check["detail"].as_str().unwrap();
    assert!(
        text.contains("TLS failed") && text.contains("--tempo-client-cert (OBS_TEMPO_CLIENT_CERT)"),
        "{text}"
    );
    assert_eq!(
        check(&run, "loki", "logs of obs-probe")["status"],
        "pass",
        "{run:?}"
    );

    // The prefix is part of the URL: without it the gateway answers 404.
    let bare = loki.url().trim_end_matches("/gateway/loki").to_string();
    let run = verify(
        &[
            "--otlp-endpoint",
            endpoint.as_str(),
            "--loki",
            &bare,
            "--timeout",
            "3s",
        ],
        &tls_env[3..],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        detail(&run, "loki", "probe logs by trace id").contains("404"),
        "{run:?}"
    );
}

#[test]
fn the_probe_exports_straight_to_multi_tenant_stores_with_the_standard_headers_variable() {
    // No collector: traces to Tempo's OTLP intake and logs to Loki's, both multi-tenant.
    let tempo = TempoDouble::builder().multi_tenant().start().unwrap();
    let loki = LokiDouble::builder().multi_tenant().start().unwrap();
    let traces = format!("{}/v1/traces", tempo.otlp_http_endpoint());
    let logs = format!("{}/v1/logs", loki.otlp_endpoint());
    let nowhere = format!("http://127.0.0.1:{}", api_doubles::reserve_port().unwrap());
    let args = |timeout: &'static str| {
        vec![
            "--otlp-endpoint",
            nowhere.as_str(),
            "--tempo",
            tempo.url(),
            "--loki",
            loki.url(),
            "--tenant",
            "team-a",
            "--timeout",
            timeout,
        ]
    };
    let signals = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.as_str()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", logs.as_str()),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    let mut env = signals.to_vec();
    env.push(PROBE_TENANT_HEADERS);
    let run = verify(&args("30s"), &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!tempo.spans_of("team-a").is_empty());
    assert!(!loki.records_of("team-a").is_empty());

    // Without the header the stores refuse the export ("no org id"): the probe's check says
    // the endpoint refused it and where a tenant goes.
    let run = verify(&args("4s"), &signals);
    assert_eq!(run.code, Some(1), "{run:?}");
    let export = check(&run, "probe", "OTLP export");
    assert_eq!(export["reason"], "dropped", "{run:?}");
    assert!(
        export["detail"]
            .as_str()
            .unwrap()
            .contains("OTEL_EXPORTER_OTLP_HEADERS, e.g. X-Scope-OrgID=team-a"),
        "{run:?}"
    );
}
