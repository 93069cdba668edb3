#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The compose file configures obs only through variables the binary really reads.

mod support;

use std::process::Command;

#[test]
fn every_obs_variable_in_compose_is_a_flag_of_the_command_compose_runs() {
    let compose = support::repo().join("docker-compose.yml");
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
    let obs = &yaml["services"]["obs"];
    let command: Vec<String> = obs["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let help = Command::new(env!("CARGO_BIN_EXE_obs"))
        .args(&command)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "obs {command:?} --help failed");
    let help = String::from_utf8_lossy(&help.stdout);
    let variables: Vec<String> = obs["environment"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| k.starts_with("OBS_"))
        .map(str::to_string)
        .collect();
    assert!(variables.len() > 5, "{variables:?}");
    for variable in variables {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "obs {command:?} does not read {variable}"
        );
    }
    let health = &obs["healthcheck"]["test"];
    let health: Vec<&str> = health
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(health.last(), Some(&"health"), "{health:?}");
}
