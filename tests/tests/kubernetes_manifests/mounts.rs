//! A container's ConfigMap and Secret volumes, written to a temporary directory the way the
//! kubelet mounts them: each key a symlink to `..data/<key>`, `..data` a symlink to a hidden,
//! timestamped directory holding the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kube::{Rendered, data};

/// The mounted volumes of one container.
pub struct Mounts {
    _root: tempfile::TempDir,
    /// mountPath in the container → its directory here, longest mount path first.
    pub paths: Vec<(String, PathBuf)>,
    /// mountPath → the keys of the Secret mounted there (empty for ConfigMaps).
    pub secret_keys: BTreeMap<String, Vec<String>>,
}

impl Mounts {
    /// Where `path` (a path inside the container) is here, if it lies in a mounted volume.
    pub fn resolve(&self, path: &str) -> Option<PathBuf> {
        self.paths.iter().find_map(|(mount, local)| {
            let rest = path.strip_prefix(mount.as_str())?;
            match rest.strip_prefix('/') {
                Some(rest) => Some(local.join(rest)),
                None if rest.is_empty() => Some(local.clone()),
                None => None,
            }
        })
    }
}

/// Writes the ConfigMap and Secret volumes `container` mounts (emptyDirs become empty
/// directories).
pub fn mount(rendered: &Rendered, pod_spec: &Value, container: &Value) -> Mounts {
    let root = tempfile::tempdir().unwrap();
    let volumes = pod_spec["volumes"].as_array().cloned().unwrap_or_default();
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    let mut secret_keys = BTreeMap::new();
    let mut mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Outer mounts first: a mount below another one is a directory inside it, as in the pod.
    mounts.sort_by_key(|m| m["mountPath"].as_str().unwrap_or_default().len());
    for (i, mount) in mounts.iter().enumerate() {
        let name = mount["name"].as_str().expect("volumeMount name");
        let mount_path = mount["mountPath"].as_str().expect("mountPath").to_string();
        assert!(
            mount["subPath"].is_null(),
            "{name}: subPath is not modelled here"
        );
        let volume = volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volumeMount {name} names no volume of the pod"));
        let parent = paths.iter().rev().find_map(|(outer, local)| {
            let rest = mount_path.strip_prefix(outer.as_str())?.strip_prefix('/')?;
            Some(local.join(rest))
        });
        let local = parent.unwrap_or_else(|| root.path().join(format!("mount-{i}")));
        std::fs::create_dir_all(&local).unwrap();
        let source = if let Some(cm) = volume["configMap"]["name"].as_str() {
            Some(rendered.named("ConfigMap", cm))
        } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
            let secret = rendered.named("Secret", secret);
            secret_keys.insert(
                mount_path.clone(),
                data(secret).into_iter().map(|(k, _)| k).collect(),
            );
            Some(secret)
        } else {
            assert!(
                volume["emptyDir"].is_object(),
                "volume {name}: only configMap, secret and emptyDir are modelled"
            );
            None
        };
        if let Some(source) = source {
            assert!(
                volume["configMap"]["items"].is_null() && volume["secret"]["items"].is_null(),
                "volume {name}: items are not modelled"
            );
            write_atomic_layout(&local, &data(source));
        }
        paths.push((mount_path, local));
    }
    paths.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    Mounts {
        _root: root,
        paths,
        secret_keys,
    }
}

fn write_atomic_layout(dir: &Path, files: &[(String, String)]) {
    let stamp = dir.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&stamp).unwrap();
    for (key, text) in files {
        std::fs::write(stamp.join(key), text).unwrap();
    }
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", dir.join("..data")).unwrap();
    for (key, _) in files {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
}
