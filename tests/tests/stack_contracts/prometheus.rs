//! Prometheus.

use crate::listeners::*;
use crate::support::*;

#[test]
fn prometheus_scrapes_the_services_obs_and_the_stack_where_they_listen_with_exemplars() {
    let compose = compose();
    let listeners = listeners(&compose);
    let jobs = scrape_targets();
    let mut problems = Vec::new();
    for (job, service) in [
        ("gateway", "gateway"),
        ("orders", "orders"),
        ("worker", "worker"),
        ("obs", "obs"),
        ("otel-collector", "otel-collector"),
        ("tempo", "tempo"),
        ("loki", "loki"),
    ] {
        match jobs.get(job) {
            None => problems.push(format!("no scrape job {job}")),
            Some(targets)
                if !targets
                    .iter()
                    .any(|t| t.starts_with(&format!("{service}:"))) =>
            {
                problems.push(format!("job {job} scrapes {targets:?}, not {service}"));
            }
            Some(_) => {}
        }
    }
    for (job, targets) in &jobs {
        for target in targets {
            let url = if target.starts_with("localhost:") {
                // Prometheus scraping itself.
                format!("http://{}", target.replace("localhost", "prometheus"))
            } else {
                format!("http://{target}")
            };
            if let Err(e) = reaches(
                &listeners,
                &format!("scrape job {job}"),
                &url,
                &[Proto::Http],
            ) {
                problems.push(e);
            }
        }
    }
    let args = argv(&compose["services"]["prometheus"]["command"]);
    if !args.contains(&"--enable-feature=exemplar-storage".to_string()) {
        problems.push("Prometheus runs without --enable-feature=exemplar-storage".into());
    }
    // Exemplars only travel in OpenMetrics: it must be the preferred protocol if one is set.
    let config = yaml("stack/prometheus/prometheus.yml");
    let protocols = strings(&config["global"]["scrape_protocols"]);
    if protocols
        .first()
        .is_some_and(|p| !p.starts_with("OpenMetricsText"))
    {
        problems.push(format!(
            "scrape_protocols {protocols:?} do not prefer OpenMetrics"
        ));
    }
    assert_no_problems("Prometheus", &problems);
}
