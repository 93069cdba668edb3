//! Credentials never reach obs's output: URL userinfo and the values of sensitive query
//! parameters (the list is platform-telemetry's,
//! [`DEFAULT_REDACTED_QUERY_PARAMS`](platform_telemetry::redact::DEFAULT_REDACTED_QUERY_PARAMS))
//! are removed from every URL obs prints, logs, serves on `/status` or puts in a report, and
//! from URLs inside error messages (reqwest's errors name the URL they failed on).
//!
//! The credentials obs is given for the stores and Grafana (tokens, passwords, extra header
//! values) are [registered](register_secret) when they are read, and [`text`] replaces every
//! occurrence of one with `REDACTED`, wherever it appears (a store that echoes a header back in
//! its error body, a URL, a message).

use std::sync::{LazyLock, RwLock};

use platform_telemetry::redact::Redaction;
use regex::Regex;

/// `url` as it may be shown: no `user:password@`, sensitive query values `REDACTED`, no
/// fragment.
///
/// ```
/// assert_eq!(
///     obs::redact::url("http://admin:s3cret@grafana:3000/api?token=t&q=1"),
///     "http://grafana:3000/api?token=REDACTED&q=1"
/// );
/// ```
pub fn url(url: &str) -> String {
    Redaction::default().url(url)
}

/// Secrets shorter than this are not registered: replacing every `ab` in every message would
/// garble the output and hide nothing worth hiding.
pub const MIN_SECRET_LEN: usize = 4;

/// The most secrets registered (each store has a handful; the bound keeps [`text`] cheap).
pub const MAX_SECRETS: usize = 256;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers `secret` (a token, a password, a header value) so that [`text`] never shows it.
/// Values shorter than [`MIN_SECRET_LEN`] are ignored.
///
/// ```
/// obs::redact::register_secret("tok-3x4mple-v4lue");
/// assert_eq!(
///     obs::redact::text("the gateway said: bad token tok-3x4mple-v4lue"),
///     "the gateway said: bad token REDACTED"
/// );
/// ```
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    if let Ok(mut secrets) = SECRETS.write()
        && secrets.len() < MAX_SECRETS
        && !secrets.iter().any(|s| s == secret)
    {
        secrets.push(secret.to_string());
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

fn without_secrets(text: String) -> String {
    match SECRETS.read() {
        Ok(secrets) => scrub(text, &secrets),
        Err(_) => text,
    }
}

/// `text` with each of `secrets` (longest first) replaced by `REDACTED`.
fn scrub(text: String, secrets: &[String]) -> String {
    let mut text = text;
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "REDACTED");
        }
    }
    text
}

/// `text` with every `http://` or `https://` URL in it redacted as [`url`] does, and every
/// [registered secret](register_secret) replaced by `REDACTED`.
///
/// ```
/// assert_eq!(
///     obs::redact::text("error sending request for url (http://u:pw@tempo:3200/api?x=1)"),
///     "error sending request for url (http://tempo:3200/api?x=1)"
/// );
/// ```
pub fn text(text: &str) -> String {
    static URL: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r#"https?://[^\s()<>"'\]\[{}]+"#).ok());
    let text = match URL.as_ref() {
        Some(re) => re
            .replace_all(text, |c: &regex::Captures<'_>| url(&c[0]))
            .into_owned(),
        // The pattern is a constant that compiles; should it not, hide every URL.
        None => "<redacted: the message contained a URL>".to_string(),
    };
    without_secrets(text)
}

/// An error chain (`{:#}`) with its URLs redacted.
pub fn error(error: &anyhow::Error) -> String {
    text(&format!("{error:#}"))
}

/// True when `url` carries credentials of its own (userinfo).
pub fn has_userinfo(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn userinfo_and_sensitive_values_go_everything_else_stays() {
        assert_eq!(
            text("GET https://bob:hunter2@loki:3100/loki/api/v1/query?query=x&api_key=k failed"),
            "GET https://loki:3100/loki/api/v1/query?query=x&api_key=REDACTED failed"
        );
        assert_eq!(text("no url here"), "no url here");
    }

    #[test]
    fn a_registered_secret_is_replaced_wherever_it_appears_and_short_ones_are_ignored() {
        register_secret("Bearer sekr1t-token-value");
        register_secret("sekr1t-token");
        register_secret("ab");
        assert_eq!(
            text("401: header Bearer sekr1t-token-value rejected; also sekr1t-token"),
            "401: header REDACTED rejected; also REDACTED"
        );
        assert_eq!(text("ab stays"), "ab stays");
    }

    proptest! {
        /// No registered secret survives in any text that contains it.
        #[test]
        fn no_registered_secret_survives(
            before in "[a-z :]{0,20}",
            secret in "[a-z0-9+/=_-]{8,40}",
            after in "[a-z :]{0,20}",
        ) {
            let shown = scrub(format!("{before}{secret}{after}{secret}"), std::slice::from_ref(&secret));
            prop_assert!(!shown.contains(&secret), "{}", shown);
        }


        /// No password placed in a URL's userinfo survives, wherever the URL sits in the text.
        #[test]
        fn no_userinfo_password_survives(
            before in "[a-z ]{0,10}",
            password in "[A-Z0-9]{6,12}",
            host in "[a-z]{1,8}",
            after in "[a-z ]{0,10}",
        ) {
            let shown = text(&format!("{before}http://user:{password}@{host}:80/p {after}"));
            prop_assert!(!shown.contains(&password), "{}", shown);
            prop_assert!(shown.contains(&format!("http://{host}:80/p")), "{}", shown);
        }
    }
}
