//! The shipped `obs` binary must not link the example services (gateway, orders, worker and
//! the NATS client worker pulls in) or the test OTLP receiver: those live in `examples/demo`.
//! Asked of cargo itself, offline, from the lock file.

use std::path::Path;
use std::process::Command;

#[test]
fn obs_normal_dependencies_hold_no_example_service_nor_the_test_receiver() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "obs", "-e", "normal", "--prefix", "none"])
        .args([
            "--format",
            "{p}",
            "--offline",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => panic!("cannot run cargo tree: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let packages: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The tree is real (obs and what it does use are in it), so an empty answer cannot pass.
    for present in ["obs", "platform-telemetry", "reqwest"] {
        assert!(
            packages.contains(&present),
            "{present} missing from:\n{stdout}"
        );
    }
    for absent in [
        "gateway",
        "orders",
        "worker",
        "async-nats",
        "otlp-receiver",
        "demo",
    ] {
        assert!(
            !packages.contains(&absent),
            "obs links {absent}; move what needs it to examples/demo:\n{stdout}"
        );
    }
}
