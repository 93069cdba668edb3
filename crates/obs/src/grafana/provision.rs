//! Provisioning: compare the repository's files with what Grafana holds, and create, update or
//! leave alone each datasource, folder and dashboard. Idempotent: a second run writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{ApiError, GrafanaClient};
use super::files::{DashboardFile, DatasourceSpec, Datasources, FolderSpec};

/// The tag `obs` adds to the dashboards it uploads; `--prune` only ever deletes dashboards that
/// carry it.
pub const MANAGED_TAG: &str = "obs:managed";

/// What kind of Grafana object an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A datasource.
    Datasource,
    /// A folder.
    Folder,
    /// A dashboard.
    Dashboard,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Datasource => "datasource",
            Kind::Folder => "folder",
            Kind::Dashboard => "dashboard",
        })
    }
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Created (or, with `--dry-run`, would be).
    Created,
    /// Updated; the fields that differed.
    Updated(Vec<String>),
    /// Already as the files say: nothing written.
    Unchanged,
    /// Held by Grafana's file provisioning (read-only): compared, never written.
    ManagedByFile {
        /// Fields where Grafana's copy differs from the files.
        drift: Vec<String>,
    },
    /// Deleted (or would be).
    Deleted,
    /// Could not be provisioned: why, and the fix.
    Failed(String),
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Item {
    /// The kind.
    pub kind: Kind,
    /// Its uid.
    pub uid: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Grafana's own "Save & test" of one datasource.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    /// The datasource uid.
    pub uid: String,
    /// `Ok(message)` or `Err(message)`.
    pub result: Result<String, String>,
}

/// Everything one run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Per object.
    pub items: Vec<Item>,
    /// Per datasource, after applying.
    pub health: Vec<HealthCheck>,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// Time spent waiting for Grafana to be healthy.
    pub waited: Duration,
    /// Total time.
    pub elapsed: Duration,
}

impl Report {
    /// True when no item failed.
    pub fn succeeded(&self) -> bool {
        !self
            .items
            .iter()
            .any(|i| matches!(i.outcome, Outcome::Failed(_)))
    }

    fn push(&mut self, kind: Kind, uid: &str, outcome: Outcome) {
        self.items.push(Item {
            kind,
            uid: uid.to_string(),
            outcome,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        for item in &self.items {
            let text = match &item.outcome {
                Outcome::Created => format!("{would}created"),
                Outcome::Updated(fields) => format!("{would}updated ({})", fields.join(", ")),
                Outcome::Unchanged => "unchanged".to_string(),
                Outcome::ManagedByFile { drift } if drift.is_empty() => {
                    "managed by file provisioning (in sync)".to_string()
                }
                Outcome::ManagedByFile { drift } => format!(
                    "managed by file provisioning, left alone; drift in {}",
                    drift.join(", ")
                ),
                Outcome::Deleted => format!("{would}deleted"),
                Outcome::Failed(why) => format!("FAILED: {why}"),
            };
            writeln!(f, "  {:<10} {:<32} {text}", item.kind.to_string(), item.uid)?;
        }
        if !self.health.is_empty() {
            writeln!(f, "Grafana's own datasource test (Save & test):")?;
            for check in &self.health {
                match &check.result {
                    Ok(message) => writeln!(f, "  {:<32} OK: {message}", check.uid)?,
                    Err(message) => writeln!(f, "  {:<32} FAILED: {message}", check.uid)?,
                }
            }
        }
        let mut counts: BTreeMap<(Kind, &str), usize> = BTreeMap::new();
        for item in &self.items {
            let label = match item.outcome {
                Outcome::Created => "created",
                Outcome::Updated(_) => "updated",
                Outcome::Unchanged | Outcome::ManagedByFile { .. } => "unchanged",
                Outcome::Deleted => "deleted",
                Outcome::Failed(_) => "failed",
            };
            *counts.entry((item.kind, label)).or_default() += 1;
        }
        let mut parts = Vec::new();
        for kind in [Kind::Datasource, Kind::Folder, Kind::Dashboard] {
            let numbers: Vec<String> = ["created", "updated", "unchanged", "deleted", "failed"]
                .iter()
                .filter_map(|label| {
                    counts
                        .get(&(kind, *label))
                        .map(|n| format!("{n} {would}{label}"))
                })
                .collect();
            if !numbers.is_empty() {
                parts.push(format!("{kind}s: {}", numbers.join(", ")));
            }
        }
        writeln!(
            f,
            "Summary: {}; in {:.1} s (waited {:.1} s for Grafana)",
            if parts.is_empty() {
                "nothing to do".to_string()
            } else {
                parts.join("; ")
            },
            self.elapsed.as_secs_f64(),
            self.waited.as_secs_f64()
        )
    }
}

/// Why provisioning could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Grafana did not become healthy in time.
    #[error(
        "Grafana at {url} was not healthy within {waited} (--wait / OBS_WAIT): last answer: {last}"
    )]
    NotHealthy {
        /// The URL polled.
        url: String,
        /// How long we waited.
        waited: String,
        /// The last error.
        last: String,
    },
    /// Grafana refused the credentials.
    #[error("{0}")]
    Auth(ApiError),
    /// Another API failure that stops the run.
    #[error("{0}")]
    Api(ApiError),
}

/// Polls `GET /api/health` with exponential backoff until Grafana says its database is ok.
pub async fn wait_healthy(
    client: &GrafanaClient,
    wait: Duration,
) -> Result<Duration, ProvisionError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let last = match client.call_once(Method::GET, "/api/health", None).await {
            Ok(body) if body.get("database").and_then(Value::as_str) == Some("ok") => {
                return Ok(started.elapsed());
            }
            Ok(body) => format!(
                "database is {}",
                body.get("database").unwrap_or(&Value::Null)
            ),
            Err(e) => e.to_string(),
        };
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(ProvisionError::NotHealthy {
                url: format!("{}/api/health", client.base()),
                waited: format!("{:.1} s", started.elapsed().as_secs_f64()),
                last,
            });
        }
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn stop(e: ApiError) -> ProvisionError {
    match e.status() {
        Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ProvisionError::Auth(e),
        _ => ProvisionError::Api(e),
    }
}

/// The datasource body Grafana's create and update APIs take.
fn datasource_body(spec: &DatasourceSpec) -> Value {
    let mut body = json!({
        "uid": spec.uid,
        "name": spec.name,
        "type": spec.kind,
        "access": spec.access.clone().unwrap_or_else(|| "proxy".into()),
        "url": spec.url.clone().unwrap_or_default(),
        "isDefault": spec.is_default.unwrap_or(false),
        "jsonData": spec.json_data.clone().unwrap_or_else(|| json!({})),
        "basicAuth": spec.basic_auth.unwrap_or(false),
        "basicAuthUser": spec.basic_auth_user.clone().unwrap_or_default(),
        "database": spec.database.clone().unwrap_or_default(),
        "user": spec.user.clone().unwrap_or_default(),
        "withCredentials": spec.with_credentials.unwrap_or(false),
    });
    if let (Some(secure), Some(object)) = (&spec.secure_json_data, body.as_object_mut()) {
        object.insert("secureJsonData".into(), json!(secure));
    }
    body
}

/// The fields where Grafana's datasource differs from the spec.
fn datasource_drift(spec: &DatasourceSpec, current: &Value) -> Vec<String> {
    let desired = datasource_body(spec);
    let mut drift = Vec::new();
    for key in [
        "name",
        "type",
        "access",
        "url",
        "isDefault",
        "jsonData",
        "basicAuth",
        "basicAuthUser",
        "database",
        "user",
        "withCredentials",
    ] {
        let want = &desired[key];
        let have = current.get(key).unwrap_or(&Value::Null);
        let same = match (want, have) {
            (Value::Object(w), Value::Null) => w.is_empty(),
            (Value::String(w), Value::Null) => w.is_empty(),
            (Value::Bool(false), Value::Null) => true,
            _ => want == have,
        };
        if !same {
            drift.push(key.to_string());
        }
    }
    if let Some(secure) = &spec.secure_json_data {
        let fields = current.get("secureJsonFields");
        let missing = secure
            .keys()
            .any(|k| fields.and_then(|f| f.get(k)) != Some(&Value::Bool(true)));
        if missing {
            drift.push("secureJsonData".to_string());
        }
    }
    drift
}

async fn provision_datasource(
    client: &GrafanaClient,
    path: &std::path::Path,
    spec: &DatasourceSpec,
    listed: &[Value],
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    let by_uid = format!("/api/datasources/uid/{}", spec.uid);
    let current = client.get_optional(&by_uid).await.map_err(stop)?;
    let Some(current) = current else {
        if let Some(other) = listed.iter().find(|d| {
            d.get("name").and_then(Value::as_str) == Some(spec.name.as_str())
                && d.get("uid").and_then(Value::as_str) != Some(spec.uid.as_str())
        }) {
            let other_uid = other.get("uid").and_then(Value::as_str).unwrap_or("?");
            return Ok(Outcome::Failed(format!(
                "Grafana already has a datasource named {:?} with uid {other_uid:?}, but {} declares uid {:?}; \
                 delete or rename the one in Grafana (or set uid: {other_uid} in the file) so dashboards can rely on the fixed uid",
                spec.name,
                path.display(),
                spec.uid
            )));
        }
        if dry_run {
            return Ok(Outcome::Created);
        }
        return match client
            .call(
                Method::POST,
                "/api/datasources",
                Some(&datasource_body(spec)),
            )
            .await
        {
            Ok(_) => Ok(Outcome::Created),
            // Another `obs` created it between our read and our write: compare with theirs.
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                match client.get_optional(&by_uid).await.map_err(stop)? {
                    Some(now) if datasource_drift(spec, &now).is_empty() => Ok(Outcome::Unchanged),
                    Some(_) => update_datasource(client, spec, &by_uid, dry_run).await,
                    None => Ok(Outcome::Failed(format!("{e}"))),
                }
            }
            Err(e) => match e.status() {
                Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(stop(e)),
                _ => Ok(Outcome::Failed(e.to_string())),
            },
        };
    };
    let drift = datasource_drift(spec, &current);
    if current.get("readOnly").and_then(Value::as_bool) == Some(true) {
        return Ok(Outcome::ManagedByFile { drift });
    }
    if drift.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    match update_datasource(client, spec, &by_uid, dry_run).await? {
        Outcome::Updated(_) => Ok(Outcome::Updated(drift)),
        other => Ok(other),
    }
}

async fn update_datasource(
    client: &GrafanaClient,
    spec: &DatasourceSpec,
    by_uid: &str,
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    if dry_run {
        return Ok(Outcome::Updated(Vec::new()));
    }
    match client
        .call(Method::PUT, by_uid, Some(&datasource_body(spec)))
        .await
    {
        Ok(_) => Ok(Outcome::Updated(Vec::new())),
        Err(e) => match e.status() {
            Some(StatusCode::UNAUTHORIZED) => Err(stop(e)),
            _ => Ok(Outcome::Failed(e.to_string())),
        },
    }
}

async fn provision_folder(
    client: &GrafanaClient,
    folder: &FolderSpec,
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    let path = format!("/api/folders/{}", folder.uid);
    if client.get_optional(&path).await.map_err(stop)?.is_some() {
        return Ok(Outcome::Unchanged);
    }
    if dry_run {
        return Ok(Outcome::Created);
    }
    let body = json!({ "uid": folder.uid, "title": folder.title });
    match client.call(Method::POST, "/api/folders", Some(&body)).await {
        Ok(_) => Ok(Outcome::Created),
        // Exists (another run created it first): that is what we wanted.
        Err(e)
            if matches!(
                e.status(),
                Some(StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED)
            ) =>
        {
            match client.get_optional(&path).await.map_err(stop)? {
                Some(_) => Ok(Outcome::Unchanged),
                None => Ok(Outcome::Failed(format!(
                    "{e} — a folder titled {:?} probably exists with another uid; rename or delete it in Grafana",
                    folder.title
                ))),
            }
        }
        Err(e) => Err(stop(e)),
    }
}

/// The dashboard JSON as `obs` uploads it: the file's, tagged as managed.
fn desired_dashboard(file: &DashboardFile) -> Value {
    let mut json = file.json.clone();
    if let Some(object) = json.as_object_mut() {
        object.remove("version");
        let tags = object.entry("tags").or_insert_with(|| json!([]));
        if let Some(list) = tags.as_array_mut()
            && !list.iter().any(|t| t == MANAGED_TAG)
        {
            list.push(json!(MANAGED_TAG));
        }
    }
    json
}

fn comparable(dashboard: &Value) -> Value {
    let mut d = dashboard.clone();
    if let Some(object) = d.as_object_mut() {
        object.remove("id");
        object.remove("version");
    }
    d
}

async fn provision_dashboard(
    client: &GrafanaClient,
    file: &DashboardFile,
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    let desired = desired_dashboard(file);
    let folder_uid = file
        .folder
        .as_ref()
        .map(|f| f.uid.clone())
        .unwrap_or_default();
    let path = format!("/api/dashboards/uid/{}", file.uid);
    let current = client.get_optional(&path).await.map_err(stop)?;
    let mut changed = Vec::new();
    if let Some(current) = &current {
        let meta = current.get("meta").unwrap_or(&Value::Null);
        let stored = current.get("dashboard").unwrap_or(&Value::Null);
        if comparable(stored) != comparable(&desired) {
            changed.push("content".to_string());
        }
        let current_folder = meta.get("folderUid").and_then(Value::as_str).unwrap_or("");
        if current_folder != folder_uid {
            changed.push(format!("folder {current_folder:?} → {folder_uid:?}"));
        }
        if meta.get("provisioned").and_then(Value::as_bool) == Some(true) {
            return Ok(Outcome::ManagedByFile { drift: changed });
        }
        if changed.is_empty() {
            return Ok(Outcome::Unchanged);
        }
    }
    if dry_run {
        return Ok(if current.is_some() {
            Outcome::Updated(changed)
        } else {
            Outcome::Created
        });
    }
    let body = json!({
        "dashboard": desired,
        // Always sent: without it Grafana moves the dashboard to the root folder.
        "folderUid": folder_uid,
        // Overwrite only what we compared and found different.
        "overwrite": current.is_some(),
        "message": format!("provisioned by obs from {}", file.path.display()),
    });
    match client
        .call(Method::POST, "/api/dashboards/db", Some(&body))
        .await
    {
        Ok(_) if current.is_some() => Ok(Outcome::Updated(changed)),
        Ok(_) => Ok(Outcome::Created),
        Err(e) if e.status() == Some(StatusCode::PRECONDITION_FAILED) => {
            let status = e
                .body()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            // A concurrent run may have uploaded the same content first.
            if let Some(now) = client.get_optional(&path).await.map_err(stop)? {
                let same_folder = now["meta"]["folderUid"].as_str().unwrap_or("") == folder_uid;
                if comparable(&now["dashboard"]) == comparable(&desired) && same_folder {
                    return Ok(Outcome::Unchanged);
                }
            }
            Ok(Outcome::Failed(match status.as_str() {
                "name-exists" => format!(
                    "a different dashboard titled {:?} already exists in folder {folder_uid:?}; rename one of them ({})",
                    file.title,
                    file.path.display()
                ),
                "version-mismatch" => format!(
                    "someone saved dashboard {:?} in Grafana while obs was running; run obs provision again ({})",
                    file.uid,
                    file.path.display()
                ),
                _ => e.to_string(),
            }))
        }
        Err(e) => match e.status() {
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(stop(e)),
            _ => Ok(Outcome::Failed(e.to_string())),
        },
    }
}

/// What to provision.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Datasources from the YAML files.
    pub datasources: Datasources,
    /// Dashboards from the JSON files.
    pub dashboards: Vec<DashboardFile>,
}

/// Options of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Compute and print, write nothing.
    pub dry_run: bool,
    /// Delete dashboards `obs` uploaded that are gone from the files.
    pub prune: bool,
    /// Skip Grafana's datasource health check.
    pub skip_health_check: bool,
}

/// Applies `desired` to Grafana. Per-object failures are in the report; a failure that stops
/// everything (auth, Grafana unreachable) is the error.
pub async fn provision(
    client: &GrafanaClient,
    desired: &Desired,
    options: Options,
    waited: Duration,
) -> Result<Report, ProvisionError> {
    let started = Instant::now();
    let mut report = Report {
        dry_run: options.dry_run,
        waited,
        ..Report::default()
    };
    let listed = client
        .call(Method::GET, "/api/datasources", None)
        .await
        .map_err(stop)?;
    let listed = listed.as_array().cloned().unwrap_or_default();
    for (path, spec) in &desired.datasources.datasources {
        let outcome = provision_datasource(client, path, spec, &listed, options.dry_run).await?;
        report.push(Kind::Datasource, &spec.uid, outcome);
    }
    for (_, delete) in &desired.datasources.delete {
        let Some(existing) = listed
            .iter()
            .find(|d| d.get("name").and_then(Value::as_str) == Some(delete.name.as_str()))
        else {
            continue;
        };
        let uid = existing.get("uid").and_then(Value::as_str).unwrap_or("");
        let outcome = if options.dry_run {
            Outcome::Deleted
        } else {
            match client
                .call(Method::DELETE, &format!("/api/datasources/uid/{uid}"), None)
                .await
            {
                Ok(_) => Outcome::Deleted,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        };
        report.push(Kind::Datasource, uid, outcome);
    }
    let folders: BTreeSet<FolderSpec> = desired
        .dashboards
        .iter()
        .filter_map(|d| d.folder.clone())
        .collect();
    for folder in &folders {
        let outcome = provision_folder(client, folder, options.dry_run).await?;
        report.push(Kind::Folder, &folder.uid, outcome);
    }
    for dashboard in &desired.dashboards {
        let folder_failed = dashboard.folder.as_ref().is_some_and(|f| {
            report.items.iter().any(|i| {
                i.kind == Kind::Folder && i.uid == f.uid && matches!(i.outcome, Outcome::Failed(_))
            })
        });
        let outcome = if folder_failed {
            Outcome::Failed("its folder could not be created (see above)".to_string())
        } else {
            provision_dashboard(client, dashboard, options.dry_run).await?
        };
        report.push(Kind::Dashboard, &dashboard.uid, outcome);
    }
    if options.prune {
        let found = client
            .call(
                Method::GET,
                &format!(
                    "/api/search?type=dash-db&tag={}",
                    MANAGED_TAG.replace(':', "%3A")
                ),
                None,
            )
            .await
            .map_err(stop)?;
        let keep: BTreeSet<&str> = desired.dashboards.iter().map(|d| d.uid.as_str()).collect();
        for hit in found.as_array().into_iter().flatten() {
            let Some(uid) = hit.get("uid").and_then(Value::as_str) else {
                continue;
            };
            if keep.contains(uid) {
                continue;
            }
            let outcome = if options.dry_run {
                Outcome::Deleted
            } else {
                match client
                    .call(Method::DELETE, &format!("/api/dashboards/uid/{uid}"), None)
                    .await
                {
                    Ok(_) => Outcome::Deleted,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            };
            report.push(Kind::Dashboard, uid, outcome);
        }
    }
    if !options.dry_run && !options.skip_health_check {
        for (_, spec) in &desired.datasources.datasources {
            let path = format!("/api/datasources/uid/{}/health", spec.uid);
            let result = match client.call_once(Method::GET, &path, None).await {
                Ok(body) => Ok(body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("ok")
                    .to_string()),
                Err(e) => Err(
                    match e
                        .body()
                        .and_then(|b| b.get("message"))
                        .and_then(Value::as_str)
                    {
                        Some(message) => message.to_string(),
                        None => e.to_string(),
                    },
                ),
            };
            report.health.push(HealthCheck {
                uid: spec.uid.clone(),
                result,
            });
        }
    }
    report.elapsed = started.elapsed() + waited;
    Ok(report)
}
