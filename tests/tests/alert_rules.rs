#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The alert rules in `stack/prometheus/rules/`, checked with the real tools: `promtool check
//! rules` accepts every file, `promtool test rules` proves each alert fires on its fault at its
//! `for:` and stays quiet on healthy series, and every alert carries what a person paged needs
//! (severity, summary, description, a runbook that exists and says how to confirm and fix).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn rule_files() -> Vec<PathBuf> {
    files(&repo().join("stack/prometheus/rules"), ".yml")
}

fn test_files() -> Vec<PathBuf> {
    files(&repo().join("stack/prometheus/rules/tests"), ".test.yml")
}

fn promtool(args: &[&str], files: &[PathBuf]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .args(files)
        .output()
        .expect("promtool is not installed: run scripts/test.sh (apt-get install prometheus)")
}

fn yaml(path: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every alerting rule: (file, rule).
fn alerts() -> Vec<(PathBuf, serde_yaml_ng::Value)> {
    let mut alerts = Vec::new();
    for file in rule_files() {
        for group in yaml(&file)["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                if rule.get("alert").is_some() {
                    alerts.push((file.clone(), rule.clone()));
                }
            }
        }
    }
    alerts
}

#[test]
fn promtool_accepts_every_rule_file() {
    let files = rule_files();
    assert!(files.len() >= 4, "{files:?}");
    let out = promtool(&["check", "rules"], &files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_alert_fires_on_its_fault_and_not_on_healthy_series() {
    let out = promtool(&["test", "rules"], &test_files());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each alert is expected to fire somewhere, and (but the always-firing Watchdog) expected
    // quiet somewhere: a rule tested only one way proves half of what it should.
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for file in test_files() {
        for test in yaml(&file)["tests"].as_sequence().unwrap() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_string();
                if case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|a| !a.is_empty())
                {
                    fires.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    for (_, alert) in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(fires.contains(name), "no promtool test shows {name} firing");
        if name != "Watchdog" {
            assert!(
                quiet.contains(name),
                "no promtool test shows {name} staying quiet"
            );
        }
    }
}

#[test]
fn every_alert_says_how_bad_what_where_and_links_a_runbook_that_exists() {
    let alerts = alerts();
    assert!(alerts.len() >= 14, "{}", alerts.len());
    let mut names = BTreeSet::new();
    for (file, alert) in &alerts {
        let name = alert["alert"].as_str().unwrap();
        let at = format!("{name} in {}", file.display());
        assert!(
            names.insert(name.to_string()),
            "{at}: a second alert of that name"
        );
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "none"].contains(&severity),
            "{at}: severity {severity:?}"
        );
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{at}: no {annotation}"
            );
        }
        let expr = alert["expr"].as_str().unwrap();
        let description = alert["annotations"]["description"].as_str().unwrap();
        if expr.contains("by (job") {
            assert!(
                description.contains("$labels.job"),
                "{at}: the description names the job it is about"
            );
        }
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert_eq!(runbook, format!("docs/runbooks/{name}.md"), "{at}");
        let text = std::fs::read_to_string(repo().join(runbook))
            .unwrap_or_else(|e| panic!("{at}: runbook {runbook}: {e}"));
        for section in [
            "## What it means",
            "## How to confirm it",
            "## Likely causes",
            "## Fixes",
        ] {
            assert!(text.contains(section), "{runbook}: no {section:?}");
        }
        if name != "Watchdog" {
            assert!(
                text.contains("obs verify") || text.contains("/status") || text.contains("PromQL"),
                "{runbook}: says how to confirm it"
            );
        }
    }
    for page in files(&repo().join("docs/runbooks"), ".md") {
        let stem = page.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            stem == "README" || names.contains(&stem),
            "{}: a runbook for no alert",
            page.display()
        );
    }
}
