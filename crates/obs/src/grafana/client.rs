//! A small HTTP client for Grafana: URLs built from path segments under the configured base
//! (which may carry a path prefix such as `http://host/grafana/`), credentials, bounded retries,
//! and errors that say what to fix without showing a secret.

use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable as _};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::connection::Connection;

fn auth_is_set(auth: &Auth) -> bool {
    !matches!(auth, Auth::None)
}

/// How `obs` authenticates. `source` says where the credential came from (flag, env variable,
/// file or the URL's userinfo), so errors can name it without showing it.
#[derive(Clone)]
pub enum Auth {
    /// No credentials (anonymous Grafana).
    None,
    /// A service-account token, sent as `Authorization: Bearer …`.
    Token {
        /// The token.
        token: String,
        /// Where it came from.
        source: String,
    },
    /// Basic auth.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
        /// Where the password came from.
        source: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Auth {
    /// Which credential is used, never its value.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "no credentials".to_string(),
            Auth::Token { source, .. } => format!("the service-account token from {source}"),
            Auth::Basic { user, source, .. } => {
                format!("basic auth as user {user:?} with the password from {source}")
            }
        }
    }
}

/// A failed API call, with what a user needs to fix it. URLs in it never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Grafana could not be reached or did not answer in time.
    #[error("{method} {url}: {reason}")]
    Unreachable {
        /// The method.
        method: Method,
        /// The URL (redacted).
        url: String,
        /// The transport error (redacted).
        reason: String,
    },
    /// Grafana answered with an error status.
    #[error("{method} {url} answered {status}: {message}{hint}")]
    Status {
        /// The method.
        method: Method,
        /// The URL (redacted).
        url: String,
        /// The status.
        status: StatusCode,
        /// Grafana's `message`, or the body.
        message: String,
        /// What to do about it.
        hint: String,
        /// The JSON body, when there was one (boxed: errors stay small).
        body: Box<Value>,
    },
    /// Grafana answered success with a body that is not what its HTTP API documents.
    #[error(
        "{method} {url} answered, but not as Grafana's HTTP API documents: {reason}; is --grafana-url (OBS_GRAFANA_URL) a Grafana 9 or newer?"
    )]
    Unexpected {
        /// The method.
        method: Method,
        /// The URL (redacted).
        url: String,
        /// What did not fit.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status, if Grafana answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Unreachable { .. } | ApiError::Unexpected { .. } => None,
        }
    }

    /// The JSON body, if Grafana answered an error status with one.
    pub fn body(&self) -> Option<&Value> {
        match self {
            ApiError::Status { body, .. } => Some(body),
            ApiError::Unreachable { .. } | ApiError::Unexpected { .. } => None,
        }
    }

    /// Grafana refused the credential: 401 (not accepted) or 403 (not allowed).
    pub fn is_auth(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }

    fn retryable(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unexpected { .. } => false,
        }
    }
}

/// The client.
#[derive(Clone, Debug)]
pub struct GrafanaClient {
    /// Without userinfo, query or fragment; its path ends with `/`.
    base: Url,
    auth: Auth,
    http: reqwest::Client,
    retries: usize,
}

impl GrafanaClient {
    /// A client for `base` (e.g. `http://grafana:3000` or `https://host/grafana/`) with a
    /// per-request `timeout`. Userinfo in `base` is dropped here: credentials travel only as
    /// `auth` (see `run::auth`, which turns URL userinfo into [`Auth::Basic`]).
    pub fn new(base: &str, auth: Auth, timeout: Duration) -> anyhow::Result<Self> {
        Self::with_transport(
            base,
            auth,
            timeout,
            &Connection::none(crate::connection::Store::Grafana),
        )
    }

    /// Like [`GrafanaClient::new`], with `transport`'s extra headers, CA and client
    /// certificate (`--grafana-header`, `--grafana-ca-file`, `--grafana-client-cert/-key`).
    pub fn with_transport(
        base: &str,
        auth: Auth,
        timeout: Duration,
        transport: &Connection,
    ) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if auth_is_set(&auth)
            && let Some((name, _)) = transport
                .headers
                .iter()
                .find(|(n, _)| *n == reqwest::header::AUTHORIZATION)
        {
            anyhow::bail!(
                "an {name} header in --grafana-header (OBS_GRAFANA_HEADERS) and {} are both set; both set Authorization: keep one",
                auth.describe()
            );
        }
        let mut url = Url::parse(base).with_context(|| {
            format!(
                "--grafana-url (OBS_GRAFANA_URL) {:?} is not a URL",
                crate::redact::url(base)
            )
        })?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base(),
            "--grafana-url (OBS_GRAFANA_URL) {:?} is not an http(s) URL; write it like http://grafana:3000",
            crate::redact::url(base)
        );
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("obs/", env!("CARGO_PKG_VERSION")));
        let http = transport.apply(builder)?.build().map_err(|e| {
            anyhow::anyhow!(
                "cannot set up the HTTP client for Grafana ({}): {}",
                transport.describe(),
                crate::redact::text(&e.to_string())
            )
        })?;
        Ok(Self {
            base: url,
            auth,
            http,
            retries: 3,
        })
    }

    /// The base URL as it may be shown (no credentials), without a trailing `/`.
    pub fn base(&self) -> String {
        crate::redact::url(self.base.as_str())
            .trim_end_matches('/')
            .to_string()
    }

    /// The credential in use, described.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The URL of `segments` (each percent-encoded as one path segment) under the base, with
    /// `query` appended.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One call, without retries.
    pub async fn call_once(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(segments, query);
        let shown = crate::redact::url(url.as_str());
        let mut request = self.http.request(method.clone(), url);
        request = match &self.auth {
            Auth::None => request,
            Auth::Token { token, .. } => request.bearer_auth(token),
            Auth::Basic { user, password, .. } => request.basic_auth(user, Some(password)),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| ApiError::Unreachable {
            method: method.clone(),
            url: shown.clone(),
            reason: describe_transport(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let parsed = serde_json::from_slice::<Value>(&bytes);
        if status.is_success() {
            return parsed.map_err(|e| ApiError::Unexpected {
                method,
                url: shown,
                reason: format!("the body is not JSON ({e})"),
            });
        }
        let json = parsed.unwrap_or(Value::Null);
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                " — Grafana rejected {}; check it (OBS_GRAFANA_TOKEN[_FILE], OBS_GRAFANA_USER/OBS_GRAFANA_PASSWORD[_FILE], or user:password in OBS_GRAFANA_URL)",
                self.auth.describe()
            ),
            StatusCode::FORBIDDEN => format!(
                " — {} lacks permission; the service account needs the Admin role (or Editor plus datasource permissions)",
                self.auth.describe()
            ),
            // A collection route that is missing: not Grafana, or the wrong path prefix.
            StatusCode::NOT_FOUND if segments.len() <= 2 => format!(
                " — is {} a Grafana (version 9 or newer) URL, with its path prefix if it serves from a sub path? (--grafana-url / OBS_GRAFANA_URL)",
                self.base()
            ),
            _ => String::new(),
        };
        Err(ApiError::Status {
            method,
            url: shown,
            status,
            message: crate::redact::text(&message),
            hint,
            body: Box::new(json),
        })
    }

    /// One call, retried with backoff on 5xx, 429 and transport errors (bounded).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let attempt = || self.call_once(method.clone(), segments, query, body);
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(self.retries),
            )
            .when(ApiError::retryable)
            .await
    }
}

fn describe_transport(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer before the timeout".to_string()
    } else if error.is_connect() {
        "connection refused or host unreachable".to_string()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        crate::redact::text(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> GrafanaClient {
        GrafanaClient::new(base, Auth::None, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn urls_keep_the_path_prefix_and_encode_each_segment() {
        for base in ["http://host/grafana", "http://host/grafana/"] {
            let c = client(base);
            assert_eq!(
                c.url(&["api", "dashboards", "uid", "a/b c?%"], &[])
                    .as_str(),
                "http://host/grafana/api/dashboards/uid/a%2Fb%20c%3F%25"
            );
        }
        assert_eq!(
            client("http://host:3000")
                .url(&["api", "search"], &[("tag", "obs:managed")])
                .as_str(),
            "http://host:3000/api/search?tag=obs%3Amanaged"
        );
    }

    fn transport(headers: &[&str]) -> Connection {
        Connection::transport(
            crate::connection::Store::Grafana,
            &crate::connection::RawConnection {
                headers: headers.iter().map(|h| h.to_string()).collect(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_grafana_headers_ride_on_every_call_with_the_credential() {
        type Seen = std::sync::Arc<std::sync::Mutex<Vec<reqwest::header::HeaderMap>>>;
        let seen: Seen = Seen::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/grafana/api/health",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(headers);
                    axum::Json(serde_json::json!({"database": "ok"}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = GrafanaClient::with_transport(
            &format!("http://{address}/grafana"),
            Auth::Token {
                token: "glsa_header_test".into(),
                source: "--grafana-token".into(),
            },
            Duration::from_secs(5),
            &transport(&["X-Org-Gateway: gw-secret-value", "X-Second: 2"]),
        )
        .unwrap();
        client
            .call_once(Method::GET, &["api", "health"], &[], None)
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0]["x-org-gateway"], "gw-secret-value");
        assert_eq!(seen[0]["x-second"], "2");
        assert_eq!(seen[0]["authorization"], "Bearer glsa_header_test");
    }

    #[test]
    fn an_authorization_header_and_a_credential_are_both_refused() {
        let e = GrafanaClient::with_transport(
            "http://grafana:3000",
            Auth::Token {
                token: "t".into(),
                source: "--grafana-token (OBS_GRAFANA_TOKEN)".into(),
            },
            Duration::from_secs(1),
            &transport(&["Authorization: Bearer other-value"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--grafana-header (OBS_GRAFANA_HEADERS)")
                && e.contains("OBS_GRAFANA_TOKEN")
                && !e.contains("other-value"),
            "{e}"
        );
    }

    #[test]
    fn userinfo_never_stays_in_the_base() {
        let c = client("http://admin:s3cret@host:3000/g/?x=1#f");
        assert_eq!(c.base(), "http://host:3000/g");
        assert!(!c.url(&["api", "health"], &[]).as_str().contains("s3cret"));
    }
}
