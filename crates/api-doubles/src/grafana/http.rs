//! Routes, authentication and fault injection: the HTTP face of [`super::store::Store`].

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::store::{Answer, Reply, errutil, msg};
use super::{GrafanaConfig, RecordedRequest, Role, Shared};

type AppState = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = routes();
    let app = match &shared.config.sub_path {
        Some(sub_path) => Router::new().nest(sub_path, routes),
        None => routes,
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/health", get(health))
        .route(
            "/api/datasources",
            get(list_datasources).post(create_datasource),
        )
        .route(
            "/api/datasources/uid/{uid}",
            get(get_datasource)
                .put(update_datasource)
                .delete(delete_datasource),
        )
        .route("/api/datasources/uid/{uid}/health", get(datasource_health))
        .route("/api/folders", get(list_folders).post(create_folder))
        .route("/api/folders/{uid}", get(get_folder))
        .route("/api/dashboards/db", post(save_dashboard))
        .route(
            "/api/dashboards/uid/{uid}",
            get(get_dashboard).delete(delete_dashboard),
        )
        .route("/api/search", get(search))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

fn respond(answer: Answer) -> Response {
    let (status, body) = answer.unwrap_or_else(|refusal| refusal);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// Decode a JSON body as Grafana's `web.Bind` does: anything unparsable is 400 `bad request data`.
fn with_json(body: &Bytes, handle: impl FnOnce(&Value) -> Answer) -> Response {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => respond(handle(&value)),
        Err(_) => respond(Err(msg(400, "bad request data"))),
    }
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let raw = raw.unwrap_or_default();
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Every request passes here: injected faults first, then authentication and the role check
/// (`/api/health` needs none, as in Grafana), then the route; the outcome is recorded.
async fn gate(State(shared): AppState, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let full = request.uri().path();
    let sub_path = shared.config.sub_path.as_deref().unwrap_or("");
    let (path, outside) = match full.strip_prefix(sub_path) {
        Some(rest) if rest.starts_with('/') || sub_path.is_empty() => (rest.to_owned(), false),
        _ => (full.to_owned(), true),
    };
    let fault = shared.store().take_fault(method.as_str(), &path);
    let response = if outside {
        respond(Err(msg(404, "Not found")))
    } else if let Some(status) = fault {
        respond(Err(injected(status, &method, &path)))
    } else if path == "/api/health" {
        next.run(request).await
    } else {
        match authenticate(&shared.config, request.headers()) {
            Err(refusal) => respond(Err(refusal)),
            Ok(role) => match permission(&method, &path) {
                Some((needed, action)) if role < needed => respond(Err(forbidden(action))),
                _ => next.run(request).await,
            },
        }
    };
    let status = response.status().as_u16();
    shared.store().requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        status,
    });
    response
}

fn authenticate(config: &GrafanaConfig, headers: &HeaderMap) -> Result<Role, Reply> {
    let unauthorized = || errutil(401, "auth.unauthorized", "Unauthorized");
    let invalid_key = || errutil(401, "api-key.invalid", "Invalid API key");
    let tokens = &config.tokens;
    let token_role = |token: &str| {
        tokens
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, role)| *role)
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let value = value.ok_or_else(unauthorized)?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return token_role(token.trim()).ok_or_else(invalid_key);
    }
    let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
    let decoded = decoded.ok().and_then(|bytes| String::from_utf8(bytes).ok());
    let (user, password) = decoded
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .ok_or_else(unauthorized)?;
    if user == "api_key" {
        return token_role(password).ok_or_else(invalid_key);
    }
    match &config.basic_auth {
        Some((u, p)) if u == user && p == password => Ok(Role::Admin),
        _ => Err(errutil(
            401,
            "password-auth.failed",
            "Invalid username or password",
        )),
    }
}

/// The least role allowed, and the action Grafana names when refusing, for a modelled route.
fn permission(method: &Method, path: &str) -> Option<(Role, &'static str)> {
    let datasources = path == "/api/datasources" || path.starts_with("/api/datasources/");
    if datasources && path.ends_with("/health") {
        return None; // datasources:query, which every basic role has
    }
    match *method {
        Method::GET | Method::HEAD if datasources => Some((Role::Admin, "datasources:read")),
        Method::POST if datasources => Some((Role::Admin, "datasources:create")),
        Method::PUT if datasources => Some((Role::Admin, "datasources:write")),
        Method::DELETE if datasources => Some((Role::Admin, "datasources:delete")),
        Method::POST if path == "/api/folders" => Some((Role::Editor, "folders:create")),
        Method::POST if path == "/api/dashboards/db" => {
            Some((Role::Editor, "any of dashboards:create, dashboards:write"))
        }
        Method::DELETE if path.starts_with("/api/dashboards/") => {
            Some((Role::Editor, "dashboards:delete"))
        }
        _ => None,
    }
}

/// The body Grafana answers with `status`, for an injected failure.
fn injected(status: u16, method: &Method, path: &str) -> Reply {
    match status {
        401 => errutil(401, "auth.unauthorized", "Unauthorized"),
        403 => forbidden(permission(method, path).map_or("datasources:query", |(_, a)| a)),
        _ => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason());
            msg(status, reason.unwrap_or("Injected failure"))
        }
    }
}

fn forbidden(action: &str) -> Reply {
    let text = "You'll need additional permissions to perform this action. Permissions needed:";
    let id = format!(
        "ACE{:010}",
        RandomState::new().hash_one(action) % 10_000_000_000
    );
    let body = json!({ "accessErrorId": id, "message": format!("{text} {action}"), "title": "Access denied" });
    (403, body)
}

async fn not_found() -> Response {
    respond(Err(msg(404, "Not found")))
}

async fn health(State(s): AppState) -> Response {
    respond(s.store().health(&s.config.version, &s.config.commit))
}

async fn list_datasources(State(s): AppState) -> Response {
    respond(s.store().list_datasources())
}

async fn create_datasource(State(s): AppState, body: Bytes) -> Response {
    with_json(&body, |v| s.store().create_datasource(v, false))
}

async fn get_datasource(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().get_datasource(&uid))
}

async fn update_datasource(State(s): AppState, Path(uid): Path<String>, body: Bytes) -> Response {
    with_json(&body, |v| s.store().update_datasource(&uid, v))
}

async fn delete_datasource(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().delete_datasource(&uid))
}

async fn datasource_health(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().check_datasource_health(&uid))
}

async fn list_folders(State(s): AppState, RawQuery(query): RawQuery) -> Response {
    let (mut parent, mut limit, mut page) = (String::new(), 1000, 1);
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "parentUid" => parent = value,
            "limit" => limit = value.parse().unwrap_or(1000),
            "page" => page = value.parse().unwrap_or(1),
            _ => {}
        }
    }
    respond(s.store().list_folders(&parent, limit, page))
}

async fn create_folder(State(s): AppState, body: Bytes) -> Response {
    with_json(&body, |v| {
        s.store().create_folder(v, s.config.unified_storage_folders)
    })
}

async fn get_folder(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().get_folder(&uid))
}

async fn save_dashboard(State(s): AppState, body: Bytes) -> Response {
    with_json(&body, |v| s.store().save_dashboard(v, false))
}

async fn get_dashboard(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().get_dashboard(&uid))
}

async fn delete_dashboard(State(s): AppState, Path(uid): Path<String>) -> Response {
    respond(s.store().delete_dashboard(&uid))
}

async fn search(State(s): AppState, RawQuery(query): RawQuery) -> Response {
    respond(s.store().search(&query_pairs(query)))
}
