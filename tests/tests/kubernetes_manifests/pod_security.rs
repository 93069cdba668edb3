//! The namespace enforces the Pod Security Standards' `restricted` profile, so every pod must
//! meet it or the API server refuses it: checked here, control by control, as the standard
//! ("Pod Security Standards", kubernetes.io) lists them.

use serde_json::Value;

use crate::kube::{KUSTOMIZATIONS, describe, rendered};

/// Volume types the restricted profile allows.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn pod_or_container<'a>(pod: &'a Value, container: &'a Value, field: &str) -> &'a Value {
    let own = &container["securityContext"][field];
    if own.is_null() {
        &pod["securityContext"][field]
    } else {
        own
    }
}

#[test]
fn every_pod_meets_the_restricted_pod_security_standard() {
    for dir in KUSTOMIZATIONS {
        let rendered = rendered(dir);
        let namespace = rendered.get("Namespace", "observability");
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
        let deployments: Vec<&Value> = rendered.of_kind("Deployment").collect();
        assert_eq!(deployments.len(), 5, "{dir}");
        for deployment in deployments {
            let what = format!("{dir}: {}", describe(deployment));
            let pod = &deployment["spec"]["template"]["spec"];
            for field in ["hostNetwork", "hostPID", "hostIPC"] {
                assert_ne!(pod[field], true, "{what}: {field}");
            }
            for volume in pod["volumes"].as_array().cloned().unwrap_or_default() {
                let kind = volume
                    .as_object()
                    .unwrap()
                    .keys()
                    .find(|k| *k != "name")
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    ALLOWED_VOLUMES.contains(&kind.as_str()),
                    "{what}: volume type {kind}"
                );
            }
            let containers = pod["containers"].as_array().unwrap();
            let init = pod["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for container in containers.iter().chain(init.iter()) {
                let name = container["name"].as_str().unwrap();
                let sc = &container["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}/{name}");
                assert_ne!(sc["privileged"], true, "{what}/{name}");
                let drop: Vec<&str> = sc["capabilities"]["drop"]
                    .as_array()
                    .map(|d| d.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                assert!(
                    drop.contains(&"ALL"),
                    "{what}/{name}: capabilities.drop ALL"
                );
                let add = sc["capabilities"]["add"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    add.iter().all(|c| c == "NET_BIND_SERVICE"),
                    "{what}/{name}: only NET_BIND_SERVICE may be added"
                );
                assert_eq!(
                    pod_or_container(pod, container, "runAsNonRoot"),
                    true,
                    "{what}/{name}"
                );
                let user = pod_or_container(pod, container, "runAsUser");
                assert!(
                    user.as_u64().is_some_and(|u| u > 0),
                    "{what}/{name}: runAsUser {user}"
                );
                assert_eq!(
                    pod_or_container(pod, container, "seccompProfile")["type"],
                    "RuntimeDefault",
                    "{what}/{name}"
                );
                for port in container["ports"].as_array().cloned().unwrap_or_default() {
                    assert!(port["hostPort"].is_null(), "{what}/{name}: hostPort");
                }
                // Not required by the profile, but what each container here is built for.
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}/{name}");
                assert!(
                    container["resources"]["limits"]["memory"].is_string(),
                    "{what}/{name}: a memory limit"
                );
            }
        }
    }
}
