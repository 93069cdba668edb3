//! How obs reaches each store and Grafana on a real platform: the tenant (`X-Scope-OrgID`),
//! a bearer token or basic auth, extra headers, a CA to trust and a client certificate, each
//! from a flag, an `OBS_*` variable or a file. Path prefixes ride in the store's URL
//! ([`StoreUrl`](crate::backends::StoreUrl) joins the API paths below it).
//!
//! The raw flags ([`args`]) are resolved once into a [`Connection`] per store: conflicts
//! (a token and basic auth, a password without a user, a certificate without its key, an
//! unreadable file) are [`ConnectionError`]s naming both settings, files are read with a size
//! bound, and every secret is [registered](crate::redact::register_secret) so that no output
//! shows it. A [`Connection`]'s `Debug` shows which settings are set, never a value.

pub mod args;
mod credential;
mod files;
pub mod headers;
mod store;
pub mod tenant;

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::backends::Backend;
use crate::redact;

pub use args::{GrafanaTransportArgs, RawConnection, StoreConnectionArgs};
pub use store::{Setting, Store};

/// A connection setting that cannot be used. `obs` exits 2 (usage).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// Two settings that exclude each other.
    #[error("{first} and {second} are both set; {why}")]
    Conflict {
        /// One setting (flag and variable).
        first: String,
        /// The other.
        second: String,
        /// Why only one may be set, and what to do.
        why: &'static str,
    },
    /// A setting that needs another one.
    #[error("{given} is set without {needed}; set {needed} too, or unset {given}")]
    Missing {
        /// The setting given.
        given: String,
        /// The setting it needs.
        needed: String,
    },
    /// A file that cannot be read or used.
    #[error("{setting} {path}: {why}")]
    File {
        /// The setting that named the file.
        setting: String,
        /// The file.
        path: String,
        /// What is wrong, with the fix.
        why: String,
    },
    /// A value that cannot be sent.
    #[error("{setting}: {why}")]
    Value {
        /// The setting (and which entry).
        setting: String,
        /// What is wrong, with the fix. Never holds the value of a secret.
        why: String,
    },
}

/// The tenant sent to a store, and which setting gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant id (or `a|b` for a federated query).
    pub id: String,
    /// `--loki-tenant (OBS_LOKI_TENANT)` or `--tenant (OBS_TENANT)`.
    pub source: String,
}

/// How obs authenticates to a store.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credentials.
    None,
    /// `Authorization: Bearer …`.
    Bearer {
        /// The token.
        token: String,
        /// Where it came from (setting, or file).
        source: String,
    },
    /// `Authorization: Basic …` (Grafana Cloud's stores take the instance id as user and an
    /// access-policy token as password).
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
        /// Where the password came from.
        source: String,
    },
}

impl Credential {
    /// Which credential, never its value.
    pub fn describe(&self) -> String {
        match self {
            Credential::None => "no credentials".to_string(),
            Credential::Bearer { source, .. } => format!("the bearer token from {source}"),
            Credential::Basic { user, source, .. } => {
                format!("basic auth as user {user:?} with the password from {source}")
            }
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A PEM file read at startup.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its content.
    pub pem: Vec<u8>,
}

impl PemFile {
    /// The content as text (PEM is ASCII).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.pem).into_owned()
    }
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PemFile({})", self.path.display())
    }
}

/// How obs reaches one store (or Grafana), resolved and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    /// Which store.
    pub store: Store,
    /// The tenant, if any.
    pub tenant: Option<Tenant>,
    /// The credential.
    pub credential: Credential,
    /// Extra headers, in the order given (values are secrets: never shown).
    pub headers: Vec<(HeaderName, String)>,
    /// A CA to trust besides the platform's roots.
    pub ca: Option<PemFile>,
    /// A client certificate and its key, for mutual TLS.
    pub identity: Option<(PemFile, PemFile)>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connection({}: {})", self.store, self.describe())
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

fn given_path(value: &Option<PathBuf>) -> Option<&Path> {
    value.as_deref().filter(|p| !p.as_os_str().is_empty())
}

impl Connection {
    /// No tenant, no credentials, no TLS settings.
    pub fn none(store: Store) -> Self {
        Self {
            store,
            tenant: None,
            credential: Credential::None,
            headers: Vec::new(),
            ca: None,
            identity: None,
        }
    }

    /// Resolves `raw` for `store`; `default_tenant` (`--tenant`) applies when the store has
    /// none of its own.
    pub fn resolve(
        store: Store,
        raw: &RawConnection,
        default_tenant: Option<&str>,
    ) -> Result<Self, ConnectionError> {
        let mut connection = Self::transport(store, raw)?;
        let tenant = match (
            given(&raw.tenant),
            default_tenant.filter(|t| !t.trim().is_empty()),
        ) {
            (Some(id), _) => Some(Tenant {
                id: id.trim().to_string(),
                source: store.setting(Setting::Tenant),
            }),
            (None, Some(id)) => Some(Tenant {
                id: id.trim().to_string(),
                source: "--tenant (OBS_TENANT)".to_string(),
            }),
            (None, None) => None,
        };
        if let Some(tenant) = &tenant {
            tenant::validate(&tenant.id).map_err(|why| ConnectionError::Value {
                setting: tenant.source.clone(),
                why,
            })?;
            if let Some((name, _)) = connection
                .headers
                .iter()
                .find(|(n, _)| n.as_str().eq_ignore_ascii_case(store.tenant_header()))
            {
                return Err(ConnectionError::Conflict {
                    first: tenant.source.clone(),
                    second: format!("a {name} header in {}", store.setting(Setting::Header)),
                    why: "both set the tenant: keep the tenant setting and drop the header",
                });
            }
        }
        connection.tenant = tenant;
        connection.credential = credential::credential(store, raw)?;
        if connection.credential != Credential::None
            && let Some((name, _)) = connection.headers.iter().find(|(n, _)| *n == AUTHORIZATION)
        {
            return Err(ConnectionError::Conflict {
                first: format!("an {name} header in {}", store.setting(Setting::Header)),
                second: match connection.credential {
                    Credential::Bearer { .. } => store.setting(Setting::Token),
                    _ => store.setting(Setting::User),
                },
                why: "both set Authorization: keep one",
            });
        }
        Ok(connection)
    }

    /// Resolves only the transport settings of `raw` (headers, CA, client certificate): for
    /// Grafana, whose credentials are resolved by [`crate::run::auth`].
    pub fn transport(store: Store, raw: &RawConnection) -> Result<Self, ConnectionError> {
        let headers =
            headers::parse_all(&raw.headers).map_err(|(entry, why)| ConnectionError::Value {
                setting: format!("{} entry {entry}", store.setting(Setting::Header)),
                why,
            })?;
        for (_, value) in &headers {
            redact::register_secret(value);
        }
        let ca = given_path(&raw.ca_file)
            .map(|path| files::read_pem(store, Setting::CaFile, path, files::PemKind::Certificate))
            .transpose()?;
        let identity = match (given_path(&raw.client_cert), given_path(&raw.client_key)) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConnectionError::Missing {
                    given: store.setting(Setting::ClientCert),
                    needed: store.setting(Setting::ClientKey),
                });
            }
            (None, Some(_)) => {
                return Err(ConnectionError::Missing {
                    given: store.setting(Setting::ClientKey),
                    needed: store.setting(Setting::ClientCert),
                });
            }
            (Some(cert), Some(key)) => Some((
                files::read_pem(
                    store,
                    Setting::ClientCert,
                    cert,
                    files::PemKind::Certificate,
                )?,
                files::read_pem(store, Setting::ClientKey, key, files::PemKind::PrivateKey)?,
            )),
        };
        Ok(Self {
            store,
            tenant: None,
            credential: Credential::None,
            headers,
            ca,
            identity,
        })
    }

    /// True when anything beyond the defaults is set.
    pub fn is_configured(&self) -> bool {
        self.tenant.is_some()
            || self.credential != Credential::None
            || !self.headers.is_empty()
            || self.ca.is_some()
            || self.identity.is_some()
    }

    /// What is set, without a secret: for messages and `Debug`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(tenant) = &self.tenant {
            parts.push(format!("tenant {:?} from {}", tenant.id, tenant.source));
        }
        if self.credential != Credential::None {
            parts.push(self.credential.describe());
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
            parts.push(format!("extra headers {}", names.join(", ")));
        }
        if let Some(ca) = &self.ca {
            parts.push(format!("CA {}", ca.path.display()));
        }
        if let Some((cert, _)) = &self.identity {
            parts.push(format!("client certificate {}", cert.path.display()));
        }
        if parts.is_empty() {
            "no tenant, no credentials".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// The headers every request carries: the tenant, the credential, the extra headers.
    /// Credentials and extra header values are marked sensitive (never in `Debug`).
    pub fn request_headers(&self) -> Result<HeaderMap, ConnectionError> {
        let mut map = HeaderMap::new();
        let value = |text: &str, setting: Setting| {
            HeaderValue::from_str(text).map_err(|_| ConnectionError::Value {
                setting: self.store.setting(setting),
                why: "holds characters an HTTP header cannot carry (control characters or \
                      non-ASCII); check the value"
                    .to_string(),
            })
        };
        if let Some(tenant) = &self.tenant {
            map.insert(
                HeaderName::from_static(tenant_header_static(self.store)),
                value(&tenant.id, Setting::Tenant)?,
            );
        }
        match &self.credential {
            Credential::None => {}
            Credential::Bearer { token, .. } => {
                let mut v = value(&format!("Bearer {token}"), Setting::Token)?;
                v.set_sensitive(true);
                map.insert(AUTHORIZATION, v);
            }
            Credential::Basic { user, password, .. } => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                redact::register_secret(&encoded);
                let mut v = value(&format!("Basic {encoded}"), Setting::Password)?;
                v.set_sensitive(true);
                map.insert(AUTHORIZATION, v);
            }
        }
        for (name, text) in &self.headers {
            let mut v = value(text, Setting::Header)?;
            v.set_sensitive(true);
            map.append(name.clone(), v);
        }
        Ok(map)
    }

    /// `builder` with this connection's headers, CA and client certificate, following
    /// redirects only within the same origin: reqwest drops `Authorization` on a redirect to
    /// another host, but not the tenant or the extra headers (an API key), so obs does not go
    /// there at all (the 3xx is reported instead).
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ConnectionError> {
        let mut builder = builder
            .default_headers(self.request_headers()?)
            .redirect(same_origin_redirects());
        if let Some(ca) = &self.ca {
            let certs = reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(|e| {
                ConnectionError::File {
                    setting: self.store.setting(Setting::CaFile),
                    path: ca.path.display().to_string(),
                    why: format!("not usable as PEM certificates ({e})"),
                }
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        if let Some((cert, key)) = &self.identity {
            let mut pem = cert.pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&key.pem);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| ConnectionError::File {
                    setting: format!(
                        "{} with {}",
                        self.store.setting(Setting::ClientCert),
                        self.store.setting(Setting::ClientKey)
                    ),
                    path: format!("{} and {}", cert.path.display(), key.path.display()),
                    why: format!("not a usable certificate and private key ({e})"),
                })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

/// The most redirects followed.
pub const MAX_REDIRECTS: usize = 5;

/// Follows at most [`MAX_REDIRECTS`] redirects, each to the origin (scheme, host, port) of the
/// request before it; stops at any other, so no header leaves for another server.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|before| before.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// `HeaderName::from_static` needs lowercase.
fn tenant_header_static(store: Store) -> &'static str {
    match store {
        Store::Jaeger => "x-tenant",
        _ => "x-scope-orgid",
    }
}

/// The connections of every store `verify` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connections {
    /// Tempo's.
    pub tempo: Connection,
    /// Jaeger's.
    pub jaeger: Connection,
    /// Loki's.
    pub loki: Connection,
    /// Prometheus's (or Mimir's).
    pub prometheus: Connection,
    /// Alertmanager's.
    pub alertmanager: Connection,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            tempo: Connection::none(Store::Tempo),
            jaeger: Connection::none(Store::Jaeger),
            loki: Connection::none(Store::Loki),
            prometheus: Connection::none(Store::Prometheus),
            alertmanager: Connection::none(Store::Alertmanager),
        }
    }
}

impl Connections {
    /// The connection of `store` (Grafana's is not here: see [`GrafanaTransportArgs`]).
    pub fn get(&self, store: Store) -> Option<&Connection> {
        Some(match store {
            Store::Tempo => &self.tempo,
            Store::Jaeger => &self.jaeger,
            Store::Loki => &self.loki,
            Store::Prometheus => &self.prometheus,
            Store::Alertmanager => &self.alertmanager,
            Store::Grafana => return None,
        })
    }

    /// The connection of a report's backend, if it is a store.
    pub fn of_backend(&self, backend: Backend) -> Option<&Connection> {
        Store::STORES
            .into_iter()
            .find(|s| s.backend() == backend)
            .and_then(|s| self.get(s))
    }
}

#[cfg(test)]
mod tests;
