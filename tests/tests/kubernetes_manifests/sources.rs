//! One source of truth: the Grafana ConfigMaps are the repository's files, byte for byte, and
//! obs reads them where they are mounted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kube::{
    BASE, KUSTOMIZATIONS, MULTI_TENANT, Rendered, container, data, rendered, repo_root,
};
use crate::mounts::mount;

/// The files of `dir` (relative to the repository), by file name.
fn files(dir: &str) -> BTreeMap<String, String> {
    std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

fn config_map_data(rendered: &Rendered, name: &str) -> BTreeMap<String, String> {
    data(rendered.get("ConfigMap", name)).into_iter().collect()
}

/// Every subdirectory of dashboards/ (a Grafana folder) and its ConfigMap.
fn dashboard_folders() -> Vec<String> {
    let mut folders: Vec<String> = std::fs::read_dir(repo_root().join("dashboards"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert!(!folders.is_empty());
    folders
}

#[test]
fn the_grafana_config_maps_hold_exactly_the_repository_files() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        for folder in dashboard_folders() {
            let name = format!("grafana-dashboards-{folder}");
            assert_eq!(
                config_map_data(rendered, &name),
                files(&format!("dashboards/{folder}")),
                "{dir}: ConfigMap {name} must hold exactly dashboards/{folder}/ \
                 (add new dashboards to the configMapGenerator in {BASE}/kustomization.yaml)"
            );
            let cm = rendered.get("ConfigMap", &name);
            assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1", "{name}");
            assert_eq!(
                cm["metadata"]["annotations"]["grafana_folder"],
                folder.as_str()
            );
        }
        assert_eq!(
            config_map_data(rendered, "grafana-dashboard-providers"),
            files("grafana/provisioning/dashboards"),
            "{dir}: grafana-dashboard-providers"
        );
        let datasources = if dir == MULTI_TENANT {
            BTreeMap::from([(
                "datasources.yaml".to_string(),
                std::fs::read_to_string(repo_root().join(MULTI_TENANT).join("datasources.yaml"))
                    .unwrap(),
            )])
        } else {
            files("grafana/provisioning/datasources")
        };
        assert_eq!(
            config_map_data(rendered, "grafana-datasources"),
            datasources,
            "{dir}: grafana-datasources"
        );
        // No other ConfigMap carries Grafana files: a copy would drift.
        for cm in rendered.of_kind("ConfigMap") {
            let name = cm["metadata"]["name"].as_str().unwrap_or_default();
            let expected = name == "grafana-datasources"
                || name == "grafana-dashboard-providers"
                || name.starts_with("grafana-dashboards-")
                || name.starts_with("obs-settings-");
            assert!(expected, "{dir}: unexpected ConfigMap {name}");
        }
    }
}

/// The multi-tenant datasources keep every uid the dashboards and correlations refer to.
#[test]
fn the_overlay_datasources_keep_the_uids_of_the_base() {
    let uids = |text: &str| -> Vec<String> {
        let yaml: Value = serde_yaml_ng::from_str(text).unwrap();
        let mut uids: Vec<String> = yaml["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["uid"].as_str().unwrap().to_string())
            .collect();
        uids.sort();
        uids
    };
    let base = uids(&files("grafana/provisioning/datasources")["datasources.yaml"]);
    let overlay_text =
        std::fs::read_to_string(repo_root().join(MULTI_TENANT).join("datasources.yaml")).unwrap();
    let overlay = uids(&overlay_text);
    let mut expected = base.clone();
    expected.retain(|u| u != "jaeger");
    assert_eq!(overlay, expected, "the overlay drops Jaeger only");
    let yaml: Value = serde_yaml_ng::from_str(&overlay_text).unwrap();
    assert_eq!(yaml["deleteDatasources"][0]["name"], "Jaeger");
    for ds in yaml["datasources"].as_array().unwrap() {
        let name = ds["name"].as_str().unwrap();
        assert_eq!(ds["jsonData"]["httpHeaderName1"], "X-Scope-OrgID", "{name}");
        assert_eq!(ds["secureJsonData"]["httpHeaderValue1"], "team-a", "{name}");
        assert_eq!(ds["basicAuth"], true, "{name}");
        let password = ds["secureJsonData"]["basicAuthPassword"].as_str().unwrap();
        assert!(
            password.starts_with('$'),
            "{name}: the password comes from the environment"
        );
    }
}

/// obs mounts the datasources and every dashboards folder where OBS_DATASOURCES and
/// OBS_DASHBOARDS point, and `obs provision --check` accepts them as Kubernetes lays a mounted
/// ConfigMap out (symlinks into a hidden `..data` directory).
#[test]
fn obs_checks_the_mounted_config_maps_as_valid_provisioning() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        let deployment = rendered.get("Deployment", "obs");
        let pod = &deployment["spec"]["template"]["spec"];
        let obs = container(deployment, "obs");
        let mounts = mount(rendered, pod, obs);
        let settings = config_map_data(rendered, "obs-settings");
        let datasources = &settings["OBS_DATASOURCES"];
        let dashboards = &settings["OBS_DASHBOARDS"];
        let mounted = |path: &str| mounts.paths.iter().any(|(m, _)| m == path);
        assert!(
            mounted(datasources),
            "{dir}: nothing mounted at OBS_DATASOURCES={datasources}"
        );
        for folder in dashboard_folders() {
            let at = format!("{dashboards}/{folder}");
            assert!(
                mounted(&at),
                "{dir}: dashboards folder {folder} is not mounted at {at}"
            );
        }
        let local_datasources = mounts.resolve(datasources).unwrap();
        let local_dashboards = mounts.resolve(dashboards).unwrap();
        check_provisioning(dir, &local_datasources, &local_dashboards);
    }
}

fn check_provisioning(dir: &str, datasources: &Path, dashboards: &Path) {
    let output = Command::new(crate::obs_binary::path())
        .args(["provision", "--check", "--datasources"])
        .arg(datasources)
        .arg("--dashboards")
        .arg(dashboards)
        .env_clear()
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{dir}: obs provision --check refused the mounted files:\n{text}"
    );
    // Everything mounted was read: the datasources of the file and every dashboard.
    let datasource_file = std::fs::read_to_string(datasources.join("datasources.yaml")).unwrap();
    let yaml: Value = serde_yaml_ng::from_str(&datasource_file).unwrap();
    let datasource_count = yaml["datasources"].as_array().unwrap().len();
    let dashboard_count: usize = dashboard_folders()
        .iter()
        .map(|f| files(&format!("dashboards/{f}")).len())
        .sum();
    let summary = format!("{datasource_count} datasources from ");
    assert!(
        text.contains(&summary),
        "{dir}: expected {summary:?} in:\n{text}"
    );
    let summary = format!("{dashboard_count} dashboards from ");
    assert!(
        text.contains(&summary),
        "{dir}: expected {summary:?} in:\n{text}"
    );
}
