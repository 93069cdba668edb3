use std::path::PathBuf;

use super::*;

fn raw() -> RawConnection {
    RawConnection::default()
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn err(store: Store, raw: &RawConnection) -> String {
    Connection::resolve(store, raw, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn conflicts_name_both_settings() {
    let both = RawConnection {
        token: Some("t0k3n-value".into()),
        user: Some("u".into()),
        password: Some("pw-value".into()),
        ..raw()
    };
    let e = err(Store::Loki, &both);
    assert!(
        e.contains("--loki-token (OBS_LOKI_TOKEN)") && e.contains("--loki-user (OBS_LOKI_USER)"),
        "{e}"
    );
    assert!(!e.contains("t0k3n-value") && !e.contains("pw-value"), "{e}");

    let token_twice = RawConnection {
        token: Some("t".into()),
        token_file: Some("/x".into()),
        ..raw()
    };
    let e = err(Store::Tempo, &token_twice);
    assert!(
        e.contains("--tempo-token (OBS_TEMPO_TOKEN)")
            && e.contains("--tempo-token-file (OBS_TEMPO_TOKEN_FILE)"),
        "{e}"
    );

    let token_and_password = RawConnection {
        token: Some("t".into()),
        password: Some("p".into()),
        ..raw()
    };
    let e = err(Store::Prometheus, &token_and_password);
    assert!(
        e.contains("--prometheus-token") && e.contains("--prometheus-password"),
        "{e}"
    );

    let password_only = RawConnection {
        password: Some("p".into()),
        ..raw()
    };
    let e = err(Store::Prometheus, &password_only);
    assert!(
        e.contains("--prometheus-password (OBS_PROMETHEUS_PASSWORD) is set without --prometheus-user (OBS_PROMETHEUS_USER)"),
        "{e}"
    );

    let user_only = RawConnection {
        user: Some("u".into()),
        ..raw()
    };
    let e = err(Store::Jaeger, &user_only);
    assert!(
        e.contains("--jaeger-user") && e.contains("--jaeger-password-file"),
        "{e}"
    );

    let cert_only = RawConnection {
        client_cert: Some("/c.pem".into()),
        ..raw()
    };
    let e = err(Store::Alertmanager, &cert_only);
    assert!(
        e.contains("--alertmanager-client-cert (OBS_ALERTMANAGER_CLIENT_CERT) is set without --alertmanager-client-key (OBS_ALERTMANAGER_CLIENT_KEY)"),
        "{e}"
    );
    let key_only = RawConnection {
        client_key: Some("/k.pem".into()),
        ..raw()
    };
    assert!(err(Store::Loki, &key_only).contains("without --loki-client-cert"));
}

#[test]
fn files_are_read_bounded_and_a_bad_one_is_named_with_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = RawConnection {
        token_file: Some(dir.path().join("nope")),
        ..raw()
    };
    let e = err(Store::Loki, &missing);
    assert!(
        e.contains("--loki-token-file (OBS_LOKI_TOKEN_FILE)") && e.contains("nope"),
        "{e}"
    );
    let empty = RawConnection {
        password_file: Some(write(&dir, "empty", "\n")),
        user: Some("u".into()),
        ..raw()
    };
    assert!(err(Store::Loki, &empty).contains("empty"));
    let big = RawConnection {
        token_file: Some(write(&dir, "big", &"x".repeat(70 * 1024))),
        ..raw()
    };
    assert!(err(Store::Loki, &big).contains("more than"));
    let directory = RawConnection {
        token_file: Some(dir.path().to_path_buf()),
        ..raw()
    };
    assert!(err(Store::Loki, &directory).contains("not a regular file"));
    let not_pem = RawConnection {
        ca_file: Some(write(&dir, "ca.pem", "hello")),
        ..raw()
    };
    let e = err(Store::Tempo, &not_pem);
    assert!(
        e.contains("--tempo-ca-file (OBS_TEMPO_CA_FILE)") && e.contains("ca.pem"),
        "{e}"
    );
}

#[test]
fn a_token_file_is_trimmed_and_named_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "token", "  file-token-123\n");
    let c = Connection::resolve(
        Store::Loki,
        &RawConnection {
            token_file: Some(file.clone()),
            ..raw()
        },
        None,
    )
    .unwrap();
    assert_eq!(
        c.credential,
        Credential::Bearer {
            token: "file-token-123".into(),
            source: format!("--loki-token-file (OBS_LOKI_TOKEN_FILE) {}", file.display()),
        }
    );
    let headers = c.request_headers().unwrap();
    assert_eq!(headers["authorization"], "Bearer file-token-123");
    assert!(headers["authorization"].is_sensitive());
    assert!(!format!("{c:?}").contains("file-token-123"), "{c:?}");
    assert!(!format!("{headers:?}").contains("file-token-123"));
}

#[test]
fn the_default_tenant_applies_unless_the_store_has_its_own() {
    let own = RawConnection {
        tenant: Some("team-b".into()),
        ..raw()
    };
    let c = Connection::resolve(Store::Loki, &own, Some("team-a")).unwrap();
    assert_eq!(c.tenant.as_ref().map(|t| t.id.as_str()), Some("team-b"));
    assert_eq!(c.request_headers().unwrap()["x-scope-orgid"], "team-b");
    let default = Connection::resolve(Store::Tempo, &raw(), Some("team-a")).unwrap();
    let tenant = default.tenant.unwrap();
    assert_eq!(
        (tenant.id.as_str(), tenant.source.as_str()),
        ("team-a", "--tenant (OBS_TENANT)")
    );
    let jaeger = Connection::resolve(Store::Jaeger, &raw(), Some("team-a")).unwrap();
    assert_eq!(jaeger.request_headers().unwrap()["x-tenant"], "team-a");
    let none = Connection::resolve(Store::Tempo, &raw(), None).unwrap();
    assert!(!none.is_configured());
    let e = Connection::resolve(Store::Tempo, &raw(), Some("a b")).unwrap_err();
    assert!(e.to_string().contains("--tenant (OBS_TENANT)"), "{e}");
}

#[test]
fn headers_may_not_set_the_tenant_or_authorization_twice() {
    let tenant_twice = RawConnection {
        tenant: Some("a".into()),
        headers: vec!["X-Scope-OrgID: b".into()],
        ..raw()
    };
    let e = err(Store::Loki, &tenant_twice);
    assert!(
        e.contains("--loki-tenant") && e.contains("--loki-header"),
        "{e}"
    );
    let auth_twice = RawConnection {
        token: Some("t0k3n-abc".into()),
        headers: vec!["Authorization: Bearer other-secret".into()],
        ..raw()
    };
    let e = err(Store::Loki, &auth_twice);
    assert!(
        e.contains("--loki-token") && e.contains("--loki-header"),
        "{e}"
    );
    assert!(!e.contains("other-secret"), "{e}");
    let bad = RawConnection {
        headers: vec!["X-Ok: 1\nnot a header".into()],
        ..raw()
    };
    let e = err(Store::Loki, &bad);
    assert!(
        e.contains("--loki-header (OBS_LOKI_HEADERS) entry 2"),
        "{e}"
    );
}

#[test]
fn basic_auth_is_encoded_and_registered_for_redaction() {
    let c = Connection::resolve(
        Store::Prometheus,
        &RawConnection {
            user: Some("12345".into()),
            password: Some("glc_pa55word".into()),
            ..raw()
        },
        None,
    )
    .unwrap();
    let headers = c.request_headers().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode("12345:glc_pa55word");
    assert_eq!(
        headers["authorization"],
        format!("Basic {encoded}").as_str()
    );
    assert_eq!(
        crate::redact::text(&format!("echo: glc_pa55word {encoded}")),
        "echo: REDACTED REDACTED"
    );
    assert!(c.describe().contains("\"12345\"") && !c.describe().contains("glc_pa55word"));
}

#[test]
fn debug_of_the_flags_shows_which_are_set_never_a_value() {
    let raw = RawConnection {
        token: Some("dbg-token-value".into()),
        password: Some("dbg-password".into()),
        headers: vec!["X-Key: dbg-header-value".into()],
        ..raw()
    };
    let shown = format!("{raw:?}");
    for secret in ["dbg-token-value", "dbg-password", "dbg-header-value"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn no_header_follows_a_redirect_to_another_server() {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let elsewhere = axum::Router::new().route(
        "/ready",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                record
                    .lock()
                    .unwrap()
                    .extend(headers.keys().map(|k| k.to_string()));
                "ready"
            }
        }),
    );
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_address = other.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(other, elsewhere).await });
    let to_other = format!("http://{other_address}/ready");
    let redirecting = axum::Router::new()
        .route(
            "/away",
            axum::routing::get(move || {
                let to = to_other.clone();
                async move { axum::response::Redirect::temporary(&to) }
            }),
        )
        .route(
            "/here",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/ok") }),
        )
        .route("/ok", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirecting).await });

    let connection = Connection::resolve(
        Store::Loki,
        &RawConnection {
            tenant: Some("team-a".into()),
            headers: vec!["X-Api-Key: redirect-secret".into()],
            ..raw()
        },
        None,
    )
    .unwrap();
    let http =
        crate::backends::Http::for_connection(std::time::Duration::from_secs(5), &connection)
            .unwrap();
    let url = |path: &str| url::Url::parse(&format!("http://{address}{path}")).unwrap();
    let (status, body) = http.get(url("/here"), &[]).await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "ok"),
        "same origin: followed"
    );
    let (status, _) = http.get(url("/away"), &[]).await.unwrap();
    assert_eq!(status, 307, "another origin: not followed");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}
