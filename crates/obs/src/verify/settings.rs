//! What one verification needs, validated: built from the raw flags ([`VerifyArgs`]) in one
//! place, so every bad value is a usage error naming its flag and variable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backends::alertmanager::Alertmanager;
use crate::backends::collector::Collector;
use crate::backends::loki::Loki;
use crate::backends::prometheus::Prometheus;
use crate::backends::{Jaeger, StoreUrl, Tempo, UrlError};
use crate::cli::{Format, VerifyArgs};
use crate::connection::{ConnectionError, Connections};

use super::probe::ProbeSettings;

/// The datasource files `obs verify` reads by default, relative to the working directory.
pub const DEFAULT_DATASOURCES: &str = "grafana/provisioning/datasources";

/// Where the stores are; each one is optional and only the given ones are checked.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// Tempo's query frontend.
    pub tempo: Option<Tempo>,
    /// Jaeger's query service.
    pub jaeger: Option<Jaeger>,
    /// Loki.
    pub loki: Option<Loki>,
    /// Prometheus.
    pub prometheus: Option<Prometheus>,
    /// Alertmanager.
    pub alertmanager: Option<Alertmanager>,
}

impl Targets {
    /// True when no store is given: nothing could prove the data arrived.
    pub fn is_empty(&self) -> bool {
        self.tempo.is_none()
            && self.jaeger.is_none()
            && self.loki.is_none()
            && self.prometheus.is_none()
    }
}

/// Whether Grafana's links are checked, from which files, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasourceFiles {
    /// The directory of Grafana datasource provisioning files.
    Dir(PathBuf),
    /// Not checked, and why (reported as skipped checks).
    Skip(String),
}

/// Everything one verification needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The stores.
    pub targets: Targets,
    /// The probe.
    pub probe: ProbeSettings,
    /// Services the `--target` call must add to the trace.
    pub target_services: Vec<String>,
    /// Grafana datasource files, to follow the correlations as Grafana would.
    pub datasources: DatasourceFiles,
    /// Total time allowed.
    pub timeout: Duration,
    /// Per HTTP call.
    pub http_timeout: Duration,
    /// The largest accepted distance between a span's clock and ours.
    pub max_clock_skew: Duration,
    /// The collector's own metrics, read before and after the probe to name the exporter that
    /// dropped it.
    pub collector: Option<Collector>,
    /// How each store is reached: tenant, credentials, headers, TLS.
    pub connections: Connections,
}

/// A verification that cannot start as configured. Exit code 2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// A URL flag is malformed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A store's connection settings conflict, or name a file that cannot be used.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// No store to check.
    #[error(
        "nothing to verify against: give at least one store, --tempo (OBS_TEMPO), --jaeger \
         (OBS_JAEGER), --loki (OBS_LOKI), --prometheus (OBS_PROMETHEUS) or --alertmanager \
         (OBS_ALERTMANAGER); obs verify proves that the probe's data arrives there, the export \
         alone proves nothing"
    )]
    NoStore,
    /// `--datasources` names something that is not a directory.
    #[error(
        "--datasources (OBS_DATASOURCES) {path} is not a directory; name the directory of \
         Grafana's datasource provisioning files, or pass \"\" to skip the link checks"
    )]
    Datasources {
        /// The path given.
        path: String,
    },
    /// An address obs cannot listen on.
    #[error(
        "{flag} {address}: cannot listen there ({why}); give a local address and a free port, e.g. 0.0.0.0:9465"
    )]
    Listen {
        /// The flag and its variable.
        flag: &'static str,
        /// The address given.
        address: std::net::SocketAddr,
        /// Why the bind failed.
        why: String,
    },
    /// The timeout leaves no time to check anything.
    #[error("--timeout (OBS_TIMEOUT) is 0: give the stores time to answer, e.g. 60s")]
    ZeroTimeout,
}

fn store(
    flag: &'static str,
    raw: Option<&String>,
    example: &'static str,
) -> Result<Option<StoreUrl>, UrlError> {
    raw.filter(|r| !r.trim().is_empty())
        .map(|r| StoreUrl::parse(flag, r, example))
        .transpose()
}

/// Where the datasource files are, or why the links are not checked.
pub fn datasource_files(given: Option<&Path>, cwd: &Path) -> Result<DatasourceFiles, UsageError> {
    match given {
        Some(p) if p.as_os_str().is_empty() => Ok(DatasourceFiles::Skip(
            "--datasources \"\" (OBS_DATASOURCES): Grafana's links are not checked".to_string(),
        )),
        Some(p) if p.is_dir() => Ok(DatasourceFiles::Dir(p.to_path_buf())),
        Some(p) => Err(UsageError::Datasources {
            path: p.display().to_string(),
        }),
        None => {
            let default = Path::new(DEFAULT_DATASOURCES);
            if default.is_dir() {
                Ok(DatasourceFiles::Dir(default.to_path_buf()))
            } else {
                Ok(DatasourceFiles::Skip(format!(
                    "the default --datasources {DEFAULT_DATASOURCES} is not a directory in {} \
                     (run obs from the repository, or pass --datasources DIR / OBS_DATASOURCES)",
                    cwd.display()
                )))
            }
        }
    }
}

/// Fails when `address` cannot be bound now (not local, in use, or a privileged port).
pub fn check_listen(flag: &'static str, address: std::net::SocketAddr) -> Result<(), UsageError> {
    std::net::TcpListener::bind(address)
        .map(drop)
        .map_err(|e| UsageError::Listen {
            flag,
            address,
            why: e.to_string(),
        })
}

impl Settings {
    /// Checks the verification flags and turns them into settings.
    pub fn from_args(args: &VerifyArgs) -> Result<(Settings, Format), UsageError> {
        let otlp = store(
            "--otlp-endpoint (OBS_OTLP_ENDPOINT)",
            args.otlp_endpoint.as_ref(),
            "http://collector:4318",
        )?;
        let target = store(
            "--target (OBS_TARGET)",
            args.target.as_ref(),
            "http://gateway:8080/orders/7",
        )?;
        let targets = Targets {
            tempo: store(
                "--tempo (OBS_TEMPO)",
                args.tempo.as_ref(),
                "http://tempo:3200",
            )?
            .map(Tempo::new),
            jaeger: store(
                "--jaeger (OBS_JAEGER)",
                args.jaeger.as_ref(),
                "http://jaeger:16686",
            )?
            .map(Jaeger::new),
            loki: store("--loki (OBS_LOKI)", args.loki.as_ref(), "http://loki:3100")?
                .map(Loki::new),
            prometheus: store(
                "--prometheus (OBS_PROMETHEUS)",
                args.prometheus.as_ref(),
                "http://prometheus:9090",
            )?
            .map(Prometheus::new),
            alertmanager: store(
                "--alertmanager (OBS_ALERTMANAGER)",
                args.alertmanager.as_ref(),
                "http://alertmanager:9093",
            )?
            .map(Alertmanager::new),
        };
        let collector = store(
            "--collector-metrics (OBS_COLLECTOR_METRICS)",
            args.collector_metrics.as_ref(),
            "http://collector:8888/metrics",
        )?
        .map(Collector::new);
        if targets.is_empty() {
            return Err(UsageError::NoStore);
        }
        let connections = args.connections.resolve()?;
        if args.timeout.is_zero() {
            return Err(UsageError::ZeroTimeout);
        }
        if let Some(address) = args.probe_metrics_listen {
            check_listen("--probe-metrics-listen (OBS_PROBE_METRICS_LISTEN)", address)?;
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let datasources = datasource_files(args.datasources.as_deref().map(Path::new), &cwd)?;
        Ok((
            Settings {
                targets,
                probe: ProbeSettings {
                    otlp_endpoint: otlp.map(|_| args.otlp_endpoint.clone().unwrap_or_default()),
                    target: target.map(|_| args.target.clone().unwrap_or_default()),
                    metrics_listen: args.probe_metrics_listen,
                },
                target_services: args.target_services.clone(),
                datasources,
                timeout: args.timeout,
                http_timeout: args.http_timeout,
                max_clock_skew: args.max_clock_skew,
                collector,
                connections,
            },
            args.format,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datasources_default_is_skipped_with_its_reason_when_absent() {
        let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let skipped = datasource_files(None, empty.path());
        // The test runs in crates/obs, where the default relative path does not exist.
        match skipped {
            Ok(DatasourceFiles::Skip(why)) => {
                assert!(
                    why.contains(DEFAULT_DATASOURCES) && why.contains("--datasources"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            datasource_files(Some(Path::new("")), empty.path()),
            Ok(DatasourceFiles::Skip(_))
        ));
        assert_eq!(
            datasource_files(Some(&empty.path().join("nope")), empty.path()),
            Err(UsageError::Datasources {
                path: empty.path().join("nope").display().to_string()
            })
        );
    }
}
