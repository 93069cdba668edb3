//! A small client for the parts of Grafana's HTTP API that provisioning uses.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How `obs` authenticates. `source` says where the credential came from (flag, env variable or
/// file), so errors can name it without showing it.
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

/// A failed API call, with what a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Grafana could not be reached or did not answer in time.
    #[error("{method} {url}: {reason}")]
    Unreachable {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Grafana answered with an error status.
    #[error("{method} {url} answered {status}: {message}{hint}")]
    Status {
        /// The method.
        method: Method,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// Grafana's `message`, or the body.
        message: String,
        /// What to do about it.
        hint: String,
        /// The JSON body, when there was one.
        body: Value,
    },
}

impl ApiError {
    /// The HTTP status, if Grafana answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Unreachable { .. } => None,
        }
    }

    /// The JSON body, if Grafana answered with one.
    pub fn body(&self) -> Option<&Value> {
        match self {
            ApiError::Status { body, .. } => Some(body),
            ApiError::Unreachable { .. } => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}

/// The client.
#[derive(Clone, Debug)]
pub struct GrafanaClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
    retries: usize,
}

impl GrafanaClient {
    /// A client for `base` (e.g. `http://grafana:3000`) with a per-request `timeout`.
    pub fn new(base: &str, auth: Auth, timeout: Duration) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("obs/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            auth,
            http,
            retries: 3,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The credential in use, described.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// One call, without retries.
    pub async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        request = match &self.auth {
            Auth::None => request,
            Auth::Token { token, .. } => request.bearer_auth(token),
            Auth::Basic { user, password, .. } => request.basic_auth(user, Some(password)),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Unreachable {
            method: method.clone(),
            url: url.clone(),
            reason: describe_transport(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ApiError::Unreachable {
            method: method.clone(),
            url: url.clone(),
            reason: describe_transport(&e),
        })?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                " — Grafana rejected {}; check it (OBS_GRAFANA_TOKEN[_FILE] or OBS_GRAFANA_USER/OBS_GRAFANA_PASSWORD[_FILE])",
                self.auth.describe()
            ),
            StatusCode::FORBIDDEN => format!(
                " — {} lacks permission; the service account needs the Admin role (or Editor plus datasource permissions)",
                self.auth.describe()
            ),
            StatusCode::NOT_FOUND if !path.contains("/uid/") => format!(
                " — is {} a Grafana (version 9 or newer) URL? (--grafana-url / OBS_GRAFANA_URL)",
                self.base
            ),
            _ => String::new(),
        };
        Err(ApiError::Status {
            method,
            url,
            status,
            message,
            hint,
            body: json,
        })
    }

    /// One call, retried with backoff on 5xx, 429 and transport errors (bounded).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let attempt = || self.call_once(method.clone(), path, body);
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

    /// `GET path`, `None` on 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.call(Method::GET, path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
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
        text
    }
}
