//! The Dockerfile.

use std::collections::BTreeSet;

use crate::support::*;

/// The binaries compose runs from the app image: each service's entrypoint, or obs (the image's).
fn binaries_compose_runs() -> BTreeSet<String> {
    let compose = compose();
    services(&compose)
        .into_iter()
        .filter(|(_, s)| text(&s["build"]["context"]).as_deref() == Some("."))
        .map(|(_, s)| {
            argv(&s["entrypoint"])
                .first()
                .map_or("obs".to_string(), |e| {
                    e.rsplit('/').next().unwrap().to_string()
                })
        })
        .collect()
}

/// The Dockerfile's stages: (FROM line, instructions).
fn dockerfile_stages(text: &str) -> Vec<(String, Vec<String>)> {
    // Join continuation lines, drop comments.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for instruction in instructions {
        if instruction.starts_with("FROM ") {
            stages.push((instruction, Vec::new()));
        } else if let Some(stage) = stages.last_mut() {
            stage.1.push(instruction);
        }
    }
    stages
}

#[test]
fn the_dockerfile_builds_every_binary_compose_runs_with_a_cached_dependency_layer() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile_stages(&dockerfile);
    let mut problems = Vec::new();
    if stages.len() < 2 {
        problems.push("not a multi-stage build".into());
    }
    let runs = binaries_compose_runs();
    assert!(
        runs.contains("obs") && runs.len() == 4,
        "compose runs {runs:?}"
    );
    // Every cargo build builds exactly what compose runs, locked, in release.
    let builds: Vec<&String> = stages
        .iter()
        .flat_map(|(_, i)| i)
        .filter(|i| i.contains("cargo build"))
        .collect();
    if builds.len() < 2 {
        problems.push("expected a dependency build and a source build".into());
    }
    for build in &builds {
        let build = build[build.find("cargo build").unwrap()..]
            .split("&&")
            .next()
            .unwrap()
            .trim();
        let packages: BTreeSet<String> = build
            .split(" -p ")
            .skip(1)
            .map(|p| p.split_whitespace().next().unwrap().to_string())
            .collect();
        if packages != runs {
            problems.push(format!(
                "`{build}` builds {packages:?}, compose runs {runs:?}"
            ));
        }
        if !build.contains("--release") || !build.contains("--locked") {
            problems.push(format!("`{build}` is not --release --locked"));
        }
    }
    // The dependency build runs before the real sources are copied into the same stage.
    let builder = stages
        .iter()
        .find(|(_, i)| i.iter().filter(|l| l.contains("cargo build")).count() == 2)
        .map(|(_, i)| i);
    match builder {
        None => problems.push("no stage builds dependencies, then sources".into()),
        Some(instructions) => {
            let first_build = instructions
                .iter()
                .position(|i| i.contains("cargo build"))
                .unwrap();
            let sources = instructions
                .iter()
                .position(|i| i.starts_with("COPY crates"));
            if sources.is_none_or(|s| s < first_build) {
                problems
                    .push("the sources are copied before the dependency build: no cache".into());
            }
            if !instructions.iter().any(|i| i.contains("touch")) {
                problems.push("the real sources are not touched: cargo may keep the stubs".into());
            }
        }
    }
    // The skeleton covers every workspace member.
    let cargo: toml_like::Members = toml_like::members(&read("Cargo.toml"));
    for member in cargo {
        if !dockerfile.contains(&format!("{member}/Cargo.toml")) {
            problems.push(format!(
                "workspace member {member} has no stub in the Dockerfile"
            ));
        }
    }
    // The runtime stage gets each binary.
    let (from, runtime) = stages.last().unwrap();
    for binary in &runs {
        if !dockerfile.contains(&format!("target/release/{binary}")) {
            problems.push(format!("{binary} is never copied out of the build"));
        }
    }
    if !from.contains("RUNTIME_IMAGE") && !from.contains("slim") && !from.contains("distroless") {
        problems.push(format!("the runtime stage is not a small image: {from}"));
    }
    if !runtime.iter().any(|i| i.starts_with("COPY --from=builder")) {
        problems.push("the runtime stage copies nothing from the builder".into());
    }
    assert_no_problems("Dockerfile", &problems);
}

/// Just enough TOML to read the workspace members.
mod toml_like {
    pub type Members = Vec<String>;

    pub fn members(cargo_toml: &str) -> Members {
        let start = cargo_toml.find("members").expect("workspace members");
        let list = &cargo_toml[start..];
        let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
        list.split(',')
            .map(|m| m.trim().trim_matches('"').to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

#[test]
fn the_app_image_runs_as_non_root_and_healthchecks_obs() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile_stages(&dockerfile);
    let (_, runtime) = stages.last().unwrap();
    let mut problems = Vec::new();
    match runtime.iter().rev().find_map(|i| i.strip_prefix("USER ")) {
        None => problems.push("the runtime stage has no USER: it runs as root".into()),
        Some(user) => {
            let name = user.split(':').next().unwrap().trim();
            if name == "root" || name == "0" {
                problems.push(format!("USER {user} is root"));
            }
        }
    }
    match runtime.iter().find(|i| i.starts_with("HEALTHCHECK")) {
        None => problems.push("no HEALTHCHECK".into()),
        Some(h) if !h.contains("obs\", \"health\"") => {
            problems.push(format!("the HEALTHCHECK does not run `obs health`: {h}"));
        }
        Some(_) => {}
    }
    // obs reads the repository's provisioning files from the image, where OBS_* points.
    for (var, source) in [
        ("OBS_DATASOURCES", "grafana/provisioning/datasources"),
        ("OBS_DASHBOARDS", "dashboards"),
    ] {
        let env = runtime
            .iter()
            .find(|i| i.starts_with("ENV") && i.contains(var))
            .unwrap_or_else(|| panic!("no ENV {var}"));
        let path = env
            .split(&format!("{var}="))
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        if !runtime
            .iter()
            .any(|i| *i == format!("COPY {source} {path}"))
        {
            problems.push(format!("{var}={path}, but {source} is not copied there"));
        }
    }
    // The build context keeps what the build copies.
    let ignored = read(".dockerignore");
    for needed in [
        "crates",
        "examples",
        "tests",
        "grafana",
        "dashboards",
        "stack",
        "Cargo.lock",
    ] {
        if ignored
            .lines()
            .any(|l| l.trim() == needed || l.trim() == format!("{needed}/"))
        {
            problems.push(format!(
                ".dockerignore drops {needed}, which the build copies"
            ));
        }
    }
    assert_no_problems("Dockerfile runtime stage", &problems);
}
