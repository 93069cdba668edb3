//! A double of Grafana 12's HTTP API (the legacy `/api` routes, as Grafana 12.0 serves them).
//!
//! Followed, for paths, methods, status codes, JSON field names and messages:
//! - "Data source HTTP API" (`/api/datasources`, by uid, `…/uid/{uid}/health`),
//! - "Folder HTTP API" (`/api/folders`), "Dashboard HTTP API" (`/api/dashboards/db`, by uid),
//! - "Folder/Dashboard Search HTTP API" (`/api/search`), "Other HTTP API" (`/api/health`),
//! - "Authentication options for the HTTP API" (service-account token as `Bearer`, basic auth,
//!   and basic auth with user `api_key` and the token as password),
//!
//! and, where the pages are silent (error bodies, version rules), Grafana's own handlers:
//! data source names and uids are unique (409 `data source with the same name already exists` /
//! `… same uid …`), a stale `version` on update is a 409, provisioned (read-only) data sources
//! answer 403 `Cannot update read-only data source` / `Cannot delete read-only data source`,
//! `secureJsonData` is stored but only `secureJsonFields` is ever returned, a dashboard whose
//! `version` differs from the stored one is a 412 `version-mismatch` unless `overwrite`, a
//! same-title dashboard in the same folder is a 412 `name-exists` unless `overwrite` (then it is
//! taken over, uid and all, as Grafana does), a save without `folderUid` puts the dashboard at
//! the root (moving it there), an unknown `folderUid` is a 400 `folder not found`, and an
//! existing folder uid is a 409 (or, with [`GrafanaConfig::unified_storage_folders`], the 412
//! `version-mismatch` Grafana 12 answers when folders go through its app-platform storage).
//! Authentication failures answer 401 with Grafana's `errutil` body (`auth.unauthorized`,
//! `api-key.invalid`, `password-auth.failed`); a role without the permission answers 403
//! `You'll need additional permissions to perform this action. Permissions needed: …`.
//!
//! Deliberately not modelled: organizations other than 1, users and teams, per-object
//! permissions (a [`Role`] is all or nothing per action), the deprecated by-id and by-name data
//! source routes, folder update/delete/move, dashboard versions history, library panels,
//! alerting, `/apis/…` (app platform) routes, plugin validation of `jsonData`, real health checks
//! (see [`GrafanaDouble::set_datasource_health`]), and pagination beyond `limit`.
//!
//! Modelled as the handlers behave rather than as the pages show: `GET /api/datasources` items
//! carry no `version` or `secureJsonFields` (Grafana's list DTO), a PUT without `version` skips
//! the check and stores version 1 (`sent + 1`), empty `name`/`url`/`uid`… on PUT keep the stored
//! value, folder titles need not be unique (nested folders), and `/api/folders` lists the
//! children of `parentUid` (the root when absent).

mod http;
mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use serde_json::Value;
use tokio::sync::oneshot;

use store::Store;

/// What a credential may do, as Grafana's basic roles grant it for the routes modelled here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads dashboards, folders and search; queries (health-checks) data sources.
    Viewer,
    /// Viewer, plus writes folders and dashboards.
    Editor,
    /// Everything, including reading and writing data sources.
    Admin,
}

/// How the double authenticates and behaves from the start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GrafanaConfig {
    /// Reported by `/api/health` (default `12.0.2`).
    pub version: String,
    /// Reported by `/api/health`.
    pub commit: String,
    /// Service-account tokens accepted as `Authorization: Bearer …` (or basic `api_key:<token>`).
    pub tokens: Vec<(String, Role)>,
    /// The one basic-auth user, an admin (default `admin`/`admin`, as a fresh Grafana has).
    pub basic_auth: Option<(String, String)>,
    /// `/api/health` answers 503 `"database": "failing"` for this many calls first (migrating).
    pub health_unavailable_calls: u32,
    /// An existing folder uid answers 412 `version-mismatch` (Grafana 12 with folders in unified
    /// storage) instead of the legacy 409.
    pub unified_storage_folders: bool,
    /// Serve under this path, as Grafana does with `root_url = http://host/grafana/` and
    /// `serve_from_sub_path = true` (e.g. `/grafana`); anything outside it is a 404.
    pub sub_path: Option<String>,
}

impl Default for GrafanaConfig {
    fn default() -> Self {
        Self {
            version: "12.0.2".into(),
            commit: "5bda17e7c1cb313eb96266f2fdda73a6b35c3977".into(),
            tokens: Vec::new(),
            basic_auth: Some(("admin".into(), "admin".into())),
            health_unavailable_calls: 0,
            unified_storage_folders: false,
            sub_path: None,
        }
    }
}

impl GrafanaConfig {
    /// Accept `token` as a service-account token with `role`.
    pub fn with_token(mut self, token: impl Into<String>, role: Role) -> Self {
        self.tokens.push((token.into(), role));
        self
    }

    /// Replace the basic-auth user (`None`: basic auth with a user and password never succeeds).
    pub fn with_basic_auth(mut self, user_password: Option<(&str, &str)>) -> Self {
        self.basic_auth = user_password.map(|(u, p)| (u.to_owned(), p.to_owned()));
        self
    }

    /// Answer `/api/health` with 503 for the first `calls` calls.
    pub fn with_health_unavailable_calls(mut self, calls: u32) -> Self {
        self.health_unavailable_calls = calls;
        self
    }

    /// Serve under `path` (see [`GrafanaConfig::sub_path`]); `"/grafana"` and `"grafana/"` are
    /// the same.
    pub fn with_sub_path(mut self, path: &str) -> Self {
        let trimmed = path.trim_matches('/');
        self.sub_path = (!trimmed.is_empty()).then(|| format!("/{trimmed}"));
        self
    }

    /// See [`GrafanaConfig::unified_storage_folders`].
    pub fn with_unified_storage_folders(mut self, on: bool) -> Self {
        self.unified_storage_folders = on;
        self
    }
}

/// One request the double answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query string and without [`GrafanaConfig::sub_path`]; as
    /// percent-encoded on the wire.
    pub path: String,
    /// The status the double answered.
    pub status: u16,
}

/// Why the double could not start, or why a fixture was refused.
#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    /// The port could not be bound.
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0: any).
        port: u16,
        /// The bind error.
        source: std::io::Error,
    },
    /// The server thread or its runtime could not be started.
    #[error("cannot start the Grafana double's runtime: {0}")]
    Runtime(std::io::Error),
    /// A fixture was refused the way Grafana's API would refuse it.
    #[error("Grafana would refuse this fixture with {status}: {body}")]
    Rejected {
        /// The status Grafana would answer.
        status: u16,
        /// The body Grafana would answer.
        body: Value,
    },
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: GrafanaConfig,
    store: Mutex<Store>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running Grafana double; dropping it stops the server and frees the port.
#[derive(Debug)]
pub struct GrafanaDouble {
    shared: Arc<Shared>,
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrafanaDouble {
    /// Start on a free port of `127.0.0.1`.
    pub fn start(config: GrafanaConfig) -> Result<Self, DoubleError> {
        Self::start_on(0, config)
    }

    /// Start on `port` of `127.0.0.1` (see [`crate::reserve_port`]).
    pub fn start_on(port: u16, config: GrafanaConfig) -> Result<Self, DoubleError> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| DoubleError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DoubleError::Bind { port, source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(DoubleError::Runtime)?;
        let mut store = Store::default();
        store.health_unavailable = config.health_unavailable_calls;
        let sub_path = config.sub_path.clone().unwrap_or_default();
        let shared = Arc::new(Shared {
            config,
            store: Mutex::new(store),
        });
        let app = http::router(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("grafana-double-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(DoubleError::Runtime)?;
        Ok(Self {
            shared,
            url: format!("http://{addr}{sub_path}"),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>` and the [`GrafanaConfig::sub_path`], without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next `n` requests, whatever their path, answer `status` with `{"message": …}`.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.shared.store().fail_next = (n > 0).then_some((n, status));
    }

    /// The next `n` requests with `method` whose path starts with `path_prefix` (without the sub
    /// path) answer `status` with the body Grafana gives it: 401 the `errutil`
    /// `auth.unauthorized` body (a token revoked mid-run), 403 the access-denied body naming the
    /// permission (a role lacking it on that object), anything else `{"message": …}`.
    pub fn fail_next_on(&self, method: &str, path_prefix: &str, n: u32, status: u16) {
        self.shared.store().fail_on = (n > 0).then(|| store::TargetedFault {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_owned(),
            left: n,
            status,
        });
    }

    /// Store a data source as file provisioning does (`readOnly: true`); `json` is a
    /// `POST /api/datasources` body. Returns the stored data source as `GET` shows it.
    pub fn add_provisioned_datasource(&self, json: Value) -> Result<Value, DoubleError> {
        match self.shared.store().create_datasource(&json, true) {
            Ok((_, body)) => Ok(body["datasource"].clone()),
            Err((status, body)) => Err(DoubleError::Rejected { status, body }),
        }
    }

    /// Store a dashboard as file provisioning does (`meta.provisioned: true`, not savable or
    /// deletable through the API). `json` is a `POST /api/dashboards/db` body.
    pub fn add_provisioned_dashboard(&self, json: Value) -> Result<Value, DoubleError> {
        match self.shared.store().save_dashboard(&json, true) {
            Ok((_, body)) => Ok(body),
            Err((status, body)) => Err(DoubleError::Rejected { status, body }),
        }
    }

    /// What "Save & test" (`GET /api/datasources/uid/{uid}/health`) answers for `uid`:
    /// 200 `{"status":"OK"}` when `ok`, else 400 `{"status":"ERROR"}` (backend unreachable).
    pub fn set_datasource_health(&self, uid: &str, ok: bool, message: &str) {
        self.shared
            .store()
            .health
            .insert(uid.to_owned(), (ok, message.to_owned()));
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.store().requests.clone()
    }

    /// The requests answered so far that were not `GET` or `HEAD`.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        let mut all = self.requests();
        all.retain(|r| r.method != "GET" && r.method != "HEAD");
        all
    }

    /// Stored data sources, as `GET /api/datasources/uid/{uid}` shows them (no secrets).
    pub fn datasources(&self) -> Vec<Value> {
        self.shared
            .store()
            .datasources
            .iter()
            .map(store::Datasource::dto)
            .collect()
    }

    /// The `secureJsonData` stored for `uid` (never served over HTTP), for asserting pass-through.
    pub fn secure_json_data(&self, uid: &str) -> Option<BTreeMap<String, String>> {
        let store = self.shared.store();
        store
            .datasources
            .iter()
            .find(|d| d.uid() == uid)
            .map(|d| d.secure.clone())
    }

    /// Stored dashboards, as `GET /api/dashboards/uid/{uid}` shows them
    /// (`dashboard` with `version`, `meta` with `folderUid` and `provisioned`).
    pub fn dashboards(&self) -> Vec<Value> {
        let store = self.shared.store();
        store
            .dashboards
            .iter()
            .map(|d| store.dashboard_with_meta(d))
            .collect()
    }

    /// Stored folders, as `GET /api/folders/{uid}` shows them.
    pub fn folders(&self) -> Vec<Value> {
        let store = self.shared.store();
        store.folders.iter().map(|f| store.folder_dto(f)).collect()
    }
}

impl Drop for GrafanaDouble {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
