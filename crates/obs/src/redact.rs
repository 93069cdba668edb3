//! Credentials never reach obs's output: URL userinfo and the values of sensitive query
//! parameters (the list is platform-telemetry's,
//! [`DEFAULT_REDACTED_QUERY_PARAMS`](platform_telemetry::redact::DEFAULT_REDACTED_QUERY_PARAMS))
//! are removed from every URL obs prints, logs, serves on `/status` or puts in a report, and
//! from URLs inside error messages (reqwest's errors name the URL they failed on).

use std::sync::LazyLock;

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

/// `text` with every `http://` or `https://` URL in it redacted as [`url`] does.
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
    match URL.as_ref() {
        Some(re) => re
            .replace_all(text, |c: &regex::Captures<'_>| url(&c[0]))
            .into_owned(),
        // The pattern is a constant that compiles; should it not, hide every URL.
        None => "<redacted: the message contained a URL>".to_string(),
    }
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

    proptest! {
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
