#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `cargo run -p demo`, run as a user runs it: no Docker, no backends.

use std::collections::BTreeSet;
use std::process::Command;

/// The demo binary with `args`, in a clean environment (PATH only), as a user runs it.
fn demo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn the_demo_exits_0_and_prints_one_trace_across_three_services() {
    let output = demo(&["--requests", "2"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Trace "))
        .expect("a trace tree");
    let trace_id = lines[start]
        .trim_start_matches("Trace ")
        .trim_end_matches(':');
    assert_eq!(trace_id.len(), 32);
    let tree: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect();
    let services: BTreeSet<&str> = tree
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["gateway", "orders", "worker"]),
        "{stdout}"
    );
    assert_eq!(tree.len(), 5, "five spans under one root: {stdout}");
    assert!(
        tree[0].starts_with("  gateway"),
        "the gateway span is the root: {stdout}"
    );
    assert!(
        tree.last().unwrap().contains("process orders.viewed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("order event processed"),
        "the worker's log line is in the trace: {stdout}"
    );
    assert_eq!(stdout.matches("PASS trace").count(), 2, "{stdout}");
}

#[test]
fn help_teaches_the_demo_and_documents_its_exit_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--requests",
        "--keep",
        "DEMO_REQUESTS",
        "--database-url",
        "DATABASE_URL",
        "--redis-url",
        "REDIS_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "0  every check passed",
        "1  a check failed",
        "2  usage error",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error_with_exit_code_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--requests", "0"],
        &["--requests", "many"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(args)
            .env_remove("DEMO_REQUESTS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--requests") || stderr.contains("--no-such-flag"),
            "{stderr}"
        );
    }
}

/// The tree of the first trace the demo printed: one line per span, indented by depth.
fn first_tree(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Trace "))
        .expect("a trace tree");
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|l| l.to_string())
        .collect()
}

#[tokio::test]
async fn with_a_real_postgresql_and_redis_the_trace_shows_their_spans_under_orders() {
    let (_postgres, postgres_url, _dir) = test_servers::start_postgres().await;
    let (_redis, redis_url) = test_servers::start_redis().await;
    let run = || {
        demo(&["--requests", "2", "--database-url", &postgres_url])
            // From the environment, as compose's users set it.
            .env("REDIS_URL", &redis_url)
            .output()
            .unwrap()
    };

    // Cold cache: Redis GET, PostgreSQL SELECT and Redis SET, children of orders' request span.
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("orders (Redis 127.0.0.1:") && stdout.contains(", PostgreSQL 127.0.0.1:"),
        "the services line names the stores: {stdout}"
    );
    assert!(!stdout.contains("a stand-in"), "{stdout}");
    let tree = first_tree(&stdout);
    let orders_server = tree
        .iter()
        .find(|l| l.trim_start().starts_with("orders") && l.contains("GET /orders/{id}"))
        .unwrap_or_else(|| panic!("no orders request span: {stdout}"));
    let depth = |line: &str| line.len() - line.trim_start().len();
    for span in ["GET ", "SELECT orders", "SET "] {
        let line = tree
            .iter()
            .find(|l| {
                l.trim_start().starts_with("orders") && l.contains(span) && !l.contains("/orders/")
            })
            .unwrap_or_else(|| panic!("no orders {span:?} span in the tree: {stdout}"));
        assert!(
            depth(line) > depth(orders_server),
            "{span:?} is under orders' request span: {stdout}"
        );
    }
    assert_eq!(stdout.matches("PASS trace").count(), 2, "{stdout}");
    // No credential is printed.
    assert!(!stdout.contains("postgres://"), "{stdout}");

    // Warm cache: the same orders come from Redis; no query.
    let output = run();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let tree = first_tree(&stdout);
    assert!(
        tree.iter().all(|l| !l.contains("SELECT orders")),
        "a cache hit queries nothing: {stdout}"
    );
}

#[test]
fn without_stores_the_demo_says_orders_runs_on_a_stand_in() {
    let output = demo(&["--requests", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("orders (orders in memory, no cache) → "),
        "{stdout}"
    );
    assert!(stdout.contains("a stand-in"), "{stdout}");
}
