//! Documentation: stack/README.md's ports table.

use std::collections::BTreeSet;

use crate::support::*;

/// The rows of stack/README.md's ports table: (service, variable, default host port, container
/// port).
fn documented_ports() -> BTreeSet<(String, String, u16, u16)> {
    let readme = read("stack/README.md");
    let section = readme
        .split("## Ports")
        .nth(1)
        .expect("stack/README.md has a ## Ports section");
    let section = section.split("\n## ").next().unwrap();
    let tick = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let service = tick(cells[1]).first().cloned().unwrap();
        let host = tick(cells[2]);
        let container = tick(cells[3]);
        assert_eq!(host.len(), 2, "host cell `VAR` = `port` in {line}");
        out.insert((
            service,
            host[0].clone(),
            host[1].parse().unwrap(),
            container[0].parse().unwrap(),
        ));
    }
    out
}

#[test]
fn the_ports_documented_in_stack_readme_match_compose() {
    let documented = documented_ports();
    let published: BTreeSet<(String, String, u16, u16)> = published_ports(&compose_raw())
        .into_iter()
        .map(|p| {
            let (var, default) = p.host_variable.unwrap_or_default();
            assert_eq!(default.parse::<u16>().ok(), Some(p.host));
            (p.service, var, p.host, p.container)
        })
        .collect();
    let mut problems = Vec::new();
    for row in documented.difference(&published) {
        problems.push(format!(
            "stack/README.md documents {row:?}, compose does not publish it"
        ));
    }
    for row in published.difference(&documented) {
        problems.push(format!(
            "compose publishes {row:?}, stack/README.md does not document it"
        ));
    }
    assert_no_problems("ports table", &problems);
}
