#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Damaged provisioning files: the shipped datasource YAML and dashboard JSON, cut short, with a
//! line replaced by anything, or with bytes inserted. Loading them never panics; it either
//! succeeds (the damage was harmless) or fails with an error that names the damaged file.
//! Plus the classic hostile inputs: a YAML alias bomb and JSON nested beyond any parser's stack.
//!
//! Inputs tried per run: 512 datasource files, 512 dashboard files, 1024 `expand_env` strings
//! (`PROPTEST_CASES` changes all three).

mod support;

use std::path::Path;

use std::time::{Duration, Instant};
use support::repo;

use obs::grafana::files::{Datasources, expand_env, load_dashboards, load_datasources};
use proptest::prelude::*;

fn shipped_datasources() -> String {
    std::fs::read_to_string(repo().join("grafana/provisioning/datasources/datasources.yaml"))
        .unwrap()
}

fn shipped_dashboard() -> String {
    std::fs::read_to_string(repo().join("dashboards/platform/service-overview.json")).unwrap()
}

/// Every variable the compose file sets for the sidecar has a value, as in the stack.
fn lookup(_name: &str) -> Option<String> {
    Some("http://backend:1234".to_string())
}

fn real_datasources() -> Datasources {
    load_datasources(&repo().join("grafana/provisioning/datasources"), &lookup).unwrap()
}

/// One way to damage a text file.
#[derive(Clone, Debug)]
enum Damage {
    /// Keep only the first `at` per mille of the bytes.
    Truncate { at: u16 },
    /// Replace line `line` (modulo the line count) with `text`.
    ReplaceLine { line: usize, text: String },
    /// Insert raw bytes (maybe not UTF-8) at `at` per mille.
    Insert { at: u16, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0_u16..1000).prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), any::<String>())
            .prop_map(|(line, text)| Damage::ReplaceLine { line, text }),
        (any::<usize>(), "[ -~]{0,40}").prop_map(|(line, text)| Damage::ReplaceLine { line, text }),
        (0_u16..1000, proptest::collection::vec(any::<u8>(), 1..32))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
    ]
}

fn apply(text: &str, damage: &Damage) -> Vec<u8> {
    let bytes = text.as_bytes();
    let cut = |per_mille: u16| bytes.len() * usize::from(per_mille) / 1000;
    match damage {
        Damage::Truncate { at } => bytes[..cut(*at)].to_vec(),
        Damage::ReplaceLine { line, text: new } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let n = line % lines.len();
            lines[n] = new;
            lines.join("\n").into_bytes()
        }
        Damage::Insert { at, bytes: extra } => {
            let mut out = bytes.to_vec();
            let at = cut(*at);
            out.splice(at..at, extra.iter().copied());
            out
        }
    }
}

/// `result` is fine, or its error (with causes) names `file`.
fn ok_or_names_the_file<T>(result: anyhow::Result<T>, file: &Path) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        let message = format!("{error:#}");
        prop_assert!(
            message.contains(&file.display().to_string()),
            "the error does not name {}: {message}",
            file.display()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_damaged_datasource_file_loads_or_fails_naming_the_file(damage in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("datasources.yaml");
        std::fs::write(&file, apply(&shipped_datasources(), &damage)).unwrap();
        ok_or_names_the_file(load_datasources(dir.path(), &lookup), &file)?;
    }

    #[test]
    fn a_damaged_dashboard_loads_or_fails_naming_the_file(damage in damage()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("service-overview.json");
        std::fs::write(&file, apply(&shipped_dashboard(), &damage)).unwrap();
        ok_or_names_the_file(load_dashboards(dir.path(), &real_datasources()), &file)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `$$` always survives as `$`, and a one-character value never makes the text longer.
    #[test]
    fn expand_env_never_panics_and_keeps_escaped_dollars(input in any::<String>()) {
        let expanded = expand_env(&input, &|_| Some("X".to_string()));
        prop_assert!(expanded.len() <= input.len(), "{input:?} -> {expanded:?}");
        let escaped = format!("$${input}");
        prop_assert!(expand_env(&escaped, &|_| None).starts_with('$'));
    }
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly_naming_the_file() {
    // Nine levels of nine aliases each: 387 million strings if expanded.
    let mut yaml = String::from("apiVersion: 1\na0: &a0 [\"lol\"]\n");
    for level in 1..10 {
        let refs = vec![format!("*a{}", level - 1); 9].join(", ");
        yaml.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    yaml.push_str("datasources: *a9\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, yaml).unwrap();
    let started = Instant::now();
    let error = load_datasources(dir.path(), &lookup).unwrap_err();
    assert!(
        format!("{error:#}").contains(&file.display().to_string()),
        "{error:#}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn json_nested_a_million_deep_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.json");
    let depth = 1_000_000;
    std::fs::write(&file, format!("{}{}", "[".repeat(depth), "]".repeat(depth))).unwrap();
    let error = load_dashboards(dir.path(), &real_datasources()).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("deep.json") && message.contains("not valid JSON"),
        "{message}"
    );
}

#[test]
fn yaml_nested_a_million_deep_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.yaml");
    let depth = 1_000_000;
    std::fs::write(&file, format!("{}{}", "[".repeat(depth), "]".repeat(depth))).unwrap();
    let error = load_datasources(dir.path(), &lookup).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("deep.yaml") && message.contains("not valid YAML"),
        "{message}"
    );
}
