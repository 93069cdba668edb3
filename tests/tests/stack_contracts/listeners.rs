//! Who listens where, from each component's own config.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value as Yaml;

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Proto {
    /// A plain HTTP server (APIs, /metrics, health, OTLP on a backend's HTTP server).
    Http,
    /// An OTLP/HTTP receiver.
    OtlpHttp,
    /// An OTLP/gRPC receiver.
    OtlpGrpc,
    /// Another gRPC server.
    Grpc,
    /// NATS client protocol.
    Nats,
    /// PostgreSQL frontend/backend protocol.
    Postgres,
    /// RESP, Redis's protocol.
    Redis,
}

/// A listener: its port, protocol, bind address, and where it was declared.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) port: u16,
    pub(crate) proto: Proto,
    pub(crate) bind: String,
    pub(crate) source: String,
}

pub(crate) fn host_port(endpoint: &str) -> Option<(String, u16)> {
    let without_scheme = endpoint.split("://").last()?;
    let authority = without_scheme.split('/').next()?;
    // `user:password@host:port`: the port is after the credentials.
    let authority = authority.rsplit('@').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

pub(crate) fn listener(endpoint: &str, proto: Proto, source: &str) -> Listener {
    let (bind, port) = host_port(endpoint)
        .unwrap_or_else(|| panic!("{source}: listen address {endpoint:?} has no host:port"));
    Listener {
        port,
        proto,
        bind,
        source: source.to_string(),
    }
}

/// The OTLP receiver endpoints of a collector-style config (the collector, Tempo, Jaeger).
pub(crate) fn otlp_receivers(otlp: &Yaml, source: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for (protocol, proto) in [("grpc", Proto::OtlpGrpc), ("http", Proto::OtlpHttp)] {
        let block = &otlp["protocols"][protocol];
        if block.is_null()
            && !otlp["protocols"]
                .as_mapping()
                .is_some_and(|m| m.contains_key(Yaml::String(protocol.to_string())))
        {
            continue;
        }
        let endpoint = text(&block["endpoint"]).unwrap_or_else(|| {
            panic!("{source}: the OTLP {protocol} receiver has no explicit endpoint (the default is localhost)")
        });
        out.push(listener(
            &endpoint,
            proto,
            &format!("{source} receivers.otlp.protocols.{protocol}"),
        ));
    }
    out
}

/// `service.telemetry.metrics.readers[].pull.exporter.prometheus` of a collector-style config.
pub(crate) fn telemetry_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    config["service"]["telemetry"]["metrics"]["readers"]
        .as_sequence()
        .map(|readers| {
            readers
                .iter()
                .filter_map(|r| {
                    let prom = &r["pull"]["exporter"]["prometheus"];
                    let host = text(&prom["host"])?;
                    let port = text(&prom["port"])?;
                    Some(listener(
                        &format!("{host}:{port}"),
                        Proto::Http,
                        &format!("{source} service.telemetry.metrics"),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn collector_listeners(config: &Yaml) -> Vec<Listener> {
    let mut out = otlp_receivers(&config["receivers"]["otlp"], COLLECTOR);
    if let Some(endpoint) = text(&config["extensions"]["health_check"]["endpoint"]) {
        out.push(listener(
            &endpoint,
            Proto::Http,
            &format!("{COLLECTOR} extensions.health_check"),
        ));
    }
    out.extend(telemetry_listeners(config, COLLECTOR));
    out
}

pub(crate) fn tempo_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let server = &config["server"];
    let bind = |key: &str| text(&server[key]).unwrap_or_default();
    let mut out = vec![
        listener(
            &format!(
                "{}:{}",
                bind("http_listen_address"),
                text(&server["http_listen_port"]).expect("tempo server.http_listen_port")
            ),
            Proto::Http,
            &format!("{source} server.http_listen_port"),
        ),
        listener(
            &format!(
                "{}:{}",
                bind("grpc_listen_address"),
                text(&server["grpc_listen_port"]).unwrap_or_else(|| "9095".into())
            ),
            Proto::Grpc,
            &format!("{source} server.grpc_listen_port"),
        ),
    ];
    out.extend(otlp_receivers(
        &config["distributor"]["receivers"]["otlp"],
        source,
    ));
    out
}

pub(crate) fn loki_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let server = &config["server"];
    vec![
        listener(
            &format!(
                "{}:{}",
                text(&server["http_listen_address"]).unwrap_or_default(),
                text(&server["http_listen_port"]).expect("loki server.http_listen_port")
            ),
            Proto::Http,
            &format!("{source} server.http_listen_port"),
        ),
        listener(
            &format!(
                "{}:{}",
                text(&server["grpc_listen_address"]).unwrap_or_default(),
                text(&server["grpc_listen_port"]).unwrap_or_else(|| "9095".into())
            ),
            Proto::Grpc,
            &format!("{source} server.grpc_listen_port"),
        ),
    ]
}

pub(crate) fn jaeger_listeners(config: &Yaml, source: &str) -> Vec<Listener> {
    let mut out = otlp_receivers(&config["receivers"]["otlp"], source);
    let extensions = &config["extensions"];
    for (path, value, proto) in [
        (
            "extensions.jaeger_query.http",
            &extensions["jaeger_query"]["http"]["endpoint"],
            Proto::Http,
        ),
        (
            "extensions.jaeger_query.grpc",
            &extensions["jaeger_query"]["grpc"]["endpoint"],
            Proto::Grpc,
        ),
        (
            "extensions.healthcheckv2.http",
            &extensions["healthcheckv2"]["http"]["endpoint"],
            Proto::Http,
        ),
    ] {
        let endpoint = text(value).unwrap_or_else(|| {
            panic!("{source}: {path} has no explicit endpoint (Jaeger's default is localhost)")
        });
        out.push(listener(&endpoint, proto, &format!("{source} {path}")));
    }
    out.extend(telemetry_listeners(config, source));
    out
}

/// Every service's listeners, keyed by compose service name.
pub(crate) fn listeners(compose: &Yaml) -> BTreeMap<String, Vec<Listener>> {
    let mut out = BTreeMap::new();
    for (name, service) in services(compose) {
        let env = environment(&service);
        let command = argv(&service["command"]);
        let from_env = |var: &str| {
            let value = env
                .get(var)
                .unwrap_or_else(|| panic!("{name}: {var} is not set"));
            vec![listener(
                &format!("0.0.0.0:{}", value.rsplit(':').next().unwrap()),
                Proto::Http,
                &format!("{COMPOSE} {name}.environment.{var}"),
            )]
        };
        let found = match name.as_str() {
            "otel-collector" => collector_listeners(&yaml(&config_file_of(compose, &name))),
            "tempo" => {
                let file = config_file_of(compose, &name);
                tempo_listeners(&yaml(&file), &file)
            }
            "loki" => {
                let file = config_file_of(compose, &name);
                loki_listeners(&yaml(&file), &file)
            }
            "jaeger" => {
                let file = config_file_of(compose, &name);
                jaeger_listeners(&yaml(&file), &file)
            }
            "prometheus" => vec![listener(
                &flag(&command, &["--web.listen-address"]).unwrap_or_else(|| "0.0.0.0:9090".into()),
                Proto::Http,
                &format!("{COMPOSE} prometheus.command"),
            )],
            "alertmanager" => vec![listener(
                &flag(&command, &["--web.listen-address"]).unwrap_or_else(|| "0.0.0.0:9093".into()),
                Proto::Http,
                &format!("{COMPOSE} alertmanager.command"),
            )],
            "grafana" => vec![listener(
                &format!(
                    "{}:{}",
                    env.get("GF_SERVER_HTTP_ADDR").cloned().unwrap_or_default(),
                    env.get("GF_SERVER_HTTP_PORT")
                        .cloned()
                        .unwrap_or_else(|| "3000".into())
                ),
                Proto::Http,
                &format!("{COMPOSE} grafana.environment"),
            )],
            "nats" => vec![
                listener(
                    &format!(
                        "0.0.0.0:{}",
                        flag(&command, &["--port", "-p"]).unwrap_or_else(|| "4222".into())
                    ),
                    Proto::Nats,
                    &format!("{COMPOSE} nats.command"),
                ),
                listener(
                    &format!(
                        "0.0.0.0:{}",
                        flag(&command, &["--http_port", "-m"])
                            .unwrap_or_else(|| panic!("nats: no --http_port: no monitoring"))
                    ),
                    Proto::Http,
                    &format!("{COMPOSE} nats.command"),
                ),
            ],
            "postgres" => {
                // `-c listen_addresses=…`; without it the image's server listens on all
                // interfaces, but say it: the healthcheck and orders depend on it.
                let listen = command
                    .iter()
                    .find_map(|a| a.strip_prefix("listen_addresses="))
                    .unwrap_or_else(|| panic!("postgres: no -c listen_addresses=… in command"));
                let bind = if listen == "*" { "0.0.0.0" } else { listen };
                vec![listener(
                    &format!(
                        "{bind}:{}",
                        flag(&command, &["-p"]).unwrap_or_else(|| "5432".into())
                    ),
                    Proto::Postgres,
                    &format!("{COMPOSE} postgres.command"),
                )]
            }
            "redis" => vec![listener(
                &format!(
                    "{}:{}",
                    flag(&command, &["--bind"]).unwrap_or_else(|| "127.0.0.1".into()),
                    flag(&command, &["--port"]).unwrap_or_else(|| "6379".into())
                ),
                Proto::Redis,
                &format!("{COMPOSE} redis.command"),
            )],
            "obs" => from_env("OBS_LISTEN"),
            "gateway" => from_env("GATEWAY_PORT"),
            "orders" => from_env("ORDERS_PORT"),
            "worker" => from_env("WORKER_PORT"),
            other => panic!("no listener model for compose service {other}: add one here"),
        };
        out.insert(name, found);
    }
    out
}

/// The host and port an endpoint names (a URL without a port: its scheme's default).
pub(crate) fn endpoint_host_port(endpoint: &str) -> Option<(String, u16)> {
    if let Some(found) = host_port(endpoint) {
        return Some(found);
    }
    let (scheme, rest) = endpoint.split_once("://")?;
    let host = rest.split(['/', ':']).next()?.to_string();
    let port = match scheme {
        "http" => 80,
        "https" => 443,
        "nats" => 4222,
        "postgres" | "postgresql" => 5432,
        "redis" => 6379,
        _ => return None,
    };
    Some((host, port))
}

/// Whether the host an endpoint names is a compose service listening on its port with a
/// protocol in `accepted`; the problem otherwise.
pub(crate) fn reaches(
    listeners: &BTreeMap<String, Vec<Listener>>,
    caller: &str,
    endpoint: &str,
    accepted: &[Proto],
) -> Result<(), String> {
    let Some((host, port)) = endpoint_host_port(endpoint) else {
        return Err(format!("{caller}: {endpoint:?} names no host and port"));
    };
    let Some(found) = listeners.get(&host) else {
        return Err(format!(
            "{caller}: {endpoint:?} names host {host:?}, which is not a compose service"
        ));
    };
    match found.iter().find(|l| l.port == port) {
        None => Err(format!(
            "{caller}: {endpoint:?}: {host} listens on {:?}, not {port}",
            found.iter().map(|l| l.port).collect::<BTreeSet<_>>()
        )),
        Some(l) if !accepted.contains(&l.proto) => Err(format!(
            "{caller}: {endpoint:?}: {host}:{port} speaks {:?} ({}), the caller speaks {accepted:?}",
            l.proto, l.source
        )),
        Some(_) => Ok(()),
    }
}
