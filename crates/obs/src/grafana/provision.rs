//! Provisioning: compare the repository's files with what Grafana holds, and create, update or
//! leave alone each datasource, folder and dashboard. Idempotent: a second run writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::api::{self, Datasource, DatasourceBody, DatasourceListItem, NewFolder, SaveDashboard};
use super::client::{ApiError, GrafanaClient};
use super::files::{DashboardFile, DatasourceSpec, Datasources, FolderSpec};
use super::secure;

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

/// Why a run stopped before it was done.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Grafana did not become healthy in time.
    #[error(
        "Grafana at {url} was not healthy within {waited} (--wait / OBS_WAIT): last answer: {last}"
    )]
    NotHealthy {
        /// The URL polled (redacted).
        url: String,
        /// How long we waited.
        waited: String,
        /// The last error.
        last: String,
    },
    /// Grafana refused the credential (401) or what it may do (403). The error's hint names
    /// the credential's source, never its value.
    #[error("{0}")]
    Auth(ApiError),
    /// Another API failure that stops the run (Grafana gone, or a listing the run depends on).
    #[error("{0}")]
    Api(ApiError),
}

/// What an API error means for the run. The one place that decides.
#[derive(Debug)]
enum Verdict {
    /// Nothing else can succeed: stop the run.
    Stop(ProvisionError),
    /// Only this object failed: report it and go on.
    ItemFailed(ApiError),
}

/// 401 and 403 stop the run (the auth exit code): every later call carries the same credential.
/// Grafana unreachable (after the retries) stops it too. Anything else fails only the object.
fn verdict(error: ApiError) -> Verdict {
    if error.is_auth() {
        Verdict::Stop(ProvisionError::Auth(error))
    } else if matches!(error, ApiError::Unreachable { .. }) {
        Verdict::Stop(ProvisionError::Api(error))
    } else {
        Verdict::ItemFailed(error)
    }
}

/// For a call the whole run depends on (a listing): any failure stops it.
fn stop(error: ApiError) -> ProvisionError {
    match verdict(error) {
        Verdict::Stop(stop) => stop,
        Verdict::ItemFailed(error) => ProvisionError::Api(error),
    }
}

/// For a call about one object: the object's outcome, or the run's end.
fn item(error: ApiError) -> Result<Outcome, ProvisionError> {
    match verdict(error) {
        Verdict::Stop(stop) => Err(stop),
        Verdict::ItemFailed(error) => Ok(Outcome::Failed(error.to_string())),
    }
}

/// Polls `GET /api/health` with exponential backoff until Grafana says its database is ok.
pub async fn wait_healthy(
    client: &GrafanaClient,
    wait: Duration,
) -> Result<Duration, ProvisionError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        let last = match api::health(client).await {
            Ok(health) if health.database == "ok" => return Ok(started.elapsed()),
            Ok(health) => format!("database is {:?}", health.database),
            Err(e) => e.to_string(),
        };
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(ProvisionError::NotHealthy {
                url: crate::redact::url(client.url(&["api", "health"], &[]).as_str()),
                waited: format!("{:.1} s", started.elapsed().as_secs_f64()),
                last,
            });
        }
        tokio::time::sleep(delay.min(left)).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn json_data(spec: &DatasourceSpec) -> Map<String, Value> {
    spec.json_data
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The datasource body Grafana's create and update APIs take; with secrets, `jsonData` carries
/// their fresh digest.
fn datasource_body(spec: &DatasourceSpec) -> DatasourceBody {
    let mut json_data = json_data(spec);
    if let Some(secure) = &spec.secure_json_data {
        json_data.insert(secure::DIGEST_KEY.into(), json!(secure::digest(secure)));
    }
    DatasourceBody {
        uid: spec.uid.clone(),
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        access: spec.access.clone().unwrap_or_else(|| "proxy".into()),
        url: spec.url.clone().unwrap_or_default(),
        is_default: spec.is_default.unwrap_or(false),
        json_data,
        basic_auth: spec.basic_auth.unwrap_or(false),
        basic_auth_user: spec.basic_auth_user.clone().unwrap_or_default(),
        database: spec.database.clone().unwrap_or_default(),
        user: spec.user.clone().unwrap_or_default(),
        with_credentials: spec.with_credentials.unwrap_or(false),
        secure_json_data: spec.secure_json_data.clone(),
    }
}

/// The fields where Grafana's datasource differs from the spec. Secrets count as different when
/// one is not set in Grafana, or (for datasources obs writes) when the digest obs stored does
/// not match the files' secrets.
fn datasource_drift(spec: &DatasourceSpec, current: &Datasource) -> Vec<String> {
    let mut have_json = current.json_data.clone();
    let stored_digest = have_json.remove(secure::DIGEST_KEY);
    let want = |v: Option<&String>| v.cloned().unwrap_or_default();
    let fields = [
        ("name", spec.name == current.name),
        ("type", spec.kind == current.kind),
        (
            "access",
            spec.access.as_deref().unwrap_or("proxy") == current.access,
        ),
        ("url", want(spec.url.as_ref()) == current.url),
        (
            "isDefault",
            spec.is_default.unwrap_or(false) == current.is_default,
        ),
        ("jsonData", json_data(spec) == have_json),
        (
            "basicAuth",
            spec.basic_auth.unwrap_or(false) == current.basic_auth,
        ),
        (
            "basicAuthUser",
            want(spec.basic_auth_user.as_ref()) == current.basic_auth_user,
        ),
        ("database", want(spec.database.as_ref()) == current.database),
        ("user", want(spec.user.as_ref()) == current.user),
        (
            "withCredentials",
            spec.with_credentials.unwrap_or(false) == current.with_credentials,
        ),
    ];
    let mut drift: Vec<String> = fields
        .iter()
        .filter(|(_, same)| !same)
        .map(|(key, _)| key.to_string())
        .collect();
    if let Some(secure) = &spec.secure_json_data {
        let missing = secure
            .keys()
            .any(|k| current.secure_json_fields.get(k) != Some(&true));
        // File provisioning keeps no digest: for those only presence can be compared.
        let changed = !current.read_only
            && !stored_digest
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|d| secure::matches(d, secure));
        if missing || changed {
            drift.push("secureJsonData".to_string());
        }
    }
    drift
}

async fn provision_datasource(
    client: &GrafanaClient,
    path: &std::path::Path,
    spec: &DatasourceSpec,
    listed: &[DatasourceListItem],
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    let current = match api::datasource(client, &spec.uid).await {
        Ok(current) => current,
        Err(e) => return item(e),
    };
    let Some(current) = current else {
        if let Some(other) = listed
            .iter()
            .find(|d| d.name == spec.name && d.uid != spec.uid)
        {
            let other_uid = &other.uid;
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
        return match api::create_datasource(client, &datasource_body(spec)).await {
            Ok(()) => Ok(Outcome::Created),
            // Another `obs` created it between our read and our write: compare with theirs.
            Err(e) if e.status() == Some(StatusCode::CONFLICT) => {
                match api::datasource(client, &spec.uid).await {
                    Ok(Some(now)) if datasource_drift(spec, &now).is_empty() => {
                        Ok(Outcome::Unchanged)
                    }
                    Ok(Some(_)) => update_datasource(client, spec, dry_run).await,
                    Ok(None) => Ok(Outcome::Failed(e.to_string())),
                    Err(again) => item(again),
                }
            }
            Err(e) => item(e),
        };
    };
    let drift = datasource_drift(spec, &current);
    if current.read_only {
        return Ok(Outcome::ManagedByFile { drift });
    }
    if drift.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    match update_datasource(client, spec, dry_run).await? {
        Outcome::Updated(_) => Ok(Outcome::Updated(drift)),
        other => Ok(other),
    }
}

async fn update_datasource(
    client: &GrafanaClient,
    spec: &DatasourceSpec,
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    if dry_run {
        return Ok(Outcome::Updated(Vec::new()));
    }
    match api::update_datasource(client, &spec.uid, &datasource_body(spec)).await {
        Ok(()) => Ok(Outcome::Updated(Vec::new())),
        Err(e) => item(e),
    }
}

async fn provision_folder(
    client: &GrafanaClient,
    folder: &FolderSpec,
    dry_run: bool,
) -> Result<Outcome, ProvisionError> {
    match api::folder(client, &folder.uid).await {
        Ok(Some(_)) => return Ok(Outcome::Unchanged),
        Ok(None) => {}
        Err(e) => return item(e),
    }
    if dry_run {
        return Ok(Outcome::Created);
    }
    let body = NewFolder {
        uid: folder.uid.clone(),
        title: folder.title.clone(),
    };
    match api::create_folder(client, &body).await {
        Ok(()) => Ok(Outcome::Created),
        // Exists (another run created it first): that is what we wanted.
        Err(e)
            if matches!(
                e.status(),
                Some(StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED)
            ) =>
        {
            match api::folder(client, &folder.uid).await {
                Ok(Some(_)) => Ok(Outcome::Unchanged),
                Ok(None) => Ok(Outcome::Failed(format!(
                    "{e} — a folder titled {:?} probably exists with another uid; rename or delete it in Grafana",
                    folder.title
                ))),
                Err(again) => item(again),
            }
        }
        Err(e) => item(e),
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
    let current = match api::dashboard(client, &file.uid).await {
        Ok(current) => current,
        Err(e) => return item(e),
    };
    let mut changed = Vec::new();
    if let Some(current) = &current {
        if comparable(&current.dashboard) != comparable(&desired) {
            changed.push("content".to_string());
        }
        let current_folder = &current.meta.folder_uid;
        if *current_folder != folder_uid {
            changed.push(format!("folder {current_folder:?} → {folder_uid:?}"));
        }
        if current.meta.provisioned {
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
    let save = SaveDashboard {
        dashboard: desired.clone(),
        folder_uid: folder_uid.clone(),
        // Overwrite only what we compared and found different.
        overwrite: current.is_some(),
        message: format!("provisioned by obs from {}", file.path.display()),
    };
    match api::save_dashboard(client, &save).await {
        Ok(()) if current.is_some() => Ok(Outcome::Updated(changed)),
        Ok(()) => Ok(Outcome::Created),
        Err(e) if e.status() == Some(StatusCode::PRECONDITION_FAILED) => {
            // A concurrent run may have uploaded the same content first.
            match api::dashboard(client, &file.uid).await {
                Ok(Some(now))
                    if comparable(&now.dashboard) == comparable(&desired)
                        && now.meta.folder_uid == folder_uid =>
                {
                    return Ok(Outcome::Unchanged);
                }
                Ok(_) => {}
                Err(again) => return item(again),
            }
            Ok(Outcome::Failed(match api::status_word(&e) {
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
        Err(e) => item(e),
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
    let listed = api::datasources(client).await.map_err(stop)?;
    for (path, spec) in &desired.datasources.datasources {
        let outcome = provision_datasource(client, path, spec, &listed, options.dry_run).await?;
        report.push(Kind::Datasource, &spec.uid, outcome);
    }
    for (_, delete) in &desired.datasources.delete {
        let Some(existing) = listed.iter().find(|d| d.name == delete.name) else {
            continue;
        };
        let outcome = if options.dry_run {
            Outcome::Deleted
        } else {
            match api::delete_datasource(client, &existing.uid).await {
                Ok(()) => Outcome::Deleted,
                Err(e) => item(e)?,
            }
        };
        report.push(Kind::Datasource, &existing.uid, outcome);
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
        let found = api::dashboards_tagged(client, MANAGED_TAG)
            .await
            .map_err(stop)?;
        let keep: BTreeSet<&str> = desired.dashboards.iter().map(|d| d.uid.as_str()).collect();
        for hit in found {
            if keep.contains(hit.uid.as_str()) || !hit.tags.iter().any(|t| t == MANAGED_TAG) {
                continue;
            }
            let outcome = if options.dry_run {
                Outcome::Deleted
            } else {
                match api::delete_dashboard(client, &hit.uid).await {
                    Ok(()) => Outcome::Deleted,
                    Err(e) => item(e)?,
                }
            };
            report.push(Kind::Dashboard, &hit.uid, outcome);
        }
    }
    if !options.dry_run && !options.skip_health_check {
        for (_, spec) in &desired.datasources.datasources {
            let result = api::datasource_health(client, &spec.uid).await;
            report.health.push(HealthCheck {
                uid: spec.uid.clone(),
                result,
            });
        }
    }
    report.elapsed = started.elapsed() + waited;
    Ok(report)
}
