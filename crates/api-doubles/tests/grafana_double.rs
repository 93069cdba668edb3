#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Grafana double answers as Grafana 12's HTTP API does, over a real socket.

use std::time::Duration;

use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, RecordedRequest, Role};
use api_doubles::reserve_port;
use serde_json::{Value, json};

#[derive(Clone)]
enum Cred {
    None,
    Basic(&'static str, &'static str),
    Bearer(&'static str),
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    cred: Cred,
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl Api {
    fn new(base: &str, cred: Cred) -> Self {
        Self {
            client: client(),
            base: base.to_owned(),
            cred,
        }
    }

    fn admin(grafana: &GrafanaDouble) -> Self {
        Self::new(grafana.url(), Cred::Basic("admin", "admin"))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        request = match self.cred {
            Cred::None => request,
            Cred::Basic(user, password) => request.basic_auth(user, Some(password)),
            Cred::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the double answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

fn start() -> GrafanaDouble {
    GrafanaDouble::start(GrafanaConfig::default()).expect("the double starts")
}

fn tempo(uid: &str, name: &str) -> Value {
    json!({
        "uid": uid, "name": name, "type": "tempo", "access": "proxy", "url": "http://tempo:3200",
        "basicAuth": true, "basicAuthUser": "obs",
        "jsonData": { "tracesToLogsV2": { "datasourceUid": "loki" } },
        "secureJsonData": { "basicAuthPassword": "s3cret-value" },
    })
}

fn dashboard(
    uid: &str,
    title: &str,
    version: Option<i64>,
    folder_uid: Option<&str>,
    overwrite: bool,
) -> Value {
    let mut dash =
        json!({ "id": null, "uid": uid, "title": title, "tags": ["obs"], "schemaVersion": 41 });
    if let Some(version) = version {
        dash["version"] = json!(version);
    }
    let mut body = json!({ "dashboard": dash, "overwrite": overwrite, "message": "obs provision" });
    if let Some(folder_uid) = folder_uid {
        body["folderUid"] = json!(folder_uid);
    }
    body
}

#[tokio::test]
async fn health_is_public_and_names_the_version() {
    let grafana = start();
    let (status, body) = Api::new(grafana.url(), Cred::None).get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "ok");
    assert!(body["version"].as_str().unwrap().starts_with("12."));
    assert!(!body["commit"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn health_answers_503_while_migrating_then_200() {
    let config = GrafanaConfig::default().with_health_unavailable_calls(2);
    let grafana = GrafanaDouble::start(config).unwrap();
    let api = Api::new(grafana.url(), Cred::None);
    for _ in 0..2 {
        let (status, body) = api.get("/api/health").await;
        assert_eq!((status, body["database"].as_str()), (503, Some("failing")));
    }
    assert_eq!(api.get("/api/health").await.0, 200);
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let config = GrafanaConfig::default().with_token("glsa_admin", Role::Admin);
    let grafana = GrafanaDouble::start(config).unwrap();
    let url = grafana.url();

    let (status, body) = Api::new(url, Cred::None).get("/api/datasources").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Unauthorized"))
    );
    let (status, body) = Api::new(url, Cred::Bearer("glsa_wrong"))
        .get("/api/datasources")
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid API key"))
    );
    assert_eq!(body["messageId"], "api-key.invalid");
    let (status, body) = Api::new(url, Cred::Basic("admin", "nope"))
        .get("/api/datasources")
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid username or password"))
    );

    assert_eq!(
        Api::new(url, Cred::Bearer("glsa_admin"))
            .get("/api/datasources")
            .await
            .0,
        200
    );
    assert_eq!(
        Api::new(url, Cred::Basic("api_key", "glsa_admin"))
            .get("/api/datasources")
            .await
            .0,
        200
    );
    assert_eq!(
        Api::new(url, Cred::Basic("admin", "admin"))
            .get("/api/datasources")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn viewer_token_is_forbidden_to_write() {
    let config = GrafanaConfig::default().with_token("glsa_viewer", Role::Viewer);
    let grafana = GrafanaDouble::start(config).unwrap();
    let viewer = Api::new(grafana.url(), Cred::Bearer("glsa_viewer"));

    let (status, body) = viewer
        .post("/api/datasources", tempo("tempo", "Tempo"))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        "You'll need additional permissions to perform this action. Permissions needed: datasources:create"
    );
    let (status, body) = viewer
        .post("/api/dashboards/db", dashboard("d", "D", None, None, false))
        .await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("dashboards:create")
    );
    assert_eq!(
        viewer
            .post("/api/folders", json!({ "uid": "f", "title": "F" }))
            .await
            .0,
        403
    );
    assert_eq!(viewer.get("/api/search").await.0, 200);
    let (status, body) = viewer.get("/api/datasources").await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("Permissions needed: datasources:read")
    );
    assert!(
        grafana.datasources().is_empty()
            && grafana.dashboards().is_empty()
            && grafana.folders().is_empty()
    );
}

#[tokio::test]
async fn created_datasource_never_returns_its_secrets() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let (status, body) = api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Datasource added");
    assert_eq!(body["name"], "Tempo");
    assert_eq!(body["id"], body["datasource"]["id"]);
    let ds = &body["datasource"];
    for (field, expected) in [
        ("uid", json!("tempo")),
        ("orgId", json!(1)),
        ("type", json!("tempo")),
        ("access", json!("proxy")),
        ("url", json!("http://tempo:3200")),
        ("isDefault", json!(true)), // the first data source becomes the default
        ("readOnly", json!(false)),
        ("version", json!(1)),
        ("basicAuth", json!(true)),
        ("basicAuthUser", json!("obs")),
        ("secureJsonFields", json!({ "basicAuthPassword": true })),
        (
            "jsonData",
            json!({ "tracesToLogsV2": { "datasourceUid": "loki" } }),
        ),
    ] {
        assert_eq!(ds[field], expected, "{field}");
    }
    assert!(ds.get("secureJsonData").is_none());

    let (_, by_uid) = api.get("/api/datasources/uid/tempo").await;
    let (_, list) = api.get("/api/datasources").await;
    for text in [body.to_string(), by_uid.to_string(), list.to_string()] {
        assert!(!text.contains("s3cret-value"), "{text}");
    }
    assert_eq!(by_uid["secureJsonFields"]["basicAuthPassword"], true);
    assert_eq!(list[0]["uid"], "tempo");
    assert_eq!(
        grafana.secure_json_data("tempo").unwrap()["basicAuthPassword"],
        "s3cret-value"
    );
}

#[tokio::test]
async fn duplicate_name_or_uid_is_409_and_bad_input_is_400() {
    let grafana = start();
    let api = Api::admin(&grafana);
    assert_eq!(
        api.post("/api/datasources", tempo("tempo", "Tempo"))
            .await
            .0,
        200
    );

    let (status, body) = api.post("/api/datasources", tempo("other", "Tempo")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("data source with the same name already exists"))
    );
    let (status, body) = api
        .post("/api/datasources", tempo("tempo", "Tempo 2"))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (409, Some("data source with the same uid already exists"))
    );

    let (status, body) = api
        .post("/api/datasources", json!({ "name": "x", "type": "loki" }))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("bad request data"))
    ); // access required
    let (status, body) = api.post("/api/datasources", tempo("bad uid!", "Bad")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid datasource UID."))
    );
    assert_eq!(grafana.datasources().len(), 1);
}

#[tokio::test]
async fn unknown_datasource_is_404() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let expected = (404, json!({ "message": "Data source not found" }));
    assert_eq!(api.get("/api/datasources/uid/nope").await, expected);
    assert_eq!(
        api.put("/api/datasources/uid/nope", tempo("nope", "Nope"))
            .await,
        expected
    );
    assert_eq!(api.delete("/api/datasources/uid/nope").await, expected);
}

#[tokio::test]
async fn update_refuses_a_stale_version_and_keeps_unsent_secrets() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post("/api/datasources", tempo("tempo", "Tempo")).await;

    let mut update = tempo("tempo", "Tempo");
    update["url"] = json!("http://tempo:3201");
    update["version"] = json!(1);
    update.as_object_mut().unwrap().remove("secureJsonData");
    let (status, body) = api.put("/api/datasources/uid/tempo", update.clone()).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("Datasource updated"))
    );
    assert_eq!(body["datasource"]["version"], 2);
    assert_eq!(body["datasource"]["url"], "http://tempo:3201");
    assert_eq!(
        body["datasource"]["secureJsonFields"]["basicAuthPassword"],
        true
    );

    let (status, body) = api.put("/api/datasources/uid/tempo", update).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        "Datasource has already been updated by someone else. Please reload and try again"
    );
    assert_eq!(
        grafana.secure_json_data("tempo").unwrap()["basicAuthPassword"],
        "s3cret-value"
    );
}

#[tokio::test]
async fn provisioned_datasource_cannot_be_changed_through_the_api() {
    let grafana = start();
    let stored = grafana
        .add_provisioned_datasource(tempo("tempo", "Tempo"))
        .unwrap();
    assert_eq!(stored["readOnly"], true);
    let api = Api::admin(&grafana);

    let (status, body) = api
        .put("/api/datasources/uid/tempo", tempo("tempo", "Tempo"))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Cannot update read-only data source"))
    );
    let (status, body) = api.delete("/api/datasources/uid/tempo").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Cannot delete read-only data source"))
    );
    assert_eq!(
        api.get("/api/datasources/uid/tempo").await.1["readOnly"],
        true
    );
}

#[tokio::test]
async fn deleted_datasource_is_gone() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let (_, created) = api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    let (status, body) = api.delete("/api/datasources/uid/tempo").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({ "message": "Data source deleted", "id": created["id"] })
        )
    );
    assert_eq!(api.get("/api/datasources/uid/tempo").await.0, 404);
}

#[tokio::test]
async fn save_and_test_answers_as_configured() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    let (status, body) = api.get("/api/datasources/uid/tempo/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("OK")));

    grafana.set_datasource_health("tempo", false, "failed to connect to http://tempo:3200");
    let (status, body) = api.get("/api/datasources/uid/tempo/health").await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({ "status": "ERROR", "message": "failed to connect to http://tempo:3200" })
        )
    );
    assert_eq!(api.get("/api/datasources/uid/nope/health").await.0, 500);
}

#[tokio::test]
async fn folders_are_created_once_by_uid() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let (status, body) = api
        .post(
            "/api/folders",
            json!({ "uid": "obs", "title": "Observability" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["uid"].as_str(), body["url"].as_str()),
        (Some("obs"), Some("/dashboards/f/obs/observability"))
    );

    let (status, body) = api
        .post("/api/folders", json!({ "uid": "obs", "title": "Again" }))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            409,
            Some("a folder/dashboard with the same uid already exists")
        )
    );
    let (status, body) = api
        .post("/api/folders", json!({ "uid": "empty", "title": " " }))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("folder title cannot be empty"))
    );

    assert_eq!(
        api.post(
            "/api/folders",
            json!({ "uid": "sub", "title": "Sub", "parentUid": "obs" })
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.get("/api/folders/obs").await.1["title"],
        "Observability"
    );
    assert_eq!(api.get("/api/folders/sub").await.1["parentUid"], "obs");
    assert_eq!(
        api.get("/api/folders").await.1,
        json!([{ "id": body_id(&grafana, "obs"), "uid": "obs", "title": "Observability" }])
    );
    assert_eq!(
        api.get("/api/folders?parentUid=obs").await.1[0]["uid"],
        "sub"
    );
    let (status, body) = api.get("/api/folders/nope").await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({ "status": "not-found", "message": "folder not found" })
        )
    );
}

fn body_id(grafana: &GrafanaDouble, uid: &str) -> Value {
    grafana
        .folders()
        .into_iter()
        .find(|f| f["uid"] == uid)
        .unwrap()["id"]
        .clone()
}

#[tokio::test]
async fn unified_storage_folders_answer_412_for_an_existing_uid() {
    let grafana =
        GrafanaDouble::start(GrafanaConfig::default().with_unified_storage_folders(true)).unwrap();
    let api = Api::admin(&grafana);
    api.post(
        "/api/folders",
        json!({ "uid": "obs", "title": "Observability" }),
    )
    .await;
    let (status, body) = api
        .post(
            "/api/folders",
            json!({ "uid": "obs", "title": "Observability" }),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (412, Some("version-mismatch"))
    );
}

#[tokio::test]
async fn dashboard_save_answers_with_its_identity_and_versions() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post(
        "/api/folders",
        json!({ "uid": "obs", "title": "Observability" }),
    )
    .await;

    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", None, Some("obs"), false),
        )
        .await;
    assert_eq!(status, 200);
    for (field, expected) in [
        ("uid", json!("svc")),
        ("url", json!("/d/svc/service-overview")),
        ("status", json!("success")),
        ("version", json!(1)),
        ("slug", json!("service-overview")),
        ("folderUid", json!("obs")),
    ] {
        assert_eq!(body[field], expected, "{field}");
    }
    assert!(body["id"].as_i64().unwrap() > 0);

    let (status, got) = api.get("/api/dashboards/uid/svc").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            got["dashboard"]["version"].clone(),
            got["dashboard"]["id"].clone()
        ),
        (json!(1), body["id"].clone())
    );
    assert_eq!(
        (
            got["meta"]["folderUid"].as_str(),
            got["meta"]["provisioned"].as_bool()
        ),
        (Some("obs"), Some(false))
    );

    // A stale version without overwrite is refused; the current one or overwrite is accepted.
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", None, Some("obs"), false),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            412,
            json!({ "status": "version-mismatch", "message": "The dashboard has been changed by someone else" })
        )
    );
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", Some(1), Some("obs"), false),
        )
        .await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(2)));
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", None, Some("obs"), true),
        )
        .await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(3)));
    assert_eq!(grafana.dashboards()[0]["dashboard"]["version"], 3);
}

#[tokio::test]
async fn same_title_in_the_same_folder_is_412_name_exists() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post(
        "/api/folders",
        json!({ "uid": "obs", "title": "Observability" }),
    )
    .await;
    api.post(
        "/api/dashboards/db",
        dashboard("svc", "Service overview", None, Some("obs"), false),
    )
    .await;

    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("other", "Service overview", None, Some("obs"), false),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            412,
            json!({ "status": "name-exists", "message": "A dashboard with the same name in the folder already exists" })
        )
    );
    // Another folder (here the root) may hold the same title.
    assert_eq!(
        api.post(
            "/api/dashboards/db",
            dashboard("other", "Service overview", None, None, false)
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn saving_without_folder_uid_moves_the_dashboard_to_the_root() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post(
        "/api/folders",
        json!({ "uid": "obs", "title": "Observability" }),
    )
    .await;
    api.post(
        "/api/dashboards/db",
        dashboard("svc", "Service overview", None, Some("obs"), false),
    )
    .await;

    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", Some(1), None, false),
        )
        .await;
    assert_eq!((status, body["folderUid"].as_str()), (200, Some("")));
    let (_, got) = api.get("/api/dashboards/uid/svc").await;
    assert_eq!(
        (
            got["meta"]["folderUid"].as_str(),
            got["meta"]["folderTitle"].as_str()
        ),
        (Some(""), Some("Dashboards"))
    );
    assert_eq!(grafana.dashboards()[0]["meta"]["folderUid"], "");
}

#[tokio::test]
async fn invalid_dashboards_are_refused_like_grafana() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Svc", None, Some("nope"), false),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("folder not found"))
    );
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "", None, None, false),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (400, Some("empty-name")));
    let long = "x".repeat(41);
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard(&long, "Svc", None, None, false),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("uid too long, max 40 characters"))
    );
    let (status, body) = api
        .post("/api/dashboards/db", json!({ "overwrite": true }))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("bad request data"))
    );
    assert!(grafana.dashboards().is_empty());
}

#[tokio::test]
async fn dashboards_are_searched_and_deleted() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post(
        "/api/folders",
        json!({ "uid": "obs", "title": "Observability" }),
    )
    .await;
    api.post(
        "/api/dashboards/db",
        dashboard("svc", "Service overview", None, Some("obs"), false),
    )
    .await;
    let mut untagged = dashboard("logs", "Logs and traces", None, Some("obs"), false);
    untagged["dashboard"]["tags"] = json!([]);
    api.post("/api/dashboards/db", untagged).await;

    let (_, hits) = api.get("/api/search?type=dash-db&tag=obs").await;
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(
        (hits[0]["uid"].as_str(), hits[0]["folderUid"].as_str()),
        (Some("svc"), Some("obs"))
    );
    assert_eq!(hits[0]["type"], "dash-db");
    let (_, hits) = api.get("/api/search?query=logs%20and").await;
    assert_eq!(
        (hits.as_array().unwrap().len(), hits[0]["uid"].as_str()),
        (1, Some("logs"))
    );
    let (_, hits) = api.get("/api/search?type=dash-folder").await;
    assert_eq!(
        (hits.as_array().unwrap().len(), hits[0]["uid"].as_str()),
        (1, Some("obs"))
    );

    let (status, body) = api.delete("/api/dashboards/uid/svc").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("Dashboard Service overview deleted"))
    );
    let (status, body) = api.get("/api/dashboards/uid/svc").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Dashboard not found"))
    );
}

#[tokio::test]
async fn provisioned_dashboard_is_marked_and_protected() {
    let grafana = start();
    grafana
        .add_provisioned_dashboard(dashboard("svc", "Service overview", None, None, false))
        .unwrap();
    let api = Api::admin(&grafana);
    assert_eq!(
        api.get("/api/dashboards/uid/svc").await.1["meta"]["provisioned"],
        true
    );
    let (status, body) = api
        .post(
            "/api/dashboards/db",
            dashboard("svc", "Service overview", None, None, true),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Cannot save provisioned dashboard"))
    );
    let (status, body) = api.delete("/api/dashboards/uid/svc").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("provisioned dashboard cannot be deleted"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_the_same_uid_leave_one() {
    let grafana = start();
    let api = Api::admin(&grafana);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let ds = api
                .post("/api/datasources", tempo("tempo", "Tempo"))
                .await
                .0;
            let folder = api
                .post(
                    "/api/folders",
                    json!({ "uid": "obs", "title": format!("Obs {i}") }),
                )
                .await
                .0;
            let dash = api
                .post(
                    "/api/dashboards/db",
                    dashboard("svc", "Service overview", None, None, false),
                )
                .await
                .0;
            (ds, folder, dash)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| o.0 == 200).count(), 1);
    assert!(outcomes.iter().all(|o| o.0 == 200 || o.0 == 409));
    assert_eq!(outcomes.iter().filter(|o| o.1 == 200).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| o.2 == 200).count(), 1);
    assert!(outcomes.iter().all(|o| o.2 == 200 || o.2 == 412));
    assert_eq!(
        (
            grafana.datasources().len(),
            grafana.folders().len(),
            grafana.dashboards().len()
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn injected_failures_come_first_then_service_resumes() {
    let grafana = start();
    let api = Api::admin(&grafana);
    grafana.fail_next(2, 500);
    assert_eq!(
        api.get("/api/health").await,
        (500, json!({ "message": "Internal Server Error" }))
    );
    assert_eq!(api.get("/api/datasources").await.0, 500);
    assert_eq!(api.get("/api/datasources").await.0, 200);
    let statuses: Vec<u16> = grafana.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
}

#[tokio::test]
async fn targeted_failures_hit_only_their_route_with_grafanas_bodies() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    grafana.fail_next_on("delete", "/api/datasources/uid/", 1, 403);
    assert_eq!(api.get("/api/datasources/uid/tempo").await.0, 200);
    let (status, body) = api.delete("/api/datasources/uid/tempo").await;
    assert_eq!(status, 403);
    assert_eq!(
        body["message"],
        "You'll need additional permissions to perform this action. Permissions needed: datasources:delete"
    );
    assert_eq!(grafana.datasources().len(), 1, "nothing deleted");
    assert_eq!(api.delete("/api/datasources/uid/tempo").await.0, 200);

    grafana.fail_next_on("GET", "/api/search", 1, 401);
    let (status, body) = api.get("/api/search").await;
    assert_eq!(
        (status, body["messageId"].clone()),
        (401, json!("auth.unauthorized"))
    );
}

#[tokio::test]
async fn a_sub_path_grafana_serves_only_under_it() {
    let grafana = GrafanaDouble::start(GrafanaConfig::default().with_sub_path("grafana/")).unwrap();
    assert!(grafana.url().ends_with("/grafana"), "{}", grafana.url());
    let api = Api::admin(&grafana);
    assert_eq!(api.get("/api/health").await.1["database"], "ok");
    let (status, _) = api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    assert_eq!(status, 200);
    let root = grafana.url().trim_end_matches("/grafana").to_owned();
    let outside = Api::new(&root, Cred::Basic("admin", "admin"));
    assert_eq!(outside.get("/api/health").await.0, 404);
    assert_eq!(outside.get("/api/datasources").await.0, 404);
    let paths: Vec<String> = grafana.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/health",
            "/api/datasources",
            "/api/health",
            "/api/datasources"
        ],
        "recorded without the sub path"
    );
}

#[tokio::test]
async fn requests_and_writes_are_recorded() {
    let grafana = start();
    let api = Api::admin(&grafana);
    api.get("/api/datasources").await;
    api.post("/api/datasources", tempo("tempo", "Tempo")).await;
    api.get("/api/datasources/uid/tempo").await;
    assert_eq!(grafana.requests().len(), 3);
    let expected = RecordedRequest {
        method: "POST".into(),
        path: "/api/datasources".into(),
        status: 200,
    };
    assert_eq!(grafana.writes(), [expected]);
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let grafana = start();
    let api = Api::admin(&grafana);
    assert_eq!(
        api.get("/api/nope").await,
        (404, json!({ "message": "Not found" }))
    );
    assert_eq!(api.delete("/api/search").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grafana_slow_to_start_refuses_connections_until_it_starts() {
    let port = reserve_port().unwrap();
    let health = format!("http://127.0.0.1:{port}/api/health");
    let http = client();
    assert!(
        http.get(&health).send().await.is_err(),
        "nothing listens yet"
    );

    let poller = tokio::spawn({
        let (http, health) = (http.clone(), health.clone());
        async move {
            loop {
                if let Ok(response) = http.get(&health).send().await {
                    return response.status().as_u16();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let grafana = GrafanaDouble::start_on(port, GrafanaConfig::default()).unwrap();
    assert_eq!(grafana.url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), poller)
            .await
            .unwrap()
            .unwrap(),
        200
    );
}

#[test]
fn starts_and_answers_without_an_async_runtime() {
    use std::io::{Read, Write};
    let grafana = start();
    let address = grafana.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let request =
        format!("GET /api/health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains(r#""database":"ok""#), "{response}");
}

#[tokio::test]
async fn dropping_the_double_stops_it() {
    let grafana = start();
    let health = format!("{}/api/health", grafana.url());
    let http = client();
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    drop(grafana);
    let fresh = client(); // no pooled connection to the stopped server
    assert!(fresh.get(&health).send().await.is_err());
}
