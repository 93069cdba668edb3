//! What is never recorded: credentials in headers and query strings.
//!
//! `Authorization`, `Cookie`, `Set-Cookie` and `Proxy-Authorization` are never captured, even
//! when asked for by name. Query parameters named in [`DEFAULT_REDACTED_QUERY_PARAMS`]
//! (credentials, the OAuth 2.0 and OpenID Connect token and code parameters, API keys, session
//! ids, and the cloud signatures the semantic conventions list) keep their name and lose their
//! value (`REDACTED`) in `url.full` and `url.query`, and OTLP endpoints named in configuration
//! warnings lose their query values and `user:password@` alike. Names match case-insensitively
//! and after percent-decoding. More names can be added per layer or client.

/// Headers that are never recorded.
pub const ALWAYS_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// Query parameters whose values are redacted by default.
pub const DEFAULT_REDACTED_QUERY_PARAMS: &[&str] = &[
    "token",
    "password",
    "secret",
    // OAuth 2.0 (RFC 6749, RFC 6750) and OpenID Connect: tokens, the authorization code and
    // the client's secret.
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "client_secret",
    // API keys, as they are spelled in the wild.
    "apikey",
    "api_key",
    "api-key",
    "session",
    "sig",
    "AWSAccessKeyId",
    "Signature",
    "X-Goog-Signature",
];

/// The replacement for a redacted value, as the semantic conventions spell it.
pub const REDACTED: &str = "REDACTED";

/// A redaction policy: which headers may be captured, which query values are hidden.
#[derive(Clone, Debug)]
pub struct Redaction {
    captured_headers: Vec<String>,
    redacted_headers: Vec<String>,
    redacted_query_params: Vec<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Self {
            captured_headers: Vec::new(),
            redacted_headers: ALWAYS_REDACTED_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            redacted_query_params: DEFAULT_REDACTED_QUERY_PARAMS
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
        }
    }
}

impl Redaction {
    /// Records the request header `name` as `http.request.header.<name>` (opt-in), unless it is
    /// a redacted header.
    pub fn capture_header(mut self, name: &str) -> Self {
        self.captured_headers.push(name.to_ascii_lowercase());
        self
    }

    /// Never records the header `name`, even if captured.
    pub fn redact_header(mut self, name: &str) -> Self {
        self.redacted_headers.push(name.to_ascii_lowercase());
        self
    }

    /// Redacts the value of the query parameter `name` (case-insensitive).
    pub fn redact_query_param(mut self, name: &str) -> Self {
        self.redacted_query_params.push(name.to_ascii_lowercase());
        self
    }

    /// The request headers to record: captured by name and not redacted.
    pub fn headers_to_capture(&self) -> impl Iterator<Item = &str> {
        self.captured_headers
            .iter()
            .filter(|h| !self.redacted_headers.contains(h))
            .map(String::as_str)
    }

    /// The query string with sensitive values replaced by `REDACTED`.
    pub fn query(&self, query: &str) -> String {
        query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                if !value.is_empty()
                    && self
                        .redacted_query_params
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(&decoded))
                {
                    format!("{name}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `url` with its query redacted and any `user:password@` userinfo removed.
    pub fn url(&self, url: &str) -> String {
        let (before_fragment, _) = url.split_once('#').unwrap_or((url, ""));
        let (base, query) = match before_fragment.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (before_fragment, None),
        };
        let base = match base.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{scheme}://{host}{path}")
            }
            None => base.to_string(),
        };
        match query {
            Some(q) => format!("{base}?{}", self.query(q)),
            None => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_query_values_are_replaced_and_names_kept() {
        let r = Redaction::default().redact_query_param("session");
        assert_eq!(
            r.query("id=7&token=abc&Password=p%40ss&sig=&session=s1&api%5Fkey=k"),
            "id=7&token=REDACTED&Password=REDACTED&sig=&session=REDACTED&api%5Fkey=REDACTED"
        );
    }

    #[test]
    fn oauth_api_key_and_session_parameters_are_redacted_by_default() {
        let r = Redaction::default();
        for name in [
            "access_token",
            "refresh_token",
            "id_token",
            "code",
            "client_secret",
            "apikey",
            "api_key",
            "api-key",
            "API-Key",
            "session",
        ] {
            assert_eq!(
                r.url(&format!("https://idp.example/cb?state=s&{name}=v4lue")),
                format!("https://idp.example/cb?state=s&{name}=REDACTED"),
                "{name}"
            );
        }
        assert_eq!(
            r.query("codec=h264&session_id=7"),
            "codec=h264&session_id=7"
        );
    }

    proptest::proptest! {
        /// Whatever the query, no value of a redacted parameter survives and every other pair
        /// is kept as it was.
        #[test]
        fn no_redacted_value_survives_any_query(
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "access_token", "Code", "api-key", "q", "page", "session", "x",
                    ]),
                    "[a-zA-Z0-9%._~-]{0,12}",
                ),
                0..8,
            ),
        ) {
            let query = pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let redacted = Redaction::default().query(&query);
            let out: Vec<&str> = redacted.split('&').collect();
            proptest::prop_assert_eq!(out.len(), query.split('&').count());
            for ((name, value), got) in pairs.iter().zip(&out) {
                let sensitive = !["q", "page", "x"].contains(name);
                if sensitive && !value.is_empty() {
                    proptest::prop_assert_eq!(*got, format!("{name}={REDACTED}"));
                } else {
                    proptest::prop_assert_eq!(*got, format!("{name}={value}"));
                }
            }
        }
    }

    #[test]
    fn urls_lose_credentials_and_sensitive_query_values() {
        let r = Redaction::default();
        assert_eq!(
            r.url("https://user:pw@api.example.com:8443/v1/x?token=t&q=1#frag"),
            "https://api.example.com:8443/v1/x?token=REDACTED&q=1"
        );
        assert_eq!(r.url("http://h/p"), "http://h/p");
    }

    #[test]
    fn redacted_headers_are_never_captured_even_when_asked_for() {
        let r = Redaction::default()
            .capture_header("X-Tenant")
            .capture_header("Authorization")
            .capture_header("x-internal-key")
            .redact_header("x-internal-key");
        assert_eq!(r.headers_to_capture().collect::<Vec<_>>(), ["x-tenant"]);
    }
}
