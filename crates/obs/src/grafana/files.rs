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

/// The largest provisioning file (YAML or JSON) obs reads: 10 MiB. Grafana's own dashboards are
/// far smaller; a bigger file is almost always embedded data or the wrong file.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// How many directory levels below `--datasources` / `--dashboards` are walked.
pub const MAX_DEPTH: usize = 8;

/// Grafana's longest uid (`util.MaxUIDLength`).
pub const MAX_UID_LEN: usize = 40;

/// What is wrong with `uid` by Grafana's rule (`util.ValidateUID`: at most 40 characters, only
/// `a-z A-Z 0-9 - _`), with the fix; `None` when it is fine. obs also refuses an empty uid:
/// Grafana would make one up, and links and updates would break.
pub fn uid_problem(uid: &str) -> Option<String> {
    let rule = "Grafana allows at most 40 characters, each a letter, digit, '-' or '_'";
    if uid.is_empty() {
        return Some(format!(
            "is empty; give it a stable uid ({rule}) so links and updates keep working"
        ));
    }
    if uid.len() > MAX_UID_LEN {
        return Some(format!(
            "{uid:?} is {} characters long; {rule}: shorten it",
            uid.len()
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    uid.chars()
        .find(|c| !legal(*c))
        .map(|bad| format!("{uid:?} contains {bad:?}; {rule}: replace it (for example with '-')"))
}

/// The files under `dir` with one of `extensions`, sorted, and the problems met on the way.
/// Symbolic links are followed, but a directory already walked (a link loop, or two links to
/// one place) is walked once; hidden entries (`.name`, such as the `..data` of a Kubernetes
/// ConfigMap volume) are skipped; directories deeper than [`MAX_DEPTH`] are a problem.
fn files_with_extension(dir: &Path, extensions: &[&str]) -> (Vec<PathBuf>, Vec<anyhow::Error>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![(dir.to_path_buf(), 0_usize)];
    while let Some((current, depth)) = stack.pop() {
        let canonical = std::fs::canonicalize(&current).unwrap_or_else(|_| current.clone());
        if !visited.insert(canonical) {
            continue;
        }
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(anyhow::anyhow!(
                    "cannot read directory {}: {e}",
                    current.display()
                ));
                continue;
            }
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    problems.push(anyhow::anyhow!(
                        "cannot read directory {}: {e}",
                        current.display()
                    ));
                    continue;
                }
            };
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e));
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    if depth + 1 > MAX_DEPTH {
                        problems.push(anyhow::anyhow!(
                            "{}: nested more than {MAX_DEPTH} directories below {}; move its files up",
                            path.display(),
                            dir.display()
                        ));
                    } else {
                        stack.push((path, depth + 1));
                    }
                }
                Ok(meta) if wanted && !meta.is_file() => problems.push(anyhow::anyhow!(
                    "{}: not a regular file; provisioning files must be plain files",
                    path.display()
                )),
                Ok(_) if wanted => found.push(path),
                Ok(_) => {}
                // A dangling or looping link: a problem only where a file was expected.
                Err(e) if wanted => {
                    problems.push(anyhow::anyhow!("cannot read {}: {e}", path.display()))
                }
                Err(_) => {}
            }
        }
    }
    found.sort();
    (found, problems)
}

/// The text of `path`, refusing more than [`MAX_FILE_BYTES`].
fn read_capped(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let too_big = |size: u64| {
        anyhow::anyhow!(
            "{}: {size} bytes, more than the {} MiB obs reads from one provisioning file; split it or remove embedded data",
            path.display(),
            MAX_FILE_BYTES / (1024 * 1024)
        )
    };
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(too_big(size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))
}

/// One datasource file: its datasources, deletions and problems.
fn read_datasource_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<DatasourceFile> {
    let text = read_capped(path)?;
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
    Ok(file)
}

/// Every datasource file under `dir`, and every problem found in them (not only the first).
pub fn scan_datasources(
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (Datasources, Vec<anyhow::Error>) {
    let mut all = Datasources::default();
    let (files, mut problems) = files_with_extension(dir, &["yaml", "yml"]);
    if files.is_empty() && problems.is_empty() {
        problems.push(anyhow::anyhow!(
            "no datasource files (*.yaml) in {} (--datasources / OBS_DATASOURCES)",
            dir.display()
        ));
    }
    for path in files {
        let file = match read_datasource_file(&path, lookup) {
            Ok(file) => file,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let _ = file.prune;
        for ds in file.datasources {
            if let Some(problem) = uid_problem(&ds.uid) {
                problems.push(anyhow::anyhow!(
                    "{}: datasource {:?}: uid {problem}",
                    path.display(),
                    ds.name
                ));
                continue;
            }
            if ds.json_data.as_ref().is_some_and(|j| !j.is_object()) {
                problems.push(anyhow::anyhow!(
                    "{}: datasource {:?}: jsonData must be a mapping of settings (key: value)",
                    path.display(),
                    ds.uid
                ));
                continue;
            }
            if let Some((other, _)) = all.datasources.iter().find(|(_, d)| d.uid == ds.uid) {
                problems.push(anyhow::anyhow!(
                    "{}: datasource uid {:?} is also declared in {}",
                    path.display(),
                    ds.uid,
                    other.display()
                ));
                continue;
            }
            all.datasources.push((path.clone(), ds));
        }
        for del in file.delete_datasources {
            all.delete.push((path.clone(), del));
        }
    }
    (all, problems)
}

/// Reads every `*.yaml`/`*.yml` under `dir`. Errors name the file, and the line where YAML
/// says it; the first problem is the error (see [`scan_datasources`] for all of them).
pub fn load_datasources(
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Datasources> {
    let (all, problems) = scan_datasources(dir, lookup);
    match problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(all),
    }
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

/// Every correlation that points at an undeclared datasource.
pub fn correlation_problems(datasources: &Datasources) -> Vec<anyhow::Error> {
    let uids = datasources.uids();
    let mut problems = Vec::new();
    for (path, ds) in &datasources.datasources {
        for uid in ds.json_data.iter().flat_map(referenced_uids) {
            if !uids.contains(&uid) {
                problems.push(anyhow::anyhow!(
                    "{}: datasource {:?} links to datasourceUid {uid:?}, which no datasource file declares (declared: {})",
                    path.display(),
                    ds.uid,
                    uids.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    problems
}

/// Checks that every correlation points at a declared datasource.
pub fn check_correlations(datasources: &Datasources) -> anyhow::Result<()> {
    match correlation_problems(datasources).into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
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

/// One dashboard file, checked; `check_refs` off skips the datasource references (when the
/// datasource files could not all be read).
fn read_dashboard(
    dir: &Path,
    path: &Path,
    datasources: &Datasources,
    check_refs: bool,
) -> Result<DashboardFile, Vec<anyhow::Error>> {
    let one = |e: anyhow::Error| vec![e];
    let text = read_capped(path).map_err(one)?;
    let mut json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))
        .map_err(one)?;
    resolve_inputs(path, &mut json, datasources).map_err(one)?;
    let Some(object) = json.as_object_mut() else {
        return Err(one(anyhow::anyhow!(
            "{}: a dashboard must be a JSON object",
            path.display()
        )));
    };
    object.remove("id");
    let uid = object
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut problems = Vec::new();
    if let Some(problem) = uid_problem(&uid) {
        problems.push(anyhow::anyhow!(
            "{}: the dashboard's \"uid\" {problem}",
            path.display()
        ));
    }
    let title = object
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string);
    if title.is_none() {
        problems.push(anyhow::anyhow!(
            "{}: the dashboard has no \"title\"; add one (Grafana requires it)",
            path.display()
        ));
    }
    if check_refs {
        let known_uids = datasources.uids();
        let known_names: BTreeSet<String> = datasources
            .datasources
            .iter()
            .map(|(_, d)| d.name.clone())
            .collect();
        problems.extend(datasource_ref_problems(
            path,
            &json,
            &known_uids,
            &known_names,
        ));
    }
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
    if let Some(folder) = &folder
        && folder.uid.len() > MAX_UID_LEN
    {
        problems.push(anyhow::anyhow!(
            "{}: its directory {:?} becomes folder uid {:?}, {} characters; Grafana allows at most {MAX_UID_LEN}: shorten the directory name",
            path.display(),
            folder.title,
            folder.uid,
            folder.uid.len()
        ));
    }
    match (problems.is_empty(), title) {
        (true, Some(title)) => Ok(DashboardFile {
            path: path.to_path_buf(),
            uid,
            title,
            folder,
            json,
        }),
        _ => Err(problems),
    }
}

/// Every `*.json` under `dir`, resolving `__inputs` and checking uids, folders and datasource
/// references, and every problem found (not only the first).
pub fn scan_dashboards(
    dir: &Path,
    datasources: &Datasources,
    check_refs: bool,
) -> (Vec<DashboardFile>, Vec<anyhow::Error>) {
    let mut dashboards: Vec<DashboardFile> = Vec::new();
    let (files, mut problems) = files_with_extension(dir, &["json"]);
    // Folder uid → the directory (relative title) that first produced it.
    let mut folder_dirs: BTreeMap<String, String> = BTreeMap::new();
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for path in files {
        let dashboard = match read_dashboard(dir, &path, datasources, check_refs) {
            Ok(d) => d,
            Err(found) => {
                problems.extend(found);
                continue;
            }
        };
        if let Some(other) = dashboards.iter().find(|d| d.uid == dashboard.uid) {
            problems.push(anyhow::anyhow!(
                "{}: dashboard uid {:?} is also used by {}; give one of them another uid",
                path.display(),
                dashboard.uid,
                other.path.display()
            ));
            continue;
        }
        if let Some(folder) = &dashboard.folder {
            let first = folder_dirs
                .entry(folder.uid.clone())
                .or_insert_with(|| folder.title.clone());
            if *first != folder.title {
                if reported.insert((first.clone(), folder.title.clone())) {
                    problems.push(anyhow::anyhow!(
                        "the dashboard directories {} and {} both become folder uid {:?} (obs- and the name with every other character than a-z and 0-9 as '-', lower-cased); rename one of them",
                        dir.join(first.as_str()).display(),
                        dir.join(&folder.title).display(),
                        folder.uid
                    ));
                }
                continue;
            }
        }
        dashboards.push(dashboard);
    }
    (dashboards, problems)
}

/// Reads every `*.json` under `dir`, resolving `__inputs` and checking uids and datasource
/// references. Errors name the file and what to fix; the first problem is the error (see
/// [`scan_dashboards`] for all of them).
pub fn load_dashboards(
    dir: &Path,
    datasources: &Datasources,
) -> anyhow::Result<Vec<DashboardFile>> {
    let (dashboards, problems) = scan_dashboards(dir, datasources, true);
    match problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(dashboards),
    }
}

/// What `obs provision --check` found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Valid datasources.
    pub datasources: usize,
    /// Valid dashboards.
    pub dashboards: usize,
    /// Every problem, each naming its file and the fix.
    pub problems: Vec<String>,
}

/// Validates every datasource and dashboard file offline, collecting every problem. When a
/// datasource file is broken, dashboards' datasource references are not checked (they would
/// all look unknown); the problems list says so.
pub fn check(
    datasources_dir: &Path,
    dashboards_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Checked {
    let (datasources, mut problems) = scan_datasources(datasources_dir, lookup);
    let datasources_ok = problems.is_empty();
    problems.extend(correlation_problems(&datasources));
    let (dashboards, dashboard_problems) =
        scan_dashboards(dashboards_dir, &datasources, datasources_ok);
    problems.extend(dashboard_problems);
    let mut problems: Vec<String> = problems.iter().map(|e| format!("{e:#}")).collect();
    if !datasources_ok {
        problems.push(format!(
            "dashboards' datasource references were not checked: fix the datasource files in {} first",
            datasources_dir.display()
        ));
    }
    Checked {
        datasources: datasources.datasources.len(),
        dashboards: dashboards.len(),
        problems,
    }
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

fn datasource_ref_problems(
    path: &Path,
    json: &Value,
    known_uids: &BTreeSet<String>,
    known_names: &BTreeSet<String>,
) -> Vec<anyhow::Error> {
    let mut problems = Vec::new();
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
            problems.push(anyhow::anyhow!(
                "{}: {where_} refers to datasource {:?}, which no datasource file declares (known uids: {})",
                path.display(),
                reference.trim_start_matches("name:"),
                known_uids.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    problems
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
