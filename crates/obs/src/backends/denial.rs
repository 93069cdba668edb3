//! Refusals and transport failures in words that name the fix: a 401, a 403 or a "no org id"
//! answer becomes [`StoreError::Denied`] with the setting to set (from the store's
//! [`Connection`]), and a TLS failure names the CA and client-certificate settings.

use super::{StoreError, body_start};
use crate::connection::{Connection, Credential, Setting, Store};
use crate::redact;

/// How a store refused obs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// 401: no credentials, or ones it does not accept.
    Unauthorized,
    /// 403: the credentials are accepted but may not do this (or not for this tenant).
    Forbidden,
    /// The store is multi-tenant and the request named no tenant ("no org id").
    NoTenant,
}

/// What a refusal's body says: its text, or an HTML error page's `<title>` (gateways such as
/// nginx answer 401 with a page).
fn explanation(body: &str) -> String {
    let lower = body.to_ascii_lowercase();
    if !lower.contains("<html") {
        return body_start(body);
    }
    let title = lower
        .find("<title>")
        .map(|at| at + "<title>".len())
        .and_then(|start| {
            lower[start..]
                .find("</title>")
                .map(|len| (start, start + len))
        })
        .and_then(|(start, end)| body.get(start..end));
    title.map(body_start).unwrap_or_default()
}

/// The refusal in an answer, if it is one: 401 or 403, or any 4xx whose body says the tenant
/// is missing ("no org id", as Tempo, Loki and Mimir answer), diagnosed against what
/// `connection` sent.
pub fn denial(
    connection: Option<&Connection>,
    url: &str,
    status: u16,
    body: &str,
) -> Option<StoreError> {
    let no_org_id = (400..500).contains(&status) && body.to_ascii_lowercase().contains("no org id");
    let denial = match status {
        _ if no_org_id => Denial::NoTenant,
        401 => Denial::Unauthorized,
        403 => Denial::Forbidden,
        _ => return None,
    };
    let store = connection.map_or(Store::Grafana, |c| c.store);
    let (title, hint) = match connection {
        Some(connection) => (store.title(), diagnose(connection, denial)),
        None => (
            "the server",
            "obs sent no credentials or tenant for it".to_string(),
        ),
    };
    Some(StoreError::Denied {
        store: title,
        url: url.to_string(),
        status,
        body: explanation(body),
        denial,
        hint,
    })
}

/// What to set, for a refusal by the store `connection` reaches.
fn diagnose(connection: &Connection, denial: Denial) -> String {
    let store = connection.store;
    let credentials = format!(
        "a bearer token ({} or {}) or basic auth ({} with {} or {})",
        store.setting(Setting::Token),
        store.setting(Setting::TokenFile),
        store.setting(Setting::User),
        store.setting(Setting::Password),
        store.setting(Setting::PasswordFile)
    );
    match (denial, &connection.tenant, &connection.credential) {
        (Denial::NoTenant, None, _) => format!(
            "{store} is multi-tenant and obs sent no tenant: set {} (or --tenant / OBS_TENANT for every store)",
            store.setting(Setting::Tenant)
        ),
        (Denial::NoTenant, Some(tenant), _) => format!(
            "obs sent {} {:?} (from {}), yet {store} saw no tenant: does a proxy in between drop the header, or expect the tenant elsewhere?",
            store.tenant_header(),
            tenant.id,
            tenant.source
        ),
        (Denial::Unauthorized, _, Credential::None) => {
            format!("{store} wants credentials and obs sent none: set {credentials}")
        }
        (Denial::Unauthorized, _, credential) => format!(
            "{store} rejected {}: check it (wrong, expired, or for another store?)",
            credential.describe()
        ),
        (Denial::Forbidden, tenant, credential) => format!(
            "{store} accepted the request but does not allow it with {}{}: grant access, or use credentials that have it",
            credential.describe(),
            tenant
                .as_ref()
                .map(|t| format!(" for tenant {:?} (from {})", t.id, t.source))
                .unwrap_or_default()
        ),
    }
}

/// The error and its sources, joined.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// True when a connect error is TLS's (a certificate not trusted, a handshake refused).
fn is_tls_failure(chain: &str) -> bool {
    let lower = chain.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "alert", "ssl"]
        .iter()
        .any(|word| lower.contains(word))
}

/// A transport error in plain words.
pub fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer before the timeout".into();
    }
    let chain = error_chain(e);
    let https = e.url().is_some_and(|u| u.scheme() == "https");
    if e.is_connect() && !is_tls_failure(&chain) {
        "connection refused or host unreachable".into()
    } else if is_tls_failure(&chain) {
        format!("TLS failed: {}", redact::text(&chain))
    } else if https && e.is_request() {
        // TLS 1.3 sends a refused client certificate's alert after the handshake: the client
        // sees the connection close before any answer, with no TLS word in the error.
        format!(
            "TLS failed (the server closed the connection before answering, as one that requires a client certificate does): {}",
            redact::text(&chain)
        )
    } else {
        redact::text(&e.to_string())
    }
}

/// What to set when TLS to `connection`'s store failed.
pub(super) fn tls_hint(connection: &Connection) -> String {
    let store = connection.store;
    let trusted = match &connection.ca {
        Some(ca) => format!("the system's roots and {}", ca.path.display()),
        None => "the system's roots only".to_string(),
    };
    format!(
        " (obs trusted {trusted}; a server certificate from a private CA needs {}; a server that requires a client certificate needs {} and {})",
        store.setting(Setting::CaFile),
        store.setting(Setting::ClientCert),
        store.setting(Setting::ClientKey)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loki(tenant: Option<&str>, credential: Credential) -> Connection {
        let mut c = Connection::none(Store::Loki);
        c.tenant = tenant.map(|id| crate::connection::Tenant {
            id: id.into(),
            source: "--tenant (OBS_TENANT)".into(),
        });
        c.credential = credential;
        c
    }

    #[test]
    fn a_refusal_names_the_setting_that_fixes_it() {
        let url = "http://loki:3100/loki/api/v1/query_range";
        let no_org = denial(Some(&loki(None, Credential::None)), url, 401, "no org id\n").unwrap();
        assert_eq!(no_org.denial(), Some(Denial::NoTenant));
        let text = no_org.to_string();
        assert!(
            text.starts_with("Loki answered 401 \"no org id\": ")
                && text.contains("set --loki-tenant (OBS_LOKI_TENANT)")
                && text.contains("OBS_TENANT"),
            "{text}"
        );
        let unauthorized = denial(Some(&loki(Some("a"), Credential::None)), url, 401, "")
            .unwrap()
            .to_string();
        assert!(
            unauthorized.contains("obs sent none")
                && unauthorized.contains("--loki-token (OBS_LOKI_TOKEN)")
                && unauthorized.contains("--loki-user (OBS_LOKI_USER)"),
            "{unauthorized}"
        );
        let basic = Credential::Basic {
            user: "u1".into(),
            password: "never-shown".into(),
            source: "--loki-password-file (OBS_LOKI_PASSWORD_FILE) /run/pw".into(),
        };
        let rejected = denial(Some(&loki(None, basic.clone())), url, 401, "invalid")
            .unwrap()
            .to_string();
        assert!(
            rejected.contains("rejected basic auth as user \"u1\"")
                && rejected.contains("/run/pw")
                && !rejected.contains("never-shown"),
            "{rejected}"
        );
        let forbidden = denial(Some(&loki(Some("team-a"), basic)), url, 403, "").unwrap();
        assert_eq!(forbidden.denial(), Some(Denial::Forbidden));
        assert!(
            forbidden.to_string().contains("for tenant \"team-a\""),
            "{forbidden}"
        );
        assert_eq!(
            denial(Some(&loki(None, Credential::None)), url, 404, "no"),
            None
        );
        assert_eq!(
            denial(Some(&loki(None, Credential::None)), url, 200, "no org id"),
            None
        );
    }

    proptest::proptest! {
        /// Whatever a refusing server answers, the explanation is bounded and never panics.
        #[test]
        fn a_refusal_body_is_explained_within_bounds(
            body in "(\\PC|<title>|</title>|<html>){0,400}",
        ) {
            let shown = explanation(&body);
            proptest::prop_assert!(shown.chars().count() <= 300 || shown.contains("REDACTED"));
        }
    }
}
