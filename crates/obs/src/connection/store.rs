//! Which server a connection is for, and how its settings are named (`--loki-tenant
//! (OBS_LOKI_TENANT)`), so every message names a setting the same way.

use std::fmt;

use crate::backends::Backend;

/// Which server a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    /// Grafana Tempo.
    Tempo,
    /// Jaeger's query service.
    Jaeger,
    /// Grafana Loki.
    Loki,
    /// Prometheus, or a Prometheus-compatible store (Mimir, Cortex, Thanos).
    Prometheus,
    /// Alertmanager (or Mimir's).
    Alertmanager,
    /// Grafana itself (`provision`, `sidecar`).
    Grafana,
}

/// One setting of a store's connection, to name it in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `--B-tenant`.
    Tenant,
    /// `--B-token`.
    Token,
    /// `--B-token-file`.
    TokenFile,
    /// `--B-user`.
    User,
    /// `--B-password`.
    Password,
    /// `--B-password-file`.
    PasswordFile,
    /// `--B-header` (variable `OBS_B_HEADERS`).
    Header,
    /// `--B-ca-file`.
    CaFile,
    /// `--B-client-cert`.
    ClientCert,
    /// `--B-client-key`.
    ClientKey,
}

impl Setting {
    fn flag_suffix(self) -> &'static str {
        match self {
            Setting::Tenant => "tenant",
            Setting::Token => "token",
            Setting::TokenFile => "token-file",
            Setting::User => "user",
            Setting::Password => "password",
            Setting::PasswordFile => "password-file",
            Setting::Header => "header",
            Setting::CaFile => "ca-file",
            Setting::ClientCert => "client-cert",
            Setting::ClientKey => "client-key",
        }
    }

    fn env_suffix(self) -> &'static str {
        match self {
            Setting::Tenant => "TENANT",
            Setting::Token => "TOKEN",
            Setting::TokenFile => "TOKEN_FILE",
            Setting::User => "USER",
            Setting::Password => "PASSWORD",
            Setting::PasswordFile => "PASSWORD_FILE",
            Setting::Header => "HEADERS",
            Setting::CaFile => "CA_FILE",
            Setting::ClientCert => "CLIENT_CERT",
            Setting::ClientKey => "CLIENT_KEY",
        }
    }
}

impl Store {
    /// The stores `verify` reads, in report order.
    pub const STORES: [Store; 5] = [
        Store::Tempo,
        Store::Jaeger,
        Store::Loki,
        Store::Prometheus,
        Store::Alertmanager,
    ];

    /// Its name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Store::Tempo => "Tempo",
            Store::Jaeger => "Jaeger",
            Store::Loki => "Loki",
            Store::Prometheus => "Prometheus",
            Store::Alertmanager => "Alertmanager",
            Store::Grafana => "Grafana",
        }
    }

    /// The flags' prefix: `--loki-…`.
    pub fn flag(self) -> &'static str {
        match self {
            Store::Tempo => "tempo",
            Store::Jaeger => "jaeger",
            Store::Loki => "loki",
            Store::Prometheus => "prometheus",
            Store::Alertmanager => "alertmanager",
            Store::Grafana => "grafana",
        }
    }

    /// The variables' infix: `OBS_LOKI_…`.
    pub fn env(self) -> &'static str {
        match self {
            Store::Tempo => "TEMPO",
            Store::Jaeger => "JAEGER",
            Store::Loki => "LOKI",
            Store::Prometheus => "PROMETHEUS",
            Store::Alertmanager => "ALERTMANAGER",
            Store::Grafana => "GRAFANA",
        }
    }

    /// The header that carries the tenant: `X-Scope-OrgID` for Tempo, Loki, Mimir and
    /// Mimir's Alertmanager; `x-tenant` for Jaeger (its `multi_tenancy.header` default).
    pub fn tenant_header(self) -> &'static str {
        match self {
            Store::Jaeger => "x-tenant",
            _ => "X-Scope-OrgID",
        }
    }

    /// The report's backend for this store.
    pub fn backend(self) -> Backend {
        match self {
            Store::Tempo => Backend::Tempo,
            Store::Jaeger => Backend::Jaeger,
            Store::Loki => Backend::Loki,
            Store::Prometheus => Backend::Prometheus,
            Store::Alertmanager => Backend::Alertmanager,
            Store::Grafana => Backend::Grafana,
        }
    }

    /// The store a Grafana datasource plugin type reads, if obs connects to it.
    pub fn of_datasource_type(kind: &str) -> Option<Store> {
        Some(match kind {
            "tempo" => Store::Tempo,
            "jaeger" => Store::Jaeger,
            "loki" => Store::Loki,
            "prometheus" => Store::Prometheus,
            "alertmanager" => Store::Alertmanager,
            _ => return None,
        })
    }

    /// `--loki-tenant (OBS_LOKI_TENANT)`.
    pub fn setting(self, setting: Setting) -> String {
        format!(
            "--{}-{} (OBS_{}_{})",
            self.flag(),
            setting.flag_suffix(),
            self.env(),
            setting.env_suffix()
        )
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}
