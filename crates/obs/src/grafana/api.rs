//! The parts of Grafana's HTTP API that provisioning uses, typed: what each route answers
//! (only the fields obs reads; Grafana adds more) and what each write takes. Followed: Grafana's
//! "Data source HTTP API", "Folder HTTP API", "Dashboard HTTP API", "Folder/Dashboard Search
//! HTTP API" and "Other HTTP API" (`/api/health`). Dashboards stay JSON: their model is the
//! file's, whatever its schema version.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::client::{ApiError, GrafanaClient};

/// Absent and `null` (Go's nil map or slice) both mean the zero value.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// `GET /api/health`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Health {
    /// `ok` once the database is usable (`failing` while migrating).
    pub database: String,
    /// Grafana's version.
    pub version: String,
}

/// An item of `GET /api/datasources` (the list DTO: no version, no secret fields).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DatasourceListItem {
    /// The uid.
    pub uid: String,
    /// The name (unique).
    pub name: String,
    /// The plugin type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Held by Grafana's file provisioning.
    pub read_only: bool,
}

/// `GET /api/datasources/uid/{uid}`. Grafana never returns `secureJsonData`; it says which
/// secrets are set in `secureJsonFields`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Datasource {
    /// The uid.
    pub uid: String,
    /// The name.
    pub name: String,
    /// The plugin type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `proxy` or `direct`.
    pub access: String,
    /// Backend URL.
    pub url: String,
    /// The default datasource.
    pub is_default: bool,
    /// Plugin settings.
    #[serde(deserialize_with = "null_as_default")]
    pub json_data: Map<String, Value>,
    /// Basic auth on.
    pub basic_auth: bool,
    /// Basic auth user.
    pub basic_auth_user: String,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Send browser credentials.
    pub with_credentials: bool,
    /// Held by Grafana's file provisioning: the API refuses to write it.
    pub read_only: bool,
    /// The secrets that are set (`true`), never their values.
    #[serde(deserialize_with = "null_as_default")]
    pub secure_json_fields: BTreeMap<String, bool>,
}

/// The body of `POST /api/datasources` and `PUT /api/datasources/uid/{uid}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasourceBody {
    /// The uid.
    pub uid: String,
    /// The name.
    pub name: String,
    /// The plugin type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `proxy` or `direct`.
    pub access: String,
    /// Backend URL.
    pub url: String,
    /// The default datasource.
    pub is_default: bool,
    /// Plugin settings.
    pub json_data: Map<String, Value>,
    /// Basic auth on.
    pub basic_auth: bool,
    /// Basic auth user.
    pub basic_auth_user: String,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Send browser credentials.
    pub with_credentials: bool,
    /// Secrets: written, never read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_json_data: Option<BTreeMap<String, String>>,
}

/// `GET /api/folders/{uid}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Folder {
    /// The uid.
    pub uid: String,
    /// The title.
    pub title: String,
}

/// The body of `POST /api/folders`.
#[derive(Clone, Debug, Serialize)]
pub struct NewFolder {
    /// The uid.
    pub uid: String,
    /// The title.
    pub title: String,
}

/// `GET /api/dashboards/uid/{uid}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DashboardByUid {
    /// The dashboard model as stored (with Grafana's `id` and `version`).
    pub dashboard: Value,
    /// Where it lives and who owns it.
    pub meta: DashboardMeta,
}

/// The `meta` of a dashboard answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DashboardMeta {
    /// The folder's uid; empty at the root.
    pub folder_uid: String,
    /// Held by Grafana's file provisioning.
    pub provisioned: bool,
}

/// The body of `POST /api/dashboards/db`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveDashboard {
    /// The model.
    pub dashboard: Value,
    /// Always sent: without it Grafana moves the dashboard to the root folder.
    pub folder_uid: String,
    /// Replace a dashboard with the same uid (or title in the folder).
    pub overwrite: bool,
    /// The version message.
    pub message: String,
}

/// An item of `GET /api/search`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchHit {
    /// The uid.
    pub uid: String,
    /// The title.
    pub title: String,
    /// `dash-db` or `dash-folder`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The dashboard's tags.
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// `GET /api/datasources/uid/{uid}/health` ("Save & test"), success or failure.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DatasourceHealth {
    /// `OK` or `ERROR`.
    pub status: String,
    /// What the plugin said.
    pub message: String,
}

fn typed<T: DeserializeOwned>(
    client: &GrafanaClient,
    method: &Method,
    segments: &[&str],
    value: Value,
) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Unexpected {
        method: method.clone(),
        url: crate::redact::url(client.url(segments, &[]).as_str()),
        reason: e.to_string(),
    })
}

fn body_of<T: Serialize>(
    client: &GrafanaClient,
    method: &Method,
    segments: &[&str],
    body: &T,
) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::Unexpected {
        method: method.clone(),
        url: crate::redact::url(client.url(segments, &[]).as_str()),
        reason: format!("cannot encode the request: {e}"),
    })
}

async fn get<T: DeserializeOwned>(
    client: &GrafanaClient,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<T, ApiError> {
    let value = client.call(Method::GET, segments, query, None).await?;
    typed(client, &Method::GET, segments, value)
}

/// `GET`, `None` on 404.
async fn get_optional<T: DeserializeOwned>(
    client: &GrafanaClient,
    segments: &[&str],
) -> Result<Option<T>, ApiError> {
    match get(client, segments, &[]).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn write<T: Serialize>(
    client: &GrafanaClient,
    method: Method,
    segments: &[&str],
    body: Option<&T>,
) -> Result<(), ApiError> {
    let body = body
        .map(|b| body_of(client, &method, segments, b))
        .transpose()?;
    client
        .call(method, segments, &[], body.as_ref())
        .await
        .map(drop)
}

/// `GET /api/health`, once (the caller polls).
pub async fn health(client: &GrafanaClient) -> Result<Health, ApiError> {
    let segments = ["api", "health"];
    let value = client
        .call_once(Method::GET, &segments, &[], None)
        .await
        .or_else(|e| match &e {
            // 503 while migrating still carries the health body.
            ApiError::Status { status, body, .. }
                if *status == StatusCode::SERVICE_UNAVAILABLE && body.get("database").is_some() =>
            {
                Ok((**body).clone())
            }
            _ => Err(e),
        })?;
    typed(client, &Method::GET, &segments, value)
}

/// `GET /api/datasources`.
pub async fn datasources(client: &GrafanaClient) -> Result<Vec<DatasourceListItem>, ApiError> {
    get(client, &["api", "datasources"], &[]).await
}

/// `GET /api/datasources/uid/{uid}`, `None` when there is none.
pub async fn datasource(client: &GrafanaClient, uid: &str) -> Result<Option<Datasource>, ApiError> {
    get_optional(client, &["api", "datasources", "uid", uid]).await
}

/// `POST /api/datasources`.
pub async fn create_datasource(
    client: &GrafanaClient,
    body: &DatasourceBody,
) -> Result<(), ApiError> {
    write(client, Method::POST, &["api", "datasources"], Some(body)).await
}

/// `PUT /api/datasources/uid/{uid}`.
pub async fn update_datasource(
    client: &GrafanaClient,
    uid: &str,
    body: &DatasourceBody,
) -> Result<(), ApiError> {
    let segments = ["api", "datasources", "uid", uid];
    write(client, Method::PUT, &segments, Some(body)).await
}

/// `DELETE /api/datasources/uid/{uid}`.
pub async fn delete_datasource(client: &GrafanaClient, uid: &str) -> Result<(), ApiError> {
    let segments = ["api", "datasources", "uid", uid];
    write::<Value>(client, Method::DELETE, &segments, None).await
}

/// `GET /api/datasources/uid/{uid}/health`, once: `Ok` with Grafana's message when the test
/// passed, `Err` with the plugin's message (or the error) when not.
pub async fn datasource_health(client: &GrafanaClient, uid: &str) -> Result<String, String> {
    let segments = ["api", "datasources", "uid", uid, "health"];
    match client.call_once(Method::GET, &segments, &[], None).await {
        Ok(value) => match typed::<DatasourceHealth>(client, &Method::GET, &segments, value) {
            Ok(h) if h.message.is_empty() => Ok("ok".to_string()),
            Ok(h) => Ok(h.message),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e
            .body()
            .and_then(|b| serde_json::from_value::<DatasourceHealth>(b.clone()).ok())
            .map(|h| h.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| e.to_string())),
    }
}

/// `GET /api/folders/{uid}`, `None` when there is none.
pub async fn folder(client: &GrafanaClient, uid: &str) -> Result<Option<Folder>, ApiError> {
    get_optional(client, &["api", "folders", uid]).await
}

/// `POST /api/folders`.
pub async fn create_folder(client: &GrafanaClient, folder: &NewFolder) -> Result<(), ApiError> {
    write(client, Method::POST, &["api", "folders"], Some(folder)).await
}

/// `GET /api/dashboards/uid/{uid}`, `None` when there is none.
pub async fn dashboard(
    client: &GrafanaClient,
    uid: &str,
) -> Result<Option<DashboardByUid>, ApiError> {
    get_optional(client, &["api", "dashboards", "uid", uid]).await
}

/// `POST /api/dashboards/db`.
pub async fn save_dashboard(client: &GrafanaClient, save: &SaveDashboard) -> Result<(), ApiError> {
    write(
        client,
        Method::POST,
        &["api", "dashboards", "db"],
        Some(save),
    )
    .await
}

/// `DELETE /api/dashboards/uid/{uid}`.
pub async fn delete_dashboard(client: &GrafanaClient, uid: &str) -> Result<(), ApiError> {
    let segments = ["api", "dashboards", "uid", uid];
    write::<Value>(client, Method::DELETE, &segments, None).await
}

/// `GET /api/search?type=dash-db&tag={tag}`: the dashboards carrying `tag`.
pub async fn dashboards_tagged(
    client: &GrafanaClient,
    tag: &str,
) -> Result<Vec<SearchHit>, ApiError> {
    let query = [("type", "dash-db"), ("tag", tag), ("limit", "5000")];
    get(client, &["api", "search"], &query).await
}

/// Grafana's `status` word in an error body (`name-exists`, `version-mismatch`, …).
pub fn status_word(error: &ApiError) -> &str {
    error
        .body()
        .and_then(|b| b.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("")
}
