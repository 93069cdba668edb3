#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The stores' connection settings as a user meets them, through the binary: `--help` teaches
//! every flag and variable without showing a secret, conflicting or unreadable settings are
//! usage errors (exit 2) naming both settings or the file and its variable, and `obs provision`
//! writes the tenant and credentials into the datasources (Grafana API double) without
//! printing them.

mod support;

use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};
use support::{obs, repo};

const STORES: [&str; 5] = ["tempo", "jaeger", "loki", "prometheus", "alertmanager"];
const SETTINGS: [(&str, &str); 10] = [
    ("tenant", "TENANT"),
    ("token", "TOKEN"),
    ("token-file", "TOKEN_FILE"),
    ("user", "USER"),
    ("password", "PASSWORD"),
    ("password-file", "PASSWORD_FILE"),
    ("header", "HEADERS"),
    ("ca-file", "CA_FILE"),
    ("client-cert", "CLIENT_CERT"),
    ("client-key", "CLIENT_KEY"),
];

/// Secrets given through the environment while asking for help.
const SECRET_ENV: [(&str, &str); 5] = [
    ("OBS_LOKI_TOKEN", "help-token-secret-1"),
    ("OBS_TEMPO_PASSWORD", "help-password-secret-2"),
    ("OBS_PROMETHEUS_HEADERS", "X-Api-Key: help-header-secret-3"),
    ("OBS_GRAFANA_HEADERS", "X-Api-Key: help-header-secret-4"),
    ("OBS_GRAFANA_TOKEN", "help-grafana-secret-5"),
];

#[test]
fn help_teaches_every_store_setting_and_shows_no_secret() {
    for command in ["verify", "provision", "sidecar"] {
        let run = obs(&[command, "--help"], &SECRET_ENV, None);
        assert_eq!(run.code, Some(0), "{run:?}");
        for store in STORES {
            for (flag, env) in SETTINGS {
                let flag = format!("--{store}-{flag}");
                let env = format!("OBS_{}_{env}", store.to_uppercase());
                assert!(
                    run.stdout.contains(&flag) && run.stdout.contains(&env),
                    "{command} --help lacks {flag} / {env}"
                );
            }
        }
        assert!(run.stdout.contains("--tenant") && run.stdout.contains("OBS_TENANT"));
        for (_, secret) in SECRET_ENV {
            let value = secret.rsplit(' ').next().unwrap();
            assert!(
                !run.output().contains(value),
                "{command} --help shows {value}"
            );
        }
    }
    for command in ["provision", "sidecar"] {
        let run = obs(&[command, "--help"], &[], None);
        for name in [
            "OBS_GRAFANA_HEADERS",
            "OBS_GRAFANA_CA_FILE",
            "OBS_GRAFANA_CLIENT_CERT",
            "OBS_GRAFANA_CLIENT_KEY",
        ] {
            assert!(run.stdout.contains(name), "{command} --help lacks {name}");
        }
    }
    let verify = obs(&["verify", "--help"], &[], None);
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "\"no_tenant\"",
        "\"unauthorized\"",
        "\"forbidden\"",
    ] {
        assert!(verify.stdout.contains(name), "verify --help lacks {name}");
    }
    assert!(
        verify.stdout.contains("\n  4  "),
        "exit code 4 documented: {verify:?}"
    );
}

/// `obs verify` against a store that is never contacted: the settings are refused first.
fn verify_usage(args: &[&str], env: &[(&str, &str)]) -> support::Run {
    let mut all = vec!["verify", "--loki", "http://127.0.0.1:9", "--timeout", "2s"];
    all.extend_from_slice(args);
    obs(&all, env, None)
}

/// Flags, variables, and the two names the error must hold.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], [&'a str; 2]);

#[test]
fn conflicting_settings_are_usage_errors_naming_both() {
    let cases: [Case<'_>; 5] = [
        (
            &["--loki-token", "conflict-token-1", "--loki-user", "u"],
            &[],
            [
                "--loki-token (OBS_LOKI_TOKEN)",
                "--loki-user (OBS_LOKI_USER)",
            ],
        ),
        (
            &[],
            &[
                ("OBS_TEMPO_TOKEN", "conflict-token-2"),
                ("OBS_TEMPO_USER", "u"),
            ],
            [
                "--tempo-token (OBS_TEMPO_TOKEN)",
                "--tempo-user (OBS_TEMPO_USER)",
            ],
        ),
        (
            &["--prometheus-password", "conflict-password-3"],
            &[],
            [
                "--prometheus-password (OBS_PROMETHEUS_PASSWORD)",
                "--prometheus-user (OBS_PROMETHEUS_USER)",
            ],
        ),
        (
            &["--alertmanager-client-cert", "/etc/c.pem"],
            &[],
            ["--alertmanager-client-cert", "--alertmanager-client-key"],
        ),
        (
            &["--jaeger-token-file", "/nonexistent/obs-token"],
            &[],
            [
                "--jaeger-token-file (OBS_JAEGER_TOKEN_FILE)",
                "/nonexistent/obs-token",
            ],
        ),
    ];
    for (args, env, named) in cases {
        let run = verify_usage(args, env);
        assert_eq!(run.code, Some(2), "{args:?} {env:?}: {run:?}");
        for name in named {
            assert!(run.stderr.contains(name), "{name} not named: {run:?}");
        }
        for secret in [
            "conflict-token-1",
            "conflict-token-2",
            "conflict-password-3",
        ] {
            assert!(!run.output().contains(secret), "{run:?}");
        }
    }
    let bad_tenant = verify_usage(&[], &[("OBS_TENANT", "team a")]);
    assert_eq!(bad_tenant.code, Some(2), "{bad_tenant:?}");
    assert!(
        bad_tenant.stderr.contains("--tenant (OBS_TENANT)"),
        "{bad_tenant:?}"
    );
    let bad_header = verify_usage(&["--loki-header", "no-colon"], &[]);
    assert_eq!(bad_header.code, Some(2), "{bad_header:?}");
    assert!(
        bad_header
            .stderr
            .contains("--loki-header (OBS_LOKI_HEADERS) entry 1"),
        "{bad_header:?}"
    );
}

#[test]
fn provision_writes_tenants_and_credentials_into_the_datasources_without_printing_them() {
    const GRAFANA_TOKEN: &str = "glsa_connection_test_token";
    let grafana =
        GrafanaDouble::start(GrafanaConfig::default().with_token(GRAFANA_TOKEN, Role::Admin))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("prometheus-password");
    std::fs::write(&password_file, "prov-password-secret\n").unwrap();
    let password_path = password_file.display().to_string();
    let datasources = repo().join("grafana/provisioning/datasources");
    let dashboards = repo().join("dashboards");
    let env = [
        ("OBS_GRAFANA_URL", grafana.url()),
        ("OBS_GRAFANA_TOKEN", GRAFANA_TOKEN),
        ("OBS_DATASOURCES", datasources.to_str().unwrap()),
        ("OBS_DASHBOARDS", dashboards.to_str().unwrap()),
        ("OBS_WAIT", "10s"),
        ("OBS_TENANT", "team-a"),
        ("OBS_TEMPO_TOKEN", "prov-tempo-token-secret"),
        ("OBS_PROMETHEUS_USER", "12345"),
        ("OBS_PROMETHEUS_PASSWORD_FILE", password_path.as_str()),
        ("OBS_LOKI_HEADERS", "X-Extra: prov-header-secret"),
    ];
    let run = obs(&["provision", "--skip-health-check"], &env, None);
    assert_eq!(run.code, Some(0), "{run:?}");
    for secret in [
        "prov-password-secret",
        "prov-tempo-token-secret",
        "prov-header-secret",
        GRAFANA_TOKEN,
    ] {
        assert!(!run.output().contains(secret), "{secret} printed: {run:?}");
    }
    assert!(
        run.stdout
            .contains("datasource loki gets the store's connection settings"),
        "{run:?}"
    );
    let datasource = |uid: &str| {
        grafana
            .datasources()
            .into_iter()
            .find(|d| d["uid"] == uid)
            .unwrap()
    };
    let loki = datasource("loki");
    assert_eq!(
        loki["jsonData"]["httpHeaderName1"], "X-Scope-OrgID",
        "{loki}"
    );
    assert_eq!(loki["jsonData"]["httpHeaderName2"], "x-extra", "{loki}");
    let loki_secure = grafana.secure_json_data("loki").unwrap();
    assert_eq!(loki_secure["httpHeaderValue1"], "team-a");
    assert_eq!(loki_secure["httpHeaderValue2"], "prov-header-secret");
    let tempo_secure = grafana.secure_json_data("tempo").unwrap();
    assert_eq!(
        tempo_secure.values().cloned().collect::<Vec<_>>(),
        ["team-a", "Bearer prov-tempo-token-secret"]
    );
    let prometheus = datasource("prometheus");
    assert_eq!(prometheus["basicAuth"], true, "{prometheus}");
    assert_eq!(prometheus["basicAuthUser"], "12345", "{prometheus}");
    assert_eq!(
        grafana.secure_json_data("prometheus").unwrap()["basicAuthPassword"],
        "prov-password-secret"
    );
    let jaeger = datasource("jaeger");
    assert_eq!(
        jaeger["jsonData"]["httpHeaderName1"], "x-tenant",
        "{jaeger}"
    );

    let writes = grafana.writes().len();
    let again = obs(&["provision", "--skip-health-check"], &env, None);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(
        grafana.writes().len(),
        writes,
        "unchanged settings write nothing: {again:?}"
    );
}
