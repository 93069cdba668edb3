#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `obs provision`, run as the binary a user runs, against the Grafana API double
//! (`api-doubles`, following Grafana 12's documented HTTP API), with the repository's own
//! provisioning files.

mod support;

use std::path::{Path, PathBuf};

use std::process::{Command, Output};
use std::time::Duration;
use support::repo;

use api_doubles::grafana::{GrafanaConfig, GrafanaDouble, Role};

const TOKEN: &str = "glsa_test_token_value";

/// A copy of the repository's provisioning files that a test may change.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn shipped() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &repo().join("grafana/provisioning/datasources"),
            &dir.path().join("datasources"),
        );
        copy_dir(&repo().join("dashboards"), &dir.path().join("dashboards"));
        Self { dir }
    }
    fn datasources(&self) -> PathBuf {
        self.dir.path().join("datasources")
    }
    fn dashboards(&self) -> PathBuf {
        self.dir.path().join("dashboards")
    }
    fn dashboard_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.dashboards()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn obs_command(grafana: &str, files: &Files, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_obs"));
    command
        .arg("provision")
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OBS_GRAFANA_URL", grafana)
        .env("OBS_DATASOURCES", files.datasources())
        .env("OBS_DASHBOARDS", files.dashboards())
        .env("OBS_WAIT", "10s")
        .envs(env.iter().copied());
    command
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn obs(grafana: &str, files: &Files, extra: &[&str], env: &[(&str, &str)]) -> Run {
    finish(obs_command(grafana, files, extra, env).output().unwrap())
}

fn token_env() -> [(&'static str, &'static str); 1] {
    [("OBS_GRAFANA_TOKEN", TOKEN)]
}

fn grafana() -> GrafanaDouble {
    GrafanaDouble::start(GrafanaConfig::default().with_token(TOKEN, Role::Admin)).unwrap()
}

fn uids(values: &[serde_json::Value]) -> Vec<String> {
    let mut uids: Vec<String> = values
        .iter()
        .filter_map(|v| v["uid"].as_str().map(str::to_string))
        .collect();
    uids.sort();
    uids
}

#[test]
fn a_fresh_grafana_gets_every_datasource_folder_and_dashboard_then_a_rerun_writes_nothing() {
    let grafana = grafana();
    let files = Files::shipped();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        uids(&grafana.datasources()),
        ["alertmanager", "jaeger", "loki", "prometheus", "tempo"]
    );
    let dashboards = grafana.dashboards();
    assert_eq!(dashboards.len(), files.dashboard_files().len(), "{run:?}");
    assert!(
        dashboards
            .iter()
            .all(|d| d["folderUid"] == "obs-platform" || d["meta"]["folderUid"] == "obs-platform"),
        "dashboards live in the folder of their directory: {dashboards:#?}"
    );
    assert!(run.stdout.contains("datasources: 5 created"), "{run:?}");
    assert!(run.stdout.contains("Save & test"), "{run:?}");

    let writes_after_first = grafana.writes().len();
    let again = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(
        grafana.writes().len(),
        writes_after_first,
        "the second run wrote: {again:?}"
    );
    assert!(
        again.stdout.contains("datasources: 5 unchanged"),
        "{again:?}"
    );
    assert!(!again.stdout.contains("created"), "{again:?}");
}

#[test]
fn changing_one_dashboard_updates_only_that_dashboard_in_its_folder() {
    let grafana = grafana();
    let files = Files::shipped();
    assert_eq!(obs(grafana.url(), &files, &[], &token_env()).code, Some(0));
    let before = grafana.writes().len();

    let path = &files.dashboard_files()[0];
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let uid = json["uid"].as_str().unwrap().to_string();
    json["description"] = "changed by a test".into();
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();

    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    let writes: Vec<_> = grafana.writes().into_iter().skip(before).collect();
    assert_eq!(writes.len(), 1, "exactly one write: {writes:?}");
    assert_eq!(writes[0].path, "/api/dashboards/db");
    assert!(
        run.stdout.contains(&uid) && run.stdout.contains("updated (content)"),
        "{run:?}"
    );
    let stored = grafana
        .dashboards()
        .into_iter()
        .find(|d| d.to_string().contains(&uid))
        .unwrap();
    assert!(stored.to_string().contains("changed by a test"));
    assert!(
        stored.to_string().contains("obs-platform"),
        "kept in its folder: {stored}"
    );
}

#[test]
fn dry_run_reports_what_would_change_and_writes_nothing_nor_prints_secrets() {
    let grafana = grafana();
    let files = Files::shipped();
    let secret_file = files.datasources().join("secret.yaml");
    std::fs::write(
        &secret_file,
        "apiVersion: 1\ndatasources:\n  - name: Secured\n    type: prometheus\n    uid: secured\n    url: http://secured:9090\n    basicAuth: true\n    basicAuthUser: reader\n    secureJsonData:\n      basicAuthPassword: ${SECURED_PASSWORD}\n",
    )
    .unwrap();
    let env = [
        ("OBS_GRAFANA_TOKEN", TOKEN),
        ("SECURED_PASSWORD", "pa55-w0rd-xyz"),
    ];
    let run = obs(grafana.url(), &files, &["--dry-run"], &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(grafana.writes().is_empty());
    assert!(run.stdout.contains("would be created"), "{run:?}");

    let run = obs(grafana.url(), &files, &[], &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        grafana.secure_json_data("secured").unwrap()["basicAuthPassword"],
        "pa55-w0rd-xyz",
        "the secret reached Grafana, expanded from the environment"
    );
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("pa55-w0rd-xyz") && !output.contains(TOKEN));
    }
}

#[test]
fn prune_removes_only_dashboards_obs_uploaded_that_left_the_files() {
    let grafana = grafana();
    let files = Files::shipped();
    let extra = files.dashboards().join("platform/extra.json");
    std::fs::write(
        &extra,
        r#"{"uid":"extra-dash","title":"Extra","schemaVersion":41,"panels":[]}"#,
    )
    .unwrap();
    assert_eq!(obs(grafana.url(), &files, &[], &token_env()).code, Some(0));
    // A dashboard a user saved in Grafana (not tagged by obs).
    assert!(ureq_like_post(
        grafana.url(),
        "/api/dashboards/db",
        &serde_json::json!({"dashboard": {"uid":"someone-elses","title":"Theirs","panels":[]}})
    ));
    std::fs::remove_file(&extra).unwrap();

    let run = obs(grafana.url(), &files, &["--prune"], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    let left = grafana
        .dashboards()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!left.contains("extra-dash"), "pruned: {run:?}");
    assert!(left.contains("someone-elses"), "not ours, kept");
    assert!(
        run.stdout.contains("extra-dash") && run.stdout.contains("deleted"),
        "{run:?}"
    );
}

#[test]
fn two_runs_at_once_leave_no_duplicates() {
    let grafana = grafana();
    let files = Files::shipped();
    let a = obs_command(
        grafana.url(),
        &files,
        &["--skip-health-check"],
        &token_env(),
    )
    .spawn()
    .unwrap();
    let b = obs_command(
        grafana.url(),
        &files,
        &["--skip-health-check"],
        &token_env(),
    )
    .spawn()
    .unwrap();
    let (a, b) = (
        finish(a.wait_with_output().unwrap()),
        finish(b.wait_with_output().unwrap()),
    );
    assert_eq!(a.code, Some(0), "{a:?}");
    assert_eq!(b.code, Some(0), "{b:?}");
    assert_eq!(
        uids(&grafana.datasources()),
        ["alertmanager", "jaeger", "loki", "prometheus", "tempo"]
    );
    assert_eq!(grafana.dashboards().len(), files.dashboard_files().len());
    assert_eq!(grafana.folders().len(), 1);
}

#[test]
fn auth_failures_name_the_credential_never_its_value() {
    let grafana = grafana();
    let files = Files::shipped();
    let run = obs(grafana.url(), &files, &[], &[]);
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stderr.contains("no credentials"), "{run:?}");

    let token_file = files.dir.path().join("token");
    std::fs::write(&token_file, "glsa_wrong_token_abc\n").unwrap();
    let token_path = token_file.display().to_string();
    let run = obs(
        grafana.url(),
        &files,
        &[],
        &[("OBS_GRAFANA_TOKEN_FILE", token_path.as_str())],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stderr.contains(&token_path), "{run:?}");
    assert!(
        !run.stderr.contains("glsa_wrong_token_abc")
            && !run.stdout.contains("glsa_wrong_token_abc")
    );

    let viewer =
        GrafanaDouble::start(GrafanaConfig::default().with_token("viewer-token", Role::Viewer))
            .unwrap();
    let run = obs(
        viewer.url(),
        &files,
        &[],
        &[("OBS_GRAFANA_TOKEN", "viewer-token")],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stderr.contains("permission"), "{run:?}");

    let run = obs(
        grafana.url(),
        &files,
        &[],
        &[
            ("OBS_GRAFANA_USER", "admin"),
            ("OBS_GRAFANA_PASSWORD", "admin"),
        ],
    );
    assert_eq!(run.code, Some(0), "basic auth works: {run:?}");
}

#[test]
fn a_grafana_that_starts_late_and_migrates_is_waited_for() {
    let files = Files::shipped();
    let port = api_doubles::reserve_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let child = obs_command(&url, &files, &["--skip-health-check"], &token_env())
        .spawn()
        .unwrap();
    // Grafana is not listening yet: obs is refused, backs off, and keeps trying.
    std::thread::sleep(Duration::from_millis(700));
    let grafana = GrafanaDouble::start_on(
        port,
        GrafanaConfig::default()
            .with_token(TOKEN, Role::Admin)
            .with_health_unavailable_calls(2),
    )
    .unwrap();
    let run = finish(child.wait_with_output().unwrap());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(grafana.datasources().len(), 5);
}

#[test]
fn a_grafana_that_never_comes_up_fails_naming_the_url_and_the_last_error() {
    let files = Files::shipped();
    let port = api_doubles::reserve_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let run = obs(
        &url,
        &files,
        &[],
        &[("OBS_WAIT", "1s"), ("OBS_GRAFANA_TOKEN", TOKEN)],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stderr.contains(&format!("{url}/api/health")), "{run:?}");
    assert!(run.stderr.contains("connection refused"), "{run:?}");
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let grafana = grafana();
    let files = Files::shipped();
    // Health first (not counted), then the datasource list fails twice.
    assert_eq!(
        obs(grafana.url(), &files, &["--dry-run"], &token_env()).code,
        Some(0)
    );
    grafana.fail_next(2, 500);
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(grafana.datasources().len(), 5);
}

#[test]
fn file_provisioned_datasources_are_compared_and_never_written() {
    let grafana = grafana();
    let files = Files::shipped();
    grafana
        .add_provisioned_datasource(serde_json::json!({
            "uid": "loki", "name": "Loki", "type": "loki", "url": "http://elsewhere:3100", "access": "proxy"
        }))
        .unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("managed by file provisioning"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("drift in") && run.stdout.contains("url"),
        "{run:?}"
    );
    assert!(
        grafana
            .writes()
            .iter()
            .all(|w| !w.path.contains("/uid/loki"))
    );
}

#[test]
fn a_name_taken_under_another_uid_is_reported_with_both_uids_and_the_fix() {
    let grafana = grafana();
    let files = Files::shipped();
    let body = serde_json::json!({"uid": "old-prom", "name": "Prometheus", "type": "prometheus", "url": "http://x:9090", "access": "proxy"});
    // Created through the API, as a user clicking in Grafana would.
    let created = ureq_like_post(grafana.url(), "/api/datasources", &body);
    assert!(created, "fixture datasource created");
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("\"old-prom\"") && run.stdout.contains("\"prometheus\""),
        "{run:?}"
    );
    assert_eq!(
        grafana
            .datasources()
            .iter()
            .filter(|d| d["name"] == "Prometheus")
            .count(),
        1,
        "no duplicate"
    );
}

/// Creates an object through the double's API as an admin, the way a user clicking would.
fn ureq_like_post(base: &str, path: &str, body: &serde_json::Value) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
}

#[test]
fn bad_files_and_flags_are_usage_errors_that_name_the_file() {
    let grafana = grafana();
    let files = Files::shipped();
    std::fs::write(
        files.dashboards().join("platform/broken.json"),
        "{ \"uid\": ",
    )
    .unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("broken.json"), "{run:?}");
    std::fs::remove_file(files.dashboards().join("platform/broken.json")).unwrap();

    std::fs::write(
        files.datasources().join("bad.yaml"),
        "apiVersion: 1\ndatasources:\n  - name: [unclosed\n",
    )
    .unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("bad.yaml") && run.stderr.contains("line"),
        "{run:?}"
    );
    std::fs::remove_file(files.datasources().join("bad.yaml")).unwrap();

    let run = obs("grafana:3000", &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("OBS_GRAFANA_URL"), "{run:?}");
    assert!(grafana.writes().is_empty());
}

#[test]
fn a_title_taken_by_another_dashboard_is_a_clear_conflict() {
    let grafana = grafana();
    let files = Files::shipped();
    assert_eq!(obs(grafana.url(), &files, &[], &token_env()).code, Some(0));
    // Same title, same folder, new uid: Grafana answers 412 name-exists.
    let path = &files.dashboard_files()[0];
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let title = json["title"].as_str().unwrap().to_string();
    json["uid"] = "renamed-uid".into();
    std::fs::write(path, serde_json::to_string(&json).unwrap()).unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "a different dashboard titled {title:?} already exists"
        )),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains(&path.file_name().unwrap().to_string_lossy().to_string()),
        "{run:?}"
    );
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, json: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(json).unwrap()).unwrap();
}

#[test]
fn a_forbidden_write_stops_the_run_like_a_forbidden_read_naming_the_credential() {
    let grafana = grafana();
    let files = Files::shipped();
    let extra = files.dashboards().join("platform/extra.json");
    write_json(
        &extra,
        &serde_json::json!({"uid": "extra-dash", "title": "Extra", "panels": []}),
    );
    assert_eq!(obs(grafana.url(), &files, &[], &token_env()).code, Some(0));
    std::fs::remove_file(&extra).unwrap();
    // The token may read, but not delete this dashboard (Grafana's 403 access-denied body).
    grafana.fail_next_on("DELETE", "/api/dashboards/uid/", 1, 403);
    let run = obs(grafana.url(), &files, &["--prune"], &token_env());
    assert_eq!(run.code, Some(4), "the auth exit code: {run:?}");
    assert!(
        run.stderr.contains("dashboards:delete")
            && run.stderr.contains("--grafana-token / OBS_GRAFANA_TOKEN"),
        "names the permission and the credential's source: {run:?}"
    );
    assert!(!run.stderr.contains(TOKEN) && !run.stdout.contains(TOKEN));

    // A datasource update refused with 403 stops the run in the same way.
    let ds = files.datasources().join("datasources.yaml");
    let text = std::fs::read_to_string(&ds).unwrap();
    std::fs::write(
        &ds,
        text.replace("http://loki:3100", "http://loki.example:3100"),
    )
    .unwrap();
    grafana.fail_next_on("PUT", "/api/datasources/uid/loki", 1, 403);
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(run.stderr.contains("datasources:write"), "{run:?}");

    // A token revoked mid-run (401 on a write) too.
    grafana.fail_next_on("PUT", "/api/datasources/uid/loki", 1, 401);
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(
        run.stderr
            .contains("rejected the service-account token from --grafana-token"),
        "{run:?}"
    );
}

#[test]
fn a_grafana_served_under_a_path_prefix_is_provisioned_there() {
    let grafana = GrafanaDouble::start(
        GrafanaConfig::default()
            .with_token(TOKEN, Role::Admin)
            .with_sub_path("/grafana"),
    )
    .unwrap();
    let files = Files::shipped();
    let with_slash = format!("{}/", grafana.url());
    let run = obs(&with_slash, &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        uids(&grafana.datasources()),
        ["alertmanager", "jaeger", "loki", "prometheus", "tempo"]
    );
    assert_eq!(grafana.dashboards().len(), files.dashboard_files().len());
    assert!(
        run.stdout.contains("Save & test") && !run.stdout.contains("FAILED"),
        "{run:?}"
    );
    let again = obs(grafana.url(), &files, &["--prune"], &token_env());
    assert_eq!(
        again.code,
        Some(0),
        "without the trailing slash too: {again:?}"
    );
    assert!(
        again.stdout.contains(&format!(
            "dashboards: {} unchanged",
            files.dashboard_files().len()
        )),
        "{again:?}"
    );
}

#[test]
fn uids_grafana_would_refuse_are_usage_errors_naming_file_field_and_fix() {
    let grafana = grafana();
    let files = Files::shipped();
    let ds = files.datasources().join("datasources.yaml");
    let shipped = std::fs::read_to_string(&ds).unwrap();
    std::fs::write(&ds, shipped.replacen("uid: loki", "uid: loki/logs", 1)).unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("datasources.yaml")
            && run.stderr.contains("uid \"loki/logs\" contains '/'")
            && run.stderr.contains("'-' or '_'"),
        "{run:?}"
    );
    std::fs::write(&ds, &shipped).unwrap();

    let path = files.dashboard_files()[0].clone();
    let mut json = json_file(&path);
    let long = "d".repeat(41);
    json["uid"] = long.clone().into();
    write_json(&path, &json);
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&path.display().to_string())
            && run.stderr.contains("\"uid\"")
            && run.stderr.contains("41 characters")
            && run.stderr.contains("at most 40"),
        "{run:?}"
    );
    assert!(
        grafana.requests().is_empty(),
        "refused before Grafana is contacted"
    );
}

#[test]
fn two_dashboard_directories_that_become_one_folder_are_an_error_naming_both() {
    let grafana = grafana();
    let files = Files::shipped();
    let other = files.dashboards().join("Platform!");
    std::fs::create_dir(&other).unwrap();
    write_json(
        &other.join("x.json"),
        &serde_json::json!({"uid": "x-dash", "title": "X", "panels": []}),
    );
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    let platform = files.dashboards().join("platform").display().to_string();
    assert!(
        run.stderr.contains(&platform)
            && run.stderr.contains(&other.display().to_string())
            && run.stderr.contains("\"obs-platform\"")
            && run.stderr.contains("rename one"),
        "{run:?}"
    );
    assert!(grafana.writes().is_empty());
}

#[cfg(unix)]
#[test]
fn the_dashboards_walk_survives_a_symlink_loop_and_bounds_size_and_depth() {
    let grafana = grafana();
    let files = Files::shipped();
    // platform/loop → platform: walking it naively finds every dashboard again and again.
    std::os::unix::fs::symlink(
        files.dashboards().join("platform"),
        files.dashboards().join("platform/loop"),
    )
    .unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(grafana.dashboards().len(), files_in_platform(&files));

    let big = files.dashboards().join("platform/big.json");
    let padding = "x".repeat(10 * 1024 * 1024);
    std::fs::write(
        &big,
        format!(r#"{{"uid":"big","title":"Big","description":"{padding}"}}"#),
    )
    .unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains(&big.display().to_string()) && run.stderr.contains("10 MiB"),
        "{run:?}"
    );
    std::fs::remove_file(&big).unwrap();

    let mut deep = files.dashboards().join("platform");
    for level in 0..9 {
        deep = deep.join(format!("d{level}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    let run = obs(grafana.url(), &files, &[], &token_env());
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("nested more than 8 directories"),
        "{run:?}"
    );
}

fn files_in_platform(files: &Files) -> usize {
    std::fs::read_dir(files.dashboards().join("platform"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count()
}

#[test]
fn a_changed_secret_reaches_grafana_and_an_unchanged_one_writes_nothing() {
    let grafana = grafana();
    let files = Files::shipped();
    std::fs::write(
        files.datasources().join("secret.yaml"),
        "apiVersion: 1\ndatasources:\n  - name: Secured\n    type: prometheus\n    uid: secured\n    url: http://secured:9090\n    basicAuth: true\n    basicAuthUser: reader\n    secureJsonData:\n      basicAuthPassword: ${SECURED_PASSWORD}\n",
    )
    .unwrap();
    let with =
        |password: &'static str| [("OBS_GRAFANA_TOKEN", TOKEN), ("SECURED_PASSWORD", password)];
    assert_eq!(
        obs(grafana.url(), &files, &[], &with("first-pass-111")).code,
        Some(0)
    );
    let stored = grafana
        .datasources()
        .into_iter()
        .find(|d| d["uid"] == "secured")
        .unwrap();
    assert_eq!(stored["secureJsonFields"]["basicAuthPassword"], true);
    assert!(
        !stored.to_string().contains("first-pass-111"),
        "Grafana shows no secret, and neither does the digest: {stored}"
    );

    let before = grafana.writes().len();
    let run = obs(grafana.url(), &files, &[], &with("second-pass-222"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        grafana.secure_json_data("secured").unwrap()["basicAuthPassword"],
        "second-pass-222",
        "the changed secret reached Grafana: {run:?}"
    );
    assert!(run.stdout.contains("updated (secureJsonData)"), "{run:?}");
    assert_eq!(grafana.writes().len(), before + 1, "one write: {run:?}");
    assert!(!run.stdout.contains("second-pass-222") && !run.stderr.contains("second-pass-222"));

    let before = grafana.writes().len();
    let run = obs(grafana.url(), &files, &[], &with("second-pass-222"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        grafana.writes().len(),
        before,
        "unchanged secret, no write: {run:?}"
    );
}

#[test]
fn check_validates_every_file_offline_and_lists_every_problem() {
    let files = Files::shipped();
    // Nothing listens here, and no credentials are given: --check needs neither.
    let nowhere = format!("http://127.0.0.1:{}", api_doubles::reserve_port().unwrap());
    let run = obs(&nowhere, &files, &["--check"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("5 datasources")
            && run
                .stdout
                .contains(&format!("{} dashboards", files.dashboard_files().len())),
        "{run:?}"
    );

    let dashboards = files.dashboard_files();
    std::fs::write(&dashboards[0], "{ \"uid\": ").unwrap();
    let mut json = json_file(&dashboards[1]);
    json["uid"] = "has space".into();
    write_json(&dashboards[1], &json);
    let mut json = json_file(&dashboards[2]);
    json["panels"] = serde_json::json!([
        {"type": "timeseries", "title": "A", "datasource": {"uid": "nope-1"}},
        {"type": "timeseries", "title": "B", "datasource": {"uid": "nope-2"}}
    ]);
    write_json(&dashboards[2], &json);
    let run = obs(&nowhere, &files, &["--check"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    for expected in [
        dashboards[0].display().to_string(),
        "not valid JSON".to_string(),
        dashboards[1].display().to_string(),
        "\"has space\" contains ' '".to_string(),
        "\"nope-1\"".to_string(),
        "\"nope-2\"".to_string(),
        "4 problem(s)".to_string(),
    ] {
        assert!(run.stderr.contains(&expected), "{expected}: {run:?}");
    }
}

#[test]
fn credentials_in_the_url_are_used_and_never_shown() {
    let grafana = GrafanaDouble::start(
        GrafanaConfig::default().with_basic_auth(Some(("admin", "url-pa55word"))),
    )
    .unwrap();
    let files = Files::shipped();
    let with_userinfo = grafana
        .url()
        .replacen("http://", "http://admin:url-pa55word@", 1);
    let run = obs(&with_userinfo, &files, &[], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("user:password in --grafana-url (OBS_GRAFANA_URL)")
            && !run.stdout.contains("no credentials"),
        "{run:?}"
    );
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("url-pa55word"), "{run:?}");
    }

    let wrong = grafana
        .url()
        .replacen("http://", "http://admin:wr0ng-pw@", 1);
    let run = obs(&wrong, &files, &[], &[]);
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(
        run.stderr.contains("user:password in --grafana-url")
            && !run.stderr.contains("no credentials"),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("wr0ng-pw") && !run.stdout.contains("wr0ng-pw"),
        "{run:?}"
    );

    // Nor when Grafana never answers.
    let port = api_doubles::reserve_port().unwrap();
    let down = format!("http://admin:d0wn-pw@127.0.0.1:{port}");
    let run = obs(&down, &files, &[], &[("OBS_WAIT", "1s")]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        !run.stderr.contains("d0wn-pw") && !run.stdout.contains("d0wn-pw"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("http://127.0.0.1:{port}/api/health")),
        "{run:?}"
    );
}

#[test]
fn something_that_is_not_grafanas_api_is_named_as_such() {
    // An auth proxy's sign-in page: 200 and HTML for every path.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        let page = || async { axum::response::Html("<html><body>Sign in</body></html>") };
        let app = axum::Router::new().fallback(page);
        let _ = axum::serve(listener, app).await;
    });
    let files = Files::shipped();
    let run = obs(&url, &files, &[], &[("OBS_WAIT", "1s")]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.contains(&format!("{url}/api/health"))
            && run.stderr.contains("not as Grafana's HTTP API documents"),
        "{run:?}"
    );
}
