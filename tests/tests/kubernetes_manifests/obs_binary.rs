//! The `obs` binary the workspace builds (`target/<profile>/obs`, next to this test's own
//! executable), and what `obs sidecar --help` says it reads.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::kube::repo_root;

pub fn path() -> PathBuf {
    // target/<profile>/deps/kubernetes_manifests-<hash> → target/<profile>/obs
    let exe = std::env::current_exe().unwrap();
    let obs = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("obs"))
        .unwrap();
    let built = std::fs::metadata(&obs)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it first: cargo build -p obs --locked",
                obs.display()
            )
        });
    let newest = newest_source(&repo_root().join("crates/obs/src"));
    assert!(
        built >= newest,
        "{} is older than crates/obs/src: rebuild it (cargo build -p obs --locked)",
        obs.display()
    );
    obs
}

fn newest_source(dir: &std::path::Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_source(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(time);
    }
    newest
}

/// `obs sidecar --help`, the command the Deployment runs.
pub fn sidecar_help() -> &'static str {
    static HELP: OnceLock<String> = OnceLock::new();
    HELP.get_or_init(|| {
        let output = Command::new(path())
            .args(["sidecar", "--help"])
            .output()
            .unwrap();
        assert!(output.status.success(), "obs sidecar --help failed");
        String::from_utf8(output.stdout).unwrap()
    })
}

/// Whether `obs sidecar` has a flag read from `variable`.
pub fn reads(variable: &str) -> bool {
    sidecar_help().contains(&format!("[env: {variable}="))
        || sidecar_help().contains(&format!("[env: {variable}]"))
}
