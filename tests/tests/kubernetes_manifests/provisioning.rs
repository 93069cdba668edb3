//! obs, with exactly its rendered settings and mounts, provisions Grafana (the API double of
//! crates/api-doubles) as the stores behind it need: the base's datasources and dashboards, then
//! the overlay's, with each store's tenant and credentials from the mounted Secret.

use std::collections::BTreeMap;
use std::process::Command;

use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};

use crate::kube::{BASE, MULTI_TENANT, data};
use crate::obs_binary;
use crate::obs_settings::{Obs, obs};

/// `obs provision` with the container's environment (paths into its mounts made local) against
/// `grafana`; its output.
fn provision(obs: &Obs, grafana: &GrafanaDouble) -> String {
    let env = obs.local_env(&[("OBS_GRAFANA_URL", grafana.url().to_string())]);
    let output = Command::new(obs_binary::path())
        .arg("provision")
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{}: obs provision failed:\n{text}",
        obs.rendered.dir
    );
    text
}

fn secret(obs: &Obs) -> BTreeMap<String, String> {
    data(obs.rendered.get("Secret", "obs-credentials"))
        .into_iter()
        .collect()
}

#[test]
fn obs_provisions_the_base_then_the_overlay_with_each_stores_tenant_and_credentials() {
    let base = obs(BASE);
    let overlay = obs(MULTI_TENANT);
    // The Secret's Grafana token, with the role obs needs to write datasources.
    let token = secret(&base)["grafana-token"].clone();
    assert_eq!(secret(&overlay)["grafana-token"], token);
    let grafana =
        GrafanaDouble::start(GrafanaConfig::default().with_token(token.clone(), Role::Admin))
            .unwrap();

    let output = provision(&base, &grafana);
    let uids = |grafana: &GrafanaDouble| {
        let mut uids: Vec<String> = grafana
            .datasources()
            .iter()
            .map(|d| d["uid"].as_str().unwrap().to_string())
            .collect();
        uids.sort();
        uids
    };
    assert_eq!(
        uids(&grafana),
        ["alertmanager", "jaeger", "loki", "prometheus", "tempo"]
    );
    for datasource in grafana.datasources() {
        assert!(
            datasource["jsonData"]["httpHeaderName1"].is_null(),
            "base: no tenant: {datasource}"
        );
        assert_ne!(
            datasource["basicAuth"], true,
            "base: no basic auth: {datasource}"
        );
    }
    assert_eq!(
        grafana.dashboards().len(),
        crate::kube::shipped_dashboards(),
        "{output}"
    );
    assert!(!output.contains(&token), "the token was printed:\n{output}");

    // The same Grafana, moved to the multi-tenant stores.
    let output = provision(&overlay, &grafana);
    assert_eq!(
        uids(&grafana),
        ["alertmanager", "loki", "prometheus", "tempo"],
        "Jaeger deleted"
    );
    let secrets = secret(&overlay);
    let password_of = |uid: &str| match uid {
        "tempo" => &secrets["tempo-password"],
        "loki" => &secrets["loki-password"],
        _ => &secrets["mimir-password"],
    };
    for datasource in grafana.datasources() {
        let uid = datasource["uid"].as_str().unwrap();
        let secure = grafana.secure_json_data(uid).unwrap();
        assert_eq!(
            datasource["jsonData"]["httpHeaderName1"], "X-Scope-OrgID",
            "{datasource}"
        );
        assert_eq!(secure["httpHeaderValue1"], "team-a", "{uid}");
        assert_eq!(datasource["basicAuth"], true, "{datasource}");
        assert_eq!(datasource["basicAuthUser"], "team-a", "{datasource}");
        assert_eq!(
            &secure["basicAuthPassword"],
            password_of(uid),
            "{uid}: the mounted password"
        );
        assert!(
            datasource["url"]
                .as_str()
                .unwrap()
                .contains(".svc.cluster.local"),
            "{datasource}"
        );
    }
    assert_eq!(
        grafana.dashboards().len(),
        crate::kube::shipped_dashboards(),
        "{output}"
    );
    for value in secrets.values() {
        assert!(
            !output.contains(value.as_str()),
            "a secret was printed:\n{output}"
        );
    }
}
