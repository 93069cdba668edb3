//! The repository's provisioning files, read the way Grafana reads them: datasource YAML
//! (`apiVersion: 1`, `datasources`, `deleteDatasources`, `$VAR`/`${VAR}` expansion with `$$` as a
//! literal `$`) and dashboard JSON (one file per dashboard, subfolders become folders).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One datasource as the provisioning file declares it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasourceSpec {
    /// Display name (unique in Grafana).
    pub name: String,
    /// Plugin type: `prometheus`, `loki`, `tempo`, `jaeger`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Stable uid; dashboards and correlations refer to it.
    pub uid: String,
    /// `proxy` (default) or `direct`.
    #[serde(default)]
    pub access: Option<String>,
    /// Backend URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The default datasource.
    #[serde(default)]
    pub is_default: Option<bool>,
    /// Plugin settings (correlations live here).
    #[serde(default)]
    pub json_data: Option<Value>,
    /// Secrets; passed through, never printed.
    #[serde(default)]
    pub secure_json_data: Option<BTreeMap<String, String>>,
    /// Basic auth on.
    #[serde(default)]
    pub basic_auth: Option<bool>,
    /// Basic auth user.
    #[serde(default)]
    pub basic_auth_user: Option<String>,
    /// Database name, for plugins that have one.
    #[serde(default)]
    pub database: Option<String>,
    /// User name, for plugins that have one.
    #[serde(default)]
    pub user: Option<String>,
    /// Send browser credentials.
    #[serde(default)]
    pub with_credentials: Option<bool>,
    /// Whether users may edit it in the UI.
    #[serde(default)]
    pub editable: Option<bool>,
    /// Organisation (default 1).
    #[serde(default)]
    pub org_id: Option<i64>,
    /// Version (ignored: Grafana owns it).
    #[serde(default)]
    pub version: Option<i64>,
}

/// A datasource to delete, by name.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSpec {
    /// The datasource's name.
    pub name: String,
    /// Organisation (default 1).
    #[serde(default)]
    pub org_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DatasourceFile {
    api_version: i64,
    #[serde(default)]
    datasources: Vec<DatasourceSpec>,
    #[serde(default)]
    delete_datasources: Vec<DeleteSpec>,
    #[serde(default)]
    prune: Option<bool>,
}

/// Every datasource file in a directory, merged.
#[derive(Clone, Debug, Default)]
pub struct Datasources {
    /// Declared datasources, with the file each came from.
    pub datasources: Vec<(PathBuf, DatasourceSpec)>,
    /// Datasources to delete.
    pub delete: Vec<(PathBuf, DeleteSpec)>,
}

impl Datasources {
    /// The declared uids.
    pub fn uids(&self) -> BTreeSet<String> {
        self.datasources
            .iter()
            .map(|(_, d)| d.uid.clone())
            .collect()
    }
}

/// Expands `$VAR` and `${VAR}` from `lookup` the way Grafana's provisioning does; `$$` is a
/// literal `$`, and a `$` not followed by a variable name stays as it is. An unset variable
/// expands to the empty string (so `${__value.raw}` must be written `$${__value.raw}`).
pub fn expand_env(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            // Like Grafana, `${…}` is a variable whatever it holds: an unescaped
            // `${__value.raw}` expands to nothing. Write `$${__value.raw}` to keep it.
            match braced.find('}') {
                Some(end) if end > 0 => {
                    out.push_str(&lookup(&braced[..end]).unwrap_or_default());
                    rest = &braced[end + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..end]).unwrap_or_default());
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

fn expand_value(value: &mut serde_yaml_ng::Value, lookup: &dyn Fn(&str) -> Option<String>) {
    match value {
        serde_yaml_ng::Value::String(s) => *s = expand_env(s, lookup),
        serde_yaml_ng::Value::Sequence(items) => {
            items.iter_mut().for_each(|v| expand_value(v, lookup));
        }
        serde_yaml_ng::Value::Mapping(map) => {
            map.iter_mut().for_each(|(_, v)| expand_value(v, lookup));
        }
        serde_yaml_ng::Value::Tagged(tagged) => expand_value(&mut tagged.value, lookup),
        _ => {}
    }
}

fn files_with_extension(dir: &Path, extensions: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot read directory {}", current.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read directory {}", current.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads every `*.yaml`/`*.yml` under `dir`. Errors name the file, and the line where YAML
/// says it.
pub fn load_datasources(
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Datasources> {
    let mut all = Datasources::default();
    let files = files_with_extension(dir, &["yaml", "yml"])?;
    if files.is_empty() {
        bail!(
            "no datasource files (*.yaml) in {} (--datasources / OBS_DATASOURCES)",
            dir.display()
        );
    }
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut raw: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{}: not valid YAML", path.display()))?;
        expand_value(&mut raw, lookup);
        let file: DatasourceFile = serde_yaml_ng::from_value(raw).with_context(|| {
            format!(
                "{}: not a Grafana datasource provisioning file (apiVersion, datasources, deleteDatasources)",
                path.display()
            )
        })?;
        if file.api_version != 1 {
            bail!(
                "{}: apiVersion is {}, Grafana's datasource provisioning format is apiVersion 1",
                path.display(),
                file.api_version
            );
        }
        let _ = file.prune;
        for ds in file.datasources {
            if ds.uid.trim().is_empty() {
                bail!(
                    "{}: datasource {:?} has no uid; give it a stable uid so dashboards can refer to it",
                    path.display(),
                    ds.name
                );
            }
            if let Some((other, _)) = all.datasources.iter().find(|(_, d)| d.uid == ds.uid) {
                bail!(
                    "{}: datasource uid {:?} is also declared in {}",
                    path.display(),
                    ds.uid,
                    other.display()
                );
            }
            all.datasources.push((path.clone(), ds));
        }
        for del in file.delete_datasources {
            all.delete.push((path.clone(), del));
        }
    }
    Ok(all)
}

/// Every `datasourceUid` referenced in a datasource's `jsonData` (correlations).
pub fn referenced_uids(json_data: &Value) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "datasourceUid" {
                        if let Some(uid) = v.as_str() {
                            found.push(uid.to_string());
                        }
                    } else {
                        walk(v, found);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    walk(json_data, &mut found);
    found
}

/// Checks that every correlation points at a declared datasource.
pub fn check_correlations(datasources: &Datasources) -> anyhow::Result<()> {
    let uids = datasources.uids();
    for (path, ds) in &datasources.datasources {
        for uid in ds.json_data.iter().flat_map(referenced_uids) {
            if !uids.contains(&uid) {
                bail!(
                    "{}: datasource {:?} links to datasourceUid {uid:?}, which no datasource file declares (declared: {})",
                    path.display(),
                    ds.uid,
                    uids.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    Ok(())
}

/// A dashboard ready to upload.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its uid.
    pub uid: String,
    /// Its title.
    pub title: String,
    /// The folder (from the subdirectory), `None` for the root.
    pub folder: Option<FolderSpec>,
    /// The JSON to upload (`id` removed, `__inputs` resolved).
    pub json: Value,
}

/// A folder derived from a dashboards subdirectory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FolderSpec {
    /// Stable uid derived from the directory name.
    pub uid: String,
    /// The directory name as title.
    pub title: String,
}

/// Our fixed datasource uid for a plugin type, used to resolve `__inputs` of dashboards
/// exported for sharing.
fn uid_for_plugin(plugin: &str, datasources: &Datasources) -> Option<String> {
    datasources
        .datasources
        .iter()
        .find(|(_, d)| d.kind == plugin)
        .map(|(_, d)| d.uid.clone())
}

const BUILTIN_DATASOURCES: &[&str] =
    &["-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"];

fn folder_uid(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("obs-{}", slug.trim_matches('-'))
}

/// Reads every `*.json` under `dir`, resolving `__inputs` and checking uids and datasource
/// references. Errors name the file and what to fix.
pub fn load_dashboards(
    dir: &Path,
    datasources: &Datasources,
) -> anyhow::Result<Vec<DashboardFile>> {
    let mut dashboards: Vec<DashboardFile> = Vec::new();
    let known_uids = datasources.uids();
    let known_names: BTreeSet<String> = datasources
        .datasources
        .iter()
        .map(|(_, d)| d.name.clone())
        .collect();
    for path in files_with_extension(dir, &["json"])? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        resolve_inputs(&path, &mut json, datasources)?;
        let Some(object) = json.as_object_mut() else {
            bail!("{}: a dashboard must be a JSON object", path.display());
        };
        object.remove("id");
        let uid = object
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "{}: the dashboard has no \"uid\"; add a stable one so links and updates keep working",
                    path.display()
                )
            })?;
        let title = object
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("{}: the dashboard has no \"title\"", path.display()))?;
        if let Some(other) = dashboards.iter().find(|d| d.uid == uid) {
            bail!(
                "{}: dashboard uid {uid:?} is also used by {}",
                path.display(),
                other.path.display()
            );
        }
        check_datasource_refs(&path, &json, &known_uids, &known_names)?;
        let folder = path
            .parent()
            .filter(|parent| *parent != dir)
            .and_then(|parent| parent.strip_prefix(dir).ok())
            .map(|relative| {
                let title = relative.to_string_lossy().replace('\\', "/");
                FolderSpec {
                    uid: folder_uid(&title),
                    title,
                }
            });
        dashboards.push(DashboardFile {
            path,
            uid,
            title,
            folder,
            json,
        });
    }
    Ok(dashboards)
}

/// Maps `${DS_…}` placeholders of a dashboard exported for sharing to our fixed uids.
fn resolve_inputs(path: &Path, json: &mut Value, datasources: &Datasources) -> anyhow::Result<()> {
    let Some(inputs) = json.get("__inputs").and_then(Value::as_array).cloned() else {
        return Ok(());
    };
    let mut replacements = Vec::new();
    for input in &inputs {
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = input
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != "datasource" {
            bail!(
                "{}: __inputs entry {name:?} has type {kind:?}; only datasource inputs can be mapped — replace ${{{name}}} in the file",
                path.display()
            );
        }
        let plugin = input
            .get("pluginId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let uid = uid_for_plugin(plugin, datasources).with_context(|| {
            format!(
                "{}: __inputs entry {name:?} needs a {plugin:?} datasource, and no datasource file declares one",
                path.display()
            )
        })?;
        replacements.push((format!("${{{name}}}"), uid));
    }
    fn replace(value: &mut Value, replacements: &[(String, String)]) {
        match value {
            Value::String(s) => {
                for (from, to) in replacements {
                    if s.contains(from.as_str()) {
                        *s = s.replace(from.as_str(), to);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| replace(v, replacements)),
            Value::Object(map) => map.values_mut().for_each(|v| replace(v, replacements)),
            _ => {}
        }
    }
    replace(json, &replacements);
    if let Some(object) = json.as_object_mut() {
        for key in ["__inputs", "__requires", "__elements"] {
            object.remove(key);
        }
    }
    Ok(())
}

fn check_datasource_refs(
    path: &Path,
    json: &Value,
    known_uids: &BTreeSet<String>,
    known_names: &BTreeSet<String>,
) -> anyhow::Result<()> {
    fn walk(value: &Value, where_: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                let here = panel_name(map).unwrap_or_else(|| where_.to_string());
                for (k, v) in map {
                    if k == "datasource" {
                        match v {
                            Value::Object(ds) => {
                                if let Some(uid) = ds.get("uid").and_then(Value::as_str) {
                                    out.push((here.clone(), uid.to_string()));
                                }
                            }
                            Value::String(name) => out.push((here.clone(), format!("name:{name}"))),
                            _ => {}
                        }
                    } else {
                        walk(v, &here, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, where_, out)),
            _ => {}
        }
    }
    fn panel_name(map: &Map<String, Value>) -> Option<String> {
        map.get("title")
            .and_then(Value::as_str)
            .filter(|_| map.contains_key("type") || map.contains_key("targets"))
            .map(|t| format!("panel {t:?}"))
    }
    let mut refs = Vec::new();
    walk(json, "the dashboard", &mut refs);
    for (where_, reference) in refs {
        if reference.starts_with('$') || BUILTIN_DATASOURCES.contains(&reference.as_str()) {
            continue;
        }
        let ok = match reference.strip_prefix("name:") {
            Some(name) => known_names.contains(name) || name.starts_with('$'),
            None => known_uids.contains(&reference),
        };
        if !ok {
            bail!(
                "{}: {where_} refers to datasource {:?}, which no datasource file declares (known uids: {})",
                path.display(),
                reference.trim_start_matches("name:"),
                known_uids.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("tempo".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_expansion_follows_grafana() {
        assert_eq!(expand_env("http://$HOST:3200", &env), "http://tempo:3200");
        assert_eq!(expand_env("http://${HOST}:3200", &env), "http://tempo:3200");
        assert_eq!(expand_env("a$$b", &env), "a$b");
        assert_eq!(expand_env("$${__value.raw}", &env), "${__value.raw}");
        assert_eq!(expand_env("${__value.raw}", &env), "");
        assert_eq!(expand_env("$UNSET-x", &env), "-x");
        assert_eq!(expand_env("cost: 5$", &env), "cost: 5$");
    }

    #[test]
    fn correlations_and_inputs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ds.yaml"),
            "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    uid: prometheus\n    jsonData:\n      exemplarTraceIdDestinations:\n        - name: trace_id\n          datasourceUid: tempo\n",
        )
        .unwrap();
        let ds = load_datasources(dir.path(), &env).unwrap();
        let err = check_correlations(&ds).unwrap_err().to_string();
        assert!(
            err.contains("\"tempo\"") && err.contains("ds.yaml"),
            "{err}"
        );

        let dashboards = tempfile::tempdir().unwrap();
        std::fs::create_dir(dashboards.path().join("Platform")).unwrap();
        std::fs::write(
            dashboards.path().join("Platform/shared.json"),
            r#"{"__inputs":[{"name":"DS_PROM","type":"datasource","pluginId":"prometheus"}],
               "uid":"u1","title":"Shared","panels":[{"type":"timeseries","title":"p",
               "datasource":{"type":"prometheus","uid":"${DS_PROM}"}}]}"#,
        )
        .unwrap();
        let loaded = load_dashboards(dashboards.path(), &ds).unwrap();
        assert_eq!(
            loaded[0].json["panels"][0]["datasource"]["uid"],
            "prometheus"
        );
        assert!(loaded[0].json.get("__inputs").is_none());
        assert_eq!(
            loaded[0].folder.as_ref().map(|f| f.uid.as_str()),
            Some("obs-platform")
        );

        std::fs::write(
            dashboards.path().join("bad.json"),
            r#"{"uid":"u2","title":"Bad","panels":[{"type":"timeseries","title":"Latency","datasource":{"uid":"prom2"}}]}"#,
        )
        .unwrap();
        let err = load_dashboards(dashboards.path(), &ds)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.json") && err.contains("Latency") && err.contains("prom2"),
            "{err}"
        );
    }
}
