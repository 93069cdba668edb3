//! Tenancy as Tempo and Loki enforce it through dskit: the tenant of a request is its
//! `X-Scope-OrgID` header.
//!
//! - Single-tenant (Tempo `multitenancy_enabled: false`, Loki `auth_enabled: false`, the
//!   doubles' default): every request and every push belongs to one fixed tenant, Tempo's
//!   `single-tenant`, Loki's `fake`; a header that is sent is ignored, as upstream's "fake auth"
//!   middleware injects its tenant whatever the request says.
//! - Multi-tenant (Tempo `multitenancy_enabled: true`, Loki `auth_enabled: true`): a request
//!   without the header is refused as recorded in `upstream-samples/*_mt_*` (queries: 401
//!   `no org id`; Tempo's OTLP intake: 503 / UNAVAILABLE `no org id`; Loki's OTLP intake: 401),
//!   and data is kept per tenant: another tenant's data is invisible, exactly like data that does
//!   not exist.
//!
//! Tenant ids are checked as dskit's `tenant.ValidTenantID` documents them (Tempo's "Tenant IDs"
//! page: at most 150 bytes of `0-9 a-z A-Z ! - _ . * ' ( )`, not `.` or `..`). What upstream
//! answers to an invalid id, and cross-tenant queries (`a|b`), were not recorded: the doubles
//! refuse both with a 400 that says so, rather than guess.

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::common;

/// The header carrying the tenant.
pub const ORG_ID_HEADER: &str = "X-Scope-OrgID";
/// Tempo's tenant when multi-tenancy is off (`util.FakeTenantID`).
pub const TEMPO_SINGLE_TENANT: &str = "single-tenant";
/// Loki's tenant when `auth_enabled: false` ("In single-tenant mode, the tenant ID defaults to
/// fake", Loki's multi-tenancy page).
pub const LOKI_SINGLE_TENANT: &str = "fake";
/// dskit's `MaxTenantIDLength`.
const MAX_TENANT_ID_BYTES: usize = 150;

/// The recorded answer body of a query or Loki push without `X-Scope-OrgID`
/// (`tempo_mt_query_no_org_id.txt`, `loki_mt_query_no_org_id.txt`, `loki_mt_push_no_org_id.txt`).
pub(crate) const NO_ORG_ID: &str = "no org id";

/// How a double assigns requests to tenants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tenancy {
    /// Everything belongs to this tenant; the header is ignored.
    Single(&'static str),
    /// The header is required; data is kept per tenant.
    Multi,
}

/// The tenant a request was assigned to, for the handlers (an axum request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tenant(pub(crate) String);

/// Why a request has no (usable) tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TenantError {
    /// No header, or an empty one: upstream's `no org id`.
    Missing,
    /// A value the double does not model (invalid per dskit's rules, or several tenants); the
    /// message says which rule.
    NotModelled(String),
}

impl Tenancy {
    /// The tenant of a request with `headers`.
    pub(crate) fn tenant_of(&self, headers: &HeaderMap) -> Result<Tenant, TenantError> {
        match self {
            Tenancy::Single(tenant) => Ok(Tenant((*tenant).to_owned())),
            Tenancy::Multi => {
                let value = headers.get(ORG_ID_HEADER).map(|v| v.as_bytes());
                parse_org_id(value.unwrap_or_default()).map(Tenant)
            }
        }
    }
}

/// Checks an `X-Scope-OrgID` value (bounded before use: at most 150 bytes are looked at).
pub(crate) fn parse_org_id(value: &[u8]) -> Result<String, TenantError> {
    if value.is_empty() {
        return Err(TenantError::Missing);
    }
    if value.len() > MAX_TENANT_ID_BYTES {
        return Err(TenantError::NotModelled(format!(
            "tenant ID is too long: max {MAX_TENANT_ID_BYTES} characters"
        )));
    }
    if value.contains(&b'|') {
        return Err(TenantError::NotModelled(
            "several tenants in one request (cross-tenant queries)".into(),
        ));
    }
    if let Some(bad) = value
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || b"!-_.*'()".contains(b)))
    {
        let shown = String::from_utf8_lossy(value);
        return Err(TenantError::NotModelled(format!(
            "tenant ID '{shown}' contains unsupported character (byte {bad:#04x})"
        )));
    }
    if value == b"." || value == b".." {
        return Err(TenantError::NotModelled("tenant ID is '.' or '..'".into()));
    }
    // Only ASCII passed the checks above.
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// What a double answers over HTTP when a query has no usable tenant.
pub(crate) fn refusal(double: &str, error: &TenantError) -> Response {
    match error {
        TenantError::Missing => common::text(401, NO_ORG_ID),
        TenantError::NotModelled(rule) => common::text(
            400,
            format!("not modelled by the {double} double ({ORG_ID_HEADER}): {rule}\n"),
        ),
    }
}

/// The state of [`require_tenant`]: the double's name, its tenancy, and the paths upstream
/// serves without a tenant (`/ready`, …).
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    pub(crate) double: &'static str,
    pub(crate) tenancy: Tenancy,
    pub(crate) open_paths: &'static [&'static str],
}

/// Middleware: assigns the request its [`Tenant`] (a request extension) or refuses it as
/// upstream does.
pub(crate) async fn require_tenant(
    axum::extract::State(gate): axum::extract::State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    if gate.open_paths.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match gate.tenancy.tenant_of(request.headers()) {
        Ok(tenant) => {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Err(error) => refusal(gate.double, &error),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_and_invalid_org_ids() {
        assert_eq!(
            parse_org_id(b"team-a_1.(x)*!'"),
            Ok("team-a_1.(x)*!'".into())
        );
        assert_eq!(parse_org_id(b""), Err(TenantError::Missing));
        for bad in [&b"a|b"[..], b"a/b", b"a b", b".", b"..", "é".as_bytes()] {
            assert!(
                matches!(parse_org_id(bad), Err(TenantError::NotModelled(_))),
                "{bad:?}"
            );
        }
        assert!(parse_org_id(&[b'a'; 150]).is_ok());
        assert!(parse_org_id(&[b'a'; 151]).is_err());
    }

    #[test]
    fn single_tenant_ignores_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(ORG_ID_HEADER, "a".parse().unwrap());
        let single = Tenancy::Single(LOKI_SINGLE_TENANT);
        assert_eq!(single.tenant_of(&headers), Ok(Tenant("fake".into())));
        assert_eq!(Tenancy::Multi.tenant_of(&headers), Ok(Tenant("a".into())));
        let none = Tenancy::Multi.tenant_of(&HeaderMap::new());
        assert_eq!(none, Err(TenantError::Missing));
    }

    proptest! {
        #[test]
        fn accepted_ids_are_bounded_and_of_the_documented_alphabet(
            value in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            if let Ok(id) = parse_org_id(&value) {
                prop_assert!(!id.is_empty() && id.len() <= 150);
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b)));
                prop_assert!(id != "." && id != "..");
                prop_assert_eq!(id.as_bytes(), &value[..]);
            }
        }
    }
}
