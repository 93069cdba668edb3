//! The Makefile.

use crate::support::*;

#[test]
fn the_makefile_has_the_targets_users_expect() {
    let makefile = read("Makefile");
    let mut problems = Vec::new();
    let recipe = |target: &str| -> Option<String> {
        let start = makefile
            .lines()
            .position(|l| l.starts_with(&format!("{target}:")))?;
        Some(
            makefile
                .lines()
                .skip(start + 1)
                .take_while(|l| l.starts_with('\t'))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    for (target, wanted) in [
        ("up", "up"),
        ("down", "down"),
        ("logs", "logs"),
        ("ps", "ps"),
        ("verify", "obs verify"),
    ] {
        match recipe(target) {
            None => problems.push(format!("no `{target}` target")),
            Some(r)
                if !(r.contains("$(COMPOSE)") || r.contains("docker compose"))
                    || !r.contains(wanted) =>
            {
                problems.push(format!(
                    "`make {target}` does not run docker compose {wanted}: {r:?}"
                ));
            }
            Some(_) => {}
        }
    }
    if !makefile.contains("COMPOSE ?= docker compose") {
        problems.push("COMPOSE is not docker compose (v2)".into());
    }
    let phony = makefile
        .lines()
        .find(|l| l.starts_with(".PHONY:"))
        .unwrap_or_default();
    for target in ["up", "down", "logs", "ps", "verify"] {
        if !phony.split_whitespace().any(|t| t == target) {
            problems.push(format!("{target} is not .PHONY"));
        }
    }
    assert_no_problems("Makefile", &problems);
}
