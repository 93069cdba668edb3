//! A container's environment as the kubelet builds it: `envFrom` first, then `env` in order,
//! `$(VAR)` expanded from what is already defined (`$$` a literal `$`), the downward API
//! answered for a pod of our choosing.

use serde_json::Value;

use crate::kube::{Rendered, data};

/// The pod the kubelet would describe through the downward API.
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node: String,
    pub ip: String,
}

impl Pod {
    pub fn of(deployment: &Value) -> Pod {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        Pod {
            name: format!("{name}-7c9d8f6b5-x2x4q"),
            namespace: deployment["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_string(),
            uid: "0f5e5b8e-3c1a-4d8e-9a57-6b1f0c2d9e41".to_string(),
            node: "node-pool-a-1".to_string(),
            ip: "10.42.0.17".to_string(),
        }
    }

    fn field(&self, path: &str) -> String {
        match path {
            "metadata.name" => self.name.clone(),
            "metadata.namespace" => self.namespace.clone(),
            "metadata.uid" => self.uid.clone(),
            "spec.nodeName" => self.node.clone(),
            "status.podIP" => self.ip.clone(),
            other => panic!("fieldRef {other} is not modelled"),
        }
    }
}

/// A resolved environment: name, value, and where the value came from.
pub type Env = Vec<(String, String, Source)>;

/// Where a variable came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    ConfigMap(String),
    Secret(String),
    Env,
}

/// The environment of `container`, in the order the kubelet defines it (later wins).
pub fn resolve(rendered: &Rendered, container: &Value, pod: &Pod) -> Env {
    let mut env: Env = Vec::new();
    let set = |env: &mut Env, k: String, v: String, s: Source| {
        env.retain(|(name, _, _)| *name != k);
        env.push((k, v, s));
    };
    for from in container["envFrom"].as_array().cloned().unwrap_or_default() {
        assert!(from["prefix"].is_null(), "envFrom prefix is not modelled");
        let (object, source) = if let Some(name) = from["configMapRef"]["name"].as_str() {
            (
                rendered.named("ConfigMap", name),
                Source::ConfigMap(name.to_string()),
            )
        } else if let Some(name) = from["secretRef"]["name"].as_str() {
            (
                rendered.named("Secret", name),
                Source::Secret(name.to_string()),
            )
        } else {
            panic!("envFrom {from}: neither configMapRef nor secretRef");
        };
        for (k, v) in data(object) {
            set(&mut env, k, v, source.clone());
        }
    }
    for entry in container["env"].as_array().cloned().unwrap_or_default() {
        let name = entry["name"].as_str().expect("env name").to_string();
        let (value, source) = if let Some(value) = entry["value"].as_str() {
            (expand(value, &env), Source::Env)
        } else if let Some(path) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            (pod.field(path), Source::Env)
        } else if let Some(key) = entry["valueFrom"]["secretKeyRef"].as_object() {
            let secret = key["name"].as_str().unwrap();
            let wanted = key["key"].as_str().unwrap();
            let value = data(rendered.named("Secret", secret))
                .into_iter()
                .find(|(k, _)| k == wanted)
                .unwrap_or_else(|| panic!("{name}: Secret {secret} has no key {wanted}"))
                .1;
            (value, Source::Secret(secret.to_string()))
        } else if entry["value"].is_null() && entry.get("valueFrom").is_none() {
            (String::new(), Source::Env)
        } else {
            panic!("env {name}: {entry} is not modelled");
        };
        set(&mut env, name, value, source);
    }
    env
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// left as written, `$$` is a single `$`.
pub fn expand(value: &str, defined: &[(String, String, Source)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match defined.iter().find(|(k, _, _)| k == name) {
                Some((_, v, _)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub fn value<'a>(env: &'a [(String, String, Source)], name: &str) -> Option<&'a str> {
    env.iter()
        .find(|(k, _, _)| k == name)
        .map(|(_, v, _)| v.as_str())
}

#[test]
fn expansion_follows_kubernetes() {
    let defined = vec![("A".to_string(), "x".to_string(), Source::Env)];
    assert_eq!(expand("k=$(A),u=$(B),$$(A)", &defined), "k=x,u=$(B),$(A)");
}
