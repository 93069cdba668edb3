//! Rendering the kustomizations and reading the rendered objects.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

/// The two kustomizations under `deploy/kubernetes/`.
pub const BASE: &str = "deploy/kubernetes/base";
pub const MULTI_TENANT: &str = "deploy/kubernetes/overlays/multi-tenant";
pub const KUSTOMIZATIONS: [&str; 2] = [BASE, MULTI_TENANT];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

/// One rendered kustomization: its YAML text and its objects.
pub struct Rendered {
    pub dir: &'static str,
    pub yaml: String,
    pub objects: Vec<Value>,
}

impl Rendered {
    /// The object of `kind` named `name` (for a generated ConfigMap, `name` is the generator's
    /// name: the hash suffix is ignored).
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name).unwrap_or_else(|| {
            panic!(
                "{}: no {kind} {name}; it renders {:?}",
                self.dir,
                self.objects.iter().map(describe).collect::<Vec<_>>()
            )
        })
    }

    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| {
            o["kind"] == kind && {
                let n = o["metadata"]["name"].as_str().unwrap_or_default();
                n == name || strip_hash(n) == name
            }
        })
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The ConfigMap or Secret an `envFrom`/volume reference names (exact rendered name).
    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: {kind} {name} is referenced but not rendered", self.dir))
    }
}

/// `obs-settings-m5g2bg8b69` → `obs-settings` (kustomize's 10-character hash suffix).
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, hash))
            if hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => name,
    }
}

pub fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Renders `dir` with `kubectl kustomize` once per test binary.
pub fn rendered(dir: &'static str) -> &'static Rendered {
    static BASE_RENDER: OnceLock<Rendered> = OnceLock::new();
    static OVERLAY_RENDER: OnceLock<Rendered> = OnceLock::new();
    let cell = match dir {
        BASE => &BASE_RENDER,
        MULTI_TENANT => &OVERLAY_RENDER,
        other => panic!("unknown kustomization {other}"),
    };
    cell.get_or_init(|| render(dir))
}

fn render(dir: &'static str) -> Rendered {
    // The base generates ConfigMaps from grafana/provisioning/ and dashboards/, outside its own
    // directory: kustomize refuses that unless the load restrictor is lifted.
    let output = Command::new("kubectl")
        .args([
            "kustomize",
            "--load-restrictor",
            "LoadRestrictionsNone",
            dir,
        ])
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): install it (scripts/test.sh does) to render {dir}")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).expect("kubectl prints UTF-8");
    let objects = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{dir} renders bad YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect::<Vec<_>>();
    assert!(objects.len() > 5, "{dir} renders only {objects:?}");
    Rendered { dir, yaml, objects }
}

/// A Deployment's single container named like the Deployment.
pub fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("Deployment {name} has no container {name}"))
}

/// The data of a ConfigMap or Secret as text (`data`, base64 for Secrets, and `stringData`).
pub fn data(object: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let secret = object["kind"] == "Secret";
    if let Some(map) = object["data"].as_object() {
        for (k, v) in map {
            let v = v.as_str().unwrap_or_default();
            let v = if secret {
                base64_decode(v)
            } else {
                v.to_string()
            };
            out.push((k.clone(), v));
        }
    }
    if let Some(map) = object["stringData"].as_object() {
        for (k, v) in map {
            out.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
        }
    }
    out.sort();
    out
}

fn base64_decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for b in text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
    {
        let v = ALPHABET.iter().position(|a| *a == b).expect("base64") as u32;
        bits = (bits << 6) | v;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8(out).expect("UTF-8 secret")
}

/// How many dashboards the repository ships (JSON files under dashboards/, any depth).
pub fn shipped_dashboards() -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                if p.is_dir() {
                    count(&p)
                } else {
                    usize::from(p.extension().is_some_and(|e| e == "json"))
                }
            })
            .sum()
    }
    count(&repo_root().join("dashboards"))
}
