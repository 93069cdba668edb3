//! A model of the authenticating gateway in front of Tempo or Loki: neither has any
//! authentication of its own ("Grafana Loki does not come with any included authentication
//! layer. You must run an authenticating reverse proxy in front of your services", Loki's
//! "Manage authentication"; Tempo likewise), so deployments put nginx (`auth_basic`, or
//! `auth_request` to a token service), an OAuth2 proxy or Grafana Cloud's gateway in front, often
//! under a path prefix (`/tempo`, `/loki`).
//!
//! What this gateway does, in this order, before the double sees a request:
//! 1. Path prefix ([`Gateway::prefix`]): a request outside it answers 404 (nginx's
//!    `404 Not Found` page); inside, the prefix is stripped.
//! 2. Credentials ([`Gateway::allow`]), as RFC 7235 and 7617 (Basic) / RFC 6750 (Bearer) say:
//!    a request without an `Authorization` header, or with one that matches no allowed
//!    credential, answers **401** with a `WWW-Authenticate` challenge for each accepted scheme
//!    (`Basic realm="…"` as nginx's `auth_basic "…"` writes it; `Bearer realm="…"` as an RFC 6750
//!    token service behind nginx's `auth_request` would, adding `error="invalid_token"` for a
//!    wrong token) and nginx's `401 Authorization Required` page; a credential that is
//!    known but not allowed here ([`Gateway::forbid`]) answers **403** with nginx's
//!    `403 Forbidden` page. Comparison is exact (scheme name case-insensitive, as RFC 7235 says).
//!
//! Tenancy is not the gateway's business here: the client sends `X-Scope-OrgID` itself, as
//! with Grafana's data source `httpHeaderName1`; the double behind enforces it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::chassis::Error;

/// A credential a client may present.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(<user>:<password>)`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::Basic { user, .. } => write!(f, "Basic({user}:<redacted>)"),
        }
    }
}

/// The gateway in front of a double: path prefix and credentials (see the module doc).
/// `Gateway::default()` lets everything through, as having no gateway does.
#[derive(Clone, Debug, Default)]
pub struct Gateway {
    prefix: Option<String>,
    allowed: Vec<Credential>,
    forbidden: Vec<Credential>,
    realm: Option<String>,
}

/// nginx's 401 page.
const PAGE_401: &str = "<html>\r\n<head><title>401 Authorization Required</title></head>\r\n<body>\r\n<center><h1>401 Authorization Required</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// nginx's 403 page.
const PAGE_403: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// nginx's 404 page.
const PAGE_404: &str = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
/// Largest `Authorization` header looked at; longer ones are wrong credentials.
const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

impl Gateway {
    /// Serves the double under `prefix` (e.g. `/tempo`; a trailing `/` is ignored; empty or
    /// `/` means no prefix).
    pub fn prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        self.prefix = if trimmed.is_empty() {
            None
        } else if trimmed.starts_with('/') {
            Some(trimmed.to_owned())
        } else {
            Some(format!("/{trimmed}"))
        };
        self
    }

    /// Accepts `credential` (several may be accepted). Once one is, every request needs one.
    pub fn allow(mut self, credential: Credential) -> Self {
        self.allowed.push(credential);
        self
    }

    /// Knows `credential` but refuses it with 403 (a valid token without access to this
    /// service). Requires credentials from then on, like [`allow`](Self::allow).
    pub fn forbid(mut self, credential: Credential) -> Self {
        self.forbidden.push(credential);
        self
    }

    /// The realm named in challenges (default: the double's name).
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = Some(realm.to_owned());
        self
    }

    /// The path prefix, if any (`/tempo`).
    pub fn path_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Whether the gateway asks for credentials.
    pub fn requires_credentials(&self) -> bool {
        !self.allowed.is_empty() || !self.forbidden.is_empty()
    }

    /// Puts this gateway in front of `app` (the double `double`'s router); refuses a prefix
    /// that is not a plain path (axum would read `{x}` or `*x` as a pattern).
    pub(crate) fn wrap(&self, double: &'static str, app: Router) -> Result<Router, Error> {
        if let Some(prefix) = &self.prefix
            && !is_plain_path(prefix)
        {
            let prefix = prefix.clone();
            return Err(Error::InvalidPrefix { double, prefix });
        }
        let app = if self.requires_credentials() {
            let state = Arc::new(Checker {
                gateway: self.clone(),
                realm: self.realm.clone().unwrap_or_else(|| double.to_owned()),
            });
            app.layer(axum::middleware::from_fn_with_state(state, check))
        } else {
            app
        };
        Ok(match &self.prefix {
            None => app,
            Some(prefix) => Router::new()
                .nest(prefix, app)
                .fallback(async || html(StatusCode::NOT_FOUND, PAGE_404)),
        })
    }
}

/// `/seg/seg…`: non-empty segments of RFC 3986 unreserved characters, at most 256 bytes.
fn is_plain_path(prefix: &str) -> bool {
    prefix.len() <= 256
        && prefix.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            })
        })
}

#[derive(Debug)]
struct Checker {
    gateway: Gateway,
    realm: String,
}

/// What the `Authorization` header presents.
#[derive(Debug, PartialEq, Eq)]
enum Presented {
    None,
    Credential(Credential),
    /// A header the gateway cannot read (unknown scheme, bad base64, too long).
    Unreadable,
}

/// Reads an `Authorization` header value (bounded).
fn presented(value: Option<&HeaderValue>) -> Presented {
    let Some(value) = value else {
        return Presented::None;
    };
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Presented::Unreadable;
    }
    let Ok(value) = value.to_str() else {
        return Presented::Unreadable;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Presented::Credential(Credential::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest);
        let Some(text) = decoded.ok().and_then(|d| String::from_utf8(d).ok()) else {
            return Presented::Unreadable;
        };
        if let Some((user, password)) = text.split_once(':') {
            let (user, password) = (user.to_owned(), password.to_owned());
            return Presented::Credential(Credential::Basic { user, password });
        }
    }
    Presented::Unreadable
}

async fn check(State(checker): State<Arc<Checker>>, request: Request, next: Next) -> Response {
    let gateway = &checker.gateway;
    match presented(request.headers().get(header::AUTHORIZATION)) {
        Presented::Credential(c) if gateway.forbidden.contains(&c) => {
            html(StatusCode::FORBIDDEN, PAGE_403)
        }
        Presented::Credential(c) if gateway.allowed.contains(&c) => next.run(request).await,
        other => {
            let wrong_bearer = matches!(other, Presented::Credential(Credential::Bearer(_)));
            challenge(gateway, &checker.realm, wrong_bearer)
        }
    }
}

/// The 401 with one `WWW-Authenticate` per accepted scheme.
fn challenge(gateway: &Gateway, realm: &str, wrong_bearer: bool) -> Response {
    let known = gateway.allowed.iter().chain(&gateway.forbidden);
    let basic = known.clone().any(|c| matches!(c, Credential::Basic { .. }));
    let bearer = known.clone().any(|c| matches!(c, Credential::Bearer(_)));
    let realm = realm.replace(['"', '\\'], "");
    let mut response = html(StatusCode::UNAUTHORIZED, PAGE_401);
    let mut add = |value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, value);
        }
    };
    if basic {
        add(format!(r#"Basic realm="{realm}""#));
    }
    if bearer {
        let error = if wrong_bearer {
            r#", error="invalid_token""#
        } else {
            ""
        };
        add(format!(r#"Bearer realm="{realm}"{error}"#));
    }
    response
}

fn html(status: StatusCode, page: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_bearer_and_basic_credentials() {
        let value = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            presented(Some(&value("Bearer t0k"))),
            Presented::Credential(Credential::Bearer("t0k".into()))
        );
        assert_eq!(
            presented(Some(&value("basic dXNlcjpwQHNzOndvcmQ="))),
            Presented::Credential(Credential::Basic {
                user: "user".into(),
                password: "p@ss:word".into()
            })
        );
        assert_eq!(presented(None), Presented::None);
        for bad in ["Bearer", "Basic !!!", "Basic dXNlcg==", "Digest x", ""] {
            assert_eq!(presented(Some(&value(bad))), Presented::Unreadable, "{bad}");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(
            Gateway::default().prefix("tempo/").path_prefix(),
            Some("/tempo")
        );
        assert_eq!(Gateway::default().prefix("/").path_prefix(), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::Basic {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}{:?}", Credential::Bearer("s3cret".into())).contains("hunter2"));
        assert!(!format!("{:?}", Credential::Bearer("s3cret".into())).contains("s3cret"));
    }

    proptest! {
        #[test]
        fn any_header_is_read_without_panicking(value in proptest::collection::vec(any::<u8>(), 0..10_000)) {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                let _ = presented(Some(&value));
            }
        }
    }
}
